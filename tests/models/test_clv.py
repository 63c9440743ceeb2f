"""ClvModel behaviour: prediction from known parameters, persistence, fallbacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter

from nextbest.errors import ArtifactMismatchError, NotFittedError
from nextbest.models.clv import ClvModel, discount_factor_per_unit


def fitted_from_known_params(**kwargs) -> ClvModel:
    """A 'fitted' model built from the CDNOW paper parameters (weeks), no fitting."""
    model = ClvModel(count_model="bgnbd", time_unit_days=7, **kwargs)
    bg = BetaGeoFitter()
    bg.params_ = pd.Series({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    gg = GammaGammaFitter()
    gg.params_ = pd.Series({"p": 6.25, "q": 3.74, "v": 15.44})
    model.count_fitter_, model.spend_fitter_ = bg, gg
    model.count_model_used_ = "bgnbd"
    model.fitted_ = True
    return model


RFM = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d"],
        "frequency": [0, 2, 2, 10],
        "recency": [0.0, 30.0, 5.0, 38.0],
        "T": [38.0, 38.0, 38.0, 38.0],
        "monetary": [0.0, 20.0, 20.0, 50.0],
    }
)


def test_predict_columns_and_ranges():
    out = fitted_from_known_params().predict(RFM, horizon_days=365)
    assert list(out.columns) == [
        "customer_id",
        "p_alive",
        "expected_purchases",
        "expected_spend",
        "predicted_clv",
    ]
    assert out["customer_id"].tolist() == ["a", "b", "c", "d"]
    assert out["p_alive"].between(0, 1).all()
    assert (out["expected_purchases"] >= 0).all() and (out["predicted_clv"] >= 0).all()
    # No repeat purchase -> P(alive) is 1 under BG/NBD.
    assert out.loc[0, "p_alive"] == pytest.approx(1.0)


def test_recent_buyer_is_more_alive_and_more_valuable_than_lapsed_one():
    out = fitted_from_known_params().predict(RFM, horizon_days=365).set_index("customer_id")
    # b and c have the same frequency and spend; b bought recently, c long ago.
    assert out.loc["b", "p_alive"] > out.loc["c", "p_alive"]
    assert out.loc["b", "predicted_clv"] > out.loc["c", "predicted_clv"]


def test_expected_spend_is_gamma_gamma_conditional_mean():
    out = fitted_from_known_params().predict(RFM, horizon_days=365).set_index("customer_id")
    p, q, v = 6.25, 3.74, 15.44
    assert out.loc["a", "expected_spend"] == pytest.approx(p * v / (q - 1))
    assert out.loc["d", "expected_spend"] == pytest.approx(p * (v + 50 * 10) / (p * 10 + q - 1))


def test_undiscounted_clv_is_spend_times_expected_purchases():
    model = fitted_from_known_params(discount_rate_annual=0.0)
    out = model.predict(RFM, horizon_days=365)
    np.testing.assert_allclose(
        out["predicted_clv"], out["expected_spend"] * out["expected_purchases"]
    )


def test_discounting_and_margin_lower_clv():
    base = fitted_from_known_params(discount_rate_annual=0.0).predict(RFM, 365)["predicted_clv"]
    disc = fitted_from_known_params(discount_rate_annual=0.3).predict(RFM, 365)["predicted_clv"]
    marg = fitted_from_known_params(discount_rate_annual=0.0, margin=0.25).predict(RFM, 365)[
        "predicted_clv"
    ]
    assert (disc[1:] < base[1:]).all()
    np.testing.assert_allclose(marg, 0.25 * base)


def test_longer_horizon_means_more_purchases():
    model = fitted_from_known_params()
    short = model.predict(RFM, 90)["expected_purchases"]
    long = model.predict(RFM, 365)["expected_purchases"]
    assert (long > short).all()


def test_discount_rate_per_unit_compounds_to_annual_rate():
    d = discount_factor_per_unit(0.10, 7)
    assert (1 + d) ** (365 / 7) == pytest.approx(1.10)


def test_not_fitted_raises():
    with pytest.raises(NotFittedError, match="not fitted"):
        ClvModel().predict(RFM)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown count model"):
        ClvModel(count_model="nope")
    with pytest.raises(ValueError, match="margin"):
        ClvModel(margin=1.5)
    with pytest.raises(ValueError, match="horizon_days"):
        fitted_from_known_params().predict(RFM, horizon_days=0)


def test_predict_does_not_modify_input():
    frame = RFM.copy()
    fitted_from_known_params().predict(frame, 365)
    pd.testing.assert_frame_equal(frame, RFM)


def test_save_load_round_trip(tmp_path, cdnow_tx):
    from nextbest.features.rfm import rfm_summary

    rfm = rfm_summary(cdnow_tx, "1997-10-01")
    model = ClvModel().fit(rfm)
    path = model.save(tmp_path / "clv.pkl")
    loaded = ClvModel.load(path)
    pd.testing.assert_frame_equal(model.predict(rfm), loaded.predict(rfm))
    assert "lifetimes" in loaded.metadata_["saved_with"]


def test_load_rejects_other_artifacts(tmp_path):
    from nextbest.models.base import BaseModel

    class Other(BaseModel):
        pass

    o = Other()
    o.fitted_ = True
    path = o.save(tmp_path / "other.pkl")
    with pytest.raises(ArtifactMismatchError, match="expected ClvModel"):
        ClvModel.load(path)


def test_convergence_failure_falls_back_and_is_recorded(cdnow_tx):
    """A count model that cannot fit is skipped; the fit log says why."""
    from nextbest.features.rfm import rfm_summary

    rfm = rfm_summary(cdnow_tx, "1997-10-01")
    # A negative penalizer makes every lifetimes fit diverge or go degenerate.
    with pytest.raises(RuntimeError, match="no count model converged"):
        ClvModel(penalizers=[-10.0], fallbacks=[]).fit(rfm)
    model = ClvModel(count_model="bgnbd", penalizers=[-10.0, 0.0], fallbacks=[]).fit(rfm)
    outcomes = [a["outcome"] for a in model.fit_log_ if a["model"] == "bgnbd"]
    assert outcomes[0] != "ok" and outcomes[-1] == "ok"
    assert model.penalizer_used_ == 0.0
