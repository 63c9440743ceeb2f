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

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.config import Paths, config_hash
from nextbest.data import Dataset
from nextbest.data.history import write_history
from nextbest.data.snapshot import snapshot_files, write_snapshot
from nextbest.decision.catalog import Catalog
from nextbest.errors import GateFailedError, InputError, NotApplicableError
from nextbest.events.fold import fold_events
from nextbest.features.build import build_context, category_popularity, features_at
from nextbest.plots import classifier as pc
from nextbest.registry import (
    CHURN_MODEL_NAME,
    CLV_MODEL_NAME,
    MODEL_NAMES,
    NBO_MODEL_NAME,
    UPLIFT_MODEL_NAME,
    champion_version,
    flatten,
    log_model,
    missing_champions,
    setup,
)
from nextbest.train.churn import ChurnResult, train_churn
from nextbest.train.clv import TrainResult, default_as_of, prepare_transactions, train_clv
from nextbest.train.nbo import NboResult, train_nbo
from nextbest.train.uplift import UpliftResult, prepare_campaign_log, run_uplift, uplift_features

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    run_id: str
    as_of: pd.Timestamp
    clv: TrainResult | None  # None without transactions
    churn: ChurnResult | None
    nbo: NboResult | None
    versions: dict[str, str | None]
    promoted: dict[str, bool]
    snapshot: Path | None
    seconds: float
    uplift: UpliftResult | None = None
    notes: list[str] = field(default_factory=list)


def _log_classifier_run(
    name: str,
    result: ChurnResult | NboResult,
    config: dict,
    extra_tables: dict[str, pd.DataFrame],
    figures: dict,
    register: bool,
) -> tuple[str | None, bool]:
    import mlflow

    mlflow.log_params(flatten("config", config))
    mlflow.log_params({"cutoffs": ",".join(str(c.date()) for c in result.cutoffs)})
    mlflow.log_metrics({k: float(v) for k, v in result.metrics.items() if np.isfinite(v)})
    mlflow.log_dict(result.gate, "model/gate.json")
    mlflow.log_text(result.importance.to_csv(index=False), "model/feature_importance.csv")
    for fname, table in extra_tables.items():
        mlflow.log_text(table.to_csv(index=False), fname)
    for fname, fig in figures.items():
        mlflow.log_figure(fig, fname)
    return log_model(
        result.model,
        result.example,
        name,
        promote_if=result.gate["passed"],
        register=register,
        metadata={"config_hash": config_hash(config)},
    )


def run_churn(
    ctx, dataset_name: str, as_of, configs: dict[str, dict], count_model: str, register: bool = True
) -> tuple[ChurnResult, str | None, bool]:
    """Train churn in a (nested) MLflow run; log, register, promote.

    Returns ``(result, version, promoted)``.
    """
    import mlflow

    with mlflow.start_run(
        run_name=f"churn-{dataset_name}-{pd.Timestamp(as_of).date()}",
        nested=mlflow.active_run() is not None,
    ):
        mlflow.set_tags({"dataset": dataset_name, "stage": "churn"})
        churn = train_churn(ctx, as_of, configs["churn"], configs["clv"], count_model)
        mlflow.set_tag("validation_notes", " | ".join(churn.notes)[:5000])
        tables = {f"evaluation/calibration_{k}.csv": v for k, v in churn.calibration.items()}
        tables.update({f"evaluation/lift_{k}.csv": v for k, v in churn.lift.items()})
        figs = {
            "plots/calibration.png": pc.calibration_plot(churn.calibration),
            "plots/lift_by_decile.png": pc.lift_plot(churn.lift),
            "plots/feature_importance.png": pc.importance_plot(churn.importance),
        }
        version, promoted = _log_classifier_run(
            CHURN_MODEL_NAME, churn, configs["churn"], tables, figs, register
        )
    return churn, version, promoted


def run_nbo(
    ctx, dataset_name: str, as_of, configs: dict[str, dict], catalog: Catalog, register: bool = True
) -> tuple[NboResult, str | None, bool]:
    """Train the offer model in a (nested) MLflow run; log, register, promote.

    When the learned model fails its gate, the best baseline policy
    (:class:`~nextbest.models.offer_baselines.BaselineOfferModel`) is registered too and becomes
    ``champion`` unless a learned champion is already in place (:func:`_promote_baseline`); a
    later learned model that passes the gate takes over as usual.

    Returns ``(result, version, promoted)`` of the version that became champion (the learned
    model's version and ``False`` when none did).
    """
    import mlflow

    day = pd.Timestamp(as_of).date()
    with mlflow.start_run(
        run_name=f"nbo-{dataset_name}-{day}", nested=mlflow.active_run() is not None
    ):
        mlflow.set_tags({"dataset": dataset_name, "stage": "nbo", "policy": "learned"})
        mlflow.log_dict(catalog.as_dict(), "catalog.json")
        nbo = train_nbo(
            ctx, as_of, configs["nbo"], catalog, float(configs["clv"]["time_unit_days"])
        )
        mlflow.set_tag("validation_notes", " | ".join(nbo.notes)[:5000])
        figs = {"plots/feature_importance.png": pc.importance_plot(nbo.importance)}
        version, promoted = _log_classifier_run(
            NBO_MODEL_NAME,
            nbo,
            configs["nbo"],
            {"evaluation/per_offer.csv": nbo.per_offer},
            figs,
            register,
        )
        _tag_version(version, "learned")
    if promoted or nbo.baseline is None or not register or not _promote_baseline():
        return nbo, version, promoted
    with mlflow.start_run(
        run_name=f"nbo-baseline-{dataset_name}-{day}", nested=mlflow.active_run() is not None
    ):
        policy = f"baseline:{nbo.baseline.policy}"
        mlflow.set_tags({"dataset": dataset_name, "stage": "nbo", "policy": policy})
        mlflow.log_text(
            nbo.baseline.feature_importance().to_csv(index=False), "model/conversion_rates.csv"
        )
        version, promoted = log_model(
            nbo.baseline,
            nbo.example,
            NBO_MODEL_NAME,
            promote_if=True,
            register=register,
            metadata={"config_hash": config_hash(configs["nbo"]), "policy": policy},
        )
        _tag_version(version, policy)
    nbo.notes.append(
        f"{NBO_MODEL_NAME} v{version}: the {nbo.baseline.display_name} is champion until a "
        "learned model passes the gate"
    )
    return nbo, version, promoted


def _tag_version(version: str | None, policy: str) -> None:
    """Tag a registered ``nextbest-nbo`` version with its policy (``learned`` or
    ``baseline:<name>``)."""
    from mlflow import MlflowClient

    if version is not None:
        MlflowClient().set_model_version_tag(NBO_MODEL_NAME, version, "policy", policy)


def _promote_baseline() -> bool:
    """A baseline policy may become champion when there is none, or the champion is a baseline
    itself (its rates are refreshed); a learned champion is only replaced by a learned model
    that passes the gate."""
    current = champion_version(NBO_MODEL_NAME)
    return current is None or str(current.tags.get("policy", "")).startswith("baseline")


def train_all(
    dataset: Dataset,
    configs: dict[str, dict],
    catalog: Catalog,
    as_of=None,
    paths: Paths | None = None,
    register: bool = True,
) -> PipelineResult:
    """Train every model ``dataset`` supports, on data before ``as_of``; log, register, promote.

    With transactions: CLV, churn and next best offer, then the serving
    snapshot. With a campaign log: the uplift model too (alone for customers
    known by attributes only: CLV, churn and offers need transactions and are
    skipped with a note).
    """
    import mlflow

    started = time.perf_counter()
    paths = (paths or Paths.from_env()).ensure()
    folded = fold_events(dataset, paths)  # consent, purchases and contacts from the event store
    dataset = folded.dataset
    has_tx = dataset.has_transactions
    if as_of is not None:
        as_of = pd.Timestamp(as_of)
    elif has_tx:
        as_of = default_as_of(dataset.transactions)
    elif dataset.default_as_of is not None:
        as_of = pd.Timestamp(dataset.default_as_of)
    else:
        raise InputError("without transactions, give --as-of (the first day not observed)")
    if not has_tx and dataset.campaign_log is None:
        raise InputError("nothing to train: no transactions and no campaign log")
    setup(paths)
    unit = float(configs["clv"]["time_unit_days"])
    notes: list[str] = []
    clv = churn = nbo = snapshot = None
    versions: dict[str, str | None] = {}
    promoted: dict[str, bool] = {}
    with mlflow.start_run(run_name=f"pipeline-{dataset.name}-{as_of.date()}") as parent:
        mlflow.set_tags({"dataset": dataset.name, "stage": "pipeline", "as_of": str(as_of.date())})
        mlflow.log_dict(catalog.as_dict(), "catalog.json")
        tx = None
        if has_tx:
            prepared = prepare_transactions(dataset, as_of)
            tx = prepared[0]
            ctx = build_context(
                tx, dataset.customers, catalog.categories, dataset.extras, catalog.channel_names
            )
            clv = train_clv(
                dataset,
                configs["clv"],
                as_of=as_of,
                paths=paths,
                register=register,
                prepared=prepared,
                ctx=ctx,
            )
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
            versions = {
                CLV_MODEL_NAME: clv.version,
                CHURN_MODEL_NAME: churn_version,
                NBO_MODEL_NAME: nbo_version,
            }
            promoted = {
                CLV_MODEL_NAME: clv.promoted,
                CHURN_MODEL_NAME: churn_promoted,
                **({NBO_MODEL_NAME: nbo_promoted} if nbo is not None else {}),
            }
        else:
            notes.append(
                "no transactions: CLV, churn and next best offer need them and were skipped; "
                "the uplift model decides from customer attributes alone"
            )
        uplift = None
        if dataset.campaign_log is not None:
            campaign = prepare_campaign_log(dataset.campaign_log, catalog, as_of, tx)
            features = uplift_features(dataset.customers, tx, as_of, unit, catalog, dataset.extras)
            uplift, versions[UPLIFT_MODEL_NAME] = run_uplift(
                dataset.name, campaign, features, catalog, configs["uplift"], register
            )
            promoted[UPLIFT_MODEL_NAME] = True
            notes += uplift.notes
            if len(campaign.rejects):
                notes.append(f"campaign log: {len(campaign.rejects):,} row(s) rejected")
        if has_tx:
            features = features_at(ctx, as_of, unit)
            meta = {
                "as_of": str(as_of.date()),
                "time_unit_days": unit,
                "popularity": category_popularity(ctx, as_of),
                "dataset": dataset.name,
                "pipeline_run_id": parent.info.run_id,
                "events_head": folded.head,
                "versions": versions,
            }
            # before the snapshot: the service reloads on it
            write_history(tx, folded.contacts, paths)
            snapshot = write_snapshot(features, dataset.opted_out, meta, paths)
        seconds = time.perf_counter() - started
        mlflow.log_metric("pipeline_seconds", seconds)
        if notes:
            mlflow.set_tag("notes", " | ".join(notes)[:5000])
        return PipelineResult(
            run_id=parent.info.run_id,
            as_of=as_of,
            clv=clv,
            churn=churn,
            nbo=nbo,
            versions=versions,
            promoted=promoted,
            snapshot=snapshot,
            seconds=seconds,
            uplift=uplift,
            notes=notes,
        )


def needs_training(paths: Paths, serving: bool = False) -> list[str]:
    """What is missing before scoring (``serving=False``) or serving can start.

    Scoring needs a ``champion`` of the CLV and churn models (the offer model
    is optional: data without categories has none). Serving also needs the
    feature snapshot. Returns the missing parts by name (empty: nothing to do).
    """
    setup(paths)
    missing = missing_champions()
    if serving and not snapshot_files(paths)[0].exists():
        missing.append("feature snapshot")
    return missing


def train_if_missing(
    dataset: Dataset,
    configs: dict[str, dict],
    catalog: Catalog,
    paths: Paths,
    serving: bool = False,
    on_training=None,
) -> PipelineResult | None:
    """Train everything on ``dataset`` if :func:`needs_training` finds something missing.

    ``on_training(missing)`` is called first (e.g. to tell the user). Returns
    the pipeline result, or ``None`` when nothing was missing.

    Raises
    ------
    ModelError
        If the freshly trained CLV or churn model failed its promotion gate:
        there is still nothing to score with.
    """
    missing = needs_training(paths, serving)
    if not missing:
        return None
    if on_training is not None:
        on_training(missing)
    pipe = train_all(dataset, configs, catalog, paths=paths)
    failed = [n for n in MODEL_NAMES if n in missing and not pipe.promoted.get(n, True)]
    if failed:
        raise GateFailedError(
            f"trained models did not pass their promotion gates: {failed}; "
            f"see the MLflow run {pipe.run_id}"
        )
    return pipe
