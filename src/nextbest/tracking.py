"""MLflow runs, the model registry and the ``champion`` alias.

The tracking store is the SQLite file under ``NEXTBEST_HOME`` unless
``MLFLOW_TRACKING_URI`` says otherwise; artifacts go under
``NEXTBEST_HOME/mlartifacts``. Nothing is configured at import time: call
:func:`setup` first.

Models are loaded by registry URI (``models:/nextbest-clv@champion``), never
by digging a path out of an artifact URI.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from nextbest.config import Paths

EXPERIMENT = "nextbest"
CLV_MODEL_NAME = "nextbest-clv"
CHAMPION = "champion"

log = logging.getLogger(__name__)


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
        exp_id = mlflow.create_experiment(experiment, artifact_location=paths.mlflow_artifacts.as_uri())
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def data_fingerprint(transactions: pd.DataFrame) -> str:
    """SHA-256 (first 16 hex digits) of the customer ids, timestamps and amounts, in row order."""
    canonical = pd.DataFrame({
        "customer_id": transactions["customer_id"].astype(str).to_numpy(dtype=object),
        "timestamp": pd.to_datetime(transactions["timestamp"]).to_numpy(dtype="datetime64[ns]").astype("int64"),
        "amount": transactions["amount"].to_numpy(dtype="float64"),
    })
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


def champion_version(name: str) -> Any | None:
    """The registered model version behind the ``champion`` alias, or ``None``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote(name: str, version: str | int) -> None:
    """Point the ``champion`` alias of ``name`` at ``version``."""
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, CHAMPION, str(version))


def load_champion(name: str):
    """Load the ``champion`` of ``name`` as an MLflow pyfunc model.

    Raises
    ------
    LookupError
        If no version carries the alias yet.
    """
    import mlflow

    version = champion_version(name)
    if version is None:
        raise LookupError(
            f"no '{CHAMPION}' version of model {name!r} in {mlflow.get_tracking_uri()}; "
            "run `nextbest train` first"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    return model, version


def log_figure(fig, artifact_file: str) -> None:
    """Log a matplotlib figure as a PNG artifact of the active run."""
    import mlflow

    mlflow.log_figure(fig, artifact_file)


def artifact_dir(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.mkdir(parents=True, exist_ok=True)
    return path
