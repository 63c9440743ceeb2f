"""The one reader (nextbest.data.readers) on small files written by each test.

Every structural defect is a reject with its row, line, raw text and reason while every good line is
kept; a file that is not a table is one SchemaError; spreadsheet exports (German, French) are read
as written; ids come back exactly as given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nextbest.batch.source import Source
from nextbest.data import load_dataset
from nextbest.data.files import read_table
from nextbest.data.readers import (
    ReadOptions,
    delimited,
    open_table,
    read_frame,
    sniff,
    split_flagged,
)
from nextbest.data.schema import ISSUE, LINE, RAW, check_customers, validate_transactions
from nextbest.errors import SchemaError

HEADER = b"customer_id,timestamp,amount,order_id\n"


def good(i: int, cid: str = "c") -> bytes:
    return f"{cid}{i},2024-01-{i % 28 + 1:02d},{i + 1}.50,o{i}\n".encode()


def write(tmp_path, data: bytes, name: str = "tx.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rejects_of(path, **options):
    frame, info = read_frame(path, options=ReadOptions(**options))
    result = validate_transactions(frame)
    return result, info


# --- structure errors are rejects, the rest is kept -------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"x,2024-01-02,5,o-x,EXTRA\n", "ragged line: more fields than the header"),
        (b"x,2024-01-02\n", "ragged line: fewer fields than the header"),
        (b'x,"2024-01-02,5,o-x\n', "unbalanced or misplaced quote"),
        (b'x,"2024"-01-02,5,o-x\n', "unbalanced or misplaced quote"),
        (b"x,2024-01-02,5\x00,o-x\n", "NUL byte in the line"),
        (b"x,2024-01-02\r,5,o-x\n", "carriage return inside the line"),
    ],
    ids=["more-fields", "fewer-fields", "open-quote", "misplaced-quote", "nul", "stray-cr"],
)
def test_a_bad_line_is_one_reject_with_row_line_raw_text_and_reason(tmp_path, bad, reason):
    path = write(tmp_path, HEADER + good(0) + good(1) + bad + good(2) + good(3))
    result, _ = rejects_of(path)
    rej = result.rejects
    assert rej[["row", "line", "column", "reason"]].values.tolist() == [[2, 4, "(line)", reason]]
    raw = bad.rstrip(b"\n").decode().replace("\x00", "\ufffd")
    assert rej["value"].iloc[0] == raw
    assert result.transactions["order_id"].tolist() == ["o0", "o1", "o2", "o3"]
    assert LINE not in result.transactions.columns and ISSUE not in result.transactions.columns


def test_a_line_after_an_unbalanced_quote_is_not_swallowed(tmp_path):
    # pyarrow and pandas would read up to the next quote as one value
    path = write(
        tmp_path, HEADER + b'x,"2024-01-02,5,o-x\n' + good(1) + b'y,2024",1,o-y\n' + good(3)
    )
    result, _ = rejects_of(path)
    assert result.rejects["line"].tolist() == [2, 4]
    assert result.transactions["order_id"].tolist() == ["o1", "o3"]


def test_quoted_fields_with_separators_and_doubled_quotes_are_read(tmp_path):
    path = write(tmp_path, HEADER + b'"a,b",2024-01-02,"1,234.50","say ""hi"""\n' + good(1))
    result, _ = rejects_of(path)
    assert result.rejects.empty
    out = result.transactions
    assert out["customer_id"].tolist() == ["a,b", "c1"]
    assert out["amount"].tolist() == [1234.5, 2.5]
    assert out["order_id"].tolist() == ['say "hi"', "o1"]


def test_undecodable_bytes_in_a_utf8_file_reject_their_line(tmp_path):
    lines = b"".join(f"M\u00fcller{i},2024-01-02,{i},o{i}\n".encode() for i in range(5))
    path = write(tmp_path, HEADER + lines + b"M\xfcller,2024-01-02,9,o9\n" + good(6))
    result, info = rejects_of(path)
    assert info.encoding == "utf-8"
    rej = result.rejects
    assert rej[["row", "line", "reason"]].values.tolist() == [
        [5, 7, "undecodable bytes (not utf-8)"]
    ]
    assert rej["value"].iloc[0] == "M\ufffdller,2024-01-02,9,o9"
    assert len(result.transactions) == 6
    # the same file read as cp1252 keeps every line (mojibake, as asked for)
    assert rejects_of(path, encoding="cp1252")[0].rejects.empty


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path):
    path = write(
        tmp_path, HEADER + b"\n" + good(0) + b"\r\n\n" + good(1) + b"x,1\n" + good(2) + b"\n"
    )
    frame, _ = read_frame(path)
    assert frame[LINE].tolist() == [3, 6, 7, 8]
    rej = validate_transactions(frame).rejects
    assert rej[["row", "line"]].values.tolist() == [[2, 7]]


def test_blocks_fast_and_exact_paths_give_the_same_rows(tmp_path, monkeypatch):
    body = b"".join(good(i) for i in range(400))
    bad = body.replace(b"c17,", b"c17,x,").replace(b"c230,2024", b'c230,"2024')
    path = write(tmp_path, HEADER + bad + b"c400,2024-01-01,1,o400")  # no final line break
    whole = read_frame(path)[0]
    monkeypatch.setattr(delimited, "BLOCK_BYTES", 333)  # many blocks, lines cut across them
    pieces = read_frame(path)[0]
    pd.testing.assert_frame_equal(whole, pieces)
    assert len(whole) == 401 and whole[ISSUE].notna().sum() == 2
    assert whole[LINE].tolist() == list(range(2, 403))


def test_a_very_long_ragged_file_keeps_every_good_line(tmp_path):
    """2,000 lines, every 7th ragged: the exact path is taken per block and loses nothing."""
    lines = [good(i) if i % 7 else b"x,1\n" for i in range(2000)]
    path = write(tmp_path, HEADER + b"".join(lines))
    result, info = rejects_of(path)
    assert result.report.n_rejected == len(range(0, 2000, 7)) == info.n_rejected
    assert result.report.n_valid == 2000 - len(range(0, 2000, 7))
    assert result.rejects["row"].tolist() == list(range(0, 2000, 7))


# --- not a table: one SchemaError -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"  \n\r\n ", "the file is empty"),
        (b"customer_id,timestamp,amount\n", "has a header but no rows"),
        (b"customer_id,timestamp,amount\n\n\n", "has a header but no rows"),
        (b"PAR1\x00\x00\x15\x04", "a Parquet file"),
        (b"PK\x03\x04\x14\x00\x06\x00", "ZIP archive"),
        (b"\xff\xfec\x00u\x00s\x00", "UTF-16"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "binary data"),
        (b"x" * (sniff.SAMPLE_BYTES + 10), "no line break"),
    ],
    ids=[
        "empty",
        "whitespace",
        "header-only",
        "header-blank-lines",
        "parquet",
        "xlsx",
        "utf16",
        "binary",
        "one-long-line",
    ],
)
def test_a_file_that_is_not_a_table_is_one_schema_error(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(SchemaError, match=message):
        read_table(path)
    with pytest.raises(SchemaError, match=message):
        Source.from_path(path)


def test_a_file_with_none_of_the_required_columns_says_so(tmp_path):
    path = write(tmp_path, b"Kunde;Datum;Betrag\n1;2024-01-01;3\n")
    with pytest.raises(SchemaError, match="none of the required columns.*--csv-sep.*--map"):
        validate_transactions(load_dataset(transactions=path).transactions)
    with pytest.raises(SchemaError, match="none of the required columns"):
        Source.from_path(path).columns()


def test_missing_file_unsupported_type_and_bad_mapping(tmp_path):
    with pytest.raises(SchemaError, match="file not found"):
        open_table(tmp_path / "nope.csv")
    with pytest.raises(SchemaError, match="unsupported file type '.xlsx'"):
        open_table(write(tmp_path, b"x", "a.xlsx"))
    path = write(tmp_path, HEADER + good(0))
    with pytest.raises(SchemaError, match=r"mapped column\(s\) \['HH'\] not in file"):
        open_table(path, {"HH": "customer_id"})
    with pytest.raises(SchemaError, match=r"\['customer_id'\] appear twice"):
        open_table(path, {"order_id": "customer_id"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"csv_sep": ";;"}, "--csv-sep must be one character"),
        ({"decimal": "'"}, "--decimal must be"),
        ({"encoding": "klingon"}, "--encoding 'klingon' is not a known encoding"),
        ({"date_format": "DD.YYYY"}, "--date-format 'DD.YYYY' is not one I know"),
    ],
)
def test_bad_overrides_are_schema_errors(options, message):
    with pytest.raises(SchemaError, match=message):
        ReadOptions(**options)


# --- European spreadsheet exports ---------------------------------------------------------------

GERMAN = (
    "Kundennummer;Datum;Betrag;Bestellung\r\n"
    "00042;03.04.2017;1.234,50;B1\r\n"
    "M\u00fcller;13.04.2017 14:05;12,50;B2\r\n"
    "Stra\u00dfe 7;28.02.2018 09:30:15;3,00;B3\r\n"
    "00042;03.04.2017;12,5 \u20ac;B4\r\n"
    "1e5;01.12.2017;0,99;B5\r\n"
)
GERMAN_MAP = {
    "Kundennummer": "customer_id",
    "Datum": "timestamp",
    "Betrag": "amount",
    "Bestellung": "order_id",
}


@pytest.mark.parametrize(
    ("encoding", "bom", "label"),
    [("cp1252", b"", "cp1252"), ("utf-8", b"\xef\xbb\xbf", "utf-8 with BOM")],
)
def test_german_export_is_read_as_written(tmp_path, encoding, bom, label):
    path = write(tmp_path, bom + GERMAN.encode(encoding))
    frame, info = read_frame(path, GERMAN_MAP)
    assert info.summary == (
        f"read as ';'-separated, decimal comma, {label}, dates DD.MM.YYYY, CRLF line ends"
    )
    assert set(info.detected) == {"encoding", "separator", "decimal", "date format"}
    result = validate_transactions(frame)
    out = result.transactions
    assert result.rejects.empty
    assert out["customer_id"].tolist() == ["00042", "M\u00fcller", "Stra\u00dfe 7", "00042", "1e5"]
    assert out["amount"].tolist() == [1234.5, 12.5, 3.0, 12.5, 0.99]
    assert out["timestamp"].tolist() == [
        pd.Timestamp("2017-04-03"),
        pd.Timestamp("2017-04-13 14:05"),
        pd.Timestamp("2018-02-28 09:30:15"),
        pd.Timestamp("2017-04-03"),
        pd.Timestamp("2017-12-01"),
    ]


def test_german_export_through_the_batch_source_gives_the_same_frame(tmp_path):
    path = write(tmp_path, GERMAN.encode("cp1252"))
    src = Source.from_path(path, GERMAN_MAP)
    batched = pa.Table.from_batches(list(src.batches())).to_pandas()
    pd.testing.assert_frame_equal(batched, read_table(path, GERMAN_MAP))
    assert src.info.summary.startswith("read as ';'-separated, decimal comma, cp1252")


FRENCH = (
    "client;date;montant;commande\n"
    "\u00c9lodie;25/12/2019;1\u202f234,50 \u20ac;F1\n"
    "00007;01/02/2020;12,50 \u20ac;F2\n"
    "fran\u00e7ois;31/01/2020;\u20ac 3,10;F3\n"
    "fran\u00e7ois;31/01/2020;1 000,00;F4\n"
)


def test_french_export_is_read_as_written(tmp_path):
    path = write(tmp_path, FRENCH.encode("utf-8"))
    mapping = {
        "client": "customer_id",
        "date": "timestamp",
        "montant": "amount",
        "commande": "order_id",
    }
    frame, info = read_frame(path, mapping)
    assert info.summary == "read as ';'-separated, decimal comma, utf-8, dates DD/MM/YYYY"
    out = validate_transactions(frame).transactions
    assert out["customer_id"].tolist() == ["\u00c9lodie", "00007", "fran\u00e7ois", "fran\u00e7ois"]
    assert out["amount"].tolist() == [1234.5, 12.5, 3.1, 1000.0]
    assert out["timestamp"].dt.strftime("%Y-%m-%d").tolist() == [
        "2019-12-25",
        "2020-02-01",
        "2020-01-31",
        "2020-01-31",
    ]


def test_french_customers_consent_words(tmp_path):
    path = write(
        tmp_path,
        "customer_id;consent_profiling\n\u00c9lodie;oui\n00007;non\nz;NON\nq;peut-\u00eatre\nr;\n".encode(
            "cp1252"
        ),
    )
    checked = check_customers(read_table(path))
    assert checked.customers["consent_profiling"].tolist() == [True, False, False, False, True]
    assert checked.rejects[["row", "line", "value"]].values.tolist() == [[3, 5, "peut-\u00eatre"]]


def test_a_lost_customers_line_never_becomes_consent(tmp_path):
    path = write(tmp_path, b"customer_id,consent_profiling,segment\na,yes,x\nb,no,y,extra\nc,,z\n")
    checked = check_customers(read_table(path))
    got = checked.customers.set_index("customer_id")["consent_profiling"].to_dict()
    assert got == {"a": True, "c": True, "b": False}  # b's line was ragged: kept as no consent
    assert checked.rejects["reason"].tolist() == ["ragged line: more fields than the header"]


@pytest.mark.parametrize(
    "values",
    [["03.04.2017", "04.05.2017"], ["03/04/2017", "13/04/2017", "04/13/2017"]],
    ids=["all-days-below-13", "mixed-orders"],
)
def test_ambiguous_dates_are_never_guessed(tmp_path, values):
    lines = "".join(f"a,{v},1\n" for v in values)
    path = write(tmp_path, ("customer_id,timestamp,amount\n" + lines).encode())
    with pytest.raises(SchemaError, match="--date-format"):
        read_table(path)
    with pytest.raises(SchemaError, match="--date-format"):
        Source.from_path(path)


def test_explicit_date_format_settles_ambiguous_dates(tmp_path):
    path = write(tmp_path, b"customer_id,timestamp,amount\na,03.04.2017,1\nb,04/05/2017,2\n")
    for fmt, first in (("DD.MM.YYYY", "2017-04-03"), ("%m.%d.%Y", "2017-03-04")):
        frame, info = read_frame(path, options=ReadOptions(date_format=fmt))
        out = validate_transactions(frame).transactions
        assert str(out["timestamp"].iloc[0].date()) == first
        assert "date format" not in info.detected


def test_month_first_dates_settled_by_the_sample(tmp_path):
    path = write(tmp_path, b"customer_id,timestamp,amount\na,03/04/2017,1\nb,12/31/2017,2\n")
    frame, info = read_frame(path)
    assert info.date_format.label == "MM/DD/YYYY"
    out = validate_transactions(frame).transactions
    assert out["timestamp"].dt.strftime("%Y-%m-%d").tolist() == ["2017-03-04", "2017-12-31"]


def test_explicit_separator_decimal_and_encoding(tmp_path):
    data = "customer_id|timestamp|amount\n\u00e4|2024-01-01|1.234\n".encode("latin-1")
    path = write(tmp_path, data)
    frame, info = read_frame(
        path, options=ReadOptions(csv_sep="|", decimal=",", encoding="latin-1")
    )
    assert info.detected == ("date format",)
    out = validate_transactions(frame).transactions
    assert out["customer_id"].tolist() == ["\u00e4"] and out["amount"].tolist() == [1234.0]


def test_a_value_that_does_not_fit_the_decimal_comma_is_rejected_not_misread(tmp_path):
    lines = "".join(f'a,2024-01-{i:02d},"{i},50",o{i}\n' for i in range(1, 13))
    path = write(tmp_path, (HEADER.decode() + lines + "b,2024-01-13,1.5,o13\n").encode())
    result, info = rejects_of(path)
    assert info.decimal == ","
    rej = result.rejects
    assert rej[["line", "column", "value"]].values.tolist() == [[14, "amount", "1.5"]]
    assert "decimal point" in rej["reason"].iloc[0]


def test_a_cp1252_file_that_is_ascii_for_its_first_mebibyte_is_decided_later(tmp_path):
    n = sniff.SAMPLE_BYTES // len(good(0)) + 100
    body = b"".join(good(i) for i in range(n))
    path = write(tmp_path, HEADER + body + "M\u00fcller,2024-01-02,1,last\n".encode("cp1252"))
    frame, info = read_frame(path)
    assert info.encoding == "cp1252"
    out = validate_transactions(frame).transactions
    assert out["customer_id"].iloc[-1] == "M\u00fcller" and len(out) == n + 1


# --- ids exactly as given -----------------------------------------------------------------------

IDS = ["00042", "1e5", "A b", "abc", "ABC", "M\u00fcller", "Stra\u00dfe", "  7 ", "0x1F", "12.0"]


def test_csv_ids_are_kept_exactly_surrounding_whitespace_is_trimmed(tmp_path):
    lines = "".join(f'"{cid}",2024-01-0{i % 9 + 1},{i + 1},o{i}\n' for i, cid in enumerate(IDS))
    path = write(tmp_path, HEADER + lines.encode())
    train = validate_transactions(load_dataset(transactions=path).transactions).transactions
    expected = [c.strip() for c in IDS]
    assert train["customer_id"].tolist() == expected
    batched = pa.Table.from_batches(list(Source.from_path(path).batches())).to_pandas()
    assert validate_transactions(batched).transactions["customer_id"].tolist() == expected


def test_parquet_integer_and_float_ids_become_their_decimal_string(tmp_path):
    path = tmp_path / "tx.parquet"
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array([42, 7, 1234567890123], pa.int64()),
                "order_id": pa.array([1.0, 2.0, None]),
                "timestamp": pa.array(pd.to_datetime(["2024-01-01"] * 3)),
                "amount": [1.0, 2.0, 3.0],
            }
        ),
        path,
    )
    frame, info = read_frame(path)
    assert info.summary == "read as Parquet"
    assert frame["customer_id"].tolist() == ["42", "7", "1234567890123"]
    assert frame["order_id"].tolist()[:2] == ["1", "2"] and pd.isna(frame["order_id"].iloc[2])
    batched = pa.Table.from_batches(list(Source.from_path(path).batches())).to_pandas()
    pd.testing.assert_frame_equal(batched, frame)
    assert pd.api.types.is_datetime64_any_dtype(frame["timestamp"])  # other columns keep types


def test_parquet_bad_values_are_the_validators_business(tmp_path):
    path = tmp_path / "tx.parquet"
    pd.DataFrame(
        {
            "customer_id": ["00042", "b", "", "d"],
            "timestamp": ["2024-01-01", "2999-01-01", "2024-01-01", "2024-01-02"],
            "amount": ["12.5", "1", "1", "1e12"],
        }
    ).to_parquet(path)
    result = validate_transactions(read_table(path))
    assert result.transactions["customer_id"].tolist() == ["00042"]
    assert result.rejects.set_index("row")["reason"].to_dict() == {
        1: "timestamp out of range (before 1900 or after 2261)",
        2: "missing customer_id",
        3: "absurd amount (|amount| >= 1e+09)",
    }
    assert "line" not in result.rejects.columns


def test_na_strings_are_missing_everywhere(tmp_path):
    path = write(tmp_path, HEADER + b"NA,2024-01-01,1,o1\nb,NULL,1,o2\nc,2024-01-01,nan,o3\n")
    result, _ = rejects_of(path)
    assert result.rejects["reason"].tolist() == [
        "missing customer_id",
        "missing timestamp",
        "missing amount",
    ]
    assert np.array_equal(result.rejects["line"].to_numpy(), [2, 3, 4])
    assert RAW not in result.rejects.columns


def test_a_stored_pandas_index_is_not_a_column(tmp_path):
    path = tmp_path / "tx.parquet"
    frame = pd.DataFrame(
        {"customer_id": ["a", "a"], "timestamp": ["2024-01-01"] * 2, "amount": [1, 1]}
    )
    frame.set_axis([5, 9]).to_parquet(path)
    assert list(read_table(path).columns) == ["customer_id", "timestamp", "amount"]
    assert validate_transactions(read_table(path)).report.rejected == {"exact duplicate row": 1}


def test_split_flagged_for_inputs_no_validator_checks(tmp_path):
    path = write(tmp_path, b"customer_id,offer_id,timestamp\na,X,2024-01-01\nb,Y\nc,Z,2024-01-02\n")
    good, rejects = split_flagged(read_table(path))
    assert list(good.columns) == ["customer_id", "offer_id", "timestamp"]
    assert good["customer_id"].tolist() == ["a", "c"]
    assert rejects[["row", "line", "column", "value"]].values.tolist() == [[1, 3, "(line)", "b,Y"]]
    assert rejects["reason"].tolist() == ["ragged line: fewer fields than the header"]
    parquet = tmp_path / "h.parquet"
    good.to_parquet(parquet)
    again, none = split_flagged(read_table(parquet))
    pd.testing.assert_frame_equal(again, good)
    assert none.empty
