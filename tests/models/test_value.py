"""The boosted CLV model: the ClvModel contract, totals kept at the count model's, horizons,
persistence and compiled trees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.config import load_config
from nextbest.data.schema import validate_transactions
from nextbest.data.synthetic import SyntheticParams, generate_transactions, synthetic_as_of
from nextbest.features.build import build_context, features_at
from nextbest.features.splits import rolling_cutoffs
from nextbest.models.btyd import OUTPUT_COLUMNS
from nextbest.models.clv import make_clv_model
from nextbest.models.tabular import learn_levels
from nextbest.models.value import BoostedClvModel, btyd_features, value_feature_names
from nextbest.train.value import value_examples

H = 56
PARAMS = SyntheticParams(r=2.0, alpha=2.5, a=1.0, b=60.0)


@pytest.fixture(scope="module")
def world():
    tx = validate_transactions(generate_transactions(1200, seed=5, params=PARAMS)).transactions
    ids = sorted(tx["customer_id"].unique())
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "consent_profiling": True,
            "household_size": [str(1 + i % 4) for i in range(len(ids))],
        }
    )
    ctx = build_context(tx, customers, ("MEAT", "DELI", "PRODUCE"))
    as_of = synthetic_as_of(PARAMS)
    cfg = load_config("clv")
    cutoffs = rolling_cutoffs(ctx.first_day, as_of, H, 28, 4, 60, min_cutoffs=1)
    ex, _ = value_examples(ctx, cutoffs, H, cfg, "bgnbd")
    population = features_at(ctx, as_of, 7.0)
    count = make_clv_model(cfg, "bgnbd").fit(population)
    names = value_feature_names(ex, ctx.demographics)
    levels = learn_levels(ex, ctx.demographics)
    params = {**cfg["value_model"]["lightgbm"], "n_estimators": 30}
    model = BoostedClvModel(count, params, H).fit(ex, names, levels, population)
    return {"model": model, "count": count, "population": population, "examples": ex}


def test_predicts_what_a_clv_model_predicts_with_the_count_models_p_alive(world):
    model, count, rows = world["model"], world["count"], world["population"]
    out = model.predict(rows, horizon_days=365)
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert (out["customer_id"] == rows["customer_id"].astype(str)).all()
    np.testing.assert_array_equal(out["p_alive"], count.predict(rows, 365)["p_alive"])
    values = out[["expected_purchases", "expected_spend", "predicted_clv"]].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all()
    assert model.time_unit_days == count.time_unit_days
    assert "boosted" in model.display_name and "demographics" not in model.feature_names_


def test_totals_over_the_population_are_the_count_models(world):
    model, rows = world["model"], world["population"]
    out = model.predict(rows, horizon_days=H)
    btyd = btyd_features(world["count"], rows, H)
    assert out["expected_purchases"].sum() == pytest.approx(btyd["btyd_purchases"].sum(), rel=1e-9)
    revenue = (out["expected_purchases"] * out["expected_spend"]).sum()
    assert revenue == pytest.approx(btyd["btyd_revenue"].sum(), rel=1e-3)  # spend clipping aside
    # ... while the ranking of customers is the boosted one, not the count model's.
    assert not np.allclose(out["expected_purchases"], btyd["btyd_purchases"])


def test_expected_purchases_follow_the_count_model_path_across_horizons(world):
    model, count, rows = world["model"], world["count"], world["population"]
    for h in (28, H, 365):
        np.testing.assert_allclose(
            model.expected_purchases(h, rows),
            model.predict(rows, horizon_days=h)["expected_purchases"],
            rtol=1e-9,
        )
    alive = count.expected_purchases(H, rows) > 1e-12
    ratio = model.expected_purchases(365, rows) / model.expected_purchases(H, rows)
    base = count.expected_purchases(365, rows) / count.expected_purchases(H, rows)
    np.testing.assert_allclose(ratio[alive], base[alive], rtol=1e-6)
    # Where the count model expects nothing at all, the boosted purchases scale with the horizon.
    np.testing.assert_allclose(ratio[~alive], 365 / H, rtol=1e-9)


def test_save_load_round_trip_and_compiled_trees_agree(world, tmp_path, monkeypatch):
    model, rows = world["model"], world["population"]
    loaded = BoostedClvModel.load(model.save(tmp_path / "value.pkl"))
    big = pd.concat([rows] * 3, ignore_index=True)  # past compiled.MIN_ROWS
    big["customer_id"] = [f"c{i}" for i in range(len(big))]
    compiled = loaded.predict(big, horizon_days=180)
    monkeypatch.setenv("NEXTBEST_COMPILED_TREES", "0")
    plain = model.predict(big, horizon_days=180)
    np.testing.assert_allclose(compiled.iloc[:, 1:], plain.iloc[:, 1:], rtol=1e-9, atol=1e-12)


def test_missing_feature_columns_are_named(world):
    from nextbest.errors import ModelInputError

    rows = world["population"].drop(columns=["spend_ew_30d"])
    with pytest.raises(ModelInputError, match="spend_ew_30d"):
        world["model"].predict(rows, horizon_days=30)
