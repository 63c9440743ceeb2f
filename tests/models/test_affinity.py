"""Category co-purchase lift against hand-computed values; each row's affinity from its other
categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.errors import ModelInputError
from nextbest.models.affinity import CategoryAffinity, category_lift


def _customers() -> pd.DataFrame:
    """Four customers: two bought A and B, one only A, one only C."""
    return pd.DataFrame(
        {
            "customer_id": ["c0", "c1", "c2", "c3"],
            "share_a": [0.6, 0.5, 1.0, 0.0],
            "share_b": [0.4, 0.5, 0.0, 0.0],
            "share_c": [0.0, 0.0, 0.0, 1.0],
        }
    )


def test_lift_matches_the_hand_computed_counts():
    bought = _customers()[["share_a", "share_b", "share_c"]].to_numpy() > 0
    # n = 4; n_a = 3, n_b = 2, n_c = 1; n_ab = 2, n_ac = n_bc = 0.
    # p = (n_c + 1) / (n + 2): a 4/6, b 3/6, c 2/6.
    raw = category_lift(bought, prior=0.0)
    assert raw[0, 1] == pytest.approx(2 / (3 * 3 / 6))  # n_ab / (n_a p_b)
    assert raw[1, 0] == pytest.approx(2 / (2 * 4 / 6))
    assert raw[2, 0] == pytest.approx(0.0)
    assert raw[0, 0] == pytest.approx(3 / (3 * 4 / 6))  # the diagonal: 1 / p_a
    shrunk = category_lift(bought, prior=20.0)
    assert shrunk[0, 1] == pytest.approx((2 + 20 * 3 / 6) / ((3 + 20) * 3 / 6))
    assert shrunk[0, 2] == pytest.approx(20 / 23)  # never together: below 1
    assert shrunk[2, 0] == pytest.approx(20 / 21)  # one C buyer: barely moved from 1


def test_lift_of_a_category_nobody_bought_is_one_under_the_prior():
    bought = np.array([[True, False], [True, False], [False, False]])
    lift = category_lift(bought, prior=20.0)
    np.testing.assert_allclose(lift[1, :], 1.0)  # no B buyer: the prior alone
    assert lift[0, 1] == pytest.approx(20 / 22)


def test_affinity_is_the_share_weighted_lift_from_the_other_categories():
    aff = CategoryAffinity.fit(_customers(), prior=0.0)
    lift = category_lift(_customers()[["share_a", "share_b", "share_c"]].to_numpy() > 0, 0.0)
    shares = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [1.0, 0.0, 0.0], [0.5, 0.3, 0.2]])
    v = aff.values(shares, np.array([0, 2, 0, -1]))
    assert v[0] == pytest.approx((0.3 * lift[1, 0] + 0.2 * lift[2, 0]) / 0.5)  # own A weighs 0
    assert v[0] == pytest.approx(0.9)  # (0.3 x 1.5 + 0.2 x 0) / 0.5
    assert v[1] == pytest.approx((0.5 * lift[0, 2] + 0.3 * lift[1, 2]) / 0.8)
    assert np.isnan(v[2])  # bought no other category
    assert np.isnan(v[3])  # a category the lift does not know


def test_codes_follow_category_keys_and_unknown_is_minus_one():
    aff = CategoryAffinity.fit(_customers())
    np.testing.assert_array_equal(aff.codes(["A", "c", "B", "Z", "A"]), [0, 2, 1, -1, 0])
    assert aff.keys == ("a", "b", "c") and aff.n_customers == 4


def test_fit_and_shares_name_what_is_missing():
    with pytest.raises(ModelInputError, match="needs customer rows with share_<category>"):
        CategoryAffinity.fit(pd.DataFrame({"customer_id": ["c0"]}))
    aff = CategoryAffinity.fit(_customers())
    with pytest.raises(ModelInputError, match=r"missing column\(s\) \['share_c'\]"):
        aff.shares(_customers().drop(columns="share_c"))
