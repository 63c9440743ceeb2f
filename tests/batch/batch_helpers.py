"""Helpers shared by the batch tests (imported by name, like tests/service/service_helpers.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq


def read_scores(path: Path) -> pd.DataFrame:
    """A scores file as a frame with ``offers``/``reasons`` as plain lists, sorted by customer."""
    path = Path(path)
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype={"customer_id": str, "action_offer_id": str})
        for col in ("offers", "reasons"):
            frame[col] = [json.loads(v) for v in frame[col]]
        return frame.sort_values("customer_id", ignore_index=True)
    table = pq.read_table(path)
    frame = table.drop_columns(["offers", "reasons"]).to_pandas()
    frame["offers"] = table.column("offers").to_pylist()
    frame["reasons"] = table.column("reasons").to_pylist()
    return frame.sort_values("customer_id", ignore_index=True)


def comparable(scores: pd.DataFrame) -> pd.DataFrame:
    """In-memory ``score()`` output shaped like a scores file (for exact comparisons)."""
    out = scores.sort_values("customer_id", ignore_index=True).copy()
    out["as_of"] = pd.to_datetime(out["as_of"]).astype("datetime64[us]")
    out["action_offer_id"] = (
        out["action_offer_id"].astype(object).where(out["action_offer_id"].notna(), None)
    )
    return out


def cli_env(home: Path, **extra) -> dict:
    """Environment for a ``nextbest`` subprocess using ``home``."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(
        {
            "NEXTBEST_HOME": str(home),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "PYTHONWARNINGS": "ignore",
        },
        **extra,
    )
    return env
