"""Backtests at several cut-offs: the checks, the summary across periods and its text."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from nextbest.errors import InputError
from nextbest.evaluate.periods import check_periods, period_summary, summary_rows, write_summary
from nextbest.evaluate.results import HIGHER, ZERO, ModelRun, Score, Section
from nextbest.evaluate.run import Evaluation
from nextbest.models.evaluation import Interval


def _period(as_of: str, hit: float, error: float, with_churn: bool = True) -> Evaluation:
    nbo = Section(
        "nbo",
        "Next best offer",
        "",
        scores=[
            Score("hit_at_3", "hit@3", hit, {"last bought": 0.86}, HIGHER, True, "{:.1%}"),
            Score("pair_auc", "pair AUC", 0.8, {"last bought": 0.7}, HIGHER, False),
        ],
    )
    nbo.scores[0].interval = Interval((hit - 0.02, hit + 0.02), (hit - 0.86 - 0.03, hit - 0.84))
    clv = Section(
        "clv",
        "Customer lifetime value",
        "",
        scores=[
            Score("err", "revenue error", error, {"historic rate": 0.02}, ZERO, True, "{:+.1%}")
        ],
    )
    sections = {"clv": clv, "nbo": nbo}
    if with_churn:
        sections["churn"] = Section(
            "churn", "Churn", "", scores=[Score("auc", "AUC", 0.88, {"recency": 0.8}, HIGHER, True)]
        )
    else:
        sections["churn"] = Section.skipped("churn", "Churn", "too little history")
    return Evaluation("cj", pd.Timestamp(as_of), 90, [ModelRun("train", {}, sections)])


def test_periods_are_distinct_sorted_and_take_one_model_spec():
    assert check_periods(["2017-10-01", "2017-08-01"], ("train",)) == ["2017-08-01", "2017-10-01"]
    with pytest.raises(InputError, match="repeats a day"):
        check_periods(["2017-08-01", "2017-08-01"], ("train",))
    with pytest.raises(InputError, match="--compare takes one --as-of"):
        check_periods(["2017-08-01", "2017-10-01"], ("train", "champion"))
    assert check_periods(["2017-08-01"], ("train", "champion")) == ["2017-08-01"]


def test_summary_gives_each_periods_gain_the_mean_and_the_tally():
    results = [
        _period("2017-08-01", 0.88, 0.01, with_churn=False),
        _period("2017-10-01", 0.90, -0.03),
    ]
    summary = period_summary(results)
    assert summary["as_of"] == ["2017-08-01", "2017-10-01"]
    by = {(m["section"], m["metric"]): m for m in summary["measures"]}
    assert set(by) == {("clv", "err"), ("nbo", "hit_at_3"), ("churn", "auc")}  # headlines only
    hit = by[("nbo", "hit_at_3")]
    assert [p["gain"] for p in hit["periods"]] == pytest.approx([0.02, 0.04])
    assert hit["mean_gain"] == pytest.approx(0.03)
    assert hit["periods"][1]["gain_interval"] == pytest.approx([0.01, 0.06])
    assert (hit["better"], hit["tie"], hit["worse"]) == (2, 0, 0)
    err = by[("clv", "err")]  # closer to zero: 1% beats 2%, 3% loses to it
    assert [p["gain"] for p in err["periods"]] == pytest.approx([0.01, -0.01])
    assert (err["better"], err["worse"]) == (1, 1) and err["periods"][0]["gain_interval"] is None
    churn = by[("churn", "auc")]
    assert churn["periods"][0] == {"as_of": "2017-08-01", "status": "not evaluated"}
    assert churn["mean_gain"] == pytest.approx(0.08) and churn["better"] == 1

    head, rows = summary_rows(results)
    assert head == ["area", "measure", "2017-08-01", "2017-10-01", "better / par / worse"]
    row = next(r for r in rows if r[1] == "hit@3")
    assert row[2:] == [
        "88.0% (+2.0 pts [-1.0, +4.0])",
        "90.0% (+4.0 pts [+1.0, +6.0])",
        "2 / 0 / 0",
    ]
    assert next(r for r in rows if r[1] == "AUC")[2] == "n/a"


def test_summary_page_links_each_period_and_colours_by_the_gains_interval(tmp_path):
    results = [_period("2017-08-01", 0.88, 0.01), _period("2017-10-01", 0.90, -0.03)]
    write_summary(results, tmp_path)
    html = (tmp_path / "summary.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>")
    assert '<a href="2017-08-01/report.html">2017-08-01</a>' in html
    assert '<a href="2017-10-01/report.html">2017-10-01</a>' in html
    assert not re.search(r"https?://", html) and "<script" not in html
    # hit@3: the first interval includes 0 (grey), the second lies above it (green).
    assert '<td class="even">88.0% (+2.0 pts [-1.0, +4.0])</td>' in html
    assert '<td class="good">90.0% (+4.0 pts [+1.0, +6.0])</td>' in html
    assert '<td class="even">+1.0% (+1.0 pts)</td>' in html  # no interval measured: grey


def test_summary_json_is_strict_json(tmp_path):
    results = [_period("2017-08-01", 0.88, float("nan")), _period("2017-10-01", 0.90, 0.0)]
    path = write_summary(results, tmp_path)
    data = json.loads(path.read_text())
    err = next(m for m in data["measures"] if m["metric"] == "err")
    assert err["periods"][0]["model"] is None and err["periods"][0]["gain"] is None
