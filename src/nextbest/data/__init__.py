"""Data layer: loaders for the bundled datasets and user files, and the one schema check.

:func:`load_dataset` returns a :class:`Dataset` whatever the source; use
:func:`nextbest.data.schema.validate_transactions` on its transactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nextbest.data.cdnow import load_cdnow
from nextbest.data.completejourney import load_completejourney
from nextbest.data.files import read_table
from nextbest.data.schema import opted_out, validate_customers
from nextbest.errors import SchemaError

DATASETS = ("cdnow", "cdnow-full", "completejourney")


@dataclass
class Dataset:
    """Transactions, customers and optional extra tables from one source."""

    name: str
    transactions: pd.DataFrame
    customers: pd.DataFrame
    extras: dict[str, pd.DataFrame] = field(default_factory=dict)
    default_as_of: pd.Timestamp | None = None

    @property
    def opted_out(self) -> set[str]:
        """Ids of customers who objected to profiling (see :func:`~.schema.opted_out`)."""
        return opted_out(self.customers)


def _customers_from(transactions: pd.DataFrame) -> pd.DataFrame:
    ids = pd.Series(transactions["customer_id"].dropna().astype(str).unique())
    return pd.DataFrame({"customer_id": ids.sort_values().to_numpy(), "consent_profiling": True})


def load_dataset(
    name: str | None = None,
    transactions: str | Path | None = None,
    customers: str | Path | None = None,
    mapping: dict[str, str] | None = None,
) -> Dataset:
    """Load a bundled dataset by ``name`` or the user's ``transactions`` file.

    Parameters
    ----------
    name : {"cdnow", "cdnow-full", "completejourney"}, optional
    transactions, customers : path, optional
        CSV or Parquet files; ``customers`` must have ``customer_id`` and may
        have ``consent_profiling``.
    mapping : dict, optional
        Source column -> schema column renames for the transactions file.
    """

    if (name is None) == (transactions is None):
        raise SchemaError("give exactly one of a dataset name or a transactions file")
    extras: dict[str, pd.DataFrame] = {}
    default_as_of = None
    if name is not None:
        if name in ("cdnow", "cdnow-full"):
            tx = load_cdnow(full=name == "cdnow-full")
            cust = _customers_from(tx)
            default_as_of = pd.Timestamp("1998-07-01")
        elif name == "completejourney":
            tx, cust, extras = load_completejourney()
            default_as_of = pd.Timestamp("2018-01-01")
        else:
            raise SchemaError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    else:
        tx = read_table(transactions, mapping)
        cust = read_table(customers) if customers is not None else None
        if cust is None:
            if "customer_id" not in tx.columns:
                cust = pd.DataFrame({"customer_id": [], "consent_profiling": []})
            else:
                cust = _customers_from(tx)
        name = Path(transactions).name
    if customers is not None and name in DATASETS:
        cust = read_table(customers)
    return Dataset(
        name=name,
        transactions=tx,
        customers=validate_customers(cust),
        extras=extras,
        default_as_of=default_as_of,
    )
