"""Cold start: a customer who is not in the snapshot, from transactions posted with the request.

The posted lines go through the same steps as batch scoring
(:func:`nextbest.batch.customer_rows`): the one schema check
(:func:`~nextbest.data.schema.validate_transactions`, any rejected line is a
422 naming row, column and reason), then :func:`~nextbest.features.build.build_context`
and :func:`~nextbest.features.build.features_at` at ``as_of``. A customer who
objected to profiling gets the same row as in batch - ``customer_id`` and
``consent_profiling = false``, no features computed at all - so
:func:`nextbest.scoring.score` gives the non-personalised default.

Campaign features are 0 (no campaign history is posted); customer
attributes the models know (demographics) can be posted as ``attributes``.
The frame is conformed to the snapshot's columns and dtypes, so the models
see exactly the layout they see in batch.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from nextbest.data.schema import validate_transactions
from nextbest.errors import InvalidInput
from nextbest.features.build import build_context, features_at
from nextbest.features.customer import CHANNEL_DAYS
from nextbest.scoring import score
from nextbest.serving.schemas import PredictFeaturesRequest
from nextbest.serving.state import ServingState, decision_table

MAX_REJECTS_SHOWN = 20


def transactions_frame(request: PredictFeaturesRequest) -> pd.DataFrame:
    """The posted lines in the transactions schema (optional columns only when given)."""
    rows = [t.model_dump() for t in request.transactions]
    frame = pd.DataFrame(
        {
            "customer_id": request.customer_id,
            "timestamp": [r["timestamp"].isoformat() for r in rows],
            "amount": np.array([r["amount"] for r in rows], dtype="float64"),
        }
    )
    for col in ("order_id", "category", "channel"):
        values = [r[col] for r in rows]
        if any(v is not None for v in values):
            frame[col] = values
    return frame


def conform(features: pd.DataFrame, state: ServingState) -> pd.DataFrame:
    """Snapshot columns in snapshot order and dtypes (missing ones empty; extra ones dropped,
    except the ``channel_days_*`` ones, which no model reads: a purchase event's channel counts
    for the customer's channel preference even when the training data had no channel).

    A value the snapshot dtype cannot hold (an empty integer column for an
    opted-out row) is kept as float, as batch scoring does for such rows.
    Columns already of the snapshot dtype are taken as they are (one frame
    operation, not one per column: this runs for every re-decided customer).
    """
    dtypes = state.feature_dtypes
    if not dtypes:
        return features.reset_index(drop=True)
    missing = [c for c in dtypes if c not in features.columns]
    if missing:
        empty = pd.DataFrame({c: [None] * len(features) for c in missing}, dtype=object)
        features = pd.concat([features.reset_index(drop=True), empty], axis=1)
    extra = [c for c in features.columns if c.startswith(CHANNEL_DAYS) and c not in dtypes]
    out = features[[*dtypes, *extra]].reset_index(drop=True)
    current = out.dtypes.to_dict()
    wrong = {c: d for c, d in dtypes.items() if current[c] != d}
    if not wrong:
        return out
    try:  # copy(): astype leaves one block per converted column; one frame of a few blocks
        return out.astype(wrong).copy()
    except (TypeError, ValueError):
        pass
    converted = {}
    for col, dtype in wrong.items():
        try:
            converted[col] = out[col].astype(dtype)
        except (TypeError, ValueError):
            converted[col] = out[col].astype("float64")
    return out.assign(**converted).copy()


def cold_start_features(
    request: PredictFeaturesRequest, state: ServingState
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """One feature row for the posted customer, and the ``as_of`` it is computed at.

    Raises
    ------
    InvalidInput
        If any posted line is rejected by the schema check, no line is left,
        or an attribute is not one the models know.
    """
    as_of = pd.Timestamp(request.as_of) if request.as_of is not None else state.as_of
    checked = validate_transactions(transactions_frame(request), as_of=as_of)
    if checked.report.n_rejected:
        rej = checked.rejects.sort_values("row").head(MAX_REJECTS_SHOWN)
        detail = [
            {"field": f"transactions.{int(r.row)}.{r.column}", "problem": r.reason}
            for r in rej.itertuples()
        ]
        raise InvalidInput(
            detail=detail,
            error=f"{checked.report.n_rejected} transaction line(s) rejected "
            f"(showing at most {MAX_REJECTS_SHOWN})",
        )
    unknown = sorted(set(request.attributes) - set(state.attributes))
    if unknown:
        raise InvalidInput(
            detail={"unknown": unknown, "known": list(state.attributes)},
            error="unknown customer attribute(s)",
        )
    if not request.consent_profiling:
        row = pd.DataFrame({"customer_id": [request.customer_id], "consent_profiling": [False]})
        return conform(row, state), as_of
    customers = pd.DataFrame({"customer_id": [request.customer_id], "consent_profiling": [True]})
    for name in state.attributes:
        value = request.attributes.get(name)
        customers[name] = pd.Series([None if value is None else str(value)], dtype=object)
    catalog = state.bundle.catalog
    ctx = build_context(
        checked.transactions, customers, catalog.categories, channels=catalog.channel_names
    )
    features = features_at(ctx, as_of, state.time_unit_days)
    return conform(features, state), as_of


def cold_start_decision(request: PredictFeaturesRequest, state: ServingState) -> dict:
    """The :func:`nextbest.scoring.score` row of the posted customer, as a Decision-shaped dict."""

    features, as_of = cold_start_features(request, state)
    scored = score(
        features,
        state.bundle,
        state.horizon_days,
        state.popularity,
        state.contact_history,
        as_of=as_of,
    )
    versions = json.loads(scored["model_versions"].iat[0])
    return decision_table([scored], 1, state.bundle, versions, as_of, state.horizon_days).row(0)
