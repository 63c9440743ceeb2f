"""The serving snapshot: one feature row per customer at ``as_of``, written by training.

``NEXTBEST_HOME/snapshots/features.parquet`` holds the features of every
customer (those who objected to profiling are present with
``consent_profiling = false`` and no features); ``features.json`` beside it
holds ``as_of``, ``time_unit_days``, category ``popularity``, the dataset and
the model versions trained with it. The HTTP service loads it at start-up
and decides for every customer before anyone asks.

Both files are written to a temporary name and renamed into place, so a
reader never sees half a snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from nextbest.config import Paths
from nextbest.data.history import ROW_GROUP
from nextbest.errors import NoSnapshotError

SNAPSHOT_FILE = "features.parquet"
SNAPSHOT_META = "features.json"


def snapshot_files(paths: Paths) -> tuple[Path, Path]:
    """``(features.parquet, features.json)`` under ``paths``."""
    return paths.snapshots / SNAPSHOT_FILE, paths.snapshots / SNAPSHOT_META


def write_snapshot(
    features: pd.DataFrame, opted_out: set[str] | list[str], meta: dict, paths: Paths
) -> Path:
    """Write the serving snapshot atomically (features + a JSON side file).

    Customers in ``opted_out`` keep only their id and ``consent_profiling = false``.
    """
    rows = features
    if opted_out:
        gone = pd.DataFrame({"customer_id": sorted(opted_out), "consent_profiling": False})
        rows = pd.concat(
            [features[~features["customer_id"].isin(opted_out)], gone], ignore_index=True
        )
    rows = rows.sort_values("customer_id").reset_index(drop=True)
    for col in rows.columns:
        if rows[col].dtype == object and col != "customer_id":
            rows[col] = rows[col].astype("string")
    path, meta_path = snapshot_files(paths)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    rows.to_parquet(tmp, index=False, row_group_size=ROW_GROUP)  # one customer: one small group
    tmp.replace(path)
    tmp_meta = meta_path.with_name(meta_path.name + ".tmp")
    tmp_meta.write_text(json.dumps(meta, indent=2, default=str))
    tmp_meta.replace(meta_path)
    return path


def read_snapshot_meta(paths: Paths | None = None) -> dict:
    """The snapshot's metadata (``as_of``, ``popularity``, ``time_unit_days``, ...).

    Raises
    ------
    NoSnapshotError
        If no snapshot was written yet.
    """
    path, meta_path = snapshot_files(paths or Paths.from_env())
    if not path.exists() or not meta_path.exists():
        raise NoSnapshotError(f"no feature snapshot at {path}; run `nextbest train` first")
    return json.loads(meta_path.read_text())


def read_snapshot(paths: Paths | None = None, chunk_rows: int | None = None):
    """The snapshot and its metadata.

    Parameters
    ----------
    paths : Paths, optional
    chunk_rows : int, optional
        ``None``: return ``(features, meta)`` with the whole frame. A number:
        return ``(n_rows, batches, meta)`` where ``batches`` yields frames of
        at most ``chunk_rows`` rows (memory stays bounded for millions of
        customers).
    """
    paths = paths or Paths.from_env()
    meta = read_snapshot_meta(paths)
    path, _ = snapshot_files(paths)
    if chunk_rows is None:
        return pd.read_parquet(path), meta
    pf = pq.ParquetFile(path)
    batches = (b.to_pandas() for b in pf.iter_batches(batch_size=chunk_rows))
    return pf.metadata.num_rows, batches, meta
