"""A real ``bentoml serve``: events survive ``kill -9``; 2 workers: readiness and consent.

* Durability: an objection and a purchase posted, the server killed with
  SIGKILL right after the 2xx, started again: both are found (the decision and
  the data-access document).
* Readiness of the whole service: with 2 workers, once ``/readyz`` first
  answers 200, every following ``/predict`` (each on a new connection, so
  the kernel spreads them over both workers) answers 200.
* Consistency: an objection posted through one connection is honoured by the
  next request of every connection, whichever worker takes it.
"""

from __future__ import annotations

import os
import shutil
import signal

import httpx
import pytest

from tests.serving.live import live_server, wait_gone

pytestmark = pytest.mark.slow

KEY, ADMIN_KEY = "live-key", "live-admin"
AUTH = {"Authorization": f"Bearer {KEY}"}
N_REQUESTS = 40


@pytest.fixture()
def home(trained_home, tmp_path):
    dst = tmp_path / "home"
    shutil.copytree(
        trained_home.home, dst, ignore=shutil.ignore_patterns("audit", "events.db*", "serving")
    )
    return dst


def consenting(trained_home, k: int = 0) -> str:
    return sorted(set(trained_home.dataset.customers["customer_id"]) - set(trained_home.opted_out))[
        k
    ]


def fresh(base: str, method: str, path: str, **kwargs) -> httpx.Response:
    """One request on a new connection (any worker may take it)."""
    with httpx.Client(base_url=base, timeout=60) as http:
        return http.request(method, path, **kwargs)


def test_acknowledged_events_survive_kill_9(home, trained_home, tmp_path):
    cid = consenting(trained_home)
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
    events = [
        {
            "type": "consent",
            "customer_id": cid,
            "at": "2018-01-01T12:00:00Z",
            "consent_profiling": False,
        },
        {
            "type": "purchase",
            "event_id": "kill-9-p1",
            "customer_id": "kill-9-new",
            "timestamp": "2017-12-20T10:00:00Z",
            "amount": 30.0,
            "category": "MEAT",
        },
    ]
    with live_server(home, tmp_path / "a", KEY, NEXTBEST_ADMIN_KEY=ADMIN_KEY) as (base, proc):
        r = fresh(base, "POST", "/events", json={"events": events}, headers=AUTH)
        assert r.status_code == 200 and r.json()["new"] == 2
        os.killpg(proc.pid, signal.SIGKILL)  # right after the 2xx: no shutdown, no flush
        proc.wait(30)
    # Workers run in sessions of their own: they leave with the server, and so do their
    # decision processes (no orphan keeps answering on the old socket).
    assert wait_gone(home) == []
    with live_server(home, tmp_path / "b", KEY, NEXTBEST_ADMIN_KEY=ADMIN_KEY) as (base, _):
        d = fresh(base, "POST", "/predict", json={"customer_id": cid}, headers=AUTH).json()
        assert d["action"] == "non_personalised" and d["p_alive"] is None
        r = fresh(base, "POST", "/predict", json={"customer_id": "kill-9-new"}, headers=AUTH)
        assert r.status_code == 200 and r.json()["p_alive"] is not None
        doc = fresh(
            base,
            "GET",
            "/customers/kill-9-new/data",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ).json()
        assert [e["event_id"] for e in doc["events"]] == ["kill-9-p1"]


def test_two_workers_are_ready_together_and_both_honour_an_objection(home, trained_home, tmp_path):
    two = {"BENTOML_CONFIG_OPTIONS": "services.nextbest.workers=2"}
    with live_server(home, tmp_path, KEY, **two) as (base, _):
        # live_server returned at the first /readyz 200: every request from now on must answer.
        cid = consenting(trained_home, 1)
        statuses = [
            fresh(base, "POST", "/predict", json={"customer_id": cid}, headers=AUTH).status_code
            for _ in range(N_REQUESTS)
        ]
        assert statuses == [200] * N_REQUESTS
        ready = list((home / "serving" / "ready").iterdir())
        assert len(ready) == 1 and len(list(ready[0].glob("worker-*"))) == 2
        objection = {
            "type": "consent",
            "customer_id": cid,
            "at": "2018-01-01T12:00:00Z",
            "consent_profiling": False,
        }
        r = fresh(base, "POST", "/events", json={"events": [objection]}, headers=AUTH)
        assert r.status_code == 200
        actions = [
            fresh(base, "POST", "/predict", json={"customer_id": cid}, headers=AUTH).json()[
                "action"
            ]
            for _ in range(N_REQUESTS)
        ]
        assert actions == ["non_personalised"] * N_REQUESTS
