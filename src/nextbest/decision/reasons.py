"""Reason codes and plain-language explanations a marketer can read.

Every decision carries a list of ``{"code": ..., "text": ...}``; codes are
stable identifiers for reporting, texts are for people, e.g.
``"churn risk 0.82 and predicted CLV $1,240 -> retention offer"`` or
``"buys PRODUCE weekly, no DELI in 90 days"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.decision.catalog import Catalog
from nextbest.decision.policy import Decisions
from nextbest.features.customer import category_key

CONSENT = "CONSENT_OBJECTED"
RETENTION = "HIGH_RISK_HIGH_VALUE"
CROSS_SELL = "CROSS_SELL_PROPENSITY"
NO_OFFER = "NO_OFFER_CLEARS_THRESHOLD"
CONTACT_CAP = "CONTACT_CAP_REACHED"
LAPSED = "PROBABLY_LAPSED"
HABIT = "PURCHASE_HABIT"


def money(x: float) -> str:
    return f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"


def cadence(ipt_days: float) -> str:
    """Plain words for a mean inter-purchase time in days."""
    if not np.isfinite(ipt_days):
        return "once so far"
    if ipt_days <= 9:
        return "weekly"
    if ipt_days <= 18:
        return "every two weeks"
    if ipt_days <= 40:
        return "monthly"
    return "occasionally"


def build_reasons(features: pd.DataFrame, catalog: Catalog, d: Decisions, clv: np.ndarray,
                  churn: np.ndarray, p_alive: np.ndarray, consent: np.ndarray) -> list[list[dict]]:
    """One list of reason dicts per customer, most important first."""
    keys = [category_key(c) for c in catalog.categories]
    share_cols = [f"share_{k}" for k in keys if f"share_{k}" in features.columns]
    shares = features[share_cols].to_numpy(dtype=float) if share_cols else np.zeros((len(features), 0))
    names = [c for c, k in zip(catalog.categories, keys) if f"share_{k}" in features.columns]
    ipt = features["ipt_mean_days"].to_numpy(dtype=float) if "ipt_mean_days" in features.columns \
        else np.full(len(features), np.nan)
    offers = catalog.offers
    policy = catalog.policy
    out: list[list[dict]] = []
    for i in range(len(features)):
        if not consent[i]:
            out.append([{"code": CONSENT, "text": "objected to profiling (GDPR Art. 21): non-personalised "
                                                  f"default only ({catalog.default_action.name})"}])
            continue
        reasons = []
        action = d.action[i]
        if action == "retention":
            reasons.append({"code": RETENTION, "text": f"churn risk {churn[i]:.2f} and predicted CLV "
                                                       f"{money(clv[i])} -> retention offer"})
        elif action == "cross_sell":
            j = d.top_index[i, 0]
            offer = offers[j]
            col = f"days_since_{category_key(offer.category)}"
            days = features[col].iat[i] if col in features.columns else np.nan
            gap = "never bought " + offer.category if not np.isfinite(days) else \
                f"no {offer.category} in {int(days)} days"
            habit = ""
            if shares.shape[1] and np.nanmax(shares[i]) > 0:
                habit = f"buys {names[int(np.nanargmax(shares[i]))]} {cadence(ipt[i])}, "
            reasons.append({"code": CROSS_SELL, "text": f"{habit}{gap}"})
            reasons.append({"code": "EXPECTED_VALUE", "text": (
                f"P(buys {offer.category} in the next window) {d.top_p[i, 0]:.2f} x {money(offer.value)} "
                f"- {money(offer.cost)} = expected value {money(d.top_ev[i, 0])}")})
        elif d.contacts_30d[i] >= policy["max_contacts_30d"]:
            reasons.append({"code": CONTACT_CAP, "text": f"already contacted {int(d.contacts_30d[i])} times "
                                                         f"in 30 days (cap {policy['max_contacts_30d']})"})
        else:
            best = d.best_ev[i]
            detail = f" (best {money(best)})" if np.isfinite(best) else " (no eligible offer)"
            reasons.append({"code": NO_OFFER, "text": f"no offer clears the {money(policy['min_expected_value'])}"
                                                      f" expected-value threshold{detail}"})
        if p_alive[i] < 0.1:
            reasons.append({"code": LAPSED, "text": f"probably lapsed: P(alive) {p_alive[i]:.2f}"})
        out.append(reasons)
    return out
