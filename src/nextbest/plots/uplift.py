"""Impact figures: effects with intervals, Qini curves, propensity overlap, covariate balance.

Same rules as the rest of :mod:`nextbest.plots`: a new
:class:`matplotlib.figure.Figure` per call, no pyplot, the plotted numbers
come from tables computed elsewhere (:mod:`nextbest.evaluate.impact`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def effect_plot(
    series: dict[str, pd.DataFrame], title: str, xlabel: str, scale: float = 1.0
) -> Figure:
    """Estimates with intervals, one row per label, one marker series per table.

    Parameters
    ----------
    series : dict of name -> DataFrame
        Each with ``label``, ``effect``, ``ci_low``, ``ci_high`` (e.g. "effect" and
        "placebo (weeks before)"); rows are matched by ``label``, in the first
        table's order.
    title, xlabel : str
    scale : float
        Multiplier of every value (100 shows rates as points).
    """
    first = next(iter(series.values()))
    labels = list(first["label"])
    fig = Figure(figsize=(7, max(2.5, 0.35 * len(labels) * len(series) + 1.2)))
    ax = fig.subplots()
    offsets = np.linspace(-0.2, 0.2, len(series)) if len(series) > 1 else [0.0]
    y = np.arange(len(labels))
    for off, (name, table) in zip(offsets, series.items()):
        t = table.set_index("label").reindex(labels)
        est = t["effect"].to_numpy(dtype="float64") * scale
        low = t["ci_low"].to_numpy(dtype="float64") * scale
        high = t["ci_high"].to_numpy(dtype="float64") * scale
        ax.errorbar(
            est,
            y + off,
            xerr=[est - low, high - est],
            fmt="o",
            capsize=3,
            label=name,
        )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(loc="best", fontsize=8)
    return fig


def qini_plot(curves: dict[str, dict[str, pd.DataFrame]], ylabel: str) -> Figure:
    """Qini curves, one panel per offer, one line per ranking, plus random order.

    Parameters
    ----------
    curves : dict of offer -> (dict of ranking name -> DataFrame)
        Each frame has ``fraction`` (share targeted, 0-1) and ``gain``
        (incremental outcomes per customer of the sample, see
        :class:`nextbest.models.causal.Qini`). Random order is the straight line
        to the last point of the first ranking.
    ylabel : str
    """
    n = max(len(curves), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.6 * cols, 3.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, (ax, (offer, lines)) in enumerate(zip(axes, curves.items())):
        end = None
        for name, c in lines.items():
            ax.plot(c["fraction"], c["gain"], label=name)
            end = c["gain"].iloc[-1] if end is None else end
        ax.plot([0, 1], [0, end or 0.0], color="grey", linestyle=":", label="random order")
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_title(offer, fontsize=10)
        ax.set_xlabel("share of customers targeted, highest score first")
        if i % cols == 0:
            ax.set_ylabel(ylabel)
        ax.legend(loc="best", fontsize=8)
    for ax in axes[len(curves) :]:
        ax.set_visible(False)
    return fig


def overlap_plot(panels: dict[str, tuple[np.ndarray, np.ndarray]], trim: float) -> Figure:
    """Histograms of estimated propensities, treated vs control, one panel per offer.

    Parameters
    ----------
    panels : dict of offer -> (propensities of treated rows, of control rows)
    trim : float
        Rows above this propensity were trimmed; drawn as a dashed line.
    """
    n = max(len(panels), 1)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.6 * cols, 2.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    bins = np.linspace(0, 1, 26)
    for ax, (offer, (et, ec)) in zip(axes, panels.items()):
        ax.hist(ec, bins=bins, density=True, alpha=0.5, label="control")
        ax.hist(et, bins=bins, density=True, alpha=0.5, label="treated")
        ax.axvline(trim, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(offer, fontsize=9)
        ax.set_xlabel("estimated P(treated)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].legend(loc="best", fontsize=7)
    return fig


def balance_plot(table: pd.DataFrame, threshold: float = 0.1, top: int = 20) -> Figure:
    """Absolute standardized mean differences before and after weighting (a "love plot").

    Parameters
    ----------
    table : DataFrame
        ``feature``, ``smd_before``, ``smd_after``; the ``top`` features with the
        largest ``|smd_before|`` are drawn.
    threshold : float
        The usual bar of good balance, drawn as a dashed line.
    """
    t = table.assign(_b=table["smd_before"].astype("float64").abs()).nlargest(top, "_b")
    t = t.iloc[::-1]
    fig = Figure(figsize=(6.5, max(2.5, 0.28 * len(t) + 1.2)))
    ax = fig.subplots()
    y = np.arange(len(t))
    ax.scatter(t["smd_before"].abs(), y, marker="o", label="before weighting")
    ax.scatter(t["smd_after"].abs(), y, marker="x", label="after weighting")
    ax.axvline(threshold, color="grey", linestyle="--", linewidth=0.8)
    ax.set_yticks(y, t["feature"], fontsize=7)
    ax.set_xlabel("|standardized mean difference| (treated vs control)")
    ax.set_title("Covariate balance")
    ax.legend(loc="lower right", fontsize=8)
    return fig
