"""The whole training pipeline: CLV, then churn and next-best-offer, then the serving snapshot.

One parent MLflow run holds three nested runs (``clv``, ``churn``, ``nbo``);
each logs its config, metrics against baselines, plots and model, registers
``nextbest-clv`` / ``nextbest-churn`` / ``nextbest-nbo`` and moves the
``champion`` alias only past the thresholds of ``models/*.yaml``. Customers
who objected to profiling are removed before any of it.

The feature snapshot written at the end (``NEXTBEST_HOME/snapshots``) is what
the HTTP service loads: one feature row per customer at ``as_of`` (opted-out
customers present with ``consent_profiling = false`` and no features).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.config import Paths, config_hash
from nextbest.data import Dataset
from nextbest.decision.catalog import Catalog
from nextbest.errors import NotApplicableError
from nextbest.features.build import build_context, category_popularity, features_at
from nextbest.train.clv import TrainResult, default_as_of, prepare_transactions, train_clv

SNAPSHOT_FILE = "features.parquet"
SNAPSHOT_META = "features.json"


@dataclass
class PipelineResult:
    run_id: str
    as_of: pd.Timestamp
    clv: TrainResult
    churn: object
    nbo: object | None
    versions: dict[str, str | None]
    promoted: dict[str, bool]
    snapshot: Path
    seconds: float


def write_snapshot(features: pd.DataFrame, opted_out: list[str], meta: dict, paths: Paths) -> Path:
    """Write the serving snapshot atomically (features + a JSON side file)."""
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
    path = paths.snapshots / SNAPSHOT_FILE
    tmp = path.with_name(path.name + ".tmp")
    rows.to_parquet(tmp, index=False)
    tmp.replace(path)
    meta_path = paths.snapshots / SNAPSHOT_META
    meta_path.with_name(meta_path.name + ".tmp").write_text(json.dumps(meta, indent=2, default=str))
    meta_path.with_name(meta_path.name + ".tmp").replace(meta_path)
    return path


def load_snapshot(paths: Paths | None = None) -> tuple[pd.DataFrame, dict]:
    """The serving snapshot and its metadata (``as_of``, ``popularity``, ``time_unit_days``)."""
    paths = paths or Paths.from_env()
    path = paths.snapshots / SNAPSHOT_FILE
    if not path.exists():
        raise LookupError(f"no feature snapshot at {path}; run `nextbest train` first")
    return pd.read_parquet(path), json.loads((paths.snapshots / SNAPSHOT_META).read_text())


def _log_classifier_run(
    name: str,
    result,
    config: dict,
    extra_tables: dict[str, pd.DataFrame],
    figures: dict,
    python_model,
    register: bool,
) -> tuple[str | None, bool]:
    import mlflow

    from nextbest import tracking

    mlflow.log_params(tracking.flatten("config", config))
    mlflow.log_params({"cutoffs": ",".join(str(c.date()) for c in result.cutoffs)})
    mlflow.log_metrics({k: float(v) for k, v in result.metrics.items() if np.isfinite(v)})
    mlflow.log_dict(result.gate, "model/gate.json")
    mlflow.log_text(result.importance.to_csv(index=False), "model/feature_importance.csv")
    for fname, table in extra_tables.items():
        mlflow.log_text(table.to_csv(index=False), fname)
    for fname, fig in figures.items():
        mlflow.log_figure(fig, fname)
    output = result.model.predict(result.example)
    return tracking.log_model(
        python_model,
        result.model,
        result.example,
        output,
        name,
        promote_if=result.gate["passed"],
        register=register,
        metadata={"config_hash": config_hash(config)},
    )


def run_churn(
    ctx, dataset_name: str, as_of, configs: dict[str, dict], count_model: str, register: bool = True
):
    """Train churn in a (nested) MLflow run; log, register, promote. Returns (result, version,
    promoted)."""
    import mlflow

    from nextbest import plots_classifier as pc
    from nextbest import tracking
    from nextbest.models.pyfunc import ProbaPyfunc
    from nextbest.train.churn import train_churn

    with mlflow.start_run(
        run_name=f"churn-{dataset_name}-{pd.Timestamp(as_of).date()}",
        nested=mlflow.active_run() is not None,
    ):
        mlflow.set_tags({"dataset": dataset_name, "stage": "churn"})
        churn = train_churn(ctx, as_of, configs["churn"], configs["clv"], count_model)
        tables = {f"evaluation/calibration_{k}.csv": v for k, v in churn.calibration.items()}
        tables.update({f"evaluation/lift_{k}.csv": v for k, v in churn.lift.items()})
        figs = {
            "plots/calibration.png": pc.calibration_plot(churn.calibration),
            "plots/lift_by_decile.png": pc.lift_plot(churn.lift),
            "plots/feature_importance.png": pc.importance_plot(churn.importance),
        }
        version, promoted = _log_classifier_run(
            tracking.CHURN_MODEL_NAME,
            churn,
            configs["churn"],
            tables,
            figs,
            ProbaPyfunc("churn"),
            register,
        )
    return churn, version, promoted


def run_nbo(
    ctx, dataset_name: str, as_of, configs: dict[str, dict], catalog: Catalog, register: bool = True
):
    """Train the offer model in a (nested) MLflow run; log, register, promote. Returns (result,
    version, promoted)."""
    import mlflow

    from nextbest import plots_classifier as pc
    from nextbest import tracking
    from nextbest.models.pyfunc import ProbaPyfunc
    from nextbest.train.nbo import train_nbo

    with mlflow.start_run(
        run_name=f"nbo-{dataset_name}-{pd.Timestamp(as_of).date()}",
        nested=mlflow.active_run() is not None,
    ):
        mlflow.set_tags({"dataset": dataset_name, "stage": "nbo"})
        mlflow.log_dict(catalog.as_dict(), "catalog.json")
        nbo = train_nbo(
            ctx, as_of, configs["nbo"], catalog, float(configs["clv"]["time_unit_days"])
        )
        figs = {"plots/feature_importance.png": pc.importance_plot(nbo.importance)}
        version, promoted = _log_classifier_run(
            tracking.NBO_MODEL_NAME,
            nbo,
            configs["nbo"],
            {"evaluation/per_offer.csv": nbo.per_offer},
            figs,
            ProbaPyfunc("nbo"),
            register,
        )
    return nbo, version, promoted


def train_all(
    dataset: Dataset,
    configs: dict[str, dict],
    catalog: Catalog,
    as_of=None,
    paths: Paths | None = None,
    register: bool = True,
) -> PipelineResult:
    """Train CLV, churn and NBO on ``dataset`` before ``as_of``; log, register, promote; write the
    snapshot."""
    import mlflow

    from nextbest import tracking

    started = time.perf_counter()
    paths = (paths or Paths.from_env()).ensure()
    as_of = pd.Timestamp(as_of) if as_of is not None else default_as_of(dataset.transactions)
    tracking.setup(paths)
    prepared = prepare_transactions(dataset, as_of)
    tx = prepared[0]
    opted_out = (
        dataset.customers.loc[~dataset.customers["consent_profiling"], "customer_id"]
        .astype(str)
        .tolist()
    )
    unit = float(configs["clv"]["time_unit_days"])
    with mlflow.start_run(run_name=f"pipeline-{dataset.name}-{as_of.date()}") as parent:
        mlflow.set_tags({"dataset": dataset.name, "stage": "pipeline", "as_of": str(as_of.date())})
        mlflow.log_dict(catalog.as_dict(), "catalog.json")
        clv = train_clv(
            dataset, configs["clv"], as_of=as_of, paths=paths, register=register, prepared=prepared
        )
        ctx = build_context(tx, dataset.customers, catalog.categories, dataset.extras)

        churn, churn_version, churn_promoted = run_churn(
            ctx, dataset.name, as_of, configs, clv.model.count_model_used_, register
        )
        try:
            nbo, nbo_version, nbo_promoted = run_nbo(
                ctx, dataset.name, as_of, configs, catalog, register
            )
        except NotApplicableError as exc:
            mlflow.set_tag("nbo_skipped", str(exc))
            nbo, nbo_version, nbo_promoted = None, None, False

        features = features_at(ctx, as_of, unit)
        meta = {
            "as_of": str(as_of.date()),
            "time_unit_days": unit,
            "popularity": category_popularity(ctx, as_of),
            "dataset": dataset.name,
            "pipeline_run_id": parent.info.run_id,
            "versions": {
                tracking.CLV_MODEL_NAME: clv.version,
                tracking.CHURN_MODEL_NAME: churn_version,
                tracking.NBO_MODEL_NAME: nbo_version,
            },
        }
        snapshot = write_snapshot(features, opted_out, meta, paths)
        seconds = time.perf_counter() - started
        mlflow.log_metric("pipeline_seconds", seconds)
        return PipelineResult(
            run_id=parent.info.run_id,
            as_of=as_of,
            clv=clv,
            churn=churn,
            nbo=nbo,
            versions=meta["versions"],
            promoted={
                tracking.CLV_MODEL_NAME: clv.promoted,
                tracking.CHURN_MODEL_NAME: churn_promoted,
                **({tracking.NBO_MODEL_NAME: nbo_promoted} if nbo is not None else {}),
            },
            snapshot=snapshot,
            seconds=seconds,
        )
