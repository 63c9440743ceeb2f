"""Consent per channel and the channel of each action."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.decision.catalog import parse_catalog
from nextbest.decision.channels import channel_permissions
from nextbest.decision.policy import decide
from nextbest.decision.reasons import build_reasons
from nextbest.errors import CatalogError

RAW = {
    "policy": {"top_k": 1, "min_expected_value": 0.1},
    "channels": {
        "email": {"consent_default": "opt_in"},
        "sms": {"consent_default": "opt_in"},
        "mail": {"consent_default": "opt_out"},
    },
    "default_action": {"offer_id": "NEWS", "name": "Newsletter", "channel": "email"},
    "offers": [
        {
            "offer_id": "A",
            "name": "A",
            "category": "DELI",
            "value": 10.0,
            "channels": {"email": 0.05, "sms": 0.20, "mail": 1.00},
        }
    ],
}


def _decide(consents: dict[str, list], p: float = 0.5):
    catalog = parse_catalog(RAW)
    n = len(next(iter(consents.values())))
    features = pd.DataFrame({"customer_id": [str(i) for i in range(n)], **consents})
    zeros = np.zeros(n)
    d = decide(
        features,
        catalog,
        np.full((n, 1), p),
        np.full(n, 100.0),
        zeros,
        np.ones(n),
        np.ones(n, dtype=bool),
    )
    return catalog, features, d


def test_the_cheapest_channel_the_customer_has_not_refused():
    catalog, _, d = _decide(
        {
            "consent_email": [True, False, None, None, False],
            "consent_sms": [None, True, None, None, False],
            "consent_mail": [None, None, None, False, False],
        }
    )
    # opted in to e-mail -> e-mail; refused e-mail, opted in to SMS -> SMS; said nothing ->
    # mail (the only opt-out channel); refused mail too -> nothing; refused all -> nothing
    assert list(d.channel) == ["email", "sms", "mail", None, None]
    assert list(d.action) == ["cross_sell", "cross_sell", "cross_sell", "no_action", "no_action"]
    # the expected value uses the chosen channel's cost
    np.testing.assert_allclose(d.best_ev[:3], [5 - 0.05, 5 - 0.20, 5 - 1.00])


def test_defaults_follow_each_channels_consent_default():
    catalog = parse_catalog(RAW)
    allowed = channel_permissions(pd.DataFrame({"customer_id": ["1"]}), catalog)
    assert allowed.tolist() == [[False, False, True]]  # e-mail and SMS need an opt-in


def test_the_non_personalised_default_goes_out_only_on_a_permitted_channel():
    catalog = parse_catalog(RAW)
    features = pd.DataFrame({"customer_id": ["1", "2"], "consent_email": [True, None]})
    d = decide(
        features,
        catalog,
        np.full((2, 1), 0.5),
        np.full(2, np.nan),
        np.full(2, np.nan),
        np.full(2, np.nan),
        np.zeros(2, dtype=bool),  # both objected to profiling
    )
    assert list(d.action) == ["non_personalised", "non_personalised"]
    assert list(d.channel) == ["email", None]


def test_the_reason_names_the_channel_and_its_cost():
    catalog, features, d = _decide({"consent_sms": [True], "consent_email": [False]})
    reasons = build_reasons(
        features, catalog, d, np.full(1, 100.0), np.zeros(1), np.ones(1), np.ones(1, bool)
    )
    assert d.channel[0] == "sms"
    assert any("$0.20" in r["text"] for r in reasons[0])


def test_an_undeclared_or_badly_declared_channel_is_a_catalog_error():
    bad = {**RAW, "channels": {"email": {"consent_default": "opt_in"}}}
    with pytest.raises(CatalogError, match=r"\['mail', 'sms'\] are used but not declared"):
        parse_catalog(bad)
    bad = {**RAW, "channels": {**RAW["channels"], "sms": {"consent_default": "maybe"}}}
    with pytest.raises(CatalogError, match="channels.sms.consent_default must be one of"):
        parse_catalog(bad)


def _weights(features, history=None, as_of=None, raw=RAW):
    from nextbest.decision.channels import channel_weights

    return channel_weights(features, parse_catalog(raw), history, as_of)


def test_without_channel_data_there_is_no_preference():
    features = pd.DataFrame({"customer_id": ["1"]})
    assert _weights(features) is None
    # a history without channel or outcome says nothing either
    history = pd.DataFrame({"customer_id": ["1"], "offer_id": ["A"], "timestamp": ["2024-01-01"]})
    assert _weights(features, history) is None


def test_purchase_days_give_a_smoothed_share_times_the_number_of_channels():
    # Prior strength k = 4 purchase-days spread over C = 3 channels.
    features = pd.DataFrame(
        {"customer_id": ["1", "2"], "channel_days_sms": [6.0, 0.0], "channel_days_email": [2, 0]}
    )
    w = _weights(features)
    # customer 1: D = 8 days; email (2 + 4/3) / 12 x 3, sms (6 + 4/3) / 12 x 3, mail (4/3) / 12 x 3
    np.testing.assert_allclose(w[0], [10 / 12, 22 / 12, 4 / 12])
    np.testing.assert_allclose(w[1], [1.0, 1.0, 1.0])  # nothing known: no preference
    np.testing.assert_allclose(w.mean(axis=1), 1.0)


def test_responses_per_channel_are_relative_to_the_customers_own_rate():
    features = pd.DataFrame({"customer_id": ["1", "2"]})
    history = pd.DataFrame(
        {
            "customer_id": ["1"] * 6 + ["2", "1"],
            "offer_id": ["A"] * 8,
            "timestamp": ["2024-01-0" + str(d) for d in range(1, 9)],
            # "1": e-mail 1 of 4, SMS 2 of 2; a contact with no known outcome and one on a
            # channel the catalog does not have are not read; "1"'s last is after as_of.
            "channel": ["email", "email", "email", "EMAIL", "sms", "sms", "fax", "sms"],
            "converted": [1, 0, 0, 0, 1, 1, 1, 1],
        }
    )
    history.loc[3, "converted"] = np.nan
    w = _weights(features, history, as_of="2024-01-08")
    rate = (3 + 1) / (5 + 2)  # "1": 3 conversions in 5 known contacts
    k = 4.0
    np.testing.assert_allclose(
        w[0],
        [(1 + k * rate) / (3 + k) / rate, (2 + k * rate) / (2 + k) / rate, 1.0],
    )
    np.testing.assert_allclose(w[1], [1.0, 1.0, 1.0])  # "2" only answered on an unknown channel


def test_the_channel_with_the_best_expected_value_wins_over_the_cheapest():
    catalog = parse_catalog(RAW)
    # Both permitted e-mail and SMS; "1" buys by SMS, "2" has no channel record.
    features = pd.DataFrame(
        {
            "customer_id": ["1", "2", "3"],
            "consent_email": [True, True, True],
            "consent_sms": [True, True, False],  # "3" refused SMS: never chosen
            "channel_days_sms": [10.0, 0.0, 10.0],
        }
    )
    n = 3
    d = decide(
        features,
        catalog,
        np.full((n, 1), 0.2),
        np.full(n, 100.0),
        np.zeros(n),
        np.ones(n),
        np.ones(n, dtype=bool),
    )
    w = d.channel_weights
    assert w[0, 1] > 1 > w[0, 0]
    assert list(d.channel) == ["sms", "email", "email"]
    # Expected value on the chosen channel: min(1, p x w) x value - cost.
    np.testing.assert_allclose(
        d.best_ev, [0.2 * w[0, 1] * 10 - 0.20, 0.2 * 10 - 0.05, 0.2 * w[2, 0] * 10 - 0.05]
    )
    reasons = build_reasons(
        features, catalog, d, np.full(n, 100.0), np.zeros(n), np.ones(n), np.ones(n, bool)
    )
    codes = [[r["code"] for r in rs] for rs in reasons]
    assert "CHANNEL_PREFERENCE" in codes[0] and "CHANNEL_PREFERENCE" not in codes[1]
    text = next(r["text"] for r in reasons[0] if r["code"] == "EXPECTED_VALUE")
    assert f"x {w[0, 1]:.2f} (sms preference)" in text


def test_a_weak_channel_preference_can_make_an_offer_not_worth_sending():
    catalog = parse_catalog(RAW)
    # Only e-mail permitted, and the customer buys by mail and SMS, never e-mail.
    features = pd.DataFrame(
        {
            "customer_id": ["1", "2"],
            "consent_email": [True, True],
            "consent_sms": [False, False],
            "consent_mail": [False, False],
            "channel_days_sms": [20.0, 0.0],
        }
    )
    d = decide(
        features,
        catalog,
        np.full((2, 1), 0.02),  # EV 0.02 x 10 - 0.05 = 0.15 with no preference
        np.full(2, 100.0),
        np.zeros(2),
        np.ones(2),
        np.ones(2, dtype=bool),
    )
    assert list(d.action) == ["no_action", "cross_sell"]


def test_channel_prior_strength_must_be_positive():
    bad = {**RAW, "policy": {**RAW["policy"], "channel_prior_strength": 0}}
    with pytest.raises(CatalogError, match="channel_prior_strength must be > 0"):
        parse_catalog(bad)


def test_the_gate_reads_responses_from_the_contact_history():
    """A contact history with ``channel`` and ``converted`` (a campaign log's, or a
    ``--contact-history`` file's) reaches the channel preference through the gate."""
    from nextbest.decision.policy import gate_offers

    catalog = parse_catalog(RAW)
    features = pd.DataFrame({"customer_id": ["1", "2"], "consent_email": [True, True]})
    history = pd.DataFrame(
        {
            "customer_id": ["1", "1"],
            "offer_id": ["A", "A"],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "channel": ["sms", "sms"],
            "converted": [1, 1],
        }
    )
    n = 2
    args = (features, catalog, np.full(n, 100.0), np.zeros(n), np.ones(n), np.ones(n, bool))
    gate = gate_offers(*args, history, "2024-02-01")
    assert gate.weights[0, 1] > 1.0 and gate.weights[0, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(gate.weights[1], 1.0)
    # Without outcomes, or before the contacts, there is nothing to learn from.
    assert gate_offers(*args, history.drop(columns="converted"), "2024-02-01").weights is None
    assert gate_offers(*args, history, "2024-01-01").weights is None
