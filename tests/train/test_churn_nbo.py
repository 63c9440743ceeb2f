"""Churn and next-best-offer models: leakage, consent, behaviour, known answers, the scoring
contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.decision.catalog import parse_catalog
from nextbest.features.build import build_context, features_at
from nextbest.scoring import SCORE_COLUMNS, score
from nextbest.train.gate import gate

pytestmark = pytest.mark.slow


def test_features_at_a_cutoff_ignore_everything_after_it(synthetic_world):
    w = synthetic_world
    tx, cutoff = w["transactions"], w["as_of"] - pd.Timedelta(days=60)
    before = features_at(w["ctx"], cutoff, 7.0)
    rng = np.random.default_rng(0)
    later = tx[tx["timestamp"] >= cutoff]
    changed = tx.copy()
    changed.loc[later.index, "amount"] = rng.uniform(1, 500, len(later))
    changed.loc[later.index, "category"] = rng.choice(list(w["catalog"].categories), len(later))
    extra = pd.DataFrame(
        {
            "customer_id": ["NEW1", tx["customer_id"].iloc[0]],
            "timestamp": [cutoff, cutoff + pd.Timedelta(hours=5)],
            "amount": [99.0, 42.0],
            "category": ["DELI", "MEAT"],
        }
    )
    changed = pd.concat([changed, extra], ignore_index=True)
    after = features_at(
        build_context(changed, w["customers"], w["catalog"].categories), cutoff, 7.0
    )
    pd.testing.assert_frame_equal(before, after)


def test_training_sets_never_contain_opted_out_customers(synthetic_world):
    from nextbest.config import load_config
    from nextbest.features.customer import customer_features  # noqa: F401  (same ctx path as training)
    from nextbest.features.splits import rolling_cutoffs
    from nextbest.train.churn import churn_examples
    from nextbest.train.nbo import offer_examples

    w = synthetic_world
    customers = w["customers"].copy()
    opted_out = customers["customer_id"].iloc[::7].tolist()
    customers.loc[customers["customer_id"].isin(opted_out), "consent_profiling"] = False
    # Even if their transactions reach the feature context, the example builders drop them.
    ctx = build_context(w["transactions"], customers, w["catalog"].categories)
    cutoffs = rolling_cutoffs(ctx.first_day, w["as_of"], 30, 30, 4, 90)
    churn = churn_examples(ctx, cutoffs, 30, load_config("clv"), "bgnbd")
    offers = offer_examples(ctx, cutoffs, w["catalog"], load_config("nbo"), 7.0)
    assert not set(opted_out) & set(churn["customer_id"])
    assert not set(opted_out) & set(offers["customer_id"])
    assert len(churn) and len(offers)


def test_just_bought_is_not_riskier_than_the_same_customer_60_days_later(synthetic_world):
    """All else equal (no purchase in between), waiting 60 days never lowers churn risk."""
    w = synthetic_world
    bundle = w["bundle"]
    cutoff = w["as_of"] - pd.Timedelta(days=90)
    tx = w["transactions"]
    frozen = tx[tx["timestamp"] < cutoff]  # nothing happens after the cutoff
    ctx = build_context(frozen, w["customers"], w["catalog"].categories)
    now = features_at(ctx, cutoff, 7.0, bundle.clv, bundle.churn_horizon_days)
    later = features_at(
        ctx, cutoff + pd.Timedelta(days=60), 7.0, bundle.clv, bundle.churn_horizon_days
    )
    recent = now[now["days_since_last"] <= 7].set_index("customer_id")
    later = later.set_index("customer_id").loc[recent.index]
    p_now = bundle.churn.predict_proba(recent.reset_index())
    p_later = bundle.churn.predict_proba(later.reset_index())
    assert len(recent) > 50
    assert (p_later >= p_now - 1e-12).all()
    assert p_later.mean() > p_now.mean()


def test_churn_beats_recency_baseline_and_is_calibrated(synthetic_world):
    m = synthetic_world["churn"].metrics
    assert m["test_auc"] > 0.7
    assert m["test_auc"] >= m["baseline_recency_auc"] - 0.02
    assert abs(m["test_mean_prediction"] - m["test_base_rate"]) < 0.1
    # How sure the gate is: the AUC gain over the best baseline with its bootstrap interval.
    assert m["test_auc_gain_low"] < m["test_auc_gain_vs_best_baseline"] < m["test_auc_gain_high"]
    note = next(n for n in synthetic_world["churn"].notes if n.startswith("churn: test AUC"))
    assert f"{m['test_auc_gain_low']:+.3f} to {m['test_auc_gain_high']:+.3f}" in note


def test_offer_gate_note_gives_the_hit_gain_with_its_interval(synthetic_world):
    m = synthetic_world["nbo"].metrics
    low, gain, high = (
        m[f"hit_at_3_{x}"] for x in ("gain_low", "gain_vs_best_baseline", "gain_high")
    )
    assert low <= gain <= high and low < high
    note = next(n for n in synthetic_world["nbo"].notes if n.startswith("next best offer: hit@3"))
    assert f"(gain {gain:+.3f}, 95% interval {low:+.3f} to {high:+.3f} over " in note
    # The gate records the interval's lower end; its limit is off (null) unless configured.
    check = synthetic_world["nbo"].gate["checks"]["min_hit_gain_low_vs_baselines"]
    assert check == {"value": pytest.approx(low), "limit": None, "passed": True}
    strict = gate(
        {"min_hit_gain_vs_baselines": gain, "min_hit_gain_low_vs_baselines": low},
        {"min_hit_gain_vs_baselines": 0.0, "min_hit_gain_low_vs_baselines": high + 0.01},
    )
    assert not strict["passed"] and strict["checks"]["min_hit_gain_vs_baselines"]["passed"]
    churn = synthetic_world["churn"]
    check = churn.gate["checks"]["min_auc_gain_low_vs_baselines"]
    assert check["value"] == pytest.approx(churn.metrics["test_auc_gain_low"])


def test_score_contract_and_consent(synthetic_world):
    w = synthetic_world
    features = w["features"].head(60).copy()
    opted_out = features["customer_id"].iloc[:10].tolist()
    features.loc[features["customer_id"].isin(opted_out), "consent_profiling"] = False

    seen: list[set] = []

    class Recorder:
        """Delegates to the real model and records which customers it saw."""

        def __init__(self, model):
            self.model = model

        def __getattr__(self, name):
            return getattr(self.model, name)

        def predict(self, frame, *args, **kwargs):
            seen.append(set(frame["customer_id"]))
            return self.model.predict(frame, *args, **kwargs)

        def predict_proba(self, frame, *args, **kwargs):
            seen.append(set(frame["customer_id"]))
            return self.model.predict_proba(frame, *args, **kwargs)

        def predict_offers(self, frame, *args, **kwargs):
            seen.append(set(frame["customer_id"]))
            return self.model.predict_offers(frame, *args, **kwargs)

    from dataclasses import replace

    bundle = replace(
        w["bundle"],
        clv=Recorder(w["bundle"].clv),
        churn=Recorder(w["bundle"].churn),
        nbo=Recorder(w["bundle"].nbo),
    )
    out = score(features, bundle, 365, w["popularity"], as_of=w["as_of"])
    assert list(out.columns[: len(SCORE_COLUMNS)]) == list(SCORE_COLUMNS)
    assert len(seen) == 3 and all(not (s & set(opted_out)) for s in seen)
    gone = out[out["customer_id"].isin(opted_out)]
    assert (
        gone[
            [
                "p_alive",
                "expected_purchases",
                "expected_spend",
                "predicted_clv",
                "churn_probability",
            ]
        ]
        .isna()
        .all()
        .all()
    )
    assert (gone["action"] == "non_personalised").all()
    assert (gone["action_offer_id"] == w["catalog"].default_action.offer_id).all()
    assert all(o == [] for o in gone["offers"])
    kept = out[~out["customer_id"].isin(opted_out)]
    assert kept["churn_probability"].between(0, 1).all() and (kept["predicted_clv"] >= 0).all()
    assert set(kept["action"]) <= {"retention", "cross_sell", "no_action"}
    for offers, reasons in zip(kept["offers"], kept["reasons"]):
        assert len(offers) <= w["catalog"].policy["top_k"]
        evs = [o["expected_value"] for o in offers]
        assert evs == sorted(evs, reverse=True)
        assert all(
            set(o) == {"offer_id", "category", "p_convert", "expected_value", "channel"}
            and o["channel"] in w["catalog"].channel_names
            for o in offers
        )
        assert reasons and all(r["text"] for r in reasons)
    # Scoring the same rows again gives the same answer.
    again = score(features, w["bundle"], 365, w["popularity"], as_of=w["as_of"])
    pd.testing.assert_frame_equal(
        out.drop(columns=["offers", "reasons"]), again.drop(columns=["offers", "reasons"])
    )


def _segment_world(n_per_segment: int = 300, seed: int = 3) -> pd.DataFrame:
    """Two segments with a known cross-sell: MEAT buyers go on to SEAFOOD, PASTRY buyers to DELI.

    Each week a customer visits with probability 0.8 and buys GROCERY plus their
    anchor category; on 25% of visits also their segment's cross-sell category;
    on 3% of visits FLORAL or COSMETICS.
    """
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2024-01-01")
    for seg, (anchor, cross) in enumerate((("MEAT", "SEAFOOD"), ("PASTRY", "DELI"))):
        for i in range(n_per_segment):
            cid = f"{'MP'[seg]}{i:04d}"
            for week in range(52):
                if rng.random() > 0.8:
                    continue
                ts = start + pd.Timedelta(days=7 * week + int(rng.integers(0, 7)), hours=10)
                basket = ["GROCERY", anchor]
                if rng.random() < 0.25:
                    basket.append(cross)
                if rng.random() < 0.03:
                    basket.append(rng.choice(["FLORAL", "COSMETICS"]))
                rows += [(cid, ts, float(rng.uniform(2, 20)), c) for c in basket]
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount", "category"])


def test_nbo_finds_the_known_best_offer():
    from nextbest.config import load_config
    from nextbest.decision.policy import decide
    from nextbest.features.build import category_popularity
    from nextbest.models.offers import offer_pairs
    from nextbest.train.nbo import train_nbo

    tx = _segment_world()
    customers = pd.DataFrame(
        {"customer_id": sorted(tx["customer_id"].unique()), "consent_profiling": True}
    )
    cats = ["SEAFOOD", "DELI", "FLORAL", "COSMETICS"]
    catalog = parse_catalog(
        {
            "default_action": {"offer_id": "D", "name": "newsletter"},
            "policy": {"top_k": 2, "min_expected_value": 0.1},
            "offers": [
                {
                    "offer_id": f"X-{c}",
                    "name": c,
                    "category": c,
                    "value": 5.0,
                    "cost": 0.5,
                    "eligibility": {"not_bought_category_days": 30},
                }
                for c in cats
            ],
        }
    )
    as_of = pd.Timestamp("2024-12-30")
    ctx = build_context(tx, customers, catalog.categories)
    cfg = load_config("nbo", {"lightgbm": {"n_estimators": 80, "n_jobs": 1}})
    result = train_nbo(ctx, as_of, cfg, catalog, 7.0)
    feats = features_at(ctx, as_of, 7.0)
    pairs = offer_pairs(feats, catalog.offers, category_popularity(ctx, as_of))
    p = result.model.predict_proba(pairs).reshape(len(catalog.offers), len(feats)).T
    n = len(feats)
    d = decide(
        feats,
        catalog,
        p,
        np.full(n, 500.0),
        np.full(n, 0.1),
        np.ones(n),
        np.ones(n, bool),
        None,
        as_of,
    )
    chosen = pd.Series(d.action_offer_id, index=feats["customer_id"])
    days = feats.set_index("customer_id")
    meat = [
        c for c in chosen.index if c.startswith("M") and not days.loc[c, "days_since_seafood"] <= 30
    ]
    pastry = [
        c for c in chosen.index if c.startswith("P") and not days.loc[c, "days_since_deli"] <= 30
    ]
    assert len(meat) > 20 and len(pastry) > 20
    assert (chosen[meat] == "X-SEAFOOD").mean() > 0.9
    assert (chosen[pastry] == "X-DELI").mean() > 0.9
    assert result.metrics["model_hit_at_3"] >= result.metrics["baseline_popularity_hit_at_3"]


def test_predict_offers_equals_pair_frame_predictions_on_complete_journey():
    """The scoring fast path gives exactly the pair-frame probabilities (demographics, campaigns,
    masks)."""
    from nextbest.config import load_config
    from nextbest.data import load_dataset
    from nextbest.decision.catalog import load_catalog
    from nextbest.features.build import category_popularity
    from nextbest.models.offers import offer_pairs
    from nextbest.train.nbo import train_nbo

    ds = load_dataset("completejourney")
    catalog = load_catalog()
    as_of = pd.Timestamp("2017-10-01")
    tx = ds.transactions[ds.transactions["timestamp"] < as_of]
    ctx = build_context(tx, ds.customers, catalog.categories, ds.extras)
    cfg = load_config("nbo", {"n_cutoffs": 3, "lightgbm": {"n_estimators": 40, "n_jobs": 1}})
    model = train_nbo(ctx, as_of, cfg, catalog, 7.0).model
    assert (
        len([c for c in model.levels_ if c != "offer_id"]) >= 3
    )  # demographics are categorical features
    feats = features_at(ctx, as_of, 7.0)
    feats.loc[feats.index[:5], "income"] = (
        "never-seen-level"  # unseen levels become missing in both paths
    )
    pop = category_popularity(ctx, as_of)
    rng = np.random.default_rng(0)
    for mask in (
        None,
        rng.random((len(feats), len(catalog.offers))) < 0.3,
        np.zeros((len(feats), len(catalog.offers)), dtype=bool),
    ):
        fast = model.predict_offers(feats, catalog.offers, pop, mask=mask)
        slow = (
            model.predict_proba(offer_pairs(feats, catalog.offers, pop, mask=mask))
            if (mask is None or mask.any())
            else np.empty(0)
        )
        assert fast.shape == slow.shape
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=0)


def _fake_nbo(passed: bool):
    """A trained-looking NBO result (real small models) whose gate passed or failed."""
    from nextbest.models.offer_baselines import BaselineOfferModel
    from nextbest.train.nbo import NboResult

    pairs = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(40)],
            "offer_id": ["XS-MEAT", "XS-DELI"] * 20,
            "cat_days_since": np.linspace(31, 300, 40),
            "label": [1, 0, 0, 1] * 10,
        }
    )
    learned = BaselineOfferModel("popularity").fit(pairs, ["XS-MEAT", "XS-DELI"])
    return NboResult(
        model=learned,
        metrics={"model_hit_at_3": 0.5},
        gate={"passed": passed, "checks": {}},
        cutoffs=[pd.Timestamp("2024-01-01")],
        per_offer=pd.DataFrame({"offer_id": ["XS-MEAT"], "auc": [0.6]}),
        importance=pd.DataFrame({"feature": ["cat_days_since"], "gain": [1.0]}),
        example=pairs.head(3)[["customer_id", "offer_id", "cat_days_since"]],
        baseline=BaselineOfferModel("last_bought").fit(pairs, ["XS-MEAT", "XS-DELI"]),
    )


def test_failed_offer_gate_promotes_the_baseline_until_a_learned_model_passes(nb_home, monkeypatch):
    """No learned model beats the baselines -> the best baseline policy is champion (and refreshed
    on the next failure); a learned model that passes the gate takes over and is then kept."""
    from nextbest import registry
    from nextbest.config import load_configs
    from nextbest.decision.catalog import load_catalog
    from nextbest.train import pipeline

    registry.setup()
    configs, catalog = load_configs(), load_catalog()
    outcomes = iter([False, False, True, False])
    monkeypatch.setattr(pipeline, "train_nbo", lambda *a, **k: _fake_nbo(next(outcomes)))

    def champion():
        mv = registry.champion_version(registry.NBO_MODEL_NAME)
        return (str(mv.version), mv.tags.get("policy")) if mv is not None else None

    result, version, promoted = pipeline.run_nbo(None, "t", "2024-06-01", configs, catalog)
    assert promoted and champion() == (version, "baseline:last_bought") == (
        "2",
        "baseline:last_bought",
    )
    assert any("baseline policy is champion" in n for n in result.notes)
    _, version, promoted = pipeline.run_nbo(None, "t", "2024-07-01", configs, catalog)
    assert promoted and champion() == ("4", "baseline:last_bought")  # rates refreshed
    _, version, promoted = pipeline.run_nbo(None, "t", "2024-08-01", configs, catalog)
    assert promoted and champion() == ("5", "learned")  # through the normal gate
    _, version, promoted = pipeline.run_nbo(None, "t", "2024-09-01", configs, catalog)
    assert not promoted and version == "6" and champion() == ("5", "learned")
    model, mv = registry.load_model(registry.NBO_MODEL_NAME)
    assert str(mv.version) == "5" and model.policy == "popularity"  # the fake "learned" one


def test_baseline_policy_decisions_say_so_in_their_reasons(synthetic_world):
    """Scored with the baseline offer policy, every cross-sell carries its reason."""
    from dataclasses import replace

    from nextbest.models.offer_baselines import REASON_CODE

    w = synthetic_world
    baseline = w["nbo"].baseline
    assert baseline is not None
    bundle = replace(w["bundle"], nbo=baseline)
    out = score(w["features"].head(400), bundle, 365, w["popularity"], as_of=w["as_of"])
    for action, reasons in zip(out["action"], out["reasons"]):
        codes = [r["code"] for r in reasons]
        assert (REASON_CODE in codes) == (action == "cross_sell")
    learned = score(w["features"].head(400), w["bundle"], 365, w["popularity"], as_of=w["as_of"])
    assert not any(REASON_CODE in [r["code"] for r in rs] for rs in learned["reasons"])


def test_registered_offer_example_scores_with_the_category_affinity(synthetic_world):
    """The input example logged with the offer model carries what it needs for cat_affinity
    (``category``): logging predicts on it, as MLflow's pyfunc does."""
    from nextbest.errors import ModelInputError

    nbo = synthetic_world["nbo"]
    assert nbo.model.affinity_ is not None and "cat_affinity" in nbo.model.feature_names_
    p = nbo.model.predict(nbo.example)["p_convert"].to_numpy()
    assert len(p) == len(nbo.example) and ((p > 0) & (p < 1)).all()
    with pytest.raises(ModelInputError, match="category"):
        nbo.model.predict(nbo.example.drop(columns=["category"]))
