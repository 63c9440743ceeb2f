"""Pieces of the backtest on tiny frames: split checks, model specs, campaign targets, policy
accounting."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from nextbest.config import load_config
from nextbest.data import Dataset
from nextbest.data.synthetic import SyntheticParams, generate_transactions
from nextbest.decision.catalog import load_catalog
from nextbest.evaluate import evaluate
from nextbest.evaluate.data import prepare
from nextbest.evaluate.decision import NONE, RETENTION, policy_table
from nextbest.evaluate.offers import campaign_targets
from nextbest.evaluate.sources import parse_spec


def _dataset(tx: pd.DataFrame, name: str = "tiny") -> Dataset:
    ids = sorted(tx["customer_id"].astype(str).unique())
    return Dataset(
        name=name,
        transactions=tx,
        customers=pd.DataFrame({"customer_id": ids, "consent_profiling": True}),
    )


def test_parse_spec():
    assert parse_spec("champion") == {"clv": "champion", "churn": "champion", "nbo": "champion"}
    assert parse_spec("3")["nbo"] == "3"
    assert parse_spec("clv=3, nbo=train") == {"clv": "3", "churn": "champion", "nbo": "train"}
    with pytest.raises(ValueError, match="bad model spec part 'offers=2'"):
        parse_spec("offers=2")


def test_horizon_past_the_end_of_the_data_is_a_clear_error():
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "amount": [1.0, 2.0, 3.0],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
        }
    )
    expected = (
        r"runs to 2024-03-30, past the last day of the data \(tiny: 2024-03-01\)"
        r".*at most 2024-02-01"
    )
    with pytest.raises(ValueError, match=expected):
        prepare(_dataset(tx), "2024-03-01", 30, load_catalog())


def test_opted_out_customers_are_never_measured():
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "b"],
            "amount": [1.0, 2.0, 3.0, 4.0],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-02-10", "2024-01-05", "2024-02-11"]),
        }
    )
    ds = _dataset(tx)
    ds.customers["consent_profiling"] = [True, False]
    data = prepare(ds, "2024-02-01", 10, load_catalog())
    assert set(data.transactions["customer_id"]) == {"a"} and data.n_opted_out == 1
    assert any("objected to profiling" in n for n in data.notes)


def test_campaign_targets_map_coupons_to_offer_categories():
    extras = {
        "campaign_descriptions": pd.DataFrame(
            {
                "campaign_id": [1, 2, 3],
                "start_date": pd.to_datetime(["2017-09-01", "2017-10-05", "2017-10-20"]),
            }
        ),
        "campaigns": pd.DataFrame(
            {"campaign_id": [1, 2, 2, 3], "customer_id": ["h1", "h1", "h2", "h2"]}
        ),
        "coupon_redemptions": pd.DataFrame(
            {
                "campaign_id": [2, 2, 1],
                "coupon_upc": ["c-meat", "c-groc", "c-old"],
                "customer_id": ["h1", "h2", "h1"],
            }
        ),
    }
    dept = pd.DataFrame(
        {
            "campaign_id": [1, 2, 2, 3],
            "coupon_upc": ["c-old", "c-meat", "c-groc", "c-fl"],
            "category": ["MEAT", "MEAT", "GROCERY", "FLORAL"],
        }
    )
    data = SimpleNamespace(
        extras=extras,
        ctx_full=SimpleNamespace(coupon_dept=dept),
        as_of=pd.Timestamp("2017-10-01"),
        horizon_days=90,
    )
    out = campaign_targets(data, ("MEAT", "FLORAL")).sort_values(["customer_id", "campaign_id"])
    # campaign 1 started before as_of; GROCERY is not an offer category
    assert out[["customer_id", "campaign_id", "category", "redeemed"]].values.tolist() == [
        ["h1", 2, "MEAT", 1],
        ["h2", 2, "MEAT", 0],
        ["h2", 3, "FLORAL", 0],
    ]


def test_policy_accounting_by_hand():
    # 3 customers x 2 offers (value 10 and 4, cost 1 each); retention EV given per customer.
    p = np.array([[0.5, 0.2], [0.1, 0.9], [0.3, 0.3]])
    converted = np.array([[True, False], [False, False], [False, True]])
    ret_ev = np.array([0.0, 0.0, 2.5])
    choices = {"model": np.array([0, 1, RETENTION]), "rule": np.array([1, NONE, 1])}
    t = policy_table(
        choices, p, ret_ev, converted, np.array([10.0, 4.0]), np.array([1.0, 1.0])
    ).set_index("policy")
    # model: EV 0.5*10-1 + 0.9*4-1 + 2.5 = 4 + 2.6 + 2.5; realised (10-1) + (-1) = 8; retention not
    # realised
    assert t.loc["model", "expected_value"] == pytest.approx(9.1)
    assert t.loc["model", "realised_cross_sell_value"] == pytest.approx(8.0)
    assert (
        t.loc["model", "contacted"],
        t.loc["model", "cross_sell"],
        t.loc["model", "retention"],
    ) == (3, 2, 1)
    assert t.loc["model", "cross_sell_conversion_rate"] == pytest.approx(0.5)
    # rule: offer 1 to customers 0 and 2: EV (0.2*4-1) + (0.3*4-1) = 0; realised -1 + 3 = 2
    assert t.loc["rule", "expected_value"] == pytest.approx(0.0)
    assert t.loc["rule", "realised_cross_sell_value"] == pytest.approx(2.0)
    assert t.loc["rule", "realised_value_per_cross_sell"] == pytest.approx(1.0)


def test_too_little_history_degrades_to_clv_only():
    """100 days of data (70 before as_of): too little for even one churn cutoff (90 days of
    history + a 30-day label) - reported, not a crash."""
    params = SyntheticParams(observation_days=100, birth_window_days=28)
    tx = generate_transactions(400, seed=11, params=params)
    configs = {n: load_config(n) for n in ("churn", "nbo")}
    configs["clv"] = load_config("clv", {"count_models": ["bgnbd"]})
    result = evaluate(_dataset(tx), None, 30, configs, load_catalog())
    sections = result.runs[0].sections
    assert sections["clv"].status == "ok"
    assert sections["clv"].score("purchases_mae").baselines["historic rate"] > 0
    for name in ("churn", "nbo", "decision"):
        assert sections[name].status == "skipped", name
    assert "cutoff" in sections["churn"].notes[0]
    # default as_of: the latest day whose horizon still fits in the data
    assert result.as_of == tx["timestamp"].max().normalize() + pd.Timedelta(days=1 - 30)


def test_short_history_still_trains_churn_on_held_out_customers():
    """200 days of data (170 before as_of): fewer than three churn cutoffs, so churn is
    calibrated and tested on held-out customers of the newest cutoff - and the notes say so."""
    params = SyntheticParams(observation_days=200, birth_window_days=28)
    tx = generate_transactions(400, seed=11, params=params)
    configs = {n: load_config(n) for n in ("churn", "nbo")}
    configs["clv"] = load_config("clv", {"count_models": ["bgnbd"]})
    result = evaluate(_dataset(tx), None, 30, configs, load_catalog())
    run = result.runs[0]
    assert run.sections["churn"].status == "ok"
    assert 0.0 < run.sections["churn"].score("auc").value <= 1.0
    assert any("held out of training" in n for n in run.notes)


def test_p_alive_grid_works_for_pareto_nbd():
    """lifetimes' Pareto/NBD fails on 2-D grids; the plot data flattens them (same numbers as 1-D
    calls)."""
    from lifetimes import ParetoNBDFitter

    from nextbest.plots.clv import frequency_recency_data

    fitter = ParetoNBDFitter()
    fitter.params_ = pd.Series({"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669})
    grid = frequency_recency_data(fitter, max_frequency=4, max_recency=10.0)
    assert grid.shape == (11, 5)
    expected = fitter.conditional_probability_alive(np.array([3.0]), np.array([7.0]), 10.0)
    assert grid.loc[7.0, 3] == pytest.approx(float(np.asarray(expected).ravel()[0]))


def test_rank_lists_hand_computed():
    from nextbest.models.evaluation import rank_lists

    pairs = pd.DataFrame(
        {
            "customer_id": ["c2", "c1", "c1", "c2", "c1"],
            "offer_id": ["a", "a", "b", "b", "c"],
            "label": [0, 1, 0, 1, 1],
        }
    )
    score = np.array([0.9, 0.2, 0.5, 0.1, 0.5])  # c1: b and c tie at 0.5 -> row order (b first)
    relevant, ranked = rank_lists(pairs, score)
    assert relevant == [{"a", "c"}, {"b"}]
    assert ranked == [["b", "c", "a"], ["a", "b"]]
