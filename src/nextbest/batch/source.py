"""Transaction input read as a stream of Arrow record batches, and its fingerprint.

A source is a file read by the one reader (:mod:`nextbest.data.readers`:
a CSV file, every column text, lines that cannot be read flagged in-band
for the validator; a Parquet file or a directory of Parquet files, read in
path order, id columns as text), exactly as
:func:`nextbest.data.files.read_table` reads it for ``train``; or an
in-memory frame (bundled datasets); or a URI that only Spark reads. Columns
are renamed with the ``--map`` mapping as they are read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from nextbest.batch.chunks import normalise_ids
from nextbest.data.readers import (
    NA_STRINGS,
    ParquetTable,
    ReadInfo,
    ReadOptions,
    Table,
    decode_dictionaries,
    file_kind,
    open_table,
)
from nextbest.data.schema import REQUIRED_TRANSACTION_COLUMNS, require_columns
from nextbest.errors import SchemaError

__all__ = [
    "BATCH_ROWS",
    "NA_STRINGS",
    "Source",
    "estimate_customers",
    "file_digest",
    "frame_digest",
]

BATCH_ROWS = 1 << 20


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
    options: ReadOptions = field(default_factory=ReadOptions)
    _table: Table | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        mapping: dict[str, str] | None = None,
        options: ReadOptions | None = None,
    ) -> Source:
        """A CSV or Parquet file (or directory); opening it checks it is a table.

        Raises
        ------
        SchemaError
            If the file is missing, of an unsupported type or not a table.
        """
        path = Path(path)
        if not path.exists():
            raise SchemaError(f"file not found: {path}")
        file_kind(path)
        src = cls(
            path.name, path=path, mapping=dict(mapping or {}), options=options or ReadOptions()
        )
        src.table()
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
        return file_kind(self.path)

    def table(self) -> Table:
        """The opened file (dialect and columns known)."""
        if self._table is None:
            self._table = open_table(self.path, self.mapping, self.options)
        return self._table

    @property
    def info(self) -> ReadInfo | None:
        """How the file is read (``.summary`` for the run summary); ``None`` for frames and URIs."""
        return None if self.path is None else self.table().info

    def fingerprint(self) -> str:
        if self.uri is not None:  # not read on the driver: --resume trusts the location
            return f"uri:{self.uri}"
        if self.frame is not None:
            return frame_digest(self.frame)
        digest = file_digest(self.path)
        if self.options.given:  # reading the same bytes differently is another input
            digest += ":" + hashlib.sha256(repr(self.options).encode()).hexdigest()[:8]
        return digest

    # -- reading ---------------------------------------------------------------------------
    def columns(self) -> list[str] | None:
        """Column names after the mapping; raises :class:`SchemaError` if a required one is missing.

        ``None`` for a URI (Spark checks the columns when it reads them).
        """
        if self.uri is not None:
            return None
        cols = (
            [str(c) for c in self.frame.columns] if self.kind == "frame" else self.table().columns
        )
        require_columns(pd.DataFrame(columns=cols), REQUIRED_TRANSACTION_COLUMNS, "transactions")
        return cols

    def n_rows(self) -> int | None:
        """Number of lines when known without reading the data (Parquet metadata, frames)."""
        if self.kind == "frame":
            return len(self.frame)
        if self.uri is None and isinstance(self.table(), ParquetTable):
            return self.table().n_rows()
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
        """Record batches in input order, columns renamed by the mapping.

        A CSV's batches also carry the reader's reserved columns
        (:data:`~nextbest.data.schema.LINE`, ``ISSUE``, ``RAW``): unreadable lines
        travel with the others to the validator, which rejects them.
        """
        self.columns()
        if self.kind == "frame":
            table = pa.Table.from_pandas(self.frame, preserve_index=False)
            for batch in table.to_batches(max_chunksize=batch_rows):
                if batch.num_rows:
                    yield decode_dictionaries(batch)
            return
        for batch in self.table().batches():
            if batch.num_rows <= batch_rows:
                yield batch
            else:
                yield from pa.Table.from_batches([batch]).to_batches(max_chunksize=batch_rows)


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
