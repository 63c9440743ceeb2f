"""RFM features and the RFM validators on tiny frames with hand-computed answers.

Conventions under test (see ``nextbest.features.rfm``): ``as_of`` is exclusive,
the last observed day is ``as_of - 1 day``, ``recency`` and ``T`` are in
``time_unit_days`` units, a purchase is a customer-day, and ``monetary`` is the
mean spend of the repeat purchase-days.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from nextbest.data.schema import validate_transactions
from nextbest.errors import ModelInputError
from nextbest.features.rfm import calibration_holdout, customer_days, rfm_summary
from nextbest.models.clv import validate_rfm, validate_spend_input

AS_OF = "2024-01-15"


def epoch_day(date: str) -> int:
    return (dt.date.fromisoformat(date) - dt.date(1970, 1, 1)).days


def tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """Validated-style transactions: str id, datetime64[ns] timestamp, float amount."""
    cid, ts, amount = zip(*rows) if rows else ((), (), ())
    return pd.DataFrame(
        {
            "customer_id": pd.Series(cid, dtype=object).astype(str),
            "timestamp": pd.to_datetime(pd.Series(ts, dtype=object), format="ISO8601").astype(
                "datetime64[ns]"
            ),
            "amount": pd.Series(amount, dtype="float64"),
        }
    )


@pytest.fixture
def calibration() -> pd.DataFrame:
    """Before 2024-01-15 plus two lines that must be ignored at as_of 2024-01-15.

    A: 01-01 (10), 01-08 (5 + 7 merged)    -> f=1, recency 7 d, T 13 d, monetary 12
    B: 01-03 (4), 01-05 (6), 01-12 (10)    -> f=2, recency 9 d, T 11 d, monetary 8
    C: 01-14 23:59 (20)                    -> f=0, recency 0,   T 0,    monetary 0
    D: 01-15 00:00 exactly, E: 01-20       -> not observed at as_of
    """
    return tx(
        [
            ("B", "2024-01-12 08:00", 10.0),
            ("A", "2024-01-08 18:00", 7.0),
            ("A", "2024-01-01 12:00", 10.0),
            ("B", "2024-01-03 09:00", 4.0),
            ("C", "2024-01-14 23:59", 20.0),
            ("A", "2024-01-08 09:00", 5.0),
            ("D", "2024-01-15 00:00", 99.0),
            ("B", "2024-01-05 10:00", 6.0),
            ("E", "2024-01-20 10:00", 50.0),
        ]
    )


# --- customer_days ---------------------------------------------------------------------


def test_customer_days_merges_lines_of_a_customer_day_and_sorts(calibration):
    days = customer_days(calibration, as_of=AS_OF)
    assert days["customer_id"].tolist() == ["A", "A", "B", "B", "B", "C"]
    assert days["day"].tolist() == [
        epoch_day(d)
        for d in (
            "2024-01-01",
            "2024-01-08",
            "2024-01-03",
            "2024-01-05",
            "2024-01-12",
            "2024-01-14",
        )
    ]
    assert days["amount"].tolist() == [10.0, 12.0, 4.0, 6.0, 10.0, 20.0]
    assert days["day"].dtype == np.dtype("int64")
    assert days["amount"].dtype == np.dtype("float64")


def test_customer_days_window_is_start_inclusive_as_of_exclusive(calibration):
    days = customer_days(calibration, as_of="2024-01-16", start="2024-01-08")
    assert ("D", 99.0) in list(zip(days["customer_id"], days["amount"]))
    days = customer_days(calibration, as_of="2024-01-15", start="2024-01-08")
    assert list(zip(days["customer_id"], days["amount"])) == [("A", 12.0), ("B", 10.0), ("C", 20.0)]
    with pytest.raises(ValueError, match="as_of must be a date"):
        customer_days(calibration, as_of="2024-01-15 00:00:01")


# --- rfm_summary -----------------------------------------------------------------------


def test_rfm_summary_matches_hand_computed_weeks(calibration):
    s = rfm_summary(calibration, AS_OF, time_unit_days=7)
    assert s["customer_id"].tolist() == ["A", "B", "C"]  # D (at as_of) and E (after) unseen
    assert s["frequency"].tolist() == [1, 2, 0]
    assert s["frequency"].dtype == np.dtype("int64")
    np.testing.assert_allclose(s["recency"], [7 / 7, 9 / 7, 0.0])
    np.testing.assert_allclose(s["T"], [13 / 7, 11 / 7, 0.0])
    np.testing.assert_allclose(s["monetary"], [12.0, (6.0 + 10.0) / 2, 0.0])
    first = ("2024-01-01", "2024-01-03", "2024-01-14")
    last = ("2024-01-08", "2024-01-12", "2024-01-14")
    assert s["first_day"].tolist() == [epoch_day(d) for d in first]
    assert s["last_day"].tolist() == [epoch_day(d) for d in last]


def test_rfm_summary_passes_the_model_validator(calibration):
    validate_rfm(rfm_summary(calibration, AS_OF, 7))


def test_purchase_at_as_of_midnight_is_excluded_and_23_59_the_day_before_is_included():
    before = tx([("C", "2024-01-14 23:59", 5.0)])
    s = rfm_summary(before, AS_OF, 1)
    assert s["frequency"].tolist() == [0]
    assert s["T"].tolist() == s["recency"].tolist() == [0.0]  # last observed day is 01-14

    at = tx([("C", "2024-01-01", 5.0), ("C", "2024-01-15 00:00", 5.0)])
    s = rfm_summary(at, AS_OF, 1)
    assert s["frequency"].tolist() == [0]
    assert s["T"].tolist() == [13.0]


def test_single_day_customer_has_recency_equal_to_T_when_bought_on_the_last_observed_day():
    s = rfm_summary(tx([("A", "2024-01-03", 1.0), ("A", "2024-01-14 23:59", 2.0)]), AS_OF, 1)
    assert s["frequency"].tolist() == [1]
    assert s["recency"].tolist() == s["T"].tolist() == [11.0]


def test_time_unit_rescales_recency_and_T_only(calibration):
    days = rfm_summary(calibration, AS_OF, time_unit_days=1)
    weeks = rfm_summary(calibration, AS_OF, time_unit_days=7)
    np.testing.assert_allclose(days["recency"], [7.0, 9.0, 0.0])
    np.testing.assert_allclose(days["T"], [13.0, 11.0, 0.0])
    np.testing.assert_allclose(days["recency"], 7 * weeks["recency"])
    np.testing.assert_allclose(days["T"], 7 * weeks["T"])
    for col in ("customer_id", "frequency", "monetary", "first_day", "last_day"):
        assert days[col].tolist() == weeks[col].tolist()


@pytest.mark.parametrize("unit", [0, -7])
def test_non_positive_time_unit_raises(calibration, unit):
    with pytest.raises(ValueError, match="time_unit_days must be > 0"):
        rfm_summary(calibration, AS_OF, unit)


def test_same_day_lines_are_one_purchase():
    one_line = tx([("A", "2024-01-01", 1.0), ("A", "2024-01-05 09:00", 30.0)])
    three_lines = tx(
        [
            ("A", "2024-01-01", 1.0),
            ("A", "2024-01-05 09:00", 10.0),
            ("A", "2024-01-05 12:00", 15.0),
            ("A", "2024-01-05 23:59:59", 5.0),
        ]
    )
    pd.testing.assert_frame_equal(
        rfm_summary(one_line, AS_OF, 7), rfm_summary(three_lines, AS_OF, 7)
    )
    assert rfm_summary(three_lines, AS_OF, 7)["frequency"].tolist() == [1]


def test_refunds_netted_by_validation_reduce_the_purchase_day_spend():
    raw = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A"],
            "timestamp": ["2024-01-01", "2024-01-08 10:00", "2024-01-08 16:00"],
            "amount": [10.0, 12.0, -2.0],
        }
    )
    clean = validate_transactions(raw, as_of=AS_OF).transactions
    s = rfm_summary(clean, AS_OF, 7)
    assert s["frequency"].tolist() == [1]
    assert s["monetary"].tolist() == [10.0]


def test_result_does_not_depend_on_input_row_order(calibration):
    shuffled = calibration.sample(frac=1.0, random_state=np.random.RandomState(7))
    shuffled.index = range(100, 100 + len(shuffled))
    pd.testing.assert_frame_equal(
        rfm_summary(shuffled, AS_OF, 7), rfm_summary(calibration, AS_OF, 7)
    )


def test_empty_calibration_window_raises(calibration):
    message = "no transactions before as_of 2024-01-01: empty calibration window"
    with pytest.raises(ValueError, match=message):
        rfm_summary(calibration, "2024-01-01", 7)


def test_rfm_summary_does_not_mutate_the_callers_frame(calibration):
    calibration.index = range(10, 10 + len(calibration))
    before = calibration.copy(deep=True)
    rfm_summary(calibration, AS_OF, 7)
    customer_days(calibration, as_of=AS_OF, start="2024-01-03")
    pd.testing.assert_frame_equal(calibration, before)


def test_as_of_with_a_time_of_day_never_gives_recency_above_T():
    transactions = tx([("A", "2024-01-01 10:00", 1.0), ("A", "2024-01-15 08:00", 2.0)])
    try:
        s = rfm_summary(transactions, "2024-01-15 12:00", 1)
    except ValueError:
        return  # refusing a non-midnight as_of would be fine too
    assert (s["recency"] <= s["T"]).all(), s


# --- leakage ---------------------------------------------------------------------------


def _random_future(rng: np.random.Generator) -> pd.DataFrame:
    """Up to 12 lines on or after as_of: old and new customers, refunds, midnight exactly."""
    n = int(rng.integers(1, 13))
    minutes = rng.integers(0, 60 * 24 * 60, size=n)
    minutes[0] = 0  # always one line exactly at as_of midnight
    return tx(
        [
            (
                str(rng.choice(["A", "B", "C", "D", "Z"])),
                str(pd.Timestamp(AS_OF) + pd.Timedelta(minutes=int(m))),
                float(rng.uniform(-100, 1000)),
            )
            for m in minutes
        ]
    )


@pytest.mark.parametrize("seed", range(12))
def test_transactions_on_or_after_as_of_do_not_change_the_summary(calibration, seed):
    rng = np.random.default_rng(seed)
    expected = rfm_summary(calibration, AS_OF, 7)
    future = calibration["timestamp"] >= pd.Timestamp(AS_OF)
    if seed % 2:  # drop the lines already on/after as_of ...
        base = calibration.loc[~future]
    else:  # ... or rewrite them
        base = calibration.assign(
            amount=np.where(future, -1.0, calibration["amount"]),
            customer_id=np.where(future, "A", calibration["customer_id"]),
        )
    changed = pd.concat([_random_future(rng), base], ignore_index=True)
    pd.testing.assert_frame_equal(rfm_summary(changed, AS_OF, 7), expected)


# --- calibration_holdout ---------------------------------------------------------------


@pytest.fixture
def with_holdout(calibration) -> pd.DataFrame:
    """``calibration`` plus a holdout window [01-15, 01-29) for horizon_days=14.

    A: 01-15 00:00 (3) + 01-15 18:00 (2) -> one day of 5, 01-20 (7) -> 2 days, mean 6
    B: 01-29 00:00 (100) is the window's end, excluded          -> 0 days, mean 0
    C: 01-28 23:59 (9)                                          -> 1 day, mean 9
    F: first seen 01-16 -> not in the calibration, excluded
    (D at 01-15 and E at 01-20 are first seen in the holdout too.)
    """
    return pd.concat(
        [
            calibration,
            tx(
                [
                    ("A", "2024-01-15 00:00", 3.0),
                    ("A", "2024-01-15 18:00", 2.0),
                    ("A", "2024-01-20 10:00", 7.0),
                    ("B", "2024-01-29 00:00", 100.0),
                    ("C", "2024-01-28 23:59", 9.0),
                    ("F", "2024-01-16 10:00", 40.0),
                ]
            ),
        ],
        ignore_index=True,
    )


def test_calibration_holdout_counts_and_means_per_customer(with_holdout):
    out = calibration_holdout(with_holdout, AS_OF, horizon_days=14, time_unit_days=7)
    assert out["customer_id"].tolist() == ["A", "B", "C"]
    assert out["frequency_holdout"].tolist() == [2, 0, 1]
    assert out["frequency_holdout"].dtype == np.dtype("int64")
    np.testing.assert_allclose(out["monetary_holdout"], [6.0, 0.0, 9.0])
    np.testing.assert_allclose(out["duration_holdout"], [2.0, 2.0, 2.0])
    expected = rfm_summary(with_holdout, AS_OF, 7)
    pd.testing.assert_frame_equal(out[list(expected.columns)].reset_index(drop=True), expected)


def test_calibration_holdout_duration_is_in_time_units(with_holdout):
    out = calibration_holdout(with_holdout, AS_OF, horizon_days=14, time_unit_days=1)
    assert out["duration_holdout"].tolist() == [14.0, 14.0, 14.0]
    np.testing.assert_allclose(out["T"], [13.0, 11.0, 0.0])


def test_calibration_holdout_ignores_transactions_after_the_window(with_holdout):
    after_window = tx([("A", "2024-01-29 00:00", 1000.0), ("C", "2024-03-01", 5.0)])
    later = pd.concat([with_holdout, after_window], ignore_index=True)
    pd.testing.assert_frame_equal(
        calibration_holdout(later, AS_OF, 14, 7), calibration_holdout(with_holdout, AS_OF, 14, 7)
    )


def test_calibration_holdout_empty_calibration_raises(with_holdout):
    with pytest.raises(ValueError, match="empty calibration window"):
        calibration_holdout(with_holdout, "2023-12-01", horizon_days=14)


def test_calibration_holdout_empty_holdout_raises(calibration):
    only_before = calibration.loc[calibration["timestamp"] < pd.Timestamp(AS_OF)]
    message = r"no transactions in the holdout window \[2024-01-15, 2024-01-29\): empty holdout"
    with pytest.raises(ValueError, match=message):
        calibration_holdout(only_before, AS_OF, horizon_days=14)


@pytest.mark.parametrize("horizon", [0, -1])
def test_calibration_holdout_non_positive_horizon_raises(with_holdout, horizon):
    with pytest.raises(ValueError, match="horizon_days must be > 0"):
        calibration_holdout(with_holdout, AS_OF, horizon_days=horizon)


def test_calibration_holdout_does_not_mutate_the_callers_frame(with_holdout):
    before = with_holdout.copy(deep=True)
    calibration_holdout(with_holdout, AS_OF, 14, 7)
    pd.testing.assert_frame_equal(with_holdout, before)


# --- validate_rfm / validate_spend_input -----------------------------------------------


@pytest.fixture
def rfm() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "frequency": [2, 0],
            "recency": [3.0, 0.0],
            "T": [5.0, 4.0],
            "monetary": [10.0, 0.0],
        }
    )


def raises_naming(exc_info, *parts: str) -> None:
    message = str(exc_info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


def test_validate_rfm_accepts_a_valid_frame_including_recency_equal_to_T(rfm):
    rfm.loc[0, "recency"] = 5.0
    rfm["frequency"] = rfm["frequency"].astype(float)  # 2.0 is an integer value
    assert validate_rfm(rfm) is None


@pytest.mark.parametrize(
    ("column", "row", "value", "rule"),
    [
        ("frequency", 1, -1, "frequency must be an integer >= 0"),
        ("frequency", 0, 1.5, "frequency must be an integer >= 0"),
        ("frequency", 1, np.nan, "frequency must be an integer >= 0"),
        ("recency", 1, -0.5, "recency must be a finite number >= 0"),
        ("recency", 0, 5.5, "recency <= T"),
        ("recency", 1, 1.0, "recency must be 0 when frequency is 0"),
        ("T", 1, -1.0, "T must be a finite number >= 0"),
        ("T", 0, np.inf, "T must be a finite number >= 0"),
    ],
)
def test_validate_rfm_names_column_row_customer_and_rule(rfm, column, row, value, rule):
    rfm[column] = rfm[column].astype("float64")
    rfm.loc[row, column] = value
    customer = rfm["customer_id"].iloc[row]
    with pytest.raises(ModelInputError, match=rf"rule: {re.escape(rule)}$") as exc_info:
        validate_rfm(rfm)
    raises_naming(exc_info, f"RFM summary: column '{column}' row {row} (customer_id '{customer}')")


def test_validate_rfm_rejects_duplicate_customer_ids(rfm):
    rfm.loc[1, "customer_id"] = "a"
    message = r"RFM summary: column 'customer_id' must be unique; 'a' repeats at row 1"
    with pytest.raises(ModelInputError, match=message):
        validate_rfm(rfm)


def test_validate_rfm_rejects_a_missing_column(rfm):
    with pytest.raises(ModelInputError, match=r"calibration: missing required column\(s\) \['T'\]"):
        validate_rfm(rfm.drop(columns="T"), what="calibration")


def test_validate_spend_input_accepts_repeat_buyers_with_spend(rfm):
    assert validate_spend_input(rfm.iloc[[0]]) is None


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("frequency", 0, "Gamma-Gamma needs frequency > 0"),
        ("monetary", 0.0, "Gamma-Gamma needs spend (monetary) > 0"),
        ("monetary", -3.0, "Gamma-Gamma needs spend (monetary) > 0"),
        ("monetary", np.nan, "Gamma-Gamma needs spend (monetary) > 0"),
    ],
)
def test_validate_spend_input_names_column_row_and_rule(column, value, rule):
    frame = pd.DataFrame({"customer_id": ["a", "b"], "frequency": [1, 3], "monetary": [5.0, 7.0]})
    frame[column] = frame[column].astype("float64")
    frame.loc[1, column] = value
    with pytest.raises(ModelInputError, match=rf"rule: {re.escape(rule)}$") as exc_info:
        validate_spend_input(frame)
    raises_naming(exc_info, f"Gamma-Gamma input: column '{column}' row 1 (customer_id 'b')")


def test_validate_spend_input_rejects_a_missing_column():
    frame = pd.DataFrame({"customer_id": ["a"], "frequency": [1]})
    message = r"Gamma-Gamma input: missing required column\(s\) \['monetary'\]"
    with pytest.raises(ModelInputError, match=message):
        validate_spend_input(frame)
