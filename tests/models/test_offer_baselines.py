"""Baseline offer policies behind the offer-model interface: hand-computed rates, the scoring
path equal to the pair path, the reason they give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.decision.catalog import parse_catalog
from nextbest.errors import ConfigError
from nextbest.models.offer_baselines import REASON_CODE, BaselineOfferModel
from nextbest.models.offers import offer_pairs


def _pairs() -> pd.DataFrame:
    """Offer X: 4 pairs 31-44 days since (3 converted), 2 never bought (0 converted).
    Offer Y: 2 pairs 200 days since (1 converted)."""
    return pd.DataFrame(
        {
            "customer_id": list("abcdefgh"),
            "offer_id": ["X"] * 6 + ["Y"] * 2,
            "cat_days_since": [31, 35, 40, 44, np.nan, np.nan, 200, 250],
            "label": [1, 1, 1, 0, 0, 0, 1, 0],
        }
    )


def test_last_bought_rates_per_band_shrunk_to_the_offer_rate():
    m = BaselineOfferModel("last_bought", prior=2.0).fit(_pairs(), ["X", "Y", "Z"])
    overall = 4 / 8
    x_rate = (3 + 2 * overall) / (6 + 2)  # offer X: 3 of 6, shrunk to the overall rate
    y_rate = (1 + 2 * overall) / (2 + 2)
    z_rate = overall  # no pairs at all: the overall rate
    p = m.predict_proba(
        pd.DataFrame(
            {"offer_id": ["X", "X", "Y", "Z", "W"], "cat_days_since": [33, np.nan, 199, 50, 1]}
        )
    )
    assert p[0] == pytest.approx((3 + 2 * x_rate) / (4 + 2))  # band 31-44: 3 of 4
    assert p[1] == pytest.approx((0 + 2 * x_rate) / (2 + 2))  # never bought: 0 of 2
    assert p[2] == pytest.approx((1 + 2 * y_rate) / (2 + 2))  # band >= 180: 1 of 2
    assert p[3] == pytest.approx(z_rate)
    assert np.isnan(p[4])  # an offer the policy does not know
    assert m.levels_ == {"offer_id": ["X", "Y", "Z"]}


def test_popularity_policy_gives_each_offer_its_own_rate():
    m = BaselineOfferModel("popularity", prior=0.0).fit(_pairs(), ["X", "Y"])
    p = m.predict_proba(pd.DataFrame({"offer_id": ["X", "X", "Y"], "cat_days_since": [31, 300, 1]}))
    np.testing.assert_allclose(p, [0.5, 0.5, 0.5])
    assert m.decision_reason["code"] == REASON_CODE
    assert "popularity" in m.decision_reason["text"]


def test_scoring_path_equals_the_pair_path():
    catalog = parse_catalog(
        {
            "default_action": {"offer_id": "D", "name": "newsletter"},
            "offers": [
                {"offer_id": "X-MEAT", "name": "m", "category": "MEAT", "value": 5, "cost": 1},
                {"offer_id": "X-DELI", "name": "d", "category": "DELI", "value": 5, "cost": 1},
            ],
        }
    )
    rng = np.random.default_rng(0)
    n = 50
    features = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "days_since_meat": np.where(rng.random(n) < 0.3, np.nan, rng.uniform(31, 300, n)),
            "days_since_deli": rng.uniform(31, 300, n),
        }
    )
    pairs = offer_pairs(features, catalog.offers, {})
    pairs["label"] = (rng.random(len(pairs)) < 0.3).astype(int)
    m = BaselineOfferModel("last_bought").fit(pairs, ["X-MEAT", "X-DELI"])
    mask = rng.random((n, 2)) < 0.6
    fast = m.predict_offers(features, catalog.offers, {}, mask=mask)
    slow = m.predict_proba(offer_pairs(features, catalog.offers, {}, mask=mask))
    np.testing.assert_array_equal(fast, slow)
    out = m.predict(pairs)
    assert list(out.columns) == ["customer_id", "offer_id", "p_convert"]


def test_unknown_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown baseline offer policy 'random'"):
        BaselineOfferModel("random")
