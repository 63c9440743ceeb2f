"""The SQLite backend: URLs, WAL settings, the cost of an empty poll, erasure down to the bytes."""

from __future__ import annotations

import sqlite3
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nextbest.errors import ConfigError
from nextbest.events import default_url, open_store, validate_events
from nextbest.events.sqlite import SqliteEventStore

NOW = datetime(2024, 6, 1, tzinfo=UTC)
SECRET = "CUSTOMER-7f3a9c-SECRET"


def purchases(customer, n, prefix):
    return validate_events(
        [
            {
                "type": "purchase",
                "event_id": f"{prefix}{i}",
                "customer_id": customer,
                "timestamp": "2024-05-01T10:00:00Z",
                "amount": 10.0,
                "category": "PRODUCE",
            }
            for i in range(n)
        ],
        now=NOW,
    ).accepted


def test_default_store_is_events_db_under_nextbest_home(nb_home, monkeypatch):
    monkeypatch.delenv("NEXTBEST_EVENTS_URL", raising=False)
    assert default_url() == f"sqlite:///{nb_home.resolve() / 'events.db'}"
    store = open_store()
    try:
        assert isinstance(store, SqliteEventStore)
        assert store.path == nb_home.resolve() / "events.db" and store.path.exists()
    finally:
        store.close()


def test_events_url_from_the_environment(nb_home, monkeypatch, tmp_path):
    monkeypatch.setenv("NEXTBEST_EVENTS_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    store = open_store()
    try:
        assert store.path == tmp_path / "elsewhere.db"
    finally:
        store.close()


def test_url_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///rel/events.db")
    assert relative.path == Path("rel/events.db") and (tmp_path / "rel/events.db").exists()
    relative.close()
    plain = open_store(str(tmp_path / "plain.db"))
    assert plain.path == tmp_path / "plain.db"
    plain.close()
    normal = open_store(f"sqlite:///{tmp_path}/n.db?synchronous=normal")
    assert normal._conn().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    normal.close()
    with pytest.raises(ConfigError, match="unknown scheme 'mysql'"):
        open_store("mysql://localhost/db")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['cache'\]"):
        open_store(f"sqlite:///{tmp_path}/x.db?cache=1")
    with pytest.raises(ConfigError, match="synchronous='off'"):
        open_store(f"sqlite:///{tmp_path}/x.db?synchronous=off")


def test_wal_mode_full_sync_busy_timeout_and_secure_delete(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    try:
        conn = store._conn()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
        assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    finally:
        store.close()


def test_an_empty_poll_costs_well_under_a_millisecond(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    try:
        for k in range(20):
            store.append(purchases(f"c{k}", 500, f"b{k}-"))
        cursor = store.head()
        timings = []
        for _ in range(2000):
            start = time.perf_counter()
            store.since(cursor)
            timings.append(time.perf_counter() - start)
        assert statistics.median(timings) < 0.2e-3, statistics.median(timings)
    finally:
        store.close()


def test_forget_leaves_none_of_the_ids_bytes_in_the_files(tmp_path):
    path = tmp_path / "events.db"
    store = open_store(f"sqlite:///{path}")
    try:
        for k in range(30):  # enough rows for interior index pages and several WAL frames
            store.append(purchases(f"other-{k:03d}", 200, f"o{k}-"))
            store.append(purchases(SECRET, 5, f"s{k}-"))
        consent = {"type": "consent", "customer_id": SECRET, "at": "2024-05-01"}
        store.append(validate_events([consent | {"consent_profiling": False}], now=NOW).accepted)
        files = [path, Path(f"{path}-wal")]
        assert any(SECRET.encode() in f.read_bytes() for f in files if f.exists())

        result = store.forget(SECRET)
        assert result.removed == {"purchase": 150, "consent": 1} and result.scrubbed
        for f in [path, Path(f"{path}-wal"), Path(f"{path}-shm")]:
            if f.exists():
                assert SECRET.encode() not in f.read_bytes(), f
        assert len(store.for_customer("other-007")) == 200
    finally:
        store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
