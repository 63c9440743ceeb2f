"""Reload without restart and without a failed request; start-up refusals; not-ready answers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.serving.live import processes_of
from tests.serving.service_helpers import service_env, start_client, wait_ready

pytestmark = pytest.mark.slow

AUTH = {"Authorization": "Bearer test-key"}
HAMMER_MAX_REQUESTS = 20_000
HAMMER_MAX_SECONDS = 300


def new_champion(home, name: str = "nextbest-churn") -> str:
    """Register a copy of the champion of ``name`` as a new version and promote it."""
    from mlflow import MlflowClient

    from nextbest import registry
    from nextbest.config import Paths

    registry.setup(Paths(home))
    current = registry.champion_version(name)
    client = MlflowClient()
    mv = client.create_model_version(name, current.source, run_id=current.run_id)
    registry.promote(name, mv.version)
    return str(mv.version)


class Hammer:
    """Bounded background /predict load recording every status and the model versions answered
    with."""

    def __init__(self, client, customer_id: str) -> None:
        self.client, self.customer_id = client, customer_id
        self.statuses: list[int] = []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + HAMMER_MAX_SECONDS
        while (
            not self._stop.is_set()
            and len(self.statuses) < HAMMER_MAX_REQUESTS
            and time.monotonic() < deadline
        ):
            r = self.client.post("/predict", json={"customer_id": self.customer_id}, headers=AUTH)
            self.statuses.append(r.status_code)
            if r.status_code == 200:
                self.versions.append(r.json()["model_versions"]["nextbest-churn"])

    def __enter__(self) -> Hammer:
        self._thread.start()
        while not self.statuses:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)


def churn_version_served_within(client, version: str, seconds: float) -> str:
    """Poll /predict until it answers with churn model ``version``; the version last seen."""
    deadline, seen = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        seen = client.post("/predict", json={"customer_id": "1"}, headers=AUTH).json()[
            "model_versions"
        ]
        if seen["nextbest-churn"] == version:
            break
        time.sleep(0.2)
    return seen["nextbest-churn"]


def test_admin_reload_switches_champion_with_no_failed_request(home_copy):
    with pytest.MonkeyPatch.context() as mp, start_client(mp, service_env(home_copy)) as client:
        wait_ready(client)
        with Hammer(client, "1") as hammer:
            version = new_champion(home_copy)
            r = client.post("/admin/reload", json={}, headers=AUTH)
            assert r.status_code == 200 and r.json()["outcome"] == "reloaded"
            assert r.json()["model_versions"]["nextbest-churn"] == version
            n_at_swap = len(hammer.statuses)
            deadline = time.monotonic() + 30
            while len(hammer.statuses) < n_at_swap + 20 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert hammer.statuses and set(hammer.statuses) == {200}, set(hammer.statuses)
        assert hammer.versions[0] == "1" and hammer.versions[-1] == version
        assert set(hammer.versions) == {"1", version}


def test_watcher_picks_up_a_new_champion_without_restart(home_copy):
    env = service_env(home_copy, NEXTBEST_RELOAD_SECONDS="1")
    with pytest.MonkeyPatch.context() as mp, start_client(mp, env) as client:
        wait_ready(client)
        version = new_champion(home_copy)
        assert churn_version_served_within(client, version, 120) == version


def test_failed_reload_is_409_and_keeps_serving(home_copy):
    with pytest.MonkeyPatch.context() as mp, start_client(mp, service_env(home_copy)) as client:
        wait_ready(client)
        before = client.post("/predict", json={"customer_id": "1"}, headers=AUTH).json()
        (home_copy / "snapshots" / "features.parquet").write_bytes(b"this is not parquet")
        r = client.post("/admin/reload", json={"force": True}, headers=AUTH)
        assert r.status_code == 409
        assert (
            r.json()["error"].startswith("reload failed")
            and "parquet" in r.json()["detail"].lower()
        )
        assert client.get("/readyz").status_code == 200
        assert client.post("/predict", json={"customer_id": "1"}, headers=AUTH).json() == before


def test_not_ready_without_champions(tmp_path):
    with (
        pytest.MonkeyPatch.context() as mp,
        start_client(mp, service_env(tmp_path / "empty")) as client,
    ):
        assert client.get("/livez").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["error"]
        r = client.post("/predict", json={"customer_id": "1"}, headers=AUTH)
        assert r.status_code == 503 and r.json()["error"].startswith("service not ready")
        r = client.post("/admin/reload", json={}, headers=AUTH)
        assert r.status_code == 409 and "train" in r.json()["detail"]


def test_service_refuses_to_start_without_api_key(tmp_path):
    from nextbest.errors import ConfigurationError

    with pytest.MonkeyPatch.context() as mp:
        client = start_client(mp, {"NEXTBEST_HOME": str(tmp_path)})
        mp.delenv("NEXTBEST_API_KEY", raising=False)
        with pytest.raises(ConfigurationError, match="NEXTBEST_API_KEY is not set"):
            with client:
                pass


def test_no_auth_only_when_explicitly_allowed(trained_home):
    env = {
        "NEXTBEST_HOME": str(trained_home.home),
        "NEXTBEST_ALLOW_NO_AUTH": "1",
        "NEXTBEST_RELOAD_SECONDS": "0",
    }
    with pytest.MonkeyPatch.context() as mp:
        client = start_client(mp, env)
        mp.delenv("NEXTBEST_API_KEY", raising=False)
        mp.setenv("NEXTBEST_ALLOW_NO_AUTH", "1")
        with client:
            wait_ready(client)
            assert client.post("/predict", json={"customer_id": "1"}).status_code == 200


def test_cli_serve_refuses_without_api_key(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from nextbest.cli import app

    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NEXTBEST_API_KEY", raising=False)
    monkeypatch.delenv("NEXTBEST_ALLOW_NO_AUTH", raising=False)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2 and "NEXTBEST_API_KEY" in result.output


def test_contact_history_caps_and_cooldowns_match_batch(trained_home, tmp_path):
    import pandas as pd

    from nextbest import registry
    from nextbest.config import Paths
    from nextbest.data.snapshot import read_snapshot as load_snapshot
    from nextbest.scoring import score

    features, meta = load_snapshot(Paths(trained_home.home))
    as_of = pd.Timestamp(meta["as_of"])
    capped = [
        as_of - pd.Timedelta(days=d) for d in (1, 3, 5, 7, 9)
    ]  # 5 contacts in 30 days > cap of 4
    history = pd.DataFrame({"customer_id": "1", "offer_id": "XS-MEAT", "timestamp": capped})
    path = tmp_path / "contacts.csv"
    history.to_csv(path, index=False)
    registry.setup(Paths(trained_home.home))
    one = features[features["customer_id"] == "1"]
    expected = score(
        one, registry.load_models(), 365.0, meta["popularity"], history, as_of=as_of
    ).iloc[0]
    assert expected["action"] == "no_action"
    env = service_env(trained_home.home, NEXTBEST_CONTACT_HISTORY=str(path))
    with pytest.MonkeyPatch.context() as mp, start_client(mp, env) as client:
        wait_ready(client)
        got = client.post("/predict", json={"customer_id": "1"}, headers=AUTH).json()
    assert got["action"] == "no_action" and got["reasons"] == expected["reasons"]
    assert got["reasons"][0]["code"] == "CONTACT_CAP_REACHED"


def test_long_reload_answers_202_and_finishes_in_the_background(home_copy, monkeypatch):
    import nextbest.service

    with pytest.MonkeyPatch.context() as mp, start_client(mp, service_env(home_copy)) as client:
        wait_ready(client)
        version = new_champion(home_copy)
        monkeypatch.setattr(nextbest.service, "RELOAD_WAIT_SECONDS", 0.05)
        r = client.post("/admin/reload", json={}, headers=AUTH)
        assert r.status_code == 202 and r.json()["outcome"] == "in_progress"
        assert r.json()["model_versions"]["nextbest-churn"] == "1"  # still serving the old one
        assert churn_version_served_within(client, version, 120) == version


def test_a_reload_replaces_the_decision_process_and_shutdown_stops_it(home_copy):
    def deciders() -> set[int]:
        """The home's spawned children (not multiprocessing's resource tracker)."""
        out = set()
        for pid in processes_of(home_copy):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            out |= {pid} if b"spawn_main" in cmdline else set()
        return out

    def children(expected_old: set[int] = frozenset()) -> set[int]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = deciders()
            if len(now) == 1 and not now & expected_old:
                return now
            time.sleep(0.1)
        raise AssertionError(f"decision processes of the home: {deciders()}")

    with pytest.MonkeyPatch.context() as mp, start_client(mp, service_env(home_copy)) as client:
        wait_ready(client)
        first = children()
        version = new_champion(home_copy)
        r = client.post("/admin/reload", json={}, headers=AUTH)
        assert r.status_code == 200 and r.json()["outcome"] == "reloaded"
        second = children(expected_old=first)  # the old one stopped, one new one started
        # The new child serves the new champion's decisions: a purchase is re-decided by it.
        event = {"type": "purchase", "customer_id": "1", "amount": 5.0, "category": "MEAT"}
        event["timestamp"] = "2017-12-01T10:00:00Z"
        assert client.post("/events", json={"events": [event]}, headers=AUTH).status_code == 200
        d = client.post("/predict", json={"customer_id": "1"}, headers=AUTH).json()
        assert d["model_versions"]["nextbest-churn"] == version
        assert deciders() == second
    deadline = time.monotonic() + 30  # stopped with the service
    while deciders() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert deciders() == set()
