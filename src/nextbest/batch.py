"""Batch scoring of a whole customer base: data -> features -> ``scoring.score`` -> file.

The same :func:`nextbest.scoring.score` as the HTTP service; this module adds
validation with rejects, consent handling and the file format.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nextbest.data import Dataset
from nextbest.data.schema import ValidationReport, validate_transactions
from nextbest.features.build import build_context, category_popularity, features_at
from nextbest.scoring import ModelBundle, score, to_file_frame


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
        features = pd.concat([features, gone], ignore_index=True).sort_values("customer_id", ignore_index=True)
    return features, category_popularity(ctx, as_of), checked.rejects, checked.report


def score_dataset(dataset: Dataset, models: ModelBundle, as_of, horizon_days: float,
                  contact_history: pd.DataFrame | None = None) -> BatchResult:
    """Score every customer of ``dataset`` seen before ``as_of``."""
    started = time.perf_counter()
    as_of = pd.Timestamp(as_of)
    features, popularity, rejects, report = customer_rows(
        dataset, as_of, float(models.clv.time_unit_days), models.catalog.categories)
    scores = score(features, models, horizon_days, popularity, contact_history, as_of)
    return BatchResult(scores, rejects, report, as_of, time.perf_counter() - started)


def write_scores(scores: pd.DataFrame, output: Path) -> Path:
    """Write ``.parquet`` or ``.csv`` atomically (temporary file, then rename)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    csv = output.suffix.lower() == ".csv"
    frame = to_file_frame(scores, csv)
    tmp = output.with_name(output.name + ".tmp")
    if csv:
        frame.to_csv(tmp, index=False)
    else:
        frame.to_parquet(tmp, index=False)
    tmp.replace(output)
    return output


def rejects_path(output: Path) -> Path:
    """``scores.parquet`` -> ``scores.rejects.parquet``."""
    output = Path(output)
    return output.with_name(output.stem + ".rejects.parquet")


def write_rejects(rejects: pd.DataFrame, output: Path) -> Path | None:
    if rejects.empty:
        return None
    path = rejects_path(output)
    rejects.astype(str).to_parquet(path, index=False)
    return path
