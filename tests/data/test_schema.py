"""The transactions and customers schema on tiny hand-built frames.

Each of the seven documented rules of ``validate_transactions`` is checked for
its reason, and for the row / column / value recorded in ``rejects``.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from nextbest.data.schema import (
    REJECT_COLUMNS,
    SchemaError,
    check_customers,
    validate_customers,
    validate_transactions,
)

MISSING_ID = "missing customer_id"
MISSING_TS = "missing timestamp"
BAD_TS = "unparsable timestamp"
OUT_OF_RANGE_TS = "timestamp out of range (before 1900 or after 2261)"
MISSING_AMOUNT = "missing amount"
BAD_AMOUNT = "unparsable amount"
NON_FINITE_AMOUNT = "non-finite amount"
DUPLICATE = "exact duplicate row"
REFUND_ALONE = "refund with no purchase by the customer on the same day"
REFUND_TOO_BIG = "refund larger than the customer's spend that day"

ts = pd.Timestamp


def lines(customer_id, timestamp, amount, **extra) -> pd.DataFrame:
    """Raw transaction lines, as a user file would give them (object columns)."""
    cols = {"customer_id": customer_id, "timestamp": timestamp, "amount": amount, **extra}
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in cols.items()})


def rejected(result, reason: str) -> pd.DataFrame:
    """The reject rows with one reason, ordered by input row."""
    rej = result.rejects
    return rej.loc[rej["reason"] == reason].sort_values("row").reset_index(drop=True)


# --- rule 1: missing required columns --------------------------------------------------


@pytest.mark.parametrize("absent", ["customer_id", "timestamp", "amount"])
def test_missing_required_column_raises_schema_error_naming_it(absent):
    frame = lines(["a"], ["2024-01-01"], [1.0]).drop(columns=absent)
    message = rf"transactions is missing required column\(s\) \['{absent}'\]"
    with pytest.raises(SchemaError, match=message):
        validate_transactions(frame)


def test_every_missing_column_is_named_at_once():
    frame = pd.DataFrame({"customer_id": ["a"], "note": ["x"]})
    message = r"\['timestamp', 'amount'\]; found \['customer_id', 'note'\]"
    with pytest.raises(SchemaError, match=message):
        validate_transactions(frame)


def test_schema_error_is_a_value_error():
    with pytest.raises(ValueError):
        validate_transactions(pd.DataFrame({"customer_id": ["a"]}))


# --- a clean frame ---------------------------------------------------------------------


def test_clean_lines_are_typed_and_pass_through_extra_columns():
    frame = lines(
        [1, " b "],
        ["2024-01-01 10:00", "2024-01-02"],
        ["12.5", 3],
        category=["food", "toys"],
        note=["x", "y"],
    )
    result = validate_transactions(frame)
    out = result.transactions
    assert out["customer_id"].tolist() == ["1", "b"]  # ints become str, blanks stripped
    assert out["timestamp"].dtype == np.dtype("datetime64[ns]")
    assert out["timestamp"].tolist() == [ts("2024-01-01 10:00"), ts("2024-01-02")]
    assert out["amount"].dtype == np.dtype("float64")
    assert out["amount"].tolist() == [12.5, 3.0]
    assert out["category"].tolist() == ["food", "toys"]
    assert out["note"].tolist() == ["x", "y"]
    assert "_row" not in out.columns
    assert list(result.rejects.columns) == list(REJECT_COLUMNS)
    assert result.rejects.empty
    assert result.report.as_dict() == {
        "n_input": 2,
        "n_valid": 2,
        "n_rejected": 0,
        "rejected": {},
        "refunds_netted": 0,
    }


# --- rule 2: customer_id ---------------------------------------------------------------


def test_missing_or_blank_customer_id_is_rejected_with_its_row():
    frame = lines(["a", None, "  ", "", "b"], ["2024-01-01"] * 5, [1, 2, 3, 4, 5])
    result = validate_transactions(frame)
    bad = rejected(result, MISSING_ID)
    assert bad["row"].tolist() == [1, 2, 3]
    assert set(bad["column"]) == {"customer_id"}
    assert bad["value"].tolist()[1:] == ["  ", ""]
    assert bad["amount"].tolist() == [2, 3, 4]  # the original columns of the row come along
    assert result.report.rejected == {MISSING_ID: 3}
    assert result.transactions["customer_id"].tolist() == ["a", "b"]
    assert result.transactions["amount"].tolist() == [1.0, 5.0]


# --- rule 3: timestamp -----------------------------------------------------------------


def test_missing_or_unparsable_timestamp_is_rejected_with_its_value():
    frame = lines(["a", "b", "c"], ["2024-01-01", "not a date", None], [1, 2, 3])
    result = validate_transactions(frame)
    bad = pd.concat([rejected(result, BAD_TS), rejected(result, MISSING_TS)], ignore_index=True)
    assert bad["row"].tolist() == [1, 2]
    assert set(bad["column"]) == {"timestamp"}
    assert bad["value"].iloc[0] == "not a date"
    assert bad["customer_id"].tolist() == ["b", "c"]
    assert result.report.rejected == {BAD_TS: 1, MISSING_TS: 1}
    assert result.transactions["customer_id"].tolist() == ["a"]


# --- rule 4: amount --------------------------------------------------------------------


def test_string_amount_is_parsed_and_garbage_is_rejected():
    frame = lines(
        ["a", "b", "c", "d", "e"], ["2024-01-01"] * 5, ["12.5", "abc", None, np.nan, np.inf]
    )
    result = validate_transactions(frame)
    bad = result.rejects.sort_values("row")
    assert bad["row"].tolist() == [1, 2, 3, 4]
    assert bad["reason"].tolist() == [BAD_AMOUNT, MISSING_AMOUNT, MISSING_AMOUNT, NON_FINITE_AMOUNT]
    assert set(bad["column"]) == {"amount"}
    assert bad["value"].iloc[0] == "abc"
    assert bad["value"].iloc[3] == "inf"
    assert result.report.rejected == {BAD_AMOUNT: 1, MISSING_AMOUNT: 2, NON_FINITE_AMOUNT: 1}
    assert result.transactions["amount"].tolist() == [12.5]


def test_negative_infinity_is_not_a_refund():
    frame = lines(["a", "a"], ["2024-01-01", "2024-01-01"], [10.0, -np.inf])
    result = validate_transactions(frame)
    assert result.report.rejected == {NON_FINITE_AMOUNT: 1}
    assert result.report.refunds_netted == 0


# --- rule 5: as_of ---------------------------------------------------------------------


def test_rows_on_or_after_as_of_are_rejected_as_future():
    frame = lines(
        ["a", "b", "c"], ["2024-01-14 23:59:59", "2024-01-15 00:00:00", "2024-02-01"], [1, 2, 3]
    )
    result = validate_transactions(frame, as_of="2024-01-15")
    reason = "timestamp on or after as_of 2024-01-15"
    bad = rejected(result, reason)
    assert bad["row"].tolist() == [1, 2]
    assert set(bad["column"]) == {"timestamp"}
    assert pd.to_datetime(bad["value"]).tolist() == [ts("2024-01-15"), ts("2024-02-01")]
    assert result.report.rejected == {reason: 2}
    assert result.transactions["customer_id"].tolist() == ["a"]


def test_without_as_of_nothing_is_future():
    frame = lines(["a"], ["2100-01-01"], [1])
    assert validate_transactions(frame).report.n_valid == 1


# --- rule 6: duplicates ----------------------------------------------------------------


def test_exact_duplicates_keep_the_first_and_reject_the_rest():
    frame = lines(["a", "a", "b", "a"], ["2024-01-01 10:00"] * 4, [5, 5, 5, 5])
    result = validate_transactions(frame)
    bad = rejected(result, DUPLICATE)
    assert bad["row"].tolist() == [1, 3]
    assert set(bad["column"]) == {"customer_id"}
    assert bad["value"].tolist() == ["a", "a"]
    assert result.report.rejected == {DUPLICATE: 2}
    assert result.transactions["customer_id"].tolist() == ["a", "b"]


def test_identical_lines_with_distinct_order_ids_are_kept():
    frame = lines(["a", "a", "a"], ["2024-01-01 10:00"] * 3, [5, 5, 5], order_id=["o1", "o2", "o2"])
    result = validate_transactions(frame)
    assert rejected(result, DUPLICATE)["row"].tolist() == [2]  # o2 twice is a real duplicate
    assert result.transactions["order_id"].tolist() == ["o1", "o2"]


def test_lines_differing_in_any_column_are_not_duplicates():
    frame = lines(
        ["a", "a", "a"], ["2024-01-01 10:00", "2024-01-01 10:01", "2024-01-01 10:00"], [5, 5, 6]
    )
    assert validate_transactions(frame).report.rejected == {}


# --- rule 7: refunds -------------------------------------------------------------------


def test_refund_is_netted_against_same_customer_same_day_purchase():
    frame = lines(["a", "a"], ["2024-01-01 09:00", "2024-01-01 17:30"], [10.0, -3.0])
    result = validate_transactions(frame)
    assert result.rejects.empty
    assert result.report.refunds_netted == 1
    # the refund line is kept so that the customer-day nets to 7
    assert result.transactions["amount"].tolist() == [10.0, -3.0]


def test_refund_equal_to_the_days_spend_is_kept():
    frame = lines(["a", "a"], ["2024-01-01", "2024-01-01"], [5.0, -5.0])
    result = validate_transactions(frame)
    assert result.report.rejected == {}
    assert result.report.refunds_netted == 1


def test_refund_without_a_same_day_purchase_by_that_customer_is_rejected():
    frame = lines(
        ["a", "a", "b", "c"],
        ["2024-01-01", "2024-01-02", "2024-01-01", "2024-01-03"],
        [10.0, -4.0, -2.0, -1.0],
    )
    # row 1: a's purchase was the day before; row 2: the purchase that day was a's, not b's;
    # row 3: c never bought.
    result = validate_transactions(frame)
    bad = rejected(result, REFUND_ALONE)
    assert bad["row"].tolist() == [1, 2, 3]
    assert set(bad["column"]) == {"amount"}
    assert pd.to_numeric(bad["value"]).tolist() == [-4.0, -2.0, -1.0]
    assert result.report.rejected == {REFUND_ALONE: 3}
    assert result.report.refunds_netted == 0
    assert result.transactions["amount"].tolist() == [10.0]


def test_refund_larger_than_the_days_spend_is_rejected():
    frame = lines(
        ["a", "a", "a", "a"],
        ["2024-01-01 09:00", "2024-01-01 12:00", "2024-01-02", "2024-01-02"],
        [5.0, -8.0, 6.0, -1.0],
    )
    result = validate_transactions(frame)
    bad = rejected(result, REFUND_TOO_BIG)
    assert bad["row"].tolist() == [1]
    assert bad["column"].tolist() == ["amount"]
    assert float(bad["value"].iloc[0]) == -8.0
    assert result.report.rejected == {REFUND_TOO_BIG: 1}
    assert result.report.refunds_netted == 1  # the -1 on 01-02 is netted against 6
    assert result.transactions["amount"].tolist() == [5.0, 6.0, -1.0]


def test_refunds_are_grouped_by_calendar_day_not_by_24_hours():
    # 23:00 purchase and 01:00 refund are two hours apart but on different days
    frame = lines(["a", "a"], ["2024-01-01 23:00", "2024-01-02 01:00"], [10.0, -1.0])
    result = validate_transactions(frame)
    assert result.report.rejected == {REFUND_ALONE: 1}


# --- time zones ------------------------------------------------------------------------


def test_timezone_aware_strings_are_converted_to_naive_utc():
    frame = lines(["a", "b"], ["2024-01-01T23:30:00-05:00", "2024-01-01T10:00:00-05:00"], [1, 2])
    out = validate_transactions(frame).transactions
    assert out["timestamp"].dtype == np.dtype("datetime64[ns]")
    assert out["timestamp"].tolist() == [ts("2024-01-02 04:30"), ts("2024-01-01 15:00")]


def test_timezone_aware_datetime_column_is_converted_to_naive_utc_before_as_of():
    local = pd.Series(pd.to_datetime(["2024-01-15 00:30", "2024-01-15 01:30"]))
    paris = local.dt.tz_localize("Europe/Paris")
    frame = pd.DataFrame({"customer_id": ["a", "b"], "timestamp": paris, "amount": [1.0, 2.0]})
    # Paris is UTC+1 in January: 00:30 local = 01-14 23:30 UTC (< as_of), 01:30 local = 00:30 UTC
    result = validate_transactions(frame, as_of="2024-01-15")
    assert result.transactions["timestamp"].tolist() == [ts("2024-01-14 23:30")]
    assert rejected(result, "timestamp on or after as_of 2024-01-15")["row"].tolist() == [1]


def test_offsets_that_change_with_daylight_saving_are_converted_to_utc():
    # Berlin: +01:00 before 2024-03-31, +02:00 after; both lines are noon local time.
    frame = lines(["a", "a"], ["2024-03-30T12:00:00+01:00", "2024-04-02T12:00:00+02:00"], [1, 2])
    out = validate_transactions(frame).transactions
    assert out["timestamp"].tolist() == [ts("2024-03-30 11:00"), ts("2024-04-02 10:00")]


# --- order of rules, rows and immutability --------------------------------------------


def test_a_row_breaking_several_rules_is_rejected_once_for_the_first():
    frame = lines(["", "b", "c"], ["2024-01-01", "garbage", "2024-01-01"], ["abc", "abc", 1])
    result = validate_transactions(frame)
    assert result.report.rejected == {MISSING_ID: 1, BAD_TS: 1}
    assert result.rejects.set_index("row")["reason"].to_dict() == {0: MISSING_ID, 1: BAD_TS}
    assert result.report.n_valid + result.report.n_rejected == result.report.n_input == 3


def test_reject_row_is_the_position_in_the_input_not_its_index():
    frame = lines(["a", "b", "c"], ["2024-01-01", "nope", "2024-01-01"], [1, 2, 3])
    frame.index = [10, 20, 30]
    bad = rejected(validate_transactions(frame), BAD_TS)
    assert bad["row"].tolist() == [1]
    assert bad["customer_id"].tolist() == ["b"]


def test_input_frame_is_not_mutated():
    frame = lines(
        [" a", "a", None, "b", "b", "c"],
        ["2024-01-01", "2024-01-01", "2024-01-01", "x", "2024-01-02 10:00", "2024-03-01"],
        ["10", "-2", 1, 1, "abc", 1],
    )
    frame.index = list("uvwxyz")
    before = frame.copy(deep=True)
    validate_transactions(frame, as_of="2024-02-01")
    pd.testing.assert_frame_equal(frame, before)


# --- customers -------------------------------------------------------------------------


def test_customers_consent_defaults_to_true_when_the_column_is_absent():
    out = validate_customers(pd.DataFrame({"customer_id": [" a", 2], "segment": ["x", "y"]}))
    assert out["customer_id"].tolist() == ["a", "2"]
    assert out["consent_profiling"].tolist() == [True, True]
    assert out["consent_profiling"].dtype == np.dtype(bool)
    assert out["segment"].tolist() == ["x", "y"]


def test_customers_consent_strings_are_parsed_and_missing_means_true():
    raw = ["yes", "no", "1", "0", " TRUE ", "f", "Y", None, np.nan, True, False]
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(len(raw))],
            "consent_profiling": pd.Series(raw, dtype=object),
        }
    )
    out = validate_customers(frame)
    assert out["consent_profiling"].tolist() == [
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        True,
        True,
        True,
        False,
    ]
    assert out["consent_profiling"].dtype == np.dtype(bool)


def test_customers_bool_consent_column_is_kept():
    frame = pd.DataFrame({"customer_id": ["a", "b"], "consent_profiling": [False, True]})
    assert validate_customers(frame)["consent_profiling"].tolist() == [False, True]


def test_customers_missing_id_column_raises():
    message = r"customers is missing required column\(s\) \['customer_id'\]"
    with pytest.raises(SchemaError, match=message):
        validate_customers(pd.DataFrame({"consent_profiling": [True]}))


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_customers_blank_id_raises_with_its_row(blank):
    frame = pd.DataFrame({"customer_id": pd.Series(["a", blank, "c"], dtype=object)})
    with pytest.raises(SchemaError, match=r"customers: column 'customer_id' is blank at row 1"):
        validate_customers(frame)


def test_customers_duplicate_id_raises_with_the_repeating_row():
    frame = pd.DataFrame({"customer_id": ["a", "b", " a"]})  # ids are stripped before comparing
    message = r"customers: column 'customer_id' must be unique; 'a' repeats at row 2"
    with pytest.raises(SchemaError, match=message):
        validate_customers(frame)


def test_customers_unknown_consent_rejects_the_row_and_never_means_consent():
    frame = pd.DataFrame({"customer_id": ["a", "b"], "consent_profiling": ["yes", "maybe"]})
    checked = check_customers(frame)
    assert checked.customers["consent_profiling"].tolist() == [True, False]
    rej = checked.rejects
    assert rej[["row", "column", "value"]].values.tolist() == [[1, "consent_profiling", "maybe"]]
    assert rej["reason"].iloc[0].startswith("unknown consent_profiling value")
    assert validate_customers(frame)["consent_profiling"].tolist() == [True, False]


def test_customers_input_frame_is_not_mutated():
    frame = pd.DataFrame({"customer_id": [" a", "b"], "consent_profiling": ["no", None]})
    before = frame.copy(deep=True)
    validate_customers(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_customers_numeric_consent_read_from_csv_is_parsed():
    frame = pd.read_csv(io.StringIO("customer_id,consent_profiling\na,1\nb,0\nc,\n"))
    out = validate_customers(frame)
    assert out["consent_profiling"].tolist() == [True, False, True]


def test_out_of_range_timestamps_are_rejected_not_fatal():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "timestamp": ["0001-01-01", "2024-01-01", "9999-12-31"],
            "amount": [1.0, 2.0, 3.0],
        }
    )
    result = validate_transactions(frame)
    assert result.transactions["customer_id"].tolist() == ["b"]
    assert result.report.rejected == {OUT_OF_RANGE_TS: 2}
