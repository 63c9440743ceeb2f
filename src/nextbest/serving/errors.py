"""Errors of the HTTP service: exception classes carrying an HTTP status, and their JSON body.

Every error a client sees is one JSON object ``{"error": ..., "detail": ...}``.
API methods raise a :class:`ServiceError`; :func:`handles_errors` turns it
into that response (BentoML's own handling of raised exceptions would wrap
the body in a JSON array and log a stack trace for a mere unknown id).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable
from typing import Any

import pydantic_core
from starlette.responses import Response

from nextbest.errors import ServiceError

# pydantic error types -> what is wrong, in our words ({n} = the limit named in pydantic's message)
_PROBLEMS = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "float_type": "must be a finite number",
    "float_parsing": "must be a finite number",
    "finite_number": "must be a finite number (not NaN or infinity)",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "datetime_type": "must be an ISO 8601 datetime string, e.g. 2017-03-01T10:00:00Z",
    "datetime_parsing": "must be an ISO 8601 datetime string, e.g. 2017-03-01T10:00:00Z",
    "datetime_from_date_parsing": "must be an ISO 8601 datetime string, e.g. 2017-03-01T10:00:00Z",
    "date_type": "must be an ISO 8601 date string, e.g. 2018-01-01",
    "date_parsing": "must be an ISO 8601 date string, e.g. 2018-01-01",
    "date_from_datetime_parsing": "must be an ISO 8601 date string, e.g. 2018-01-01",
    "date_from_datetime_inexact": "must be a date without a time of day",
    "json_invalid": "the body is not valid JSON",
    "json_type": "must be valid JSON",
    "string_pattern_mismatch": "must have a visible character and no control characters",
    "literal_error": "is not one of the allowed values",
}
# Types whose limit is in pydantic's message: keep the words after "should".
_SHOULD = re.compile(r"^(?:[A-Z][a-z]* )*?(?:Input )?should (?:be |have )?", re.IGNORECASE)


def field_problems(errors: list[dict]) -> list[dict[str, str]]:
    """pydantic's validation errors as ``[{"field", "problem"}]`` in nextbest's words.

    ``field`` is the dotted path (``transactions.0.amount``; ``""`` for the body
    itself); ``problem`` never names a framework class or links to one.
    """
    out = []
    for err in errors:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "root")]
        kind = str(err.get("type", ""))
        msg = str(err.get("msg", ""))
        if kind in _PROBLEMS:
            problem = _PROBLEMS[kind]
        elif kind in ("value_error", "assertion_error"):
            problem = re.sub(r"^(Value error|Assertion failed), ", "", msg)
        else:
            rest = _SHOULD.sub("", msg, count=1).replace(" after validation", "")
            verb = "have" if re.search(r"\bhave\b", msg) else "be"
            problem = f"must {verb} {rest}" if rest != msg else msg
        field = ".".join(loc)
        if kind == "extra_forbidden":
            problem = f"unknown field {loc[-1]!r}" if loc else "unknown field"
        out.append({"field": field, "problem": problem})
    return out


def error_body(error: str, detail: Any = None) -> bytes:
    """``{"error": error, "detail": detail}`` as UTF-8 JSON (non-JSON detail is stringified)."""
    return json.dumps({"error": error, "detail": detail}, default=str).encode()


def error_response(
    status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """A JSON error response with the standard body."""
    return Response(
        error_body(error, detail),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def json_response(payload: dict, status: int = 200) -> Response:
    """``payload`` (plain Python values; dates become ISO strings) as a compact JSON response.

    Used for decisions: their shape is the pydantic ``output_spec`` of the API
    (checked in the tests), but building and validating pydantic objects per
    request costs more than the lookup itself; pydantic-core's serializer
    writes the plain values about 4x faster than ``json.dumps``. A non-finite
    float is written as ``null``, never as invalid JSON.
    """
    body = pydantic_core.to_json(payload, inf_nan_mode="null")
    return Response(body, status_code=status, media_type="application/json")


def handles_errors(func: Callable) -> Callable:
    """Decorate an API method so a raised :class:`ServiceError` becomes its JSON response.

    Works for ``async def`` and plain methods (BentoML runs the latter in a thread).
    """
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args, **kwargs):
            try:
                return await func(*args, **kwargs)
            except ServiceError as exc:
                return error_response(exc.http_status, exc.error, exc.detail)

        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ServiceError as exc:
            return error_response(exc.http_status, exc.error, exc.detail)

    return wrapper
