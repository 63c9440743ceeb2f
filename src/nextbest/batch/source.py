"""Transaction input read as a stream of Arrow record batches, and its fingerprint.

A source is a Parquet file (or a directory of Parquet files, read in path
order), a CSV file (every column read as text, like
:func:`nextbest.data.files.read_table`, so ids keep leading zeros and bad
values reach the validator), or an in-memory frame (bundled datasets).
Columns are renamed with the ``--map`` mapping as they are read.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from nextbest.batch.chunks import normalise_ids
from nextbest.data.schema import REQUIRED_TRANSACTION_COLUMNS
from nextbest.errors import SchemaError

BATCH_ROWS = 1 << 20
# pandas' default NA strings (read_csv keep_default_na=True), for the CSV reader.
NA_STRINGS = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]


def file_digest(path: Path, block: int = 1 << 23) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes, or of every file under a directory."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
        with open(p, "rb") as fh:
            while chunk := fh.read(block):
                h.update(chunk)
    return h.hexdigest()[:16]


def frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 (first 16 hex digits) of a frame's columns and values, in row order."""
    h = hashlib.sha256("|".join(map(str, frame.columns)).encode())
    try:
        hashed = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:  # unhashable cells (lists, dicts)
        hashed = pd.util.hash_pandas_object(frame.astype(str), index=False)
    h.update(hashed.to_numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class Source:
    """Where the transaction lines come from."""

    name: str
    path: Path | None = None
    frame: pd.DataFrame | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    uri: str | None = None  # Parquet at hdfs://, s3a://, file://...: read by Spark only

    @classmethod
    def from_path(cls, path: str | Path, mapping: dict[str, str] | None = None) -> Source:
        path = Path(path)
        if not path.exists():
            raise SchemaError(f"file not found: {path}")
        src = cls(path.name, path=path, mapping=dict(mapping or {}))
        if src.kind not in ("parquet", "csv"):
            raise SchemaError(
                f"{path}: unsupported file type {path.suffix.lower()!r}; use .csv or .parquet"
            )
        return src

    @classmethod
    def from_uri(cls, uri: str, mapping: dict[str, str] | None = None) -> Source:
        return cls(uri, uri=uri, mapping=dict(mapping or {}))

    @classmethod
    def from_frame(cls, name: str, frame: pd.DataFrame) -> Source:
        return cls(name, frame=frame)

    @property
    def kind(self) -> str:
        if self.frame is not None:
            return "frame"
        if self.uri is not None:
            return "parquet"
        if self.path.is_dir():
            return "parquet"
        suffix = self.path.suffix.lower()
        return (
            "parquet"
            if suffix in (".parquet", ".pq")
            else "csv"
            if suffix in (".csv", ".txt", ".gz")
            else "?"
        )

    def fingerprint(self) -> str:
        if self.uri is not None:  # not read on the driver: --resume trusts the location
            return f"uri:{self.uri}"
        return frame_digest(self.frame) if self.frame is not None else file_digest(self.path)

    # -- reading ---------------------------------------------------------------------------
    def _raw_columns(self) -> list[str]:
        if self.kind == "frame":
            return [str(c) for c in self.frame.columns]
        if self.kind == "parquet":
            import pyarrow.dataset as ds

            return list(ds.dataset(self.path, format="parquet").schema.names)
        with _open_text(self.path) as fh:
            return next(csv.reader(fh), [])

    def columns(self) -> list[str] | None:
        """Column names after the mapping; raises :class:`SchemaError` if a required one is missing.

        ``None`` for a URI (Spark checks the columns when it reads them).
        """
        if self.uri is not None:
            return None
        raw = self._raw_columns()
        missing = [c for c in self.mapping if c not in raw]
        if missing:
            raise SchemaError(f"{self.path}: mapped column(s) {missing} not in file; found {raw}")
        cols = [self.mapping.get(c, c) for c in raw]
        lacking = [c for c in REQUIRED_TRANSACTION_COLUMNS if c not in cols]
        if lacking:
            raise SchemaError(f"transactions is missing required column(s) {lacking}; found {cols}")
        return cols

    def n_rows(self) -> int | None:
        """Number of lines when known without reading the data (Parquet metadata, frames)."""
        if self.kind == "frame":
            return len(self.frame)
        if self.kind == "parquet" and self.uri is None:
            import pyarrow.dataset as ds

            return int(ds.dataset(self.path, format="parquet").count_rows())
        return None

    def size_bytes(self) -> int:
        if self.path is None:
            return 0
        return (
            sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
            if self.path.is_dir()
            else self.path.stat().st_size
        )

    def batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Record batches in input order, columns renamed by the mapping."""
        names = self.columns()
        for batch in self._batches(batch_rows):
            if batch.num_rows:
                yield _plain(batch).rename_columns(names)

    def _batches(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        if self.kind == "frame":
            table = pa.Table.from_pandas(self.frame, preserve_index=False)
            yield from table.to_batches(max_chunksize=batch_rows)
        elif self.kind == "parquet":
            import pyarrow.dataset as ds

            yield from ds.dataset(self.path, format="parquet").to_batches(batch_size=batch_rows)
        else:
            import pyarrow.csv as pcsv

            raw = self._raw_columns()
            reader = pcsv.open_csv(
                self.path,
                read_options=pcsv.ReadOptions(block_size=1 << 24),
                convert_options=pcsv.ConvertOptions(
                    column_types={c: pa.string() for c in raw},
                    null_values=NA_STRINGS,
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
            for batch in reader:
                yield from pa.Table.from_batches([batch]).to_batches(max_chunksize=batch_rows)


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary-encoded (pandas categorical) columns decoded: every batch then has the same
    schema."""
    if not any(pa.types.is_dictionary(t) for t in batch.schema.types):
        return batch
    cols = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def _open_text(path: Path):
    if path.suffix.lower() == ".gz":
        import gzip

        return gzip.open(path, "rt", newline="")
    return open(path, newline="")


def estimate_customers(first: pd.Series, n_rows: int | None, source: Source) -> int:
    """Rough number of customers from the first batch's ids (lines per customer) and the input
    size."""

    seen = max(1, normalise_ids(first).nunique())
    per_customer = len(first) / seen
    if n_rows is None:  # CSV: scale the first batch by bytes
        n_rows = len(first)
        size = source.size_bytes()
        sampled = _sample_bytes(source, len(first))
        if sampled and size > sampled:
            n_rows = int(len(first) * size / sampled)
    return max(1, int(n_rows / per_customer))


def _sample_bytes(source: Source, n_lines: int) -> int:
    if source.path is None or source.path.suffix.lower() == ".gz":
        return 0
    total = 0
    with open(source.path, "rb") as fh:
        for i, line in enumerate(fh):
            if i > n_lines:
                break
            total += len(line)
    return total
