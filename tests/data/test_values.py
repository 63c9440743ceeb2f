"""What a cell means (nextbest.data.values): amounts, timestamps, day-month dates, consent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from nextbest.data.schema import validate_transactions
from nextbest.data.values import (
    AMBIGUOUS_DATE,
    DECIMAL_COMMA_AMOUNT,
    DECIMAL_POINT_AMOUNT,
    MISSING_AMOUNT,
    MISSING_TIMESTAMP,
    NON_FINITE_AMOUNT,
    TIMESTAMP_OUT_OF_RANGE,
    UNKNOWN_CONSENT,
    UNPARSABLE_AMOUNT,
    UNPARSABLE_TIMESTAMP,
    DateFormat,
    canonical_dates,
    classify_timestamps,
    detect_decimal,
    parse_amount_text,
    parse_amounts,
    parse_consent,
    parse_timestamps,
)
from nextbest.errors import SchemaError

# --- amounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "decimal", "value"),
    [
        ("12.50", ".", 12.5),
        ("$12.50", ".", 12.5),
        ("\u20ac12.50", ".", 12.5),
        ("12.50 \u20ac", ".", 12.5),
        ("-$3", ".", -3.0),
        ("$-3", ".", -3.0),
        ("EUR 7", ".", 7.0),
        ("1,234.50", ".", 1234.5),
        ("1'234.50 CHF", ".", 1234.5),
        ("1,234", ".", 1234.0),  # with a decimal point a comma can only group thousands
        ("1e5", ".", 1e5),
        (".5", ".", 0.5),
        ("12,50", ",", 12.5),
        ("\u20ac12,50", ",", 12.5),
        ("12,50 \u20ac", ",", 12.5),
        ("1.234,50", ",", 1234.5),
        ("1 234,50", ",", 1234.5),
        ("1\u202f234,50", ",", 1234.5),
        ("1.234", ",", 1234.0),
        ("-0,99", ",", -0.99),
        ("12", ",", 12.0),
    ],
)
def test_amounts_are_parsed_when_the_meaning_is_unambiguous(text, decimal, value):
    assert parse_amount_text(text, decimal) == (value, None)


@pytest.mark.parametrize(
    ("text", "decimal", "reason"),
    [
        ("\u20ac12,50", ".", DECIMAL_COMMA_AMOUNT),
        ("12,50", ".", DECIMAL_COMMA_AMOUNT),
        ("1.234,50", ".", DECIMAL_COMMA_AMOUNT),
        ("12.5", ",", DECIMAL_POINT_AMOUNT),
        ("1,234.50", ",", DECIMAL_POINT_AMOUNT),
        ("12,5,0", ".", UNPARSABLE_AMOUNT),
        ("\u20ac$12", ".", UNPARSABLE_AMOUNT),
        ("--12", ".", UNPARSABLE_AMOUNT),
        ("ten", ".", UNPARSABLE_AMOUNT),
        ("12 apples", ".", UNPARSABLE_AMOUNT),
        ("inf", ".", NON_FINITE_AMOUNT),
        ("-Infinity", ",", NON_FINITE_AMOUNT),
        ("  ", ".", MISSING_AMOUNT),
    ],
)
def test_amounts_that_do_not_fit_are_rejected_with_a_reason(text, decimal, reason):
    value, why = parse_amount_text(text, decimal)
    assert np.isnan(value) and why == reason


def test_parse_amounts_flags_absurd_values_and_keeps_refunds():
    values = pd.Series(["10", "-4", "1e12", "-2e9", "999999999.99", None, "\u20ac5"], dtype=object)
    out, why = parse_amounts(values, ".", max_abs=1e9)
    assert out[[0, 1, 4, 6]].tolist() == [10.0, -4.0, 999999999.99, 5.0]
    assert why.tolist() == [
        None,
        None,
        "absurd amount (|amount| >= 1e+09)",
        "absurd amount (|amount| >= 1e+09)",
        None,
        MISSING_AMOUNT,
        None,
    ]


def test_numeric_amount_columns_skip_text_parsing():
    out, why = parse_amounts(pd.Series([1.5, np.nan, np.inf]))
    assert out[0] == 1.5 and why.tolist() == [None, MISSING_AMOUNT, NON_FINITE_AMOUNT]


def test_validator_absurd_amount_threshold_is_configurable():
    frame = pd.DataFrame(
        {"customer_id": ["a", "b"], "timestamp": ["2024-01-01"] * 2, "amount": [5, 50]}
    )
    result = validate_transactions(frame, max_abs_amount=10)
    assert result.report.rejected == {"absurd amount (|amount| >= 10)": 1}
    assert result.rejects["value"].tolist() == ["50"]


@pytest.mark.parametrize(
    ("values", "decimal"),
    [
        (["12,50", "3,1", "1.234,00"], ","),
        (["12.50", "1,234.00", "7"], "."),
        (["1.234", "2.500"], None),  # a dot and three digits settles nothing
        (["12"], None),
    ],
)
def test_detect_decimal(values, decimal):
    assert detect_decimal(values) == decimal


def test_detect_decimal_refuses_a_real_mix():
    with pytest.raises(SchemaError, match="--decimal"):
        detect_decimal(["12,50", "3,10", "12.50", "3.10"])


# --- timestamps --------------------------------------------------------------------------------


def test_each_bad_timestamp_has_its_own_reason():
    values = pd.Series(
        ["2024-01-01", "2999-01-01", "1850-06-01", None, " ", "soon", "03.04.2017", "2024-02-30"],
        dtype=object,
    )
    ts, why = classify_timestamps(values)
    assert why.tolist() == [
        None,
        TIMESTAMP_OUT_OF_RANGE,
        TIMESTAMP_OUT_OF_RANGE,
        MISSING_TIMESTAMP,
        MISSING_TIMESTAMP,
        UNPARSABLE_TIMESTAMP,
        AMBIGUOUS_DATE,
        UNPARSABLE_TIMESTAMP,
    ]
    assert ts.iloc[0] == pd.Timestamp("2024-01-01") and ts.iloc[1:].isna().all()
    assert parse_timestamps(values).isna().tolist() == [False] + [True] * 7


def test_datetime_columns_out_of_range_are_rejected():
    values = pd.Series(pd.to_datetime(["1899-12-31", "1900-01-01", "2261-12-31"]))
    _, why = classify_timestamps(values)
    assert why.tolist() == [TIMESTAMP_OUT_OF_RANGE, None, None]


def test_duplicate_is_not_missing_and_out_of_range_is_not_unparsable():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c"],
            "timestamp": ["2024-01-01", "2024-01-01", "2999-01-01", ""],
            "amount": ["1", "1", "1", "1"],
        }
    )
    reasons = validate_transactions(frame).rejects.set_index("row")["reason"].to_dict()
    assert reasons == {1: "exact duplicate row", 2: TIMESTAMP_OUT_OF_RANGE, 3: MISSING_TIMESTAMP}


@pytest.mark.parametrize(
    ("text", "order", "label"),
    [
        ("DD.MM.YYYY", "DMY", "DD.MM.YYYY"),
        ("dd/mm/yyyy hh:mm", "DMY", "DD/MM/YYYY"),
        ("%d.%m.%Y %H:%M", "DMY", "DD.MM.YYYY"),
        ("MM/DD/YYYY", "MDY", "MM/DD/YYYY"),
        ("%m-%d-%Y", "MDY", "MM-DD-YYYY"),
        ("YYYY-MM-DD", "YMD", "ISO (YYYY-MM-DD)"),
    ],
)
def test_date_format_names(text, order, label):
    fmt = DateFormat.parse(text)
    assert fmt.order == order and fmt.label == label


def test_canonical_dates_turn_day_month_dates_into_iso_and_leave_the_rest():
    values = pa.array(
        [
            "03.04.2017",
            "3.4.17",
            "13.04.2017 7:05",
            "28.02.2018 09:30:15,25",
            "2024-01-01",
            None,
            "x",
        ]
    )
    out = canonical_dates(values, DateFormat("DMY")).to_pylist()
    assert out == [
        "2017-04-03",
        "2017-04-03",
        "2017-04-13 07:05:00",
        "2018-02-28 09:30:15.25",
        "2024-01-01",
        None,
        "x",
    ]
    assert canonical_dates(pa.array(["04/03/2017"]), DateFormat("MDY", "/")).to_pylist() == [
        "2017-04-03"
    ]


# --- consent -----------------------------------------------------------------------------------


def test_consent_words_in_five_languages_blank_is_true_unknown_is_false():
    words = [
        "yes",
        "No",
        "JA",
        "nein",
        "oui",
        "NON",
        "s\u00ed",
        "no",
        "1",
        "0",
        "y",
        "N",
        "true",
        "F",
        "WAHR",
        "falsch",
        "vrai",
        "faux",
        "",
        None,
        np.nan,
        True,
        False,
        "maybe",
        "2",
    ]
    consent, why = parse_consent(pd.Series(words, dtype=object))
    assert consent.tolist() == [
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
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
        False,
        False,
    ]
    assert [i for i, w in enumerate(why) if w] == [23, 24]
    assert why[23] == UNKNOWN_CONSENT
