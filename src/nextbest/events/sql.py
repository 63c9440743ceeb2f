"""What both backends share: tables, append with idempotency and tombstones, reads, exports.

A backend supplies the connection, the write transaction (which serialises
writers, so that sequence numbers become visible in order), the bulk insert
and its DDL. SQL here is written with ``?`` placeholders; PostgreSQL's
``%s`` is substituted by :meth:`SqlEventStore._q`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.data.schema import naive_utc
from nextbest.errors import ConfigError
from nextbest.events import frames
from nextbest.events.export import write_events
from nextbest.events.ids import customer_hash, new_event_ids, new_salt
from nextbest.events.schema import COLUMNS, Event, EventBatch, Reject, row_to_event, to_us
from nextbest.events.store import AppendResult, Changes, ForgetResult

TABLE, TOMBSTONES, META = "nextbest_events", "nextbest_tombstones", "nextbest_meta"
SCHEMA_VERSION = "1"
ERASED = "erased"
"""Internal type of the feed row that marks an erasure (``customer_id`` holds the hash)."""
SQL_NAME = {c: ("grp" if c == "group" else c) for c in COLUMNS}
READ_COLUMNS: tuple[str, ...] = ("seq", *COLUMNS, "received_us")
SELECT = ", ".join(SQL_NAME.get(c, c) for c in READ_COLUMNS)
_REQUIRED = ("event_id", "type", "customer_id", "at_us")
_CHUNK = 500
_PAGE = 100_000
_RANKED_CONSENT = (
    "SELECT seq, event_id, customer_id, channel, coalesce(consent_profiling, opt_in) AS granted,"
    " at_us, ROW_NUMBER() OVER (PARTITION BY customer_id, channel"
    " ORDER BY at_us DESC, seq DESC) AS rn"
    f" FROM {TABLE} WHERE type = 'consent'{{where}}"
)
NEWEST_CONSENT = (
    "SELECT seq, event_id, customer_id, channel, granted, at_us"
    f" FROM ({_RANKED_CONSENT}) AS ranked WHERE rn = 1"
)
"""Newest wins: per customer and scope (profiling = channel NULL), latest event time, then the
latest arrival (highest seq) on equal times. Compaction keeps exactly these rows."""
_NEWEST_CONSENT_SEQS = (
    f"SELECT seq FROM ({_RANKED_CONSENT.format(where='')}) AS ranked WHERE rn = 1"
)


class _Abort(Exception):
    """Roll back an all-or-nothing append that met a reject."""


class SqlEventStore:
    """Shared implementation of :class:`~nextbest.events.store.EventStore` over DB-API."""

    placeholder = "?"

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._open: list[Any] = []
        self._lock = threading.Lock()
        self._tomb_count = -1
        self._tombs: set[str] = set()
        self._create()
        rows = self._read(f"SELECT key, value FROM {META}")
        meta = dict(rows)
        if meta.get("schema") != SCHEMA_VERSION:
            raise ConfigError(
                f"event store {url}: schema version {meta.get('schema')!r}; this nextbest "
                f"reads version {SCHEMA_VERSION}"
            )
        self._salt = meta["salt"]

    # -- backend hooks ---------------------------------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _ddl(self) -> list[str]:
        raise NotImplementedError

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        """A write transaction that excludes other writers until it commits; yields a cursor."""
        raise NotImplementedError
        yield

    def _insert(
        self, cur: Any, names: list[str], rows: Iterable[tuple], n: int
    ) -> int | list[tuple]:
        """Insert ``n`` rows, skipping ids already stored: the first seq if every row was new
        (seqs are then consecutive), else ``(event_id, seq)`` of the rows inserted."""
        raise NotImplementedError

    def _exists(self, cur: Any) -> bool:
        """True if the tables exist already (then no DDL runs, so no CREATE privilege is needed)."""
        return False

    def _notify(self, cur: Any, head: int) -> None:
        """Tell listeners of other processes that ``head`` grew (inside the transaction)."""

    def _scrub(self) -> bool:
        """After an erasure, make deleted bytes unreadable from the files; True if done."""
        return False

    # -- connections -----------------------------------------------------------------------------

    def _q(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _conn(self) -> Any:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn = self._connect()
            local.pid = os.getpid()
            with self._lock:
                self._open.append(local.conn)
        return local.conn

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        return self._conn().execute(self._q(sql), tuple(params)).fetchall()

    def _create(self) -> None:
        with self._write() as cur:
            if not self._exists(cur):
                for statement in self._ddl():
                    cur.execute(statement)
            for key, value in (("schema", SCHEMA_VERSION), ("salt", new_salt())):
                cur.execute(
                    self._q(
                        f"INSERT INTO {META} (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING"
                    ),
                    (key, value),
                )

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    def __enter__(self) -> SqlEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- writing ---------------------------------------------------------------------------------

    def append(
        self, events: EventBatch | Iterable[Event], *, all_or_nothing: bool = False
    ) -> AppendResult:
        batch = events if isinstance(events, EventBatch) else EventBatch.from_events(list(events))
        n = len(batch)
        ids = batch.columns["event_id"]
        seqs = np.full(n, -1, dtype=np.int64)
        rejects: dict[int, Reject] = {}
        keep, copies = _dedupe(batch, rejects)
        try:
            with self._write() as cur:
                self._reject_erased(cur, batch, keep, rejects)
                keep = [p for p in keep if p not in rejects]
                new, dups = self._store(cur, batch, keep, seqs, rejects)
                for p, first in copies.items():
                    if first in rejects:
                        rejects[p] = replace(rejects[first], index=batch.index[p])
                    else:
                        seqs[p] = seqs[first]
                        dups += 1
                if rejects and all_or_nothing:
                    raise _Abort
                head = self._head(cur)
                if new:
                    self._notify(cur, head)
        except _Abort:
            seqs[:] = -1
            new = dups = 0
            head = self.head()
        ordered = sorted(rejects.values(), key=lambda r: r.index)
        return AppendResult(seqs, list(ids), new, dups, ordered, head)

    def _reject_erased(
        self, cur: Any, batch: EventBatch, keep: list[int], rejects: dict[int, Reject]
    ) -> None:
        count = cur.execute(f"SELECT count(*) FROM {TOMBSTONES}").fetchone()[0]
        if count != self._tomb_count:
            self._tombs = {r[0] for r in cur.execute(f"SELECT hash FROM {TOMBSTONES}").fetchall()}
            self._tomb_count = count
        if not self._tombs:
            return
        cids = batch.columns["customer_id"]
        erased = {c for c in {cids[p] for p in keep} if self.customer_hash(c) in self._tombs}
        for p in keep:
            if cids[p] in erased:
                rejects[p] = Reject(
                    batch.index[p], "customer_id", "", "erased: this customer was forgotten"
                )

    def _store(
        self,
        cur: Any,
        batch: EventBatch,
        keep: list[int],
        seqs: np.ndarray,
        rejects: dict[int, Reject],
    ) -> tuple[int, int]:
        if not keep:
            return 0, 0
        whole = len(keep) == len(batch)
        columns = {c: (v if whole else [v[p] for p in keep]) for c, v in batch.columns.items()}
        names = [c for c in COLUMNS if c in _REQUIRED or columns[c].count(None) < len(keep)]
        received = to_us(datetime.now(UTC))
        rows = zip(*(columns[c] for c in names), repeat(received))
        inserted = self._insert(
            cur, [SQL_NAME[c] for c in names] + ["received_us"], rows, len(keep)
        )
        if isinstance(inserted, int):
            seqs[keep] = np.arange(inserted, inserted + len(keep))
            return len(keep), 0
        ids = batch.columns["event_id"]
        new_seq = dict(inserted)
        repeats = []
        for p in keep:
            if ids[p] in new_seq:
                seqs[p] = new_seq[ids[p]]
            else:
                repeats.append(p)
        stored = self._by_ids(cur, [ids[p] for p in repeats])
        dups = 0
        for p in repeats:
            earlier = stored[ids[p]]
            if earlier.content() == batch.content(p):
                seqs[p] = earlier.seq
                dups += 1
            else:
                rejects[p] = Reject(
                    batch.index[p],
                    "event_id",
                    ids[p],
                    f"already stored with different content (seq {earlier.seq}); "
                    "a repeated event_id must carry the same event",
                )
        return len(new_seq), dups

    def _by_ids(self, cur: Any, ids: list[str]) -> dict[str, Event]:
        out: dict[str, Event] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            sql = self._q(f"SELECT {SELECT} FROM {TABLE} WHERE event_id IN ({marks})")
            for row in cur.execute(sql, tuple(chunk)).fetchall():
                event = row_to_event(row, READ_COLUMNS)
                out[event.event_id] = event
        return out

    def _head(self, cur: Any) -> int:
        return int(cur.execute(f"SELECT coalesce(max(seq), 0) FROM {TABLE}").fetchone()[0])

    # -- the change feed -------------------------------------------------------------------------

    def head(self) -> int:
        return int(self._read(f"SELECT coalesce(max(seq), 0) FROM {TABLE}")[0][0])

    def since(self, cursor: int, limit: int = 1000) -> Changes:
        rows = self._read(
            f"SELECT {SELECT} FROM {TABLE} WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, limit)
        )
        events, erased = [], []
        for row in rows:
            if row[2] == ERASED:
                erased.append(row[3])
            else:
                events.append(row_to_event(row, READ_COLUMNS))
        return Changes(events, erased, int(rows[-1][0]) if rows else cursor, len(rows) == limit)

    def wait(self, cursor: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.head() > cursor:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)

    # -- reading ---------------------------------------------------------------------------------

    def for_customer(self, customer_id: str) -> list[Event]:
        rows = self._read(
            f"SELECT {SELECT} FROM {TABLE} WHERE customer_id = ? AND type <> ? ORDER BY seq",
            (customer_id, ERASED),
        )
        return [row_to_event(r, READ_COLUMNS) for r in rows]

    def purchases(self, since: datetime | str | None = None, *, after_seq: int = 0) -> pd.DataFrame:
        sql = f"SELECT {', '.join(frames.PURCHASE_COLUMNS)} FROM {TABLE}"
        sql += " WHERE type = 'purchase' AND seq > ?"
        params: list[Any] = [after_seq]
        if since is not None:
            sql += " AND at_us >= ?"
            params.append(to_us(naive_utc(since).to_pydatetime()))
        return frames.purchases_frame(self._read(sql + " ORDER BY seq", params))

    def responses(self) -> pd.DataFrame:
        return frames.responses_frame(self._response_rows())

    def _response_rows(self) -> list[tuple]:
        return self._read(
            f"SELECT {', '.join(frames.RESPONSE_COLUMNS)} FROM {TABLE} "
            "WHERE type = 'response' ORDER BY seq"
        )

    def contacts(self) -> pd.DataFrame:
        names = ", ".join(SQL_NAME.get(c, c) for c in frames.CONTACT_COLUMNS)
        rows = self._read(f"SELECT {names} FROM {TABLE} WHERE type = 'contact' ORDER BY seq")
        return frames.contacts_frame(rows, self._response_rows())

    def consent_state(self, customer_ids: Iterable[str] | None = None) -> pd.DataFrame:
        if customer_ids is None:
            rows = self._read(NEWEST_CONSENT.format(where=""))
        else:
            wanted = list(dict.fromkeys(customer_ids))
            rows = []
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                where = f" AND customer_id IN ({', '.join('?' * len(chunk))})"
                rows += self._read(NEWEST_CONSENT.format(where=where), chunk)
        rows.sort(key=lambda r: (r[2], r[3] is not None, r[3] or ""))
        return frames.consent_frame(rows)

    def _pages(self, where: str = "", params: tuple = ()) -> Iterator[list[tuple]]:
        cursor = 0
        while True:
            rows = self._read(
                f"SELECT {SELECT} FROM {TABLE} WHERE seq > ? AND type <> ?{where} "
                "ORDER BY seq LIMIT ?",
                (cursor, ERASED, *params, _PAGE),
            )
            if not rows:
                return
            yield rows
            cursor = rows[-1][0]

    def export(self, path: str | Path) -> int:
        return write_events(self._pages(), READ_COLUMNS, path)

    # -- erasure and compaction ------------------------------------------------------------------

    def customer_hash(self, customer_id: str) -> str:
        return customer_hash(self._salt, customer_id)

    def is_erased(self, customer_id: str) -> bool:
        rows = self._read(
            f"SELECT 1 FROM {TOMBSTONES} WHERE hash = ?", (self.customer_hash(customer_id),)
        )
        return bool(rows)

    def forget(self, customer_id: str) -> ForgetResult:
        digest = self.customer_hash(customer_id)
        now = to_us(datetime.now(UTC))
        with self._write() as cur:
            counts = cur.execute(
                self._q(
                    f"SELECT type, count(*) FROM {TABLE} WHERE customer_id = ? AND type <> ? "
                    "GROUP BY type"
                ),
                (customer_id, ERASED),
            ).fetchall()
            cur.execute(
                self._q(f"DELETE FROM {TABLE} WHERE customer_id = ? AND type <> ?"),
                (customer_id, ERASED),
            )
            known = cur.execute(
                self._q(f"SELECT 1 FROM {TOMBSTONES} WHERE hash = ?"), (digest,)
            ).fetchall()
            if not known:
                marker = (new_event_ids(1)[0], ERASED, digest, now, now)
                cur.execute(
                    self._q(
                        f"INSERT INTO {TABLE} (event_id, type, customer_id, at_us, received_us) "
                        "VALUES (?, ?, ?, ?, ?)"
                    ),
                    marker,
                )
                seq = self._head(cur)
                cur.execute(
                    self._q(f"INSERT INTO {TOMBSTONES} (hash, seq, erased_us) VALUES (?, ?, ?)"),
                    (digest, seq, now),
                )
                self._notify(cur, seq)
        removed = {str(t): int(c) for t, c in counts}
        return ForgetResult(removed, tombstoned=not known, scrubbed=self._scrub())

    def compact(self, before: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._write() as cur:
            for kind in ("purchase", "contact", "response", ERASED):
                cur.execute(
                    self._q(f"DELETE FROM {TABLE} WHERE type = ? AND seq < ?"), (kind, before)
                )
                counts[kind] = max(cur.rowcount, 0)
            cur.execute(
                self._q(
                    f"DELETE FROM {TABLE} WHERE type = 'consent' AND seq < ? "
                    f"AND seq NOT IN ({_NEWEST_CONSENT_SEQS})"
                ),
                (before,),
            )
            counts["consent"] = max(cur.rowcount, 0)
        self._scrub()
        return counts


def _dedupe(batch: EventBatch, rejects: dict[int, Reject]) -> tuple[list[int], dict[int, int]]:
    """Positions to store, and repeats within the batch (position -> first position)."""
    ids = batch.columns["event_id"]
    if len(set(ids)) == len(ids):
        return list(range(len(ids))), {}
    first: dict[str, int] = {}
    keep: list[int] = []
    copies: dict[int, int] = {}
    for p, event_id in enumerate(ids):
        if event_id not in first:
            first[event_id] = p
            keep.append(p)
        elif batch.content(p) == batch.content(first[event_id]):
            copies[p] = first[event_id]
        else:
            rejects[p] = Reject(
                batch.index[p],
                "event_id",
                event_id,
                f"repeated in this batch (first at {batch.index[first[event_id]]}) "
                "with different content",
            )
    return keep, copies
