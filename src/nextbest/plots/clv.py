"""Diagnostic figures for a fitted buy-till-you-die CLV model.

Each plot has a pure ``*_data`` function computing the plotted numbers and a
plot function drawing them on a new :class:`matplotlib.figure.Figure` (no
pyplot, no global state; figures are returned, never shown or saved).
``model`` is a fitted lifetimes fitter (e.g. ``BetaGeoFitter``), in model
time units of ``time_unit_days`` days. Reference: Fader, Hardie & Lee (2005),
"Counting Your Customers the Easy Way", Marketing Science 24(2): eq. (9)
E[X(t)] and eq. (10) E[Y(t) | x, t_x, T].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_KINDS = ("p_alive", "expected")
_CAL_HOLDOUT_COLS = ("frequency", "recency", "T", "frequency_holdout", "duration_holdout")


def _unit_label(time_unit_days: float) -> str:
    return "weeks" if time_unit_days == 7 else f"units of {time_unit_days:g} days"


def tracking_data(
    days: pd.DataFrame,
    first_day: pd.Series,
    model,
    as_of_day: int,
    horizon_days: int,
    time_unit_days: float,
) -> pd.DataFrame:
    """Weekly repeat purchases, actual vs model-expected, for a cohort.

    Parameters
    ----------
    days : pandas.DataFrame
        One row per purchase-day: ``customer_id`` (str), ``day`` (int, days
        since 1970-01-01).
    first_day : pandas.Series
        First purchase day (int) indexed by ``customer_id``: the cohort to
        track, normally the customers first seen before ``as_of_day``.
        Repeat purchases are their purchase-days after ``first_day``; rows of
        other customers are ignored.
    model : lifetimes fitter
        ``expected_number_of_purchases_up_to_time`` (eq. 9) takes arrays.
    as_of_day : int
        First day not in the calibration window (days since epoch).
    horizon_days : int
        Holdout length in days; the window ends at ``as_of_day + horizon_days``
        (exclusive).
    time_unit_days : float
        Length of one model time unit in days.

    Returns
    -------
    pandas.DataFrame
        One row per week since ``first_day.min()`` (the last week may be
        partial): ``week`` (end of the week, in weeks since the first day),
        ``actual`` and ``expected`` repeat purchases in that week, and their
        cumulative sums ``actual_cum`` and ``expected_cum``. A customer born on
        day ``d0`` contributes ``E[X((t - d0) / time_unit_days)]`` at the last
        day ``t`` of each week with ``t > d0``, matching ``T`` of
        :func:`nextbest.features.rfm.rfm_summary`.

    Raises
    ------
    ValueError
        On an empty cohort, a non-positive length or an empty window.
    """
    if horizon_days <= 0 or time_unit_days <= 0:
        raise ValueError(
            f"horizon_days and time_unit_days must be > 0, got {horizon_days}, {time_unit_days}"
        )
    if first_day.empty:
        raise ValueError("first_day is empty: no customers to track")
    start = int(first_day.min())
    end = int(as_of_day) + int(horizon_days)
    if end <= start:
        raise ValueError(f"window end day {end} is not after the first day {start}")
    n_weeks = -(-(end - start) // 7)
    bounds = np.minimum(start + 7 * np.arange(1, n_weeks + 1), end)
    last_day = bounds - 1

    born = days["customer_id"].map(first_day).to_numpy(dtype="float64")
    d = days["day"].to_numpy(dtype="int64")
    repeat = (d > born) & (d < end)
    actual = np.bincount((d[repeat] - start) // 7, minlength=n_weeks)

    births, counts = np.unique(first_day.to_numpy(dtype="int64"), return_counts=True)
    elapsed = (last_day[:, None] - births[None, :]) / time_unit_days
    born_yet = elapsed > 0
    per_customer = np.zeros_like(elapsed)
    per_customer[born_yet] = np.asarray(
        model.expected_number_of_purchases_up_to_time(elapsed[born_yet]), dtype="float64"
    )
    expected_cum = per_customer @ counts
    return pd.DataFrame(
        {
            "week": (bounds - start) / 7.0,
            "actual": actual.astype("int64"),
            "expected": np.diff(expected_cum, prepend=0.0),
            "actual_cum": np.cumsum(actual).astype("int64"),
            "expected_cum": expected_cum,
        }
    )


def tracking_plot(
    days: pd.DataFrame,
    first_day: pd.Series,
    model,
    as_of_day: int,
    horizon_days: int,
    time_unit_days: float,
) -> Figure:
    """Tracking plot: weekly and cumulative repeat purchases, actual vs model.

    Parameters are those of :func:`tracking_data`. Returns a Figure with two
    axes (incremental above, cumulative below) and a vertical line at the end
    of calibration.
    """
    data = tracking_data(days, first_day, model, as_of_day, horizon_days, time_unit_days)
    cal_end = (int(as_of_day) - int(first_day.min())) / 7.0
    fig = Figure(figsize=(9, 7))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for ax, suffix, title in (
        (top, "", "Weekly repeat purchases"),
        (bottom, "_cum", "Cumulative repeat purchases"),
    ):
        ax.plot(data["week"], data["actual" + suffix], label="actual")
        ax.plot(data["week"], data["expected" + suffix], linestyle="--", label="model")
        ax.axvline(cal_end, color="grey", linestyle=":", label="end of calibration")
        ax.set_title(title)
        ax.set_ylabel("repeat purchases")
        ax.legend(loc="best")
    bottom.set_xlabel("weeks since first purchase in data")
    return fig


def frequency_recency_data(
    model, max_frequency: int, max_recency: float, kind: str = "p_alive"
) -> pd.DataFrame:
    """P(alive) or expected purchases in the next unit over a frequency x recency grid.

    Parameters
    ----------
    model : lifetimes fitter
        Fitted model.
    max_frequency : int
        Frequency (repeat purchases) runs over ``0..max_frequency``.
    max_recency : float
        Customer age ``T`` in model units; recency runs over
        ``0, 1, ..., floor(max_recency)`` so every cell has recency <= T.
    kind : {"p_alive", "expected"}
        ``conditional_probability_alive`` or
        ``conditional_expected_number_of_purchases_up_to_time(1, ...)`` (eq. 10).

    Returns
    -------
    pandas.DataFrame
        Index ``recency``, columns ``frequency``.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if max_frequency < 0 or max_recency <= 0:
        raise ValueError(
            f"need max_frequency >= 0 and max_recency > 0, got {max_frequency}, {max_recency}"
        )
    freq = np.arange(int(max_frequency) + 1, dtype="float64")
    rec = np.arange(int(np.floor(max_recency)) + 1, dtype="float64")
    f, r = np.meshgrid(freq, rec)
    # lifetimes' Pareto/NBD formulas only accept 1-D arrays: evaluate flat, then reshape.
    T = np.full(f.size, float(max_recency))
    with np.errstate(all="ignore"):
        if kind == "p_alive":
            z = model.conditional_probability_alive(f.ravel(), r.ravel(), T)
        else:
            z = model.conditional_expected_number_of_purchases_up_to_time(
                1.0, f.ravel(), r.ravel(), T
            )
    z = np.asarray(z, dtype="float64").reshape(f.shape)
    columns = pd.Index(freq.astype("int64"), name="frequency")
    return pd.DataFrame(z, index=pd.Index(rec, name="recency"), columns=columns)


def frequency_recency_matrix(
    model,
    max_frequency: int,
    max_recency: float,
    kind: str = "p_alive",
    time_unit_days: float = 7.0,
) -> Figure:
    """Heatmap of :func:`frequency_recency_data` with a colour bar.

    Parameters are those of :func:`frequency_recency_data`, plus
    ``time_unit_days`` (length of one model unit in days) for the labels.
    Returns a Figure with two axes (heatmap, colour bar).
    """
    data = frequency_recency_data(model, max_frequency, max_recency, kind)
    unit = _unit_label(time_unit_days)
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    image = ax.imshow(data.to_numpy(), origin="lower", aspect="auto", interpolation="none")
    if kind == "p_alive":
        title, bar = "Probability alive", "P(alive)"
    else:
        title, bar = "Expected purchases in the next unit", "expected purchases"
    ax.set_title(f"{title} by frequency and recency (T = {max_recency:g} {unit})")
    ax.set_xlabel("frequency (repeat purchases)")
    ax.set_ylabel(f"recency ({unit})")
    fig.colorbar(image, ax=ax, label=bar)
    return fig


def conditional_expectations_data(
    cal_holdout: pd.DataFrame, model, max_frequency: int = 7
) -> pd.DataFrame:
    """Mean actual vs predicted holdout purchases by calibration frequency.

    Parameters
    ----------
    cal_holdout : pandas.DataFrame
        ``frequency``, ``recency``, ``T`` (calibration, model units),
        ``frequency_holdout`` and ``duration_holdout`` (model units), as from
        :func:`nextbest.features.rfm.calibration_holdout`.
    model : lifetimes fitter
        Rows are predicted with ``conditional_expected_number_of_purchases_up_to_time``.
    max_frequency : int
        Frequencies at or above this are pooled into the last bin (e.g. ``"7+"``).

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin, sorted: ``frequency`` (bin, int),
        ``label`` (str), ``n_customers``, ``actual`` and ``predicted`` (means).
    """
    missing = [c for c in _CAL_HOLDOUT_COLS if c not in cal_holdout.columns]
    if missing:
        raise ValueError(f"cal_holdout is missing columns {missing}")
    if cal_holdout.empty:
        raise ValueError("cal_holdout is empty")
    args = (
        cal_holdout[c].to_numpy(dtype="float64")
        for c in ("duration_holdout", "frequency", "recency", "T")
    )
    predicted = model.conditional_expected_number_of_purchases_up_to_time(*args)
    frame = pd.DataFrame(
        {
            "frequency": np.minimum(cal_holdout["frequency"].to_numpy(), max_frequency).astype(
                "int64"
            ),
            "actual": cal_holdout["frequency_holdout"].to_numpy(dtype="float64"),
            "predicted": np.asarray(predicted, dtype="float64").reshape(-1),
        }
    )
    out = (
        frame.groupby("frequency", sort=True)
        .agg(
            n_customers=("actual", "size"),
            actual=("actual", "mean"),
            predicted=("predicted", "mean"),
        )
        .reset_index()
    )
    labels = out["frequency"].astype(str)
    out.insert(1, "label", labels.where(out["frequency"] < max_frequency, f"{max_frequency}+"))
    return out


def conditional_expectations_plot(
    cal_holdout: pd.DataFrame, model, max_frequency: int = 7
) -> Figure:
    """Bars of mean actual vs predicted holdout purchases by calibration frequency.

    Parameters are those of :func:`conditional_expectations_data`. Returns a
    Figure with one axes.
    """
    data = conditional_expectations_data(cal_holdout, model, max_frequency)
    x = np.arange(len(data))
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    ax.bar(x - 0.2, data["actual"], width=0.4, label="actual")
    ax.bar(x + 0.2, data["predicted"], width=0.4, label="model")
    ax.set_xticks(x, data["label"])
    ax.set_title("Conditional expectations by calibration frequency")
    ax.set_xlabel("calibration frequency (repeat purchases)")
    ax.set_ylabel("mean holdout purchases per customer")
    ax.legend(loc="best")
    return fig
