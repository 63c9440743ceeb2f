"""Figures for the churn and offer classifiers: calibration, lift, feature importance.

Same rules as the rest of :mod:`nextbest.plots`: ``matplotlib.figure.Figure`` only,
returned, never shown; the plotted numbers come from the tables in
:mod:`nextbest.models.evaluation`.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure


def calibration_plot(
    tables: dict[str, pd.DataFrame], title: str = "Calibration on the test fold"
) -> Figure:
    """Observed rate vs mean prediction per bin, one line per model (from ``calibration_table``)."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, t in tables.items():
        ax.plot(t["mean_predicted"], t["observed_rate"], marker="o", label=name)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(title)
    ax.legend()
    return fig


def lift_plot(
    tables: dict[str, pd.DataFrame], title: str = "Lift by decile (1 = highest score)"
) -> Figure:
    """Lift per score decile, one bar group per model (from ``lift_table``)."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    width = 0.8 / max(len(tables), 1)
    for i, (name, t) in enumerate(tables.items()):
        ax.bar(
            t["decile"] + (i - (len(tables) - 1) / 2) * width, t["lift"], width=width, label=name
        )
    ax.axhline(1.0, color="grey", linestyle=":")
    ax.set_xlabel("decile")
    ax.set_ylabel("lift (rate / base rate)")
    ax.set_title(title)
    ax.legend()
    return fig


def importance_plot(
    importance: pd.DataFrame, top: int = 20, title: str = "Feature importance (gain)"
) -> Figure:
    """Horizontal bars of the ``top`` features by gain."""
    t = importance.head(top).iloc[::-1]
    fig = Figure(figsize=(6, max(3, 0.3 * len(t))))
    ax = fig.subplots()
    ax.barh(t["feature"], t["gain"])
    ax.set_xlabel("total gain")
    ax.set_title(title)
    return fig
