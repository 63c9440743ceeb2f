"""Selection rules and validation folds: count models (per-customer error and total), the boosted
CLV rule, short-history folds of churn and offers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.config import load_config
from nextbest.train.churn import SCHEME_CUSTOMERS, SCHEME_TIME, split_folds
from nextbest.train.clv import select_count_model, selection_order, selection_reason
from nextbest.train.nbo import _folds
from nextbest.train.value import _verdicts, held_out


def _examples(cutoffs: list[pd.Timestamp], n: int = 400) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)] * len(cutoffs),
            "cutoff": np.repeat(cutoffs, n),
        }
    )


@pytest.mark.slow
def test_count_model_choice_weighs_per_customer_error_and_total_on_cdnow(cdnow_tx):
    """CDNOW, inner 84-day holdout before 1997-10-01: MBG/NBD has the lowest MAE (0.355) but
    misses the total by -4.6%; BG/NBD (0.363, -1.1%) wins on MAE ratio + |total error|."""
    best, table, _ = select_count_model(cdnow_tx, "1997-10-01", load_config("clv"))
    t = table.set_index("model")
    assert t["holdout_mae"].idxmin() == "mbgnbd"
    assert best == "bgnbd" == t["selection_score"].idxmin()
    assert t.loc["bgnbd", "selection_score"] == pytest.approx(
        t.loc["bgnbd", "holdout_mae"] / t.loc["bgnbd", "baseline_mae"]
        + abs(t.loc["bgnbd", "aggregate_error"])
    )
    assert t.loc["mbgnbd", "aggregate_error"] == pytest.approx(-0.0458, abs=0.001)
    reason = selection_reason(best, table, load_config("clv"))
    assert reason.startswith("BG/NBD chosen: lowest MAE / historic-rate MAE + 1 x |total error|")
    # With no weight on the total, the per-customer error alone decides.
    only_mae = load_config("clv", {"selection_aggregate_weight": 0.0})
    assert select_count_model(cdnow_tx, "1997-10-01", only_mae)[0] == "mbgnbd"


def test_the_final_fit_falls_back_in_the_selection_rules_order():
    table = pd.DataFrame(
        {
            "model": ["bgnbd", "pareto", "mbgnbd"],
            "outcome": ["failed: no count model converged", "ok", "ok"],
            "selection_score": [np.nan, 1.007, 1.010],
            "log_likelihood": [np.nan, -10.0, -9.0],
        }
    )
    assert selection_order(table) == ["pareto", "mbgnbd", "bgnbd"]
    # Equal scores: the higher log-likelihood first.
    table.loc[2, "selection_score"] = 1.007
    assert selection_order(table)[:2] == ["mbgnbd", "pareto"]


@pytest.mark.slow
def test_a_winner_that_cannot_be_fitted_gives_way_to_the_runner_up():
    """Complete Journey before 2017-06-01: Pareto/NBD wins the inner split but gives non-finite
    predictions on all the data at every penalizer; MBG/NBD, second by the rule, is fitted, not
    the fixed default order's BG/NBD."""
    from nextbest.data.completejourney import load_completejourney
    from nextbest.features.rfm import rfm_summary
    from nextbest.models.clv import make_clv_model

    cfg = load_config("clv")
    tx = load_completejourney(with_extras=False)[0]
    tx = tx[tx["timestamp"] < "2017-06-01"]
    best, table, _ = select_count_model(tx, "2017-06-01", cfg)
    order = selection_order(table)
    assert best == "pareto" and order == ["pareto", "mbgnbd", "bgnbd"]
    model = make_clv_model(cfg, best, fallbacks=order).fit(rfm_summary(tx, "2017-06-01", 7.0))
    assert model.count_model_used_ == "mbgnbd"
    assert make_clv_model(cfg, best).fit(rfm_summary(tx, "2017-06-01", 7.0)).count_model_used_ == (
        "bgnbd"
    )


def test_boosted_rule_needs_no_worse_and_one_better_beyond_ties():
    def table(boosted, count):
        cols = ["revenue_mae", "revenue_spearman", "revenue_normalized_gini"]
        return pd.DataFrame([boosted, count], index=["boosted", "count model"], columns=cols)

    v = _verdicts(table([100.0, 0.85, 0.88], [105.0, 0.80, 0.85]))
    assert v == {
        "revenue_mae": "better",
        "revenue_spearman": "better",
        "revenue_normalized_gini": "better",
    }
    # MAE 0.5% higher is a tie, not a loss; Spearman 0.5% higher is a tie, not a win.
    v = _verdicts(table([100.5, 0.804, 0.85], [100.0, 0.800, 0.85]))
    assert set(v.values()) == {"tie"}
    v = _verdicts(table([110.0, 0.90, 0.90], [100.0, 0.80, 0.80]))
    assert v["revenue_mae"] == "worse"


def test_held_out_customers_are_seeded_and_the_same_on_every_row():
    ids = pd.Series([f"c{i}" for i in range(1000)] * 2)
    a, b = held_out(ids, 0.25, 42), held_out(ids, 0.25, 42)
    np.testing.assert_array_equal(a, b)
    assert 0.2 < a[:1000].mean() < 0.3
    np.testing.assert_array_equal(a[:1000], a[1000:])


def test_churn_folds_by_time_with_three_cutoffs():
    cutoffs = list(pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]))
    ex = _examples(cutoffs)
    f = split_folds(ex, cutoffs, (0.25, 0.25), 42, 28)
    cut = ex["cutoff"]
    assert f.scheme == SCHEME_TIME
    assert set(cut[f.train]) == set(cutoffs[:2]) and set(cut[f.calibrate]) == {cutoffs[2]}
    assert set(cut[f.test]) == {cutoffs[3]} and set(cut[f.final_calibrate]) == {cutoffs[3]}
    assert set(cut[f.final_train]) == set(cutoffs[:3])


def test_churn_folds_never_learn_from_a_window_that_overlaps_a_later_fold():
    """Cutoffs 14 days apart with 30-day labels: each fold learns only from windows that end by
    the next fold's cutoff (42 days back, not 14 or 28), so calibration and test are out of
    time for what came before them."""
    cutoffs = list(pd.date_range("2024-01-01", periods=8, freq="14D"))
    ex = _examples(cutoffs, 20)
    f = split_folds(ex, cutoffs, (0.25, 0.25), 42, 30)
    cut, day = ex["cutoff"], pd.Timedelta(days=30)
    newest = cutoffs[-1]
    calibrate = max(c for c in cutoffs if c + day <= newest)
    assert f.scheme == SCHEME_TIME and set(cut[f.test]) == {newest}
    assert set(cut[f.calibrate]) == {calibrate} == {cutoffs[-4]}
    assert set(cut[f.train]) == {c for c in cutoffs if c + day <= calibrate} == set(cutoffs[:2])
    assert set(cut[f.final_train]) == set(cutoffs[:5]) and set(cut[f.final_calibrate]) == {newest}
    assert "trained on the 2 whose label windows end by" in f.note
    # Too close together for a chain of three folds: customers are split instead.
    f = split_folds(ex.loc[cut >= cutoffs[-3]], cutoffs[-3:], (0.25, 0.25), 42, 30)
    assert f.scheme == SCHEME_CUSTOMERS


@pytest.mark.parametrize("n_cutoffs", [1, 2])
def test_churn_folds_on_held_out_customers_with_a_short_history(n_cutoffs):
    cutoffs = list(pd.to_datetime(["2024-03-01", "2024-04-01"]))[-n_cutoffs:]
    ex = _examples(cutoffs)
    f = split_folds(ex, cutoffs, (0.25, 0.25), 42, 30)
    assert f.scheme == SCHEME_CUSTOMERS and "short history" in f.note
    ids = ex["customer_id"]
    train, cal, test = set(ids[f.train]), set(ids[f.calibrate]), set(ids[f.test])
    assert not train & cal and not train & test and not cal & test
    assert set(ex["cutoff"][f.calibrate | f.test]) == {cutoffs[-1]}
    assert 60 < len(cal) < 140 and 60 < len(test) < 140
    assert set(ids[f.final_calibrate]) == cal | test and not set(ids[f.final_train]) & (cal | test)


def test_offer_folds_never_train_on_windows_that_overlap_the_test_window():
    cutoffs = list(pd.date_range("2024-01-01", periods=5, freq="15D"))
    ex = _examples(cutoffs, 10)
    train, test, scheme, _ = _folds(ex, cutoffs, 30, 42)
    newest = cutoffs[-1]
    assert scheme == "time"
    assert set(ex["cutoff"][train]) == {c for c in cutoffs if c <= newest - pd.Timedelta(days=30)}
    assert set(ex["cutoff"][test]) == {newest}
    # One cutoff only: customers are split instead.
    one = _examples(cutoffs[-1:], 200)
    train, test, scheme, note = _folds(one, cutoffs[-1:], 30, 42)
    assert scheme == "held-out customers" and "short history" in note
    assert not set(one["customer_id"][train]) & set(one["customer_id"][test])
