"""Data layer: loaders for the bundled datasets and user files, and the one schema check.

:func:`load_dataset` returns a :class:`Dataset` whatever the source; use
:func:`nextbest.data.schema.validate_transactions` on its transactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nextbest.config import models_dir
from nextbest.data.cdnow import load_cdnow
from nextbest.data.completejourney import load_completejourney
from nextbest.data.hillstrom import HILLSTROM_AS_OF, load_hillstrom
from nextbest.data.readers import ReadOptions, read_frame
from nextbest.data.schema import check_customers, opted_out
from nextbest.errors import SchemaError

DATASETS = ("cdnow", "cdnow-full", "completejourney", "hillstrom")
ATTRIBUTE_DATASETS = frozenset({"hillstrom"})  # customers known by attributes, no transactions
EMPTY_TRANSACTIONS = {"customer_id": str, "timestamp": "datetime64[ns]", "amount": float}


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
    # A campaign log as read (validated against the catalog by training and scoring).
    campaign_log: pd.DataFrame | None = None
    # The offer catalog that goes with a bundled dataset (None: the default catalog).
    catalog_path: Path | None = None

    @property
    def has_transactions(self) -> bool:
        """False for customers known by their attributes only (e.g. Hillstrom)."""
        return len(self.transactions) > 0

    @property
    def opted_out(self) -> set[str]:
        """Ids of customers who objected to profiling (see :func:`~.schema.opted_out`)."""
        return opted_out(self.customers)


def _no_transactions() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in EMPTY_TRANSACTIONS.items()})


def _customers_from(transactions: pd.DataFrame) -> pd.DataFrame:
    ids = pd.Series(transactions["customer_id"].dropna().astype(str).unique())
    return pd.DataFrame({"customer_id": ids.sort_values().to_numpy(), "consent_profiling": True})


def load_dataset(
    name: str | None = None,
    transactions: str | Path | None = None,
    customers: str | Path | None = None,
    mapping: dict[str, str] | None = None,
    options: ReadOptions | None = None,
    campaign_log: str | Path | None = None,
) -> Dataset:
    """Load a bundled dataset by ``name``, the user's ``transactions`` file, or only customers.

    Parameters
    ----------
    name : {"cdnow", "cdnow-full", "completejourney", "hillstrom"}, optional
    transactions, customers : path, optional
        CSV or Parquet files; ``customers`` must have ``customer_id`` and may
        have ``consent_profiling``.
    mapping : dict, optional
        Source column -> schema column renames for the transactions file.
    options : ReadOptions, optional
        Separator, decimal mark, encoding and date format of CSV files
        (``None`` parts are detected; what was used is in ``read_notes``).
    campaign_log : path, optional
        What was sent to whom and what happened (see
        :mod:`nextbest.data.campaign_log`); read here, validated by its users.

    Without ``name`` and ``transactions``, ``customers`` alone is a base known
    by its attributes: an uplift model can still learn from a campaign log and
    decide for it.
    """

    if name is not None and transactions is not None:
        raise SchemaError("give exactly one of a dataset name or a transactions file, not both")
    if name is None and transactions is None and customers is None:
        raise SchemaError("give a dataset name, a transactions file or a customers file")
    extras: dict[str, pd.DataFrame] = {}
    default_as_of = None
    notes: list[str] = []
    bundled_log: pd.DataFrame | None = None
    catalog: Path | None = None
    if name is not None:
        if name in ("cdnow", "cdnow-full"):
            tx = load_cdnow(full=name == "cdnow-full")
            cust = _customers_from(tx)
            default_as_of = pd.Timestamp("1998-07-01")
        elif name == "completejourney":
            tx, cust, extras = load_completejourney()
            default_as_of = pd.Timestamp("2018-01-01")
        elif name == "hillstrom":
            log, cust = load_hillstrom()
            tx = _no_transactions()
            default_as_of = HILLSTROM_AS_OF
            if campaign_log is None:
                bundled_log = log
            catalog = models_dir() / "hillstrom_offers.yaml"
        else:
            raise SchemaError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    elif transactions is None:
        tx = _no_transactions()
        cust, info = read_frame(customers, None, options)
        notes.append(f"{Path(customers).name}: {info.summary}")
        name = Path(customers).name
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
    if campaign_log is not None:
        bundled_log, info = read_frame(campaign_log, None, options)
        notes.append(f"{Path(campaign_log).name}: {info.summary}")
    checked = check_customers(cust)
    return Dataset(
        name=name,
        transactions=tx,
        customers=checked.customers,
        extras=extras,
        default_as_of=default_as_of,
        read_notes=notes,
        customer_rejects=checked.rejects if len(checked.rejects) else None,
        campaign_log=bundled_log,
        catalog_path=catalog,
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
