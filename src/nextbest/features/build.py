"""Assemble the per-customer feature row used by every model, for training cutoffs and for scoring.

:func:`build_context` does the one-off work (merge lines into customer-days,
index campaign tables); :func:`features_at` then gives, for any cutoff, one
row per customer seen before it: behaviour (:mod:`.customer`), campaign
response (:mod:`.campaigns`), demographics and consent from the customers
table, and - given a fitted CLV model - ``p_alive`` and
``expected_purchases_h`` (expected purchases over the churn horizon).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.features.campaigns import campaign_features, coupon_departments
from nextbest.features.customer import PurchaseTable, customer_features, day_number, purchase_table

# Columns that identify a row or a label, never a customer attribute.
ID_COLUMNS = {"customer_id", "consent_profiling", "cutoff", "label", "offer_id", "category"}


@dataclass
class FeatureContext:
    """Everything needed to build features at any cutoff."""

    table: PurchaseTable
    customers: pd.DataFrame
    extras: dict[str, pd.DataFrame] = field(default_factory=dict)
    coupon_dept: pd.DataFrame | None = None
    demographics: list[str] = field(default_factory=list)

    @property
    def categories(self) -> tuple[str, ...]:
        return self.table.categories

    @property
    def first_day(self) -> pd.Timestamp:
        return pd.Timestamp("1970-01-01") + pd.Timedelta(days=int(self.table.day_day.min()))


def build_context(
    transactions: pd.DataFrame,
    customers: pd.DataFrame,
    categories: tuple[str, ...],
    extras: dict[str, pd.DataFrame] | None = None,
    channels: tuple[str, ...] = (),
) -> FeatureContext:
    """Precompute the purchase table and campaign lookups (validated transactions only).

    ``categories`` and ``channels`` are the catalog's: the categories and contact channels
    whose per-customer features are made (:func:`~nextbest.features.customer.purchase_table`).
    """
    extras = extras or {}
    demo = demographic_columns(customers)
    dept = coupon_departments(extras) if extras else None
    table = purchase_table(transactions, categories, channels)
    return FeatureContext(table, customers, extras, dept, demo)


def demographic_columns(customers: pd.DataFrame | None, max_levels: int = 50) -> list[str]:
    """Customer attributes usable as features: not ids/consent, at most ``max_levels`` values."""
    if customers is None:
        return []
    cols = []
    for c in customers.columns:
        if c in ID_COLUMNS:
            continue
        if customers[c].nunique(dropna=True) <= max_levels or pd.api.types.is_numeric_dtype(
            customers[c]
        ):
            cols.append(c)
    return cols


def category_popularity(ctx: FeatureContext, as_of, days: int = 30) -> dict[str, float]:
    """Share of active customers who bought each category in the ``days`` before ``as_of``."""
    t = ctx.table
    cutoff = day_number(as_of)
    m = (t.cat_day >= cutoff - days) & (t.cat_day < cutoff)
    active = np.unique(t.day_cust[(t.day_day >= cutoff - days) & (t.day_day < cutoff)]).size
    out = {}
    k = len(t.categories)
    buyers = np.zeros(k)
    if m.any():
        pairs = np.unique(t.cat_cust[m] * k + t.cat_code[m])
        buyers = np.bincount(pairs % k, minlength=k).astype(float)
    for j, name in enumerate(t.categories):
        out[name] = float(buyers[j] / active) if active else 0.0
    return out


def features_at(
    ctx: FeatureContext,
    as_of,
    time_unit_days: float = 7.0,
    clv_model=None,
    churn_horizon_days: float | None = None,
) -> pd.DataFrame:
    """One feature row per customer first seen before ``as_of`` (data before ``as_of`` only)."""
    f = customer_features(ctx.table, as_of, time_unit_days)
    camp, _ = campaign_features(
        ctx.extras, as_of, f["customer_id"].to_numpy(), ctx.categories, ctx.coupon_dept
    )
    cust = ctx.customers.set_index(ctx.customers["customer_id"].astype(str))
    known = cust.reindex(f["customer_id"].astype(str))  # one lookup for consent and demographics
    consent = known["consent_profiling"].fillna(True).astype(bool).to_numpy()
    attributes = pd.DataFrame(
        {"consent_profiling": consent, **{c: known[c].to_numpy() for c in ctx.demographics}}
    )
    f = pd.concat([f, camp.drop(columns="customer_id"), attributes], axis=1)
    if clv_model is not None:
        f = add_clv_features(f, clv_model, churn_horizon_days or 30)
    return f


def count_model_of(clv_model):
    """The count model behind a CLV model: itself, or the one a boosted model corrects.

    Churn features (``p_alive``, ``expected_purchases_h``) are the count model's at every
    training cutoff, so scoring takes them from the same kind of model.
    """
    inner = getattr(clv_model, "count_model", None)  # a ClvModel's own is the requested name
    return inner if hasattr(inner, "p_alive") else clv_model


def add_clv_features(features: pd.DataFrame, clv_model, horizon_days: float) -> pd.DataFrame:
    """Copy of ``features`` with ``p_alive`` and ``expected_purchases_h`` of the count model of a
    fitted CLV model (:func:`count_model_of`)."""
    model = count_model_of(clv_model)
    out = features.copy()
    out["p_alive"] = model.p_alive(features)
    out["expected_purchases_h"] = model.expected_purchases(horizon_days, features)
    return out
