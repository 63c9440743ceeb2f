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
        exp_id = mlflow.create_experiment(
            experiment, artifact_location=paths.mlflow_artifacts.as_uri()
        )
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def data_fingerprint(transactions: pd.DataFrame) -> str:
    """SHA-256 (first 16 hex digits) of the customer ids, timestamps and amounts, in row order."""
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


CHURN_MODEL_NAME = "nextbest-churn"
NBO_MODEL_NAME = "nextbest-nbo"
MODEL_NAMES = (CLV_MODEL_NAME, CHURN_MODEL_NAME, NBO_MODEL_NAME)


def log_model(
    python_model,
    model_obj,
    example: pd.DataFrame,
    output: pd.DataFrame,
    name: str,
    promote_if: bool,
    register: bool = True,
    metadata: dict | None = None,
) -> tuple[str | None, bool]:
    """Pickle ``model_obj``, log it as a pyfunc with a signature, register it and maybe promote it.

    Returns ``(version, promoted)``; the version is ``None`` when not registering.
    """
    import tempfile

    import mlflow
    from mlflow.models import infer_signature

    from nextbest.models.base import library_versions

    libs = library_versions()
    reqs = [
        f"{p}=={libs[p]}"
        for p in ("lifetimes", "lightgbm", "scikit-learn", "pandas", "numpy")
        if p in libs
    ]
    # Integers are declared as doubles: MLflow rejects float input for an integer column later.
    example = example.astype(
        {c: "float64" for c in example.columns if pd.api.types.is_integer_dtype(example[c])}
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = model_obj.save(Path(tmp) / "model.pkl")
        signature = infer_signature(example, output)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = mlflow.pyfunc.log_model(
                name=name.replace("nextbest-", ""),
                python_model=python_model,
                artifacts={"model": str(path)},
                signature=signature,
                input_example=example,
                registered_model_name=name if register else None,
                pip_requirements=reqs,
                metadata=metadata or {},
            )
    if not register:
        return None, False
    version = str(info.registered_model_version)
    if promote_if:
        promote(name, version)
    mlflow.set_tag(f"{name}.promoted", str(bool(promote_if)))
    return version, bool(promote_if)


def unwrap(pyfunc_model):
    """The nextbest model object inside a loaded pyfunc model."""
    return pyfunc_model.unwrap_python_model().model


def load_bundle(catalog=None):
    """The ``champion`` of every model as a :class:`nextbest.scoring.ModelBundle`.

    The offer model is optional (``bundle.nbo is None`` when it has no
    champion, e.g. data without product categories): decisions are then
    retention or no action only.

    Raises
    ------
    LookupError
        If the CLV or churn model has no champion yet.
    SchemaError
        If the catalog names an offer the champion offer model was not trained on.
    """
    from nextbest.data.schema import SchemaError
    from nextbest.decision.catalog import load_catalog
    from nextbest.scoring import ModelBundle

    catalog = catalog or load_catalog()
    loaded, versions = {}, {}
    for name in MODEL_NAMES:
        if name == NBO_MODEL_NAME and champion_version(name) is None:
            continue  # optional: data without product categories has no offer model
        model, version = load_champion(name)
        loaded[name] = unwrap(model)
        versions[name] = str(version.version)
    nbo = loaded.get(NBO_MODEL_NAME)
    if nbo is None:
        log.warning(
            "no '%s' version of %s: decisions are retention or no action only",
            CHAMPION,
            NBO_MODEL_NAME,
        )
    known = set(nbo.levels_.get("offer_id", [])) if nbo is not None else set()
    unknown = [o.offer_id for o in catalog.offers if o.offer_id not in known]
    if nbo is not None and unknown:
        raise SchemaError(
            f"offer catalog names offer(s) {unknown} that the champion {NBO_MODEL_NAME} "
            f"v{versions[NBO_MODEL_NAME]} was not trained on; retrain with `nextbest train`"
        )
    churn = loaded[CHURN_MODEL_NAME]
    return ModelBundle(
        clv=loaded[CLV_MODEL_NAME],
        catalog=catalog,
        churn=churn,
        nbo=nbo,
        churn_horizon_days=float(getattr(churn, "horizon_days_", 30)),
        versions=versions,
    )
