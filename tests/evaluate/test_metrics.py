"""Evaluation metrics against values worked out by hand on tiny frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.evaluate.results import HIGHER, LOWER, ZERO, Score, compare_values, winner
from nextbest.models.evaluation import (
    decile_mape,
    decile_table,
    historic_rate_baseline,
    historic_spend_baseline,
    holdout_metrics,
    lift_table,
    normalized_gini,
    ranking_metrics,
    roc_auc,
    spearman,
    value_metrics,
)
from nextbest.plots.evaluation import capture_curve


def test_spearman_by_hand():
    # rank differences d = (1, -1, 1, -1, 0): rho = 1 - 6 * 4 / (5 * 24) = 0.8
    assert spearman(np.arange(1, 6), np.array([2, 1, 4, 3, 5])) == pytest.approx(0.8)
    assert spearman(np.arange(1, 6), -np.arange(1, 6)) == pytest.approx(-1.0)


def test_spearman_is_nan_for_a_constant_prediction():
    assert np.isnan(spearman(np.arange(5), np.zeros(5)))


def test_normalized_gini_by_hand():
    # ordered by prediction: actual 3, 1, 2, 0 -> Lorenz 3/6, 4/6, 6/6, 6/6 -> G = 19/24 - 5/8 =
    # 1/6;
    # perfect order 3, 2, 1, 0 -> G = 20/24 - 5/8 = 5/24; normalised = (1/6) / (5/24) = 0.8
    actual = np.array([0.0, 1.0, 2.0, 3.0])
    assert normalized_gini(actual, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.8)
    assert normalized_gini(actual, actual * 10) == pytest.approx(1.0)


def test_normalized_gini_ties_share_their_groups_value():
    actual = np.array([0.0, 1.0, 2.0, 3.0])
    # tie groups {0, 1} (mean 0.5) first, then {2, 3} (mean 2.5): Lorenz 1/12, 2/12, 7/12, 1 -> G =
    # -1/6
    assert normalized_gini(actual, np.array([1.0, 1.0, 0.0, 0.0])) == pytest.approx(-0.8)
    # a constant prediction carries no ranking at all, whatever the row order
    assert normalized_gini(actual, np.zeros(4)) == pytest.approx(0.0)
    assert normalized_gini(actual[::-1], np.zeros(4)) == pytest.approx(0.0)


def test_normalized_gini_nan_without_value():
    assert np.isnan(normalized_gini(np.zeros(3), np.arange(3.0)))


def test_decile_mape_by_hand():
    # two groups by prediction: {8, 6} -> predicted 7 vs actual 7.5 (1/15); {2, 1} -> 1.5 vs 2.5
    # (0.4)
    actual, predicted = np.array([10.0, 0.0, 5.0, 5.0]), np.array([8.0, 1.0, 6.0, 2.0])
    table = decile_table(actual, predicted, n_groups=2)
    assert table["predicted_mean"].tolist() == [7.0, 1.5]
    assert table["actual_mean"].tolist() == [7.5, 2.5]
    assert decile_mape(actual, predicted, n_groups=2) == pytest.approx((1 / 15 + 0.4) / 2)


def test_decile_mape_skips_groups_with_no_actual_value():
    actual, predicted = np.array([0.0, 0.0, 4.0, 4.0]), np.array([4.0, 3.0, 2.0, 1.0])
    table = decile_table(actual, predicted, n_groups=2)
    assert np.isnan(table["ape"].iloc[0])
    assert decile_mape(actual, predicted, n_groups=2) == pytest.approx(abs(1.5 - 4) / 4)


def test_lift_and_gain_by_hand():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    score = np.arange(10, 0, -1)  # already ordered, highest first
    table = lift_table(y, score, n_groups=5)
    assert table["rate"].tolist() == [0.5, 0.5, 0.0, 0.0, 0.5]
    np.testing.assert_allclose(table["lift"], [0.5 / 0.3, 0.5 / 0.3, 0, 0, 0.5 / 0.3])
    np.testing.assert_allclose(table["cumulative_gain"], [1 / 3, 2 / 3, 2 / 3, 2 / 3, 1.0])


def test_hit_and_map_at_k_by_hand():
    relevant = [{"a"}, {"b", "c"}, set()]
    ranked = [["a", "b", "c"], ["a", "b", "c"], ["a"]]
    # user 1: hit, AP = 1; user 2: hit at rank 2, AP = (1/2) / 2; user 3 has nothing relevant:
    # skipped
    out = ranking_metrics(relevant, ranked, k=2)
    assert out == {"hit@2": 1.0, "map@2": pytest.approx(0.625), "n_users": 2.0}
    assert ranking_metrics(relevant, ranked, k=1) == {"hit@1": 0.5, "map@1": 0.5, "n_users": 2.0}


def test_holdout_metrics_and_historic_baselines_by_hand():
    cal = pd.DataFrame(
        {
            "frequency": [2, 0, 3],
            "T": [4.0, 2.0, 0.0],
            "monetary": [10.0, 0.0, 5.0],
            "duration_holdout": [2.0, 2.0, 2.0],
        }
    )
    np.testing.assert_allclose(historic_rate_baseline(cal), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(historic_spend_baseline(cal), [10.0, 0.0, 0.0])
    m = holdout_metrics(np.array([2.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0]))
    assert m["mae"] == pytest.approx(2 / 3) and m["aggregate_error"] == pytest.approx(-2 / 3)
    assert m["actual_total"] == 3.0 and m["predicted_total"] == 1.0


def test_value_metrics_has_every_clv_measure():
    out = value_metrics(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert {"mae", "rmse", "aggregate_error", "spearman", "normalized_gini", "decile_mape"} <= set(
        out
    )
    assert out["normalized_gini"] == pytest.approx(0.8)


def test_train_gate_uses_the_shared_metric_functions():
    import nextbest.models.evaluation as ev
    import nextbest.train.clv as train_clv

    assert train_clv.holdout_metrics is ev.holdout_metrics
    assert train_clv.historic_rate_baseline is ev.historic_rate_baseline


def test_capture_curve_ends_and_ties():
    curve = capture_curve(np.array([0.0, 0.0, 0.0, 4.0]), np.array([0.0, 0.0, 0.0, 1.0]), points=5)
    np.testing.assert_allclose(curve["share_of_value"], [0.0, 1.0, 1.0, 1.0, 1.0])
    flat = capture_curve(np.array([0.0, 0.0, 0.0, 4.0]), np.zeros(4), points=5)
    np.testing.assert_allclose(flat["share_of_value"], [0.0, 0.25, 0.5, 0.75, 1.0])


def test_verdicts_follow_each_scores_direction():
    s = Score("auc", "AUC", 0.8, {"a": 0.7, "b": 0.75}, HIGHER)
    assert s.best_baseline() == ("b", 0.75) and s.verdict() == "better"
    assert Score("mae", "MAE", 2.0, {"a": 1.5}, LOWER).verdict() == "worse"
    assert Score("err", "error", -0.1, {"a": 0.2, "b": -0.3}, ZERO).verdict() == "better"
    assert Score("x", "x", 1.0, {}, HIGHER).verdict() == "n/a"
    assert Score("x", "x", float("nan"), {"a": 1.0}, HIGHER).verdict() == "n/a"
    assert compare_values(0.5, 0.5, HIGHER) == "tie"


def test_winner_of_a_comparison():
    assert winner({"champion": 0.7, "3": 0.8}, HIGHER) == "3"
    assert winner({"champion": 0.7, "3": 0.8}, LOWER) == "champion"
    assert winner({"champion": -0.05, "3": 0.2}, ZERO) == "champion"
    assert winner({"champion": 1.0, "3": 1.0}, HIGHER) == "tie"
    assert winner({"champion": float("nan"), "3": float("nan")}, HIGHER) is None


def test_differences_under_one_percent_are_a_tie():
    assert Score("s", "Spearman", 0.805, {"historic rate": 0.804}, HIGHER).verdict() == "tie"
    assert Score("m", "MAE", 181.19, {"historic rate": 181.92}, LOWER).verdict() == "tie"
    assert Score("e", "error", 0.007, {"historic rate": 0.022}, ZERO).verdict() == "better"


def test_roc_auc_by_hand_and_nan_with_one_class():
    # Positives at 0.9 and 0.4, negatives at 0.5 and 0.1: 3 of 4 pairs ordered right.
    assert roc_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.5, 0.4, 0.1])) == pytest.approx(0.75)
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))
