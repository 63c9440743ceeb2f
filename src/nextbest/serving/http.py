"""Pure ASGI middleware: request ids, JSON error bodies, body limits, ``/docs``.

Added to the BentoML service with ``add_asgi_middleware`` (outermost first):

1. :class:`ErrorEnvelopeMiddleware` - gives every request an id
   (``X-Request-ID``: the client's if well-formed, else a new one), serves
   the API page at ``/docs`` and the published document at ``/docs.json``
   (:mod:`.openapi`), and rewrites every error response (status >= 400)
   into one JSON object ``{"error": ..., "detail": ...}`` - BentoML wraps
   raised exceptions in a JSON array and Starlette answers unknown routes in
   plain text; pydantic's validation errors become ``{"field", "problem"}``
   in our words;
2. :class:`~nextbest.serving.auth.AuthMiddleware`;
3. :class:`BodyLimitMiddleware` - POST bodies must be JSON (415 otherwise:
   BentoML would otherwise pick a multipart or pickle decoder from the
   client's ``Content-Type``) and at most ``max_body_bytes`` (413).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from http import HTTPStatus

from nextbest.serving.errors import error_body, field_problems
from nextbest.serving.openapi import DOCS_HEADERS, DOCS_HTML, published_bytes
from nextbest.serving.settings import max_body_bytes_from_env

log = logging.getLogger(__name__)

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "nextbest_request_id", default="-"
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_IO_SUFFIX = re.compile(r"(\w)IODescriptor\b")
BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"


class ClientErrorLogFilter(logging.Filter):
    """Drop BentoML's stack trace for a request body that failed validation (a client mistake, a
    400)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ValidationError)


def quiet_client_errors() -> None:
    """Install :class:`ClientErrorLogFilter` on BentoML's HTTP logger (once)."""
    logger = logging.getLogger(BENTOML_HTTP_LOGGER)
    if not any(isinstance(f, ClientErrorLogFilter) for f in logger.filters):
        logger.addFilter(ClientErrorLogFilter())


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


async def send_error(
    send, status: int, error: str, detail=None, headers: list | None = None
) -> None:
    """Send a complete JSON error response."""
    body = error_body(error, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_validation_detail(detail) -> bool:
    return (
        isinstance(detail, list)
        and bool(detail)
        and all(isinstance(d, dict) and "loc" in d and "msg" in d for d in detail)
    )


def envelope(status: int, body: bytes) -> bytes:
    """Any error body as ``{"error": ..., "detail": ...}``."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = body.decode("utf-8", "replace").strip() or None
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]  # BentoML's array-wrapped exception body
    if isinstance(data, dict) and _is_validation_detail(data.get("detail")):
        # BentoML's pydantic error ("1 validation error for PredictRequestIODescriptor", links
        # to pydantic's pages): the same facts in our words, one entry per field.
        return error_body("invalid request body", field_problems(data["detail"]))
    if isinstance(data, dict) and "error" in data:
        return error_body(_IO_SUFFIX.sub(r"\1", str(data["error"])), data.get("detail"))
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
    if isinstance(data, str):
        return error_body(data, None)
    return error_body(phrase, data)


class ErrorEnvelopeMiddleware:
    """Request ids, ``/docs`` and plain-object JSON error bodies (see the module docstring)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = _header(scope, b"x-request-id")
        given = given.decode("latin-1") if given else ""
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        rid_header = (b"x-request-id", rid.encode())
        if scope["path"] in ("/", "/docs") and scope["method"] in ("GET", "HEAD"):
            request_id_var.reset(token)
            return await self._docs_page(scope, send, rid_header)
        if scope["path"] == "/docs.json" and scope["method"] == "GET":
            try:
                return await self._openapi(scope, receive, send, rid_header)
            finally:
                request_id_var.reset(token)
        held: dict = {}
        chunks: list[bytes] = []

        async def wrapped_send(message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, rid_header]}
                if message["status"] >= 400:
                    held["start"] = message
                    return
                held["passed"] = True
                return await send(message)
            if message["type"] == "http.response.body" and "start" in held:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                start = held.pop("start")
                held["passed"] = True
                body = envelope(start["status"], b"".join(chunks))
                headers = [
                    h
                    for h in start["headers"]
                    if h[0].lower() not in (b"content-length", b"content-type")
                ]
                headers += [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({**start, "headers": headers})
                return await send({"type": "http.response.body", "body": body})
            return await send(message)

        try:
            await self.app(scope, receive, wrapped_send)
        except Exception:
            log.exception(
                "unhandled error on %s %s (request %s)", scope.get("method"), scope.get("path"), rid
            )
            if "passed" not in held:
                await send_error(send, 500, "internal error", {"request_id": rid}, [rid_header])
        finally:
            request_id_var.reset(token)

    async def _docs_page(self, scope, send, rid_header) -> None:
        """The API page (:data:`.openapi.DOCS_HTML`) instead of BentoML's."""
        body = DOCS_HTML if scope["method"] == "GET" else b""
        headers = [
            *DOCS_HEADERS,
            (b"content-length", str(len(DOCS_HTML)).encode()),
            rid_header,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _openapi(self, scope, receive, send, rid_header) -> None:
        """``/docs.json``: BentoML's document, as :func:`.openapi.publish` makes it."""
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if start.get("status") != 200:
            return await send_error(send, 503, "API document unavailable", None, [rid_header])
        body = published_bytes(b"".join(chunks))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            rid_header,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """POST bodies: JSON only (415) and at most ``max_body_bytes`` (413)."""

    def __init__(self, app, max_body_bytes: int | None = None) -> None:

        self.app = app
        self.max_body_bytes = (
            int(max_body_bytes) if max_body_bytes is not None else max_body_bytes_from_env()
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        ctype = (
            (_header(scope, b"content-type") or b"application/json").split(b";")[0].strip().lower()
        )
        if ctype != b"application/json":
            return await send_error(
                send,
                415,
                "unsupported media type",
                f"send the body as application/json, not {ctype.decode('latin-1')!r}",
            )
        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await send_error(
                send, 413, "request body too large", f"at most {limit:,} bytes are accepted"
            )
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                return await send_error(
                    send, 413, "request body too large", f"at most {limit:,} bytes are accepted"
                )
            parts.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(parts), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
