"""The channel of each action: what the customer permits, what it costs, where they respond.

For every (customer, offer) the decision picks, among the channels the
customer has not refused (:func:`channel_permissions`) and the offer can go
out on, the one with the best expected value (:func:`best_channels`)::

    min(1, P(convert) x w[c]) x value - cost[c]        (response model)
    effect x w[c] x value + revenue value - cost[c]     (uplift model)

``w`` (:func:`channel_weights`) is the customer's learned **channel
preference**: how much more (> 1) or less (< 1) likely than on an average
catalog channel they are to act on a contact there. It is the product of two
smoothed ratios, each 1 when nothing is known:

* **Purchases** - ``channel_days_<c>`` (purchase-days with a line on channel
  ``c``, from the transactions' ``channel`` column): ``C x (d[c] + k / C) /
  (D + k)``, with ``C`` catalog channels, ``D`` the customer's purchase-days on
  any of them and ``k`` = ``policy.channel_prior_strength`` (a Dirichlet prior
  of ``k`` purchase-days spread evenly over the channels).
* **Responses** - the customer's sent contacts with a known outcome, per
  channel (``channel`` and ``converted`` of the campaign log or contact
  events): ``((r[c] + k x rate) / (t[c] + k)) / rate``, where ``rate`` =
  ``(R + 1) / (T + 2)`` is the customer's response rate over all channels
  (``t[c]`` contacts and ``r[c]`` conversions on ``c``; ``T``, ``R`` in all).

With equal preference (or no data) the cheapest permitted channel wins, as it
did before preferences existed; equal values go to catalog order. The
preference says where a customer has bought and answered: it is **not** a
causal effect of the channel (no log randomizes channels), and the reasons
call it a preference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.data.schema import parse_timestamps
from nextbest.decision.catalog import Catalog
from nextbest.features.customer import CHANNEL_DAYS, channel_codes
from nextbest.features.rfm import as_of_date


def channel_permissions(features: pd.DataFrame, catalog: Catalog) -> np.ndarray:
    """Per customer and catalog channel: may the customer be contacted there?

    ``consent_<channel>`` in ``features`` (true, false or missing) says what the
    customer chose; missing follows the channel's ``consent_default``: ``opt_in``
    channels need a yes, ``opt_out`` channels are allowed unless refused.
    """
    n = len(features)
    out = np.zeros((n, len(catalog.channels)), dtype=bool)
    for c, channel in enumerate(catalog.channels):
        col = f"consent_{channel.name}"
        if col in features.columns:
            given = features[col].astype(object).to_numpy()
            said = pd.notna(given)
            yes = np.array([bool(v) if s else False for v, s in zip(given, said)], dtype=bool)
            out[:, c] = np.where(said, yes, not channel.needs_opt_in)
        else:
            out[:, c] = not channel.needs_opt_in
    return out


def offer_costs(catalog: Catalog) -> np.ndarray:
    """Cost of one contact (m offers x C channels); ``inf`` where the offer does not go."""
    names = catalog.channel_names
    return np.array([[o.cost_on(c) for c in names] for o in catalog.offers]).reshape(
        len(catalog.offers), len(names)
    )


def permitted_costs(catalog: Catalog, allowed: np.ndarray) -> np.ndarray:
    """Cost per (customer, offer, channel), ``inf`` where not permitted (n x m x C)."""
    return np.where(allowed[:, None, :], offer_costs(catalog)[None, :, :], np.inf)


def cheapest_channels(catalog: Catalog, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cost and channel (index) of each offer for each customer: the cheapest permitted one.

    Ties go to catalog order. An offer with no permitted channel costs ``inf``
    (index -1): it cannot be sent.
    """
    if not catalog.channel_names:
        n, m = allowed.shape[0], len(catalog.offers)
        return np.full((n, m), np.inf), np.full((n, m), -1)
    per = permitted_costs(catalog, allowed)
    best = per.argmin(axis=2)
    chosen = np.take_along_axis(per, best[:, :, None], axis=2)[:, :, 0]
    return chosen, np.where(np.isfinite(chosen), best, -1)


def channel_weights(
    features: pd.DataFrame,
    catalog: Catalog,
    history: pd.DataFrame | None = None,
    as_of=None,
) -> np.ndarray | None:
    """Each customer's channel preference (n x C catalog channels), None if nothing is known.

    See the module docstring for the formula. ``history`` is a contact history
    whose optional ``channel`` and ``converted`` columns give the responses;
    contacts on or after ``as_of`` and those without a known outcome are not read.
    """
    names = catalog.channel_names
    if not names:
        return None
    k = float(catalog.policy["channel_prior_strength"])
    weights = None
    cols = [f"{CHANNEL_DAYS}{c}" for c in names]
    if any(c in features.columns for c in cols):
        days = np.column_stack(
            [
                np.nan_to_num(features[c].to_numpy(dtype="float64"))
                if c in features.columns
                else np.zeros(len(features))
                for c in cols
            ]
        )
        share = (days + k / len(names)) / (days.sum(axis=1, keepdims=True) + k)
        weights = len(names) * share
    responses = _response_counts(features, names, history, as_of)
    if responses is not None:
        contacts, converted = responses
        rate = (converted.sum(axis=1, keepdims=True) + 1.0) / (
            contacts.sum(axis=1, keepdims=True) + 2.0
        )
        ratio = ((converted + k * rate) / (contacts + k)) / rate
        weights = ratio if weights is None else weights * ratio
    return weights


def _response_counts(
    features: pd.DataFrame, names: tuple[str, ...], history: pd.DataFrame | None, as_of
) -> tuple[np.ndarray, np.ndarray] | None:
    """Sent contacts with a known outcome, and their conversions, per customer and channel."""
    if (
        history is None
        or history.empty
        or "channel" not in history.columns
        or "converted" not in history.columns
    ):
        return None
    h = history
    if as_of is not None:
        h = h[parse_timestamps(h["timestamp"]).to_numpy() < np.datetime64(as_of_date(as_of))]
    outcome = pd.to_numeric(h["converted"], errors="coerce").to_numpy(dtype="float64")
    col = channel_codes(h["channel"], names)
    ids = pd.Index(features["customer_id"].astype(str))
    row = ids.get_indexer(h["customer_id"].astype(str))
    ok = (row >= 0) & (col >= 0) & np.isfinite(outcome)
    if not ok.any():
        return None
    n, c = len(features), len(names)
    flat = row[ok] * c + col[ok]
    contacts = np.bincount(flat, minlength=n * c).reshape(n, c).astype("float64")
    converted = np.bincount(flat, weights=outcome[ok] > 0, minlength=n * c).reshape(n, c)
    return contacts, converted


def best_channels(
    catalog: Catalog,
    allowed: np.ndarray,
    weights: np.ndarray,
    p_convert: np.ndarray,
    effect: np.ndarray | None = None,
    revenue_value: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected value and channel (index, -1 = none permitted) of each (customer, offer) on its
    best channel, with the customer's channel ``weights`` (n x C).

    ``effect`` (n x m, NaN where the uplift model does not cover the offer) and
    ``revenue_value`` give the incremental value instead of ``P(convert) x value``.
    """
    value = np.array([o.value for o in catalog.offers])[None, :, None]
    cost = permitted_costs(catalog, allowed)  # n x m x C
    w = weights[:, None, :]
    ev = np.minimum(1.0, p_convert[:, :, None] * w) * value - cost
    if effect is not None:
        rv = np.broadcast_to(np.asarray(revenue_value, dtype="float64"), p_convert.shape)
        incremental = effect[:, :, None] * w * value + rv[:, :, None] - cost
        ev = np.where(np.isfinite(effect)[:, :, None], incremental, ev)
    ev = np.where(np.isfinite(cost) & ~np.isnan(ev), ev, -np.inf)
    best = ev.argmax(axis=2)  # equal values: catalog order
    chosen = np.take_along_axis(ev, best[:, :, None], axis=2)[:, :, 0]
    permitted = np.isfinite(cost).any(axis=2)
    return chosen, np.where(permitted, best, -1)
