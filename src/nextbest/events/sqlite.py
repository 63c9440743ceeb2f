"""The embedded event store: one SQLite file in WAL mode, shared by the processes of one host.

* **Writers** take the write lock at the start of their transaction
  (``BEGIN IMMEDIATE``) and wait up to :data:`BUSY_TIMEOUT_S` for it; a batch
  is one short transaction, so two service workers and an ``events ingest``
  can write at once. Readers never wait for writers (WAL).
* **Sequence numbers** come from ``INTEGER PRIMARY KEY AUTOINCREMENT``: never
  reused, even after deletes, and, as writers are serialised, visible in
  order. A reader at cursor ``c`` that sees ``c + 5`` has seen everything
  up to it.
* **Durability**: ``synchronous=FULL`` by default: the WAL is fsynced before
  a commit returns, so an acknowledged event survives a process kill and a
  power cut. ``?synchronous=normal`` skips that fsync (an event then survives
  a killed process, since the WAL is already written to the OS, but not a
  power cut or OS crash); ``benchmarks/events.py`` measures both.
* **Erasure**: ``secure_delete`` is on, so deleted rows are overwritten with
  zeros; after a forget the WAL is checkpointed and truncated, leaving none of
  the id's bytes in the database or WAL file (unless a reader held the WAL
  open past the busy timeout: ``ForgetResult.scrubbed`` is then False and the
  next checkpoint completes the job).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nextbest.errors import ConfigError
from nextbest.events.sql import META, TABLE, TOMBSTONES, SqlEventStore

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another writer's transaction (seconds)."""
BULK_ROWS = 10_000
"""A connection that appends a batch this large (a file ingest) checkpoints less often."""
BULK_CHECKPOINT_PAGES = 10_000
"""WAL pages between checkpoints after a bulk batch (default 1,000): pages that every batch
touches (the customer index) are copied to the database once per checkpoint, so a file
ingests 25-45% faster; small appends keep the short default pause."""
_SYNC_MODES = ("full", "normal", "extra")


class SqliteEventStore(SqlEventStore):
    """Event store in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path, url: str | None = None, synchronous: str = "full") -> None:
        if synchronous.lower() not in _SYNC_MODES:
            raise ConfigError(
                f"event store: synchronous={synchronous!r}; use one of {', '.join(_SYNC_MODES)}"
            )
        self.path = Path(path)
        self.synchronous = synchronous.lower()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(url or f"sqlite:///{self.path}")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise ConfigError(f"event store {self.path}: cannot use WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA cache_size = -32768")  # 32 MiB, allocated as used
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute(f"PRAGMA journal_size_limit = {64 * 2**20}")  # WAL file shrinks back
        return conn

    def _ddl(self) -> list[str]:
        return [
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,
                customer_id TEXT NOT NULL,
                at_us INTEGER NOT NULL,
                received_us INTEGER NOT NULL,
                amount REAL, quantity REAL, category TEXT, order_id TEXT, channel TEXT,
                offer_id TEXT, grp TEXT, propensity REAL, converted INTEGER, revenue REAL,
                consent_profiling INTEGER, opt_in INTEGER)""",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_customer ON {TABLE} (customer_id)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_type ON {TABLE} (type, seq) "
            "WHERE type <> 'purchase'",
            f"""CREATE TABLE IF NOT EXISTS {TOMBSTONES} (
                hash TEXT PRIMARY KEY, seq INTEGER NOT NULL, erased_us INTEGER NOT NULL)""",
            f"CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ]

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn.cursor()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _insert(
        self, cur: Any, names: list[str], rows: Iterable[tuple], n: int
    ) -> int | list[tuple]:
        if n >= BULK_ROWS:
            cur.execute(f"PRAGMA wal_autocheckpoint = {BULK_CHECKPOINT_PAGES}")
        last = cur.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (TABLE,)).fetchone()
        last = int(last[0]) if last else 0
        marks = ", ".join("?" * len(names))
        cur.executemany(
            f"INSERT INTO {TABLE} ({', '.join(names)}) VALUES ({marks}) "
            "ON CONFLICT (event_id) DO NOTHING",
            rows,
        )
        if cur.rowcount == n:
            return last + 1
        return cur.execute(f"SELECT event_id, seq FROM {TABLE} WHERE seq > ?", (last,)).fetchall()

    def _scrub(self) -> bool:
        busy, _, _ = self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0
