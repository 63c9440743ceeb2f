"""PostgreSQL only: a role without CREATE, and waiting when a notification is lost."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg

from nextbest.events import open_store, validate_events

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def objection(customer):
    event = {"type": "consent", "customer_id": customer, "at": "2024-05-01T00:00:00Z"}
    return validate_events([event | {"consent_profiling": False}], now=NOW).accepted


def test_a_role_without_create_can_use_tables_made_by_the_owner(postgres_server):
    owner_url = postgres_server.new_url()
    open_store(owner_url).close()
    schema = owner_url.rsplit("%3D", 1)[1]
    role = f"app_{schema}"
    with psycopg.connect(postgres_server.base, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}")
    app_url = owner_url.replace("postgres@", f"{role}@", 1)
    store = open_store(app_url)
    try:
        assert store.append(objection("1")).new == 1
        assert store.consent_state()["granted"].tolist() == [False]
        assert store.forget("1").removed == {"consent": 1}
        assert store.compact(store.head() + 1)["erased"] == 1
    finally:
        store.close()


def test_wait_still_sees_an_event_when_the_notification_is_lost(postgres_server):
    url = postgres_server.new_url()
    writer, reader = open_store(url), open_store(url)
    writer._notify = lambda cur, head: None  # as behind a pooler that drops LISTEN
    try:
        cursor = reader.head()
        timer = threading.Timer(0.1, lambda: writer.append(objection("2")))
        start = time.monotonic()
        timer.start()
        assert reader.wait(cursor, timeout=5.0)
        assert time.monotonic() - start < 1.0
        timer.join()
    finally:
        writer.close()
        reader.close()
