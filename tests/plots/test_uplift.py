"""Impact figures are pure: a new Figure per call with the expected panels, rendered to PNG."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.plots import png
from nextbest.plots import uplift as figures


def _curve(n=20, top=0.02):
    f = np.linspace(0, 1, n)
    return pd.DataFrame({"fraction": f, "gain": top * np.sqrt(f)})


def test_qini_plot_has_one_panel_per_offer_and_a_random_line():
    fig = figures.qini_plot(
        {o: {"uplift model": _curve(), "response model": _curve(top=0.01)} for o in "ABCD"},
        "extra conversions",
    )
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 4 and len(fig.axes) == 6  # a 2 x 3 grid, two panels hidden
    assert [line.get_label() for line in visible[0].lines][:3] == [
        "uplift model",
        "response model",
        "random order",
    ]
    assert png(fig).startswith(b"\x89PNG")


def test_effect_plot_overlay_and_overlap_and_balance_render():
    table = pd.DataFrame(
        {
            "label": ["A", "B"],
            "effect": [0.05, 0.01],
            "ci_low": [0.02, -0.01],
            "ci_high": [0.08, 0.03],
        }
    )
    fig = figures.effect_plot({"effect": table, "placebo": table.iloc[:1]}, "t", "pts", 100)
    assert fig.axes[0].get_legend() is not None
    rng = np.random.default_rng(0)
    fig2 = figures.overlap_plot({"A": (rng.random(50), rng.random(80))}, 0.99)
    balance = pd.DataFrame(
        {"feature": list("xyz"), "smd_before": [0.5, -0.3, 0.1], "smd_after": [0.0, 0.02, -0.01]}
    )
    fig3 = figures.balance_plot(balance)
    for f in (fig, fig2, fig3):
        assert png(f).startswith(b"\x89PNG")
