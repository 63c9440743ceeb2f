"""report.html and metrics.json from a hand-made evaluation: every section, self-contained, valid
JSON."""

from __future__ import annotations

import base64
import json
import re

import pandas as pd
import pytest
from matplotlib.figure import Figure

from nextbest.evaluate import write_outputs
from nextbest.evaluate.report import render, summary_rows
from nextbest.evaluate.results import HIGHER, LOWER, ZERO, Chart, ModelRun, Score, Section
from nextbest.evaluate.run import Evaluation, flat_metrics
from nextbest.models.evaluation import Interval
from nextbest.plots import png

SECTIONS = {
    "clv": "Customer lifetime value",
    "churn": "Churn risk",
    "nbo": "Next best offer",
    "campaigns": "Coupon campaigns after the cut-off",
    "decision": "Decisions: who gets which offer",
}


def _chart(name: str) -> Chart:
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    return Chart(name, f"{name} title", f"{name} explained", png(fig))


def _sections(shift: float = 0.0) -> dict[str, Section]:
    clv = Section(
        "clv",
        SECTIONS["clv"],
        "CLV intro",
        charts=[_chart("tracking")],
        scores=[
            Score(
                "purchases_aggregate_error",
                "Total purchases: error",
                -0.12 + shift,
                {"historic rate": 0.56},
                ZERO,
                True,
                "{:+.1%}",
            ),
            Score(
                "spend_spearman",
                "Ranking by value",
                0.43 + shift,
                {"historic rate": 0.48},
                HIGHER,
                True,
            ),
        ],
        tables={
            "totals": pd.DataFrame(
                {"quantity": ["purchases"], "actual": [1882.0], "model": [1653.0]}
            )
        },
    )
    churn = Section(
        "churn",
        SECTIONS["churn"],
        "Churn intro",
        charts=[_chart("churn_lift")],
        scores=[
            Score("auc", "AUC", 0.80 - shift, {"recency": 0.79, "P(alive)": 0.34}, HIGHER, True),
            Score("brier", "Brier", 0.05, {"recency": float("nan")}, LOWER, True, "{:.4f}"),
        ],
    )
    nbo = Section(
        "nbo",
        SECTIONS["nbo"],
        "NBO intro",
        charts=[_chart("nbo_rankings")],
        scores=[
            Score(
                "hit_at_3",
                "hit@3",
                0.88,
                {"popularity": 0.85, "last bought": 0.86},
                HIGHER,
                True,
                "{:.1%}",
            )
        ],
    )
    campaigns = Section.skipped("campaigns", SECTIONS["campaigns"], "too few redemptions")
    decision = Section(
        "decision",
        SECTIONS["decision"],
        "Decision intro",
        charts=[_chart("decision_value")],
        scores=[
            Score(
                "realised_cross_sell_value",
                "Realised value ($)",
                1200.0,
                {"random offer": -300.0, "rule": 150.0},
                HIGHER,
                True,
                "{:,.0f}",
            )
        ],
    )
    return {"clv": clv, "churn": churn, "nbo": nbo, "campaigns": campaigns, "decision": decision}


def _evaluation(compare: bool = False) -> Evaluation:
    runs = [ModelRun("train", {"nextbest-clv": "trained now"}, _sections(), ["CLV: BG/NBD chosen"])]
    if compare:
        runs.append(
            ModelRun(
                "champion",
                {"nextbest-clv": "4"},
                _sections(shift=0.05),
                ["WARNING: nextbest-clv v4 was trained on data up to 2018-01-01 (leakage)."],
            )
        )
    return Evaluation(
        "cdnow",
        pd.Timestamp("1997-10-01"),
        273,
        runs,
        notes=["a dataset note <b>escaped</b>"],
        run_id="abc123",
    )


def _images(html: str) -> list[bytes]:
    return [
        base64.b64decode(m)
        for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    ]


@pytest.mark.parametrize("compare", [False, True])
def test_report_has_every_section_and_no_external_reference(compare):
    html = render(_evaluation(compare))
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>")
    assert (
        html.index('id="summary"')
        < html.index('id="clv"')
        < html.index('id="churn"')
        < html.index('id="nbo"')
        < html.index('id="campaigns"')
        < html.index('id="decision"')
    )
    for title in SECTIONS.values():
        assert title in html
    assert "Not evaluated: too few redemptions" in html
    assert not re.search(r"https?://", html, re.IGNORECASE)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert all(
        src.startswith("data:image/png;base64,") or src.startswith("#")
        for src in re.findall(r'(?:src|href)="([^"]*)"', html)
    )
    images = _images(html)
    assert len(images) == 4 * (2 if compare else 1)
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") and b"http" not in img for img in images)
    assert "&lt;b&gt;escaped&lt;/b&gt;" in html


def test_summary_table_comes_first_with_model_baseline_and_verdict():
    html = render(_evaluation())
    summary = html[html.index('id="summary"') : html.index('id="clv"')]
    assert "<th>Model</th>" in summary and "Best baseline" in summary and "Verdict" in summary
    assert "+56.0% (historic rate)" in summary and "better than historic rate" in summary
    assert "worse than historic rate" in summary  # Spearman 0.43 < 0.48
    assert "1,200" in summary and "150 (rule)" in summary
    head, rows = summary_rows(_evaluation())
    assert head == ["area", "measure", "model", "best baseline", "verdict"]
    assert [
        "Customer lifetime value",
        "Total purchases: error",
        "-12.0%",
        "+56.0% (historic rate)",
        "better than historic rate",
    ] in rows


def test_intervals_show_under_the_value_and_the_verdict():
    ev = _evaluation()
    spearman = ev.runs[0].sections["clv"].score("spend_spearman")
    spearman.interval = Interval((0.40, 0.46), (-0.08, -0.02))
    html = render(ev)
    summary = html[html.index('id="summary"') : html.index('id="clv"')]
    assert "<td>0.430<br><small>0.400 to 0.460</small></td>" in summary
    assert "worse than historic rate<br><small>gain -0.050 (95% interval -0.080 to -0.020)" in (
        summary
    )
    assert "Intervals" in html  # explained in the glossary
    _, rows = summary_rows(ev)
    row = next(r for r in rows if r[1] == "Ranking by value")
    assert row[-1] == "worse than historic rate, -0.050 [-0.080, -0.020]"
    # An interval across 0: the verdict stays, grey, and says it is not clear.
    assert 'class="l even">worse than historic rate, but not clearly' not in html
    spearman.interval = Interval((0.40, 0.46), (-0.08, 0.01))
    html = render(ev)
    assert 'class="l even">worse than historic rate, but not clearly: the interval includes 0' in (
        html
    )
    assert spearman.as_dict()["gain_is_clear"] is False


def test_compare_report_names_the_winner_of_each_measure():
    ev = _evaluation(compare=True)
    winners = {(c["section"], c["metric"]): c["winner"] for c in ev.comparison()}
    assert winners[("clv", "purchases_aggregate_error")] == "champion"  # -7% beats -12%
    assert winners[("churn", "auc")] == "train"
    assert winners[("churn", "brier")] == "tie"
    html = render(ev)
    assert "Which model wins" in html and 'class="warn"' in html
    assert "<th>train</th><th>champion</th>" in html
    assert html.count("<th>Winner</th>") == 1 + 4  # the summary and every evaluated section
    assert "<th>recency (train)</th>" in html  # baselines of the first spec, labelled as such


def test_metrics_json_has_every_value_beside_its_baselines(tmp_path):
    ev = _evaluation(compare=True)
    metrics_path, report_path = write_outputs(ev, tmp_path / "out")
    data = json.loads(metrics_path.read_text())
    assert report_path.exists()
    clv = data["models"]["train"]["sections"]["clv"]["metrics"]["purchases_aggregate_error"]
    assert clv["model"] == pytest.approx(-0.12) and clv["baselines"] == {"historic rate": 0.56}
    assert clv["verdict"] == "better" and clv["best_baseline"] == "historic rate"
    assert data["models"]["train"]["sections"]["churn"]["metrics"]["brier"]["baselines"] == {
        "recency": None
    }
    assert data["models"]["train"]["sections"]["campaigns"]["status"] == "skipped"
    assert data["models"]["train"]["sections"]["clv"]["tables"]["totals"][0]["actual"] == 1882.0
    assert {c["metric"] for c in data["comparison"]} >= {
        "auc",
        "hit_at_3",
        "realised_cross_sell_value",
    }
    flat = flat_metrics(ev)
    assert flat["train.clv.purchases_aggregate_error"] == pytest.approx(-0.12)
    assert flat["champion.churn.auc.baseline_P_alive_"] == pytest.approx(0.34)
    assert "train.churn.brier.baseline_recency" not in flat  # NaN is not logged
    assert "train.clv.spend_spearman.gain" not in flat  # no interval measured
    ev.runs[0].sections["clv"].score("spend_spearman").interval = Interval(
        (0.40, 0.46), (-0.08, -0.02)
    )
    flat = flat_metrics(ev)
    assert flat["train.clv.spend_spearman.gain"] == pytest.approx(-0.05)
    assert (flat["train.clv.spend_spearman.gain_low"], flat["train.clv.spend_spearman.high"]) == (
        -0.08,
        0.46,
    )
