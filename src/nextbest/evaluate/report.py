"""``report.html``: one self-contained page a marketer can read.

Summary table first (metric, model, baseline, verdict - or, with
``--compare``, both model specs and the winner), then one section per area
with its measures, figures (inline base64 PNG) and a one-line explanation of
each. No external link, stylesheet, script or font: the file can be mailed.
"""

from __future__ import annotations

import base64
from html import escape

import pandas as pd

from nextbest.evaluate.results import HIGHER, LOWER, SECTION_ORDER, Score, Section, winner

VERDICT = {
    "better": ("good", "better than {b}"),
    "worse": ("bad", "worse than {b}"),
    "tie": ("even", "on par with {b}"),
    "n/a": ("na", "no baseline"),
}
GLOSSARY = {
    "Error of the forecast (totals)": "Predicted minus actual total over the horizon, as a share "
    "of the actual "
    "total. 0% is perfect; negative means the model expected too little.",
    "Mean absolute error": "How far off the prediction is for a typical customer, in purchases or "
    "dollars. Lower "
    "is better.",
    "Spearman": "How well the order of customers by predicted value matches the order by real "
    "value: 1 = "
    "same order, 0 = unrelated.",
    "Normalised Gini": "How well the predictions separate big spenders from the rest, relative to "
    "a perfect "
    "ranking: 1 = perfect, 0 = no better than chance.",
    "Decile MAPE": "Customers are split into ten equal groups by predicted value; the average "
    "percentage gap "
    "between each group's predicted and real revenue. Lower is better.",
    "AUC": "The chance that a random customer who did the thing (churned, bought, redeemed) was "
    "scored higher "
    "than a random one who did not. 0.5 = coin toss, 1 = perfect.",
    "PR-AUC": "How clean the list of flagged customers is, averaged over list lengths; compare it "
    "with the "
    "actual rate, which is what a random list would get.",
    "Brier score": "Mean squared gap between the predicted probability and what happened (0 or 1). "
    "Lower is "
    "better.",
    "Lift and gain": "Lift: how much more often the top-scored 10% churn than average. Gain: the "
    "share of all "
    "churners reached when contacting the top deciles.",
    "hit@k, MAP@k": "hit@k: share of customers who bought a recommended category with at least one "
    "of the top "
    "k recommendations; MAP@k also rewards putting it first.",
    "Intervals": "Under a model's figure: the range it would likely take on another sample "
    "of as many customers (95%, customers drawn again with replacement 200 times). Under a "
    "verdict: the same for the model's gain over the best baseline, measured on the same "
    "customers; a range that includes 0 means this backtest cannot tell the two apart (the "
    "verdict then says 'not clearly' and is grey). A "
    "different period can move more than that, since seasons differ.",
    "Realised value": "For every cross-sell offer a policy would send: its value if the customer "
    "bought that "
    "category in the window, minus the contact cost.",
}
CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0 auto;max-width:1100px;
padding:1.5em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
.meta{color:#555}table{border-collapse:collapse;margin:.8em 0;font-size:.93em}
th,td{border:1px solid #ddd;padding:.35em .6em;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}.good{background:#e3f4e1;color:#1c6b17}.bad{background:#fbe3e1;color:#9c1c12}
.even,.na{background:#f2f2f2;color:#555}.skip{background:#f6f6f6;border-left:4px solid
#aaa;padding:.6em 1em}
.notes li{margin:.2em 0}.warn{color:#9c1c12}figure{margin:1.2em 0}
figure img{max-width:100%;border:1px solid #eee}figcaption{color:#444;font-size:.95em}
dt{font-weight:bold;margin-top:.5em}nav a{margin-right:1em}
"""


def fmt(score: Score, value) -> str:
    return format_value(score.fmt, value)


def format_value(pattern: str, value) -> str:
    """``value`` in a score's format (``"n/a"`` when missing or not a finite number)."""
    if value is None or not isinstance(value, (int, float)) or value != value:
        return "n/a"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return f"{value:.3g}"


def _verdict_cell(score: Score) -> str:
    """The verdict, and under it the gain over the best baseline with its bootstrap interval."""
    name, _ = score.best_baseline()
    verdict = score.verdict()
    cls, text = VERDICT[verdict]
    text = text.format(b=name or "baseline")
    if verdict in ("better", "worse") and score.gain_is_clear() is False:
        cls, text = "even", f"{text}, but not clearly: the interval includes 0"
    gain = score.gain_text()
    small = f"<br><small>{escape(gain)}</small>" if gain else ""
    return f'<td class="l {cls}">{escape(text)}{small}</td>'


def _model_cell(score: Score) -> str:
    """The model's value, and under it its bootstrap interval when measured."""
    text = fmt(score, score.value)
    if score.interval is not None:
        lo, hi = score.interval.value
        text += f"<br><small>{fmt(score, lo)} to {fmt(score, hi)}</small>"
    return f"<td>{text}</td>"


def _direction(score: Score) -> str:
    return {HIGHER: "higher is better", LOWER: "lower is better"}.get(
        score.better, "closer to 0 is better"
    )


def _table(head: list[str], rows: list[str]) -> str:
    left = ' class="l"'
    th = "".join(f"<th{left if i == 0 else ''}>{escape(h)}</th>" for i, h in enumerate(head))
    return f"<table><tr>{th}</tr>{''.join(rows)}</table>"


def _values(result, sname: str, key: str) -> dict[str, float]:
    """Each model spec's value of one measure (NaN where its section lacks it)."""
    out = {}
    for run in result.runs:
        section = run.sections.get(sname)
        score = section.score(key) if section else None
        out[run.label] = score.value if score else float("nan")
    return out


def _listed(result) -> list[tuple[str, Section]]:
    """Per area, the section whose measures are listed: the first evaluated one across model
    specs."""
    out = []
    for sname, first in result.runs[0].sections.items():
        ok = [
            r.sections[sname]
            for r in result.runs
            if sname in r.sections and r.sections[sname].status == "ok"
        ]
        out.append((sname, ok[0] if ok else first))
    return out


def summary(result) -> str:
    """The summary table: headline scores of every section (one spec with verdicts, or all with the
    winner)."""
    rows = []
    labels = [r.label for r in result.runs]
    for sname, section in _listed(result):
        if section.status != "ok":
            rows.append(
                f'<tr><td class="l">{escape(section.title)}</td><td class="l" '
                f'colspan="{len(labels) + 3}">'
                f"not evaluated: {escape(section.notes[0] if section.notes else '')}</td></tr>"
            )
            continue
        for s in (x for x in section.scores if x.headline):
            name, base = s.best_baseline()
            got = _values(result, sname, s.key)
            values = (
                "".join(f"<td>{fmt(s, v)}</td>" for v in got.values())
                if result.compare
                else _model_cell(s)
            )
            base_cell = f"<td>{fmt(s, base)}{f' ({escape(name)})' if name else ''}</td>"
            last = _winner_cell(got, s.better) if result.compare else _verdict_cell(s)
            rows.append(
                f'<tr><td class="l">{escape(section.title)}</td><td '
                f'class="l">{escape(s.label)}</td>'
                f"{values}{base_cell}{last}</tr>"
            )
    head = [
        "Area",
        "What is measured",
        *(labels if result.compare else ["Model"]),
        "Best baseline" + (f" ({labels[0]})" if result.compare else ""),
        "Winner" if result.compare else "Verdict",
    ]
    return _table(head, rows)


def _winner_cell(values: dict[str, float], better: str) -> str:
    win = winner(values, better)
    css = "even" if win in (None, "tie") else "good"
    return f'<td class="l {css}">{escape(str(win or "n/a"))}</td>'


def _section_table(section_runs: list[tuple[str, Section]], compare: bool) -> str:
    """Every measure of a section: the model (or each compared spec), each baseline, the verdict (or
    winner)."""
    base = section_runs[0][1]
    names = list(dict.fromkeys(k for s in base.scores for k in s.baselines))
    refs = list(dict.fromkeys(k for s in base.scores for k in s.references))
    rows = []
    for s in base.scores:
        found = {lab: sec.score(s.key) for lab, sec in section_runs}
        got = {lab: o.value if o else float("nan") for lab, o in found.items()}
        values = (
            "".join(f"<td>{fmt(s, v)}</td>" for v in got.values()) if compare else _model_cell(s)
        )
        bases = "".join(f"<td>{fmt(s, s.baselines.get(n))}</td>" for n in names)
        bases += "".join(
            f"<td>{fmt(s, s.references.get(n)) if n in s.references else ''}</td>" for n in refs
        )
        last = _winner_cell(got, s.better) if compare else _verdict_cell(s)
        rows.append(
            f'<tr><td class="l">{escape(s.label)}<br><small>{_direction(s)}</small></td>'
            f"{values}{bases}{last}</tr>"
        )
    labels = [lab for lab, _ in section_runs]
    head = [
        "Measure",
        *(labels if compare else ["Model"]),
        *(f"{n} ({labels[0]})" if compare else n for n in names),
        *(f"{r} (reference)" for r in refs),
    ]
    return _table(head + ["Winner" if compare else "Verdict"], rows)


def _figure(chart, prefix: str = "") -> str:
    data = base64.b64encode(chart.png).decode("ascii")
    title = f"{prefix}{chart.title}"
    return (
        f'<figure><img alt="{escape(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{escape(title)}.</b> {escape(chart.explain)}</figcaption></figure>"
    )


def _warn(note: str) -> str:
    return ' class="warn"' if "WARNING" in note.split(":")[0] else ""


def _display(caption: str, table: pd.DataFrame, prefix: str = "") -> str:
    """A table of text cells as it is, with its caption (first column left-aligned)."""
    rows = []
    for row in table.itertuples(index=False):
        cells = [f'<td class="l">{escape(str(row[0]))}</td>']
        cells += [f"<td>{escape(str(v))}</td>" for v in row[1:]]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<h3>{escape(prefix + caption)}</h3>" + _table([str(c) for c in table.columns], rows)


def section_html(result, sname: str) -> str:
    """One area: intro, measures against baselines, notes, figures (one set per model spec)."""
    pairs = [(r.label, r.sections[sname]) for r in result.runs if sname in r.sections]
    # A section shared by every model spec (the Impact section measures the log) is shown once.
    pairs = [(lab, s) for i, (lab, s) in enumerate(pairs) if all(s is not o for _, o in pairs[:i])]
    label, sec = pairs[0]
    compare = len(pairs) > 1
    parts = [f'<section id="{escape(sname)}"><h2>{escape(sec.title)}</h2>']
    ok = [(lab, s) for lab, s in pairs if s.status == "ok"]
    if not ok:
        parts.append(f'<p class="skip">Not evaluated: {escape(" ".join(sec.notes))}</p></section>')
        return "".join(parts)
    for lab, s in ok:
        parts.append(f"<p>{'<b>' + escape(lab) + ':</b> ' if compare else ''}{escape(s.intro)}</p>")
    parts.append(_section_table(ok, compare))
    notes = [
        f"{escape(lab) + ': ' if compare else ''}{escape(n)}" for lab, s in pairs for n in s.notes
    ]
    if notes:
        parts.append(
            '<ul class="notes">' + "".join(f"<li{_warn(n)}>{n}</li>" for n in notes) + "</ul>"
        )
    for lab, s in ok:
        parts += [
            _display(caption, t, f"{lab}: " if compare else "") for caption, t in s.displays.items()
        ]
    for lab, s in ok:
        parts += [_figure(c, f"{lab}: " if compare else "") for c in s.charts]
    parts.append("</section>")
    return "".join(parts)


def render(result) -> str:
    """The whole page as one HTML string."""
    present = [s for s in SECTION_ORDER if any(s in r.sections for r in result.runs)]
    titles = {s: next(r.sections[s].title for r in result.runs if s in r.sections) for s in present}
    models = "; ".join(
        f"{escape(r.label)}: "
        + ", ".join(f"{escape(k)} {escape(str(v))}" for k, v in r.versions.items())
        for r in result.runs
    )
    notes = list(result.notes) + [n for r in result.runs for n in r.notes]
    warn = ' class="warn"'
    note_html = "".join(
        f"<li{warn if n.startswith('WARNING') else ''}>{escape(n)}</li>" for n in notes
    )
    nav = '<a href="#summary">Summary</a>' + "".join(
        f'<a href="#{s}">{escape(titles[s])}</a>' for s in present
    )
    end = (result.as_of + pd.Timedelta(days=result.horizon_days - 1)).date()
    verb = "Which model wins" if result.compare else "How good are the predictions"
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f"<title>nextbest evaluation: {escape(result.dataset)} from "
            f"{result.as_of.date()}</title>",
            f"<style>{CSS}</style></head><body>",
            f"<h1>{verb}: a backtest on {escape(result.dataset)}</h1>",
            f'<p class="meta">Models see only data before <b>{result.as_of.date()}</b>; their '
            "predictions are checked "
            f"against what customers really did from {result.as_of.date()} to {end} "
            f"({result.horizon_days} days). "
            f"Models: {models}. MLflow run: {escape(str(result.run_id or 'not logged'))}.</p>",
            f"<nav>{nav}</nav>",
            '<section id="summary"><h2>Summary</h2><p>One line per key measure: the model, the '
            "strongest simple "
            "baseline (a rule anyone could apply without a model) and whether the model beats "
            "it.</p>",
            summary(result),
            f'<ul class="notes">{note_html}</ul></section>' if note_html else "</section>",
            *(section_html(result, s) for s in present),
            '<section id="glossary"><h2>How to read the measures</h2><dl>',
            "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in GLOSSARY.items()),
            "</dl></section></body></html>",
        ]
    )


def summary_rows(result) -> tuple[list[str], list[list[str]]]:
    """The summary table as plain text (header, rows) for the terminal."""
    labels = [r.label for r in result.runs]
    head = [
        "area",
        "measure",
        *(labels if result.compare else ["model"]),
        "best baseline",
        "winner" if result.compare else "verdict",
    ]
    rows = []
    for sname, section in _listed(result):
        if section.status != "ok":
            rows.append(
                [
                    section.title,
                    "not evaluated",
                    *[""] * len(labels),
                    "",
                    (section.notes[0] if section.notes else "")[:70],
                ]
            )
            continue
        for s in (x for x in section.scores if x.headline):
            got = _values(result, sname, s.key)
            name, base = s.best_baseline()
            verdict = (
                str(winner(got, s.better) or "n/a")
                if result.compare
                else ", ".join(
                    t
                    for t in (
                        VERDICT[s.verdict()][1].format(b=name or "baseline"),
                        s.gain_text(compact=True),
                    )
                    if t
                )
            )
            rows.append(
                [
                    section.title,
                    s.label,
                    *(fmt(s, v) for v in got.values()),
                    f"{fmt(s, base)} ({name})" if name else "n/a",
                    verdict,
                ]
            )
    return head, rows
