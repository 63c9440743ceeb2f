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

Percentile intervals at 95% from :data:`N_DRAWS` draws with a fixed seed, so
the same evaluation prints the same intervals. They are about the customers
only: the models are not refitted on each draw, and a second period (another
``--as-of``) can differ by more than the interval, since seasons differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

N_DRAWS = 200
LEVEL = 0.95
SEED = 20_251_201

Stat = Callable[[np.ndarray], tuple[float, float]]
"""Rows (indices into the customers, with repeats) -> (model value, baseline value) on them."""


@dataclass(frozen=True)
class Interval:
    """Bootstrap intervals of a score's value and of its gain over the best baseline."""

    value: tuple[float, float]
    gain: tuple[float, float]
    level: float = LEVEL
    draws: int = N_DRAWS

    def as_dict(self) -> dict:
        return {
            "level": self.level,
            "draws": self.draws,
            "model": [_clean(v) for v in self.value],
            "gain": [_clean(v) for v in self.gain],
        }


def goodness(values: np.ndarray, better: str) -> np.ndarray:
    """Values turned so that larger is better (``higher``, ``lower``, ``closer_to_zero``)."""
    values = np.asarray(values, dtype="float64")
    if better == "higher":
        return values
    return -values if better == "lower" else -np.abs(values)


def paired_interval(
    n: int,
    stat: Stat,
    better: str,
    draws: int = N_DRAWS,
    level: float = LEVEL,
    seed: int = SEED,
) -> Interval | None:
    """Percentile intervals of the model's value and of its gain over the baseline.

    ``stat`` measures both on the same resampled rows; ``n`` is the number of customers. ``None``
    when fewer than 2 customers or fewer than half the draws give finite values (a measure
    undefined on most draws has no honest interval).
    """
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    got = np.array([stat(rng.integers(0, n, n)) for _ in range(draws)], dtype="float64")
    gain = goodness(got[:, 0], better) - goodness(got[:, 1], better)
    ok_value, ok_gain = np.isfinite(got[:, 0]), np.isfinite(gain)
    if ok_value.sum() < draws / 2 or ok_gain.sum() < draws / 2:
        return None
    q = [50 * (1 - level), 50 * (1 + level)]
    value = np.percentile(got[ok_value, 0], q)
    g = np.percentile(gain[ok_gain], q)
    return Interval((float(value[0]), float(value[1])), (float(g[0]), float(g[1])), level, draws)


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


def cluster_rows(codes: np.ndarray) -> tuple[int, Callable[[np.ndarray], np.ndarray]]:
    """For rows that come in groups (one customer's several targets): the number of groups, and
    a map from drawn groups to all their rows, so that a bootstrap draws customers, not rows."""
    codes = np.asarray(codes, dtype="int64")
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))

    def rows(groups: np.ndarray) -> np.ndarray:
        lengths = counts[groups]
        first = np.repeat(starts[groups] - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        return order[first + np.arange(lengths.sum())]

    return len(counts), rows


def gain_text(interval: Interval | None, gain: float, fmt: str, compact: bool = False) -> str:
    """``"gain +2.5 pts (95% interval +1.2 pts to +3.8 pts)"`` in the score's own units, or with
    ``compact`` ``"+2.5 pts [+1.2, +3.8]"``; ``""`` without an interval."""
    if interval is None or not np.isfinite(gain):
        return ""
    lo, hi = interval.gain
    if compact:
        bounds = (signed(v, fmt).removesuffix(" pts") for v in (lo, hi))
        return f"{signed(gain, fmt)} [{', '.join(bounds)}]"
    return (
        f"gain {signed(gain, fmt)} ({interval.level:.0%} interval {signed(lo, fmt)} to "
        f"{signed(hi, fmt)})"
    )


def signed(value: float, fmt: str) -> str:
    """A difference in the score's units with its sign; percentages become percentage points."""
    if "%" in fmt:
        return f"{100 * value:+.1f} pts"
    text = fmt.replace("{:", "{:+", 1) if "{:+" not in fmt else fmt
    try:
        return text.format(value).replace("+-", "-")
    except (ValueError, TypeError):
        return f"{value:+.3g}"


def _clean(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None
