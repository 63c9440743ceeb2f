"""The event store folded into a dataset (train, score, evaluate): consent, purchases, contacts."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from nextbest.data import Dataset
from nextbest.events import open_store, validate_events
from nextbest.events.fold import apply_to_dataset, sent_contacts

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def append(store, events):
    checked = validate_events(events, now=NOW)
    assert checked.ok, checked.rejects
    return store.append(checked.accepted)


def dataset() -> Dataset:
    tx = pd.DataFrame(
        {
            "customer_id": ["1", "2"],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "amount": [10.0, 20.0],
            "order_id": ["o1", "o2"],
        }
    )
    customers = pd.DataFrame({"customer_id": ["1", "2"], "consent_profiling": [True, False]})
    return Dataset("t", tx, customers)


def test_consent_purchases_and_contacts_are_folded_up_to_the_head(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    append(
        store,
        [
            {"type": "consent", "customer_id": "1", "at": "2024-02-01", "consent_profiling": False},
            {"type": "consent", "customer_id": "2", "at": "2024-02-01", "consent_profiling": True},
            {"type": "consent", "customer_id": "9", "at": "2024-02-01", "consent_profiling": False},
            {
                "type": "purchase",
                "customer_id": "1",
                "timestamp": "2024-01-01",
                "amount": 10.0,
                "order_id": "o1",
            },  # the file has this order already
            {
                "type": "purchase",
                "customer_id": "3",
                "timestamp": "2024-03-01",
                "amount": 5.0,
                "category": "MEAT",
            },
            {
                "type": "contact",
                "customer_id": "1",
                "contacted_at": "2024-03-02",
                "offer_id": "XS-MEAT",
                "group": "treatment",
            },
            {
                "type": "contact",
                "customer_id": "2",
                "contacted_at": "2024-03-02",
                "group": "control",
            },
        ],
    )
    head = store.head()
    append(
        store, [{"type": "purchase", "customer_id": "4", "timestamp": "2024-03-05", "amount": 1.0}]
    )  # after the head: not folded
    ds = dataset()
    folded = apply_to_dataset(ds, store, head=head)
    assert folded.head == head and folded.purchases_added == 1
    tx = folded.dataset.transactions
    assert tx["customer_id"].tolist() == ["1", "2", "3"]
    assert tx.loc[2, "amount"] == 5.0 and tx.loc[2, "category"] == "MEAT"
    consent = folded.dataset.customers.set_index("customer_id")["consent_profiling"]
    assert consent.to_dict() == {"1": False, "2": True, "9": False}
    assert folded.consent_overrides == 3
    assert len(folded.contacts) == 2
    history = sent_contacts(folded.contacts)
    assert history["offer_id"].tolist() == ["XS-MEAT"]  # a held-out row is not a contact
    assert len(ds.transactions) == 2 and ds.customers["consent_profiling"].tolist() == [True, False]
    store.close()
