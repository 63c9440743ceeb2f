"""File ingest: CSV, Parquet and JSON lines, streamed in batches, with rejects in a side file."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nextbest.errors import SchemaError
from nextbest.events import open_store
from nextbest.events.ingest import default_rejects_path, ingest_file

NOW = datetime(2024, 6, 1, tzinfo=UTC)

HEADER = "type,event_id,customer_id,timestamp,at,amount,category,consent_profiling,channel,opt_in"
CSV = f"""{HEADER},store
purchase,p1,00042,2024-05-01T10:00:00Z,,30.5,PRODUCE,,,,north
purchase,p2,00043,2024-05-01,,,DAIRY,,,,north
purchase,p3,00044,not a time,,12,,,,,south
consent,c1,00042,,2024-05-02,,,false,,,north
consent,c2,00042,,2024-05-02,,,,email,yes,north
consent,c3,00045,,2024-05-02,,,,,,north
refund,r1,00046,2024-05-01,,5,,,,,north
purchase,p4,00047,2031-01-01,,5,,,,,north
purchase,bad id,00048,2024-05-01,,5,,,,,north
"""


@pytest.fixture()
def store(tmp_path):
    handle = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    yield handle
    handle.close()


def read_rejects(path):
    return pd.read_parquet(path).sort_values(["row", "field"]).reset_index(drop=True)


def test_csv_with_rejects_written_beside_it(store, tmp_path):
    source = tmp_path / "events.csv"
    source.write_text(CSV)
    result = ingest_file(source, store, now=NOW, batch_rows=4)
    assert (result.rows, result.new, result.rejected) == (9, 3, 6)
    assert result.ignored_columns == ["store"]
    assert result.rejects_path == str(default_rejects_path(source))
    assert result.rejects_path.endswith("events.csv.rejects.parquet")
    rejects = read_rejects(result.rejects_path)
    assert list(rejects.columns) == ["row", "field", "value", "reason"]
    got = [tuple(r) for r in rejects[["row", "field", "value"]].itertuples(index=False)]
    assert got == [
        (1, "amount", ""),
        (2, "timestamp", "not a time"),
        (5, "consent_profiling", ""),
        (6, "type", "refund"),
        (7, "timestamp", "2031-01-01"),
        (8, "event_id", "bad id"),
    ]
    assert rejects["reason"].iloc[0] == "required for a purchase event"
    kept = {e.event_id: e for e in store.since(0).events}
    assert sorted(kept) == ["c1", "c2", "p1"]
    assert kept["p1"].customer_id == "00042" and kept["p1"].amount == 30.5
    assert kept["c1"].consent_profiling is False and kept["c2"].opt_in is True


def test_ingesting_the_same_file_twice_adds_nothing(store, tmp_path):
    source = tmp_path / "events.csv"
    source.write_text(CSV)
    ingest_file(source, store, now=NOW)
    again = ingest_file(source, store, now=NOW)
    assert again.new == 0 and again.duplicates == 3 and again.rejected == 6
    assert store.head() == 3


def test_parquet_of_purchases_in_several_batches(store, tmp_path):
    n = 2500
    frame = pd.DataFrame(
        {
            "customer_id": [f"{i % 97:05d}" for i in range(n)],
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="h"),
            "amount": [float(i % 50) if i % 500 else float("nan") for i in range(n)],
            "category": ["PRODUCE"] * n,
        }
    )
    source = tmp_path / "tx.parquet"
    frame.to_parquet(source, index=False)
    result = ingest_file(source, store, event_type="purchase", now=NOW, batch_rows=1000)
    assert (result.rows, result.new, result.rejected) == (n, n - 5, 5)
    rejects = read_rejects(result.rejects_path)
    assert rejects["row"].tolist() == [0, 500, 1000, 1500, 2000]
    assert set(rejects["field"]) == {"amount"}
    back = store.purchases()
    assert len(back) == n - 5 and back["customer_id"].iloc[0] == "00001"
    assert back["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 01:00")


def test_rows_of_an_erased_customer_are_rejected_without_the_id(store, tmp_path):
    source = tmp_path / "events.csv"
    source.write_text(CSV)
    ingest_file(source, store, now=NOW)
    store.forget("00042")
    result = ingest_file(source, store, now=NOW)
    erased = read_rejects(result.rejects_path).query("reason.str.startswith('erased')")
    assert erased["row"].tolist() == [0, 3, 4]
    assert (erased["value"] == "").all() and (erased["field"] == "customer_id").all()
    assert b"00042" not in (tmp_path / "events.csv.rejects.parquet").read_bytes()
    assert store.for_customer("00042") == []


def test_json_lines_with_a_broken_line(store, tmp_path):
    source = tmp_path / "events.jsonl"
    source.write_text(
        '{"type": "purchase", "customer_id": "1", "timestamp": "2024-05-01", "amount": 3}\n'
        "{not json\n"
        '{"type": "purchase", "customer_id": 2, "timestamp": "2024-05-01", "amount": 3}\n'
        '{"type": "consent", "customer_id": "3", "at": "2024-05-01", "consent_profiling": true,'
        ' "source": "crm"}\n'
    )
    result = ingest_file(source, store, now=NOW)
    assert (result.rows, result.new, result.rejected) == (4, 2, 2)
    assert result.ignored_columns == ["source"]
    rejects = read_rejects(result.rejects_path)
    assert rejects[["row", "field"]].values.tolist() == [[1, ""], [2, "customer_id"]]
    assert rejects["reason"].iloc[0].startswith("not valid JSON")


def test_an_empty_rejects_file_when_everything_is_accepted(store, tmp_path):
    source = tmp_path / "ok.parquet"
    pq.write_table(
        pa.table(
            {
                "type": ["consent"],
                "customer_id": ["1"],
                "at": ["2024-05-01"],
                "consent_profiling": [False],
            }
        ),
        source,
    )
    result = ingest_file(source, store, now=NOW)
    assert result.rejected == 0 and read_rejects(result.rejects_path).empty


def test_files_that_cannot_be_read_are_schema_errors(store, tmp_path):
    with pytest.raises(SchemaError, match="events file not found"):
        ingest_file(tmp_path / "missing.csv", store)
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(SchemaError, match="unsupported file type"):
        ingest_file(tmp_path / "x.xlsx", store)
    (tmp_path / "tx.csv").write_text("customer_id,amount\n1,2\n")
    with pytest.raises(SchemaError, match="no 'type' column"):
        ingest_file(tmp_path / "tx.csv", store)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SchemaError, match="empty"):
        ingest_file(tmp_path / "empty.csv", store)


def test_an_integer_id_column_in_parquet_is_read_as_its_decimal_text(store, tmp_path):
    """The one reader (issue 14): ids are text everywhere; 42 in Parquet is the id "42"."""
    numbers = tmp_path / "numbers.parquet"
    table = pa.table(
        {
            "type": ["purchase"],
            "customer_id": [42],
            "timestamp": ["2024-05-01T10:00:00Z"],
            "amount": [3.0],
        }
    )
    pq.write_table(table, numbers)
    result = ingest_file(numbers, store, now=NOW)
    assert result.new == 1 and result.rejected == 0
    assert list(store.purchases()["customer_id"]) == ["42"]


def test_a_line_the_reader_cannot_read_is_a_reject_and_the_rest_is_stored(store, tmp_path):
    """Events files go through the one reader: a ragged line is a reject with its reason."""
    source = tmp_path / "events.csv"
    source.write_text(
        "type,customer_id,timestamp,amount\n"
        "purchase,00042,2024-05-01T10:00:00Z,3.5\n"
        "purchase,7,2024-05-01T11:00:00Z,1.0,EXTRA,FIELDS\n"
        "purchase,Müller,2024-05-02T09:00:00Z,2.0\n"
    )
    result = ingest_file(source, store, now=NOW)
    assert result.new == 2 and result.rejected == 1
    rejects = read_rejects(result.rejects_path)
    assert rejects["row"].tolist() == [1] and "more fields" in rejects["reason"].iloc[0]
    assert "EXTRA" in rejects["value"].iloc[0]
    assert sorted(store.purchases()["customer_id"]) == ["00042", "Müller"]
