"""``nextbest score`` reads the event store too: consent, contacts and purchases.

:func:`with_events` returns the job with, from the store (as
:func:`nextbest.events.fold.apply_to_dataset` folds them for training):

* **consent** events overriding the customers file (newest wins);
* **contacts** that were sent added to the contact history (cooldowns, caps);
* **purchases** appended to the transaction lines after the input's own
  (their row numbers in the rejects follow the input's last row), except
  orders the input already has (same customer and ``order_id``). The Spark
  engine reads its input itself and gets consent and contacts only; the
  job's output says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa

from nextbest.batch.job import BatchJob
from nextbest.batch.source import BATCH_ROWS, Source, frame_digest
from nextbest.config import Paths
from nextbest.events.fold import (
    merge_histories,
    purchase_lines,
    sent_contacts,
    store_for,
    with_consent,
)


@dataclasses.dataclass
class SourceWithEvents(Source):
    """A transaction source followed by purchase events (conformed to the input's columns)."""

    extra: pd.DataFrame | None = None

    def n_rows(self) -> int | None:
        n = super().n_rows()
        return None if n is None else n + (0 if self.extra is None else len(self.extra))

    def fingerprint(self) -> str:
        own = super().fingerprint()
        return own if self.extra is None else f"{own}+events:{frame_digest(self.extra)}"

    def batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        schema = None
        for batch in super().batches(batch_rows):
            schema = schema or batch.schema
            yield batch
        if self.extra is not None and len(self.extra):
            yield _conformed(self.extra, schema)


def _conformed(lines: pd.DataFrame, schema: pa.Schema | None) -> pa.RecordBatch:
    """Event lines with exactly the input batches' columns and types (text for a CSV input)."""
    if schema is None:
        return pa.RecordBatch.from_pandas(lines, preserve_index=False)
    arrays = []
    for field in schema:
        if field.name in lines.columns:
            values = pa.array(lines[field.name], from_pandas=True)
            if pa.types.is_string(field.type) and pa.types.is_timestamp(values.type):
                values = pa.array(lines[field.name].dt.strftime("%Y-%m-%dT%H:%M:%S.%f"))
            arrays.append(values.cast(field.type))
        else:
            arrays.append(pa.nulls(len(lines), field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def with_events(job: BatchJob, paths: Paths, engine: str = "local") -> BatchJob:
    """``job`` with the home's event store folded in (the job itself unchanged if no store)."""
    store = store_for(paths)
    if store is None:
        return job
    try:
        head = store.head()
        purchases = store.purchases()
        purchases = purchases[purchases["seq"].to_numpy() <= head]
        customers, _ = with_consent(job.customers, store.consent_state())
        log = store.contacts()
        contacts = sent_contacts(log[log["seq"].to_numpy() <= head])
    finally:
        store.close()
    history = merge_histories(job.contact_history, contacts)
    source = job.source
    if engine == "local" and len(purchases):
        lines = purchase_lines(purchases, _input_sample(source))
        if len(lines):
            source = SourceWithEvents(
                **{f.name: getattr(source, f.name) for f in dataclasses.fields(Source)},
                extra=lines,
            )
    digest = job.history_digest
    if contacts is not None:
        digest = f"{digest}+events:{frame_digest(contacts)}"
    return dataclasses.replace(
        job, source=source, customers=customers, contact_history=history, history_digest=digest
    )


def _input_sample(source: Source) -> pd.DataFrame:
    """The input's columns (and ``customer_id``/``order_id`` pairs, for the order dedupe)."""
    if source.frame is not None:
        return source.frame
    parts = []
    for batch in source.batches():
        keep = [c for c in ("customer_id", "order_id", "timestamp") if c in batch.schema.names]
        parts.append(batch.select(keep).to_pandas())
    columns = source.columns() or []
    sample = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for col in columns:
        if col not in sample.columns:
            sample[col] = pd.Series([], dtype=object) if sample.empty else None
    return sample
