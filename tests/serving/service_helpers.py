"""Helpers shared by the service tests (importable: pytest puts this directory on sys.path)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

API_KEY = "test-key"
ROTATED_KEY = "rotated-key"
READY_TIMEOUT_S = 300


def service_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        "NEXTBEST_HOME": str(home),
        "NEXTBEST_API_KEY": f"{API_KEY},{ROTATED_KEY}",
        "NEXTBEST_RELOAD_SECONDS": "0",
    }
    env.update(extra)
    return env


def wait_ready(client, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.2)
    raise TimeoutError(f"service not ready after {timeout_s}s")


def forget_bentoml_collectors() -> None:
    """Let another BentoML app be built in this process.

    BentoML registers its HTTP metrics in the global Prometheus registry on
    an app's first request; a second app would fail with duplicated
    timeseries. With ``PROMETHEUS_MULTIPROC_DIR`` set, values live in files,
    so dropping the registrations does not lose anything.
    """
    import prometheus_client

    registry = prometheus_client.REGISTRY
    for collector, names in list(registry._collector_to_names.items()):
        if any(name.startswith("bentoml_") for name in names):
            registry.unregister(collector)


def start_client(mp: pytest.MonkeyPatch, env: dict[str, str]):
    """A TestClient (not yet entered) on a fresh ASGI app of the service, with ``env`` applied."""
    from starlette.testclient import TestClient

    from nextbest.service import NextBest

    forget_bentoml_collectors()
    for name in ("MLFLOW_TRACKING_URI", "NEXTBEST_ALLOW_NO_AUTH"):
        mp.delenv(name, raising=False)
    for name, value in env.items():
        mp.setenv(name, value)
    return TestClient(NextBest.to_asgi(), raise_server_exceptions=False)
