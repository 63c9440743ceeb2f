"""DecisionTable: compact storage of score() rows, lookup by id, exact round trip."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from nextbest.serving.decisions import DecisionTableBuilder

OFFERS = ["XS-A", "XS-B", "RET", "NEWSLETTER"]
CATS = ["A", "B", "", ""]


def scored(ids, consent=None) -> pd.DataFrame:
    """A frame shaped like nextbest.scoring.score() output."""
    n = len(ids)
    consent = [True] * n if consent is None else consent
    rows = []
    for i, (cid, ok) in enumerate(zip(ids, consent)):
        rows.append(
            {
                "customer_id": cid,
                "p_alive": 0.5 + i / 100 if ok else np.nan,
                "expected_purchases": 1.0 + i if ok else np.nan,
                "expected_spend": 10.25 if ok else np.nan,
                "predicted_clv": 100.0 / 3 + i if ok else np.nan,
                "churn_probability": 0.1 if ok else np.nan,
                "action": "cross_sell" if ok else "non_personalised",
                "action_offer_id": "XS-B" if ok else "NEWSLETTER",
                "offers": (
                    [
                        {
                            "offer_id": "XS-B",
                            "category": "B",
                            "p_convert": 0.123457,
                            "expected_value": 0.4321,
                            "channel": "sms",
                        },
                        {
                            "offer_id": "XS-A",
                            "category": "A",
                            "p_convert": 0.1,
                            "expected_value": -0.1,
                            "channel": None,
                        },
                    ]
                    if ok
                    else []
                ),
                "reasons": [
                    {"code": "CROSS_SELL_PROPENSITY", "text": f"customer {cid} \u00e9t\u00e9"}
                ],
                "model_versions": '{"nextbest-clv": "3"}',
                "consent_profiling": ok,
                "as_of": pd.Timestamp("2018-01-02"),
                "horizon_days": 365.0,
            }
        )
    return pd.DataFrame(rows)


def build(*frames, n=None, max_id_chars=64):
    total = n if n is not None else sum(len(f) for f in frames)
    b = DecisionTableBuilder(
        total, OFFERS, CATS, top_k=3, max_id_chars=max_id_chars, channels=("email", "sms")
    )
    for f in frames:
        b.add(f)
    return b.finish({"nextbest-clv": "3"}, "2018-01-02", 365.0)


def test_rows_round_trip_exactly_and_sorted_lookup_works_across_chunks():
    first, second = (
        scored(["0042", "b", "a"]),
        scored(["zz", "0001", "\u00e9-id"], consent=[True, False, True]),
    )
    table = build(first, second)
    assert len(table) == 6
    assert list(table.ids) == sorted(table.ids)
    for frame in (first, second):
        for rec in frame.to_dict("records"):
            row = table.row(table.find(rec["customer_id"]))
            assert row["customer_id"] == rec["customer_id"]
            for col in (
                "p_alive",
                "expected_purchases",
                "expected_spend",
                "predicted_clv",
                "churn_probability",
            ):
                expected = rec[col]
                assert (
                    (row[col] is None) if math.isnan(expected) else row[col] == expected
                )  # bit-exact
            assert row["offers"] == rec["offers"][:3]
            assert row["reasons"] == rec["reasons"]
            assert (
                row["action"] == rec["action"] and row["action_offer_id"] == rec["action_offer_id"]
            )
            assert row["consent_profiling"] is rec["consent_profiling"]
            assert row["as_of"] == dt.date(2018, 1, 2) and row["model_versions"] == {
                "nextbest-clv": "3"
            }


def test_unknown_and_unrepresentable_ids_are_not_found():
    table = build(scored(["1", "22", "333"]))
    for cid in ("4", "", "2", "3333", "1\x00", "x" * 100):
        assert table.find(cid) == -1
    assert table.find_many(["333", "nope", "1", "x" * 100, "22"]).tolist() == [2, -1, 0, -1, 1]


def test_ids_too_long_or_with_nul_are_skipped_with_a_count():
    b = DecisionTableBuilder(3, OFFERS, CATS, top_k=3, max_id_chars=4)
    b.add(scored(["ok", "too-long", "a\x00b"]))
    table = b.finish({}, None, 30.0)
    assert len(table) == 1 and b.skipped == 2 and table.find("ok") == 0
    assert table.row(0)["as_of"] is None


def test_opted_out_rows_have_no_scores_and_no_offers():
    table = build(scored(["x"], consent=[False]))
    row = table.row(0)
    assert row["action"] == "non_personalised" and row["offers"] == []
    assert all(row[c] is None for c in ("p_alive", "predicted_clv", "churn_probability"))


def test_memory_is_a_few_hundred_bytes_per_customer():
    n = 20_000
    ids = [f"{i:07d}" for i in range(n)]
    table = build(scored(ids[:10_000]), scored(ids[10_000:]))
    per_customer = table.nbytes / n
    assert per_customer < 400, per_customer  # => 1M customers well under 2 GB


@pytest.mark.parametrize("n_chunks", [1, 3])
def test_builder_trims_when_fewer_rows_than_announced(n_chunks):
    frames = [scored([f"c{k}-{i}" for i in range(2)]) for k in range(n_chunks)]
    table = build(*frames, n=10)
    assert len(table) == 2 * n_chunks and table.scores.shape == (2 * n_chunks, 5)
    assert table.reason_offsets.shape == (2 * n_chunks + 1,)
