"""Several processes on one store: concurrent writers, a killed writer, a second reader.

Each test starts real child processes (``python -c``) on the same SQLite file
or PostgreSQL schema, as two service workers or two replicas would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from nextbest.events import open_store, validate_events

PRELUDE = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime, UTC
    from nextbest.events import open_store, validate_events

    def purchases(prefix, n, customer, amount=1.0):
        return [
            {"type": "purchase", "event_id": f"{prefix}{i}", "customer_id": customer,
             "timestamp": "2024-05-01T10:00:00Z", "amount": amount}
            for i in range(n)
        ]

    def append(store, events):
        checked = validate_events(events, now=datetime(2024, 6, 1, tzinfo=UTC))
        assert checked.ok, checked.rejects
        return store.append(checked.accepted)
    """
)

WRITER = PRELUDE + textwrap.dedent(
    """
    url, who, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = open_store(url)
    for b in range(batches):
        own = purchases(f"{who}-{b}-", 100, customer=f"{who}")
        shared = purchases(f"shared-{b}-", 10, customer="shared", amount=2.0)
        result = append(store, own + shared)
        assert result.ok and result.new + result.duplicates == 110, result
    print("done", flush=True)
    """
)

KILLED = PRELUDE + textwrap.dedent(
    """
    store = open_store(sys.argv[1])
    result = append(store, purchases("acked-", 500, customer="00042"))
    print("ok", result.head, flush=True)
    time.sleep(120)
    """
)

READER = PRELUDE + textwrap.dedent(
    """
    store = open_store(sys.argv[1])
    cursor = store.head()
    print("ready", flush=True)
    assert store.wait(cursor, timeout=20.0)
    seen = time.time()
    changes = store.since(cursor)
    print("seen", seen, changes.events[0].customer_id, changes.events[0].consent_profiling,
          flush=True)
    """
)


def spawn(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


@pytest.fixture(params=["sqlite", "sqlite-normal", "postgres"])
def any_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    if request.param == "sqlite-normal":
        return f"sqlite:///{tmp_path / 'events.db'}?synchronous=normal"
    return request.getfixturevalue("postgres_server").new_url()


def test_two_processes_appending_at_once_lose_and_repeat_nothing(store_url):
    open_store(store_url).close()  # create the tables before the race
    batches = 15
    writers = [spawn(WRITER, store_url, who, str(batches)) for who in ("a", "b")]
    for proc in writers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "done", err
    store = open_store(store_url)
    try:
        events, cursor = [], 0
        while True:
            page = store.since(cursor, limit=500)
            events += page.events
            cursor = page.cursor
            if not page.more:
                break
        ids = [e.event_id for e in events]
        assert len(ids) == len(set(ids)) == 2 * batches * 100 + batches * 10
        seqs = [e.seq for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert {e.customer_id for e in events} == {"a", "b", "shared"}
    finally:
        store.close()


def test_an_acknowledged_append_survives_kill_9(any_url):
    open_store(any_url).close()
    child = spawn(KILLED, any_url)
    try:
        line = child.stdout.readline().split()
        assert line[:1] == ["ok"], child.stderr.read()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    store = open_store(any_url)
    try:
        kept = store.for_customer("00042")
        assert len(kept) == 500 and store.head() == int(line[1])
        assert {e.event_id for e in kept} == {f"acked-{i}" for i in range(500)}
    finally:
        store.close()


def test_another_process_sees_an_objection_within_a_second(store_url):
    store = open_store(store_url)
    reader = spawn(READER, store_url)
    try:
        assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
        sent = time.time()
        objection = {
            "type": "consent",
            "customer_id": "00042",
            "at": "2024-05-01T00:00:00Z",
            "consent_profiling": False,
        }
        store.append(validate_events([objection]).accepted)
        out, err = reader.communicate(timeout=30)
        word, seen, customer, granted = out.split()
        assert word == "seen" and customer == "00042" and granted == "False", err
        assert float(seen) - sent < 1.0
    finally:
        if reader.poll() is None:
            reader.kill()
        store.close()
