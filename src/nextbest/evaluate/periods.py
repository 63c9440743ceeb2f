"""Backtests at several cut-offs: one full backtest per ``--as-of``, and the headline measures
side by side.

One backtest is one period: a season, a promotion or a holiday can move every figure by more
than its bootstrap interval (:mod:`nextbest.evaluate.uncertainty`), which only covers the
customers. Choosing models or settings on one cut-off and reporting on the same one fits the
test set. With several cut-offs (``nextbest evaluate --as-of A --as-of B ...``) each gets its
own ``OUTPUT/<as_of>/`` with ``metrics.json`` and ``report.html``, and ``OUTPUT/summary.json``
holds, per headline measure, every period's value, best baseline, gain and gain interval, the
mean gain, and in how many periods the model was better, on par or worse;
``OUTPUT/summary.html`` shows the same table, each cell coloured by whether
the gain's interval lies above 0, below it or across it, with a link to each
period's report.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np

from nextbest.errors import InputError
from nextbest.evaluate.data import parse_as_of
from nextbest.evaluate.report import CSS
from nextbest.evaluate.results import Score, Section
from nextbest.evaluate.uncertainty import signed

SUMMARY = "summary.json"
SUMMARY_HTML = "summary.html"


def check_periods(as_ofs: list[str], specs: tuple[str, ...]) -> list[str]:
    """Distinct cut-offs in time order; several cut-offs take one model spec (no ``--compare``)."""
    days = sorted({parse_as_of(a) for a in as_ofs})
    if len(days) < len(as_ofs):
        raise InputError(f"--as-of repeats a day: {', '.join(as_ofs)}")
    if len(days) > 1 and len(specs) > 1:
        raise InputError("--compare takes one --as-of; run one comparison per cut-off")
    return [str(d.date()) for d in days]


def _headlines(result) -> dict[tuple[str, str], tuple[Section, Score]]:
    run = result.runs[0]
    return {
        (name, s.key): (section, s)
        for name, section in run.sections.items()
        if section.status == "ok"
        for s in section.scores
        if s.headline
    }


def period_summary(results: list) -> dict:
    """Per headline measure (in section order of the first period), each period's figures and
    the summary across periods; ``summary.json``'s content."""
    keys: list[tuple[str, str]] = []
    for r in results:
        keys += [k for k in _headlines(r) if k not in keys]
    measures = []
    for key in keys:
        periods, gains, verdicts = [], [], []
        label = title = ""
        for r in results:
            found = _headlines(r).get(key)
            if found is None:
                periods.append({"as_of": str(r.as_of.date()), "status": "not evaluated"})
                continue
            section, s = found
            label, title = s.label, section.title
            name, base = s.best_baseline()
            gain, verdict = s.gain(), s.verdict()
            periods.append(
                {
                    "as_of": str(r.as_of.date()),
                    "model": _num(s.value),
                    "best_baseline": name,
                    "baseline": _num(base),
                    "gain": _num(gain),
                    "gain_interval": [_num(v) for v in s.interval.gain] if s.interval else None,
                    "verdict": verdict,
                }
            )
            if np.isfinite(gain):
                gains.append(gain)
            verdicts.append(verdict)
        measures.append(
            {
                "section": key[0],
                "metric": key[1],
                "area": title,
                "label": label,
                "periods": periods,
                "mean_gain": _num(float(np.mean(gains))) if gains else None,
                "better": verdicts.count("better"),
                "tie": verdicts.count("tie"),
                "worse": verdicts.count("worse"),
            }
        )
    return {
        "dataset": results[0].dataset,
        "horizon_days": results[0].horizon_days,
        "as_of": [str(r.as_of.date()) for r in results],
        "measures": measures,
    }


def write_summary(results: list, output: Path) -> Path:
    """Write ``output/summary.json`` and ``output/summary.html``; returns the JSON's path."""
    path = Path(output) / SUMMARY
    path.write_text(json.dumps(period_summary(results), indent=2, allow_nan=False))
    (Path(output) / SUMMARY_HTML).write_text(render_summary(results), encoding="utf-8")
    return path


def render_summary(results: list) -> str:
    """``summary.html``: the headline measures of every period on one page (no script, no
    external file; the links go to each period's ``report.html`` beside it)."""
    summary = period_summary(results)
    fmts = {key: s.fmt for r in results for key, (_, s) in _headlines(r).items()}
    head = "".join(f'<th><a href="{d}/report.html">{d}</a></th>' for d in summary["as_of"])
    rows = []
    for m in summary["measures"]:
        fmt = fmts[(m["section"], m["metric"])]
        cells = "".join(f'<td class="{_css(p)}">{escape(_cell(p, fmt))}</td>' for p in m["periods"])
        rows.append(
            f'<tr><td class="l">{escape(m["area"])}</td><td class="l">{escape(m["label"])}</td>'
            f"{cells}<td>{m['better']} / {m['tie']} / {m['worse']}</td></tr>"
        )
    first = results[0]
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f"<title>nextbest backtests: {escape(first.dataset)}</title>",
            f"<style>{CSS}</style></head><body>",
            f"<h1>Backtests on {escape(first.dataset)} at {len(results)} cut-offs</h1>",
            f'<p class="meta">At each cut-off the models see only earlier data and predict the '
            f"next {first.horizon_days} days; click a date for that period's full report.</p>",
            '<table><tr><th class="l">Area</th><th class="l">What is measured</th>',
            f"{head}<th>Periods better / on par / worse</th></tr>{''.join(rows)}</table>",
            "<p>Each cell: the model's figure, then its gain over the best baseline (positive = "
            "better) and the gain's 95% interval when the customers are drawn again. Green: the "
            "interval lies above 0; red: below 0; grey: it includes 0 (this period cannot tell the "
            "model from the baseline) or no interval was measured. Periods differ "
            "by season, so a gain that holds in every period says more than one interval.</p>",
            "</body></html>",
        ]
    )


def _css(period: dict) -> str:
    interval = period.get("gain_interval")
    if not interval or None in interval:
        return "even"
    return "good" if interval[0] > 0 else ("bad" if interval[1] < 0 else "even")


def summary_rows(results: list) -> tuple[list[str], list[list[str]]]:
    """The summary as text (header, rows) for the terminal: per measure and period the model's
    value and its gain with the gain's interval, then how many periods it won."""
    summary = period_summary(results)
    head = ["area", "measure", *summary["as_of"], "better / par / worse"]
    fmts = {key: s.fmt for r in results for key, (_, s) in _headlines(r).items()}
    rows = []
    for m in summary["measures"]:
        fmt = fmts[(m["section"], m["metric"])]
        cells = [_cell(p, fmt) for p in m["periods"]]
        rows.append([m["area"], m["label"], *cells, f"{m['better']} / {m['tie']} / {m['worse']}"])
    return head, rows


def _cell(period: dict, fmt: str) -> str:
    if period.get("status") == "not evaluated" or period["model"] is None:
        return "n/a"
    text = _format(period["model"], fmt)
    if period["gain"] is None:
        return text
    gain = signed(period["gain"], fmt)
    interval = period["gain_interval"]
    if interval and None not in interval:
        lo, hi = (signed(v, fmt).removesuffix(" pts") for v in interval)
        return f"{text} ({gain} [{lo}, {hi}])"
    return f"{text} ({gain})"


def _format(value: float, fmt: str) -> str:
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return f"{value:.3g}"


def _num(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None
