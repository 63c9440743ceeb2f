"""Learning what works, end to end: a campaign log trains, gates and registers the uplift
model; decisions then follow the incremental value, with control groups and exploration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nextbest import registry
from nextbest.cli import app
from nextbest.config import Paths, load_configs
from nextbest.data import load_dataset
from nextbest.data.hillstrom import HILLSTROM_AS_OF, load_hillstrom
from nextbest.data.synthetic import generate_campaign_log
from nextbest.decision.catalog import load_catalog
from nextbest.scoring import score
from nextbest.train.pipeline import train_all

runner = CliRunner()
CONTACTED = pd.Timestamp("2024-06-01")
AS_OF = pd.Timestamp("2024-06-20")


def _catalog(path, offers, policy=None) -> object:
    """A catalog of category-less offers (value per conversion, cost per contact)."""
    raw = {
        "policy": {"top_k": len(offers), "min_expected_value": 0.0, **(policy or {})},
        "default_action": {"offer_id": "NOTHING", "name": "Nothing"},
        "offers": [
            {"offer_id": o, "name": f"offer {o}", "value": v, "cost": c, "outcome": "buy"}
            for o, v, c in offers
        ],
    }
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def synthetic_log(tmp_path_factory):
    """A randomized log with a known heterogeneous effect, as the files a user has."""
    root = tmp_path_factory.mktemp("uplift")
    world = generate_campaign_log(24000, seed=3, n_offers=2, contacted_at=str(CONTACTED.date()))
    log_path, cust_path = root / "log.csv", root / "customers.csv"
    world.log.to_csv(log_path, index=False)
    world.customers.to_csv(cust_path, index=False)
    return world, log_path, cust_path, root


@pytest.mark.slow
def test_cli_trains_uplift_from_attributes_and_scores_by_incremental_value(
    nb_home, synthetic_log, tmp_path
):
    world, log_path, cust_path, root = synthetic_log
    catalog = _catalog(tmp_path / "cat.yaml", [("OFFER-1", 1.0, 0.02), ("OFFER-2", 1.0, 0.02)])
    r = runner.invoke(
        app,
        ["train", "--campaign-log", log_path, "--customers", cust_path, "--catalog", catalog,
         "--as-of", str(AS_OF.date())],
        catch_exceptions=False,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "no transactions: CLV, churn and next best offer" in r.output
    assert "registered nextbest-uplift version 1: promoted to champion" in r.output
    assert "uplift learned" in r.output  # targeting beat every single action on this log
    out = tmp_path / "scores.parquet"
    r = runner.invoke(
        app,
        ["score", "--customers", cust_path, "--catalog", catalog, "--as-of",
         str(AS_OF.date()), "-o", out, "--no-track"],
        catch_exceptions=False,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    scores = pd.read_parquet(out)
    assert len(scores) == len(world.customers) and scores["predicted_clv"].isna().all()
    # The chosen offer pays more often than chance: the customers where the true effect of
    # OFFER-1 beats its cost get it far more often than those where it does not.
    truth = pd.DataFrame(world.true_uplift, columns=["OFFER-1", "OFFER-2"])
    truth["customer_id"] = world.customers["customer_id"].astype(str).to_numpy()
    merged = scores.merge(truth, on="customer_id")
    helps = merged["OFFER-1"] > 0.02 + 0.05
    hurts = merged["OFFER-1"] < 0.0
    got = merged["action_offer_id"] == "OFFER-1"
    assert got[helps].mean() > got[hurts].mean() + 0.3, (got[helps].mean(), got[hurts].mean())
    text = " ".join(r["text"] for rs in scores["reasons"] for r in rs[:1])
    assert "points more likely to buy with offer OFFER-" in text


@pytest.mark.slow
def test_hillstrom_three_actions_fall_back_to_the_best_single_action(nb_home):
    """Men's e-mail works for almost everyone: targeting does not pay, the gate says so."""
    ds = load_dataset("hillstrom")
    pipe = train_all(ds, load_configs(), load_catalog(ds.catalog_path), paths=Paths(nb_home))
    assert pipe.clv is None and pipe.uplift is not None
    assert not pipe.uplift.promoted_learned
    assert "falling back to the best single action: everyone: EMAIL-MENS" in " ".join(pipe.notes)
    registry.setup(Paths(nb_home))
    models = registry.load_models(load_catalog(ds.catalog_path), need_clv=False)
    decided = score(ds.customers, models, 365.0, as_of=HILLSTROM_AS_OF)
    assert (decided["action_offer_id"] == "EMAIL-MENS").all()


@pytest.mark.slow
def test_hillstrom_womens_email_targeting_beats_every_baseline(nb_home, tmp_path):
    """Women's e-mail vs none at $0.045: the learned policy is promoted (issue 11, section 7)."""
    log, customers = load_hillstrom(offers=("EMAIL-WOMENS",))
    catalog = load_catalog(
        _catalog(tmp_path / "w.yaml", [("EMAIL-WOMENS", 1.0, 0.045)], {"top_k": 1})
    )
    ds = load_dataset("hillstrom")
    ds.campaign_log, ds.customers = (
        log,
        customers[customers["customer_id"].isin(log["customer_id"])],
    )
    pipe = train_all(ds, load_configs(), catalog, paths=Paths(nb_home))
    ev = pipe.uplift.evaluation
    assert pipe.uplift.promoted_learned, ev.reason
    assert (ev.comparisons["lower"] > 0).all()
    share = ev.policies.set_index("policy").loc["uplift", "contact_share"]
    assert 0.2 < share < 0.9  # targeting: some customers are e-mailed, not all


@pytest.mark.slow
def test_training_script_registers_the_uplift_champion_and_says_why(nb_home, tmp_path):
    """training/train_uplift.py: the data scientists' script trains from the user's files."""
    world = generate_campaign_log(6000, seed=5, n_offers=1, contacted_at=str(CONTACTED.date()))
    log_path, cust_path = tmp_path / "log.csv", tmp_path / "customers.csv"
    world.log.to_csv(log_path, index=False)
    world.customers.to_csv(cust_path, index=False)
    catalog = _catalog(tmp_path / "cat.yaml", [("OFFER-1", 1.0, 0.02)])
    script = Path(__file__).parents[2] / "training" / "train_uplift.py"
    done = subprocess.run(
        [sys.executable, str(script), "--campaign-log", str(log_path), "--customers",
         str(cust_path), "--catalog", str(catalog), "--as-of", str(AS_OF.date()),
         "--learner", "t"],
        capture_output=True, text=True, env=dict(os.environ),
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["version"] == "1" and report["champion"] in {
        "learned",
        "average effect (fallback)",
    }
    assert report["why"] and {p["policy"] for p in report["policies"]} >= {"no contact"}
    registry.setup()
    assert str(registry.champion_version(registry.UPLIFT_MODEL_NAME).version) == "1"
