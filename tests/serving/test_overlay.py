"""The overlay of changed customers: the change feed, the cache, erasure, the memory bound."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from nextbest.events import open_store, validate_events
from nextbest.serving.overlay import DecisionBatcher, Overlay
from tests.events.conftest import postgres_server  # noqa: F401 (a real server, as the store tests)


class CountingOverlay(Overlay):
    """Decides from the number of events, counting how often it had to."""

    calls = 0

    def decide_from(self, events_by_customer):
        self.calls += 1
        return {c: {"customer_id": c, "n": len(e)} for c, e in events_by_customer.items()}


def fake_state(head: int = 0):
    return SimpleNamespace(events_head=head, bundle=SimpleNamespace(churn=None, nbo=None))


def post(store, *events):
    checked = validate_events(list(events))
    assert checked.ok, checked.rejects
    return store.append(checked.accepted)


def purchase(cid: str) -> dict:
    return {"type": "purchase", "customer_id": cid, "timestamp": "2018-01-01", "amount": 1.0}


def test_poll_marks_changed_customers_and_the_cache_follows_their_events(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    post(store, purchase("a"))
    head = store.head()
    post(store, purchase("b"))
    post(store, {"type": "response", "customer_id": "c", "at": "2018-01-02", "converted": 1})
    overlay = CountingOverlay(fake_state(head), store, cache_size=10)
    assert overlay.poll() == 2
    assert overlay.is_changed("b") and not overlay.is_changed("a")  # "a" is in the snapshot
    assert overlay.is_changed("c")  # a response can change the channel preference
    assert overlay.cached("b") == (False, None)
    assert overlay.decide("b") == {"customer_id": "b", "n": 1}
    assert overlay.cached("b") == (True, {"customer_id": "b", "n": 1})
    assert overlay.poll() == 0 and overlay.calls == 1
    post(
        store,
        {"type": "consent", "customer_id": "b", "at": "2018-01-03", "consent_profiling": False},
    )
    overlay.poll()
    assert overlay.cached("b") == (False, None)  # the next answer is decided again
    assert overlay.decide("b")["n"] == 2 and overlay.calls == 2
    store.close()


def test_erased_customers_are_dropped_and_recognised(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    post(store, purchase("x"), purchase("y"))
    overlay = CountingOverlay(fake_state(), store)
    overlay.poll()
    overlay.decide("x")
    store.forget("x")
    overlay.poll()
    assert overlay.is_erased("x") and not overlay.is_erased("y")
    assert not overlay.is_changed("x") and overlay.cached("x") == (False, None)
    assert overlay.stats()["erased"] == 1 and overlay.stats()["changed"] == 1
    store.close()


def test_cache_is_bounded(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    post(store, *[purchase(f"c{i}") for i in range(20)])
    overlay = CountingOverlay(fake_state(), store, cache_size=5)
    overlay.poll()
    for i in range(20):
        overlay.decide(f"c{i}")
    assert overlay.stats()["cached"] == 5 and overlay.stats()["changed"] == 20
    assert overlay.cached("c19")[0] and not overlay.cached("c0")[0]
    store.close()


def test_a_second_replica_on_postgresql_sees_an_objection_at_its_next_poll(postgres_server):  # noqa: F811
    url = postgres_server.new_url()
    writer, reader = open_store(url), open_store(url)  # two hosts' handles on one database
    replica = CountingOverlay(fake_state(), reader)
    replica.poll()
    started = time.perf_counter()
    post(
        writer,
        {"type": "consent", "customer_id": "p1", "at": "2018-01-03", "consent_profiling": False},
    )
    replica.poll()  # the next request of the other replica
    assert replica.is_changed("p1") and time.perf_counter() - started < 1.0
    assert replica.decide("p1") == {"customer_id": "p1", "n": 1}
    writer.close()
    reader.close()


class SlowOverlay(CountingOverlay):
    def decide_from(self, events_by_customer):
        if not self.calls:
            time.sleep(0.3)  # the others arrive while the first is being decided
        return super().decide_from(events_by_customer)


def test_concurrent_re_decisions_are_made_together(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    post(store, *[purchase(f"b{i}") for i in range(10)])
    overlay = SlowOverlay(fake_state(), store)
    overlay.poll()
    batcher = DecisionBatcher()

    async def ask_all():
        return await asyncio.gather(*(batcher.decide(overlay, f"b{i}") for i in range(10)))

    rows = asyncio.run(ask_all())
    assert [r["customer_id"] for r in rows] == [f"b{i}" for i in range(10)]
    assert overlay.calls <= 2  # one for the first request, one for all who waited
    store.close()
