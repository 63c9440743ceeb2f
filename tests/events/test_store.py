"""The event store, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from nextbest.data.schema import validate_transactions
from nextbest.events import BatchTooLarge, EventError, EventStore, open_store, validate_events
from nextbest.events.ingest import ingest_events, ingest_file

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def batch(events):
    checked = validate_events(events, now=NOW)
    assert checked.ok, [r.message() for r in checked.rejects]
    return checked.accepted


def purchases(n, customer="00042", prefix="p", day=1, **extra):
    return [
        {
            "type": "purchase",
            "event_id": f"{prefix}{i}",
            "customer_id": customer,
            "timestamp": f"2024-05-{day:02d}T10:00:{i % 60:02d}Z",
            "amount": 10.0 + i,
            "category": "PRODUCE",
        }
        | extra
        for i in range(n)
    ]


def consent(customer, at, event_id, **value):
    return {"type": "consent", "customer_id": customer, "at": at, "event_id": event_id} | value


def test_store_satisfies_the_protocol(store):
    assert isinstance(store, EventStore)
    assert store.head() == 0 and store.since(0).events == []


def test_append_returns_seqs_and_reads_back_the_same_events(store):
    result = store.append(batch(purchases(3)))
    assert result.ok and result.new == 3 and result.duplicates == 0
    assert list(result.seqs) == sorted(result.seqs) and len(set(result.seqs)) == 3
    assert result.head == store.head() == result.seqs[-1]
    back = store.since(0).events
    assert [e.event_id for e in back] == ["p0", "p1", "p2"]
    assert back == batch(purchases(3)).events()  # equal content (seq is not compared)
    assert back[0].customer_id == "00042" and isinstance(back[0].customer_id, str)
    assert [e.seq for e in back] == list(result.seqs)


def test_repeated_event_id_with_same_content_is_a_no_op(store):
    first = store.append(batch(purchases(3)))
    again = store.append(batch(purchases(3) + purchases(1, prefix="q")))
    assert again.new == 1 and again.duplicates == 3 and again.ok
    assert list(again.seqs[:3]) == list(first.seqs)
    assert len(store.since(0).events) == 4


def test_repeated_event_id_with_other_content_is_rejected_with_reason(store):
    store.append(batch(purchases(2)))
    changed = purchases(2)
    changed[1]["amount"] = 99.0
    result = store.append(batch(changed + purchases(1, prefix="q")))
    assert [(r.index, r.field, r.value) for r in result.rejects] == [(1, "event_id", "p1")]
    assert "already stored with different content" in result.rejects[0].reason
    assert result.new == 1 and result.duplicates == 1 and result.seqs[1] == -1
    assert [e.amount for e in store.for_customer("00042")] == [10.0, 11.0, 10.0]


def test_all_or_nothing_stores_nothing_when_one_event_is_rejected(store):
    store.append(batch(purchases(1)))
    changed = purchases(1)
    changed[0]["amount"] = 5.0
    result = store.append(batch(purchases(2, prefix="q") + changed), all_or_nothing=True)
    assert result.new == 0 and (result.seqs == -1).all() and len(result.rejects) == 1
    assert result.rejects[0].index == 2
    assert [e.event_id for e in store.since(0).events] == ["p0"]


def test_repeats_within_one_batch(store):
    same = purchases(1) * 2
    other = purchases(1)
    other[0]["amount"] = 1.0
    result = store.append(batch(same + other))
    assert result.new == 1 and result.duplicates == 1
    assert [(r.index, r.field) for r in result.rejects] == [(2, "event_id")]
    assert "repeated in this batch (first at 0)" in result.rejects[0].reason


def test_consent_newest_wins_by_event_time_then_by_arrival(store):
    store.append(
        batch(
            [
                consent("1", "2024-05-02T00:00:00Z", "a", consent_profiling=False),
                # arrives later but happened earlier: does not undo the objection
                consent("1", "2024-05-01T00:00:00Z", "b", consent_profiling=True),
                consent("2", "2024-05-01T00:00:00Z", "c", consent_profiling=False),
                # same time: the later arrival wins
                consent("2", "2024-05-01T00:00:00Z", "d", consent_profiling=True),
            ]
        )
    )
    state = store.consent_state()
    profiling = state[state["channel"].isna()].set_index("customer_id")
    assert profiling.loc["1", "granted"] == np.False_ and profiling.loc["1", "event_id"] == "a"
    assert profiling.loc["2", "granted"] == np.True_ and profiling.loc["2", "event_id"] == "d"
    store.append(batch([consent("1", "2024-05-03T00:00:00Z", "e", consent_profiling=True)]))
    again = store.consent_state(["1"])
    assert again[["customer_id", "granted", "event_id"]].values.tolist() == [["1", True, "e"]]


def test_consent_per_channel_is_independent_of_profiling_and_other_channels(store):
    store.append(
        batch(
            [
                consent("1", "2024-05-01T00:00:00Z", "a", channel="email", opt_in=True),
                consent("1", "2024-05-02T00:00:00Z", "b", channel="sms", opt_in=True),
                consent("1", "2024-05-03T00:00:00Z", "c", channel="email", opt_in=False),
                consent("1", "2024-05-04T00:00:00Z", "d", consent_profiling=False),
                consent("9", "2024-05-04T00:00:00Z", "e", channel="email", opt_in=True),
            ]
        )
    )
    state = store.consent_state(["1"])
    assert list(state.columns) == ["customer_id", "channel", "granted", "at", "seq", "event_id"]
    got = {(c if isinstance(c, str) else None): g for c, g in zip(state.channel, state.granted)}
    assert got == {None: False, "email": False, "sms": True}
    assert state["at"].dtype == "datetime64[ns]"
    assert store.consent_state([]).empty


def test_purchases_frame_is_a_transactions_frame(store):
    store.append(batch(purchases(2, day=1) + purchases(2, prefix="q", day=3, customer="007")))
    frame = store.purchases()
    assert list(frame.columns[:7]) == [
        "customer_id",
        "timestamp",
        "amount",
        "order_id",
        "category",
        "channel",
        "quantity",
    ]
    assert frame["timestamp"].dtype == "datetime64[ns]" and frame["amount"].dtype == float
    assert frame["customer_id"].tolist() == ["00042", "00042", "007", "007"]
    clean = validate_transactions(frame)
    assert clean.report.n_valid == 4, clean.rejects
    assert store.purchases(since="2024-05-02")["customer_id"].tolist() == ["007", "007"]
    after = int(frame["seq"].iloc[1])
    assert store.purchases(after_seq=after)["event_id"].tolist() == ["q0", "q1"]


def test_contacts_frame_is_a_campaign_log_with_outcomes_from_responses(store):
    def contact(cid, offer, at, group="treatment", eid=None, **extra):
        return {
            "type": "contact",
            "customer_id": cid,
            "offer_id": offer,
            "contacted_at": at,
            "group": group,
            "event_id": eid,
        } | extra

    def response(cid, offer, at, converted, eid, revenue=None):
        event = {"type": "response", "customer_id": cid, "offer_id": offer, "at": at}
        event |= {"converted": converted, "event_id": eid}
        return event | ({"revenue": revenue} if revenue is not None else {})

    store.append(
        batch(
            [
                contact("1", "MENS", "2024-05-01", eid="c1", propensity=1 / 3, channel="email"),
                contact("2", "", "2024-05-01", group="control", eid="c2"),
                contact("1", "MENS", "2024-05-10", eid="c3"),
                response("1", "MENS", "2024-05-03", 1, "r1", revenue=20.0),
                response("1", "MENS", "2024-05-04", 1, "r2", revenue=5.0),
                response("2", "", "2024-05-05", 0, "r3"),
                response("3", "MENS", "2024-05-05", 1, "r4"),  # no contact: left out
            ]
        )
    )
    log = store.contacts().set_index("event_id")
    assert log.loc["c1", "converted"] == 1 and log.loc["c1", "revenue"] == 25.0
    assert log.loc["c1", "propensity"] == pytest.approx(1 / 3)
    assert log.loc["c2", "offer_id"] == "" and log.loc["c2", "converted"] == 0
    assert pd.isna(log.loc["c3", "converted"]) and np.isnan(log.loc["c3", "revenue"])
    assert log.loc["c3", "group"] == "treatment"
    assert len(store.responses()) == 4


def test_change_feed_across_two_handles(store, store_url):
    other = open_store(store_url)
    try:
        cursor = other.head()
        assert other.since(cursor).events == []
        store.append(batch(purchases(5)))
        page = other.since(cursor, limit=3)
        assert [e.event_id for e in page.events] == ["p0", "p1", "p2"] and page.more
        rest = other.since(page.cursor, limit=3)
        assert [e.event_id for e in rest.events] == ["p3", "p4"] and not rest.more
        assert other.since(rest.cursor).events == [] and rest.cursor == store.head()
        assert other.wait(rest.cursor, timeout=0.05) is False

        def later():
            time.sleep(0.2)
            store.append(batch(purchases(1, prefix="late")))

        writer = threading.Thread(target=later)
        start = time.monotonic()
        writer.start()
        assert other.wait(rest.cursor, timeout=5.0)
        waited = time.monotonic() - start
        writer.join()
        assert waited < 1.0
        assert [e.event_id for e in other.since(rest.cursor).events] == ["late0"]
    finally:
        other.close()


def test_export_parquet_and_jsonl_round_trip_through_ingest(store, tmp_path):
    events = purchases(3) + [
        consent("1", "2024-05-01T00:00:00Z", "s1", channel="email", opt_in=False),
        {"type": "response", "customer_id": "1", "at": "2024-05-02", "converted": 0}
        | {"event_id": "r"},
        {
            "type": "contact",
            "customer_id": "1",
            "contacted_at": "2024-05-01T09:30:00.250Z",
            "group": "explore",
            "propensity": 0.2,
            "event_id": "c",
        },
    ]
    store.append(batch(events))
    original = store.since(0).events
    for name in ("all.parquet", "all.jsonl"):
        assert store.export(tmp_path / name) == len(events)
        copy = open_store(f"sqlite:///{tmp_path / (name + '.db')}")
        result = ingest_file(tmp_path / name, copy, now=NOW)
        assert result.rejected == 0 and result.new == len(events)
        assert result.ignored_columns == ["received_at", "seq"]
        assert copy.since(0).events == original
        assert [e.event_id for e in copy.since(0).events] == [e.event_id for e in original]
        copy.close()
    with pytest.raises(ValueError, match="export to .parquet or .jsonl"):
        store.export(tmp_path / "all.csv")
    first = json.loads((tmp_path / "all.jsonl").read_text().splitlines()[0])
    assert first["customer_id"] == "00042" and first["timestamp"] == "2024-05-01T10:00:00Z"


def test_forget_removes_the_customer_and_rejects_later_appends(store):
    store.append(batch(purchases(3) + purchases(2, customer="7", prefix="q")))
    store.append(batch([consent("00042", "2024-05-01T00:00:00Z", "s", consent_profiling=False)]))
    cursor = store.head()
    result = store.forget("00042")
    assert result.removed == {"purchase": 3, "consent": 1} and result.tombstoned
    assert store.for_customer("00042") == [] and store.is_erased("00042")
    assert not store.is_erased("7") and len(store.for_customer("7")) == 2
    assert store.consent_state(["00042"]).empty
    change = store.since(cursor)
    assert change.events == [] and change.erased == [store.customer_hash("00042")]
    assert "00042" not in store.customer_hash("00042")

    again = store.append(batch(purchases(2, prefix="new") + purchases(1, customer="7", prefix="z")))
    assert again.new == 1 and [(r.index, r.field, r.value) for r in again.rejects] == [
        (0, "customer_id", ""),
        (1, "customer_id", ""),
    ]
    assert again.rejects[0].reason.startswith("erased")
    assert store.forget("00042").tombstoned is False


def test_tombstones_hold_across_handles(store, store_url):
    store.append(batch(purchases(1)))
    other = open_store(store_url)
    try:
        assert other.append(batch(purchases(1, prefix="x"))).ok  # caches "no tombstones"
        store.forget("00042")
        assert other.customer_hash("00042") == store.customer_hash("00042")
        late = other.append(batch(purchases(1, prefix="y")))
        assert late.new == 0 and late.rejects[0].reason.startswith("erased")
    finally:
        other.close()


def test_compact_deletes_folded_events_but_keeps_the_newest_consent(store):
    store.append(
        batch(
            purchases(3)
            + [
                consent("1", "2024-05-02T00:00:00Z", "s-new", consent_profiling=False),
                consent("1", "2024-05-01T00:00:00Z", "s-old", consent_profiling=True),
                consent("1", "2024-05-01T00:00:00Z", "m-old", channel="sms", opt_in=True),
            ]
        )
    )
    before = store.head() + 1
    store.append(batch(purchases(1, prefix="after")))
    before_state = store.consent_state()
    counts = store.compact(before)
    assert counts["purchase"] == 3 and counts["consent"] == 1
    left = [e.event_id for e in store.since(0).events]
    assert left == ["s-new", "m-old", "after0"]
    pd.testing.assert_frame_equal(store.consent_state(), before_state)


def test_a_request_is_all_or_nothing(store):
    """ingest_events: what POST /events calls; 413 for too many, 422 naming every problem."""
    ok = ingest_events(purchases(2), store, now=NOW)
    assert ok.new == 2 and ingest_events(purchases(2), store, now=NOW).duplicates == 2
    bad = purchases(3, prefix="q")
    del bad[2]["amount"]
    with pytest.raises(EventError, match=r"events\[2\]\.amount: required") as err:
        ingest_events(bad, store, now=NOW)
    assert err.value.http_status == 422
    changed = purchases(1) + purchases(1, prefix="r")
    changed[0]["amount"] = 1.0
    with pytest.raises(EventError, match=r"events\[0\]\.event_id: already stored"):
        ingest_events(changed, store, now=NOW)
    store.forget("gone")
    with pytest.raises(EventError, match=r"events\[1\]\.customer_id: erased"):
        ingest_events(purchases(1, prefix="s") + purchases(1, customer="gone"), store, now=NOW)
    with pytest.raises(BatchTooLarge):
        ingest_events(purchases(1001, prefix="t"), store, now=NOW)
    assert [e.event_id for e in store.since(0).events] == ["p0", "p1"]


def test_a_slow_writer_is_not_overtaken_so_no_reader_skips_it(store, store_url):
    """Sequence numbers become visible in order: a batch that took its numbers first commits
    first, so a reader moving its cursor past a later batch cannot miss it."""
    slow = open_store(store_url)
    inserting = threading.Event()
    original = slow._insert

    def slow_insert(cur, names, rows, n):
        out = original(cur, names, rows, n)
        inserting.set()
        time.sleep(0.3)  # numbers drawn, not yet committed
        return out

    slow._insert = slow_insert
    writer = threading.Thread(target=lambda: slow.append(batch(purchases(1, prefix="slow"))))
    try:
        writer.start()
        assert inserting.wait(10)
        assert store.since(0).events == []
        fast = store.append(batch(purchases(1, prefix="fast")))  # waits for the slow commit
        seen = store.since(0).events
        assert [e.event_id for e in seen] == ["slow0", "fast0"]
        assert seen[0].seq < seen[1].seq == fast.seqs[0]
    finally:
        writer.join()
        slow.close()
