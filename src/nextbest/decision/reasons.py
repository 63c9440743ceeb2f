"""Reason codes and plain-language explanations a marketer can read.

Every decision carries a list of ``{"code": ..., "text": ...}``; codes are
stable identifiers for reporting, texts are for people, e.g.
``"churn risk 0.82 and predicted CLV $1,240 -> retention offer"`` or
``"buys PRODUCE weekly, no DELI in 90 days"``.
"""

from __future__ import annotations

import math

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
UPLIFT = "INCREMENTAL_EFFECT"
RESPONSE_RANKING = "RANKED_BY_RESPONSE"
ASSUMED_EFFECT = "ASSUMED_EFFECT"
CHANNEL_PREFERENCE = "CHANNEL_PREFERENCE"


def money(x: float) -> str:
    return f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"


CADENCES = ("once so far", "weekly", "every two weeks", "monthly", "occasionally")


def cadence(ipt_days: float) -> str:
    """Plain words for a mean inter-purchase time in days."""
    return CADENCES[int(_cadence_index(np.array([ipt_days], dtype=float))[0])]


def _cadence_index(ipt_days: np.ndarray) -> np.ndarray:
    """Index into :data:`CADENCES` per customer: unknown, <= 9, <= 18, <= 40 days, longer."""
    with np.errstate(invalid="ignore"):
        return np.select(
            [~np.isfinite(ipt_days), ipt_days <= 9, ipt_days <= 18, ipt_days <= 40], [0, 1, 2, 3], 4
        )


def build_reasons(
    features: pd.DataFrame,
    catalog: Catalog,
    d: Decisions,
    clv: np.ndarray,
    churn: np.ndarray,
    p_alive: np.ndarray,
    consent: np.ndarray,
) -> list[list[dict]]:
    """One list of reason dicts per customer, most important first."""
    n = len(features)
    keys = [category_key(c) for c in catalog.categories]
    share_cols = [f"share_{k}" for k in keys if f"share_{k}" in features.columns]
    shares = features[share_cols].to_numpy(dtype=float) if share_cols else np.zeros((n, 0))
    names = [c for c, k in zip(catalog.categories, keys) if f"share_{k}" in features.columns]
    ipt = (
        features["ipt_mean_days"].to_numpy(dtype=float)
        if "ipt_mean_days" in features.columns
        else np.full(n, np.nan)
    )
    offers = catalog.offers
    policy = catalog.policy
    # Everything that is not per-customer text is computed once, as arrays or strings; the loop
    # below only formats. Texts are the same as formatting row by row.
    consent_text = (
        "objected to profiling (GDPR Art. 21): non-personalised "
        f"default only ({catalog.default_action.name})"
    )
    cap = policy["max_contacts_30d"]
    no_offer = f"no offer clears the {money(policy['min_expected_value'])} expected-value threshold"
    if shares.shape[1]:
        filled = np.where(np.isnan(shares), -np.inf, shares)  # np.nanargmax's own convention
        habit_of = np.where(filled.max(axis=1) > 0, filled.argmax(axis=1), -1).tolist()
    else:
        habit_of = [-1] * n
    # Days since the chosen offer's category, gathered for each customer's best offer only.
    days_by_offer = (
        np.column_stack(
            [
                features[c].to_numpy(dtype=float)
                if o.category is not None
                and (c := f"days_since_{category_key(o.category)}") in features.columns
                else np.full(n, np.nan)
                for o in offers
            ]
        )
        if offers
        else np.full((n, 1), np.nan)
    )
    # The chosen offer (exploration may choose another than the best one).
    offer_pos = {o.offer_id: j for j, o in enumerate(offers)}
    chosen = np.array([offer_pos.get(o, -1) for o in d.action_offer_id], dtype=np.int64)
    chosen = np.where(d.action == "cross_sell", chosen, d.best_index)
    best_days = days_by_offer[np.arange(n), np.maximum(chosen, 0)].tolist()
    value_cost = [(money(o.value), money(o.cost)) for o in offers]
    top0, top_p0, top_ev0 = chosen.tolist(), d.best_p.tolist(), d.best_ev.tolist()
    is_best = (chosen == d.best_index).tolist()
    eff = d.effects
    effect_of = (
        eff.offer[np.arange(n), np.maximum(chosen, 0)].tolist()
        if eff is not None and offers
        else [math.nan] * n
    )
    channel_l = list(d.channel) if d.channel is not None else [None] * n
    weight_of = _chosen_weights(d, catalog, n)
    ret_effect = eff.retention.tolist() if eff is not None else [math.nan] * n
    average = "on average, " if eff is not None and eff.average else ""
    response_only = {
        "code": RESPONSE_RANKING,
        "text": "ranked by how likely the customer is to buy, not by what the offer changes: "
        "no campaign log to learn effects from yet",
    }
    consent_l, action_l = np.asarray(consent, dtype=bool).tolist(), list(d.action)
    contacts, best_ev = d.contacts_30d.tolist(), d.best_ev.tolist()
    clv_l, churn_l, p_alive_l = clv.tolist(), churn.tolist(), p_alive.tolist()
    cadence_of = _cadence_index(ipt).tolist()
    habits: dict[
        tuple[int, int], str
    ] = {}  # (category, cadence) -> "buys X weekly, ": few distinct texts
    out: list[list[dict]] = []
    for i in range(n):
        if not consent_l[i]:
            out.append([{"code": CONSENT, "text": consent_text}])
            continue
        reasons = []
        action = action_l[i]
        if action == "retention":
            reasons.append(
                {
                    "code": RETENTION,
                    "text": f"churn risk {churn_l[i]:.2f} and predicted CLV "
                    f"{money(clv_l[i])} -> retention offer",
                }
            )
            if math.isfinite(ret_effect[i]):
                reasons.append(
                    {
                        "code": UPLIFT,
                        "text": f"{average}the offer makes a purchase "
                        f"{ret_effect[i] * 100:.1f} points more likely (learned from the "
                        "campaign log)",
                    }
                )
            else:
                reasons.append(
                    {
                        "code": ASSUMED_EFFECT,
                        "text": f"assumes the offer saves {catalog.retention.uplift:.0%} of "
                        "churners: a catalog assumption, no campaign log to learn it from yet",
                    }
                )
        elif action == "cross_sell" and math.isfinite(effect_of[i]):
            j = top0[i]
            offer = offers[j]
            value = value_cost[j][0]
            via = channel_l[i] or offer.channel
            cost = money(offer.cost_on(via))
            w = weight_of[i]
            reasons.append(
                {
                    "code": UPLIFT,
                    "text": f"{average}{effect_of[i] * 100:.1f} points more likely to "
                    f"{offer.outcome} with {offer.name} than without; {via} costs {cost}",
                }
            )
            reasons.append(
                {
                    "code": "EXPECTED_VALUE",
                    "text": f"{effect_of[i]:.3f}{_times(w, via)} x {value} - {cost} = incremental "
                    f"value {money(effect_of[i] * w * offer.value - offer.cost_on(via))}",
                }
            )
            if w != 1.0:
                reasons.append(_preference(via, w))
        elif action == "cross_sell":
            j = top0[i]
            offer = offers[j]
            days = best_days[i]
            if offer.category is None:
                gap = f"{offer.name} (no category: its effect needs a campaign log)"
            elif not math.isfinite(days):
                gap = "never bought " + offer.category
            else:
                gap = f"no {offer.category} in {int(days)} days"
            h = habit_of[i]
            habit = ""
            if h >= 0:
                key = (h, cadence_of[i])
                habit = habits.get(key) or habits.setdefault(
                    key, f"buys {names[h]} {CADENCES[key[1]]}, "
                )
            reasons.append({"code": CROSS_SELL, "text": f"{habit}{gap}"})
            value = value_cost[j][0]
            via = channel_l[i] or offer.channel
            cost = money(offer.cost_on(via))
            if is_best[i]:
                reasons.append(
                    {
                        "code": "EXPECTED_VALUE",
                        "text": (
                            f"P(buys {offer.category} in the next window) {top_p0[i]:.2f}"
                            f"{_times(weight_of[i], via)} x {value} - {cost} ({via}) = "
                            f"expected value {money(top_ev0[i])}"
                        ),
                    }
                )
            if weight_of[i] != 1.0:
                reasons.append(_preference(via, weight_of[i]))
            reasons.append(response_only)
        elif contacts[i] >= cap:
            reasons.append(
                {
                    "code": CONTACT_CAP,
                    "text": f"already contacted {int(contacts[i])} times in 30 days (cap {cap})",
                }
            )
        else:
            best = best_ev[i]
            detail = f" (best {money(best)})" if math.isfinite(best) else " (no eligible offer)"
            reasons.append({"code": NO_OFFER, "text": no_offer + detail})
        if p_alive_l[i] < 0.1:
            reasons.append(
                {"code": LAPSED, "text": f"probably lapsed: P(alive) {p_alive_l[i]:.2f}"}
            )
        out.append(reasons)
    return out


def _chosen_weights(d: Decisions, catalog: Catalog, n: int) -> list[float]:
    """Channel preference of each customer's chosen channel (1.0 when not known)."""
    if d.channel_weights is None or d.channel is None:
        return [1.0] * n
    k = pd.Index(catalog.channel_names).get_indexer(pd.Index(d.channel, dtype=object))
    w = np.where(k >= 0, d.channel_weights[np.arange(n), np.maximum(k, 0)], 1.0)
    return np.where(np.abs(w - 1.0) < 0.005, 1.0, w).tolist()  # as printed: 1.00 is none


def _times(weight: float, via: str) -> str:
    """`` x 1.40 (email preference)`` in an expected-value formula, or nothing."""
    return "" if weight == 1.0 else f" x {weight:.2f} ({via} preference)"


def _preference(via: str, weight: float) -> dict:
    more = "more" if weight > 1 else "less"
    return {
        "code": CHANNEL_PREFERENCE,
        "text": f"sent by {via}: {weight:.2f}x as likely to act there as on an average channel "
        f"({more}, learned from where they buy and answer; a preference, not a causal effect)",
    }
