"""The Impact section: known effects of synthetic logs, Hillstrom's published effects, the report.

Synthetic logs (:func:`nextbest.data.synthetic.generate_campaign_log`) know each customer's true
conversion probability under every action, so the intervals can be checked against the truth.
The uplift model gets small LightGBM models and 3 folds: the expensive part, not what is tested.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from nextbest.config import load_configs
from nextbest.data import load_dataset
from nextbest.data.campaign_log import validate_campaign_log
from nextbest.data.hillstrom import load_hillstrom
from nextbest.data.synthetic import generate_campaign_log, generate_transactions
from nextbest.decision.catalog import load_catalog, parse_catalog
from nextbest.evaluate import impact_estimates as est
from nextbest.evaluate.impact import CampaignLog, impact_config, impact_section
from nextbest.evaluate.results import ModelRun
from nextbest.evaluate.run import Evaluation, evaluate_to_dir, write_outputs
from nextbest.models.causal import difference_in_means
from nextbest.models.uplift import UpliftModel

LIGHT = {"folds": 3, "uplift": {"lightgbm": {"n_estimators": 60}}}
CATALOG = parse_catalog(
    {
        "offers": [
            {"offer_id": "OFFER-1", "name": "Offer 1", "value": 10.0, "cost": 0.3},
            {"offer_id": "OFFER-2", "name": "Offer 2", "value": 10.0, "cost": 0.3},
        ],
        "default_action": {"offer_id": "NONE", "name": "No contact"},
    }
)
# Gamma(2, 15) spend on conversion: revenue effects are 30 x conversion effects.
MEAN_SPEND = 30.0


def _effects(section, outcome="converted"):
    t = section.tables["effects"]
    return t[t["outcome"] == outcome].set_index("offer_id")


@pytest.fixture(scope="module")
def randomized():
    sc = generate_campaign_log(6000, seed=3)
    return sc, impact_section(sc.log, sc.customers, CATALOG, LIGHT, seed=0)


@pytest.fixture(scope="module")
def observational():
    sc = generate_campaign_log(6000, seed=5, observational=True)
    return sc, impact_section(sc.log, sc.customers, CATALOG, LIGHT, seed=0)


def test_randomized_intervals_cover_the_true_average_effects(randomized):
    sc, section = randomized
    assert section.status == "ok" and section.name == "impact"
    conv, rev = _effects(section), _effects(section, "revenue")
    truth = sc.true_uplift.mean(axis=0)
    for k, offer in enumerate(sc.offers):
        assert conv.loc[offer, "ci_low"] <= truth[k] <= conv.loc[offer, "ci_high"], offer
        assert rev.loc[offer, "ci_low"] <= MEAN_SPEND * truth[k] <= rev.loc[offer, "ci_high"]
        n = conv.loc[offer, "n_treated"]
        assert conv.loc[offer, "incremental"] == pytest.approx(conv.loc[offer, "effect"] * n)
    # Every offer's control group is the universal holdout: all control rows.
    n_control = int((sc.log["group"] == "control").sum())
    assert (conv["n_control"] == n_control).all()
    assert "(all offers)" in conv.index
    assert not any("observational" in n for n in section.notes)


def test_randomized_uplift_policy_beats_every_constant_policy(randomized):
    _, section = randomized
    comp = section.tables["policy_comparisons"].set_index("baseline")
    for baseline in ("no contact", "everyone: OFFER-1", "everyone: OFFER-2"):
        assert comp.loc[baseline, "lower"] > 0, baseline
    pol = section.tables["policies"].set_index("policy")
    assert set(pol.index) == {
        "uplift",
        "no contact",
        "everyone: OFFER-1",
        "everyone: OFFER-2",
        "response model",
    }
    value = section.score("policy_dr_value")
    assert section.score("policy_gain_lower_bound").headline
    assert value.value == pytest.approx(pol.loc["uplift", "dr_value"])
    assert value.baselines["no contact"] == 0.0
    qini = section.tables["qini"].set_index("offer_id")
    assert (qini["qini_uplift"] > 0.05).all()  # the effects are heterogeneous and found
    assert section.score("qini_OFFER-1").baselines["random order"] == 0.0
    assert any(n.startswith("Promotion gate: ") for n in section.notes)
    assert {c.name for c in section.charts} >= {"impact_effects", "impact_qini"}


def test_observational_log_says_so_and_shows_overlap_and_balance(observational):
    sc, section = observational
    assert section.notes[0].startswith("WARNING: these effects are observational")
    overlap = section.tables["overlap"].set_index("offer_id")
    assert list(overlap.index) == list(sc.offers)
    assert (overlap["share_trimmed"] >= 0).all() and "ess_control" in overlap
    balance = section.tables["balance"]
    for offer, b in balance.groupby("offer_id"):
        assert b["smd_after"].abs().mean() < b["smd_before"].abs().mean() / 3, offer
        x1 = b.set_index("feature").loc["x1"]  # the feature that drove contacts
        assert abs(x1["smd_before"]) > 0.2 and abs(x1["smd_after"]) < 0.05
    summary = section.tables["balance_summary"]
    assert (summary["max_abs_smd_after"] < summary["max_abs_smd_before"]).all()
    assert {"impact_overlap", "impact_balance"} <= {c.name for c in section.charts}
    assert "Overlap of estimated propensities" in section.displays


def test_observational_weighted_effects_cover_the_effect_on_the_treated(observational):
    sc, section = observational
    conv = _effects(section)
    action = np.zeros(len(sc.log), dtype=int)
    for k, offer in enumerate(sc.offers):
        action = np.where(sc.log["offer_id"] == offer, k + 1, action)
    for k, offer in enumerate(sc.offers):
        att = sc.true_uplift[action == k + 1, k].mean()
        assert conv.loc[offer, "ci_low"] <= att <= conv.loc[offer, "ci_high"], offer
        assert conv.loc[offer, "ess_control"] < conv.loc[offer, "n_control"]


def test_logged_probabilities_that_vary_are_weighted_and_cover_the_average_effect():
    """A policy that contacted high-x1 customers more, with each decision's probability logged:
    inverse-probability weights recover the effect over all customers."""
    sc = generate_campaign_log(6000, seed=5, observational=True)
    action = np.zeros(len(sc.log), dtype=int)
    for k, offer in enumerate(sc.offers):
        action = np.where(sc.log["offer_id"] == offer, k + 1, action)
    log = sc.log.assign(propensity=sc.true_propensity[np.arange(len(sc.log)), action])
    section = impact_section(log, sc.customers, CATALOG, {**LIGHT, "folds": 2})
    assert any("(IPW)" in n for n in section.notes)
    assert not any("observational" in n for n in section.notes)
    conv = _effects(section)
    truth = sc.true_uplift.mean(axis=0)
    for k, offer in enumerate(sc.offers):
        assert conv.loc[offer, "ci_low"] <= truth[k] <= conv.loc[offer, "ci_high"], offer
        assert conv.loc[offer, "ess_control"] < conv.loc[offer, "n_control"]
    # The plain difference in means is biased here: OFFER-2 went to customers who buy anyway.
    arm = np.where(log["group"] == "control", "", log["offer_id"])
    naive = difference_in_means(log["converted"].to_numpy(), arm, "").set_index("arm")
    assert naive.loc["OFFER-2", "ci_low"] > truth[1]


def _pre_period(sc, seed=11):
    """An outcome of the weeks before contact: no offer acted yet, but the same customers."""
    rng = np.random.default_rng(seed)
    converted = (rng.random(len(sc.log)) < sc.true_p[:, 0]).astype("float64")
    return sc.log[["customer_id", "offer_id", "contacted_at"]].assign(converted=converted)


def test_placebo_passes_with_the_confounder_and_fails_without_it():
    sc = generate_campaign_log(6000, seed=5, observational=True)
    pre = _pre_period(sc)
    config = {**LIGHT, "folds": 2}
    full = impact_section(sc.log, sc.customers, CATALOG, config, pre_outcomes=pre)
    placebo = full.tables["placebo"].set_index("offer_id")
    assert placebo["includes_zero"].all()
    assert any(n.startswith("Placebo check") for n in full.notes)
    # Without x1 (what drove both contacts and purchases) the groups differ before contact.
    blind = impact_section(
        sc.log, sc.customers.drop(columns="x1"), CATALOG, config, pre_outcomes=pre
    )
    placebo = blind.tables["placebo"].set_index("offer_id")
    assert not placebo.loc["OFFER-2", "includes_zero"]
    assert placebo.loc["OFFER-2", "ci_low"] > 0


def test_small_groups_get_a_plain_warning_with_the_detectable_effect():
    sc = generate_campaign_log(90, seed=1)
    section = impact_section(sc.log, sc.customers, CATALOG, LIGHT)
    warning = next(n for n in section.notes if n.startswith("WARNING: no conclusion"))
    assert "detectable effect" in warning and "OFFER-1" in warning
    conv = _effects(section)
    assert (conv["mde"] > 0.1).all()  # 30 per group cannot see less than 10 points
    # The uplift model needs 20 rows per action: it says why it is not shown instead of failing.
    assert section.status == "ok"


def test_a_log_without_control_rows_is_skipped_with_the_reason():
    sc = generate_campaign_log(300, seed=2)
    treated = sc.log[sc.log["group"] == "treatment"]
    section = impact_section(treated, sc.customers, CATALOG)
    assert section.status == "skipped" and "treated and control" in section.notes[0]
    no_outcome = sc.log.drop(columns="converted")
    assert impact_section(no_outcome, sc.customers, CATALOG).status == "skipped"


def test_control_group_of_an_offer_is_its_named_holdout_plus_the_universal_one():
    rows = pd.DataFrame(
        {
            "customer_id": list("abcdef"),
            "offer_id": ["A", "A", "B", "", "B", "A"],
            "group": ["treatment", "control", "control", "control", "treatment", "treatment"],
        }
    )
    assert est.offer_mask(rows, "A").tolist() == [True, True, False, True, False, True]
    assert est.offer_mask(rows, "B").tolist() == [False, False, True, True, True, False]


def test_impact_section_renders_in_report_and_metrics(tmp_path, randomized):
    _, section = randomized
    result = Evaluation(
        dataset="synthetic",
        as_of=pd.Timestamp("2024-06-01"),
        horizon_days=30,
        runs=[ModelRun(label="train", versions={}, sections={"impact": section})],
    )
    metrics_path, report_path = write_outputs(result, tmp_path)
    data = json.loads(metrics_path.read_text())
    impact = data["models"]["train"]["sections"]["impact"]
    assert impact["status"] == "ok"
    assert {"effects", "policies", "qini", "gate"} <= set(impact["tables"])
    assert impact["metrics"]["policy_dr_value"]["verdict"] in {"better", "tie", "worse"}
    html = report_path.read_text()
    assert 'id="impact"' in html and "Impact: what the actions really changed" in html
    assert "<h3>Treatment vs control</h3>" in html and "Policy values" in html
    assert not re.search(r"https?://", html)
    assert len(re.findall(r'src="data:image/png;base64,', html)) == len(section.charts)


@pytest.mark.slow
def test_hillstrom_differences_reproduce_the_published_effects():
    """MineThatData (Hillstrom 2008): visits +7.66 / +4.52 points, conversions +0.68 / +0.31
    points, spend +$0.77 / +$0.42 for the men's / women's e-mail against no e-mail."""
    log, customers = load_hillstrom("visit")
    catalog = load_catalog("models/hillstrom_offers.yaml")
    section = impact_section(log, customers, catalog, seed=0)
    visit, spend = _effects(section), _effects(section, "revenue")
    assert visit.loc["EMAIL-MENS", "effect"] == pytest.approx(0.0766, abs=5e-5)
    assert visit.loc["EMAIL-WOMENS", "effect"] == pytest.approx(0.0452, abs=5e-5)
    assert spend.loc["EMAIL-MENS", "effect"] == pytest.approx(0.77, abs=0.005)
    assert spend.loc["EMAIL-WOMENS", "effect"] == pytest.approx(0.42, abs=0.005)
    shown = section.displays["Treatment vs control"].set_index("Offer")
    assert shown.loc["EMAIL-MENS", "Extra conversions per contacted customer [95% CI]"].startswith(
        "+7.66 pts"
    )
    assert shown.loc["EMAIL-WOMENS", "Extra revenue per contacted customer [95% CI]"].startswith(
        "+$0.42"
    )
    conversion, _ = load_hillstrom("conversion")
    conv = est.randomized_effects(est.known_rows(conversion)[0], ["converted"], impact_config())
    conv = conv.set_index("offer_id")
    assert conv.loc["EMAIL-MENS", "effect"] == pytest.approx(0.0068, abs=5e-5)
    assert conv.loc["EMAIL-WOMENS", "effect"] == pytest.approx(0.0031, abs=5e-5)
    # Three actions at $0.05 an e-mail: the men's e-mail works for almost everyone, targeting
    # barely pays, and the gate falls back (issue 11, section 7).
    gate = section.tables["gate"].iloc[0]
    assert not gate["promote"] and gate["chosen"] == "everyone: EMAIL-MENS"


@pytest.mark.slow
def test_evaluate_to_dir_with_a_campaign_log_writes_the_impact_section(nb_home, tmp_path):
    import mlflow

    tx = generate_transactions(500, seed=7)
    path = tmp_path / "orders.parquet"
    tx.to_parquet(path, index=False)
    dataset = load_dataset(transactions=path)
    ids = sorted(tx["customer_id"].astype(str).unique())
    sc = generate_campaign_log(len(ids), seed=4, contacted_at="2024-09-01")
    log = sc.log.assign(customer_id=ids)  # the same customers as the transactions
    log = validate_campaign_log(log, CATALOG).log
    configs = load_configs(
        {
            "clv": {"count_models": ["bgnbd"]},
            "churn": {"lightgbm": {"n_estimators": 20}, "n_cutoffs": 3},
            "nbo": {"lightgbm": {"n_estimators": 20}, "n_cutoffs": 3},
        }
    )
    configs["impact"] = LIGHT
    out = tmp_path / "report"
    result = evaluate_to_dir(
        dataset,
        None,
        60,
        out,
        configs,
        load_catalog(),
        campaign_log=CampaignLog(log, catalog=CATALOG),
    )
    assert list(result.runs[0].sections)[-1] == "impact"
    assert result.settings["campaign_log_rows"] == len(log)
    data = json.loads((out / "metrics.json").read_text())
    impact = data["models"]["train"]["sections"]["impact"]
    assert impact["status"] == "ok" and "effects" in impact["tables"]
    effects = {(r["offer_id"], r["outcome"]): r for r in impact["tables"]["effects"]}
    assert effects[("OFFER-1", "converted")]["n_treated"] > 100
    html = (out / "report.html").read_text()
    assert 'id="impact"' in html and html.index('id="decision"') < html.index('id="impact"')
    assert "<h3>Treatment vs control</h3>" in html
    run = mlflow.get_run(data["mlflow_run_id"])
    assert "impact.policy_dr_value" in run.data.metrics


def test_compared_model_specs_share_one_impact_section_shown_once(tmp_path, randomized):
    _, section = randomized
    runs = [ModelRun(label=k, versions={}, sections={"impact": section}) for k in ("a", "b")]
    result = Evaluation("synthetic", pd.Timestamp("2024-06-01"), 30, runs)
    _, report_path = write_outputs(result, tmp_path)
    html = report_path.read_text()
    assert html.count("<h3>Treatment vs control</h3>") == 1
    assert html.count('id="impact"') == 1
    assert {c["winner"] for c in result.comparison() if c["section"] == "impact"} == {"tie"}


def test_a_given_uplift_model_is_evaluated_on_a_later_log():
    earlier = generate_campaign_log(3000, seed=8)
    model = UpliftModel({"lightgbm": {"n_estimators": 60}}).fit(earlier.customers, earlier.log)
    later = generate_campaign_log(3000, seed=9)
    section = impact_section(later.log, later.customers, CATALOG, uplift_model=model)
    assert any("the given uplift model" in n for n in section.notes)
    assert len(section.tables["policies"]) == 5
    assert (section.tables["qini"]["qini_uplift"] > 0).all()
