"""Batch scoring of a whole customer base: data -> features -> ``scoring.score`` -> file.

The same :func:`nextbest.scoring.score` as the HTTP service. Two ways in:

* :func:`score_dataset` - everything in memory (small data, ``nextbest run``);
* :func:`nextbest.batch.job.run_local` (``nextbest score``) - streams
  customer chunks with bounded memory, resumable, atomic output; and
  :func:`nextbest.batch.spark.run_spark` (``--engine spark``) - the same
  chunk functions on Spark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from nextbest.batch.output import rejects_path, write_rejects, write_scores
from nextbest.data import Dataset
from nextbest.data.schema import ValidationReport, validate_transactions
from nextbest.features.build import build_context, category_popularity, features_at
from nextbest.scoring import ModelBundle, score

__all__ = [
    "BatchResult",
    "customer_rows",
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


def customer_rows(dataset: Dataset, as_of, time_unit_days: float, categories: tuple[str, ...]):
    """Validated feature rows at ``as_of`` for every customer, opted-out ones with no features.

    Returns (features, popularity, rejects, report).
    """
    checked = validate_transactions(dataset.transactions, as_of=as_of)
    cust = dataset.customers
    opted_out = set(cust.loc[~cust["consent_profiling"], "customer_id"].astype(str))
    tx = checked.transactions
    seen_opted_out = sorted(opted_out & set(tx["customer_id"].unique())) if opted_out else []
    if opted_out:
        tx = tx[~tx["customer_id"].isin(opted_out)]
    ctx = build_context(tx, cust, categories, dataset.extras)
    features = features_at(ctx, as_of, time_unit_days)
    if seen_opted_out:
        gone = pd.DataFrame({"customer_id": seen_opted_out, "consent_profiling": False})
        features = pd.concat([features, gone], ignore_index=True).sort_values(
            "customer_id", ignore_index=True
        )
    return features, category_popularity(ctx, as_of), checked.rejects, checked.report


def score_dataset(
    dataset: Dataset,
    models: ModelBundle,
    as_of,
    horizon_days: float,
    contact_history: pd.DataFrame | None = None,
) -> BatchResult:
    """Score every customer of ``dataset`` seen before ``as_of`` (all in memory)."""
    started = time.perf_counter()
    as_of = pd.Timestamp(as_of)
    features, popularity, rejects, report = customer_rows(
        dataset, as_of, float(models.clv.time_unit_days), models.catalog.categories
    )
    scores = score(features, models, horizon_days, popularity, contact_history, as_of)
    return BatchResult(scores, rejects, report, as_of, time.perf_counter() - started)
