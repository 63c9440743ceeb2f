"""Figures as pure functions: each returns a new :class:`matplotlib.figure.Figure`.

No pyplot and no global state: figures are returned, never shown or saved
here. :func:`png` is the one way to render one to bytes (reports, MLflow).

* :mod:`.clv` - buy-till-you-die diagnostics (tracking, frequency/recency
  matrices, conditional expectations);
* :mod:`.classifier` - calibration, lift and feature importance of the churn
  and offer models;
* :mod:`.evaluation` - backtest figures (capture curves, deciles, gains);
* :mod:`.uplift` - impact figures (effects with intervals, Qini curves,
  propensity overlap, covariate balance).
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure


def png(fig: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of ``fig`` (tight bounding box, no metadata: the bytes carry no URL or version).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int
        Resolution in dots per inch.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()
