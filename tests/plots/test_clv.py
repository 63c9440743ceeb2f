"""Plot data against hand-computed values on tiny frames, and figure structure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter
from matplotlib.figure import Figure

from nextbest.plots import clv as plots
from nextbest.plots import png as png_bytes


class LinearModel:
    """Stand-in with closed-form answers: E[X(t)] = 0.5 t, E[Y(t)|x] = 0.1 t (x + 1)."""

    def __init__(self):
        self.calls = []

    def expected_number_of_purchases_up_to_time(self, t):
        self.calls.append(np.asarray(t))
        return 0.5 * np.asarray(t)

    def conditional_expected_number_of_purchases_up_to_time(self, t, frequency, recency, T):
        return 0.1 * np.asarray(t) * (np.asarray(frequency) + 1)

    def conditional_probability_alive(self, frequency, recency, T):
        return np.asarray(recency) / T + 0 * np.asarray(frequency)


@pytest.fixture
def bgnbd():
    """BG/NBD 'fitted' with the CDNOW parameters of Fader, Hardie & Lee (2005), no fit."""
    m = BetaGeoFitter()
    m.params_ = pd.Series({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    return m


@pytest.fixture
def days():
    # a: born 0, repeats on 3 (week 0) and 10 (week 1)
    # b: born 2, repeat on 16 (week 2); day 21 is after the window end
    # c: born 8, no repeat;  d: born 0, no repeat;  z: not in the cohort
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b", "b", "c", "d", "z", "z"],
            "day": np.array([0, 3, 10, 2, 16, 21, 8, 0, 1, 5], dtype="int64"),
        }
    )


@pytest.fixture
def first_day():
    return pd.Series({"a": 0, "b": 2, "c": 8, "d": 0}, dtype="int64")


@pytest.fixture
def cal_holdout():
    return pd.DataFrame(
        {
            "frequency": [0, 0, 1, 3, 9],
            "recency": [0.0, 0.0, 2.0, 5.0, 9.0],
            "T": [10.0, 8.0, 9.0, 10.0, 10.0],
            "frequency_holdout": [0, 1, 2, 4, 6],
            "duration_holdout": [2.0] * 5,
        }
    )


# --- tracking -------------------------------------------------------------


def test_tracking_data_matches_hand_computed_weeks(days, first_day):
    # as_of 14, horizon 7 -> window [0, 21): weeks end on days 6, 13, 20.
    # expected_cum(t) = 0.5 / 7 * sum over customers of max(t - d0, 0)
    #   t=6:  0.5/7 * (6 + 6 + 4 + 0)   = 8/7
    #   t=13: 0.5/7 * (13 + 13 + 11 + 5) = 3
    #   t=20: 0.5/7 * (20 + 20 + 18 + 12) = 5
    out = plots.tracking_data(
        days, first_day, LinearModel(), as_of_day=14, horizon_days=7, time_unit_days=7.0
    )
    assert list(out.columns) == ["week", "actual", "expected", "actual_cum", "expected_cum"]
    np.testing.assert_allclose(out["week"], [1.0, 2.0, 3.0])
    assert out["actual"].tolist() == [1, 1, 1]
    assert out["actual_cum"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(out["expected_cum"], [8 / 7, 3.0, 5.0])
    np.testing.assert_allclose(out["expected"], [8 / 7, 13 / 7, 2.0])


def test_tracking_data_groups_customers_by_birth_day(days, first_day):
    model = LinearModel()
    plots.tracking_data(days, first_day, model, as_of_day=14, horizon_days=7, time_unit_days=7.0)
    # one vectorised call, on the positive (week, birth day) cells only: 3 birth days, c unborn in
    # week 0
    assert len(model.calls) == 1
    assert model.calls[0].size == 3 * 3 - 1
    assert (model.calls[0] > 0).all()


def test_tracking_data_partial_last_week_and_time_unit(days, first_day):
    # window [0, 19): weeks end on days 6, 13, 18; unit 1 day -> E = 0.5 * days elapsed
    out = plots.tracking_data(
        days, first_day, LinearModel(), as_of_day=14, horizon_days=5, time_unit_days=1.0
    )
    np.testing.assert_allclose(out["week"], [1.0, 2.0, 19 / 7])
    assert out["actual"].tolist() == [1, 1, 1]
    np.testing.assert_allclose(out["expected_cum"][2], 0.5 * (18 + 18 + 16 + 10))


def test_tracking_data_bgnbd_equals_sum_of_per_customer_expectations(days, first_day, bgnbd):
    out = plots.tracking_data(
        days, first_day, bgnbd, as_of_day=14, horizon_days=7, time_unit_days=7.0
    )
    by_hand = sum(
        float(bgnbd.expected_number_of_purchases_up_to_time((20 - d0) / 7.0)) for d0 in first_day
    )
    np.testing.assert_allclose(out["expected_cum"].iloc[-1], by_hand)
    assert (np.diff(out["expected_cum"]) > 0).all()


def test_tracking_data_does_not_modify_inputs(days, first_day):
    before_days, before_first = days.copy(), first_day.copy()
    plots.tracking_data(
        days, first_day, LinearModel(), as_of_day=14, horizon_days=7, time_unit_days=7.0
    )
    pd.testing.assert_frame_equal(days, before_days)
    pd.testing.assert_series_equal(first_day, before_first)


def test_tracking_data_rejects_bad_input(days, first_day):
    with pytest.raises(ValueError, match="horizon_days and time_unit_days must be > 0"):
        plots.tracking_data(days, first_day, LinearModel(), 14, 0, 7.0)
    with pytest.raises(ValueError, match="first_day is empty"):
        plots.tracking_data(days, first_day.iloc[:0], LinearModel(), 14, 7, 7.0)


def test_tracking_plot_has_two_labelled_panels_and_calibration_line(days, first_day, bgnbd):
    fig = plots.tracking_plot(
        days, first_day, bgnbd, as_of_day=14, horizon_days=7, time_unit_days=7.0
    )
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_title() and ax.get_ylabel()
        assert len(ax.get_lines()) == 3
        assert [2.0, 2.0] in [
            list(np.asarray(line.get_xdata(), dtype=float)) for line in ax.get_lines()
        ]
    assert fig.axes[1].get_xlabel() == "weeks since first purchase in data"
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [1, 1, 1])


# --- frequency / recency --------------------------------------------------


def test_frequency_recency_data_grid_matches_model_cell_by_cell(bgnbd):
    out = plots.frequency_recency_data(bgnbd, max_frequency=3, max_recency=5.5, kind="p_alive")
    assert out.shape == (6, 4)
    assert out.index.tolist() == [0, 1, 2, 3, 4, 5]
    assert out.columns.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(out[0], 1.0)
    for f, r in [(1, 0), (2, 3), (3, 5)]:
        np.testing.assert_allclose(out.loc[r, f], bgnbd.conditional_probability_alive(f, r, 5.5)[0])
    assert (np.diff(out[2].to_numpy()) > 0).all()  # more recent -> more likely alive

    exp = plots.frequency_recency_data(bgnbd, max_frequency=3, max_recency=5.5, kind="expected")
    np.testing.assert_allclose(
        exp.loc[4, 2], bgnbd.conditional_expected_number_of_purchases_up_to_time(1, 2, 4, 5.5)
    )


def test_frequency_recency_data_uses_max_recency_as_T():
    out = plots.frequency_recency_data(LinearModel(), max_frequency=1, max_recency=4.0)
    np.testing.assert_allclose(out[1], [0, 0.25, 0.5, 0.75, 1.0])


def test_frequency_recency_data_rejects_unknown_kind(bgnbd):
    with pytest.raises(ValueError, match="kind must be one of"):
        plots.frequency_recency_data(bgnbd, 3, 5, kind="clv")


@pytest.mark.parametrize(
    ("unit", "label"), [(7.0, "recency (weeks)"), (30.0, "recency (units of 30 days)")]
)
def test_frequency_recency_matrix_labels_units(bgnbd, unit, label):
    fig = plots.frequency_recency_matrix(bgnbd, 4, 6, kind="expected", time_unit_days=unit)
    assert len(fig.axes) == 2  # heatmap and colour bar
    ax = fig.axes[0]
    assert ax.get_ylabel() == label
    assert ax.get_xlabel() and ax.get_title()
    np.testing.assert_allclose(
        ax.get_images()[0].get_array(),
        plots.frequency_recency_data(bgnbd, 4, 6, "expected").to_numpy(),
    )


# --- conditional expectations --------------------------------------------


def test_conditional_expectations_data_matches_hand_computed_bins(cal_holdout):
    # predicted = 0.1 * 2 * (f + 1) = [0.2, 0.2, 0.4, 0.8, 2.0]; bins 0, 0, 1, 3+, 3+
    out = plots.conditional_expectations_data(cal_holdout, LinearModel(), max_frequency=3)
    assert out["frequency"].tolist() == [0, 1, 3]
    assert out["label"].tolist() == ["0", "1", "3+"]
    assert out["n_customers"].tolist() == [2, 1, 2]
    np.testing.assert_allclose(out["actual"], [0.5, 2.0, 5.0])
    np.testing.assert_allclose(out["predicted"], [0.2, 0.4, 1.4])


def test_conditional_expectations_data_bgnbd_is_mean_of_row_predictions(cal_holdout, bgnbd):
    out = plots.conditional_expectations_data(cal_holdout, bgnbd)
    assert out["label"].tolist() == ["0", "1", "3", "7+"]
    rows = cal_holdout.iloc[:2]
    by_hand = np.mean(
        [
            bgnbd.conditional_expected_number_of_purchases_up_to_time(d, f, r, T)
            for d, f, r, T in zip(
                rows["duration_holdout"], rows["frequency"], rows["recency"], rows["T"]
            )
        ]
    )
    np.testing.assert_allclose(out["predicted"].iloc[0], by_hand)


def test_conditional_expectations_data_names_missing_columns(cal_holdout, bgnbd):
    with pytest.raises(ValueError, match=r"missing columns \['duration_holdout'\]"):
        plots.conditional_expectations_data(cal_holdout.drop(columns="duration_holdout"), bgnbd)


def test_conditional_expectations_plot_bars_and_labels(cal_holdout):
    fig = plots.conditional_expectations_plot(cal_holdout, LinearModel(), max_frequency=3)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "3+"]
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [0.5, 2.0, 5.0, 0.2, 0.4, 1.4])


# --- rendering and import hygiene ----------------------------------------


def test_figure_to_png_bytes_renders_png(days, first_day, bgnbd):
    fig = plots.tracking_plot(days, first_day, bgnbd, 14, 7, 7.0)
    png = png_bytes(fig)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 1000


def test_import_does_not_load_pyplot():
    src = str(Path(plots.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": src}
    code = (
        "import sys, nextbest.plots.clv, nextbest.plots.classifier, nextbest.plots.evaluation; "
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
