"""Snapshot side files: one customer's rows by row-group bounds; contacts as history."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nextbest.config import Paths
from nextbest.data.history import SortedParquet, read_contacts, write_history


def test_sorted_parquet_reads_one_customer_across_row_groups(tmp_path):
    ids = ["a", "b", "b", "b", "c", "d", "d", "e"]
    frame = pd.DataFrame({"customer_id": ids, "amount": range(len(ids))})
    path = tmp_path / "sorted.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=2)
    rows = SortedParquet(path)
    assert rows.rows("b")["amount"].tolist() == [1, 2, 3]  # spans groups 0 and 1
    assert rows.rows("d")["amount"].tolist() == [5, 6]
    assert rows.rows("e")["amount"].tolist() == [7]
    assert rows.rows("bb").empty and rows.rows("0").empty and rows.rows("z").empty
    assert list(rows.rows("zz").columns) == ["customer_id", "amount"]


def test_history_is_sorted_and_contacts_keep_only_sent_offers(tmp_path):
    paths = Paths(tmp_path)
    tx = pd.DataFrame(
        {
            "customer_id": ["2", "1", "2"],
            "timestamp": pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-03"]),
            "amount": [1.0, 2.0, 3.0],
            "category": ["A", None, "B"],
            "basket_id": [7, 8, 9],  # not kept: only what features and the data export need
        }
    )
    log = pd.DataFrame(
        {
            "customer_id": ["1", "1", "2"],
            "offer_id": ["XS-A", "", "XS-B"],
            "contacted_at": pd.to_datetime(["2024-01-05", "2024-01-05", "2024-01-06"]),
            "group": ["treatment", "control", "control"],
            "channel": ["email", None, "sms"],
            "converted": [1, pd.NA, 0],
        }
    )
    hist_path, _ = write_history(tx, log, paths)
    hist = pd.read_parquet(hist_path)
    assert hist["customer_id"].tolist() == ["1", "2", "2"] and "basket_id" not in hist
    assert SortedParquet(hist_path).rows("2")["amount"].tolist() == [1.0, 3.0]
    history = read_contacts(paths)
    assert history.to_dict("records") == [
        {
            "customer_id": "1",
            "offer_id": "XS-A",
            "timestamp": pd.Timestamp("2024-01-05"),
            "channel": "email",  # where it went and what it did: the channel preference
            "converted": 1.0,
        }
    ]
