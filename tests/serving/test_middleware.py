"""ASGI middleware on a tiny Starlette app: JSON error envelope, request ids, auth, body limits."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from nextbest.errors import ConfigurationError
from nextbest.serving.auth import AuthMiddleware, bearer_token
from nextbest.serving.http import (
    BodyLimitMiddleware,
    ErrorEnvelopeMiddleware,
    envelope,
    request_id_var,
)
from nextbest.serving.settings import ServiceSettings, api_keys_from_env


async def echo(request: Request):
    body = await request.body()
    return JSONResponse({"n": len(body), "request_id": request_id_var.get()})


async def array_error(request: Request):
    return JSONResponse([{"error": "wrapped by BentoML"}], status_code=400)


async def plain(request: Request):
    return PlainTextResponse("teapot", status_code=418)


async def boom(request: Request):
    raise RuntimeError("bug")


def make_client(keys=("k1", "k2"), max_body=1024, on_failure=None) -> TestClient:
    app = Starlette(
        routes=[
            Route("/echo", echo, methods=["POST"]),
            Route("/array", array_error),
            Route("/plain", plain),
            Route("/boom", boom),
            Route("/livez", plain),
        ]
    )
    app = BodyLimitMiddleware(app, max_body_bytes=max_body)
    app = AuthMiddleware(app, keys=keys, on_failure=on_failure)
    return TestClient(ErrorEnvelopeMiddleware(app), raise_server_exceptions=False)


AUTH = {"Authorization": "Bearer k1"}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, b'[{"error": "x"}]', {"error": "x", "detail": None}),
        (
            400,
            b'{"error": "1 validation error for PredictRequestIODescriptor", "detail": [1]}',
            {"error": "1 validation error for PredictRequest", "detail": [1]},
        ),
        (404, b"Not Found", {"error": "Not Found", "detail": None}),
        (500, b"", {"error": "Internal Server Error", "detail": None}),
        (422, b'{"foo": 1}', {"error": HTTPStatus(422).phrase, "detail": {"foo": 1}}),
    ],
)
def test_envelope_makes_every_error_body_one_object(status, body, expected):
    assert json.loads(envelope(status, body)) == expected


def test_error_bodies_are_plain_json_objects_with_request_id():
    c = make_client()
    for path, status in (("/array", 400), ("/plain", 418), ("/nowhere", 404), ("/boom", 500)):
        r = c.get(path, headers=AUTH)
        assert r.status_code == status
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert isinstance(body, dict) and set(body) == {"error", "detail"}
        assert len(r.headers["x-request-id"]) == 32
    assert c.get("/array", headers=AUTH).json()["error"] == "wrapped by BentoML"


def test_request_id_is_echoed_when_well_formed_and_visible_to_the_app():
    c = make_client()
    r = c.post("/echo", json={}, headers={**AUTH, "X-Request-ID": "req-123.a:b"})
    assert r.headers["x-request-id"] == "req-123.a:b" and r.json()["request_id"] == "req-123.a:b"
    r = c.post("/echo", json={}, headers={**AUTH, "X-Request-ID": "bad id with spaces"})
    assert (
        r.headers["x-request-id"] != "bad id with spaces"
        and r.json()["request_id"] == r.headers["x-request-id"]
    )


def test_auth_requires_a_valid_bearer_key_and_counts_failures():
    failures = []
    c = make_client(on_failure=lambda: failures.append(1))
    assert c.post("/echo", json={}, headers=AUTH).status_code == 200
    assert (
        c.post("/echo", json={}, headers={"Authorization": "Bearer k2"}).status_code == 200
    )  # rotated key
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic k1"},
        {"Authorization": "Bearer"},
        {"Authorization": "k1"},
    ):
        r = c.post("/echo", json={}, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"].startswith(
            "Bearer"
        )
    assert len(failures) == 5
    assert c.get("/livez").status_code == 418  # public path: no key needed


def test_auth_built_without_keys_fails_closed():
    c = make_client(keys=())
    assert c.post("/echo", json={}, headers=AUTH).status_code == 503
    assert c.get("/livez").status_code == 418


def test_bearer_token_parsing():
    assert bearer_token({"headers": [(b"authorization", b"bearer  abc ")]}) == b"abc"
    assert bearer_token({"headers": [(b"authorization", b"Token abc")]}) is None
    assert bearer_token({"headers": []}) is None


def test_body_limit_and_json_only():
    c = make_client(max_body=1024)
    json_headers = {**AUTH, "content-type": "application/json"}
    assert c.post("/echo", content=b"x" * 1024, headers=json_headers).json()["n"] == 1024
    r = c.post("/echo", content=b"x" * 1025, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413 and "1,024" in r.json()["detail"]

    def chunks():
        for _ in range(5):
            yield b"x" * 300

    r = c.post("/echo", content=chunks(), headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413  # no content-length: counted while reading
    for ctype in (
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/vnd.bentoml+pickle",
    ):
        r = c.post("/echo", content=b"{}", headers={**AUTH, "content-type": ctype})
        assert r.status_code == 415 and r.json()["error"] == "unsupported media type"
    assert (
        c.post(
            "/echo",
            content=b"{}",
            headers={**AUTH, "content-type": "application/json; charset=utf-8"},
        ).status_code
        == 200
    )


def test_unauthenticated_large_bodies_are_refused_before_being_read():
    c = make_client(max_body=1024)
    assert (
        c.post(
            "/echo", content=b"x" * 5000, headers={"content-type": "application/json"}
        ).status_code
        == 401
    )


def test_missing_api_key_refuses_to_start_unless_explicitly_allowed(caplog):
    with pytest.raises(ConfigurationError, match="NEXTBEST_API_KEY is not set"):
        api_keys_from_env({})
    with pytest.raises(ConfigurationError, match="refusing to start"):
        ServiceSettings.from_env({"NEXTBEST_API_KEY": "  "})
    assert "refusing to start" in caplog.text
    assert api_keys_from_env({"NEXTBEST_ALLOW_NO_AUTH": "1"}) == ()
    assert "OPEN to anyone" in caplog.text
    assert api_keys_from_env({"NEXTBEST_API_KEY": "a, b,,"}) == ("a", "b")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NEXTBEST_RELOAD_SECONDS", "-1"),
        ("NEXTBEST_HORIZON_DAYS", "abc"),
        ("NEXTBEST_SCORE_CHUNK", "0"),
    ],
)
def test_malformed_numbers_are_configuration_errors(name, value):
    with pytest.raises(ConfigurationError, match=name):
        ServiceSettings.from_env({"NEXTBEST_API_KEY": "k", name: value})
