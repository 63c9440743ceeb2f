"""The scoring report: ``<output stem>.report.html`` next to every ``nextbest score`` output.

One self-contained page for marketing (inline CSS and PNG figures, no
script, no link out) that shows who the customers are, what will be sent to
whom and what it is worth:

* micro-segments (value tier x churn risk x activity, :mod:`.segments`) with
  counts, value and the action mix in each;
* actions and offers with expected value and cost totals;
* channels and the consent share;
* the control group, or why there is none;
* the top customers of each high-value segment;
* what changed since the previous run of the same output: the shift in the
  action mix, new opt-outs, customers who moved segment. The previous run is
  remembered in ``<output stem>.segments.parquet``.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nextbest.batch.audiences import ACTIONS as DECIDED_ACTIONS
from nextbest.batch.audiences import decide_rows, flatten_scores, offer_names, read_scores
from nextbest.batch.segments import NOT_PROFILED, segment_frame
from nextbest.decision.catalog import Catalog
from nextbest.plots import png

ACTIONS = tuple(DECIDED_ACTIONS)
TOP_PER_SEGMENT = 5
CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1100px;padding:1.5em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
.meta{color:#555}table{border-collapse:collapse;margin:.8em 0;font-size:.93em}
th,td{border:1px solid #ddd;padding:.35em .6em;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}.note{background:#f6f6f6;border-left:4px solid #aaa;padding:.6em 1em}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#444;font-size:.95em}.up{color:#1c6b17}.down{color:#9c1c12}
"""


@dataclass
class ScoreReport:
    """Where the report went and how long it took."""

    path: Path
    segments_path: Path
    seconds: float


def report_paths(output: str | Path) -> tuple[Path, Path]:
    """``scores.parquet`` -> ``scores.report.html``, ``scores.segments.parquet``."""
    output = Path(output)
    return (
        output.with_name(output.stem + ".report.html"),
        output.with_name(output.stem + ".segments.parquet"),
    )


def _money(x: float) -> str:
    return f"${x:,.0f}" if np.isfinite(x) else "n/a"


def _table(head: list[str], rows: list[list], left: int = 1) -> str:
    def css(i: int) -> str:
        return "l" if i < left else ""

    th = "".join(f'<th class="{css(i)}">{escape(h)}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{css(i)}">{escape(str(v))}</td>' for i, v in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def _figure(fig: Figure, caption: str) -> str:
    data = base64.b64encode(png(fig)).decode("ascii")
    return (
        f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _heatmap(counts: pd.DataFrame, value: pd.DataFrame) -> Figure:
    """Customers (colour) and predicted CLV (text) by value tier x churn risk."""
    fig = Figure(figsize=(6.5, 3.2))
    ax = fig.add_subplot()
    ax.imshow(counts.to_numpy(dtype=float), cmap="Blues", aspect="auto")
    ax.set_xticks(range(counts.shape[1]), [f"{c} risk" for c in counts.columns])
    ax.set_yticks(range(counts.shape[0]), [f"{r} value" for r in counts.index])
    top = counts.to_numpy().max() or 1
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            n = int(counts.iat[i, j])
            colour = "white" if n > top / 2 else "black"
            text = f"{n:,}\n{_money(float(value.iat[i, j]))}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    ax.set_title("Customers and predicted CLV by value tier and churn risk")
    return fig


def _bars(labels: list[str], values: list[float], title: str, xlabel: str) -> Figure:
    fig = Figure(figsize=(6.5, 0.35 * max(len(labels), 3) + 1.0))
    ax = fig.add_subplot()
    ax.barh(range(len(labels)), values, color="#4a7ab5")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def _decisions(flat: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """Per customer: segment columns, action, offer, channel, expected value and contact cost.

    Text columns are categoricals: a handful of values over millions of rows.
    """
    dec = decide_rows(flat, catalog)
    names = offer_names(catalog)
    cost = {o.offer_id: o.cost for o in catalog.offers}
    if catalog.retention is not None:
        cost[catalog.retention.offer_id] = catalog.retention.cost
    offers = [*dec.offers, ""]
    oc = np.where(dec.offer >= 0, dec.offer, len(offers) - 1)
    paid = np.isin(dec.action, [ACTIONS.index("cross_sell"), ACTIONS.index("retention")])
    channels = sorted({names.get(o, ("", ""))[1] for o in offers} | {""})
    channel_of = np.array([channels.index(names.get(o, ("", ""))[1]) for o in offers])
    cost_of = np.array([cost.get(o, 0.0) for o in offers], dtype=float)
    contacted = dec.action != ACTIONS.index("no_action")
    seg = segment_frame(flat)
    seg["action"] = pd.Categorical.from_codes(dec.action, categories=list(ACTIONS))
    seg["offer_id"] = pd.Categorical.from_codes(oc, categories=offers)
    seg["channel"] = pd.Categorical.from_codes(
        np.where(contacted, channel_of[oc], channels.index("")), categories=channels
    )
    seg["expected_value"] = dec.expected_value
    seg["cost"] = np.where(paid, cost_of[oc], 0.0)
    seg["predicted_clv"] = flat["predicted_clv"].to_numpy(dtype=float)
    seg["churn_probability"] = flat["churn_probability"].to_numpy(dtype=float)
    seg["consent_profiling"] = flat["consent_profiling"].fillna(True).astype(bool).to_numpy()
    seg["reason"] = flat["reason"].to_numpy()
    if "group" in flat.columns:
        seg["group"] = pd.Categorical(flat["group"].astype(str))
    return seg


def _segments_html(d: pd.DataFrame) -> str:
    seg, act = np.asarray(d["segment"].cat.codes), np.asarray(d["action"].cat.codes)
    k, m = len(d["segment"].cat.categories), len(ACTIONS)
    clv = d["predicted_clv"].to_numpy()
    ok = np.isfinite(clv)
    mix = np.bincount(seg * m + act, minlength=k * m).reshape(k, m)
    table = pd.DataFrame(mix, index=d["segment"].cat.categories, columns=list(ACTIONS))
    table.insert(0, "customers", mix.sum(axis=1))
    totals = np.bincount(seg[ok], weights=clv[ok], minlength=k)
    table.insert(1, "clv", np.where(np.bincount(seg[ok], minlength=k) > 0, totals, np.nan))
    table = table[table["customers"] > 0].sort_values("clv", ascending=False, na_position="last")
    n = len(d)
    rows = [
        [
            seg,
            f"{int(r.customers):,}",
            f"{r.customers / n:.1%}",
            _money(r.clv),
            _money(r.clv / r.customers) if np.isfinite(r.clv) else "n/a",
            *[f"{int(getattr(r, a)):,}" for a in ACTIONS],
        ]
        for seg, r in table.iterrows()
    ]
    head = ["segment", "customers", "share", "predicted CLV", "CLV each", *ACTIONS]
    profiled = d[d["segment"] != NOT_PROFILED]
    html = _table(head, rows)
    if len(profiled):
        order_v, order_r = ["high", "medium", "low"], ["low", "medium", "high", "unknown"]
        counts = pd.crosstab(profiled["value_tier"], profiled["churn_risk"])
        counts = counts.reindex(
            index=order_v, columns=[c for c in order_r if c in counts.columns], fill_value=0
        )
        value = profiled.pivot_table(
            index="value_tier", columns="churn_risk", values="predicted_clv", aggfunc="sum"
        )
        value = value.reindex(index=counts.index, columns=counts.columns).fillna(0.0)
        html += _figure(
            _heatmap(counts, value),
            "Each cell: customers and their total predicted CLV. High value at high risk is "
            "where retention pays most.",
        )
    return html


def _actions_html(d: pd.DataFrame) -> str:
    sent = d[d["action"].isin(["cross_sell", "retention", "non_personalised"])]
    g = sent.groupby(["action", "offer_id"], sort=True)
    t = pd.DataFrame(
        {"customers": g.size(), "ev": g["expected_value"].sum(), "cost": g["cost"].sum()}
    )
    t = t.sort_values("customers", ascending=False)
    rows = [
        [f"{a} {o}".strip(), f"{int(r.customers):,}", _money(r.ev), _money(r.cost)]
        for (a, o), r in t.iterrows()
    ]
    no = int((d["action"] == "no_action").sum())
    total_ev = float(np.nansum(sent["expected_value"]))
    html = _table(["action and offer", "customers", "expected value", "contact cost"], rows)
    html += (
        f"<p>{no:,} customers get no contact (no offer is worth its cost for them). "
        f"Expected value of all personalised contacts: <b>{_money(total_ev)}</b> "
        f"(already net of contact cost), for {_money(float(sent['cost'].sum()))} of contacts.</p>"
    )
    if len(t):
        labels = [f"{a} {o}".strip() for a, o in t.index]
        html += _figure(
            _bars(labels, t["customers"].tolist(), "Who gets what", "customers"),
            "Customers per action and offer.",
        )
    return html


def _channels_html(d: pd.DataFrame) -> str:
    contacted = d[d["channel"] != ""]
    counts = contacted["channel"].value_counts()
    rows = [[c, f"{n:,}", f"{n / max(len(d), 1):.1%}"] for c, n in counts.items()]
    consent = float(d["consent_profiling"].mean()) if len(d) else float("nan")
    return _table(["channel", "customers contacted", "share of base"], rows) + (
        f"<p>Consent to profiling: <b>{consent:.1%}</b> of customers; "
        f"{int((~d['consent_profiling']).sum()):,} objected and get only the "
        "non-personalised default, with no scores.</p>"
    )


def _control_html(d: pd.DataFrame) -> str:
    if "group" in d.columns and (d["group"] == "control").any():
        n = int((d["group"] == "control").sum())
        return (
            f"<p>{n:,} customers ({n / len(d):.1%}) are in the randomized control group: nothing "
            "is sent to them, so the effect of every action can be measured against them.</p>"
        )
    return (
        '<p class="note">No control group in this run: the catalog sets no <code>control_share'
        "</code>, so every eligible customer is contacted and the effect of the actions cannot "
        "be measured against customers who got nothing. Set a control share to measure it.</p>"
    )


def _top_html(d: pd.DataFrame) -> str:
    high = d[d["value_tier"] == "high"].sort_values("predicted_clv", ascending=False)
    html = ""
    for seg, rows in high.groupby("segment", sort=False):
        top = rows.head(TOP_PER_SEGMENT)
        html += f"<h3>{escape(seg)} ({len(rows):,} customers)</h3>" + _table(
            ["customer", "predicted CLV", "churn risk", "action", "why"],
            [
                [
                    r.customer_id,
                    _money(r.predicted_clv),
                    f"{r.churn_probability:.2f}",
                    f"{r.action} {r.offer_id}".strip(),
                    r.reason if isinstance(r.reason, str) else "",
                ]
                for r in top.itertuples()
            ],
        )
    return html or "<p>No profiled customers.</p>"


_TOP_ROW_ID = re.compile(r'<tr><td class="l">[^<]*</td>')


def without_ids(html: str) -> str:
    """The report with the customer ids of "Top customers" replaced by ranks (``#1``, ...).

    The copy logged to MLflow: MLflow runs hold no customer id (the report
    written beside the scores keeps them; it is the operator's export).
    """
    start = html.find(">Top customers</h2>")
    if start < 0:
        return html
    end = html.find("<h2", start)
    end = len(html) if end < 0 else end
    rank = iter(range(1, 1 << 30))
    section = _TOP_ROW_ID.sub(lambda m: f'<tr><td class="l">#{next(rank)}</td>', html[start:end])
    return html[:start] + section + html[end:]


def _changes_html(d: pd.DataFrame, previous: pd.DataFrame | None) -> str:
    if previous is None:
        return "<p>This is the first run of this output: nothing to compare with yet.</p>"
    now = d["action"].value_counts()
    before = previous["action"].value_counts()
    rows = []
    for a in ACTIONS:
        n1, n0 = int(now.get(a, 0)), int(before.get(a, 0))
        rows.append([a, f"{n0:,}", f"{n1:,}", f"{n1 - n0:+,}"])
    both = d[["customer_id", "segment", "consent_profiling"]].merge(
        previous[["customer_id", "segment", "consent_profiling"]],
        on="customer_id",
        suffixes=("", "_before"),
    )
    new_opt_outs = int((both["consent_profiling_before"] & ~both["consent_profiling"]).sum())
    moved = both[both["segment"] != both["segment_before"]]
    flows = moved.groupby(["segment_before", "segment"]).size().sort_values(ascending=False)
    flow_rows = [[f"{a} -> {b}", f"{n:,}"] for (a, b), n in flows.head(10).items()]
    new = len(d) - len(both)
    return (
        _table(["action", "previous run", "this run", "change"], rows)
        + f"<p>{new_opt_outs:,} customers objected to profiling since the previous run; "
        f"{len(moved):,} of {len(both):,} customers seen in both runs moved segment; "
        f"{new:,} customers are new.</p>"
        + (_table(["segment move", "customers"], flow_rows) if flow_rows else "")
    )


def render(d: pd.DataFrame, meta: dict, previous: pd.DataFrame | None) -> str:
    """The report page for the decisions ``d`` (see :func:`write_score_report`)."""
    sections = [
        ("Segments", _segments_html(d)),
        ("Actions and offers", _actions_html(d)),
        ("Channels and consent", _channels_html(d)),
        ("Control group", _control_html(d)),
        ("Top customers", _top_html(d)),
        ("What changed since the previous run", _changes_html(d, previous)),
    ]
    nav = " ".join(f'<a href="#s{i}">{escape(t)}</a>' for i, (t, _) in enumerate(sections))
    body = "".join(f'<h2 id="s{i}">{escape(t)}</h2>{h}' for i, (t, h) in enumerate(sections))
    versions = ", ".join(f"{k} v{v}" for k, v in sorted(meta.get("model_versions", {}).items()))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>nextbest scores {escape(str(meta.get('as_of')))}</title><style>{CSS}</style>"
        f"</head><body><h1>Next best actions for {len(d):,} customers</h1>"
        f"<p class='meta'>as of {escape(str(meta.get('as_of')))} - CLV over "
        f"{meta.get('horizon_days', 0):g} days - {escape(versions)} - {escape(meta['source'])}"
        f"</p><nav>{nav}</nav>{body}</body></html>"
    )


def write_score_report(output: str | Path, catalog: Catalog) -> ScoreReport:
    """Write ``<stem>.report.html`` (and ``<stem>.segments.parquet``) next to a scores file."""
    started = time.perf_counter()
    html_path, seg_path = report_paths(output)
    table = read_scores(output)
    flat = flatten_scores(table)
    d = _decisions(flat, catalog)
    meta = {
        "as_of": pd.Series(table["as_of"].to_pandas()).dropna().astype(str).str[:10].iloc[0]
        if len(table)
        else None,
        "horizon_days": float(table["horizon_days"][0].as_py()) if len(table) else 0.0,
        "model_versions": json.loads(table["model_versions"][0].as_py()) if len(table) else {},
        "source": Path(output).name,
    }
    previous = pd.read_parquet(seg_path) if seg_path.exists() else None
    html = render(d, meta, previous)
    tmp = html_path.with_name(html_path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(html_path)
    keep = d[["customer_id", "segment", "action", "offer_id", "consent_profiling"]]
    tmp = seg_path.with_name(seg_path.name + ".tmp")
    keep.to_parquet(tmp, index=False)
    tmp.replace(seg_path)
    return ScoreReport(html_path, seg_path, time.perf_counter() - started)
