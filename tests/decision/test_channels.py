"""Consent per channel and the channel of each action."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.decision.catalog import parse_catalog
from nextbest.decision.policy import channel_permissions, decide
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
