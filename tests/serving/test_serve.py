"""Smoke test of the real server: ``bentoml serve`` on a free localhost port, one request, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 300
STOP_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it does not exit in time."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT_S)


def test_bentoml_serve_answers_on_localhost(trained_home, tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "PROMETHEUS_MULTIPROC_DIR", "NEXTBEST_ALLOW_NO_AUTH")
    }
    env.update(
        NEXTBEST_HOME=str(trained_home.home),
        NEXTBEST_API_KEY="smoke-key",
        BENTOML_HOME=str(tmp_path / "bentoml"),
        BENTOML_DO_NOT_TRACK="True",
        NEXTBEST_RELOAD_SECONDS="0",
    )
    bentoml = Path(sys.executable).with_name("bentoml")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            str(bentoml),
            "serve",
            "nextbest.service:NextBest",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, ready = time.monotonic() + START_TIMEOUT_S, False
        with httpx.Client(base_url=base, timeout=10) as http:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if http.get("/readyz").status_code == 200:
                        ready = True
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            assert ready, (tmp_path / "serve.log").read_text()[-3000:]
            r = http.post(
                "/predict", json={"customer_id": "1"}, headers={"Authorization": "Bearer smoke-key"}
            )
            assert r.status_code == 200, r.text
            assert (
                r.json()["customer_id"] == "1" and r.json()["action"] and r.headers["x-request-id"]
            )
            assert http.post("/predict", json={"customer_id": "1"}).status_code == 401
            assert "nextbest_decisions_total" in http.get("/metrics").text
    finally:
        stop(proc)
        log.close()
    assert proc.poll() is not None
