"""Fixtures for batch scoring: small synthetic data, consent, contact history, fitted models.

Two kinds of models:

* ``bundle`` - fitted in memory on 1,500 synthetic customers (the real
  training functions, small forests, no MLflow): for tests of the chunking,
  the rejects and the export (seconds);
* ``champion_home`` - a ``NEXTBEST_HOME`` where ``train_all`` registered and
  promoted champions (lenient gates: on pure BG/NBD data the P(alive)
  baseline *is* the true model): for the command line, the killed-and-resumed
  run and Spark (slow).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.config import load_config
from nextbest.data import Dataset
from nextbest.data.synthetic import generate_transactions, synthetic_as_of

N_CUSTOMERS = 1500
SEED = 7
AS_OF = synthetic_as_of()  # 2024-12-30
SMALL_FOREST = {"n_estimators": 25, "n_jobs": 1}


def configs() -> dict[str, dict]:
    """The shipped configs with lenient gates, BG/NBD only and small forests (fast, always
    promoted)."""
    clv = load_config(
        "clv",
        {
            "count_models": ["bgnbd"],
            "thresholds": {
                "max_abs_aggregate_error": 1e9,
                "max_holdout_mae_ratio_vs_baseline": 1e9,
            },
        },
    )
    churn = load_config(
        "churn",
        {
            "lightgbm": SMALL_FOREST,
            "thresholds": {"min_auc_gain_vs_baselines": -1.0, "max_brier": 1.0},
        },
    )
    nbo = load_config(
        "nbo", {"lightgbm": SMALL_FOREST, "thresholds": {"min_hit_gain_vs_baselines": -1.0}}
    )
    return {"clv": clv, "churn": churn, "nbo": nbo}


@pytest.fixture(scope="session")
def batch_data(tmp_path_factory) -> dict:
    """Transactions (Parquet), customers with 10% opted out, and a contact history, as files."""
    root = tmp_path_factory.mktemp("batch_data")
    tx = generate_transactions(N_CUSTOMERS, seed=SEED)
    ids = np.sort(tx["customer_id"].unique())
    rng = np.random.default_rng(SEED)
    opted_out = rng.random(ids.size) < 0.10
    customers = pd.DataFrame(
        {"customer_id": ids, "consent_profiling": np.where(opted_out, "no", "yes")}
    )
    offers = ["XS-PRODUCE", "XS-MEAT", "XS-DELI", "RET-WINBACK", "XS-FLORAL"]
    n = 3000
    history = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, n),
            "offer_id": rng.choice(offers, n),
            "timestamp": AS_OF - pd.to_timedelta(rng.integers(1, 45, n), unit="D"),
        }
    )
    paths = {
        "transactions": root / "tx.parquet",
        "customers": root / "customers.csv",
        "history": root / "history.csv",
    }
    tx.to_parquet(paths["transactions"], index=False)
    customers.to_csv(paths["customers"], index=False)
    history.to_csv(paths["history"], index=False)
    return {**paths, "tx": tx, "opted_out": set(ids[opted_out]), "root": root}


def _dataset(batch_data) -> Dataset:
    from nextbest.data.files import read_table
    from nextbest.data.schema import validate_customers

    return Dataset(
        "synthetic", batch_data["tx"], validate_customers(read_table(batch_data["customers"]))
    )


@pytest.fixture(scope="session")
def bundle(batch_data):
    """Models fitted in memory with the real training functions (no MLflow), as a ModelSet."""
    from nextbest.decision.catalog import load_catalog
    from nextbest.features.build import build_context
    from nextbest.features.rfm import rfm_summary
    from nextbest.models.clv import ClvModel
    from nextbest.scoring import ModelSet
    from nextbest.train.churn import train_churn
    from nextbest.train.clv import prepare_transactions
    from nextbest.train.nbo import train_nbo

    cfg = configs()
    catalog = load_catalog()
    ds = _dataset(batch_data)
    tx = prepare_transactions(ds, AS_OF)[0]
    clv = ClvModel("bgnbd", time_unit_days=7.0).fit(rfm_summary(tx, AS_OF, 7.0))
    ctx = build_context(tx, ds.customers, catalog.categories)
    churn = train_churn(ctx, AS_OF, cfg["churn"], cfg["clv"], "bgnbd").model
    nbo = train_nbo(ctx, AS_OF, cfg["nbo"], catalog, 7.0).model
    return ModelSet(
        clv=clv,
        catalog=catalog,
        churn=churn,
        nbo=nbo,
        versions={"nextbest-clv": "t1", "nextbest-churn": "t1", "nextbest-nbo": "t1"},
    )


@pytest.fixture(scope="session")
def trained_home(batch_data, tmp_path_factory) -> Path:
    """A NEXTBEST_HOME with champions of all three models (``train_all`` on the test data)."""
    from nextbest.decision.catalog import load_catalog
    from nextbest.train.pipeline import train_all

    home = tmp_path_factory.mktemp("batch_home") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBEST_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MPLBACKEND", "Agg")
        pipe = train_all(_dataset(batch_data), configs(), load_catalog(), as_of=AS_OF)
    assert all(pipe.promoted.values()), pipe.promoted
    return home


@pytest.fixture()
def champion_home(trained_home, monkeypatch) -> Path:
    """Point this test (and the subprocesses it starts) at the trained champions."""
    monkeypatch.setenv("NEXTBEST_HOME", str(trained_home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return trained_home


@pytest.fixture(scope="session")
def scored(batch_data, bundle, tmp_path_factory):
    """A scores file of the batch data, written by the local engine with the in-memory models."""
    from nextbest.batch.command import build_job
    from nextbest.batch.job import run_local

    out = tmp_path_factory.mktemp("scored") / "scores.parquet"
    job = build_job(
        None,
        batch_data["transactions"],
        batch_data["customers"],
        {},
        str(AS_OF.date()),
        365,
        out,
        None,
        100_000,
        False,
        bundle.catalog,
    )
    run_local(job, bundle)
    return out
