"""Export every event to Parquet or JSON lines (``nextbest events export``), streamed by pages.

Parquet has one column per field (:data:`EXPORT_SCHEMA`), with ``at`` for the
event time of every type, ``seq`` and ``received_at``; JSON lines hold one
event per line in the shape ``POST /events`` takes, plus ``seq`` and
``received_at``. Both read back with :func:`~nextbest.events.ingest.ingest_file`
(``seq`` and ``received_at`` are ignored there), keeping ids and content.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from nextbest.errors import InputError
from nextbest.events.schema import row_to_event

EXPORT_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("customer_id", pa.string()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("amount", pa.float64()),
        ("quantity", pa.float64()),
        ("category", pa.string()),
        ("order_id", pa.string()),
        ("channel", pa.string()),
        ("offer_id", pa.string()),
        ("group", pa.string()),
        ("propensity", pa.float64()),
        ("converted", pa.int8()),
        ("revenue", pa.float64()),
        ("consent_profiling", pa.bool_()),
        ("opt_in", pa.bool_()),
    ]
)


def write_events(pages: Iterable[list[tuple]], names: tuple[str, ...], path: str | Path) -> int:
    """Write pages of stored rows (columns ``names``) to ``path``; return the number of events.

    Raises
    ------
    InputError
        ``path`` does not end in ``.parquet``, ``.pq``, ``.jsonl``, ``.ndjson`` or ``.json``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".jsonl", ".ndjson", ".json"):
        raise InputError(f"{path}: export to .parquet or .jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    if suffix in (".parquet", ".pq"):
        with pq.ParquetWriter(path, EXPORT_SCHEMA) as writer:
            for rows in pages:
                writer.write_table(_table(rows, names))
                n += len(rows)
            if n == 0:
                writer.write_table(EXPORT_SCHEMA.empty_table())
        return n
    with path.open("w", encoding="utf-8") as out:
        for rows in pages:
            for row in rows:
                out.write(json.dumps(row_to_event(row, names).to_dict()) + "\n")
            n += len(rows)
    return n


def _table(rows: list[tuple], names: tuple[str, ...]) -> pa.Table:
    cols = dict(zip(names, zip(*rows)))
    data = {}
    for spec in EXPORT_SCHEMA:
        name = spec.name
        if name == "at":
            values = pa.array(cols["at_us"], pa.int64()).cast(spec.type)
        elif name == "received_at":
            values = pa.array(cols["received_us"], pa.int64()).cast(spec.type)
        else:
            raw = cols[name]
            if pa.types.is_boolean(spec.type):
                raw = [None if v is None else bool(v) for v in raw]
            values = pa.array(raw, spec.type)
        data[name] = values
    return pa.table(data, schema=EXPORT_SCHEMA)
