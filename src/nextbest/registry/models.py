"""The model registry: one logging path, the ``champion`` alias, loading by alias or version.

Every nextbest model is logged the same way (:func:`log_model`): pickled with
:meth:`~nextbest.models.base.BaseModel.save`, wrapped in the one pyfunc
(:class:`~nextbest.registry.pyfunc.NextbestPyfunc`) under the artifact key
``model``, with a signature and an input example, registered under its name
and promoted to ``champion`` only when its gate passed.

Models are loaded by registry URI (``models:/nextbest-clv@champion``), never
by digging a path out of an artifact URI.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from nextbest.decision.catalog import Catalog, load_catalog
from nextbest.errors import CatalogError, NoChampionError
from nextbest.models.base import library_versions
from nextbest.scoring import ModelSet

CLV_MODEL_NAME = "nextbest-clv"
CHURN_MODEL_NAME = "nextbest-churn"
NBO_MODEL_NAME = "nextbest-nbo"
UPLIFT_MODEL_NAME = "nextbest-uplift"
MODEL_NAMES = (CLV_MODEL_NAME, CHURN_MODEL_NAME, NBO_MODEL_NAME, UPLIFT_MODEL_NAME)
OPTIONAL_MODELS = (NBO_MODEL_NAME, UPLIFT_MODEL_NAME)
REQUIRED_MODELS = (CLV_MODEL_NAME, CHURN_MODEL_NAME)  # the offer model is optional
CHAMPION = "champion"
# Libraries pinned in each logged model's requirements (those its behaviour depends on).
PINNED = ("lifetimes", "lightgbm", "scikit-learn", "scipy", "pandas", "numpy")

log = logging.getLogger(__name__)
_said = {"pickle": False}


class _LogWriter(io.TextIOBase):
    """A text stream whose lines go to a logger at INFO (for libraries that print)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self.logger.info(line.strip())
        return len(text)


def champion_version(name: str) -> Any | None:
    """The registered model version behind the ``champion`` alias, or ``None``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def missing_champions(names: tuple[str, ...] = REQUIRED_MODELS) -> list[str]:
    """The names among ``names`` that have no ``champion`` yet."""
    return [n for n in names if champion_version(n) is None]


def promote(name: str, version: str | int) -> None:
    """Point the ``champion`` alias of ``name`` at ``version``."""
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, CHAMPION, str(version))


def pyfunc_input(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame as the pyfunc signature declares it: ids as str, integers as doubles.

    MLflow's schema check rejects float input for a column logged as integer,
    so integers are declared (and sent) as doubles.
    """
    out = frame.astype(
        {c: "float64" for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])}
    )
    if "customer_id" in out.columns:
        out["customer_id"] = out["customer_id"].astype(str)
    return out


def log_model(
    model,
    example: pd.DataFrame,
    name: str,
    promote_if: bool,
    register: bool = True,
    metadata: dict | None = None,
    params: dict | None = None,
) -> tuple[str | None, bool]:
    """Log ``model`` as a pyfunc with a signature, register it and promote it if ``promote_if``.

    Parameters
    ----------
    model : nextbest model
        A fitted model with ``save``/``load`` and ``predict(frame, **params)``.
    example : DataFrame
        A few input rows (the signature and input example are built from it);
        their ``customer_id`` is replaced by ``example-0``, ``example-1``, ...
        so that no real customer's id is kept in MLflow.
    name : str
        Registered model name, e.g. ``nextbest-clv``.
    promote_if : bool
        Whether the gate passed: only then does ``champion`` move.
    params : dict, optional
        Inference parameters with their defaults (e.g. ``{"horizon_days": 365.0}``).

    Returns
    -------
    (version, promoted)
        ``version`` is ``None`` when not registering.
    """
    import mlflow
    from mlflow.models import infer_signature

    # Importing the wrapper imports mlflow.pyfunc: deferred with mlflow itself.
    from nextbest.registry.pyfunc import ARTIFACT_KEY, NextbestPyfunc, class_path

    libs = library_versions()
    reqs = [f"{p}=={libs[p]}" for p in PINNED if p in libs]
    example = pyfunc_input(example)
    if "customer_id" in example.columns:  # MLflow keeps the example: no real customer's id in it
        example = example.assign(customer_id=[f"example-{i}" for i in range(len(example))])
    output = model.predict(example, **(params or {}))
    with tempfile.TemporaryDirectory() as tmp:
        path = model.save(Path(tmp) / "model.pkl")
        signature = infer_signature(example, output, params=params)
        # MLflow prints "Successfully registered model ..." straight to stderr: into the log.
        with warnings.catch_warnings(), contextlib.redirect_stderr(_LogWriter(log)):
            warnings.simplefilter("ignore")
            info = mlflow.pyfunc.log_model(
                name=name.replace("nextbest-", ""),
                python_model=NextbestPyfunc(class_path(type(model))),
                artifacts={ARTIFACT_KEY: str(path)},
                signature=signature,
                input_example=example,
                registered_model_name=name if register else None,
                pip_requirements=reqs,
                metadata=metadata or {},
            )
    if not _said["pickle"]:
        _said["pickle"] = True
        log.warning(
            "models are saved with pickle: load them only from an MLflow registry you trust"
        )
    mlflow.set_tag(f"{name}.promoted", str(bool(register and promote_if)))
    if not register:
        return None, False
    version = str(info.registered_model_version)
    if promote_if:
        promote(name, version)
    return version, bool(promote_if)


def load_pyfunc(name: str, ref: str = CHAMPION):
    """Load ``name`` by alias or version number as an MLflow pyfunc model.

    Returns ``(pyfunc_model, model_version)``.

    Raises
    ------
    NoChampionError
        If no version carries the alias (or has that number).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        mv = (
            client.get_model_version(name, ref)
            if str(ref).isdigit()
            else client.get_model_version_by_alias(name, ref)
        )
    except MlflowException as exc:
        hint = "; run `nextbest train` first" if ref == CHAMPION else ""
        raise NoChampionError(
            f"no {ref!r} version of model {name!r} in {mlflow.get_tracking_uri()}{hint}"
        ) from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
    return model, mv


def load_model(name: str, ref: str = CHAMPION):
    """The nextbest model object registered as ``name`` at ``ref`` (alias or version).

    Returns ``(model, model_version)``.
    """
    pyfunc_model, mv = load_pyfunc(name, ref)
    return pyfunc_model.unwrap_python_model().model, mv


def load_models(catalog: Catalog | None = None, need_clv: bool = True) -> ModelSet:
    """The ``champion`` of every model as a :class:`~nextbest.scoring.ModelSet`.

    The offer model is optional (``nbo is None`` when it has no champion,
    e.g. data without product categories): decisions are then retention or
    no action only. So is the uplift model (``nextbest-uplift``, trained from
    a campaign log): with it, the offers it covers are chosen by their
    incremental value.

    Raises
    ------
    NoChampionError
        If the CLV or churn model has no champion yet (with ``need_clv``;
        without it, for customers known by attributes only, every model is
        optional).
    CatalogError
        If the catalog names an offer the champion offer model was not trained on.
    """
    catalog = catalog or load_catalog()
    loaded, versions = {}, {}
    optional = OPTIONAL_MODELS if need_clv else MODEL_NAMES
    for name in MODEL_NAMES:
        if name in optional and champion_version(name) is None:
            if name == NBO_MODEL_NAME:
                log.warning(
                    "no '%s' version of %s: decisions are retention or no action only",
                    CHAMPION,
                    NBO_MODEL_NAME,
                )
            continue
        loaded[name], mv = load_model(name)
        versions[name] = str(mv.version)
    nbo = loaded.get(NBO_MODEL_NAME)
    if nbo is not None:
        known = set(nbo.levels_.get("offer_id", []))
        unknown = [o.offer_id for o in catalog.offers if o.offer_id not in known]
        if unknown:
            raise CatalogError(
                f"offer catalog names offer(s) {unknown} that the champion {NBO_MODEL_NAME} "
                f"v{versions[NBO_MODEL_NAME]} was not trained on; retrain with `nextbest train`"
            )
    return ModelSet(
        clv=loaded.get(CLV_MODEL_NAME),
        catalog=catalog,
        churn=loaded.get(CHURN_MODEL_NAME),
        nbo=nbo,
        uplift=loaded.get(UPLIFT_MODEL_NAME),
        versions=versions,
        label=CHAMPION,
    )
