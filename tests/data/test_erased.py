"""Forgotten customers: the tombstone list and the transactions validator's ``erased`` rejects."""

from __future__ import annotations

import pandas as pd

from nextbest.config import Paths
from nextbest.data.erased import (
    ERASED_REASON,
    add_tombstone,
    erased_mask,
    is_erased,
    tombstone_path,
)
from nextbest.data.schema import validate_transactions

GONE = "gone-customer-0042"


def test_tombstone_keeps_only_a_salted_hash(nb_home):
    paths = Paths(nb_home)
    assert not is_erased(GONE, paths)
    assert add_tombstone(GONE, paths) is True
    assert add_tombstone(GONE, paths) is False  # listed once
    assert is_erased(GONE, paths) and not is_erased("someone-else", paths)
    assert GONE.encode() not in tombstone_path(paths).read_bytes()
    mask = erased_mask(pd.Series(["a", GONE, "b", GONE]), paths)
    assert mask.tolist() == [False, True, False, True]


def test_validator_rejects_an_erased_customer_without_naming_them(nb_home):
    add_tombstone(GONE, Paths(nb_home))
    frame = pd.DataFrame(
        {
            "customer_id": ["1", f" {GONE} ", "2"],
            "timestamp": ["2024-01-01", "2024-01-02", "2024-01-03"],
            "amount": [10.0, 20.0, 30.0],
        }
    )
    checked = validate_transactions(frame)
    assert checked.transactions["customer_id"].tolist() == ["1", "2"]
    assert checked.report.rejected == {ERASED_REASON: 1}
    rejects = checked.rejects
    assert rejects[["row", "column", "reason"]].to_dict("records") == [
        {"row": 1, "column": "customer_id", "reason": ERASED_REASON}
    ]
    assert GONE not in rejects.astype(str).to_string()
