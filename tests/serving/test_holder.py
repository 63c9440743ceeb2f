"""StateHolder (atomic swap, failed builds keep the old state, watcher) and the audit log, with
fakes."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nextbest.config import Paths
from nextbest.errors import NotReady, ReloadFailed
from nextbest.serving.audit import AuditLog
from nextbest.serving.holder import StateHolder
from nextbest.serving.settings import ServiceSettings


@dataclass(frozen=True)
class FakeState:
    fingerprint: str
    n: int

    @property
    def versions(self):
        return {"m": self.fingerprint}


def settings(tmp_path: Path, reload_seconds: float = 0.0) -> ServiceSettings:
    return ServiceSettings(
        paths=Paths(tmp_path), api_keys=("k",), horizon_days=365.0, reload_seconds=reload_seconds
    )


class Registry:
    """What a build would load now; builds can be made to fail or to be slow."""

    def __init__(self) -> None:
        self.version = "1"
        self.fail = False
        self.delay = 0.0
        self.builds = 0

    def build(self, _settings):
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise LookupError("no champion")
        self.builds += 1
        return FakeState(self.version, self.builds)

    def fingerprint(self, _settings):
        return self.version


def test_not_ready_until_first_build_then_unchanged_then_reloaded(tmp_path):
    reg, outcomes = Registry(), []
    holder = StateHolder(settings(tmp_path), reg.build, reg.fingerprint, outcomes.append)
    assert not holder.ready
    with pytest.raises(NotReady):
        holder.current()
    assert holder.reload()[0] == "reloaded" and holder.current().fingerprint == "1"
    assert holder.reload()[0] == "unchanged" and reg.builds == 1
    assert holder.reload(force=True)[0] == "reloaded" and reg.builds == 2
    reg.version = "2"
    outcome, state = holder.reload()
    assert outcome == "reloaded" and state is holder.current() and state.fingerprint == "2"
    assert outcomes == ["reloaded", "unchanged", "reloaded", "reloaded"]


def test_failed_build_keeps_serving_the_previous_state(tmp_path):
    reg, outcomes = Registry(), []
    holder = StateHolder(settings(tmp_path), reg.build, reg.fingerprint, outcomes.append)
    holder.reload()
    before = holder.current()
    reg.version, reg.fail = "2", True
    with pytest.raises(ReloadFailed) as err:
        holder.reload()
    assert err.value.status == 409 and "no champion" in err.value.detail
    assert holder.current() is before and holder.last_error
    assert outcomes[-1] == "failed"


def test_readers_never_see_a_half_built_state(tmp_path):
    reg = Registry()
    holder = StateHolder(settings(tmp_path), reg.build, reg.fingerprint)
    holder.reload()
    reg.version, reg.delay = "2", 0.3
    seen = []
    deadline = time.monotonic() + 10

    def read():  # until the new state shows up (bounded in time)
        while time.monotonic() < deadline:
            seen.append(holder.current().fingerprint)
            if seen[-1] == "2":
                return

    reader = threading.Thread(target=read)
    reader.start()
    holder.reload()
    reader.join(10)
    assert set(seen) <= {"1", "2"} and seen[0] == "1" and seen[-1] == "2"


def test_watcher_loads_first_state_then_follows_the_registry(tmp_path):
    reg = Registry()
    reg.fail = True
    holder = StateHolder(settings(tmp_path, reload_seconds=0.05), reg.build, reg.fingerprint)
    holder.start()
    try:
        time.sleep(0.1)
        assert not holder.ready  # no champion yet: keeps trying
        reg.fail = False
        deadline = time.monotonic() + 15
        while not holder.ready and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.current().fingerprint == "1"
        reg.version = "2"
        deadline = time.monotonic() + 5
        while holder.current().fingerprint != "2" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert holder.current().fingerprint == "2"
    finally:
        holder.stop()


def test_reload_marker_is_touched_for_other_workers(tmp_path):
    holder = StateHolder(settings(tmp_path), Registry().build, Registry().fingerprint)
    holder.request_reload_everywhere()
    assert (tmp_path / "serving" / "reload-requested").exists()


def decision(cid: str, consent: bool) -> dict:
    return {
        "customer_id": cid,
        "p_alive": 0.9 if consent else None,
        "expected_purchases": 3.0 if consent else None,
        "expected_spend": 10.0 if consent else None,
        "predicted_clv": 30.0 if consent else None,
        "churn_probability": 0.2 if consent else None,
        "action": "cross_sell" if consent else "non_personalised",
        "action_offer_id": "XS-A" if consent else "NEWSLETTER",
        "offers": (
            [{"offer_id": "XS-A", "category": "A", "p_convert": 0.3, "expected_value": 1.0}]
            if consent
            else []
        ),
        "reasons": [],
        "model_versions": {"nextbest-clv": "1"},
        "consent_profiling": consent,
        "as_of": "2018-01-02",
        "horizon_days": 365.0,
    }


def test_audit_log_one_line_per_decision_and_no_scores_for_opted_out(tmp_path):
    log = AuditLog(tmp_path / "audit")
    log.write([decision("a", True), decision("b", False)], "req-1", "predict_batch")
    log.write([decision("c", True)], "req-2", "predict")
    log.close()
    files = list((tmp_path / "audit").glob("decisions-*.jsonl"))
    assert len(files) == 1
    lines = [json.loads(x) for x in files[0].read_text().splitlines()]
    assert [x["customer_id"] for x in lines] == ["a", "b", "c"]
    assert [x["request_id"] for x in lines] == ["req-1", "req-1", "req-2"]
    a, b = lines[0], lines[1]
    assert a["scores"]["predicted_clv"] == 30.0 and a["offers"] == ["XS-A"] and a["model_versions"]
    assert (
        "scores" not in b and b["action"] == "non_personalised" and b["consent_profiling"] is False
    )
    assert {
        "time",
        "request_id",
        "endpoint",
        "customer_id",
        "action",
        "offers",
        "model_versions",
    } <= set(b)
    assert a["time"].endswith("Z")


def test_audit_write_failure_is_counted_not_raised(tmp_path):
    blocker = tmp_path / "audit"
    blocker.write_text("a file where the directory should be")
    failures = []
    AuditLog(blocker, on_error=lambda: failures.append(1)).write(
        [decision("a", True)], "r", "predict"
    )
    assert failures == [1]
