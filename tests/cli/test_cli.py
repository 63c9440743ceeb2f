"""The nextbest command line, in-process, on a user's CSV made by `nextbest generate`."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("generate", "train", "score", "run"):
        assert command in result.output


def test_generate_writes_seeded_file(tmp_path):
    out = tmp_path / "tx.parquet"
    assert invoke("generate", "--n-customers", 500, "--seed", 3, "--output", out).exit_code == 0
    frame = pd.read_parquet(out)
    assert frame["customer_id"].nunique() == 500
    invoke("generate", "--n-customers", 500, "--seed", 3, "--output", tmp_path / "again.parquet")
    pd.testing.assert_frame_equal(frame, pd.read_parquet(tmp_path / "again.parquet"))


def test_score_without_champion_fails_with_one_clear_message(nb_home, tmp_path):
    tx = tmp_path / "tx.parquet"
    invoke("generate", "--n-customers", 200, "--output", tx)
    result = invoke("score", "--transactions", tx, "--output", tmp_path / "s.parquet")
    assert result.exit_code == 2
    assert "no 'champion' version of model 'nextbest-clv'" in result.output


def test_train_rejects_file_without_required_column(nb_home, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("customer_id,amount\na,1\n")
    result = invoke("train", "--transactions", path)
    assert result.exit_code == 2
    assert "missing required column(s) ['timestamp']" in result.output


def test_dataset_and_transactions_are_exclusive(nb_home, tmp_path):
    result = invoke("train", "--dataset", "cdnow", "--transactions", tmp_path / "x.csv")
    assert result.exit_code == 2 and "exactly one of --dataset or --transactions" in result.output


@pytest.mark.slow
def test_train_then_score_a_users_csv_with_consent_and_rejects(nb_home, tmp_path):
    frame = __import__("nextbest.data.synthetic", fromlist=["x"]).generate_transactions(
        3000, seed=5
    )
    csv = tmp_path / "orders.csv"
    renamed = frame.rename(columns={"customer_id": "HH", "timestamp": "WHEN", "amount": "VALUE"})
    bad = pd.DataFrame(
        {"HH": ["", "S0001"], "WHEN": ["2024-02-01", "not a date"], "VALUE": [1.0, 2.0]}
    )
    pd.concat([renamed, bad], ignore_index=True).to_csv(csv, index=False)
    opted_out = ["S0000", "S0001", "S0002"]
    customers = tmp_path / "customers.csv"
    pd.DataFrame({"customer_id": sorted(frame["customer_id"].unique())}).assign(
        consent_profiling=lambda d: ~d["customer_id"].isin(opted_out)
    ).to_csv(customers, index=False)
    mapping = ["--map", "customer_id=HH", "--map", "timestamp=WHEN", "--map", "amount=VALUE"]
    # On pure BG/NBD data P(alive) is the true churn model, so a classifier cannot be asked to beat
    # it by a margin: the user relaxes the gates in their own config directory.
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "churn.yaml").write_text(
        "thresholds: {min_auc_gain_vs_baselines: -1.0, max_brier: 1.0}\nlightgbm: {n_estimators: "
        "60}\n"
    )
    (config_dir / "nbo.yaml").write_text(
        "thresholds: {min_hit_gain_vs_baselines: -1.0}\nlightgbm: {n_estimators: 60}\n"
    )

    result = invoke(
        "train",
        "--transactions",
        csv,
        "--customers",
        customers,
        *mapping,
        "--as-of",
        "2024-12-01",
        "--horizon-days",
        90,
        "--config-dir",
        config_dir,
    )
    assert result.exit_code == 0, result.output
    for name in ("nextbest-clv", "nextbest-churn", "nextbest-nbo"):
        assert f"registered {name} version 1: promoted to champion" in result.output
    assert "rejected rows written to" in result.output

    out = tmp_path / "scores.parquet"
    result = invoke(
        "score",
        "--transactions",
        csv,
        "--customers",
        customers,
        *mapping,
        "--as-of",
        "2024-12-01",
        "--horizon-days",
        90,
        "--output",
        out,
    )
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(out)
    assert {
        "customer_id",
        "p_alive",
        "expected_purchases",
        "expected_spend",
        "predicted_clv",
        "churn_probability",
        "action",
        "action_offer_id",
        "offers",
        "reasons",
        "as_of",
        "horizon_days",
        "model_versions",
    } <= set(scores.columns)
    assert scores["customer_id"].is_unique
    first = frame.groupby("customer_id")["timestamp"].min()
    assert len(scores) == (first < pd.Timestamp("2024-12-01")).sum()
    gone = scores[scores["customer_id"].isin(opted_out)]
    assert (
        len(gone) == 3
        and gone["predicted_clv"].isna().all()
        and not gone["consent_profiling"].any()
    )
    assert (gone["action"] == "non_personalised").all() and gone["churn_probability"].isna().all()
    kept = scores[~scores["customer_id"].isin(opted_out)]
    assert kept["predicted_clv"].notna().all() and (kept["predicted_clv"] >= 0).all()
    assert (scores["horizon_days"] == 90).all()
    versions = __import__("json").loads(scores["model_versions"].iloc[0])
    assert versions == {"nextbest-clv": "1", "nextbest-churn": "1", "nextbest-nbo": "1"}
    rejects = pd.read_parquet(tmp_path / "scores.rejects.parquet")
    reasons = set(rejects["reason"])
    assert "missing customer_id" in reasons and "unparsable timestamp" in reasons
    assert any(r.startswith("timestamp on or after as_of") for r in reasons)
    assert not list(tmp_path.glob("*.tmp"))
