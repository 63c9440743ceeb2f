"""Coupon-campaign features (Complete Journey): how a household has responded to campaigns so far.

Pure functions of (campaign tables, ``as_of``). Only campaigns that started
and redemptions that happened before ``as_of`` count.

Why features and not labels: the dataset has 2,102 redemptions by a few
hundred households over 27 campaigns - far too sparse to label 13 offers -
but "has redeemed coupons before" and "redeemed in this department" are
strong signals of offer responsiveness, so they enter the offer model (and
are logged) as features. Campaign redemption rate by predicted propensity is
reported by the evaluation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.features.customer import category_key
from nextbest.features.rfm import as_of_date

CAMPAIGN_FEATURES = ("n_campaigns_received", "n_campaigns_active", "n_redemptions")


def coupon_departments(extras: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Department of each (campaign, coupon): the most common department of its products."""
    coupons, products = extras.get("coupons"), extras.get("products")
    if coupons is None or products is None:
        return pd.DataFrame(columns=["campaign_id", "coupon_upc", "category"])
    dept = products.set_index("product_id")["department"]
    c = coupons.assign(category=coupons["product_id"].map(dept))
    c = c.dropna(subset=["category"])
    mode = (
        c.groupby(["campaign_id", "coupon_upc", "category"])
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["campaign_id", "coupon_upc", "n"], ascending=[True, True, False])
        .drop_duplicates(["campaign_id", "coupon_upc"])
    )
    return mode[["campaign_id", "coupon_upc", "category"]].reset_index(drop=True)


def campaign_features(
    extras: dict[str, pd.DataFrame] | None,
    as_of,
    customer_ids: np.ndarray,
    categories: tuple[str, ...],
    coupon_dept: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-customer campaign features and per-(customer, category) redemption counts before
    ``as_of``.

    Returns
    -------
    customer_frame : DataFrame
        ``customer_id`` plus :data:`CAMPAIGN_FEATURES` (0 when no campaign data)
        and ``redemptions_<category key>`` per category.
    category_redemptions : ndarray (n_customers, n_categories)
        The same per-category redemption counts as a matrix.
    """
    ids = pd.Index(pd.Series(customer_ids).astype(str))
    n, k = len(ids), len(categories)
    out = pd.DataFrame({"customer_id": ids.to_numpy()})
    for col in CAMPAIGN_FEATURES:
        out[col] = 0.0
    per_cat = np.zeros((n, k))
    if not extras or "campaigns" not in extras or "campaign_descriptions" not in extras:
        return _with_categories(out, per_cat, categories), per_cat
    cutoff = as_of_date(as_of)
    desc = extras["campaign_descriptions"].set_index("campaign_id")
    camp = extras["campaigns"].join(desc[["start_date", "end_date"]], on="campaign_id")
    started = camp[camp["start_date"] < cutoff]
    active = started[started["end_date"] >= cutoff]
    for col, frame in (("n_campaigns_received", started), ("n_campaigns_active", active)):
        counts = frame["customer_id"].astype(str).value_counts()
        out[col] = counts.reindex(ids).fillna(0).to_numpy(dtype="float64")
    red = extras.get("coupon_redemptions")
    if red is not None and len(red):
        red = red[red["redemption_date"] < cutoff]
        counts = red["customer_id"].astype(str).value_counts()
        out["n_redemptions"] = counts.reindex(ids).fillna(0).to_numpy(dtype="float64")
        if k:
            dept = coupon_dept if coupon_dept is not None else coupon_departments(extras)
            r = red.merge(dept, on=["campaign_id", "coupon_upc"], how="inner")
            r = r[r["category"].isin(categories)]
            rows = ids.get_indexer(r["customer_id"].astype(str))
            cols = pd.Index(categories).get_indexer(r["category"])
            ok = (rows >= 0) & (cols >= 0)
            np.add.at(per_cat, (rows[ok], cols[ok]), 1.0)
    return _with_categories(out, per_cat, categories), per_cat


def _with_categories(
    out: pd.DataFrame, per_cat: np.ndarray, categories: tuple[str, ...]
) -> pd.DataFrame:

    for j, name in enumerate(categories):
        out[f"redemptions_{category_key(name)}"] = per_cat[:, j]
    return out
