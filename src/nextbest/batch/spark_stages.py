"""What Spark runs per bucket (``groupBy(bucket).applyInPandas``): pandas in, pandas out.

Stage A validates a bucket's raw lines (:func:`~.chunks.validate_chunk`) and
returns, in one frame told apart by ``kind``, the clean lines (with their
input row numbers), the rejects (original columns as JSON) and the 30-day
popularity counts. Stage B builds the bucket's features and scores them with
:func:`~.chunks.score_chunk`, i.e. :func:`nextbest.scoring.score`.
"""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pyarrow as pa

from nextbest.batch.chunks import (
    SCORES_SCHEMA,
    FeatureSetup,
    chunk_features,
    popularity_counts,
    rejects_frame,
    score_chunk,
    validate_chunk,
)
from nextbest.features.customer import purchase_table
from nextbest.scoring import single_threaded

BUCKET = "_bucket"
LINE_COLUMNS = ("customer_id", "timestamp", "amount", "category", "channel")
STAGE_A_DDL = (
    f"kind string, {BUCKET} long, customer_id string, timestamp timestamp_ntz, amount double, "
    "category string, channel string, row long, column string, value string, reason string, "
    "payload string, active long, buyers array<long>, report string"
)


def spark_type_ddl(schema: pa.Schema = SCORES_SCHEMA) -> str:
    """Spark DDL of an Arrow schema (strings, doubles, booleans, timestamps, lists of structs)."""

    def ddl(t: pa.DataType) -> str:
        if pa.types.is_string(t):
            return "string"
        if pa.types.is_floating(t):
            return "double"
        if pa.types.is_boolean(t):
            return "boolean"
        if pa.types.is_integer(t):
            return "long"
        if pa.types.is_timestamp(t):
            return "timestamp_ntz"
        if pa.types.is_list(t):
            return f"array<{ddl(t.value_type)}>"
        if pa.types.is_struct(t):
            return "struct<" + ",".join(f"{f.name}:{ddl(f.type)}" for f in t) + ">"
        raise TypeError(f"no Spark type for {t}")

    return ", ".join(f"`{f.name}` {ddl(f.type)}" for f in schema)


def quietly(fn):
    """A one-argument group function run with PySpark's pandas-3 warnings silenced around the call.

    (Exactly one named argument: PySpark inspects the arity of ``applyInPandas`` functions.)
    """

    def wrapper(pdf: pd.DataFrame) -> pd.DataFrame:
        with warnings.catch_warnings():
            quiet_pandas3_warnings()
            return fn(pdf)

    return wrapper


def quiet_pandas3_warnings():
    """PySpark 4.3 warns that pandas >= 3 is not fully supported (FutureWarning) and uses a
    deprecated ``copy=`` keyword (Pandas4Warning); both are harmless here (see README)."""
    warnings.filterwarnings("ignore", message=".*does not yet fully support pandas.*")
    warnings.filterwarnings("ignore", message=".*copy keyword is deprecated.*")


# -- stage A: validate ---------------------------------------------------------------------------
def validate_group(as_of, n_categories: int, categories: tuple[str, ...], customers_bc):
    @quietly
    def fn(pdf: pd.DataFrame) -> pd.DataFrame:
        b = int(pdf[BUCKET].iloc[0])
        chunk = validate_chunk(pdf.drop(columns=BUCKET), as_of)
        tx = chunk.transactions
        cust = customers_bc.value
        opted = set(cust.loc[(cust[BUCKET] == b) & ~cust["consent_profiling"], "customer_id"])
        keep = tx[~tx["customer_id"].isin(opted)] if opted else tx

        table = purchase_table(keep, categories) if len(keep) else None
        active, buyers = popularity_counts(table, as_of, n_categories)
        lines = pd.DataFrame(
            {
                "kind": "line",
                BUCKET: b,
                "row": chunk.rows,
                "customer_id": tx["customer_id"].astype(str),
                "timestamp": tx["timestamp"].to_numpy(dtype="datetime64[us]"),
                "amount": tx["amount"].to_numpy(dtype="float64"),
                **{
                    col: (
                        tx[col].astype(object).where(tx[col].notna(), None)
                        if col in tx.columns
                        else None
                    )
                    for col in ("category", "channel")
                },
            }
        )
        parts = [lines]
        if len(chunk.rejects):
            rej = rejects_frame(chunk.rejects)
            extra = rej.drop(columns=["row", "column", "value", "reason"])
            parts.append(
                pd.DataFrame(
                    {
                        "kind": "reject",
                        BUCKET: b,
                        "row": rej["row"],
                        "column": rej["column"],
                        "value": rej["value"],
                        "reason": rej["reason"],
                        "payload": [json.dumps(r) for r in extra.to_dict(orient="records")],
                    }
                )
            )
        report = {
            "n_input": chunk.report.n_input,
            "n_valid": chunk.report.n_valid,
            "rejected": chunk.report.rejected,
        }
        parts.append(
            pd.DataFrame(
                {
                    "kind": ["count"],
                    BUCKET: [b],
                    "active": [active],
                    "buyers": [buyers],
                    "report": [json.dumps(report)],
                }
            )
        )
        out = pd.concat(parts, ignore_index=True)
        for col in (
            "customer_id",
            "timestamp",
            "amount",
            "category",
            "channel",
            "row",
            "column",
            "value",
            "reason",
            "payload",
            "active",
            "buyers",
            "report",
        ):
            if col not in out.columns:
                out[col] = None
        out["row"] = out["row"].astype("Int64")
        out["active"] = out["active"].astype("Int64")
        # Missing cells of text and list columns must be None, not NaN, for Spark's Arrow
        # conversion.
        for col in (
            "customer_id",
            "category",
            "channel",
            "column",
            "value",
            "reason",
            "payload",
            "report",
            "buyers",
            "kind",
        ):
            out[col] = [v if isinstance(v, (str, list)) else None for v in out[col].tolist()]
        return out[[c.split(" ")[0] for c in STAGE_A_DDL.split(", ")]]

    return fn


# -- stage B: features and scores ----------------------------------------------------------------
def score_group(
    setup: FeatureSetup,
    as_of,
    horizon_days: float,
    popularity: dict,
    customers_bc,
    models_bc,
    history_bc,
    has_category: bool,
    has_channel: bool = False,
):
    @quietly
    def fn(pdf: pd.DataFrame) -> pd.DataFrame:
        b = int(pdf[BUCKET].iloc[0])
        # Input order, as the local engine sees them (float sums per day depend on it).
        tx = pdf.sort_values("row", kind="stable").drop(columns=[BUCKET, "row"])
        if not has_category:
            tx = tx.drop(columns="category")
        if not has_channel:
            tx = tx.drop(columns="channel")
        tx = tx.assign(
            timestamp=tx["timestamp"].to_numpy(dtype="datetime64[ns]"),
            customer_id=tx["customer_id"].astype(str),
        ).reset_index(drop=True)
        cust = customers_bc.value
        features, _ = chunk_features(tx, cust[cust[BUCKET] == b].drop(columns=BUCKET), setup, as_of)
        if not len(features):
            return pd.DataFrame({f.name: [] for f in SCORES_SCHEMA})
        history = history_bc.value
        if history is not None:
            history = history[history[BUCKET] == b].drop(columns=BUCKET)
        scores = score_chunk(
            features, single_threaded(models_bc.value), horizon_days, popularity, history, as_of
        )
        scores["as_of"] = scores["as_of"].to_numpy(dtype="datetime64[us]")
        scores["action_offer_id"] = scores["action_offer_id"].astype(object)
        return scores[list(SCORES_SCHEMA.names)]

    return fn
