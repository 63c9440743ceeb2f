"""Backtests end to end: the CDNOW paper's holdout through `nextbest evaluate`, and a synthetic
dataset with categories (every section, registry versions, --compare).

LightGBM gets 20 trees and 4 cutoffs instead of 80 and 6-7 (config override): the expensive
part, not what is tested.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.config import models_dir

pytestmark = pytest.mark.slow

runner = CliRunner()


@pytest.fixture()
def light_configs(tmp_path):
    """models/*.yaml with small LightGBM models, 4 cutoffs and BG/NBD only, in a private config
    dir."""
    out = tmp_path / "configs"
    out.mkdir()
    for name in ("clv", "churn", "nbo"):
        cfg = yaml.safe_load((models_dir() / f"{name}.yaml").read_text())
        if "lightgbm" in cfg:
            cfg["lightgbm"]["n_estimators"] = 20
            cfg["n_cutoffs"] = 4
        if name == "clv":
            cfg["count_models"] = ["bgnbd"]
        (out / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    return out


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _backtest(dataset: str, as_of: str, horizon: int, configs, out, *more):
    """``nextbest evaluate`` on a bundled dataset at one cut-off; asserts it succeeded."""
    result = _invoke(
        "evaluate",
        "--dataset",
        dataset,
        "--as-of",
        as_of,
        "--horizon-days",
        horizon,
        "--config-dir",
        configs,
        "--output",
        out,
        *more,
    )
    assert result.exit_code == 0, result.output
    return result


def test_cdnow_backtest_reproduces_Fader_Hardie_Lee_holdout_totals(
    nb_home, tmp_path, light_configs
):
    """As of 1997-10-01, 273 days (weeks 40-78): 1,882 actual repeat purchases, BG/NBD predicts
    about 1,653."""
    import mlflow

    out = tmp_path / "report"
    result = _backtest("cdnow", "1997-10-01", 273, light_configs, out, "--count-model", "bgnbd")
    data = json.loads((out / "metrics.json").read_text())
    clv = data["models"]["train"]["sections"]["clv"]
    totals = {row["quantity"]: row for row in clv["tables"]["totals"]}["repeat purchases"]
    assert totals["actual"] == 1882
    assert totals["model"] == pytest.approx(1653, abs=2)
    error = clv["metrics"]["purchases_aggregate_error"]
    assert error["model"] == pytest.approx(-0.12, abs=0.005) and error["verdict"] == "better"
    for key in (
        "purchases_mae",
        "spend_mae",
        "spend_spearman",
        "spend_normalized_gini",
        "spend_decile_mape",
    ):
        assert clv["metrics"][key]["baselines"]["historic rate"] is not None, key
    # CDNOW has no product categories: offers and decisions are skipped with the reason, not a
    # crash.
    sections = data["models"]["train"]["sections"]
    assert sections["nbo"]["status"] == "skipped" and "categories" in sections["nbo"]["notes"][0]
    assert sections["decision"]["status"] == "skipped"
    assert any("no product categories" in n for n in data["notes"])
    assert (
        "Backtest on cdnow: 273 days from 1997-10-01" in result.output
        and "better than" in result.output
    )

    html = (out / "report.html").read_text()
    for section in ("summary", "clv", "churn", "nbo", "decision"):
        assert f'id="{section}"' in html
    assert not re.search(r"https?://", html)
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 5
    assert "1,882 repeat purchases" in html

    run = mlflow.get_run(data["mlflow_run_id"])
    assert run.data.tags["stage"] == "evaluate"
    assert run.data.metrics["clv.purchases_aggregate_error"] == pytest.approx(error["model"])
    assert (
        run.data.metrics["clv.purchases_mae.baseline_historic_rate"]
        > run.data.metrics["clv.purchases_mae"]
    )
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"metrics.json", "report.html", "figures"} <= artifacts


# The CLV champion by alias, the others by version (the offer model may miss its gate on this small
# data).
REGISTERED = "clv=champion,churn=1,nbo=1"


def _synthetic_dataset(tmp_path):
    from nextbest.data.synthetic import generate_transactions

    tx = generate_transactions(800, seed=7)
    path = tmp_path / "orders.parquet"
    tx.to_parquet(path, index=False)
    return path, tx


def test_synthetic_backtest_every_section_and_compare_with_registered_versions(
    nb_home, tmp_path, light_configs
):
    path, tx = _synthetic_dataset(tmp_path)
    as_of = (tx["timestamp"].max().normalize() + pd.Timedelta(days=1 - 60)).date()
    result = _invoke("train", "--transactions", path, "--config-dir", light_configs)
    assert result.exit_code == 0, result.output

    out = tmp_path / "compare"
    result = _invoke(
        "evaluate",
        "--transactions",
        path,
        "--as-of",
        as_of,
        "--horizon-days",
        60,
        "--config-dir",
        light_configs,
        "--compare",
        "train",
        REGISTERED,
        "--output",
        out,
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "metrics.json").read_text())
    for label in ("train", REGISTERED):
        sections = data["models"][label]["sections"]
        assert {k: s["status"] for k, s in sections.items()} == {
            "clv": "ok",
            "churn": "ok",
            "nbo": "ok",
            "decision": "ok",
        }, label
    train = data["models"]["train"]["sections"]
    assert set(train["churn"]["metrics"]["auc"]["baselines"]) == {"recency", "P(alive)"}
    assert set(train["nbo"]["metrics"]["hit_at_3"]["baselines"]) == {"popularity", "last bought"}
    # Bootstrap intervals over customers: around the model's value and its gain over the best
    # baseline, for the measures the quality targets name.
    for section, key in [
        ("clv", "spend_spearman"),
        ("clv", "spend_normalized_gini"),
        ("clv", "spend_aggregate_error"),
        ("churn", "auc"),
        ("churn", "brier"),
        ("nbo", "hit_at_3"),
    ]:
        m = train[section]["metrics"][key]
        lo, hi = m["interval"]["model"]
        assert lo <= m["model"] <= hi, (section, key)
        lo, hi = m["interval"]["gain"]
        assert lo <= m["gain_vs_best_baseline"] <= hi and hi - lo > 0, (section, key)
    assert 0 <= train["nbo"]["metrics"]["hit_at_3"]["interval"]["model"][0] <= 1
    policies = {r["policy"]: r for r in train["decision"]["tables"]["policies"]}
    assert set(policies) == {"model", "random offer", "rule"}
    assert all(r["contacted"] <= r["customers"] for r in policies.values())
    # The registered models were trained on all the data: the report must say they have seen the
    # horizon.
    registered = data["models"][REGISTERED]
    assert sum(n.startswith("WARNING") and "leakage" in n for n in registered["notes"]) == 3
    assert registered["versions"] == {
        "nextbest-clv": "1",
        "nextbest-churn": "1",
        "nextbest-nbo": "1",
    }
    winners = {(c["section"], c["metric"]): c["winner"] for c in data["comparison"]}
    assert winners[("churn", "auc")] in {"train", REGISTERED, "tie"}
    assert len(winners) >= 15
    html = (out / "report.html").read_text()
    assert "Which model wins" in html and not re.search(r"https?://", html)
    assert "winner" in result.output


def test_completejourney_backtest_carries_intervals_on_every_main_measure(
    nb_home, tmp_path, light_configs
):
    """Complete Journey from 2017-10-01: every section runs, coupon campaigns included, and the
    main measures carry bootstrap intervals over customers (households for the campaigns, which
    have several targets each)."""
    out = tmp_path / "cj"
    result = _backtest("completejourney", "2017-10-01", 90, light_configs, out)
    sections = json.loads((out / "metrics.json").read_text())["models"]["train"]["sections"]
    assert {k: s["status"] for k, s in sections.items()} == dict.fromkeys(
        ("clv", "churn", "nbo", "campaigns", "decision"), "ok"
    )
    measured = {
        (name, key): m
        for name, s in sections.items()
        for key, m in s["metrics"].items()
        if "interval" in m
    }
    assert set(measured) == {
        ("clv", "purchases_aggregate_error"),
        ("clv", "purchases_mae"),
        ("clv", "spend_aggregate_error"),
        ("clv", "spend_mae"),
        ("clv", "spend_spearman"),
        ("clv", "spend_normalized_gini"),
        ("churn", "auc"),
        ("churn", "brier"),
        ("nbo", "hit_at_3"),
        ("campaigns", "redemption_auc"),
        ("decision", "realised_cross_sell_value"),
        ("decision", "cross_sell_conversion_rate"),
    }
    for where, m in measured.items():
        lo, hi = m["interval"]["model"]
        assert lo < m["model"] < hi, where
        lo, hi = m["interval"]["gain"]
        assert lo < m["gain_vs_best_baseline"] < hi, where
    # The verdict column of the terminal summary shows gains with their intervals.
    assert re.search(r"[+-]\d[.\d]* \[[+-]\d", result.output.replace("│", " "))


def test_several_cut_offs_give_a_backtest_each_and_a_summary(nb_home, tmp_path, light_configs):
    path, tx = _synthetic_dataset(tmp_path)
    last = tx["timestamp"].max().normalize() + pd.Timedelta(days=1)
    days = [str((last - pd.Timedelta(days=d)).date()) for d in (60, 90)]
    out = tmp_path / "periods"
    args = ["evaluate", "--transactions", path, "--horizon-days", 60, "--output", out]
    result = _invoke(*args, "--as-of", days[0], "--as-of", days[1], "--config-dir", light_configs)
    assert result.exit_code == 0, result.output
    for day in days:
        metrics = json.loads((out / day / "metrics.json").read_text())
        assert metrics["as_of"] == day and (out / day / "report.html").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["as_of"] == sorted(days)
    page = (out / "summary.html").read_text()
    assert all(f'<a href="{day}/report.html">' in page for day in days)
    hit = next(m for m in summary["measures"] if m["metric"] == "hit_at_3")
    assert [p["as_of"] for p in hit["periods"]] == sorted(days)
    assert hit["better"] + hit["tie"] + hit["worse"] == 2
    assert hit["mean_gain"] == pytest.approx(sum(p["gain"] for p in hit["periods"]) / 2)
    assert re.search(r"\d / \d / \d", result.output) and "summary.json" in result.output
    # Several cut-offs and --compare do not mix: a clear error, nothing written.
    result = runner.invoke(
        app,
        [str(a) for a in [*args, "--as-of", days[0], "--as-of", days[1]]]
        + ["--compare", "train", "champion", "--output", str(tmp_path / "no")],
    )
    assert result.exit_code == 2 and "--compare takes one --as-of" in result.output
    assert not (tmp_path / "no").exists()
    # A cut-off whose horizon runs past the data is refused before any period runs.
    late = str(last.date())
    result = runner.invoke(
        app,
        [str(a) for a in [*args, "--as-of", days[0], "--as-of", late]]
        + ["--output", str(tmp_path / "late")],
    )
    assert result.exit_code == 2 and f"after as_of {late}" in result.output
    assert not (tmp_path / "late").exists()


def test_the_same_backtest_twice_gives_the_same_figures(tmp_path, monkeypatch, light_configs):
    """Complete Journey before 2017-06-01 with every count model a candidate: Pareto/NBD wins the
    inner split and its fit once started from numpy's unseeded random draw, so two runs gave
    different CLV and churn figures. Every number must now repeat exactly."""
    clv = yaml.safe_load((light_configs / "clv.yaml").read_text())
    clv["count_models"] = ["bgnbd", "pareto", "mbgnbd"]
    (light_configs / "clv.yaml").write_text(yaml.safe_dump(clv))
    runs = []
    for i in range(2):
        monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / f"home{i}"))
        out = tmp_path / f"run{i}"
        _backtest("completejourney", "2017-06-01", 60, light_configs, out)
        data = json.loads((out / "metrics.json").read_text())
        runs.append((data["models"], data["comparison"]))
    assert "pareto" in json.dumps(runs[0][0]["train"]["notes"]).lower()
    assert runs[0] == runs[1]


def test_a_period_among_several_equals_its_backtest_alone_with_events_counted_once(
    nb_home, tmp_path, light_configs, monkeypatch
):
    """Several cut-offs fold the event store into the data once, before the first backtest: a
    purchase event inside the first horizon counts once, and that period's figures equal the same
    backtest run alone."""
    path, tx = _synthetic_dataset(tmp_path)
    last = tx["timestamp"].max().normalize() + pd.Timedelta(days=1)
    days = [str((last - pd.Timedelta(days=d)).date()) for d in (90, 60)]
    buyer = str(tx["customer_id"].iloc[0])
    event = {
        "type": "purchase",
        "customer_id": buyer,
        "timestamp": str((pd.Timestamp(days[0]) + pd.Timedelta(days=3)).date()),
        "amount": 1000.0,
        "event_id": "big-1",
    }
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(event) + "\n")
    assert _invoke("events", "ingest", events).exit_code == 0
    common = ["evaluate", "--transactions", path, "--horizon-days", 60]
    common += ["--config-dir", light_configs]
    alone = _invoke(*common, "--as-of", days[0], "--output", tmp_path / "alone")
    assert alone.exit_code == 0, alone.output
    both = _invoke(*common, "--as-of", days[0], "--as-of", days[1], "--output", tmp_path / "both")
    assert both.exit_code == 0, both.output

    def figures(folder):
        data = json.loads((folder / "metrics.json").read_text())
        return data["models"]["train"]["sections"]

    one, many = figures(tmp_path / "alone"), figures(tmp_path / "both" / days[0])
    assert one == many
    # Without the store the same backtest sees $1,000 less in the horizon: counted once above.
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "no-events"))
    bare = _invoke(*common, "--as-of", days[0], "--output", tmp_path / "bare")
    assert bare.exit_code == 0, bare.output

    def actual_revenue(sections):
        totals = {r["quantity"]: r for r in sections["clv"]["tables"]["totals"]}
        return totals["revenue ($)"]["actual"]

    assert actual_revenue(one) == pytest.approx(actual_revenue(figures(tmp_path / "bare")) + 1000)
