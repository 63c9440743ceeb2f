"""Cross-fitting, policy values and the promotion gate: oracle inputs, synthetic logs, Hillstrom."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.data.hillstrom import load_hillstrom
from nextbest.data.synthetic import generate_campaign_log
from nextbest.errors import ModelInputError
from nextbest.models.uplift_policy import (
    CrossFit,
    crossfit_predictions,
    policy_actions,
    policy_evaluation,
)

FAST = {"lightgbm": {"n_estimators": 30, "learning_rate": 0.1, "n_jobs": 1}}


def _oracle(campaign, uplift=None) -> CrossFit:
    """Out-of-sample 'predictions' that are the true probabilities (or a given uplift)."""
    log = campaign.log
    action = log["offer_id"].map({"": 0, **{o: k + 1 for k, o in enumerate(campaign.offers)}})
    true = campaign.true_uplift if uplift is None else uplift
    return CrossFit(
        customer_id=log["customer_id"].to_numpy(),
        arms=campaign.offers,
        action=action.to_numpy(dtype="int64"),
        propensity=log["propensity"].to_numpy(),
        converted=log["converted"].to_numpy(),
        revenue=None,
        fold=np.zeros(len(log), dtype="int64"),
        mu=campaign.true_p,
        uplift=true,
        mu_revenue=None,
        uplift_revenue=None,
        propensity_source="logged",
    )


@pytest.fixture(scope="module")
def campaign():
    return generate_campaign_log(20_000, seed=7, n_offers=1)


def test_true_effect_policy_is_promoted_over_every_baseline(campaign):
    # offer 1 lifts conversion ~15 points where x3 > 0 and lowers it ~4 points elsewhere
    ev = policy_evaluation(_oracle(campaign), {"OFFER-1": 1.0}, {"OFFER-1": 0.02})
    assert ev.promote and ev.chosen == "uplift"
    assert set(ev.comparisons["baseline"]) == {"no contact", "everyone: OFFER-1", "response model"}
    assert (ev.comparisons["lower"] > 0).all()
    assert ev.reason.startswith("the uplift policy beats every baseline")
    policies = ev.policies.set_index("policy")
    assert policies.loc["uplift", "contact_share"] == pytest.approx(0.5, abs=0.02)
    assert policies.loc["no contact", "dr_value"] == 0.0
    assert ev.qini["qini_coefficient"].iloc[0] > 0.1
    # the gain of contacting everyone is the average effect minus the cost, by DR and IPW
    effect = campaign.true_uplift[:, 0].mean() - 0.02
    for col, se in (("dr_value", "dr_se"), ("ipw_value", "ipw_se")):
        assert (
            abs(policies.loc["everyone: OFFER-1", col] - effect)
            < 3 * policies.loc["everyone: OFFER-1", se]
        )


def test_no_heterogeneity_falls_back_to_the_best_single_action():
    campaign = generate_campaign_log(5000, seed=8, n_offers=2)
    flat = np.tile([0.06, 0.05], (5000, 1))
    ev = policy_evaluation(
        _oracle(campaign, flat),
        {"OFFER-1": 1.0, "OFFER-2": 1.0},
        {"OFFER-1": 0.01, "OFFER-2": 0.01},
    )
    # the uplift policy is "offer 1 to everyone": no gain over that baseline at all
    assert (ev.actions["uplift"] == 1).all()
    assert not ev.promote
    best_constant = (
        ev.policies[
            ev.policies["policy"].isin(["no contact", "everyone: OFFER-1", "everyone: OFFER-2"])
        ]
        .set_index("policy")["dr_value"]
        .idxmax()
    )
    assert ev.chosen == best_constant
    assert "does not beat" in ev.reason and f"best single action: {best_constant}" in ev.reason


def test_policy_actions_by_hand():
    cf = CrossFit(
        customer_id=np.array(["a", "b", "c", "d"]),
        arms=("M", "W"),
        action=np.array([0, 1, 2, 0]),
        propensity=np.full(4, 1 / 3),
        converted=np.zeros(4),
        revenue=None,
        fold=np.zeros(4, dtype=int),
        # P(convert) without offer, with M, with W
        mu=np.array([[0.1, 0.5, 0.2], [0.1, 0.12, 0.3], [0.6, 0.61, 0.62], [0.1, 0.1, 0.1]]),
        uplift=np.array([[0.4, 0.1], [0.02, 0.2], [0.01, 0.02], [0.0, 0.0]]),
        mu_revenue=None,
        uplift_revenue=None,
        propensity_source="logged",
    )
    actions = policy_actions(cf, {"M": 1.0, "W": 1.0}, {"M": 0.05, "W": 0.05})
    assert actions["uplift"].tolist() == [1, 2, 0, 0]
    # response model: same volume (2), highest P(convert | offer): c (W), then a (M)
    assert actions["response model"].tolist() == [1, 0, 2, 0]
    assert actions["everyone: W"].tolist() == [2, 2, 2, 2]
    with pytest.raises(ModelInputError, match=r"no value or cost for offer\(s\) \['W'\]"):
        policy_actions(cf, {"M": 1.0}, {"M": 0.05})


def test_crossfit_holds_every_customer_out_exactly_once():
    campaign = generate_campaign_log(3000, seed=9)
    log = pd.concat([campaign.log, campaign.log.assign(contacted_at=pd.Timestamp("2024-07-01"))])
    cf = crossfit_predictions(campaign.customers, log, config=FAST, k=3, seed=1)
    assert len(cf) == 6000 and sorted(set(cf.fold)) == [0, 1, 2]
    folds = pd.DataFrame({"c": cf.customer_id, "f": cf.fold}).groupby("c")["f"].nunique()
    assert (folds == 1).all() and len(folds) == 3000  # both rows of a customer share a fold
    assert cf.uplift.shape == (6000, 2) and cf.mu.shape == (6000, 3)
    assert cf.uplift_revenue is not None
    with pytest.raises(ModelInputError, match="k >= 2"):
        crossfit_predictions(campaign.customers, log, k=1)


@pytest.fixture(scope="module")
def hillstrom():
    return load_hillstrom("visit")


@pytest.mark.slow
def test_Hillstrom_womens_uplift_policy_beats_all_baselines_at_cost_near_the_effect():
    log, customers = load_hillstrom("visit", offers=("EMAIL-WOMENS",))  # propensity 1/2
    half = log[np.random.default_rng(0).random(len(log)) < 0.5]
    cf = crossfit_predictions(customers, half, k=5, seed=0)
    ev = policy_evaluation(cf, {"EMAIL-WOMENS": 1.0}, {"EMAIL-WOMENS": 0.045})
    assert ev.promote, ev.reason
    comp = ev.comparisons.set_index("baseline")
    assert comp.loc["everyone: EMAIL-WOMENS", "z"] > 2
    assert comp.loc["no contact", "z"] > 2


@pytest.mark.slow
def test_Hillstrom_three_actions_fall_back_to_mens_email_for_everyone(hillstrom):
    log, customers = hillstrom
    half = log[np.random.default_rng(0).random(len(log)) < 0.5]
    cf = crossfit_predictions(customers, half, k=3, seed=0)
    both = {"EMAIL-MENS": 1.0, "EMAIL-WOMENS": 1.0}
    ev = policy_evaluation(cf, both, {"EMAIL-MENS": 0.05, "EMAIL-WOMENS": 0.05})
    assert not ev.promote
    assert ev.chosen == "everyone: EMAIL-MENS"
    # never worse than the best single action beyond noise
    mens = ev.comparisons.set_index("baseline").loc["everyone: EMAIL-MENS"]
    assert mens["difference"] + 2 * mens["se"] > 0
