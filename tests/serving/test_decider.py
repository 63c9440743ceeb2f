"""The decision process re-decides exactly as the worker would, and a worker never depends on it."""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest

from nextbest.events import open_store
from nextbest.events.schema import Event, to_us
from nextbest.serving.decider import DecisionProcess
from nextbest.serving.overlay import Overlay
from nextbest.serving.rebuild import customer_decisions
from nextbest.serving.state import load_state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def settings(trained_settings):
    return trained_settings


@pytest.fixture(scope="module")
def state(settings):
    return load_state(settings)


@pytest.fixture(scope="module")
def decider(settings):
    process = DecisionProcess(settings)
    assert process.wait_ready(), "the decision process did not load"
    yield process
    process.close()


def events_for(state, trained_home) -> dict[str, list[Event]]:
    """A purchase (in the app), a sent contact and its response, an objection and a customer
    known from events alone."""
    ds = trained_home.dataset
    cids = sorted(set(ds.customers["customer_id"]) - set(trained_home.opted_out))
    when = to_us((state.as_of + pd.Timedelta(days=2, hours=9)).to_pydatetime())
    head = state.events_head
    offer = state.bundle.catalog.offers[0].offer_id
    return {
        cids[3]: [
            Event(
                "purchase",
                "p1",
                cids[3],
                when,
                amount=40.0,
                category="MEAT",
                channel="app",
                seq=head + 1,
            )
        ],
        cids[4]: [
            Event(
                "contact",
                "c1",
                cids[4],
                when,
                offer_id=offer,
                group="treatment",
                channel="email",
                seq=head + 2,
            ),
            Event("response", "r1", cids[4], when + 1, offer_id=offer, converted=1, seq=head + 4),
        ],
        cids[5]: [Event("consent", "o1", cids[5], when, consent_profiling=False, seq=head + 3)],
        "new-from-events": [
            Event("purchase", "p2", "new-from-events", when, amount=9.0, category="DAIRY", seq=9)
        ],
    }


def test_the_child_decides_what_the_worker_would(decider, state, trained_home):
    events = events_for(state, trained_home)
    assert decider.usable_for(state.fingerprint)
    assert decider.pid is not None and decider.pid != os.getpid()
    got = decider.decide(events)
    expected = customer_decisions(state, events)
    assert got == expected
    objected = got[list(events)[2]]
    assert objected["action"] == "non_personalised" and objected["churn_probability"] is None
    assert got["new-from-events"] is not None


def test_a_child_of_other_models_is_not_used(decider, state):
    other = type(state.fingerprint)(state.fingerprint.versions, ())
    assert not decider.usable_for(other)


def test_a_dead_child_leaves_the_worker_deciding_in_process(
    settings, state, trained_home, tmp_path
):
    process = DecisionProcess(settings)
    assert process.wait_ready()
    store = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    overlay = Overlay(state, store)
    overlay.decider = process
    events = events_for(state, trained_home)
    os.kill(process.pid, signal.SIGKILL)
    process._process.join(5)
    assert overlay.decide_from(events) == customer_decisions(state, events)
    assert not process.usable_for(state.fingerprint)  # not asked again for this state
    overlay.close()
    store.close()


def test_closing_stops_the_child(settings):
    process = DecisionProcess(settings)
    process.close()
    process._process.join(5)
    assert not process._process.is_alive()
    assert process.decide({}) is None
