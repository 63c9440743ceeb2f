"""Put events into a store: one request (:func:`ingest_events`) or a file (:func:`ingest_file`).

A request (``POST /events``, at most 1,000 events) is all or nothing: any
problem raises :class:`~nextbest.events.schema.EventError` listing every
``events[i].field: reason`` and nothing is stored.

A file is streamed in batches, with rejects in a side file.

Formats, by suffix: ``.parquet``/``.pq`` and ``.csv`` (also ``.csv.gz``) through the one
reader (:mod:`nextbest.data.readers`: spreadsheet exports, ids as text, unreadable
lines as rejects); ``.jsonl``/``.ndjson``/``.json``
(one JSON object per line, validated like ``POST /events`` but with unknown
keys ignored). One row is one event; a ``type`` column names its type, or
``event_type`` names the type of every row of a file without one (a
transactions file: ``event_type="purchase"``).

Each batch is validated and appended in one transaction (see
:meth:`~nextbest.events.store.EventStore.append`); a crash mid-file keeps the
batches already appended, and running the same file again adds nothing twice
when its rows carry an ``event_id``. Rows without one get a fresh id on each run.
Every rejected row (bad value, repeated ``event_id`` with other content,
erased customer) is written to ``<path>.rejects.parquet`` with columns
``row`` (0-based data row), ``field``, ``value``, ``reason``; the file is
written on every run, empty when nothing was rejected. A row of an erased
customer is written with an empty value, so the rejects file does not bring
the id back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nextbest.data.readers import open_table
from nextbest.data.schema import ISSUE, RAW, RESERVED_COLUMNS, WHOLE_LINE, split_issue
from nextbest.errors import SchemaError
from nextbest.events.schema import MAX_BATCH, MAX_FUTURE, EventError, Reject, rejects_frame
from nextbest.events.store import AppendResult, EventStore
from nextbest.events.validate import ValidationResult, validate_events, validate_table

BATCH_ROWS = 100_000
"""Rows validated and appended per transaction."""
_REJECT_SCHEMA = pa.schema(
    [("row", pa.int64()), ("field", pa.string()), ("value", pa.string()), ("reason", pa.string())]
)


@dataclass
class IngestResult:
    """What :func:`ingest_file` did."""

    path: str
    rows: int = 0
    new: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejects_path: str = ""
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"rate": self.rate}


def ingest_events(
    raw: Any,
    store: EventStore,
    *,
    now: datetime | None = None,
    max_future: timedelta = MAX_FUTURE,
    max_batch: int | None = MAX_BATCH,
) -> AppendResult:
    """Validate and append the events of one request, all or nothing (``POST /events``).

    Parameters
    ----------
    raw : list of dict
        The request's ``events``.
    store : EventStore
    now, max_future, max_batch
        As in :func:`~nextbest.events.validate.validate_events`.

    Returns
    -------
    AppendResult
        ``new`` and ``duplicates`` (repeated ``event_id`` with equal content).

    Raises
    ------
    BatchTooLarge
        More than ``max_batch`` events (HTTP 413); nothing stored.
    EventError
        Any event invalid, an ``event_id`` already stored with other content,
        or an erased customer (HTTP 422); every problem is listed in ``detail``
        as ``events[i].field: reason`` and nothing is stored.
    """
    checked = validate_events(raw, now=now, max_future=max_future, max_batch=max_batch)
    checked.raise_for_rejects()
    result = store.append(checked.accepted, all_or_nothing=True)
    if result.rejects:
        raise EventError(result.rejects)
    return result


def default_rejects_path(path: str | Path) -> Path:
    """``<path>.rejects.parquet``: where :func:`ingest_file` writes rejected rows."""
    path = Path(path)
    return path.with_name(path.name + ".rejects.parquet")


def ingest_file(
    path: str | Path,
    store: EventStore,
    *,
    event_type: str | None = None,
    batch_rows: int = BATCH_ROWS,
    now: datetime | None = None,
    max_future: timedelta = MAX_FUTURE,
    rejects_path: str | Path | None = None,
) -> IngestResult:
    """Validate and append every event of a file; write rejected rows to a side file.

    Parameters
    ----------
    path : str or Path
        A ``.parquet``, ``.csv`` or ``.jsonl`` file of events.
    store : EventStore
        Where to append (see :func:`~nextbest.events.store.open_store`).
    event_type : str, optional
        Type of every row when the file has no ``type`` column.
    batch_rows : int
        Rows per validated batch and per transaction.
    now, max_future
        Times later than ``now + max_future`` are rejected (default: now + 1 day).
    rejects_path : str or Path, optional
        Default ``<path>.rejects.parquet``.

    Returns
    -------
    IngestResult

    Raises
    ------
    SchemaError
        The file is missing, of an unknown kind, has no ``customer_id`` column,
        or a column whose type cannot hold its field.
    """
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"events file not found: {path}")
    out = Path(rejects_path) if rejects_path is not None else default_rejects_path(path)
    result = IngestResult(str(path), rejects_path=str(out))
    ignored: set[str] = set()
    rejected_rows: set[int] = set()
    start = time.perf_counter()
    with pq.ParquetWriter(out, _REJECT_SCHEMA) as writer:
        for checked in _validated(path, event_type, batch_rows, now, max_future):
            ignored.update(checked.ignored_fields)
            appended = store.append(checked.accepted)
            rejects = checked.rejects + appended.rejects
            result.rows += len(checked.accepted) + len({r.index for r in checked.rejects})
            result.new += appended.new
            result.duplicates += appended.duplicates
            rejected_rows.update(r.index for r in rejects)
            if rejects:
                frame = rejects_frame(sorted(rejects, key=lambda r: r.index))
                writer.write_table(pa.Table.from_pandas(frame, _REJECT_SCHEMA, False))
    result.rejected = len(rejected_rows)
    result.ignored_columns = sorted(ignored)
    result.seconds = time.perf_counter() - start
    return result


def _validated(
    path: Path,
    event_type: str | None,
    batch_rows: int,
    now: datetime | None,
    max_future: timedelta,
) -> Iterator[ValidationResult]:
    name = path.name.lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        yield from _json_lines(path, event_type, batch_rows, now, max_future)
        return
    if not name.endswith((".parquet", ".pq", ".csv", ".csv.gz", ".txt", ".tsv")):
        raise SchemaError(f"{path}: unsupported file type; use .parquet, .csv or .jsonl")
    first = 0
    for table in _tables(path, batch_rows):
        yield _validate_read(table, first, event_type, now, max_future)
        first += table.num_rows


def _tables(path: Path, batch_rows: int) -> Iterator[pa.Table]:
    """The file through the one reader (:mod:`nextbest.data.readers`), in tables of about
    ``batch_rows`` rows: CSV and Parquet alike, lines it cannot read flagged in-band."""
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in open_table(path).batches():
        pending.append(batch)
        size += batch.num_rows
        if size >= batch_rows:
            yield pa.Table.from_batches(pending)
            pending, size = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _validate_read(
    table: pa.Table,
    first: int,
    event_type: str | None,
    now: datetime | None,
    max_future: timedelta,
) -> ValidationResult:
    """:func:`validate_table`, with the lines the reader could not read as rejects of their own.

    A flagged line's fields cannot be trusted: its ``customer_id`` is blanked so
    that no event is stored from it, and its reject carries the reader's reason
    and the raw line.
    """
    names = table.column_names
    flagged = np.asarray(table.column(ISSUE).is_valid()) if ISSUE in names else np.zeros(0, bool)
    clean = table.drop_columns([c for c in RESERVED_COLUMNS if c in names])
    if not flagged.any():
        return validate_table(
            clean, first_row=first, event_type=event_type, now=now, max_future=max_future
        )
    if "customer_id" in clean.column_names:
        i = clean.column_names.index("customer_id")
        blank = pc.if_else(pa.array(flagged), pa.scalar(None, pa.string()), clean.column(i))
        clean = clean.set_column(i, "customer_id", blank)
    result = validate_table(
        clean, first_row=first, event_type=event_type, now=now, max_future=max_future
    )
    rows = set((np.flatnonzero(flagged) + first).tolist())
    issues = table.column(ISSUE).to_pylist()
    raws = table.column(RAW).to_pylist() if RAW in names else [None] * len(issues)
    read = []
    for j in np.flatnonzero(flagged).tolist():
        column, reason = split_issue(issues[j])
        field_name = "" if column == WHOLE_LINE else column
        read.append(Reject(first + j, field_name, str(raws[j] or "")[:200], reason))
    rejects = sorted(
        [r for r in result.rejects if r.index not in rows] + read, key=lambda r: r.index
    )
    return ValidationResult(result.accepted, rejects, result.ignored_fields)


def _json_lines(
    path: Path,
    event_type: str | None,
    batch_rows: int,
    now: datetime | None,
    max_future: timedelta,
) -> Iterator[ValidationResult]:
    first = 0
    records: list = []
    problems: dict[int, Reject] = {}
    with path.open(encoding="utf-8") as lines:
        for row, line in enumerate(lines):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                problems[row] = Reject(row, "", line.strip()[:200], f"not valid JSON: {exc.msg}")
                record = None
            if isinstance(record, dict) and event_type is not None:
                record.setdefault("type", event_type)
            records.append(record)
            if len(records) >= batch_rows:
                yield _json_batch(records, first, problems, now, max_future)
                first, records, problems = first + len(records), [], {}
    if records:
        yield _json_batch(records, first, problems, now, max_future)


def _json_batch(
    records: list,
    first: int,
    problems: dict[int, Reject],
    now: datetime | None,
    max_future: timedelta,
) -> ValidationResult:
    checked = validate_events(
        records,
        now=now,
        max_future=max_future,
        max_batch=None,
        unknown_fields="ignore",
        first_index=first,
    )
    if problems:
        checked.rejects = [problems.get(r.index, r) for r in checked.rejects]
    return checked
