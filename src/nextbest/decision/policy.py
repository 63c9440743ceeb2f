"""Arbitration: from model scores to one action per customer, with ranked offers and reasons.

Order of play for each customer (vectorised over customers x offers):

1. **Consent.** ``consent_profiling = false`` -> the non-personalised default
   action; no model score is used or returned (GDPR Art. 21).
2. **Eligibility** per offer from the catalog (category not bought in N days,
   CLV / churn / P(alive) ranges) and the **contact policy** from the contact
   history (per-offer cooldown and 30-day cap; a customer already at the
   global 30-day cap gets no personalised contact).
3. **Expected value**: with an uplift model (learned from a campaign log),
   the *incremental* value ``effect x value - cost`` (the effect is how much
   more likely the customer converts with the offer than without); without
   one, cross-sell ``P(convert) x value - cost`` (ranked by response, labelled
   so in the reasons). Retention: ``effect x predicted CLV - cost`` with the
   learned effect, or ``P(churn) x uplift x predicted CLV - cost`` with the
   catalog's assumed ``uplift``. Each offer goes out on the permitted channel
   where its expected value is best for this customer (their channel
   preference against the channel's cost, :mod:`nextbest.decision.channels`).
   The top-k eligible offers with positive expected value are listed, best first.
4. **Choice**: the retention offer when the customer is at risk
   (churn >= threshold), valuable (CLV >= floor) and retention has the higher
   expected value; else the best cross-sell if it clears
   ``min_expected_value``; else no action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.data.schema import parse_timestamps
from nextbest.decision.catalog import Catalog
from nextbest.decision.channels import (
    best_channels,
    channel_permissions,
    channel_weights,
    cheapest_channels,
)
from nextbest.features.customer import category_key
from nextbest.features.rfm import as_of_date

ACTIONS = ("retention", "cross_sell", "no_action", "non_personalised")


@dataclass
class Effects:
    """What an uplift model says each action changes, per customer (NaN = not covered).

    ``offer`` (n x m catalog offers): incremental conversion probability;
    ``revenue_value`` (n x m): the value of the incremental revenue
    (``revenue effect x revenue_margin``, 0 when not modelled); ``retention``
    (n): the retention offer's incremental conversion probability.
    ``average`` is true when the effects are the same for everyone (the
    fallback when targeting did not beat the best single action). The
    incremental value of an offer is ``effect x value + revenue_value -
    cost`` with the cost of the channel it goes out on.
    """

    offer: np.ndarray
    revenue_value: np.ndarray
    retention: np.ndarray
    average: bool = False


@dataclass
class Decisions:
    """Flat decision arrays (n customers; offers as n x k indices into the catalog)."""

    action: np.ndarray
    action_offer_id: np.ndarray
    top_index: np.ndarray  # (n, k) catalog offer index, -1 = none
    top_ev: np.ndarray  # (n, k)
    top_p: np.ndarray  # (n, k)
    retention_ev: np.ndarray
    best_ev: np.ndarray
    contacts_30d: np.ndarray
    best_index: np.ndarray  # best eligible cross-sell (-1 = none), whether or not top_k lists it
    best_p: np.ndarray
    effects: Effects | None = None  # None: ranked by response (no uplift model)
    channel: np.ndarray | None = None  # (n,) channel of the chosen action, None = not sent
    offer_channel: np.ndarray | None = None  # (n, m) channel index per offer, -1 = none
    channel_weights: np.ndarray | None = None  # (n, channels) preference; None = not known


def contact_state(
    history: pd.DataFrame | None, customer_ids: np.ndarray, offer_ids: list[str], as_of
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Days since each (customer, offer) contact, 30-day counts per pair and per customer.

    ``history`` has ``customer_id``, ``offer_id``, ``timestamp``; contacts on
    or after ``as_of`` are ignored.
    """
    n, m = len(customer_ids), len(offer_ids)
    days_since = np.full((n, m), np.inf)
    count_pair = np.zeros((n, m))
    count_cust = np.zeros(n)
    if history is None or history.empty:
        return days_since, count_pair, count_cust

    cutoff = as_of_date(as_of)
    h = history.assign(timestamp=parse_timestamps(history["timestamp"]))
    h = h[h["timestamp"] < cutoff]
    rows = pd.Index(pd.Series(customer_ids).astype(str)).get_indexer(h["customer_id"].astype(str))
    cols = pd.Index(offer_ids).get_indexer(h["offer_id"].astype(str))
    age = (cutoff - h["timestamp"]).dt.total_seconds().to_numpy() / 86400.0
    known = rows >= 0
    recent = known & (age <= 30)
    np.add.at(count_cust, rows[recent], 1.0)
    ok = known & (cols >= 0)
    np.minimum.at(days_since, (rows[ok], cols[ok]), age[ok])
    okr = ok & (age <= 30)
    np.add.at(count_pair, (rows[okr], cols[okr]), 1.0)
    return days_since, count_pair, count_cust


def eligibility(
    features: pd.DataFrame,
    catalog: Catalog,
    clv: np.ndarray,
    churn: np.ndarray,
    p_alive: np.ndarray,
    days_since_contact: np.ndarray,
    contacts_pair: np.ndarray,
) -> np.ndarray:
    """Boolean (n customers x m offers): may this offer be sent to this customer?"""
    n, m = len(features), len(catalog.offers)
    ok = np.ones((n, m), dtype=bool)
    for j, offer in enumerate(catalog.offers):
        rules = offer.eligibility
        if "not_bought_category_days" in rules:
            col = f"days_since_{category_key(offer.category)}"
            days = (
                features[col].to_numpy(dtype=float)
                if col in features.columns
                else np.full(n, np.nan)
            )
            ok[:, j] &= np.isnan(days) | (days > rules["not_bought_category_days"])
        ok[:, j] &= _ranges(rules, clv, churn, p_alive)
        if offer.cooldown_days:
            ok[:, j] &= days_since_contact[:, j] >= offer.cooldown_days
        if offer.max_contacts_30d is not None:
            ok[:, j] &= contacts_pair[:, j] < offer.max_contacts_30d
    return ok


def _ranges(rules: dict, clv: np.ndarray, churn: np.ndarray, p_alive: np.ndarray) -> np.ndarray:
    ok = np.ones(len(clv), dtype=bool)
    with np.errstate(invalid="ignore"):
        if "min_clv" in rules:
            ok &= clv >= rules["min_clv"]
        if "max_clv" in rules:
            ok &= clv <= rules["max_clv"]
        if "min_churn" in rules:
            ok &= churn >= rules["min_churn"]
        if "max_churn" in rules:
            ok &= churn <= rules["max_churn"]
        if "min_p_alive" in rules:
            ok &= p_alive >= rules["min_p_alive"]
    return ok


@dataclass
class OfferGate:
    """Which cross-sell offers each customer may receive, and their contact state.

    ``ok`` (n x m catalog offers) combines consent, the global 30-day cap,
    eligibility rules and per-offer cooldowns and caps. Scoring computes it
    before the offer model so that only pairs that can be listed are predicted.
    """

    ok: np.ndarray
    capped: np.ndarray
    days_since: np.ndarray  # (n, m + 1): the last column is the retention offer, if any
    count_cust: np.ndarray
    channel_ok: np.ndarray | None = None  # (n, channels): channels the customer may get
    cost: np.ndarray | None = None  # (n, m): cost on the cheapest permitted channel
    channel: np.ndarray | None = None  # (n, m): that channel's index, -1 = none permitted
    weights: np.ndarray | None = None  # (n, channels): channel preference, None = unknown


def gate_offers(
    features: pd.DataFrame,
    catalog: Catalog,
    clv: np.ndarray,
    churn: np.ndarray,
    p_alive: np.ndarray,
    consent: np.ndarray,
    contact_history: pd.DataFrame | None = None,
    as_of=None,
) -> OfferGate:
    """Eligibility and contact policy of every (customer, cross-sell offer), before any offer
    score."""
    m = len(catalog.offers)
    ids = features["customer_id"].astype(str).to_numpy()
    offer_ids = [o.offer_id for o in catalog.offers]
    ret_id = catalog.retention.offer_id if catalog.retention else None
    all_ids = offer_ids + ([ret_id] if ret_id else [])
    days_since, count_pair, count_cust = contact_state(contact_history, ids, all_ids, as_of)
    ok = eligibility(features, catalog, clv, churn, p_alive, days_since[:, :m], count_pair[:, :m])
    capped = count_cust >= float(catalog.policy["max_contacts_30d"])
    allowed = channel_permissions(features, catalog)
    cost, channel = cheapest_channels(catalog, allowed)
    # No permitted channel means no contact with that offer.
    ok &= ~capped[:, None] & consent[:, None] & np.isfinite(cost)
    weights = channel_weights(features, catalog, contact_history, as_of)
    return OfferGate(ok, capped, days_since, count_cust, allowed, cost, channel, weights)


def decide(
    features: pd.DataFrame,
    catalog: Catalog,
    p_convert: np.ndarray,
    clv: np.ndarray,
    churn: np.ndarray,
    p_alive: np.ndarray,
    consent: np.ndarray,
    contact_history: pd.DataFrame | None = None,
    as_of=None,
    gate: OfferGate | None = None,
    effects: Effects | None = None,
) -> Decisions:
    """Choose one action per customer and rank the top-k eligible offers by expected value.

    ``p_convert`` is (n customers x m catalog offers); ``clv``, ``churn``,
    ``p_alive`` and ``consent`` are per customer (scores of opted-out
    customers are ignored). ``gate`` is :func:`gate_offers` of the same
    arguments when the caller already has it (``contact_history`` and
    ``as_of`` are then not read again); ``p_convert`` of pairs it rules out
    is never used. ``effects`` (an uplift model's) replace ``P(convert) x value
    - cost`` by the incremental value for the offers it covers, and the
    catalog's assumed retention ``uplift`` by the learned effect.
    """
    policy = catalog.policy
    n, m = p_convert.shape
    k = min(int(policy["top_k"]), m)
    offer_ids = [o.offer_id for o in catalog.offers]
    ret_id = catalog.retention.offer_id if catalog.retention else None
    if gate is None:
        gate = gate_offers(features, catalog, clv, churn, p_alive, consent, contact_history, as_of)
    ok, capped, days_since, count_cust = gate.ok, gate.capped, gate.days_since, gate.count_cust

    value = np.array([o.value for o in catalog.offers])
    offer_channel = gate.channel
    if gate.weights is not None and gate.channel_ok is not None and m:
        # Each offer on the channel where this customer's expected value is best.
        ev, offer_channel = best_channels(
            catalog,
            gate.channel_ok,
            gate.weights,
            p_convert,
            effects.offer if effects is not None else None,
            effects.revenue_value if effects is not None else 0.0,
        )
    else:
        cost = gate.cost if gate.cost is not None else np.array([o.cost for o in catalog.offers])
        cost = np.where(np.isfinite(cost), cost, 0.0)  # offers with no channel are not ok anyway
        ev = p_convert * value[None, :] - cost
        if effects is not None:
            incremental = effects.offer * value[None, :] + effects.revenue_value - cost
            ev = np.where(np.isfinite(effects.offer), incremental, ev)
    # Offers that lose money in expectation are never listed.
    ev_masked = np.where(ok & (ev > 0), ev, -np.inf)
    # Rank at least one offer: the best one is the cross-sell candidate even when top_k = 0
    # (no list wanted); the listed offers are the first top_k of the ranking.
    order = np.argsort(-ev_masked, axis=1, kind="stable")[:, : max(k, 1)]
    ranked_ev = np.take_along_axis(ev_masked, order, axis=1)
    ranked_index = np.where(np.isfinite(ranked_ev), order, -1)
    best_index = ranked_index[:, 0] if m else np.full(n, -1)
    best_ev = np.where(best_index >= 0, ranked_ev[:, 0], -np.inf) if m else np.full(n, -np.inf)
    best_p = (
        np.where(best_index >= 0, p_convert[np.arange(n), np.maximum(best_index, 0)], np.nan)
        if m
        else np.full(n, np.nan)
    )
    top_index = ranked_index[:, :k].copy()
    top_ev = np.where(top_index >= 0, ranked_ev[:, :k], np.nan)
    top_p = np.where(top_index >= 0, np.take_along_axis(p_convert, order[:, :k], axis=1), np.nan)

    retention_ev = np.full(n, -np.inf)
    if catalog.retention is not None:
        r = catalog.retention
        with np.errstate(invalid="ignore"):
            eligible = (
                consent
                & ~capped
                & (churn >= policy["retention_churn_threshold"])
                & (clv >= policy["retention_min_clv"])
                & _ranges(r.eligibility, clv, churn, p_alive)
            )
        if r.cooldown_days:
            eligible &= days_since[:, m] >= r.cooldown_days
        eligible &= _channel_allowed(gate, catalog, r.channel, n)
        saved = np.full(n, r.uplift) * churn  # the catalog's assumption: share of churners saved
        if effects is not None:
            saved = np.where(np.isfinite(effects.retention), effects.retention, saved)
        retention_ev = np.where(eligible, saved * clv - r.cost, -np.inf)

    min_ev = float(policy["min_expected_value"])
    action = np.full(n, "no_action", dtype=object)
    offer = np.full(n, None, dtype=object)
    use_ret = (retention_ev >= min_ev) & (retention_ev >= best_ev)
    use_xs = ~use_ret & (best_ev >= min_ev)
    action[use_ret] = "retention"
    offer[use_ret] = ret_id
    action[use_xs] = "cross_sell"
    offer[use_xs] = np.asarray(offer_ids, dtype=object)[best_index[use_xs]]
    action[~consent] = "non_personalised"
    offer[~consent] = catalog.default_action.offer_id
    top_index[~consent] = -1
    channel = np.full(n, None, dtype=object)
    names = np.array([*catalog.channel_names, None], dtype=object)
    if offer_channel is not None and m:
        chosen = offer_channel[np.arange(n), np.maximum(best_index, 0)]
        channel[use_xs] = names[chosen[use_xs]]
    if catalog.retention is not None:
        channel[use_ret] = catalog.retention.channel
    default_ok = _channel_allowed(gate, catalog, catalog.default_action.channel, n)
    channel[~consent] = np.where(default_ok[~consent], catalog.default_action.channel, None)
    return Decisions(
        action,
        offer,
        top_index,
        top_ev,
        top_p,
        retention_ev,
        best_ev,
        count_cust,
        best_index,
        best_p,
        effects,
        channel,
        offer_channel,
        gate.weights,
    )


def _channel_allowed(gate: OfferGate, catalog: Catalog, channel: str, n: int) -> np.ndarray:
    """Per customer: may ``channel`` be used (everyone, when permissions are unknown)?"""
    if gate.channel_ok is None or channel not in catalog.channel_names:
        return np.ones(n, dtype=bool)
    return gate.channel_ok[:, catalog.channel_names.index(channel)]
