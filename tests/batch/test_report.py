"""The scoring report and the segment export: what marketing reads after `nextbest score`."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest

from nextbest.batch.report import report_paths, write_score_report
from nextbest.batch.segments import NOT_PROFILED, export_segments, segment_frame, value_tiers
from nextbest.errors import SchemaError
from tests.batch.batch_helpers import read_scores
from tests.browser import artifacts_dir, chromium_browser


def test_value_tiers_split_20_30_50_by_rank():
    clv = np.arange(1000, dtype=float)[::-1]  # customer 0 is the most valuable
    tiers = value_tiers(clv)
    assert (tiers[:200] == "high").all() and (tiers[200:500] == "medium").all()
    assert (tiers[500:] == "low").all()
    assert value_tiers(np.array([np.nan, 1.0]))[0] == ""


def test_segments_follow_the_documented_bands(scored):
    scores = read_scores(scored)
    flat = scores.assign(reason="", top_offer_id=None, top_ev=np.nan)
    seg = segment_frame(flat)
    profiled = scores["consent_profiling"].to_numpy()
    assert (seg.loc[~profiled, "segment"] == NOT_PROFILED).all()
    churn = scores.loc[profiled, "churn_probability"].to_numpy()
    risk = seg.loc[profiled, "churn_risk"].to_numpy()
    assert (risk[churn < 0.2] == "low").all() and (risk[churn >= 0.5] == "high").all()
    alive = scores.loc[profiled, "p_alive"].to_numpy()
    assert (seg.loc[profiled, "activity"].to_numpy()[alive < 0.5] == "lapsing").all()
    assert seg["segment"].str.contains(" value, .* risk, ").sum() == profiled.sum()


def test_report_is_self_contained_and_adds_up(scored, bundle, tmp_path):
    out = tmp_path / "scores.parquet"
    shutil.copy(scored, out)
    report = write_score_report(out, bundle.catalog)
    html = report.path.read_text()
    assert report.path == report_paths(out)[0] and report.path.name == "scores.report.html"
    for title in ("Segments", "Actions and offers", "Channels and consent", "Control group"):
        assert f">{title}</h2>" in html
    # nothing outside the file: no script, no external URL, figures inline
    assert "<script" not in html and not re.search(r"(src|href)=['\"]?https?:", html)
    assert html.count("data:image/png;base64,") >= 2
    scores = read_scores(out)
    assert f"Next best actions for {len(scores):,} customers" in html
    n_opted = int((~scores["consent_profiling"]).sum())
    assert f"{n_opted:,} objected" in html
    assert "No control group in this run" in html
    assert "first run of this output" in html
    seg = pd.read_parquet(report.segments_path)
    assert len(seg) == len(scores) and set(seg["customer_id"]) == set(scores["customer_id"])


def test_second_run_reports_what_changed(scored, bundle, tmp_path):
    out = tmp_path / "scores.parquet"
    shutil.copy(scored, out)
    write_score_report(out, bundle.catalog)
    # the same customers, three of whom have since objected to profiling
    scores = pd.read_parquet(out)
    gone = scores.index[scores["consent_profiling"]][:3]
    scores.loc[gone, "consent_profiling"] = False
    scores.loc[gone, "action"] = "non_personalised"
    scores.to_parquet(out, index=False)
    html = write_score_report(out, bundle.catalog).path.read_text()
    assert "3 customers objected to profiling since the previous run" in html
    assert "first run of this output" not in html


def test_segments_export_for_a_crm(scored, tmp_path):
    path, counts = export_segments(scored, tmp_path / "seg.csv")
    seg = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(seg.columns) == ["customer_id", "segment", "value_tier", "churn_risk", "activity"]
    assert int(counts.sum()) == len(seg) == len(read_scores(scored))
    with pytest.raises(SchemaError, match=r"\.csv or \.parquet"):
        export_segments(scored, tmp_path / "seg.xlsx")


@pytest.mark.slow
def test_report_renders_in_chromium_without_errors_or_requests(scored, bundle, tmp_path):
    from playwright.sync_api import sync_playwright

    out = tmp_path / "scores.parquet"
    shutil.copy(scored, out)
    report = write_score_report(out, bundle.catalog)
    with sync_playwright() as pw:
        browser = chromium_browser(pw)
        page = browser.new_page(viewport={"width": 1200, "height": 1600})
        errors, requests = [], []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.path.as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)"
        )
        page.screenshot(path=str(artifacts_dir(tmp_path) / "score-report.png"), full_page=True)
        browser.close()
    assert errors == []
    outside = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert outside == [] and requests[0] == report.path.as_uri()
    assert images and all(images)
