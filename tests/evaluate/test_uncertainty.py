"""Bootstrap intervals of backtest figures: paired draws, directions, formatting, JSON."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.evaluate.results import HIGHER, LOWER, ZERO, Score
from nextbest.evaluate.uncertainty import add_interval, gain_text, signed
from nextbest.models.evaluation import cluster_rows, paired_interval


def _hits(n: int = 2000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A baseline hitting 85% of users and a model that also hits 5% more of them."""
    rng = np.random.default_rng(seed)
    base = (rng.random(n) < 0.85).astype(float)
    model = np.maximum(base, (rng.random(n) < 0.05 / 0.15 * (1 - base)).astype(float))
    return model, base


def _mean_stat(model: np.ndarray, base: np.ndarray):
    return lambda rows: (float(model[rows].mean()), float(base[rows].mean()))


def test_interval_of_a_mean_gain_matches_the_normal_approximation():
    model, base = _hits()
    iv = paired_interval(len(model), _mean_stat(model, base), HIGHER)
    diff = model - base
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
    assert iv.gain[0] < diff.mean() < iv.gain[1]
    assert iv.gain[1] - iv.gain[0] == pytest.approx(2 * half, rel=0.25)
    value_half = 1.96 * model.std(ddof=1) / np.sqrt(len(model))
    assert iv.value[1] - iv.value[0] == pytest.approx(2 * value_half, rel=0.25)


def test_draws_are_paired_so_a_sure_gain_has_a_narrow_interval():
    """The model hits every user the baseline hits and 1% more: its own value is uncertain by
    about +-1.6 points, but the gain never drops to 0 on any draw."""
    rng = np.random.default_rng(0)
    base = (rng.random(2000) < 0.85).astype(float)
    model = base.copy()
    model[np.flatnonzero(base == 0)[:20]] = 1.0
    iv = paired_interval(len(model), _mean_stat(model, base), HIGHER)
    assert iv.gain[0] > 0
    assert iv.gain[1] - iv.gain[0] < (iv.value[1] - iv.value[0]) / 3


@pytest.mark.parametrize(
    ("better", "model", "base"),
    [(HIGHER, 0.9, 0.8), (LOWER, 10.0, 12.0), (ZERO, -0.01, 0.03), (ZERO, 0.01, -0.03)],
)
def test_a_better_model_has_a_positive_gain_in_every_direction(better, model, base):
    n = 50
    stat = lambda rows: (model, base)  # noqa: E731 - constant on every draw
    iv = paired_interval(n, stat, better)
    score = Score("m", "m", model, {"b": base}, better)
    assert score.gain() == pytest.approx(iv.gain[0]) == pytest.approx(iv.gain[1])
    assert score.gain() > 0


def test_intervals_are_seeded_and_refused_when_undefined():
    model, base = _hits(300)
    a = paired_interval(300, _mean_stat(model, base), HIGHER)
    b = paired_interval(300, _mean_stat(model, base), HIGHER)
    assert a == b
    assert paired_interval(1, _mean_stat(model, base), HIGHER) is None
    assert paired_interval(300, lambda rows: (float("nan"), 0.5), HIGHER) is None


def test_add_interval_resamples_the_best_baseline_only():
    model, base = _hits(500)
    weak = np.zeros(500)
    score = Score("hit", "hit", model.mean(), {"weak": 0.0, "strong": base.mean()}, HIGHER)
    asked = set()

    def measure(rows, name):
        asked.add(name)
        return float({None: model, "strong": base, "weak": weak}[name][rows].mean())

    add_interval(score, 500, measure)
    assert asked == {None, "strong"}
    assert score.interval.gain[0] < score.gain() < score.interval.gain[1]


def test_cluster_rows_draw_whole_customers():
    codes = np.array([2, 0, 1, 0, 2, 2])
    n, rows = cluster_rows(codes)
    assert n == 3
    np.testing.assert_array_equal(rows(np.array([0])), [1, 3])
    np.testing.assert_array_equal(rows(np.array([2, 0, 0])), [0, 4, 5, 1, 3, 1, 3])
    assert rows(np.array([], dtype=int)).size == 0


def test_clustered_rows_widen_the_interval_when_a_customers_rows_agree():
    """Ten identical rows per customer are one customer's worth of evidence, not ten: drawing
    rows would understate the interval about sqrt(10) times."""
    rng = np.random.default_rng(5)
    per_customer = (rng.random(300) < 0.5).astype(float)
    y = np.repeat(per_customer, 10)
    n, rows = cluster_rows(np.repeat(np.arange(300), 10))
    by_customer = paired_interval(n, lambda d: (y[rows(d)].mean(), 0.0), HIGHER)
    by_row = paired_interval(len(y), lambda d: (y[d].mean(), 0.0), HIGHER)
    width = lambda iv: iv.value[1] - iv.value[0]  # noqa: E731
    assert width(by_customer) / width(by_row) == pytest.approx(np.sqrt(10), rel=0.3)


def test_gain_in_words_in_the_scores_units():
    assert signed(0.025, "{:.1%}") == "+2.5 pts"
    assert signed(-5.6213, "{:,.2f}") == "-5.62"
    assert signed(0.0174, "{:.3f}") == "+0.017"
    assert signed(0.12, "{:.2f}x") == "+0.12x"
    model, base = _hits()
    iv = paired_interval(len(model), _mean_stat(model, base), HIGHER)
    text = gain_text(iv, 0.05, "{:.1%}")
    assert text.startswith("gain +5.0 pts (95% interval +") and text.endswith(" pts)")
    compact = gain_text(iv, 0.05, "{:.1%}", compact=True)
    assert compact.startswith("+5.0 pts [+") and "pts" not in compact.split("[")[1]
    assert gain_text(None, 0.05, "{:.1%}") == ""


def test_metrics_json_carries_the_interval_only_when_measured():
    score = Score("auc", "AUC", 0.88, {"recency": 0.80}, HIGHER)
    assert "interval" not in score.as_dict() and score.gain_text() == ""
    model, base = _hits()
    score.interval = paired_interval(len(model), _mean_stat(model, base), HIGHER)
    out = score.as_dict()
    assert out["gain_vs_best_baseline"] == pytest.approx(0.08)
    assert out["interval"]["level"] == 0.95 and out["interval"]["draws"] == 200
    lo, hi = out["interval"]["gain"]
    assert lo < hi and len(out["interval"]["model"]) == 2
