"""Training end to end: MLflow run, registry, champion gate, consent, Complete Journey."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.config import Paths, load_config
from nextbest.data import Dataset, load_dataset
from nextbest.train import train_clv

pytestmark = pytest.mark.slow


def _cdnow_dataset(cdnow_tx, opted_out=()):
    ids = sorted(cdnow_tx["customer_id"].unique())
    customers = pd.DataFrame(
        {"customer_id": ids, "consent_profiling": [i not in set(opted_out) for i in ids]}
    )
    return Dataset(name="cdnow", transactions=cdnow_tx, customers=customers)


def test_train_logs_registers_and_promotes(nb_home, cdnow_tx):
    import mlflow

    from nextbest import registry

    result = train_clv(_cdnow_dataset(cdnow_tx), load_config("clv"), as_of="1998-07-01")
    assert result.promoted and result.version == "1"
    run = mlflow.get_run(result.run_id)
    assert run.data.params["count_model"] in {"bgnbd", "pareto", "mbgnbd"}
    assert run.data.params["data_fingerprint"] == registry.data_fingerprint(cdnow_tx)
    for metric in (
        "log_likelihood",
        "inner_holdout_mae",
        "inner_holdout_aggregate_error",
        "baseline_holdout_mae",
    ):
        assert np.isfinite(run.data.metrics[metric])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "plots")}
    assert {
        "plots/tracking_calibration_holdout.png",
        "plots/p_alive_matrix.png",
        "plots/conditional_expectations_by_frequency.png",
    } <= artifacts
    # The champion pyfunc gives the same numbers as the in-memory model.
    model, version = registry.load_pyfunc(registry.CLV_MODEL_NAME)
    assert str(version.version) == "1"
    from nextbest.features.rfm import rfm_summary
    from nextbest.models.btyd import RFM_INPUT_COLUMNS

    rfm = rfm_summary(cdnow_tx, "1998-07-01")
    served = model.predict(
        registry.pyfunc_input(rfm.head(50)[list(RFM_INPUT_COLUMNS)]),
        params={"horizon_days": 180.0},
    )
    direct = result.model.predict(rfm.head(50), horizon_days=180)
    pd.testing.assert_frame_equal(served.reset_index(drop=True), direct, check_dtype=False)
    assert (nb_home / "mlflow.db").exists()


def test_gate_failure_registers_but_does_not_promote(nb_home, cdnow_tx):
    from nextbest import registry

    strict = load_config("clv", {"thresholds": {"max_abs_aggregate_error": 0.0}})
    result = train_clv(_cdnow_dataset(cdnow_tx), strict, as_of="1998-07-01")
    assert result.version == "1" and not result.promoted
    assert not result.gate["passed"]
    registry.setup(Paths.from_env())
    assert registry.champion_version(registry.CLV_MODEL_NAME) is None


def test_opted_out_customers_never_enter_training(nb_home, cdnow_tx):
    ids = sorted(cdnow_tx["customer_id"].unique())
    opted_out = ids[:100]
    result = train_clv(
        _cdnow_dataset(cdnow_tx, opted_out), load_config("clv"), as_of="1998-07-01", register=False
    )
    assert result.metrics["n_customers"] == len(ids) - 100
    snapshot = result.rfm
    assert not set(opted_out) & set(snapshot["customer_id"])


def test_completejourney_converges_untouched(nb_home):
    """Complete Journey with the shipped config: converges with no hand-tuning."""
    ds = load_dataset("completejourney")
    result = train_clv(ds, load_config("clv"), register=False)
    assert result.model.fitted_
    assert result.metrics["n_customers"] == 2469 or result.metrics["n_customers"] > 2400
    assert abs(result.metrics["inner_holdout_aggregate_error"]) < 0.3


def test_completejourney_in_day_units_still_converges(nb_home):
    """Day units on Complete Journey: a fit that fails is retried (penalizer, fallback) and
    recorded."""
    from nextbest.features.build import build_context, features_at

    ds = load_dataset("completejourney")
    cfg = load_config("clv", {"time_unit_days": 1.0})
    result = train_clv(ds, cfg, register=False)
    model = result.model
    assert model.fitted_ and model.time_unit_days == 1.0
    # Pareto/NBD overflows on these heavy buyers: recorded as a failed candidate, never chosen.
    failed = result.selection[result.selection["outcome"] != "ok"]["model"].tolist()
    assert "pareto" in failed and model.count_model_used_ != "pareto"
    # Scored as scoring does: the feature rows at as_of (a boosted model reads more than RFM).
    rows = features_at(build_context(ds.transactions, ds.customers, ()), result.as_of, 1.0)
    pred = model.predict(rows, horizon_days=365)
    assert np.isfinite(pred[["p_alive", "expected_purchases", "predicted_clv"]].to_numpy()).all()
    count_model = getattr(model, "count_model", model)
    assert all({"model", "penalizer", "outcome"} <= set(a) for a in count_model.fit_log_)


def test_completejourney_boosted_clv_is_chosen_registered_and_served_the_same(nb_home):
    """On Complete Journey the boosted CLV model passes its rule on held-out customers; the
    registered pyfunc answers like the in-memory model, from the feature rows scoring uses."""
    from nextbest import registry
    from nextbest.features.build import build_context, features_at
    from nextbest.models.value import BoostedClvModel

    ds = load_dataset("completejourney")
    result = train_clv(ds, load_config("clv"), as_of="2017-10-01")
    assert isinstance(result.model, BoostedClvModel)
    assert any(n.startswith("boosted CLV chosen") for n in result.notes)
    assert (
        result.metrics["value_holdout.boosted.revenue_spearman"]
        > result.metrics["value_holdout.count_model.revenue_spearman"]
    )
    tx = ds.transactions[ds.transactions["timestamp"] < result.as_of]
    rows = features_at(build_context(tx, ds.customers, ()), result.as_of, 7.0).head(40)
    model, _ = registry.load_pyfunc(registry.CLV_MODEL_NAME)
    columns = model.metadata.get_input_schema().input_names()
    served = model.predict(registry.pyfunc_input(rows[columns]), params={"horizon_days": 90.0})
    direct = result.model.predict(rows, horizon_days=90)
    pd.testing.assert_frame_equal(served.reset_index(drop=True), direct, check_dtype=False)
