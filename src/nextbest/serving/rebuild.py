"""Customers re-decided from the snapshot and their events, with the champion models.

The snapshot's decision of a customer is precomputed; once events arrive for
them (:mod:`.overlay`), :func:`customer_decisions` builds their feature rows
again with the same feature functions as training and batch, and decides
with :func:`nextbest.scoring.score` on those rows only (customers asked for at
the same moment are built and scored together: one call, not one per
customer). Nothing is retrained and no other customer is touched.

* **Consent.** The newest profiling-consent event wins over the snapshot
  (latest event time, then latest arrival). An objection gives the
  non-personalised row (``customer_id`` and ``consent_profiling = false``,
  no feature computed at all), as batch scoring does.
* **Purchases** after the snapshot (sequence number above the snapshot's
  ``events_head``) go through the one transactions validator and are added
  to the customer's training transactions (``history.parquet``, validated at
  training). The behavioural features (BG/NBD frequency, recency and age T
  in the model's time unit, the windows, inter-purchase times, category
  recency and mix: :func:`~nextbest.features.customer.customer_features`)
  are computed at ``as_of`` = the snapshot's ``as_of`` or, if later, the day
  after the latest purchase; the other columns (campaign response,
  demographics) are kept from the snapshot row. A customer known only from
  events is built from their events alone (:func:`~nextbest.features.build.features_at`),
  like ``/predict_features``. A category bought just now is then one day old,
  so a cross-sell offer for it is no longer eligible.
* **Contacts** after the snapshot (sent: group treatment or explore, with an
  offer) join the contact history; the decision is taken as of the day after
  the latest one, so its cooldown and the 30-day caps apply at once.

A customer who objected at training time and later withdrew the objection,
with no purchase since, keeps the non-personalised default until the next
training: their earlier transactions were never kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.data.schema import validate_transactions
from nextbest.errors import InputError
from nextbest.events.frames import response_outcomes
from nextbest.events.schema import Event
from nextbest.features.build import build_context, features_at
from nextbest.features.customer import customer_features, purchase_table
from nextbest.scoring import score
from nextbest.serving.coldstart import conform
from nextbest.serving.state import ServingState, decision_table

SENT_GROUPS = ("treatment", "explore")
_DAY = pd.Timedelta(days=1)


def newest_consent(events: Iterable[Event]) -> Event | None:
    """The deciding profiling-consent event: latest ``at``, then highest ``seq``; None if none."""
    best = None
    for e in events:
        if e.type != "consent" or e.consent_profiling is None:
            continue
        if best is None or (e.at_us, e.seq or 0) > (best.at_us, best.seq or 0):
            best = e
    return best


def channel_consent(events: Iterable[Event]) -> dict[str, Event]:
    """The deciding per-channel opt-in/opt-out event of each channel (same newest-wins rule)."""
    out: dict[str, Event] = {}
    for e in events:
        if e.type != "consent" or e.opt_in is None or not e.channel:
            continue
        best = out.get(e.channel)
        if best is None or (e.at_us, e.seq or 0) > (best.at_us, best.seq or 0):
            out[e.channel] = e
    return out


def _day_after(at_us: int) -> pd.Timestamp:
    return pd.Timestamp(int(at_us), unit="us").normalize() + _DAY


@dataclass
class _Plan:
    """What one customer's events say, before any feature is computed."""

    customer_id: str
    allowed: bool
    purchases: list[Event]
    sent: list[Event]
    responses: list[Event]
    as_of: pd.Timestamp
    decided_at: pd.Timestamp
    in_snapshot: bool
    profiled: bool  # in the snapshot with features (did not object at training)


def purchase_lines(plans: list[_Plan]) -> pd.DataFrame:
    """The purchase events of ``plans`` as transaction lines (naive UTC times), one frame."""
    events = [e for p in plans for e in p.purchases]
    return pd.DataFrame(
        {
            "customer_id": pd.Series([e.customer_id for e in events], dtype=object),
            "timestamp": _times(events),
            "amount": np.array([e.amount for e in events], dtype="float64"),
            "category": pd.Series([e.category for e in events], dtype="string"),
            "order_id": pd.Series([e.order_id for e in events], dtype="string"),
            "channel": pd.Series([e.channel for e in events], dtype="string"),
        }
    )


def contact_lines(plans: list[_Plan]) -> pd.DataFrame:
    """The sent contact events of ``plans`` as contact history (``customer_id, offer_id,
    timestamp, channel``), one frame."""
    events = [e for p in plans for e in p.sent]
    return pd.DataFrame(
        {
            "customer_id": pd.Series([e.customer_id for e in events], dtype=object),
            "offer_id": pd.Series([e.offer_id for e in events], dtype=object),
            "timestamp": _times(events),
            "channel": pd.Series([e.channel for e in events], dtype=object),
        }
    )


def with_responses(contacts: pd.DataFrame | None, responses: list[Event]) -> pd.DataFrame | None:
    """``contacts`` with the outcome of the response events after the snapshot.

    Matched by the training rule (:func:`nextbest.events.frames.response_outcomes`);
    ``converted`` becomes the largest outcome known. A response with no such
    contact changes nothing. Outcomes feed the channel preference
    (:func:`nextbest.decision.channels.channel_weights`).
    """
    if contacts is None or not responses:
        return contacts
    answers = pd.DataFrame(
        {
            "customer_id": [e.customer_id for e in responses],
            "offer_id": [e.offer_id or "" for e in responses],
            "at": _times(responses),
            "converted": np.array([e.converted for e in responses], dtype="float64"),
            "revenue": np.array([np.nan if e.revenue is None else e.revenue for e in responses]),
        }
    )
    outcome = response_outcomes(contacts, "timestamp", answers)
    converted = (
        pd.to_numeric(contacts["converted"], errors="coerce").to_numpy(dtype="float64", copy=True)
        if "converted" in contacts.columns
        else np.full(len(contacts), np.nan)
    )
    pos = outcome.index.to_numpy()
    converted[pos] = np.fmax(converted[pos], outcome["converted"].to_numpy(dtype="float64"))
    return contacts.assign(converted=converted)


def _times(events: list[Event]) -> pd.Series:
    us = np.array([e.at_us for e in events], dtype="int64")
    return pd.Series(pd.to_datetime(us, unit="us").astype("datetime64[ns]"))


def _plan(
    state: ServingState, customer_id: str, events: list[Event], base: bool, profiled: bool
) -> _Plan:
    after = [e for e in events if (e.seq or 0) > state.events_head]
    purchases = [e for e in after if e.type == "purchase"]
    sent = [e for e in after if e.type == "contact" and e.group in SENT_GROUPS and e.offer_id]
    responses = [e for e in after if e.type == "response" and e.converted is not None]
    as_of = state.as_of
    if purchases:
        as_of = max(as_of, max(_day_after(e.at_us) for e in purchases))
    decided_at = as_of
    if sent:
        decided_at = max(as_of, max(_day_after(e.at_us) for e in sent))
    deciding = newest_consent(events)
    allowed = bool(deciding.consent_profiling) if deciding is not None else (profiled or not base)
    return _Plan(
        customer_id, allowed, purchases, sent, responses, as_of, decided_at, base, profiled
    )


def _plans(
    state: ServingState, events_by_customer: dict[str, list[Event]]
) -> tuple[list[_Plan], pd.DataFrame]:
    """Each customer's plan, and the snapshot rows of those in it (indexed by id, one each)."""
    ids = list(events_by_customer)
    snapshot = state.snapshot_rows.rows_many(ids) if state.snapshot_rows is not None else None
    if snapshot is None or snapshot.empty:
        bases = pd.DataFrame({"consent_profiling": []}, index=pd.Index([], dtype=object))
    else:
        keys = snapshot["customer_id"].astype(str).to_numpy(dtype=object)
        bases = snapshot.set_axis(pd.Index(keys, dtype=object), axis=0)
        bases = bases[~bases.index.duplicated(keep="first")]
    consent = bases["consent_profiling"].astype(object).to_numpy()
    profiled = {k for k, v in zip(bases.index, consent) if pd.notna(v) and bool(v)}
    plans = [_plan(state, c, events_by_customer[c], c in bases.index, c in profiled) for c in ids]
    return plans, bases


def _lines(state: ServingState, plans: list[_Plan]) -> pd.DataFrame:
    """Training lines (validated at training) and new purchase lines of ``plans``, the new ones
    validated together.

    The new lines go through the one transactions validator on their own: a
    refund event is netted against purchase events of its day, not against
    the training lines (such a refund is rejected until the next training).
    Each customer's lines all lie before their ``as_of`` by construction.
    """
    lines = validate_transactions(purchase_lines(plans)).transactions
    if state.history is not None:
        past = state.history.rows_many([p.customer_id for p in plans])
        if len(past):
            lines = pd.concat([past, lines], ignore_index=True)
    return lines


def _rebuilt(state: ServingState, plans: list[_Plan], bases: pd.DataFrame) -> pd.DataFrame:
    """Feature rows of customers with new purchases, built from their lines (at their ``as_of``),
    in one frame; customers without a usable line are left out.

    Customers with the same ``as_of`` are built by one feature call, not one
    customer at a time: a row costs little once a call is made.
    """
    lines = _lines(state, plans)
    line_ids = lines["customer_id"].astype(str).to_numpy(dtype=object)
    categories = state.bundle.catalog.categories
    channels = state.bundle.catalog.channel_names
    parts: list[pd.DataFrame] = []
    groups: dict[tuple[pd.Timestamp, bool], list[str]] = {}
    for plan in plans:
        groups.setdefault((plan.as_of, plan.profiled), []).append(plan.customer_id)
    for (as_of, profiled), ids in groups.items():
        mine = lines[np.isin(line_ids, ids)]
        if mine.empty:
            continue
        try:
            if profiled:  # behaviour recomputed; campaign response, demographics kept
                behaviour = customer_features(
                    purchase_table(mine, categories, channels), as_of, state.time_unit_days
                )
                new = [c for c in behaviour.columns if c != "customer_id"]
                kept = bases.loc[behaviour["customer_id"].astype(str).to_numpy(dtype=object)]
                kept = kept.drop(columns=[c for c in new if c in kept.columns])
                behaviour = behaviour[new].reset_index(drop=True)
                parts.append(pd.concat([kept.reset_index(drop=True), behaviour], axis=1))
            else:  # known from events alone (or objected at training): built like cold start
                customers = pd.DataFrame({"customer_id": ids, "consent_profiling": True})
                ctx = build_context(mine, customers, categories, channels=channels)
                parts.append(features_at(ctx, as_of, state.time_unit_days))
        except InputError:  # no line before as_of: nothing to build from
            continue
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"customer_id": []})


def _feature_frame(
    state: ServingState, plans: list[_Plan], bases: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, tuple[int | None, pd.Timestamp]]]:
    """The feature rows of ``plans`` in one conformed frame and, per customer, their row's
    position (None if nothing usable is known) and the ``as_of`` of their decision (the day
    after their latest contact, if later)."""
    rebuild = [p for p in plans if p.allowed and p.purchases]
    built = _rebuilt(state, rebuild, bases) if rebuild else pd.DataFrame({"customer_id": []})
    built_ids = built["customer_id"].astype(str).tolist()
    built_at = {cid: k for k, cid in enumerate(built_ids)}
    objected: list[str] = []
    from_built: list[int] = []
    from_snapshot: list[str] = []
    where: dict[str, tuple[int | None, pd.Timestamp]] = {}
    for plan in plans:
        cid = plan.customer_id
        where[cid] = (None, plan.decided_at)
        if not plan.allowed:
            objected.append(cid)
        elif cid in built_at:
            from_built.append(built_at[cid])
        elif plan.in_snapshot:  # no usable new purchase: the snapshot row as of its as_of
            from_snapshot.append(cid)
            where[cid] = (None, max(plan.decided_at, state.as_of))
    order = objected + [built_ids[k] for k in from_built] + from_snapshot
    if not order:
        return pd.DataFrame(), where
    parts = [
        pd.DataFrame({"customer_id": objected, "consent_profiling": False}),
        built.iloc[from_built],
        bases.loc[from_snapshot],
    ]
    frame = pd.concat([p.reset_index(drop=True) for p in parts if len(p)], ignore_index=True)
    frame = conform(frame, state)
    for k, cid in enumerate(order):
        where[cid] = (k, where[cid][1])
    return frame, where


def feature_rows(
    state: ServingState, events_by_customer: dict[str, list[Event]]
) -> dict[str, tuple[pd.DataFrame | None, pd.Timestamp]]:
    """Each customer's feature row (conformed; None if nothing usable is known) and the
    ``as_of`` of their decision (the day after their latest contact, if later)."""
    plans, bases = _plans(state, events_by_customer)
    frame, where = _feature_frame(state, plans, bases)
    return {
        cid: (None if k is None else frame.iloc[k : k + 1].reset_index(drop=True), at)
        for cid, (k, at) in where.items()
    }


def feature_row(
    state: ServingState, customer_id: str, events: list[Event]
) -> tuple[pd.DataFrame | None, pd.Timestamp]:
    """One customer's feature row (None if nothing usable is known) and the decision's as_of."""
    return feature_rows(state, {customer_id: events})[customer_id]


def customer_decisions(
    state: ServingState, events_by_customer: dict[str, list[Event]]
) -> dict[str, dict | None]:
    """Decisions (Decision-shaped) of several customers from the snapshot and their events.

    ``events_by_customer`` holds every stored event of each customer (sequence
    order). Features are built together and scored with one
    :func:`~nextbest.scoring.score` call per decision date, so deciding many
    customers at once costs little more than one. None for a customer who is
    neither in the snapshot nor known from usable events.
    """
    plans, bases = _plans(state, events_by_customer)
    frame, where = _feature_frame(state, plans, bases)
    out: dict[str, dict | None] = {c: None for c in events_by_customer}
    groups: dict[pd.Timestamp, list[_Plan]] = {}
    for plan in plans:
        k, decided_at = where[plan.customer_id]
        if k is not None:
            groups.setdefault(decided_at, []).append(plan)
    for decided_at, group in groups.items():
        ids = [p.customer_id for p in group]
        features = frame.iloc[[where[c][0] for c in ids]].reset_index(drop=True)
        history = [state.contacts_of(c) for c in ids]
        history.append(contact_lines(group))
        history = [h for h in history if h is not None and len(h)]
        contacts = pd.concat(history, ignore_index=True) if history else None
        contacts = with_responses(contacts, [e for p in group for e in p.responses])
        scored = score(
            features, state.bundle, state.horizon_days, state.popularity, contacts, decided_at
        )
        versions = json.loads(scored["model_versions"].iat[0])
        table = decision_table(
            [scored], len(scored), state.bundle, versions, decided_at, state.horizon_days
        )
        for cid in ids:
            i = table.find(cid)  # -1 for an id no request can name (over 64 characters)
            out[cid] = table.row(i) if i >= 0 else None
    return out


def customer_decision(state: ServingState, customer_id: str, events: list[Event]) -> dict | None:
    """The decision for one customer (see :func:`customer_decisions`)."""
    return customer_decisions(state, {customer_id: events})[customer_id]
