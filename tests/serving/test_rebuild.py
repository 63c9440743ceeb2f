"""One customer re-built from the snapshot and their events equals what training would build."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from nextbest.data.schema import validate_transactions, without_customers
from nextbest.events.schema import Event, to_us
from nextbest.features.build import build_context, features_at
from nextbest.features.customer import customer_features, purchase_table
from nextbest.serving.rebuild import feature_row
from nextbest.serving.state import load_state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def state(trained_settings):
    return load_state(trained_settings)


def purchase(state, cid: str, when: pd.Timestamp, category: str, seq: int = 1) -> Event:
    return Event(
        type="purchase",
        event_id=f"e{seq}",
        customer_id=cid,
        at_us=to_us(when.to_pydatetime()),
        amount=12.5,
        category=category,
        seq=state.events_head + seq,
    )


def test_a_purchase_after_the_snapshot_gives_the_features_training_would_give(state, trained_home):
    ds = trained_home.dataset
    cid = sorted(set(ds.customers["customer_id"]) - set(trained_home.opted_out))[10]
    when = state.as_of + pd.Timedelta(days=3, hours=10)
    row, as_of = feature_row(state, cid, [purchase(state, cid, when, "MEAT")])
    assert as_of == state.as_of + pd.Timedelta(days=4)

    # Known answer: the training features over every transaction plus the new line, at as_of.
    line = pd.DataFrame(
        {"customer_id": [cid], "timestamp": [when], "amount": [12.5], "category": ["MEAT"]}
    )
    tx = validate_transactions(pd.concat([ds.transactions, line], ignore_index=True), as_of=as_of)
    tx = without_customers(tx.transactions, ds.opted_out)
    categories = state.bundle.catalog.categories
    ctx = build_context(tx, ds.customers, categories, ds.extras)
    expected = features_at(ctx, as_of, state.time_unit_days).set_index("customer_id").loc[cid]
    behaviour = customer_features(purchase_table(line, categories), as_of).columns.drop(
        "customer_id"
    )
    for col in behaviour:
        got, want = row[col].iat[0], expected[col]
        assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=1e-12), col

    before = state.snapshot_rows.rows(cid).iloc[0]
    unit = state.time_unit_days
    assert row["frequency"].iat[0] == before["frequency"] + 1  # a new purchase day
    assert row["T"].iat[0] == pytest.approx(before["T"] + 4 / unit)
    assert row["recency"].iat[0] == pytest.approx(row["T"].iat[0])  # bought on the last day
    assert row["days_since_meat"].iat[0] == 1.0 and row["bought_meat_90d"].iat[0] == 1.0
    # Campaign response and demographics are kept from the snapshot row.
    assert row["n_campaigns_received"].iat[0] == before["n_campaigns_received"]


def test_an_objection_needs_no_features_and_an_unknown_id_none(state, trained_home):
    cid = sorted(trained_home.dataset.customers["customer_id"])[0]
    objection = Event(
        type="consent",
        event_id="c1",
        customer_id=cid,
        at_us=to_us(state.as_of.to_pydatetime()),
        consent_profiling=False,
        seq=state.events_head + 1,
    )
    row, _ = feature_row(state, cid, [objection])
    assert row["consent_profiling"].tolist() == [False]
    assert row.drop(columns=["customer_id", "consent_profiling"]).isna().all(axis=None)
    assert feature_row(state, "no-such-customer", [])[0] is None


def test_customers_decided_together_get_what_each_gets_alone(state, trained_home):
    from nextbest.serving.rebuild import customer_decision, customer_decisions

    ids = sorted(set(trained_home.dataset.customers["customer_id"]) - set(trained_home.opted_out))
    when = state.as_of - pd.Timedelta(hours=12)
    events = {
        ids[20]: [purchase(state, ids[20], when, "MEAT")],
        ids[21]: [purchase(state, ids[21], when + pd.Timedelta(days=2), "PRODUCE", seq=2)],
        ids[22]: [],
        "only-events-1": [purchase(state, "only-events-1", when, "DELI", seq=3)],
    }
    together = customer_decisions(state, events)
    for cid, mine in events.items():
        assert together[cid] == customer_decision(state, cid, mine), cid
    assert together[ids[21]]["as_of"] == (state.as_of + pd.Timedelta(days=2)).date()


def test_purchase_channels_move_the_channel_preference_at_once(state, trained_home):
    """Complete Journey has no channel column: the purchase events' channel alone says where
    this customer buys. App offers gain expected value and e-mail offers lose it, at once."""
    ids = sorted(set(trained_home.dataset.customers["customer_id"]) - set(trained_home.opted_out))
    cid = ids[30]
    days = [state.as_of + pd.Timedelta(days=d, hours=10) for d in (1, 2, 3)]
    plain = [purchase(state, cid, t, "MEAT", seq=k + 1) for k, t in enumerate(days)]
    in_app = [dataclasses.replace(e, channel="app") for e in plain]
    row, _ = feature_row(state, cid, in_app)
    assert row["channel_days_app"].iat[0] == 3.0 and row["channel_days_email"].iat[0] == 0.0

    compared, after = _offer_values(state, cid, plain, in_app)
    for offer, channel, before, now in compared:
        assert (now > before) if channel == "app" else (now < before), offer
    if after["action"] == "cross_sell":
        assert any(r["code"] == "CHANNEL_PREFERENCE" for r in after["reasons"])


def _offer_values(state, cid, before_events, after_events):
    """``(offer, its channel, expected value before, after)`` of the offers listed both times,
    and the decision after."""
    from nextbest.serving.rebuild import customer_decision

    channel_of = {o.offer_id: o.channel for o in state.bundle.catalog.offers}
    before = customer_decision(state, cid, before_events)
    after = customer_decision(state, cid, after_events)
    ev_before = {o["offer_id"]: o["expected_value"] for o in before["offers"]}
    ev_after = {o["offer_id"]: o["expected_value"] for o in after["offers"]}
    both = sorted(set(ev_before) & set(ev_after))
    assert both
    return [(o, channel_of[o], ev_before[o], ev_after[o]) for o in both], after


def test_a_response_to_an_email_contact_raises_the_email_preference_at_once(state, trained_home):
    ids = sorted(set(trained_home.dataset.customers["customer_id"]) - set(trained_home.opted_out))
    cid = ids[31]
    catalog = state.bundle.catalog
    sent = next(o.offer_id for o in catalog.offers if o.channel == "email")
    at = state.as_of + pd.Timedelta(hours=10)
    contact = Event(
        "contact",
        "c1",
        cid,
        to_us(at.to_pydatetime()),
        offer_id=sent,
        group="treatment",
        channel="email",
        seq=state.events_head + 1,
    )
    answer = Event(
        "response",
        "r1",
        cid,
        to_us((at + pd.Timedelta(hours=5)).to_pydatetime()),
        offer_id=sent,
        converted=1,
        seq=state.events_head + 2,
    )
    compared, _ = _offer_values(state, cid, [contact], [contact, answer])
    for offer, channel, before, now in compared:
        assert (now > before) if channel == "email" else (now == before), offer


def test_a_response_event_counts_for_the_contact_it_answers():
    from nextbest.serving.rebuild import with_responses

    contacts = pd.DataFrame(
        {
            "customer_id": ["1", "1", "1", "2"],
            "offer_id": ["A", "A", "B", "A"],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-02", "2024-01-01"]),
            "channel": ["email", "sms", "email", "email"],
        }
    )

    def response(cid, offer, day, converted):
        at = to_us(pd.Timestamp(day).to_pydatetime())
        return Event(
            "response", f"r{cid}{offer}{day}", cid, at, offer_id=offer, converted=converted
        )

    got = with_responses(
        contacts,
        [
            response("1", "A", "2024-01-06", 1),  # the latest A contact before it: the SMS one
            response("1", "B", "2024-01-01", 1),  # before any B contact: changes nothing
            response("2", "A", "2024-01-03", 0),
        ],
    )
    np.testing.assert_array_equal(got["converted"].to_numpy(), [np.nan, 1.0, np.nan, 0.0])
    assert "converted" not in contacts.columns  # the caller's frame is not changed
