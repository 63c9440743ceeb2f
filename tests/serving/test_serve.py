"""Smoke test of the real server: ``bentoml serve`` on a free localhost port, one request, stop."""

from __future__ import annotations

import httpx
import pytest

from tests.serving.live import live_server

pytestmark = pytest.mark.slow


def test_bentoml_serve_answers_on_localhost(trained_home, tmp_path):
    with (
        live_server(trained_home.home, tmp_path, "smoke-key") as (base, proc),
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        r = http.post(
            "/predict", json={"customer_id": "1"}, headers={"Authorization": "Bearer smoke-key"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["customer_id"] == "1" and r.json()["action"] and r.headers["x-request-id"]
        assert http.post("/predict", json={"customer_id": "1"}).status_code == 401
        assert "nextbest_decisions_total" in http.get("/metrics").text
    assert proc.poll() is not None
