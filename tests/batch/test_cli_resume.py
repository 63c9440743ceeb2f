"""``nextbest score`` / ``export-audiences`` end to end with MLflow champions, and a real kill +
resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.batch.manifest import work_dir
from nextbest.cli import app
from nextbest.data.synthetic import synthetic_as_of
from tests.batch.batch_helpers import cli_env, read_scores

AS_OF = str(synthetic_as_of().date())
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_no_champion_is_fatal_with_one_message(nb_home, batch_data, tmp_path):
    out = tmp_path / "s.parquet"
    result = invoke("score", "-t", batch_data["transactions"], "--as-of", AS_OF, "-o", out)
    assert result.exit_code == 2
    assert "no 'champion' version of model 'nextbest-clv'" in result.output
    assert not out.exists() and not work_dir(out).exists()


def _score_args(batch_data, out, *extra):
    return [
        "score",
        "-t",
        batch_data["transactions"],
        "--customers",
        batch_data["customers"],
        "--contact-history",
        batch_data["history"],
        "--as-of",
        AS_OF,
        "--horizon-days",
        180,
        "--chunk-size",
        300,
        "-o",
        out,
        *extra,
    ]


@pytest.mark.slow
def test_score_then_export_audiences_from_the_command_line(champion_home, batch_data, tmp_path):
    out = tmp_path / "scores.parquet"
    result = invoke(*_score_args(batch_data, out))
    assert result.exit_code == 0, result.output
    scores = read_scores(out)
    assert scores["customer_id"].is_unique and (scores["horizon_days"] == 180).all()
    assert json.loads(scores["model_versions"][0]) == {
        "nextbest-clv": "1",
        "nextbest-churn": "1",
        "nextbest-nbo": "1",
    }
    text = result.output
    assert f"scored {scores['predicted_clv'].notna().sum():,} customers" in text
    assert "actions: " in text and "offers: " in text and "rejected 0 lines" in text
    assert "scoring: " in text and "ETA" in text  # plain progress lines (not a terminal)

    aud = tmp_path / "audiences"
    result = invoke("export-audiences", "--scores", out, "--output", aud)
    assert result.exit_code == 0, result.output
    assert (aud / "non_personalised-NEWSLETTER.csv").exists()
    default = pd.read_csv(aud / "non_personalised-NEWSLETTER.csv", dtype={"customer_id": str})
    assert batch_data["opted_out"] <= set(default["customer_id"])


@pytest.mark.slow
def test_missing_column_is_fatal_from_the_command_line(champion_home, batch_data, tmp_path):
    src = tmp_path / "tx.csv"
    batch_data["tx"].drop(columns="timestamp").head(50).to_csv(src, index=False)
    out = tmp_path / "s.parquet"
    result = invoke("score", "-t", src, "--as-of", AS_OF, "-o", out)
    assert result.exit_code == 2
    assert "missing required column(s) ['timestamp']" in result.output
    assert result.output.count("error:") == 1
    assert not out.exists()


@pytest.mark.slow
def test_killed_run_resumes_to_byte_identical_output(champion_home, batch_data, tmp_path):
    """SIGKILL a real `nextbest score` after 2 scored chunks; --resume gives the uninterrupted
    bytes."""
    reference = tmp_path / "reference.parquet"
    assert invoke(*_score_args(batch_data, reference)).exit_code == 0

    out = tmp_path / "scores.parquet"
    out.write_bytes(b"last week's scores")
    hold = Path(__file__).with_name("hold_score.py")
    cmd = [sys.executable, str(hold), "scores:2", *map(str, _score_args(batch_data, out))]
    proc = subprocess.Popen(
        cmd,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=cli_env(champion_home),
    )
    watchdog = threading.Timer(240, proc.kill)
    watchdog.start()
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "HOLDING after scores chunk 2" in line:
                break
        assert any("HOLDING" in s for s in seen), "".join(seen)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert out.read_bytes() == b"last week's scores"  # no partial file at the final path
    manifest = json.loads((work_dir(out) / "manifest.json").read_text())
    assert len(manifest["scores"]) == 2 and len(manifest["features"]) >= 4

    changed = invoke(
        *_score_args(batch_data, out, "--resume")[:-1], "--horizon-days", 90, "--resume"
    )
    assert (
        changed.exit_code == 2
        and "cannot resume" in changed.output
        and "horizon_days" in changed.output
    )

    result = invoke(*_score_args(batch_data, out, "--resume"))
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output
    assert out.read_bytes() == reference.read_bytes()
    assert not work_dir(out).exists()
