"""Boosted-CLV training: leakage-free examples, targets by hand, too little history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.config import load_config
from nextbest.data.schema import validate_transactions
from nextbest.data.synthetic import SyntheticParams, generate_transactions, synthetic_as_of
from nextbest.features.build import build_context, features_at
from nextbest.models.clv import make_clv_model
from nextbest.train.value import train_value, value_examples, window_targets

PARAMS = SyntheticParams(r=2.0, alpha=2.5, a=1.0, b=60.0)


def _customers(tx: pd.DataFrame) -> pd.DataFrame:
    ids = sorted(tx["customer_id"].unique())
    return pd.DataFrame({"customer_id": ids, "consent_profiling": True})


def test_examples_never_use_anything_on_or_after_as_of():
    tx = validate_transactions(generate_transactions(300, seed=2, params=PARAMS)).transactions
    as_of = synthetic_as_of(PARAMS) - pd.Timedelta(days=60)
    cutoffs = [as_of - pd.Timedelta(days=56 + 14 * k) for k in (2, 1, 0)]
    cfg = load_config("clv")
    before = tx[tx["timestamp"] < as_of]
    a, _ = value_examples(build_context(before, _customers(tx), ()), cutoffs, 56, cfg, "bgnbd")
    b, _ = value_examples(build_context(tx, _customers(tx), ()), cutoffs, 56, cfg, "bgnbd")
    pd.testing.assert_frame_equal(a, b)
    # Targets: purchase-days and revenue in [cutoff, cutoff + 56 days), by hand for one customer.
    row = a[a["cutoff"] == cutoffs[0]].iloc[0]
    mine = before[before["customer_id"] == row["customer_id"]]
    window = mine[
        (mine["timestamp"] >= cutoffs[0]) & (mine["timestamp"] < cutoffs[0] + pd.Timedelta(days=56))
    ]
    assert row["y_purchases"] == window["timestamp"].dt.normalize().nunique()
    assert row["y_revenue"] == pytest.approx(window["amount"].sum())


def test_window_targets_count_purchase_days_not_lines():
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b"],
            "timestamp": pd.to_datetime(
                ["2024-01-02 09:00", "2024-01-02 17:00", "2024-01-05 10:00", "2024-01-09 10:00"]
            ).astype("datetime64[ns]"),
            "amount": [1.0, 2.0, 4.0, 8.0],
        }
    )
    ctx = build_context(tx, _customers(tx), ())
    n, revenue = window_targets(ctx, "2024-01-02", 7)
    np.testing.assert_array_equal(n, [2, 0])
    np.testing.assert_array_equal(revenue, [7.0, 0.0])


def test_too_little_history_is_a_reason_not_an_error():
    params = SyntheticParams(observation_days=100, birth_window_days=20)
    tx = validate_transactions(generate_transactions(200, seed=4, params=params)).transactions
    ctx = build_context(tx, _customers(tx), ())
    as_of = synthetic_as_of(params)
    cfg = load_config("clv")
    count = make_clv_model(cfg, "bgnbd").fit(features_at(ctx, as_of, 7.0))
    result = train_value(ctx, as_of, cfg, count)
    assert not result.chosen and result.model is None
    assert result.reason.startswith("boosted CLV not trained: only 0 cutoff(s)")
