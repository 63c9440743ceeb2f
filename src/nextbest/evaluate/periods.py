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
from nextbest.evaluate.report import CSS, format_value
from nextbest.evaluate.results import Score, Section
from nextbest.evaluate.uncertainty import compact_gain, signed
from nextbest.models.evaluation import finite_or_none

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
    return _summary(results, [_headlines(r) for r in results])


def _summary(results: list, headlines: list[dict]) -> dict:
    keys: list[tuple[str, str]] = []
    for found in headlines:
        keys += [k for k in found if k not in keys]
    measures = []
    for key in keys:
        periods, gains, verdicts = [], [], []
        label = title = ""
        for r, found in zip(results, headlines):
            if key not in found:
                periods.append({"as_of": str(r.as_of.date()), "status": "not evaluated"})
                continue
            section, s = found[key]
            label, title = s.label, section.title
            name, base = s.best_baseline()
            gain, verdict = s.gain(), s.verdict()
            periods.append(
                {
                    "as_of": str(r.as_of.date()),
                    "model": finite_or_none(s.value),
                    "best_baseline": name,
                    "baseline": finite_or_none(base),
                    "gain": finite_or_none(gain),
                    "gain_interval": (
                        [finite_or_none(v) for v in s.interval.gain] if s.interval else None
                    ),
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
                "mean_gain": finite_or_none(float(np.mean(gains))) if gains else None,
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


def _table(results: list) -> tuple[dict, list[tuple[dict, list[str], str]]]:
    """The summary, and per measure its period cells (text) and its tally: what the page and
    the terminal both show."""
    headlines = [_headlines(r) for r in results]
    summary = _summary(results, headlines)
    fmts = {key: s.fmt for found in headlines for key, (_, s) in found.items()}
    rows = [
        (
            m,
            [_cell(p, fmts[(m["section"], m["metric"])]) for p in m["periods"]],
            f"{m['better']} / {m['tie']} / {m['worse']}",
        )
        for m in summary["measures"]
    ]
    return summary, rows


def write_summary(results: list, output: Path) -> Path:
    """Write ``output/summary.json`` and ``output/summary.html``; returns the JSON's path."""
    summary, rows = _table(results)
    path = Path(output) / SUMMARY
    path.write_text(json.dumps(summary, indent=2, allow_nan=False))
    (Path(output) / SUMMARY_HTML).write_text(_page(results, summary, rows), encoding="utf-8")
    return path


def _page(results: list, summary: dict, rows: list) -> str:
    """``summary.html``: the headline measures of every period on one page (no script, no
    external file; the links go to each period's ``report.html`` beside it)."""
    head = "".join(f'<th><a href="{d}/report.html">{d}</a></th>' for d in summary["as_of"])
    body = []
    for m, cells, tally in rows:
        tds = "".join(
            f'<td class="{_css(p)}">{escape(text)}</td>' for p, text in zip(m["periods"], cells)
        )
        body.append(
            f'<tr><td class="l">{escape(m["area"])}</td><td class="l">{escape(m["label"])}</td>'
            f"{tds}<td>{tally}</td></tr>"
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
            f"{head}<th>Periods better / on par / worse</th></tr>{''.join(body)}</table>",
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
    summary, rows = _table(results)
    head = ["area", "measure", *summary["as_of"], "better / par / worse"]
    return head, [[m["area"], m["label"], *cells, tally] for m, cells, tally in rows]


def _cell(period: dict, fmt: str) -> str:
    if period.get("status") == "not evaluated" or period["model"] is None:
        return "n/a"
    text = format_value(fmt, period["model"])
    if period["gain"] is None:
        return text
    interval = period["gain_interval"]
    if interval and None not in interval:
        return f"{text} ({compact_gain(period['gain'], interval, fmt)})"
    return f"{text} ({signed(period['gain'], fmt)})"
