"""Score and reject files: Parquet or CSV, written to a temporary file and renamed atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from nextbest.batch.chunks import rejects_frame, scores_table


def write_scores(scores: pd.DataFrame, output: Path) -> Path:
    """Write ``.parquet`` or ``.csv`` atomically (temporary file, then rename).

    Same file layout as the streaming job: the fixed
    :data:`nextbest.batch.chunks.SCORES_SCHEMA` in Parquet; ``offers`` and
    ``reasons`` as JSON text in CSV.
    """
    from nextbest.batch.job import csv_frame

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
    """Rejected rows next to ``output`` (``row`` as int64, other columns as text); ``None`` if none."""
    path = rejects_path(output)
    if rejects.empty:
        path.unlink(missing_ok=True)
        return None
    tmp = path.with_name(path.name + ".tmp")
    rejects_frame(rejects).to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
