"""MLflow runs: where the store is, the experiment, and what every run logs about its input.

The tracking store is the SQLite file under ``NEXTBEST_HOME`` unless
``MLFLOW_TRACKING_URI`` says otherwise; artifacts go under
``NEXTBEST_HOME/mlartifacts``. Nothing is configured at import time: call
:func:`setup` first. MLflow itself is imported only inside the functions
that use it (``import mlflow`` takes 2-3 s, which every ``nextbest`` command
would otherwise pay).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from nextbest.config import Paths

EXPERIMENT = "nextbest"


def setup(paths: Paths | None = None, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the nextbest store and make sure the experiment exists.

    Returns the experiment id.
    """
    import mlflow

    paths = (paths or Paths.from_env()).ensure()
    mlflow.set_tracking_uri(paths.tracking_uri())
    mlflow.set_registry_uri(paths.tracking_uri())
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        exp_id = mlflow.create_experiment(
            experiment, artifact_location=paths.mlflow_artifacts.as_uri()
        )
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def data_fingerprint(transactions: pd.DataFrame) -> str:
    """SHA-256 (first 16 hex digits) of the customer ids, timestamps and amounts, in row order.

    Identifies the data a run saw without storing any customer id in MLflow.
    """
    canonical = pd.DataFrame(
        {
            "customer_id": transactions["customer_id"].astype(str).to_numpy(dtype=object),
            "timestamp": pd.to_datetime(transactions["timestamp"])
            .to_numpy(dtype="datetime64[ns]")
            .astype("int64"),
            "amount": transactions["amount"].to_numpy(dtype="float64"),
        }
    )
    hashed = pd.util.hash_pandas_object(canonical, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def flatten(prefix: str, obj: Any) -> dict[str, Any]:
    """Flatten nested dicts into ``a.b.c`` keys for ``mlflow.log_params``."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: obj}
