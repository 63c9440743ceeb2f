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
from collections.abc import Callable
from typing import Any

import pydantic_core
from starlette.responses import Response

from nextbest.errors import ServiceError


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
