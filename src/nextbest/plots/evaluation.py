"""Backtest figures: capture curves, deciles, gains, grouped bars, rates by decile.

Same rules as the rest of :mod:`nextbest.plots`: a new
:class:`matplotlib.figure.Figure` per call, no pyplot, the plotted numbers
come from tables computed elsewhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def capture_curve(actual: np.ndarray, score: np.ndarray, points: int = 101) -> pd.DataFrame:
    """Share of total actual value held by the top ``x`` share of customers ranked by ``score``.

    Ties in ``score`` share their group's value evenly (as in
    :func:`nextbest.models.evaluation.normalized_gini`).
    """
    actual = np.asarray(actual, dtype="float64")
    score = np.asarray(score, dtype="float64")
    order = np.argsort(-score, kind="stable")
    s, a = score[order], actual[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if len(s) else np.array([], dtype=int)
    sizes = np.diff(np.r_[starts, len(s)])
    a = np.repeat(np.add.reduceat(a, starts) / sizes, sizes) if len(s) else a
    total = a.sum()
    cum = np.r_[0.0, np.cumsum(a) / total] if total > 0 else np.zeros(len(a) + 1)
    x = np.linspace(0, 1, points)
    return pd.DataFrame(
        {"share_of_customers": x, "share_of_value": np.interp(x, np.linspace(0, 1, len(cum)), cum)}
    )


def capture_plot(curves: dict[str, pd.DataFrame], what: str = "horizon revenue") -> Figure:
    """Cumulative share of value captured by the top x% of customers, one line per ranking."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random order")
    for name, c in curves.items():
        style = "--" if name == "perfect" else "-"
        ax.plot(c["share_of_customers"], c["share_of_value"], linestyle=style, label=name)
    ax.set_xlabel("share of customers, highest predicted first")
    ax.set_ylabel(f"share of {what}")
    ax.set_title(f"Who brings the {what}: ranked by prediction")
    ax.legend(loc="lower right")
    return fig


def decile_plot(tables: dict[str, pd.DataFrame], unit: str = "$") -> Figure:
    """Mean predicted vs actual per predicted-value decile, one panel per predictor."""
    fig = Figure(figsize=(5 * len(tables), 4))
    axes = np.atleast_1d(fig.subplots(1, len(tables), sharey=True))
    for ax, (name, t) in zip(axes, tables.items()):
        x = t["decile"].to_numpy()
        ax.bar(x - 0.2, t["actual_mean"], width=0.4, label="actual")
        ax.bar(x + 0.2, t["predicted_mean"], width=0.4, label="predicted")
        ax.set_xticks(x)
        ax.set_xlabel("decile of predicted value (1 = highest)")
        ax.set_title(name)
        ax.legend(loc="upper right")
    axes[0].set_ylabel(f"mean per customer ({unit})")
    return fig


def gain_plot(tables: dict[str, pd.DataFrame], title: str = "Cumulative gain") -> Figure:
    """Cumulative share of positives in the top deciles (from ``lift_table``), one line per
    model."""
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    ax.plot([0, 10], [0, 1], color="grey", linestyle=":", label="random")
    for name, t in tables.items():
        ax.plot(np.r_[0, t["decile"]], np.r_[0, t["cumulative_gain"]], marker="o", label=name)
    ax.set_xlabel("deciles contacted (1 = highest score first)")
    ax.set_ylabel("share of all positives found")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return fig


def grouped_bars(
    table: pd.DataFrame,
    index: str,
    columns: list[str],
    title: str,
    ylabel: str,
    fmt: str = "{:.2f}",
    labels: list[str] | None = None,
) -> Figure:
    """Grouped bars: one group per value of ``columns`` (shown as ``labels``), one bar per row of
    ``table``."""
    fig = Figure(figsize=(max(5.5, 1.8 * len(columns) + 2), 4))
    ax = fig.subplots()
    n = len(table)
    width = 0.8 / max(n, 1)
    x = np.arange(len(columns))
    for i, row in enumerate(table.itertuples(index=False)):
        values = [getattr(row, c) for c in columns]
        bars = ax.bar(
            x + (i - (n - 1) / 2) * width, values, width=width, label=str(getattr(row, index))
        )
        ax.bar_label(
            bars, labels=[fmt.format(v) if np.isfinite(v) else "" for v in values], fontsize=7
        )
    ax.set_xticks(x, labels or columns)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best")
    return fig


def rate_by_decile_plot(tables: dict[str, pd.DataFrame], title: str, ylabel: str) -> Figure:
    """Observed rate per score decile (``lift_table`` rows), one bar group per ranking."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    width = 0.8 / max(len(tables), 1)
    for i, (name, t) in enumerate(tables.items()):
        ax.bar(
            t["decile"] + (i - (len(tables) - 1) / 2) * width, t["rate"], width=width, label=name
        )
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("decile of predicted propensity (1 = highest)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best")
    return fig
