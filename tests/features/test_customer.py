"""Behaviour features at a cutoff, on tiny frames with hand-computed answers."""

from __future__ import annotations

import pandas as pd
import pytest

from nextbest.features.customer import customer_features, purchase_table

AS_OF = "2024-04-01"  # day 0 of the features; the last observed day is 2024-03-31


def _lines(rows: list[tuple[str, str, float, str]]) -> pd.DataFrame:
    cid, ts, amount, cat = zip(*rows)
    return pd.DataFrame(
        {
            "customer_id": list(cid),
            "timestamp": pd.to_datetime(list(ts)).astype("datetime64[ns]"),
            "amount": list(amount),
            "category": list(cat),
        }
    )


@pytest.fixture
def table():
    """A: three lines on 03-31 (MEAT, MEAT, DELI), one on 03-01 (MEAT), one on 01-01 (DELI).
    B: one line on 03-02 (PRODUCE). A line on 04-01 (as_of) is never seen."""
    lines = _lines(
        [
            ("A", "2024-03-31 10:00", 30.0, "MEAT"),
            ("A", "2024-03-31 10:05", 10.0, "MEAT"),
            ("A", "2024-03-31 10:10", 20.0, "DELI"),
            ("A", "2024-03-01 09:00", 60.0, "MEAT"),
            ("A", "2024-01-01 09:00", 10.0, "DELI"),
            ("B", "2024-03-02 09:00", 8.0, "PRODUCE"),
            ("B", "2024-04-01 00:00", 99.0, "DELI"),
        ]
    )
    return purchase_table(lines, ("MEAT", "DELI", "PRODUCE"))


def test_activity_features_hand_computed(table):
    f = customer_features(table, AS_OF).set_index("customer_id")
    a, b = f.loc["A"], f.loc["B"]
    # Spend with half-life 30 days: 60 spent 1 day ago, 60 spent 31 days ago, 10 spent 91 ago.
    assert a["spend_ew_30d"] == pytest.approx(
        60 * 0.5 ** (1 / 30) + 60 * 0.5 ** (31 / 30) + 10 * 0.5 ** (91 / 30)
    )
    assert a["spend_per_day"] == pytest.approx(130 / 91)  # first purchase 91 days before as_of
    # Active weeks among the last 13: week 0 (03-31) and week 4 (03-01); 01-01 is week 13.
    assert a["active_weeks_13w"] == pytest.approx(2 / 13)
    # Basket size: 120 over 2 days in the last 90 days vs 130 over 3 days in all.
    assert a["basket_trend_90d"] == pytest.approx((120 / 2) / (130 / 3))
    # Spend trend: 60 in the last 30 days vs a third of the 120 of the last 90.
    assert a["spend_trend_30_90"] == pytest.approx(60 / (120 / 3))
    assert b["basket_trend_90d"] == 1.0 and b["total_spend"] == 8.0  # the as_of line is unseen


def test_category_purchase_days_and_breadth(table):
    f = customer_features(table, AS_OF).set_index("customer_id")
    assert f.loc["A", "n_days_meat"] == 2  # 03-01 and 03-31 (two MEAT lines on one day)
    assert f.loc["A", "n_days_deli"] == 2 and f.loc["A", "n_days_produce"] == 0
    assert f.loc["A", "n_categories"] == 2 and f.loc["A", "n_categories_90d"] == 2
    assert f.loc["B", "n_categories"] == 1 and f.loc["B", "n_days_produce"] == 1


def test_channel_days_count_purchase_days_per_catalog_channel():
    """Purchase-days (not lines) per tracked channel, before as_of only; names matched without
    case or spaces; other channels and blanks ignored."""
    lines = _lines(
        [
            ("A", "2024-03-31 10:00", 30.0, "MEAT"),
            ("A", "2024-03-31 10:05", 10.0, "MEAT"),  # same day, same channel: one day
            ("A", "2024-03-30 10:10", 20.0, "DELI"),
            ("A", "2024-03-01 09:00", 60.0, "MEAT"),
            ("A", "2024-04-01 09:00", 10.0, "DELI"),  # on as_of: never seen
            ("B", "2024-03-02 09:00", 8.0, "PRODUCE"),
        ]
    ).assign(channel=["app", "App ", " email", "store", "app", None])
    f = customer_features(purchase_table(lines, (), ("email", "app")), AS_OF).set_index(
        "customer_id"
    )
    assert f.loc["A", "channel_days_app"] == 1.0
    assert f.loc["A", "channel_days_email"] == 1.0
    assert f.loc["B", ["channel_days_app", "channel_days_email"]].tolist() == [0.0, 0.0]
    # No channel column, or no catalog channel: no channel feature at all.
    plain = customer_features(purchase_table(lines.drop(columns="channel"), (), ("app",)), AS_OF)
    untracked = customer_features(purchase_table(lines, ()), AS_OF)
    assert not any(c.startswith("channel_days_") for c in [*plain.columns, *untracked.columns])


def test_group_sum_gives_each_distinct_key_tuple_its_total():
    """Sorted distinct (customer, day, category) tuples and their sums, as a groupby gives them;
    negative keys (days before 1970) and wide ranges included."""
    import numpy as np

    from nextbest.features.customer import _group_sum

    rng = np.random.default_rng(3)
    n = 5_000
    keys = [
        rng.integers(0, 300, n),
        rng.integers(-400, 20_000, n),
        rng.integers(0, 13, n),
    ]
    amount = rng.gamma(2.0, 5.0, n)
    got_keys, got = _group_sum(keys, amount)
    ref = (
        pd.DataFrame({"c": keys[0], "d": keys[1], "k": keys[2], "a": amount})
        .groupby(["c", "d", "k"], sort=True)["a"]
        .sum()
        .reset_index()
    )
    for got_k, col in zip(got_keys, ("c", "d", "k")):
        np.testing.assert_array_equal(got_k, ref[col].to_numpy())
    np.testing.assert_allclose(got, ref["a"].to_numpy(), rtol=1e-12)
    (one,), total = _group_sum([np.array([5, 5, 2])], np.array([1.0, 2.0, 4.0]))
    assert one.tolist() == [2, 5] and total.tolist() == [4.0, 3.0]
    (empty,), none = _group_sum([np.zeros(0, dtype="int64")], np.zeros(0))
    assert empty.size == 0 and none.size == 0
