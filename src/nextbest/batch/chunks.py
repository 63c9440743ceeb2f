"""What happens to one chunk of customers: validate, build features, score.

A *chunk* holds every transaction line of a set of customers (lines are
hash-partitioned by normalised ``customer_id``), so everything here is exact
per chunk: the validation rules (duplicates and refunds are per customer),
the behavioural features and the scores. The one global quantity, the
30-day category popularity the offer model uses, is summed from per-chunk
counts (:func:`popularity_counts`, :func:`popularity_from_counts`) before any
chunk is scored. The local and the Spark engine call the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from nextbest.data.schema import (
    ValidationReport,
    opted_out,
    validate_transactions,
    without_customers,
)
from nextbest.features.build import FeatureContext, demographic_columns, features_at
from nextbest.features.campaigns import coupon_departments
from nextbest.features.customer import PurchaseTable, day_number, purchase_table
from nextbest.scoring import ModelSet, score

ROW = "__nextbest_row__"  # global 0-based input row number carried through partitioning
OFFER_TYPE = pa.struct(
    [
        ("offer_id", pa.string()),
        ("category", pa.string()),
        ("p_convert", pa.float64()),
        ("expected_value", pa.float64()),
        ("channel", pa.string()),
    ]
)
REASON_TYPE = pa.struct([("code", pa.string()), ("text", pa.string())])
SCORES_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("p_alive", pa.float64()),
        ("expected_purchases", pa.float64()),
        ("expected_spend", pa.float64()),
        ("predicted_clv", pa.float64()),
        ("churn_probability", pa.float64()),
        ("action", pa.string()),
        ("action_offer_id", pa.string()),
        ("offers", pa.list_(OFFER_TYPE)),
        ("reasons", pa.list_(REASON_TYPE)),
        ("model_versions", pa.string()),
        ("consent_profiling", pa.bool_()),
        ("as_of", pa.timestamp("us")),
        ("horizon_days", pa.float64()),
        ("channel", pa.string()),
        ("group", pa.string()),
        ("propensity", pa.float64()),
    ]
)
"""The scores file, whatever the engine (Parquet; CSV holds ``offers``/``reasons`` as JSON text)."""


def normalise_ids(values: pd.Series) -> pd.Series:
    """``customer_id`` as the validator sees it: text, surrounding whitespace removed, missing as
    ``""``."""
    return values.astype("string").str.strip().fillna("")


def bucket_of(ids: pd.Series, n_buckets: int) -> np.ndarray:
    """Stable bucket number in ``[0, n_buckets)`` of each (raw) customer id.

    Same normalised id, same bucket, in every process and on every machine
    (pandas' keyed SipHash). Missing and blank ids all land in one bucket,
    where validation rejects them.
    """
    if n_buckets <= 1:
        return np.zeros(len(ids), dtype="int64")
    keys = normalise_ids(pd.Series(ids)).to_numpy(dtype=object)
    return (pd.util.hash_array(keys, categorize=False) % np.uint64(n_buckets)).astype("int64")


@dataclass
class ChunkData:
    """Validated lines of one chunk and their rejects (rows numbered as in the whole input)."""

    transactions: pd.DataFrame
    rejects: pd.DataFrame
    report: ValidationReport
    rows: np.ndarray  # input row number of each clean line


def validate_chunk(raw: pd.DataFrame, as_of) -> ChunkData:
    """Validate one chunk's raw lines; ``raw[ROW]`` holds each line's row number in the whole input.

    Lines are put back in input order first, so "all but the first duplicate"
    means the same rows as validating the whole file at once.
    """
    raw = raw.sort_values(ROW, kind="stable") if not raw[ROW].is_monotonic_increasing else raw
    rows = raw[ROW].to_numpy(dtype="int64")
    checked = validate_transactions(raw.drop(columns=ROW).reset_index(drop=True), as_of=as_of)
    rejects = checked.rejects
    clean_rows = rows
    if len(rejects):
        local = rejects["row"].to_numpy(dtype="int64")
        # The validator keeps clean lines in input order, so they are the lines not rejected.
        clean_rows = np.delete(rows, local)
        rejects = (
            rejects.assign(row=rows[local]).sort_values("row", kind="stable").reset_index(drop=True)
        )
    return ChunkData(checked.transactions, rejects, checked.report, clean_rows)


@dataclass
class FeatureSetup:
    """What every chunk shares for feature building (computed once per job)."""

    categories: tuple[str, ...]
    time_unit_days: float
    extras: dict
    coupon_dept: pd.DataFrame | None
    demographics: list[str]
    channels: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        customers: pd.DataFrame,
        categories: tuple[str, ...],
        time_unit_days: float,
        extras: dict | None = None,
        channels: tuple[str, ...] = (),
    ) -> FeatureSetup:

        extras = extras or {}
        return cls(
            tuple(categories),
            float(time_unit_days),
            extras,
            coupon_departments(extras) if extras else None,
            demographic_columns(customers),
            tuple(channels),
        )


def chunk_features(
    transactions: pd.DataFrame, customers: pd.DataFrame, setup: FeatureSetup, as_of
) -> tuple[pd.DataFrame, PurchaseTable | None]:
    """Feature rows at ``as_of`` of one chunk, opted-out customers as rows with no features.

    Same rows as :func:`nextbest.batch.customer_rows` on the whole data:
    opted-out customers' lines are dropped before any feature is built and
    those customers come back with ``consent_profiling = false`` only.
    Returns the features (sorted by ``customer_id``) and the purchase table
    (for :func:`popularity_counts`; ``None`` when nothing is left to profile).
    """
    gone_ids = opted_out(customers)
    seen_opted_out = sorted(gone_ids & set(transactions["customer_id"].unique()))
    tx = without_customers(transactions, gone_ids)
    table = None
    features = pd.DataFrame(
        {"customer_id": pd.Series([], dtype=object), "consent_profiling": pd.Series([], dtype=bool)}
    )
    if len(tx):
        table = purchase_table(tx, setup.categories, setup.channels)
        ctx = FeatureContext(table, customers, setup.extras, setup.coupon_dept, setup.demographics)
        features = features_at(ctx, as_of, setup.time_unit_days)
    if seen_opted_out:
        gone = pd.DataFrame({"customer_id": seen_opted_out, "consent_profiling": False})
        features = pd.concat([features, gone], ignore_index=True) if len(features) else gone
        features = features.sort_values("customer_id", ignore_index=True)
    return features, table


def popularity_counts(
    table: PurchaseTable | None, as_of, n_categories: int, days: int = 30
) -> tuple[int, list[int]]:
    """Active customers and buyers per category in the ``days`` before ``as_of`` (one chunk).

    Summed over chunks and divided (:func:`popularity_from_counts`) this is
    exactly :func:`nextbest.features.build.category_popularity` of the whole
    data, because chunks never share a customer.
    """
    if table is None:
        return 0, [0] * n_categories
    cutoff = day_number(as_of)
    m = (table.cat_day >= cutoff - days) & (table.cat_day < cutoff)
    active = int(
        np.unique(table.day_cust[(table.day_day >= cutoff - days) & (table.day_day < cutoff)]).size
    )
    buyers = np.zeros(n_categories, dtype="int64")
    if m.any() and n_categories:
        pairs = np.unique(table.cat_cust[m] * n_categories + table.cat_code[m])
        buyers = np.bincount(pairs % n_categories, minlength=n_categories)
    return active, [int(b) for b in buyers]


def popularity_from_counts(
    categories: tuple[str, ...], active: int, buyers: list[int]
) -> dict[str, float]:
    """Category popularity from counts summed over all chunks."""
    return {
        name: float(float(buyers[j]) / active) if active else 0.0
        for j, name in enumerate(categories)
    }


def score_chunk(
    features: pd.DataFrame,
    models: ModelSet,
    horizon_days: float,
    popularity: dict[str, float],
    contact_history: pd.DataFrame | None,
    as_of,
) -> pd.DataFrame:
    """:func:`nextbest.scoring.score` on one chunk (the same function as the HTTP service)."""
    return score(features, models, horizon_days, popularity, contact_history, as_of)


def scores_table(scores: pd.DataFrame) -> pa.Table:
    """Scores as an Arrow table with the fixed :data:`SCORES_SCHEMA` (same types in every chunk)."""
    arrays = []
    for f in SCORES_SCHEMA:
        col = scores[f.name]
        if f.name == "as_of":
            values = pd.to_datetime(col).to_numpy(dtype="datetime64[us]")
            arrays.append(pa.array(values, type=f.type, mask=pd.isna(col).to_numpy()))
        elif f.type == pa.string():
            arrays.append(
                pa.array(col.astype(object).where(col.notna(), None).tolist(), type=f.type)
            )
        else:
            arrays.append(
                pa.array(
                    col.tolist()
                    if f.type.num_fields or pa.types.is_list(f.type)
                    else col.to_numpy(),
                    type=f.type,
                )
            )
    return pa.Table.from_arrays(arrays, schema=SCORES_SCHEMA)


def stats_of(scores: pd.DataFrame) -> dict:
    """Counts for the run summary: customers, scored, opted out, actions and offers."""
    offers = scores["action_offer_id"].fillna("(no offer)")
    return {
        "customers": int(len(scores)),
        "scored": int(scores["consent_profiling"].astype(bool).sum()),
        "opted_out": int((~scores["consent_profiling"].astype(bool)).sum()),
        "actions": {str(k): int(v) for k, v in scores["action"].value_counts().items()},
        "offers": {str(k): int(v) for k, v in offers.value_counts().items()},
    }


def merge_stats(items: list[dict]) -> dict:
    """Sum the per-chunk :func:`stats_of` dicts."""
    out = {"customers": 0, "scored": 0, "opted_out": 0, "actions": {}, "offers": {}}
    for s in items:
        for k in ("customers", "scored", "opted_out"):
            out[k] += s[k]
        for k in ("actions", "offers"):
            for name, n in s[k].items():
                out[k][name] = out[k].get(name, 0) + n
    for k in ("actions", "offers"):
        out[k] = dict(sorted(out[k].items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def rejects_frame(rejects: pd.DataFrame) -> pd.DataFrame:
    """Rejects ready to write: ``row`` as int64, every other column as text (missing stays
    missing)."""
    out = pd.DataFrame({"row": rejects["row"].to_numpy(dtype="int64")})
    for col in rejects.columns:
        if col != "row":
            values = rejects[col]
            out[col] = (
                values.astype(object)
                .where(values.notna(), None)
                .map(lambda v: v if v is None or isinstance(v, str) else str(v))
                .astype(object)
            )
    return out
