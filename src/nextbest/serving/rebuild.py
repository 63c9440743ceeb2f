"""One customer re-decided from the snapshot and their events, with the champion models.

The snapshot's decision of a customer is precomputed; once events arrive for
them (:mod:`.overlay`), :func:`customer_decision` builds that one customer's
feature row again with the same feature functions as training and batch, and
decides with :func:`nextbest.scoring.score` on that one row. Nothing is
retrained and no other customer is touched.

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

import numpy as np
import pandas as pd

from nextbest.data.schema import validate_transactions
from nextbest.errors import InputError
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


def purchase_lines(customer_id: str, purchases: list[Event]) -> pd.DataFrame:
    """Purchase events as transaction lines (naive UTC times)."""
    return pd.DataFrame(
        {
            "customer_id": customer_id,
            "timestamp": pd.to_datetime([e.at_us for e in purchases], unit="us").astype(
                "datetime64[ns]"
            ),
            "amount": np.array([e.amount for e in purchases], dtype="float64"),
            "category": pd.Series([e.category for e in purchases], dtype="string"),
            "order_id": pd.Series([e.order_id for e in purchases], dtype="string"),
            "channel": pd.Series([e.channel for e in purchases], dtype="string"),
        }
    )


def contact_lines(customer_id: str, contacts: list[Event]) -> pd.DataFrame:
    """Sent contact events as contact history (``customer_id, offer_id, timestamp``)."""
    return pd.DataFrame(
        {
            "customer_id": customer_id,
            "offer_id": [e.offer_id for e in contacts],
            "timestamp": pd.to_datetime([e.at_us for e in contacts], unit="us").astype(
                "datetime64[ns]"
            ),
        }
    )


def _snapshot_row(state: ServingState, customer_id: str) -> pd.DataFrame:
    if state.snapshot_rows is None:
        return pd.DataFrame()
    return state.snapshot_rows.rows(customer_id).head(1).reset_index(drop=True)


def _transactions(
    state: ServingState, customer_id: str, purchases: list[Event], as_of
) -> pd.DataFrame:
    """The customer's training lines (validated at training) and their new lines, validated.

    The new lines go through the one transactions validator on their own: a
    refund event is netted against purchase events of its day, not against
    the training lines (such a refund is rejected until the next training).
    """
    lines = validate_transactions(purchase_lines(customer_id, purchases), as_of=as_of)
    lines = lines.transactions
    if state.history is not None:
        past = state.history.rows(customer_id)
        if len(past):
            lines = pd.concat([past, lines], ignore_index=True)
    return lines


def _rebuilt(
    state: ServingState, customer_id: str, base: pd.DataFrame, clean: pd.DataFrame, as_of
) -> pd.DataFrame | None:
    """The customer's feature row from their clean lines at ``as_of`` (None without a line)."""
    if clean.empty:
        return None
    categories = state.bundle.catalog.categories
    try:
        if len(base) and bool(base["consent_profiling"].iat[0]):
            behaviour = customer_features(
                purchase_table(clean, categories), as_of, state.time_unit_days
            )
            new = [c for c in behaviour.columns if c != "customer_id"]
            kept = base.drop(columns=[c for c in new if c in base.columns])
            return pd.concat([kept, behaviour[new].reset_index(drop=True)], axis=1)
        customers = pd.DataFrame({"customer_id": [customer_id], "consent_profiling": [True]})
        ctx = build_context(clean, customers, categories)
        return features_at(ctx, as_of, state.time_unit_days)
    except InputError:  # no line before as_of: nothing to build from
        return None


def feature_row(
    state: ServingState, customer_id: str, events: list[Event]
) -> tuple[pd.DataFrame | None, pd.Timestamp, pd.Timestamp]:
    """The customer's feature row, its ``as_of`` and the decision's ``as_of`` (for contacts).

    Returns ``(None, ...)`` for a customer the service knows nothing usable
    about (not in the snapshot, no purchase, no objection).
    """
    after = [e for e in events if (e.seq or 0) > state.events_head]
    purchases = [e for e in after if e.type == "purchase"]
    contacts = [e for e in after if e.type == "contact" and e.group in SENT_GROUPS and e.offer_id]
    as_of = state.as_of
    if purchases:
        as_of = max(as_of, max(_day_after(e.at_us) for e in purchases))
    decided_at = as_of
    if contacts:
        decided_at = max(as_of, max(_day_after(e.at_us) for e in contacts))
    base = _snapshot_row(state, customer_id)
    consent_event = newest_consent(events)
    if consent_event is not None:
        allowed = bool(consent_event.consent_profiling)
    else:
        allowed = bool(base["consent_profiling"].iat[0]) if len(base) else True
    if not allowed:
        row = pd.DataFrame({"customer_id": [customer_id], "consent_profiling": [False]})
        return conform(row, state), as_of, decided_at
    row = None
    if purchases:
        row = _rebuilt(
            state, customer_id, base, _transactions(state, customer_id, purchases, as_of), as_of
        )
    if row is None and len(base):
        row, as_of = base, state.as_of
        decided_at = max(decided_at, as_of)
    if row is None:
        return None, as_of, decided_at
    return conform(row, state), as_of, decided_at


def single_threaded(bundle) -> None:
    """Let the state's tree models predict one customer with one thread.

    Called once a state's table is built: a re-decision is one row, and an
    OpenMP team of several threads on a busy host waits a scheduler time slice
    (about 10 ms) per call for its other threads. A worker's parallelism comes
    from its requests and from other workers.
    """
    for model in (bundle.churn, bundle.nbo):
        classifier = getattr(model, "classifier_", None)
        if classifier is not None and hasattr(classifier, "set_params"):
            classifier.set_params(n_jobs=1)


def customer_decision(state: ServingState, customer_id: str, events: list[Event]) -> dict | None:
    """The decision for ``customer_id`` from the snapshot and their events (Decision-shaped).

    ``events`` are every stored event of the customer (sequence order); None
    when the customer is neither in the snapshot nor known from usable events.
    """
    row, _, decided_at = feature_row(state, customer_id, events)
    if row is None:
        return None
    after = [e for e in events if (e.seq or 0) > state.events_head]
    sent = [e for e in after if e.type == "contact" and e.group in SENT_GROUPS and e.offer_id]
    history = state.contacts_of(customer_id)
    if sent:
        mine = contact_lines(customer_id, sent)
        history = mine if history is None else pd.concat([history, mine], ignore_index=True)
    scored = score(
        row,
        state.bundle,
        state.horizon_days,
        state.popularity,
        history,
        as_of=decided_at,
    )
    versions = json.loads(scored["model_versions"].iat[0])
    table = decision_table([scored], 1, state.bundle, versions, decided_at, state.horizon_days)
    return table.row(0)
