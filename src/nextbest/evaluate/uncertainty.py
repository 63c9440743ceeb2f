"""How sure a backtest is: paired bootstrap intervals over customers.

A backtest measures one period on one sample of customers. Drawing the
customers again with replacement, and measuring the model and its best
baseline on the *same* draw each time, shows how far each figure would move
on another sample of the same size. Two intervals come out of it:

* the model's value (e.g. hit@3 0.879, 95% interval 0.866 to 0.891);
* the model's **gain** over the best baseline, signed so that positive means
  better (higher minus baseline, baseline minus lower, or ``|baseline| -
  |model|`` for signed errors). A gain interval that includes 0 means this
  backtest cannot tell the model from the baseline.

Percentile intervals at 95% from 200 draws with a fixed seed, so the same
evaluation prints the same intervals (the resampling itself,
:func:`~nextbest.models.evaluation.paired_interval`, is shared with the
training gates' notes). They are about the customers
only: the models are not refitted on each draw, and a second period (another
``--as-of``) can differ by more than the interval, since seasons differ.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nextbest.models.evaluation import Interval, paired_interval


def add_interval(score, n: int, measure: Callable[[np.ndarray, str | None], float]) -> None:
    """Set ``score.interval`` (a :class:`~nextbest.evaluate.results.Score`) from a paired
    bootstrap over its ``n`` customers.

    ``measure(rows, None)`` is the model's value on those rows, ``measure(rows, name)`` that
    baseline's; only the best baseline (on all customers) is resampled beside the model.
    """
    name, _ = score.best_baseline()
    if name is None:
        return
    score.interval = paired_interval(
        n, lambda rows: (measure(rows, None), measure(rows, name)), score.better
    )


def gain_text(interval: Interval | None, gain: float, fmt: str, compact: bool = False) -> str:
    """``"gain +2.5 pts (95% interval +1.2 pts to +3.8 pts)"`` in the score's own units, or with
    ``compact`` ``"+2.5 pts [+1.2, +3.8]"``; ``""`` without an interval."""
    if interval is None or not np.isfinite(gain):
        return ""
    if compact:
        return compact_gain(gain, interval.gain, fmt)
    lo, hi = interval.gain
    return (
        f"gain {signed(gain, fmt)} ({interval.level:.0%} interval {signed(lo, fmt)} to "
        f"{signed(hi, fmt)})"
    )


def compact_gain(gain: float, bounds, fmt: str) -> str:
    """``"+2.5 pts [+1.2, +3.8]"``: a gain and its interval's bounds, in the score's units."""
    low, high = (signed(v, fmt).removesuffix(" pts") for v in bounds)
    return f"{signed(gain, fmt)} [{low}, {high}]"


def signed(value: float, fmt: str) -> str:
    """A difference in the score's units with its sign; percentages become percentage points."""
    if "%" in fmt:
        return f"{100 * value:+.1f} pts"
    text = fmt.replace("{:", "{:+", 1) if "{:+" not in fmt else fmt
    try:
        return text.format(value).replace("+-", "-")
    except (ValueError, TypeError):
        return f"{value:+.3g}"
