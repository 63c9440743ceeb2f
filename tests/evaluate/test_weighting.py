"""Propensity weighting: known answers on tiny arrays, and agreement with the randomized
estimator when every weight is 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.evaluate import weighting
from nextbest.models.causal import difference_in_means


def test_unit_weights_give_welchs_difference_in_means():
    rng = np.random.default_rng(0)
    y = rng.random(400) < np.r_[np.full(200, 0.3), np.full(200, 0.2)]
    treated = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    got = weighting.weighted_difference(y.astype(float), treated, np.ones(400))
    welch = difference_in_means(y.astype(float), np.where(treated, "T", ""), "").iloc[0]
    assert got["effect"] == pytest.approx(welch["effect"])
    assert got["se"] == pytest.approx(welch["se"])
    assert got["ess_control"] == pytest.approx(200)


def test_weighted_control_mean_is_the_weighted_average():
    y = np.array([1.0, 0.0, 1.0, 0.0, 0.0])
    treated = np.array([True, False, False, False, True])
    w = np.array([1.0, 3.0, 1.0, 0.0, 1.0])  # the third control row is trimmed
    got = weighting.weighted_difference(y, treated, w)
    assert got["mean_treated"] == 0.5 and got["mean_control"] == pytest.approx(0.25)
    assert got["n_control"] == 2 and got["effect"] == pytest.approx(0.25)
    assert got["ess_control"] == pytest.approx(16 / 10)


def test_att_weights_and_trimming():
    e = np.array([0.5, 0.2, 0.995, 0.5])
    treated = np.array([True, False, True, False])
    w, kept = weighting.att_weights(e, treated, max_propensity=0.99)
    assert kept.tolist() == [True, True, False, True]
    assert w.tolist() == pytest.approx([1.0, 0.25, 0.0, 1.0])


def test_design_matrix_flags_missing_values_and_spells_out_levels():
    frame = pd.DataFrame(
        {"age": [30.0, np.nan, 50.0], "segment": ["A", "B", None], "same": [1, 1, 1]}
    )
    d = weighting.design_matrix(frame, ["age", "segment", "same"])
    assert list(d.columns) == ["age missing", "age", "segment=A", "segment=B"]
    assert d["age"].tolist() == [30.0, 40.0, 50.0] and d["age missing"].tolist() == [0, 1, 0]
    assert d["segment=A"].tolist() == [1, 0, 0]


def test_balance_standardizes_by_the_pooled_unweighted_sd():
    design = pd.DataFrame({"x": [1.0, 3.0, 0.0, 2.0]})
    treated = np.array([True, True, False, False])
    b = weighting.balance(design, treated, np.array([1.0, 1.0, 1.0, 3.0])).iloc[0]
    assert b["smd_before"] == pytest.approx((2 - 1) / 1.0)
    assert b["mean_control_weighted"] == pytest.approx(1.5)
    assert b["smd_after"] == pytest.approx(0.5)


def test_propensity_of_a_logistic_assignment_is_recovered():
    rng = np.random.default_rng(1)
    x = rng.normal(size=5000)
    p = 1 / (1 + np.exp(-(0.5 + x)))
    treated = rng.random(5000) < p
    e = weighting.fit_propensity(pd.DataFrame({"x": x}), treated, C=100.0)
    assert np.abs(e - p).max() < 0.05
    with pytest.raises(ValueError, match="both treated and control"):
        weighting.fit_propensity(pd.DataFrame({"x": x}), np.ones(5000, bool))
