"""The shared event store for several replicas: PostgreSQL through psycopg 3.

* **Writers** serialise on a transaction-level advisory lock
  (:data:`LOCK_KEY`), taken before a batch draws its sequence numbers and
  held until it commits. Sequence numbers therefore become visible in
  order, and a replica polling ``seq > cursor`` never skips an event that
  commits late (which a bare identity column would allow).
* **Bulk insert**: ``COPY`` into a temporary staging table, then one
  ``INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING RETURNING``.
* **Change notification**: each append sends ``NOTIFY nextbest_events`` on
  commit; :meth:`PostgresEventStore.wait` listens, so a replica that waits
  sees an objection within milliseconds. A replica that only polls
  :meth:`~nextbest.events.sql.SqlEventStore.head` pays one indexed query per
  poll.
* **Durability**: an append returns after ``COMMIT`` (with the server's
  default ``synchronous_commit = on``, after the WAL is flushed).
* **Erasure** deletes the rows in a committed transaction. PostgreSQL keeps
  the old row versions in the table's free space until ``VACUUM`` and in
  its WAL and backups until they are recycled; ``ForgetResult.scrubbed`` is
  False to say so. Run ``VACUUM FULL nextbest_events`` for a byte-level purge.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import Any

from nextbest.errors import ConfigError
from nextbest.events.sql import META, TABLE, TOMBSTONES, SqlEventStore

LOCK_KEY = 0x6E65787462657374 >> 1
"""Advisory lock id of the writers ("nextbest", shifted into a signed 64-bit range)."""
CHANNEL = "nextbest_events"
POLL_S = 0.25
"""Longest wait between two checks of the head in :meth:`PostgresEventStore.wait` (seconds)."""
_STAGE = "nextbest_stage"


class PostgresEventStore(SqlEventStore):
    """Event store in PostgreSQL (see the module docstring)."""

    placeholder = "%s"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - the postgres extra is installed in CI
            raise ConfigError(
                "event store URL is postgresql://... but psycopg is not installed; "
                "install nextbest with the postgres extra (pip install 'nextbest[postgres]')"
            ) from exc
        self._psycopg = psycopg
        self._dsn = url
        super().__init__(_redact(url))

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self._dsn, autocommit=True)
        except self._psycopg.OperationalError as exc:
            raise ConfigError(f"event store {self.url}: cannot connect: {exc}") from exc

    def _ddl(self) -> list[str]:
        return [
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,
                customer_id TEXT NOT NULL,
                at_us BIGINT NOT NULL,
                received_us BIGINT NOT NULL,
                amount DOUBLE PRECISION, quantity DOUBLE PRECISION, category TEXT,
                order_id TEXT, channel TEXT, offer_id TEXT, grp TEXT,
                propensity DOUBLE PRECISION, converted SMALLINT, revenue DOUBLE PRECISION,
                consent_profiling BOOLEAN, opt_in BOOLEAN)""",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_customer ON {TABLE} (customer_id)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_type ON {TABLE} (type, seq) "
            "WHERE type <> 'purchase'",
            f"""CREATE TABLE IF NOT EXISTS {TOMBSTONES} (
                hash TEXT PRIMARY KEY, seq BIGINT NOT NULL, erased_us BIGINT NOT NULL)""",
            f"CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ]

    def _exists(self, cur: Any) -> bool:
        names = (TABLE, TOMBSTONES, META)
        found = cur.execute("SELECT " + ", ".join(["to_regclass(%s)"] * 3), names).fetchone()
        return all(found)

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        conn = self._conn()
        with conn.transaction():
            cur = conn.cursor()
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            yield cur

    def _insert(
        self, cur: Any, names: list[str], rows: Iterable[tuple], n: int
    ) -> int | list[tuple]:
        cur.execute(
            f"""CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (
                ord BIGINT, event_id TEXT, type TEXT, customer_id TEXT, at_us BIGINT,
                received_us BIGINT, amount DOUBLE PRECISION, quantity DOUBLE PRECISION,
                category TEXT, order_id TEXT, channel TEXT, offer_id TEXT, grp TEXT,
                propensity DOUBLE PRECISION, converted SMALLINT, revenue DOUBLE PRECISION,
                consent_profiling BOOLEAN, opt_in BOOLEAN) ON COMMIT DELETE ROWS"""
        )
        listed = ", ".join(names)
        with cur.copy(f"COPY {_STAGE} (ord, {listed}) FROM STDIN") as copy:
            for i, row in enumerate(rows):
                copy.write_row((i, *row))
        cur.execute(
            f"INSERT INTO {TABLE} ({listed}) SELECT {listed} FROM {_STAGE} ORDER BY ord "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id, seq"
        )
        return cur.fetchall()

    def _notify(self, cur: Any, head: int) -> None:
        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(head)))

    def _listener(self) -> Any:
        local = self._local
        if getattr(local, "listener", None) is None:
            local.listener = self._connect()
            local.listener.execute(f"LISTEN {CHANNEL}")
            with self._lock:
                self._open.append(local.listener)
        return local.listener

    def wait(self, cursor: int, timeout: float) -> bool:
        """Block until an event above ``cursor`` is visible (woken by NOTIFY) or time is up."""
        listener = self._listener()  # listen first, so no commit slips between check and wait
        deadline = time.monotonic() + timeout
        while True:
            if self.head() > cursor:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Woken by NOTIFY; re-checked at least every POLL_S should a notice be lost (a pooler
            # in transaction mode drops LISTEN).
            for _ in listener.notifies(timeout=min(remaining, POLL_S), stop_after=1):
                pass


def _redact(url: str) -> str:
    """The URL without its password (for messages and ``repr``)."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    auth, host = rest.rsplit("@", 1)
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in auth else url
