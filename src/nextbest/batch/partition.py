"""Pass 1 of the local engine: hash-partition the input lines into one bucket file per chunk.

The input is read in Arrow record batches; every line, with its input row
number (:data:`~.chunks.ROW`), is appended to the Arrow IPC file of its
bucket (a hash of the normalised ``customer_id``, so a customer's lines are
all in one bucket). The number of buckets is about customers /
``chunk_size``, estimated from the first batch. Memory: one record batch.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from nextbest.batch.chunks import ROW, bucket_of
from nextbest.batch.progress import Reporter
from nextbest.batch.source import Source, estimate_customers
from nextbest.data.schema import parse_timestamps
from nextbest.errors import EmptyInput


def chunk_name(kind: str, b: int, ext: str) -> str:
    return f"{kind}-{b:05d}.{ext}"


def partition(
    source: Source, root: Path, chunk_size: int, reporter: Reporter, want_last_timestamp: bool
) -> dict:
    """Hash-partition the input lines into bucket files under ``root/buckets``."""
    import pyarrow.ipc as ipc

    buckets = root / "buckets"
    if buckets.exists():
        shutil.rmtree(buckets)
    buckets.mkdir(parents=True)
    columns = source.columns()
    n_rows = source.n_rows()
    reporter.start("reading", n_rows, "lines")
    writers: list = []
    n_buckets, offset, last = 1, 0, None
    options = ipc.IpcWriteOptions(compression="lz4")
    try:
        for batch in source.batches():
            ids = batch.column("customer_id").to_pandas()
            if not writers:
                n_buckets = max(1, math.ceil(estimate_customers(ids, n_rows, source) / chunk_size))
                schema = batch.schema.append(pa.field(ROW, pa.int64()))
                writers = [
                    ipc.new_file(
                        buckets / chunk_name("bucket", b, "arrow"), schema, options=options
                    )
                    for b in range(n_buckets)
                ]
            n = batch.num_rows
            batch = batch.append_column(ROW, pa.array(np.arange(offset, offset + n, dtype="int64")))
            b = bucket_of(ids, n_buckets)
            order = np.argsort(b, kind="stable")
            counts = np.bincount(b, minlength=n_buckets)
            ordered = batch.take(pa.array(order))
            start = 0
            for k, c in enumerate(counts):
                if c:
                    writers[k].write_batch(ordered.slice(start, int(c)))
                    start += int(c)
            if want_last_timestamp:
                ts = parse_timestamps(batch.column("timestamp").to_pandas()).max()
                if not pd.isna(ts) and (last is None or ts > last):
                    last = ts
            offset += n
            reporter.advance(n)
    finally:
        for w in writers:
            w.close()
    reporter.finish()
    if offset == 0:
        raise EmptyInput(f"no transaction lines in {source.path or source.name}")
    return {
        "done": True,
        "n_rows": offset,
        "n_buckets": n_buckets,
        "columns": columns,
        "last_timestamp": None if last is None else str(last),
    }


def read_bucket(root: Path, b: int) -> pd.DataFrame | None:
    import pyarrow.ipc as ipc

    path = root / "buckets" / chunk_name("bucket", b, "arrow")
    if not path.exists():
        return None
    with pa.memory_map(str(path)) as src:
        table = ipc.open_file(src).read_all()
    return table.to_pandas() if table.num_rows else None
