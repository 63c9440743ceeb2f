"""Batch scoring of a whole customer base: data -> features -> ``scoring.score`` -> file.

The same :func:`nextbest.scoring.score` as the HTTP service. Two ways in:

* :func:`score_dataset` - everything in memory (small data); :func:`run_main_job`
  (``nextbest run``) trains first if a champion is missing;
* :func:`nextbest.batch.job.run_local` (``nextbest score``) - streams
  customer chunks with bounded memory, resumable, atomic output; and
  :func:`nextbest.batch.spark.run_spark` (``--engine spark``) - the same
  chunk functions on Spark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nextbest import registry
from nextbest.batch.output import rejects_path, write_rejects, write_scores
from nextbest.batch.report import write_score_report
from nextbest.config import settings
from nextbest.data import Dataset
from nextbest.data.schema import ValidationReport, validate_transactions, without_customers
from nextbest.decision.catalog import load_catalog
from nextbest.features.build import build_context, category_popularity, features_at
from nextbest.scoring import ModelSet, score, top_customers
from nextbest.train.clv import default_as_of
from nextbest.train.pipeline import train_if_missing

__all__ = [
    "BatchResult",
    "MainJobResult",
    "customer_rows",
    "run_main_job",
    "score_dataset",
    "write_scores",
    "rejects_path",
    "write_rejects",
]


@dataclass
class BatchResult:
    scores: pd.DataFrame
    rejects: pd.DataFrame
    report: ValidationReport
    as_of: pd.Timestamp
    seconds: float


def customer_rows(
    dataset: Dataset,
    as_of,
    time_unit_days: float,
    categories: tuple[str, ...],
    channels: tuple[str, ...] = (),
):
    """Validated feature rows at ``as_of`` for every customer, opted-out ones with no features.

    Returns (features, popularity, rejects, report).
    """
    checked = validate_transactions(dataset.transactions, as_of=as_of)
    gone_ids = dataset.opted_out
    tx = checked.transactions
    seen_opted_out = sorted(gone_ids & set(tx["customer_id"].unique()))
    tx = without_customers(tx, gone_ids)
    ctx = build_context(tx, dataset.customers, categories, dataset.extras, channels)
    features = features_at(ctx, as_of, time_unit_days)
    if seen_opted_out:
        gone = pd.DataFrame({"customer_id": seen_opted_out, "consent_profiling": False})
        features = pd.concat([features, gone], ignore_index=True).sort_values(
            "customer_id", ignore_index=True
        )
    return features, category_popularity(ctx, as_of), checked.rejects, checked.report


def score_dataset(
    dataset: Dataset,
    models: ModelSet,
    as_of,
    horizon_days: float,
    contact_history: pd.DataFrame | None = None,
) -> BatchResult:
    """Score every customer of ``dataset`` seen before ``as_of`` (all in memory)."""
    started = time.perf_counter()
    as_of = pd.Timestamp(as_of)
    features, popularity, rejects, report = customer_rows(
        dataset,
        as_of,
        float(models.clv.time_unit_days),
        models.catalog.categories,
        models.catalog.channel_names,
    )
    scores = score(features, models, horizon_days, popularity, contact_history, as_of)
    return BatchResult(scores, rejects, report, as_of, time.perf_counter() - started)


@dataclass
class MainJobResult:
    """What ``nextbest run`` decided: every customer's scores, as of when, with which models.

    The scores are also written to ``NEXTBEST_HOME/scores/<dataset>.parquet``
    with the scoring report beside them (``report``).
    """

    scores: pd.DataFrame
    as_of: pd.Timestamp
    versions: dict[str, str]
    output: Path
    report: Path

    def top(self, n: int) -> pd.DataFrame:
        """The ``n`` customers with the highest predicted CLV."""
        return top_customers(self.scores, n)


def run_main_job(
    dataset: Dataset, configs: dict[str, dict], horizon_days: float, on_training=None
) -> MainJobResult:
    """Train on ``dataset`` if a champion is missing, then decide for every customer in it.

    ``on_training(missing)`` is called before training (to tell the user).
    Customers are scored as of the day after the dataset's last transaction.
    """
    paths = settings().paths.ensure()
    catalog = load_catalog()
    train_if_missing(dataset, configs, catalog, paths, on_training=on_training)
    models = registry.load_models(catalog)
    result = score_dataset(dataset, models, default_as_of(dataset.transactions), horizon_days)
    output = write_scores(result.scores, paths.root / "scores" / f"{dataset.name}.parquet")
    report = write_score_report(output, catalog)
    return MainJobResult(result.scores, result.as_of, models.versions, output, report.path)
