"""Shared fixtures: real bundled data (loaded once) and an isolated NEXTBEST_HOME."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import settings

from nextbest.data.cdnow import load_cdnow

# Hypothesis keeps its example database and constants out of the work tree, and is
# derandomised so a run is reproducible.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="nextbest-hypothesis-")
)
settings.register_profile(
    "nextbest", database=None, derandomize=True, deadline=None, max_examples=60
)
settings.load_profile("nextbest")
# Tests that do not ask for their own home (nb_home) still never write into the work tree
# (e.g. the compiled-trees cache); .ci/run sets a temporary home too.
os.environ.setdefault("NEXTBEST_HOME", tempfile.mkdtemp(prefix="nextbest-test-home-"))
# The in-process services of tests read Prometheus multiprocess files, as under `bentoml serve`;
# prometheus_client picks file-backed values only if this is set before its first import, which
# a test in any folder may do first.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="nextbest-prometheus-"))


@pytest.fixture(scope="session")
def cdnow_tx():
    """The CDNOW 2,357-customer sample (lifetimes' bundled file)."""
    return load_cdnow()


@pytest.fixture()
def nb_home(tmp_path, monkeypatch):
    """A private NEXTBEST_HOME with the MLflow store inside it."""
    home = tmp_path / "home"
    monkeypatch.setenv("NEXTBEST_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return home


@pytest.fixture(scope="session")
def synthetic_world():
    """Seeded synthetic customers with trained CLV, churn and offer models (no MLflow).

    Returns a dict with ``transactions``, ``customers``, ``catalog``, ``ctx``,
    ``as_of``, ``bundle`` and the training results.
    """
    import pandas as pd

    from nextbest.config import load_config
    from nextbest.data.schema import validate_transactions
    from nextbest.data.synthetic import SyntheticParams, generate_transactions, synthetic_as_of
    from nextbest.decision.catalog import load_catalog
    from nextbest.features.build import build_context, category_popularity, features_at
    from nextbest.models.clv import ClvModel
    from nextbest.scoring import ModelSet
    from nextbest.train.churn import train_churn
    from nextbest.train.nbo import train_nbo

    # Grocery-like shoppers (about one visit a week, slow dropout), not CDNOW's rare buyers.
    params = SyntheticParams(r=2.0, alpha=2.5, a=1.0, b=60.0)
    tx = validate_transactions(generate_transactions(1500, seed=21, params=params)).transactions
    ids = sorted(tx["customer_id"].unique())
    customers = pd.DataFrame({"customer_id": ids, "consent_profiling": True})
    catalog = load_catalog()
    as_of = synthetic_as_of(params)
    ctx = build_context(tx, customers, catalog.categories)
    clv_cfg = load_config("clv")
    features = features_at(ctx, as_of, 7.0)
    clv = ClvModel(count_model="bgnbd").fit(features)
    light = {"lightgbm": {"n_estimators": 80, "n_jobs": 1}}
    churn = train_churn(ctx, as_of, load_config("churn", light), clv_cfg, "bgnbd")
    nbo = train_nbo(ctx, as_of, load_config("nbo", light), catalog, 7.0)
    bundle = ModelSet(
        clv=clv,
        catalog=catalog,
        churn=churn.model,
        nbo=nbo.model,
        versions={"nextbest-clv": "t", "nextbest-churn": "t", "nextbest-nbo": "t"},
    )
    return {
        "transactions": tx,
        "customers": customers,
        "catalog": catalog,
        "ctx": ctx,
        "as_of": as_of,
        "features": features,
        "popularity": category_popularity(ctx, as_of),
        "bundle": bundle,
        "churn": churn,
        "nbo": nbo,
    }
