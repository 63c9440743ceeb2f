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
from nextbest.data.readers import ReadOptions, read_frame
from nextbest.data.schema import check_customers, opted_out
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
    # How the user's files were read ("read as ';'-separated, decimal comma, ...").
    read_notes: list[str] = field(default_factory=list)
    # Rows of the customers file that were rejected (row, line, column, value, reason).
    customer_rejects: pd.DataFrame | None = None

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
    options: ReadOptions | None = None,
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
    options : ReadOptions, optional
        Separator, decimal mark, encoding and date format of CSV files
        (``None`` parts are detected; what was used is in ``read_notes``).
    """

    if (name is None) == (transactions is None):
        raise SchemaError("give exactly one of a dataset name or a transactions file")
    extras: dict[str, pd.DataFrame] = {}
    default_as_of = None
    notes: list[str] = []
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
        tx, info = read_frame(transactions, mapping, options)
        notes.append(f"{Path(transactions).name}: {info.summary}")
        cust = None
        if customers is not None:
            cust, info = read_frame(customers, None, options)
            notes.append(f"{Path(customers).name}: {info.summary}")
        if cust is None:
            if "customer_id" not in tx.columns:
                cust = pd.DataFrame({"customer_id": [], "consent_profiling": []})
            else:
                cust = _customers_from(tx)
        name = Path(transactions).name
    if customers is not None and name in DATASETS:
        cust, info = read_frame(customers, None, options)
        notes.append(f"{Path(customers).name}: {info.summary}")
    checked = check_customers(cust)
    return Dataset(
        name=name,
        transactions=tx,
        customers=checked.customers,
        extras=extras,
        default_as_of=default_as_of,
        read_notes=notes,
        customer_rejects=checked.rejects if len(checked.rejects) else None,
    )


def write_customer_rejects(dataset: Dataset, directory: Path) -> Path | None:
    """Write the rejected rows of the customers file to ``directory``; ``None`` if there are none.

    The file is ``customers.rejects.parquet`` (row, line, column,
    value, reason), every column but ``row`` as text.
    """
    rejects = dataset.customer_rejects
    if rejects is None or not len(rejects):
        return None
    path = Path(directory) / "customers.rejects.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = rejects.astype({c: str for c in rejects.columns if c != "row"})
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
