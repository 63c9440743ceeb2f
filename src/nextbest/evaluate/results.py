"""What an evaluation produces: scores beside their baselines, tables, charts, verdicts.

A :class:`Section` (CLV, churn, next best offer, decision) holds
:class:`Score` rows - one number for the model with the same number for each
baseline - plus tables and :class:`Chart` figures. Verdicts and the winner of
a ``--compare`` are decided here, from each score's direction, so the JSON,
the HTML report and the terminal all say the same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from nextbest.evaluate.uncertainty import gain_text
from nextbest.models.evaluation import Interval, goodness

HIGHER, LOWER, ZERO = "higher", "lower", "closer_to_zero"
# Differences under 1% (relative) are called a tie: a backtest on one period cannot
# separate them, and a marketer should not read 0.805 vs 0.804 as a win.
REL_TOL = 0.01

# The order of the report's sections.
SECTION_ORDER = ("clv", "churn", "nbo", "campaigns", "decision", "impact")


@dataclass
class Score:
    """One metric: the model's value and each baseline's value, and which way is better.

    ``better`` is ``"higher"``, ``"lower"`` or ``"closer_to_zero"`` (signed
    errors); ``headline`` scores go in the summary table. ``references`` are
    shown beside the baselines but never "beaten" (e.g. perfect hindsight). ``interval``, when
    measured, holds bootstrap intervals of the value and of the gain over the best baseline
    (:mod:`nextbest.evaluate.uncertainty`).
    """

    key: str
    label: str
    value: float
    baselines: dict[str, float] = field(default_factory=dict)
    better: str = HIGHER
    headline: bool = False
    fmt: str = "{:.3f}"
    references: dict[str, float] = field(default_factory=dict)
    interval: Interval | None = None

    def best_baseline(self) -> tuple[str | None, float]:
        """Name and value of the strongest baseline (``(None, nan)`` if there is none)."""
        ok = {k: v for k, v in self.baselines.items() if _finite(v)}
        if not ok:
            return None, float("nan")
        name = max(ok, key=lambda k: _goodness(ok[k], self.better))
        return name, ok[name]

    def verdict(self) -> str:
        """``"better"``, ``"worse"``, ``"tie"`` against the best baseline, or ``"n/a"``."""
        _, base = self.best_baseline()
        return compare_values(self.value, base, self.better)

    def gain(self) -> float:
        """How much better than the best baseline (positive = better; NaN without one): higher
        minus baseline, baseline minus lower, or ``|baseline| - |model|`` for signed errors."""
        _, base = self.best_baseline()
        if not (_finite(self.value) and _finite(base)):
            return float("nan")
        return _goodness(self.value, self.better) - _goodness(base, self.better)

    def gain_is_clear(self) -> bool | None:
        """Does the gain's interval exclude 0 (``None`` when no interval was measured)?"""
        if self.interval is None:
            return None
        low, high = self.interval.gain
        return bool(low > 0 or high < 0)

    def gain_text(self, compact: bool = False) -> str:
        """The gain and its interval in words, or ``compact`` (``""`` when no interval was
        measured)."""
        return gain_text(self.interval, self.gain(), self.fmt, compact)

    def as_dict(self) -> dict:
        name, base = self.best_baseline()
        out = {
            "label": self.label,
            "model": _clean(self.value),
            "baselines": {k: _clean(v) for k, v in self.baselines.items()},
            "references": {k: _clean(v) for k, v in self.references.items()},
            "better": self.better,
            "best_baseline": name,
            "verdict": self.verdict(),
        }
        if self.interval is not None:
            out["gain_vs_best_baseline"] = _clean(self.gain())
            out["interval"] = self.interval.as_dict()
            out["gain_is_clear"] = self.gain_is_clear()
        return out


@dataclass
class Chart:
    """A rendered figure: PNG bytes with a title and a one-line plain-language explanation."""

    name: str
    title: str
    explain: str
    png: bytes


@dataclass
class Section:
    """One area of the evaluation for one set of models."""

    name: str
    title: str
    intro: str
    scores: list[Score] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = "ok"
    # Tables shown in report.html as they are (caption -> text cells), after the notes; the
    # numbers behind them are in ``tables`` (metrics.json).
    displays: dict[str, pd.DataFrame] = field(default_factory=dict)

    @classmethod
    def skipped(cls, name: str, title: str, reason: str) -> Section:
        return cls(name=name, title=title, intro="", notes=[reason], status="skipped")

    def score(self, key: str) -> Score | None:
        return next((s for s in self.scores if s.key == key), None)

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "notes": list(self.notes),
            "metrics": {s.key: s.as_dict() for s in self.scores},
            "tables": {k: _records(v) for k, v in self.tables.items()},
        }


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _goodness(v: float, better: str) -> float:
    return float(goodness(v, better))


def compare_values(a: float, b: float, better: str) -> str:
    """Is ``a`` better than ``b`` in direction ``better``? ``"better"``, ``"worse"``, ``"tie"``,
    ``"n/a"``.

    Values within :data:`REL_TOL` of each other (relative to the larger magnitude) tie.
    """
    if not (_finite(a) and _finite(b)):
        return "n/a"
    ga, gb = _goodness(a, better), _goodness(b, better)
    if abs(ga - gb) <= REL_TOL * max(abs(ga), abs(gb)):
        return "tie"
    return "better" if ga > gb else "worse"


def winner(values: dict[str, float], better: str) -> str | None:
    """Label of the best value (``"tie"`` when the best are equal, ``None`` when none is finite)."""
    ok = {k: v for k, v in values.items() if _finite(v)}
    if not ok:
        return None
    ranked = sorted(ok, key=lambda k: _goodness(ok[k], better), reverse=True)
    if len(ranked) > 1 and compare_values(ok[ranked[0]], ok[ranked[1]], better) == "tie":
        return "tie"
    return ranked[0]


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({str(k): _clean(v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    return out


@dataclass
class ModelRun:
    """The sections measured for one set of models (one ``--compare`` side)."""

    label: str
    versions: dict[str, str]
    sections: dict[str, Section]
    notes: list[str] = field(default_factory=list)


def comparison(runs: list[ModelRun]) -> list[dict]:
    """Per score present in every run: each run's value and the winner."""
    if len(runs) < 2:
        return []
    rows = []
    first = runs[0]
    for sname, section in first.sections.items():
        for s in section.scores:
            values = {}
            for run in runs:
                other = run.sections.get(sname)
                o = other.score(s.key) if other else None
                values[run.label] = o.value if o else float("nan")
            rows.append(
                {
                    "section": sname,
                    "metric": s.key,
                    "label": s.label,
                    "better": s.better,
                    "headline": s.headline,
                    "values": {k: _clean(v) for k, v in values.items()},
                    "winner": winner(values, s.better),
                }
            )
    return rows
