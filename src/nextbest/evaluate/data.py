"""The backtest split: validated data, the part before ``as_of`` (for training) and the windows
after it.

``as_of`` is the first day **not** shown to the models (as everywhere in
nextbest); the CLV horizon is ``[as_of, as_of + horizon_days)``. Every row
of the dataset is validated once (only rows after the last transaction day
could be rejected as "future"), customers who objected to profiling are
dropped before anything else (never trained on, never scored, never
measured), and the two feature contexts are built lazily:

* ``ctx_train`` from rows before ``as_of`` only - what fresh models train on;
* ``ctx_full`` from every row - features at ``as_of`` still use only earlier
  days (:func:`nextbest.features.build.features_at` is leakage-free), the
  later days supply the outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from nextbest.data import Dataset
from nextbest.data.schema import validate_transactions, without_customers
from nextbest.decision.catalog import Catalog
from nextbest.errors import InputError
from nextbest.features.build import FeatureContext, build_context
from nextbest.features.rfm import as_of_date
from nextbest.train import default_as_of


@dataclass
class BacktestData:
    """Everything the sections measure against, for one dataset, ``as_of`` and horizon."""

    name: str
    as_of: pd.Timestamp
    horizon_days: int
    end: pd.Timestamp
    transactions: pd.DataFrame
    customers: pd.DataFrame
    extras: dict[str, pd.DataFrame]
    catalog: Catalog
    categories_present: tuple[str, ...]
    validation: dict
    n_opted_out: int
    notes: list[str] = field(default_factory=list)

    @cached_property
    def train(self) -> pd.DataFrame:
        """Validated rows strictly before ``as_of``."""
        return self.transactions[self.transactions["timestamp"] < self.as_of].reset_index(drop=True)

    @cached_property
    def ctx_train(self) -> FeatureContext:
        return build_context(
            self.train,
            self.customers,
            self.catalog.categories,
            self.extras,
            self.catalog.channel_names,
        )

    @cached_property
    def ctx_full(self) -> FeatureContext:
        return build_context(
            self.transactions,
            self.customers,
            self.catalog.categories,
            self.extras,
            self.catalog.channel_names,
        )

    @property
    def has_categories(self) -> bool:
        return bool(self.categories_present)

    def window_fits(self, days: float) -> bool:
        """Does ``[as_of, as_of + days)`` end on or before the day after the last transaction?"""
        return self.as_of + pd.Timedelta(days=float(days)) <= self.end


def data_end(transactions: pd.DataFrame) -> pd.Timestamp:
    """The day after the last parsable transaction."""

    return default_as_of(transactions)


def parse_as_of(value) -> pd.Timestamp:
    """``--as-of`` as a day (raises :class:`ValueError` naming the flag)."""
    try:
        return as_of_date(value)
    except ValueError as exc:
        raise InputError(f"--as-of {value!s}: expected a date YYYY-MM-DD ({exc})") from exc


def default_backtest_as_of(dataset: Dataset, horizon_days: int) -> pd.Timestamp:
    """The latest ``as_of`` whose horizon still fits in the data: the data end minus
    ``horizon_days``."""
    return data_end(dataset.transactions) - pd.Timedelta(days=int(horizon_days))


def check_horizon(dataset: Dataset, as_of, horizon_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(as_of, data end)`` when the horizon after ``as_of`` lies inside the data; otherwise an
    :class:`InputError` that says the latest ``--as-of`` that fits."""
    if horizon_days <= 0:
        raise InputError(f"--horizon-days must be > 0, got {horizon_days}")
    as_of = parse_as_of(as_of)
    end = data_end(dataset.transactions)
    horizon_end = as_of + pd.Timedelta(days=int(horizon_days))
    if horizon_end > end:
        last = (end - pd.Timedelta(days=1)).date()
        raise InputError(
            f"the {horizon_days}-day horizon after as_of {as_of.date()} runs to "
            f"{(horizon_end - pd.Timedelta(days=1)).date()}, past the last day of the data "
            f"({dataset.name}: "
            f"{last}): nothing to measure against; use an earlier --as-of (at most "
            f"{(end - pd.Timedelta(days=int(horizon_days))).date()}) or a shorter --horizon-days"
        )
    return as_of, end


def prepare(dataset: Dataset, as_of, horizon_days: int, catalog: Catalog) -> BacktestData:
    """Validate, drop opted-out customers and check that the horizon is inside the data.

    Raises
    ------
    ValueError
        If ``horizon_days`` is not positive, nothing happened before ``as_of``
        or the horizon runs past the last transaction day.
    """
    as_of, end = check_horizon(dataset, as_of, horizon_days)
    checked = validate_transactions(dataset.transactions, as_of=end)
    tx = checked.transactions
    opted_out = dataset.opted_out
    tx = without_customers(tx, opted_out)
    if not (tx["timestamp"] < as_of).any():
        raise InputError(f"no valid transaction before as_of {as_of.date()}: nothing to train on")
    notes = []
    report = checked.report.as_dict()
    if report.get("n_rejected"):
        notes.append(
            f"{report['n_rejected']:,} input rows were rejected by validation "
            f"({', '.join(f'{k}: {v:,}' for k, v in report['rejected'].items())})."
        )
    if opted_out:
        notes.append(
            f"{len(opted_out):,} customers who objected to profiling are left out of every "
            "model and every measurement."
        )
    present: tuple[str, ...] = ()
    if "category" in tx.columns:
        before = set(tx.loc[tx["timestamp"] < as_of, "category"].astype(str).unique())
        present = tuple(c for c in catalog.categories if c in before)
    return BacktestData(
        name=dataset.name,
        as_of=as_of,
        horizon_days=int(horizon_days),
        end=end,
        transactions=tx,
        customers=dataset.customers,
        extras=dataset.extras or {},
        catalog=catalog,
        categories_present=present,
        validation=report,
        n_opted_out=len(opted_out),
        notes=notes,
    )
