"""Score and reject files: Parquet or CSV, written to a temporary file and renamed atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nextbest.batch.chunks import SCORES_SCHEMA, rejects_frame, scores_table
from nextbest.config import settings


def write_scores(scores: pd.DataFrame, output: Path) -> Path:
    """Write ``.parquet`` or ``.csv`` atomically (temporary file, then rename).

    Same file layout as the streaming job: the fixed
    :data:`nextbest.batch.chunks.SCORES_SCHEMA` in Parquet; ``offers`` and
    ``reasons`` as JSON text in CSV.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    table = scores_table(scores)
    tmp = output.with_name(output.name + ".tmp")
    if output.suffix.lower() == ".csv":
        csv_frame(table).to_csv(tmp, index=False)
    else:
        pq.write_table(table, tmp)
    tmp.replace(output)
    return output


def rejects_path(output: Path) -> Path:
    """``scores.parquet`` -> ``scores.rejects.parquet``."""
    output = Path(output)
    return output.with_name(output.stem + ".rejects.parquet")


def write_rejects(rejects: pd.DataFrame, output: Path) -> Path | None:
    """Rejected rows next to ``output`` (``row`` as int64, other columns as text); ``None`` if
    none."""
    path = rejects_path(output)
    if rejects.empty:
        path.unlink(missing_ok=True)
        return None
    tmp = path.with_name(path.name + ".tmp")
    rejects_frame(rejects).to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def write_side_rejects(rejects: pd.DataFrame, output, name: str) -> Path:
    """Rejected rows of a side input (``customers``, ``contact-history``) beside the output:
    ``scores.parquet`` -> ``scores.customers.rejects.parquet`` (a URI output: under the home)."""
    if "://" in str(output):
        base = settings().paths.rejects / Path(str(output).rstrip("/")).name
    else:
        base = Path(output)
    path = base.with_name(f"{base.stem}.{name}.rejects.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    rejects_frame(rejects).to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def assemble_scores(parts: list[Path], output: Path, fmt: str) -> Path:
    """Concatenate the chunk files into ``<output>.tmp`` and rename it onto ``output``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    if fmt == "parquet":
        with pq.ParquetWriter(tmp, SCORES_SCHEMA) as writer:
            for p in parts:
                writer.write_table(pq.read_table(p, schema=SCORES_SCHEMA))
    else:
        with open(tmp, "w", newline="") as fh:
            for i, p in enumerate(parts):
                csv_frame(pq.read_table(p, schema=SCORES_SCHEMA)).to_csv(
                    fh, header=i == 0, index=False
                )
    _fsync(tmp)
    tmp.replace(output)
    return output


def csv_frame(table: pa.Table) -> pd.DataFrame:
    """A scores table as a flat frame: ``offers`` and ``reasons`` as JSON text."""
    frame = table.drop_columns(["offers", "reasons"]).to_pandas()
    for col in ("offers", "reasons"):
        values = [json.dumps(v) for v in table.column(col).to_pylist()]
        frame.insert(SCORES_SCHEMA.names.index(col), col, values)
    return frame


def assemble_rejects(parts: list[Path], path: Path) -> Path | None:
    """All chunks' rejected lines in one Parquet file (``row`` int64, other columns text)."""
    if not parts:
        path.unlink(missing_ok=True)  # a stale file of an earlier run would mislead
        return None
    schemas = [pq.read_schema(p) for p in parts]
    names = list(dict.fromkeys(n for s in schemas for n in s.names))
    schema = pa.schema([pa.field(n, pa.int64() if n == "row" else pa.string()) for n in names])
    tmp = path.with_name(path.name + ".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        for p in parts:
            t = pq.read_table(p)
            cols = [
                t.column(n).cast(schema.field(n).type)
                if n in t.column_names
                else pa.nulls(t.num_rows, schema.field(n).type)
                for n in names
            ]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
    _fsync(tmp)
    tmp.replace(path)
    return path


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
