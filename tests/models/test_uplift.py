"""Uplift model: recovery of a known effect, propensities and overlap, persistence, input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.data.synthetic import generate_campaign_log
from nextbest.errors import ArtifactMismatchError, ModelInputError, NotFittedError
from nextbest.models import causal
from nextbest.models.churn import ChurnModel
from nextbest.models.uplift import UpliftModel
from nextbest.models.uplift_policy import holdout_predictions

FAST = {"lightgbm": {"n_estimators": 30, "learning_rate": 0.1, "n_jobs": 1}}


@pytest.fixture(scope="module")
def small():
    return generate_campaign_log(3000, seed=11)


@pytest.fixture(scope="module")
def fitted(small):
    return UpliftModel(FAST).fit(small.customers, small.log)


def test_predict_gives_one_row_per_customer_and_offer(small, fitted):
    out = fitted.predict(small.customers.iloc[:4])
    assert out.columns.tolist() == [
        "customer_id",
        "offer_id",
        "uplift",
        "p_offer",
        "p_control",
        "uplift_revenue",
    ]
    assert out["customer_id"].tolist() == [
        c for c in small.customers["customer_id"][:4] for _ in "ab"
    ]
    assert out["offer_id"].tolist() == ["OFFER-1", "OFFER-2"] * 4
    assert out[["p_offer", "p_control"]].stack().between(0, 1).all()
    assert out["uplift"].between(-1, 1).all()
    assert fitted.arms_ == ("OFFER-1", "OFFER-2")
    assert fitted.report_["propensity_source"] == "logged"
    assert fitted.report_["n_per_action"] == {
        "control": int((small.log["group"] == "control").sum()),
        "OFFER-1": int((small.log["offer_id"] == "OFFER-1").sum()),
        "OFFER-2": int((small.log["offer_id"] == "OFFER-2").sum()),
    }


def test_t_learner_uplift_is_the_difference_of_its_response_models(small):
    model = UpliftModel({**FAST, "learner": "t"}).fit(small.customers, small.log)
    arrays = model.predict_arrays(small.customers)
    np.testing.assert_allclose(arrays["uplift"], arrays["mu"][:, 1:] - arrays["mu"][:, [0]])
    np.testing.assert_allclose(
        arrays["uplift_revenue"], arrays["mu_revenue"][:, 1:] - arrays["mu_revenue"][:, [0]]
    )


@pytest.mark.parametrize("learner", ["t", "x", "dr"])
def test_every_learner_ranks_by_the_true_effect(small, learner):
    model = UpliftModel({**FAST, "learner": learner}).fit(small.customers, small.log)
    uplift = model.predict_arrays(small.customers)["uplift"]
    # offer 1 helps customers with x3 > 0 (and hurts the others a little)
    corr = np.corrcoef(uplift[:, 0], small.true_uplift[:, 0])[0, 1]
    assert corr > 0.6


@pytest.mark.slow
def test_qini_of_the_model_is_close_to_the_qini_of_the_true_effect():
    train, test = generate_campaign_log(20_000, seed=1), generate_campaign_log(20_000, seed=2)
    model = UpliftModel().fit(train.customers, train.log)
    cf = holdout_predictions(model, test.customers, test.log)
    for j in range(2):
        rows = (cf.action == 0) | (cf.action == j + 1)
        treated = cf.action[rows] == j + 1
        model_qini = causal.qini(cf.converted[rows], treated, cf.uplift[rows, j]).coefficient
        true_qini = causal.qini(cf.converted[rows], treated, test.true_uplift[rows, j]).coefficient
        assert true_qini > 0.1
        assert model_qini > 0.75 * true_qini
        assert np.corrcoef(cf.uplift[:, j], test.true_uplift[:, j])[0, 1] > 0.8


def test_missing_propensities_are_estimated_and_poor_overlap_trimmed():
    obs = generate_campaign_log(3000, seed=4, observational=True)
    assert "propensity" not in obs.log.columns
    # customers with x1 > 1 always get offer 1: no comparable control customers
    x1 = obs.customers.set_index("customer_id").loc[obs.log["customer_id"], "x1"].to_numpy()
    log = obs.log.copy()
    forced = x1 > 1.0
    log.loc[forced, ["offer_id", "group"]] = ["OFFER-1", "treatment"]
    sharp = {"n_estimators": 200, "learning_rate": 0.2, "min_child_samples": 20}
    model = UpliftModel({**FAST, "propensity_lightgbm": sharp}).fit(obs.customers, log)
    report = model.report_
    assert report["propensity_source"] == "estimated"
    assert report["n_trimmed"] > 0.9 * forced.sum()
    assert report["propensity_max"]["OFFER-1"] > 0.99
    assert report["n_train"] == len(log) - report["n_trimmed"]
    e = model.predict_propensity(obs.customers)
    np.testing.assert_allclose(e.sum(axis=1), 1.0)
    cf = holdout_predictions(model, obs.customers, log)
    assert cf.propensity_source == "estimated" and cf.n_trimmed > 0
    assert len(cf) + cf.n_trimmed == len(log)


def test_save_and_load_give_the_same_predictions(small, fitted, tmp_path):
    path = fitted.save(tmp_path / "uplift.pkl")
    loaded = UpliftModel.load(path)
    pd.testing.assert_frame_equal(loaded.predict(small.customers), fitted.predict(small.customers))
    assert "lightgbm" in loaded.metadata_["saved_with"]
    with pytest.raises(ArtifactMismatchError, match="saved as UpliftModel"):
        ChurnModel.load(path)


def test_unfitted_model_refuses_to_predict(small):
    with pytest.raises(NotFittedError, match="UpliftModel is not fitted"):
        UpliftModel().predict(small.customers)


def test_unseen_category_and_customers_without_features(small, fitted):
    customers = small.customers.iloc[:3].assign(segment=["A", "Z", None])
    assert len(fitted.predict(customers)) == 6  # unseen or missing levels are missing values
    log = small.log.copy()
    log.loc[:9, "customer_id"] = [f"NEW{i}" for i in range(10)]
    log.loc[10:14, "converted"] = np.nan  # outcome not known yet
    model = UpliftModel(FAST).fit(small.customers, log)
    assert model.report_["n_without_features"] == 10
    assert model.report_["n_outcome_unknown"] == 5
    assert model.report_["n_train"] == len(log) - 5


def test_input_errors_name_the_column_and_rule(small):
    with pytest.raises(ModelInputError, match=r"campaign log: missing required column.*converted"):
        UpliftModel(FAST).fit(small.customers, small.log.drop(columns="converted"))
    dup = pd.concat([small.customers, small.customers.iloc[:1]])
    with pytest.raises(ModelInputError, match="'customer_id' must be unique"):
        UpliftModel(FAST).fit(dup, small.log)
    few = small.log[(small.log["offer_id"] != "OFFER-2") | (np.arange(len(small.log)) < 40)]
    few = few[(few["offer_id"] != "OFFER-2")].pipe(
        lambda f: pd.concat([f, small.log[small.log["offer_id"] == "OFFER-2"].iloc[:5]])
    )
    with pytest.raises(ModelInputError, match="5 row.* for 'OFFER-2'; .* at least 20 per action"):
        UpliftModel(FAST).fit(small.customers, few)
    treated_only = small.log[small.log["group"] == "treatment"]
    with pytest.raises(ModelInputError, match="for 'control'"):
        UpliftModel(FAST).fit(small.customers, treated_only)
    with pytest.raises(ModelInputError, match="uplift learner must be one of"):
        UpliftModel({"learner": "s"})
