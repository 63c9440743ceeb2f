"""Calibration maps: never 0 or 1, monotone, chosen by out-of-fold Brier score."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.errors import ModelInputError
from nextbest.models.calibration import METHODS, fit_calibrator


def _scores(n: int, seed: int, distort) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores whose true probability is ``distort(score)``."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(0.001, 0.999, n)
    y = (rng.random(n) < distort(score)).astype(float)
    return score, y


@pytest.mark.parametrize("method", METHODS)
def test_every_method_stays_strictly_inside_0_1_and_is_monotone(method):
    # Perfectly separated ends: a plain isotonic map would say exactly 0 and 1 there.
    score, y = _scores(2000, 0, lambda s: (s > 0.5).astype(float))
    cal = fit_calibrator(score, y, methods=(method,))
    grid = np.linspace(0, 1, 501)
    p = cal.predict(grid)
    assert cal.method == method
    assert (p > 0).all() and (p < 1).all()
    assert (np.diff(p) >= -1e-12).all()
    lo, hi = cal.bounds
    assert lo == pytest.approx(1 / 2002) and hi == pytest.approx(1 - 1 / 2002)


def test_a_logistic_distortion_is_fitted_better_by_platt_or_beta_than_left_alone():
    # True P = sigmoid(3 * logit(score)): the raw scores are under-confident.
    def truth(s):
        z = 3 * np.log(s / (1 - s))
        return 1 / (1 + np.exp(-z))

    score, y = _scores(4000, 1, truth)
    cal = fit_calibrator(score, y)
    assert set(cal.brier) == set(METHODS)
    assert cal.method == min(cal.brier, key=cal.brier.get)
    test, y_test = _scores(4000, 2, truth)
    brier_raw = np.mean((test - y_test) ** 2)
    brier_cal = np.mean((cal.predict(test) - y_test) ** 2)
    assert brier_cal < brier_raw
    np.testing.assert_allclose(cal.predict(test), truth(test), atol=0.08)


def test_the_choice_is_reproducible():
    score, y = _scores(1500, 3, lambda s: s**2)
    a, b = fit_calibrator(score, y), fit_calibrator(score, y)
    assert a.method == b.method and a.brier == b.brier
    np.testing.assert_array_equal(a.predict(score), b.predict(score))


def test_too_little_or_one_class_calibration_data_is_an_error():
    with pytest.raises(ModelInputError, match="at least 20 rows with both outcomes"):
        fit_calibrator(np.linspace(0, 1, 50), np.zeros(50))
    with pytest.raises(ModelInputError, match="at least 20 rows"):
        fit_calibrator(np.array([0.1, 0.9]), np.array([0.0, 1.0]))
    with pytest.raises(ModelInputError, match="unknown calibration method"):
        fit_calibrator(np.linspace(0, 1, 50), np.arange(50) % 2, methods=("sigmoid",))
