"""The event store folded into a dataset: what ``train``, ``score`` and ``evaluate`` read too.

:func:`apply_to_dataset` returns a new :class:`~nextbest.data.Dataset` (the
caller's frames are not modified) where

* **consent** from consent events overrides the customers file (the file has
  no time, so an event is always newer; among events the newest wins, see
  :meth:`~nextbest.events.store.EventStore.consent_state`); customers known
  only from events are added;
* **purchases** become transaction lines (``customer_id``, ``timestamp``,
  ``amount`` and ``order_id``, ``category``, ``channel``, ``quantity``); a
  purchase whose ``order_id`` the customer already has in the file is not
  added twice, so a file exported after the events were posted does not
  double them;
* **contacts** (with their responses) are returned as a campaign log for
  cooldowns and caps (:func:`sent_contacts` gives the contact history).

Only events up to the store's head when the fold began count (the cursor
rule of :mod:`nextbest.events`); ``nextbest train`` records that head in the
snapshot metadata (``events_head``), and the service replays the events
after it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nextbest.config import Paths, settings
from nextbest.data import Dataset
from nextbest.data.campaign_log import CONTACT_OUTCOME
from nextbest.events.store import EventStore, open_store

TX_COLUMNS = ("customer_id", "timestamp", "amount", "order_id", "category", "channel", "quantity")


@dataclass
class Folded:
    """A dataset with the store's events folded in, and what was folded."""

    dataset: Dataset
    head: int = 0
    contacts: pd.DataFrame = field(default_factory=pd.DataFrame)
    purchases_added: int = 0
    consent_overrides: int = 0


def events_url(paths: Paths | None = None) -> str:
    """``NEXTBEST_EVENTS_URL``, else the SQLite file ``events.db`` under ``paths.root``."""
    paths = paths or settings().paths
    return settings().events_url or f"sqlite:///{paths.root / 'events.db'}"


def store_for(paths: Paths | None = None, create: bool = False) -> EventStore | None:
    """The event store of this home, or None when there is none yet (SQLite file missing).

    A command that only reads events (train, score, evaluate) does not create an
    empty store as a side effect; pass ``create=True`` to make one.
    """
    url = events_url(paths)
    if url.startswith("sqlite:///") and not create:
        if not Path(url[len("sqlite:///") :].split("?", 1)[0]).exists():
            return None
    return open_store(url)


def purchase_lines(purchases: pd.DataFrame, tx: pd.DataFrame) -> pd.DataFrame:
    """Purchase events as transaction lines, without orders ``tx`` already has (same customer
    and ``order_id``); columns as in ``tx`` plus any the events fill."""
    lines = purchases[[c for c in TX_COLUMNS if c in purchases.columns]]
    if "order_id" in tx.columns and lines["order_id"].notna().any():
        known = tx["customer_id"].astype(str) + "\x1f" + tx["order_id"].astype("string")
        key = lines["customer_id"] + "\x1f" + lines["order_id"].astype("string")
        lines = lines[~key.isin(set(known.dropna())).fillna(False).to_numpy()]
    keep = [
        c
        for c in lines.columns
        if c in ("customer_id", "timestamp", "amount") or c in tx.columns or lines[c].notna().any()
    ]
    lines = lines[keep].reset_index(drop=True)
    if not pd.api.types.is_datetime64_any_dtype(tx["timestamp"]):
        lines["timestamp"] = lines["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return lines


def with_consent(customers: pd.DataFrame, state: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``customers`` with profiling consent from ``state`` (:meth:`EventStore.consent_state`);
    customers known only from events added. Returns the frame and how many ids changed."""
    profiling = state[state["channel"].isna()]
    if profiling.empty:
        return customers, 0
    granted = dict(zip(profiling["customer_id"], profiling["granted"].astype(bool)))
    out = customers.copy()
    ids = out["customer_id"].astype(str)
    has = ids.isin(granted.keys()).to_numpy()
    if "consent_profiling" not in out.columns:
        out["consent_profiling"] = True
    consent = out["consent_profiling"].astype(object).to_numpy(copy=True)
    consent[has] = [granted[c] for c in ids[has]]
    out["consent_profiling"] = pd.array(consent, dtype="boolean").fillna(True).astype(bool)
    new = sorted(set(granted) - set(ids))
    if new:
        extra = pd.DataFrame({"customer_id": new, "consent_profiling": [granted[c] for c in new]})
        out = pd.concat([out, extra], ignore_index=True)
    return out, int(has.sum()) + len(new)


def apply_to_dataset(dataset: Dataset, store: EventStore, head: int | None = None) -> Folded:
    """``dataset`` with the events up to ``head`` (default: the store's head now) folded in.

    Parameters
    ----------
    dataset : Dataset
        Transactions and customers from files or a bundled dataset (not modified).
    store : EventStore
    head : int, optional
        Highest sequence number to fold (read first, before any frame).

    Returns
    -------
    Folded
        The new dataset, the head, the campaign log of contacts, and counts.
    """
    head = store.head() if head is None else int(head)
    purchases = store.purchases()
    purchases = purchases[purchases["seq"].to_numpy() <= head]
    tx = dataset.transactions
    lines = purchase_lines(purchases, tx) if len(purchases) else purchases.iloc[:0]
    if len(lines):
        tx = pd.concat([tx, lines], ignore_index=True)
    customers, overrides = with_consent(dataset.customers, store.consent_state())
    contacts = store.contacts()
    contacts = contacts[contacts["seq"].to_numpy() <= head].reset_index(drop=True)
    folded = dataclasses.replace(dataset, transactions=tx, customers=customers)
    return Folded(folded, head, contacts, len(lines), overrides)


def fold_events(dataset: Dataset, paths: Paths | None = None) -> Folded:
    """:func:`apply_to_dataset` with this home's store; the dataset unchanged if there is none."""
    store = store_for(paths)
    if store is None:
        return Folded(dataset)
    try:
        return apply_to_dataset(dataset, store)
    finally:
        store.close()


def sent_contacts(log: pd.DataFrame | None) -> pd.DataFrame | None:
    """A campaign log as contact history (``customer_id, offer_id, timestamp`` and, where the
    log has them, ``channel`` and ``converted``) of sent offers.

    Held-out rows (``group = control``) and rows without an offer are not contacts.
    """
    if log is None or log.empty:
        return None
    time_col = "contacted_at" if "contacted_at" in log.columns else "timestamp"
    group = log["group"].fillna("treatment").to_numpy() if "group" in log.columns else None
    sent = log["offer_id"].fillna("").to_numpy() != ""
    if group is not None:
        sent &= group != "control"
    cols = ["customer_id", "offer_id", time_col, *[c for c in CONTACT_OUTCOME if c in log.columns]]
    out = log.loc[sent, cols].rename(columns={time_col: "timestamp"})
    return out.reset_index(drop=True) if len(out) else None


def merge_histories(*histories: pd.DataFrame | None) -> pd.DataFrame | None:
    """Contact histories stacked (``customer_id, offer_id, timestamp``, and ``channel`` and
    ``converted`` where one has them, for the channel preference), None if all are empty."""
    parts = [
        h[
            [
                "customer_id",
                "offer_id",
                "timestamp",
                *[c for c in CONTACT_OUTCOME if c in h.columns],
            ]
        ].assign(
            timestamp=lambda f: (
                pd.to_datetime(f["timestamp"], utc=True, format="mixed")
                .dt.tz_localize(None)
                .astype("datetime64[ns]")
            )
        )
        for h in histories
        if h is not None and len(h)
    ]
    if not parts:
        return None
    out = pd.concat(parts, ignore_index=True)
    out["customer_id"] = out["customer_id"].astype(str)
    return out


__all__ = [
    "Folded",
    "apply_to_dataset",
    "events_url",
    "fold_events",
    "merge_histories",
    "purchase_lines",
    "sent_contacts",
    "store_for",
    "with_consent",
]
