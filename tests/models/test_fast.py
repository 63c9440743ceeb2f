"""The fast BG/NBD and Gamma-Gamma fits maximise exactly lifetimes' objectives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from scipy.optimize import check_grad

from nextbest.features.rfm import rfm_summary
from nextbest.models.btyd import compress
from nextbest.models.fast import (
    _Patterns,
    _SpendData,
    expected_purchases_path,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_negative_log_likelihood,
)
from nextbest.models.fast import (
    bgnbd_negative_log_likelihood as negative_log_likelihood,
)


@pytest.fixture(scope="module")
def rfm(cdnow_tx):
    return rfm_summary(cdnow_tx, "1997-10-01", 7)


@pytest.mark.parametrize(
    "log_params", [np.log([0.3, 4.0, 0.8, 2.4]), np.full(4, 0.1), np.log([2.0, 0.5, 3.0, 0.2])]
)
@pytest.mark.parametrize("penalizer", [0.0, 0.05])
def test_value_equals_lifetimes_and_gradient_is_exact(rfm, log_params, penalizer):
    x, tx, T = (rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    w = np.ones_like(x)
    pat = _Patterns(x, tx, T, w)
    ours, _ = negative_log_likelihood(log_params, pat, penalizer)
    theirs = BetaGeoFitter._negative_log_likelihood(log_params, x, tx, T, w, penalizer)
    assert ours == pytest.approx(float(theirs), rel=1e-12)
    err = check_grad(
        lambda p: negative_log_likelihood(p, pat, penalizer)[0],
        lambda p: negative_log_likelihood(p, pat, penalizer)[1],
        log_params,
    )
    assert err < 1e-5


@pytest.mark.parametrize("penalizer", [0.0, 0.01])
def test_compressed_fast_fit_equals_lifetimes_plain_fit(rfm, penalizer):
    plain = BetaGeoFitter(penalizer_coef=penalizer).fit(rfm["frequency"], rfm["recency"], rfm["T"])
    packed = compress(rfm, ["frequency", "recency", "T"])
    fast = fit_bgnbd(
        packed["frequency"], packed["recency"], packed["T"], packed["weight"], penalizer
    )
    np.testing.assert_allclose(fast.params_.to_numpy(), plain.params_.to_numpy(), rtol=1e-5)


@pytest.mark.parametrize(
    "log_params", [np.log([6.0, 3.7, 15.0]), np.full(3, 0.1), np.log([1.0, 9.0, 0.5])]
)
@pytest.mark.parametrize("penalizer", [0.0, 0.05])
def test_gamma_gamma_value_equals_lifetimes_and_gradient_is_exact(rfm, log_params, penalizer):
    from lifetimes import GammaGammaFitter

    rep = rfm[rfm["frequency"] > 0]
    x, m = rep["frequency"].to_numpy(dtype=float), rep["monetary"].to_numpy(dtype=float)
    w = np.ones_like(x)
    d = _SpendData(x, m, w)
    ours, _ = gamma_gamma_negative_log_likelihood(log_params, d, penalizer)
    theirs = GammaGammaFitter._negative_log_likelihood(log_params, x, m, w, penalizer)
    assert ours == pytest.approx(float(theirs), rel=1e-12)
    err = check_grad(
        lambda p: gamma_gamma_negative_log_likelihood(p, d, penalizer)[0],
        lambda p: gamma_gamma_negative_log_likelihood(p, d, penalizer)[1],
        log_params,
    )
    assert err < 1e-5


def test_fast_gamma_gamma_equals_lifetimes_fit(rfm):
    from lifetimes import GammaGammaFitter

    rep = rfm[rfm["frequency"] > 0]
    plain = GammaGammaFitter().fit(rep["frequency"], rep["monetary"])
    fast = fit_gamma_gamma(rep["frequency"], rep["monetary"])
    np.testing.assert_allclose(fast.params_.to_numpy(), plain.params_.to_numpy(), rtol=1e-5)


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd"])
@pytest.mark.parametrize(
    "params", [(0.243, 4.414, 0.793, 2.426), (2.0, 0.5, 3.0, 0.2), (0.05, 30.0, 0.02, 40.0)]
)
def test_expected_purchases_path_equals_lifetimes_step_by_step(rfm, kind, params):
    fitter = {"bgnbd": BetaGeoFitter, "mbgnbd": ModifiedBetaGeoFitter}[kind]()
    fitter.params_ = pd.Series(dict(zip(("r", "alpha", "a", "b"), params)))
    x, tx, T = (rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    times = [0.5, 1.0, 13.0, 52.0, 520.0]
    path = expected_purchases_path(fitter, times, x, tx, T)
    assert path.shape == (len(times), len(x))
    for k, t in enumerate(times):
        with np.errstate(all="ignore"):
            theirs = np.asarray(
                fitter.conditional_expected_number_of_purchases_up_to_time(t, x, tx, T)
            )
        np.testing.assert_allclose(path[k], theirs, rtol=1e-13, atol=0, equal_nan=True)
    assert np.isfinite(path).all()
    assert (np.diff(path, axis=0) >= 0).all()  # expected purchases never fall as the horizon grows


def test_expected_purchases_path_leaves_pareto_to_lifetimes(rfm):
    x, tx, T = (rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    assert expected_purchases_path(ParetoNBDFitter(), [1.0], x, tx, T) is None
