"""``score``: the one function behind batch scoring (and, later, HTTP).

Per customer it returns ``customer_id``, ``p_alive``, ``expected_purchases``
(over ``horizon_days``), ``expected_spend`` (per purchase), ``predicted_clv``
(discounted value over the horizon), plus ``as_of``, ``horizon_days`` and
``model_versions``.

Consent first: a customer with ``consent_profiling = false`` is not scored
(the model columns are empty) and is marked ``consent_profiling = false``.
"""

from __future__ import annotations

import json

import pandas as pd

from nextbest.features.rfm import rfm_summary
from nextbest.models.clv_pyfunc import as_model_input

SCORE_COLUMNS = ("customer_id", "p_alive", "expected_purchases", "expected_spend", "predicted_clv")


def score(
    rfm: pd.DataFrame,
    clv_model,
    horizon_days: float,
    customers: pd.DataFrame | None = None,
    model_versions: dict[str, str] | None = None,
    as_of=None,
) -> pd.DataFrame:
    """Score customers from their RFM summary.

    Parameters
    ----------
    rfm : pandas.DataFrame
        Output of :func:`nextbest.features.rfm.rfm_summary` in the model's unit.
    clv_model
        An MLflow pyfunc CLV model (``models:/nextbest-clv@champion``) or a
        fitted :class:`~nextbest.models.clv.ClvModel`.
    horizon_days : float
        Horizon of ``expected_purchases`` and ``predicted_clv``.
    customers : pandas.DataFrame, optional
        ``customer_id`` and ``consent_profiling``; opted-out customers get no scores.
    """
    consent = pd.Series(True, index=rfm["customer_id"].astype(str).to_numpy())
    if customers is not None and len(customers):
        known = customers.set_index(customers["customer_id"].astype(str))["consent_profiling"]
        consent = known.reindex(consent.index).fillna(True).astype(bool)
    allowed = rfm[consent.to_numpy()]
    if hasattr(clv_model, "metadata") and hasattr(clv_model, "predict") and not hasattr(clv_model, "fitted_"):
        pred = clv_model.predict(as_model_input(allowed), params={"horizon_days": float(horizon_days)})
    else:
        pred = clv_model.predict(allowed, horizon_days=horizon_days)
    out = pd.DataFrame({"customer_id": rfm["customer_id"].astype(str).to_numpy()})
    out = out.merge(pd.DataFrame(pred)[list(SCORE_COLUMNS)], on="customer_id", how="left")
    out["consent_profiling"] = consent.to_numpy()
    out["as_of"] = pd.Timestamp(as_of) if as_of is not None else pd.NaT
    out["horizon_days"] = float(horizon_days)
    out["model_versions"] = json.dumps(model_versions or {}, sort_keys=True)
    return out


def score_transactions(transactions: pd.DataFrame, as_of, horizon_days: float, clv_model,
                       time_unit_days: float, customers: pd.DataFrame | None = None,
                       model_versions: dict[str, str] | None = None) -> pd.DataFrame:
    """Build RFM at ``as_of`` from validated transactions, then :func:`score`."""
    rfm = rfm_summary(transactions, as_of, time_unit_days)
    return score(rfm, clv_model, horizon_days, customers, model_versions, as_of)


def top_customers(scores: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` customers with the highest predicted CLV (opted-out customers excluded)."""
    ranked = scores.dropna(subset=["predicted_clv"]).sort_values("predicted_clv", ascending=False)
    return ranked.head(n).reset_index(drop=True)


