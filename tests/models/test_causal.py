"""Causal estimators: known answers from the Hillstrom experiment and from hand-made samples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from nextbest.data.hillstrom import load_hillstrom, read_hillstrom
from nextbest.errors import ModelInputError
from nextbest.models import causal

ARMS = {"": 0, "EMAIL-MENS": 1, "EMAIL-WOMENS": 2}


@pytest.fixture(scope="module")
def hillstrom():
    log, _ = load_hillstrom()
    return read_hillstrom(), log


@pytest.mark.parametrize(
    "outcome, scale, decimals, mens, womens",
    [
        ("visit", 100, 2, 7.66, 4.52),  # percentage points
        ("conversion", 100, 2, 0.68, 0.31),  # percentage points
        ("spend", 1, 2, 0.77, 0.42),  # dollars per customer
    ],
)
def test_difference_in_means_reproduces_Hillstrom_published_effects(
    hillstrom, outcome, scale, decimals, mens, womens
):
    raw, log = hillstrom
    table = causal.difference_in_means(raw[outcome].to_numpy(), log["offer_id"].to_numpy())
    effect = dict(zip(table["arm"], table["effect"] * scale))
    assert round(effect["EMAIL-MENS"], decimals) == mens
    assert round(effect["EMAIL-WOMENS"], decimals) == womens
    assert table["n_control"].iloc[0] == 21306
    assert table.set_index("arm").loc["(all offers)", "n_treated"] == 64000 - 21306


def test_ipw_value_of_each_constant_policy_equals_its_Hillstrom_arm_mean(hillstrom):
    _, log = hillstrom
    action = log["offer_id"].map(ARMS).to_numpy()
    y = log["converted"].to_numpy()
    p = log["propensity"].to_numpy()
    for k in ARMS.values():
        constant = np.full(len(y), k)
        value = causal.ipw_value(constant, action, p, y)
        assert value.value == pytest.approx(y[action == k].mean(), abs=1e-12)
        # Horvitz-Thompson differs only by the arm's share against the design's 1/3
        ht = causal.ipw_value(constant, action, p, y, self_normalised=False)
        share = (action == k).mean()
        assert ht.value == pytest.approx(y[action == k].mean() * share * 3, rel=1e-12)


def test_welch_standard_error_matches_scipy():
    rng = np.random.default_rng(0)
    y = np.r_[rng.normal(1.0, 2.0, 300), rng.normal(0.0, 1.0, 500)]
    arm = np.r_[np.full(300, "A"), np.full(500, "")]
    row = causal.difference_in_means(y, arm).iloc[0]
    t = stats.ttest_ind(y[:300], y[300:], equal_var=False)
    assert row["effect"] / row["se"] == pytest.approx(t.statistic, rel=1e-12)
    assert row["incremental"] == pytest.approx(row["effect"] * 300)
    assert row["ci_high"] - row["effect"] == pytest.approx(1.959964 * row["se"], rel=1e-6)


def _randomized(n=200_000, seed=1):
    """Three actions at random (propensities 0.5, 0.25, 0.25); effects 0.1 and 0.2 on x > 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    a = rng.choice(3, size=n, p=[0.5, 0.25, 0.25])
    p = np.array([0.5, 0.25, 0.25])[a]
    base = 0.2 + 0.1 * (x > 0)
    tau = np.stack([np.zeros(n), np.full(n, 0.1), 0.2 * (x > 0)], axis=1)
    y = (rng.random(n) < base + tau[np.arange(n), a]).astype(float)
    mu_true = base[:, None] + tau
    return x, a, p, y, mu_true


def test_ipw_and_dr_recover_the_value_of_a_targeting_policy():
    x, a, p, y, mu_true = _randomized()
    policy = np.where(x > 0, 2, 1)
    truth = mu_true[np.arange(len(x)), policy].mean()
    ipw = causal.ipw_value(policy, a, p, y)
    dr_wrong_model = causal.dr_value(policy, a, p, y, np.full_like(mu_true, 0.3))
    dr_true_model = causal.dr_value(policy, a, p, y, mu_true)
    for est in (ipw, dr_wrong_model, dr_true_model):
        assert est.ci_low < truth < est.ci_high
    assert dr_true_model.se < ipw.se  # a good outcome model lowers the variance


def test_dr_with_a_zero_model_is_horvitz_thompson():
    x, a, p, y, mu_true = _randomized(n=1000)
    policy = np.where(x > 0, 2, 0)
    ht = causal.ipw_value(policy, a, p, y, self_normalised=False)
    dr = causal.dr_value(policy, a, p, y, np.zeros_like(mu_true))
    assert dr.value == pytest.approx(ht.value, rel=1e-12)


def test_effect_scores_average_to_the_true_effects_and_score_policies():
    x, a, p, y, mu_true = _randomized()
    for mu in (None, mu_true):
        gamma = causal.effect_scores(a, p, y, mu)
        assert gamma[:, 0].tolist() == [0.0] * len(x)
        mean = gamma.mean(axis=0)
        assert mean[1] == pytest.approx(0.1, abs=0.01)
        assert mean[2] == pytest.approx(0.2 * (x > 0).mean(), abs=0.01)
    # the gain of a policy over "no contact" is its DR value minus no contact's, unit by unit
    policy = np.where(x > 0, 2, 1)
    gain = causal.effect_scores(a, p, y, mu_true)[np.arange(len(x)), policy]
    direct = causal.dr_scores(policy, a, p, y, mu_true) - causal.dr_scores(
        np.zeros_like(policy), a, p, y, mu_true
    )
    np.testing.assert_allclose(gain, direct, atol=1e-12)


def test_paired_difference_bound_is_one_sided_95():
    rng = np.random.default_rng(3)
    a = rng.normal(0.1, 1.0, 10_000)
    b = a - rng.normal(0.05, 0.5, 10_000)
    cmp = causal.paired_difference(a, b)
    d = a - b
    assert cmp.difference == pytest.approx(d.mean())
    assert cmp.lower == pytest.approx(d.mean() - 1.644854 * d.std(ddof=1) / 100, rel=1e-6)
    assert cmp.significant and cmp.z > 5
    assert not causal.paired_difference(b, a).significant


def test_qini_of_perfect_random_and_reversed_orderings():
    rng = np.random.default_rng(5)
    n = 4000
    t = rng.random(n) < 0.5
    y = (rng.random(n) < np.where(t, 0.3, 0.1)).astype(float)
    perfect = y * t - y * ~t
    assert causal.qini(y, t, perfect).coefficient == pytest.approx(1.0, abs=0.01)
    flat = causal.qini(y, t, np.zeros(n))
    assert flat.area == pytest.approx(0.0, abs=1e-12)  # one tie group: the random line
    assert flat.fraction.tolist() == [0.0, 1.0]
    assert causal.qini(y, t, -perfect).coefficient < -0.5


def test_qini_curve_by_hand():
    # scores 3 > 2 > 1 > 0; units: treated responder, control non-responder, treated
    # non-responder, control responder.
    y = np.array([1.0, 0.0, 0.0, 1.0])
    t = np.array([True, False, True, False])
    q = causal.qini(y, t, np.array([3.0, 2.0, 1.0, 0.0]))
    # gains: 1 - 0, 1 - 0*1/1, 1 - 0*2/1, 1 - 1*2/2 -> divided by n = 4
    np.testing.assert_allclose(q.gain, [0, 0.25, 0.25, 0.25, 0.0])
    np.testing.assert_allclose(q.fraction, [0, 0.25, 0.5, 0.75, 1.0])
    # trapezoids of width 1/4; the random line ends at gain(1) = 0
    assert q.area == pytest.approx(0.25 * (0.125 + 0.25 + 0.25 + 0.125))


def test_minimum_detectable_effect_formula():
    mde = causal.minimum_detectable_effect(1000, 1000, base_rate=0.1)
    assert mde == pytest.approx((1.959964 + 0.841621) * 0.3 * np.sqrt(2 / 1000), rel=1e-5)
    assert causal.minimum_detectable_effect(4000, 4000, sd=2.0) == pytest.approx(
        (1.959964 + 0.841621) * 2.0 * np.sqrt(2 / 4000), rel=1e-5
    )
    assert causal.minimum_detectable_effect(0, 10, base_rate=0.1) == float("inf")


def test_bad_inputs_name_the_row_and_rule():
    with pytest.raises(ModelInputError, match=r"propensity at row 1 is 0.0; must be in \(0, 1\]"):
        causal.ipw_value(np.zeros(2), np.zeros(2), np.array([0.5, 0.0]), np.ones(2))
    with pytest.raises(ModelInputError, match="same length"):
        causal.paired_difference(np.ones(3), np.ones(2))
    with pytest.raises(ModelInputError, match="no control units"):
        causal.difference_in_means(np.ones(3), np.array(["A", "A", "B"]))
    with pytest.raises(ModelInputError, match="both treated and control"):
        causal.qini(np.ones(3), np.ones(3, dtype=bool), np.ones(3))
