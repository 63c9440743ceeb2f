"""The published OpenAPI document: BentoML's, made to describe nextbest truthfully.

BentoML generates ``/docs.json`` from the service's typed APIs. Served as is,
it describes BentoML rather than nextbest (its README as the description,
version "None", ``*IODescriptor`` schema names, no security scheme, a 500 on
every operation and none of the statuses nextbest really answers with).
:func:`publish` rewrites it once per process:

* ``info``: title, the package version (the API version follows it) and a
  description of what each endpoint answers and how to authenticate;
* ``components.securitySchemes.bearerAuth``, applied to every protected
  operation (Swagger's *Authorize* button then works);
* readable schema names (``PredictRequest``, not ``PredictRequestIODescriptor``);
* one error schema (``Error``) on every error status each operation can
  answer (:data:`ERRORS`), and no 500: a client should never see one;
* request bodies marked required where the operation needs one.

Versioning: a breaking change to a response needs a new field or a new
path, never a changed type; the document's version is the package's.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from nextbest import __version__

_IO_SUFFIX = re.compile(r"IODescriptor$")
_IO_REF = re.compile(r"(#/components/schemas/\w+?)IODescriptor\b")

DESCRIPTION = """\
**nextbest** tells you the *next best action* for a customer: predicted
lifetime value (CLV, future value over a horizon), P(alive), churn risk, the
chosen action (retention, cross-sell, nothing, or the non-personalised
default), ranked offers with expected value, and the reasons in plain words.

Every customer of the training snapshot is decided before anyone asks: a
request is a lookup. Customers who objected to profiling (GDPR Art. 21) get
the non-personalised default and no scores.

| endpoint | answers |
|---|---|
| `POST /predict` | the decision for one customer id (404 if unknown; `record_contact`: sent) |
| `POST /predict_batch` | decisions for up to 1,000 ids, unknown ids listed apart |
| `POST /predict_features` | a decision for a new customer, from their posted transactions |
| `POST /events` | purchases, contacts, responses and consent (up to 1,000, all or nothing) |
| `GET /customers/{customer_id}/data` | everything held about a customer (admin key) |
| `POST /admin/reload` | load a newly promoted champion or snapshot now |
| `GET /livez`, `/readyz`, `/healthz`, `/metrics` | probes and Prometheus metrics (no key) |

Events change decisions at once: once `POST /events` answered 2xx, the next
`/predict` on any worker answers with the customer's updated decision (an
objection to profiling: the non-personalised default, no scores).

**Authentication**: every `POST` needs `Authorization: Bearer <key>`, a key
from `NEXTBEST_API_KEY` (`nextbest serve --generate-key` prints one). The
data-access endpoint needs a key from `NEXTBEST_ADMIN_KEY` instead (403
with an API key, or when no admin key is set). Use *Authorize* on this page
to try the endpoints.

**Errors** are always one JSON object `{"error": ..., "detail": ...}`
(schema `Error`); a bad body gives 400 with `detail` a list of
`{"field", "problem"}`.
"""

SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "A key from NEXTBEST_API_KEY: `Authorization: Bearer <key>`.",
}
ADMIN_SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "A key from NEXTBEST_ADMIN_KEY (data access): `Authorization: Bearer <key>`.",
}
CUSTOMER_DATA_PATH = "/customers/{customer_id}/data"
_ANY_OBJECT = {"type": "object", "additionalProperties": True}
CUSTOMER_DATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "CustomerData",
    "description": "Everything held about one customer (GDPR Art. 15 and 20).",
    "required": [
        "customer_id",
        "generated_at",
        "snapshot",
        "transactions",
        "events",
        "consent",
        "decision",
        "audit",
    ],
    "properties": {
        "customer_id": {"type": "string"},
        "generated_at": {"type": "string", "description": "UTC, ISO 8601."},
        "snapshot": {
            "type": "object",
            "description": "The serving snapshot's as_of and the customer's feature row.",
            "properties": {
                "as_of": {"type": "string"},
                "features": {**_ANY_OBJECT, "nullable": True},
            },
        },
        "transactions": {
            "type": "array",
            "items": _ANY_OBJECT,
            "description": "Transaction lines the snapshot was trained on.",
        },
        "events": {
            "type": "array",
            "items": _ANY_OBJECT,
            "description": "Every stored event, oldest first.",
        },
        "consent": {
            **_ANY_OBJECT,
            "description": "Profiling consent (granted, source, at) and each channel's opt-in.",
        },
        "decision": {
            **_ANY_OBJECT,
            "nullable": True,
            "description": "The current decision, as /predict answers it (schema Decision).",
        },
        "audit": {
            "type": "array",
            "items": _ANY_OBJECT,
            "description": "Every audit-log line about the customer.",
        },
    },
}
PATH_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 64}

ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "FieldProblem": {
        "type": "object",
        "title": "FieldProblem",
        "description": "What is wrong with one field of the request body.",
        "required": ["field", "problem"],
        "properties": {
            "field": {
                "type": "string",
                "description": "Path of the field, e.g. transactions.0.amount ('' = the body).",
            },
            "problem": {"type": "string", "description": "What is wrong, in words."},
        },
        "additionalProperties": False,
    },
    "Error": {
        "type": "object",
        "title": "Error",
        "description": "Every error answer: a short stable message and what exactly was wrong.",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "description": "Short, stable message."},
            "detail": {
                "nullable": True,
                "description": "A sentence, the problems of each field (400), or an object "
                "naming what was not found (404) - or null.",
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/FieldProblem"}},
                    {"type": "object", "additionalProperties": True},
                ],
            },
        },
        "additionalProperties": False,
    },
}

STATUS_TEXT = {
    400: "The body is not valid: `detail` lists each field and its problem.",
    401: "No or wrong API key (`Authorization: Bearer <key>`).",
    403: "Not an admin key (`NEXTBEST_ADMIN_KEY`), or data access is off (no admin key set).",
    404: "The customer id is neither in the snapshot nor known from events (see `detail.hint`).",
    409: "The reload failed; the previous models and snapshot keep serving.",
    413: "The body is larger than the service accepts.",
    415: "The body must be sent as `application/json`.",
    422: "The body is well-formed but its content cannot be used (e.g. every transaction "
    "was rejected by the schema check; an event breaks a rule: `detail` lists each "
    "`events[i].field` and its problem, and nothing was stored).",
    503: "Not ready: models and snapshot are still loading.",
}
# The error statuses each protected operation can answer (every POST also: 400, 401, 413, 415).
ERRORS: dict[str, tuple[int, ...]] = {
    "/predict": (404, 503),
    "/predict_batch": (503,),
    "/predict_features": (422, 503),
    "/events": (422,),
    "/admin/reload": (409, 503),
    CUSTOMER_DATA_PATH: (401, 403, 404, 503),
}
COMMON_POST_ERRORS = (400, 401, 413, 415)
SUMMARIES = {
    "/predict": "Decision for one customer",
    "/predict_batch": "Decisions for up to 1,000 customers",
    "/predict_features": "Decision for a new customer from their transactions",
    "/events": "Store purchases, contacts, responses and consent",
    CUSTOMER_DATA_PATH: "Everything held about one customer (data access)",
    "/admin/reload": "Load a new champion or snapshot now",
    "/livez": "Liveness probe",
    "/readyz": "Readiness probe (503 until every model and the snapshot are loaded)",
    "/healthz": "Health probe",
    "/metrics": "Prometheus metrics",
}
# An empty body means {} here (force = false); every other POST needs a body.
OPTIONAL_BODY = frozenset({"/admin/reload"})

# Paths that need the admin key (NEXTBEST_ADMIN_KEY) instead of an API key: data access.
ADMIN_PREFIX = "/customers/"

# Paths that need no API key: probes, metrics and the API docs.
PUBLIC_PATHS = frozenset({"/livez", "/healthz", "/readyz", "/metrics", "/", "/docs", "/docs.json"})
PUBLIC_PREFIXES = ("/static_content/",)

_published: dict[str, bytes] = {}

# The API page at /docs (and /): Swagger UI from the assets BentoML ships, reading /docs.json.
# No tag manager, no links out, nothing fetched from another host (the CSP header says so too).
DOCS_HTML = b"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>nextbest API</title>
  <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css">
  <link rel="icon" type="image/png" href="./static_content/favicon-light-32x32.png">
  <style>body{margin:0} .swagger-ui .info .title{display:block}</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "./docs.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      persistAuthorization: false,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    });
  </script>
</body>
</html>
"""
DOCS_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self' 'unsafe-inline'; "
        b"style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    ),
]


def is_public(path: str) -> bool:
    """Whether ``path`` is served without an API key."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def is_admin(path: str) -> bool:
    """Whether ``path`` needs the admin key (``NEXTBEST_ADMIN_KEY``)."""
    return path.startswith(ADMIN_PREFIX)


def _rename(obj: Any) -> Any:
    """Drop BentoML's ``IODescriptor`` suffix from schema titles and references, recursively."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key == "title" and isinstance(value, str):
                value = _IO_SUFFIX.sub("", value)
            elif key == "$ref" and isinstance(value, str):
                value = _IO_REF.sub(r"\1", value)
            out[key] = _rename(value)
        return out
    if isinstance(obj, list):
        return [_rename(v) for v in obj]
    return obj


def _error_response(status: int) -> dict:
    return {
        "description": STATUS_TEXT[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def publish(spec: dict) -> dict:
    """BentoML's OpenAPI document rewritten as the module docstring says (a new dict)."""
    spec = _rename(copy.deepcopy(spec))
    spec["info"] = {
        "title": "nextbest",
        "version": __version__,
        "description": DESCRIPTION,
        "license": {"name": "Apache-2.0"},
    }
    spec["tags"] = [
        {"name": "Decisions", "description": "The next best action per customer."},
        {"name": "Events", "description": "What customers did and said, as it happens."},
        {"name": "Data access", "description": "Data-subject requests (admin key)."},
        {"name": "Admin", "description": "Operate the running service."},
        {"name": "Infrastructure", "description": "Probes and metrics (no key needed)."},
    ]
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in (
        "InvalidArgument",
        "NotFound",
        "InternalServerError",
        "TaskStatusResponse",
        "HTTPValidationError",
        "ValidationError",
    ):
        schemas.pop(name, None)
    schemas.update({_IO_SUFFIX.sub("", k): v for k, v in list(schemas.items())})
    for key in [k for k in schemas if k.endswith("IODescriptor")]:
        del schemas[key]
    schemas.update(copy.deepcopy(ERROR_SCHEMAS))
    schemas["CustomerData"] = copy.deepcopy(CUSTOMER_DATA_SCHEMA)
    components["securitySchemes"] = {
        "bearerAuth": SECURITY_SCHEME,
        "adminAuth": ADMIN_SECURITY_SCHEME,
    }
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if path == CUSTOMER_DATA_PATH:
                _data_access(op)
                continue
            op.pop("x-bentoml-name", None)
            if path in SUMMARIES:
                op["summary"] = SUMMARIES[path]
            responses = {str(k): v for k, v in op.get("responses", {}).items()}
            ok = responses.get("200", {"description": "OK"})
            if is_public(path):
                op["tags"] = ["Infrastructure"]
                responses = {"200": ok}
                if path == "/readyz":
                    responses["503"] = {"description": "Not ready yet: still loading."}
                op["responses"] = responses
                continue
            op["tags"] = (
                ["Admin"]
                if path.startswith("/admin")
                else ["Events"]
                if path == "/events"
                else ["Decisions"]
            )
            op["security"] = [{"bearerAuth": []}]
            statuses = (*COMMON_POST_ERRORS, *ERRORS.get(path, ())) if method == "post" else ()
            responses = {"200": ok}
            if path == "/admin/reload":
                responses["202"] = {
                    "description": "The reload takes longer than the request may: it goes on "
                    "in the background; the versions still served are returned.",
                    "content": copy.deepcopy(ok.get("content", {})),
                }
            for status in sorted(set(statuses) | {401}):
                responses[str(status)] = _error_response(status)
            op["responses"] = responses
            body = op.get("requestBody")
            if body is not None:
                body["required"] = path not in OPTIONAL_BODY
    return spec


def _data_access(op: dict) -> None:
    """``GET /customers/{customer_id}/data``: the admin key, the document, its errors."""
    op.pop("operationId", None)
    op["summary"] = SUMMARIES[CUSTOMER_DATA_PATH]
    op["tags"] = ["Data access"]
    op["security"] = [{"adminAuth": []}]
    for param in op.get("parameters", []):
        if param.get("name") == "customer_id":
            param["schema"] = dict(PATH_ID_SCHEMA)
            param["description"] = "The customer id, exactly as stored (URL-encoded)."
    op["responses"] = {
        "200": {
            "description": "The customer's data as one JSON document.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CustomerData"}}
            },
        },
        **{str(status): _error_response(status) for status in ERRORS[CUSTOMER_DATA_PATH]},
    }
    op["responses"]["404"]["description"] = "Nothing is held about this customer id."


def published_bytes(spec_bytes: bytes) -> bytes:
    """:func:`publish` on a JSON document, cached per process (the document never changes)."""
    if "doc" not in _published:
        _published["doc"] = json.dumps(publish(json.loads(spec_bytes))).encode()
    return _published["doc"]
