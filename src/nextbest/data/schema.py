"""The one transactions schema and its validator.

A transaction line has ``customer_id`` (string), ``timestamp``, ``amount``
and optionally ``order_id``, ``category`` and ``channel``; other columns pass
through untouched. A customers table has ``customer_id`` and
``consent_profiling`` (default true) plus optional attributes.

Rules applied by :func:`validate_transactions`, in this order. Every row that
breaks one goes to the rejects frame with the row number, the column, the
value and the reason; nothing is dropped silently.

1. Missing required columns -> :class:`SchemaError` (fatal, nothing to salvage).
2. ``customer_id`` missing or blank -> rejected; so is a customer who was
   forgotten (:mod:`nextbest.data.erased`), with the id left out of the rejects.
3. ``timestamp`` missing or unparsable -> rejected.
4. ``amount`` missing, unparsable, NaN or infinite -> rejected.
5. ``timestamp`` on or after ``as_of`` (when given) -> rejected: the future is
   not known at ``as_of``.
6. Exact duplicate rows (every column equal) -> all but the first rejected.
   Give each line an ``order_id`` (or a line id) if identical lines are real.
7. Refunds (negative ``amount``) are netted against the same customer's
   positive spend on the same day (a returned item in a basket). A refund
   with no purchase by that customer that day, or one that takes the day's
   net spend below zero, is rejected: it cannot be attributed to a purchase.

A *purchase* is then one customer-day (all lines of a customer on a day
merged, amounts summed): the buy-till-you-die convention, needed to
reproduce Fader, Hardie & Lee (2005) on CDNOW.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.data.erased import ERASED_REASON, blank_erased, erased_mask
from nextbest.errors import SchemaError

REQUIRED_TRANSACTION_COLUMNS: tuple[str, ...] = ("customer_id", "timestamp", "amount")
OPTIONAL_TRANSACTION_COLUMNS: tuple[str, ...] = ("order_id", "category", "channel")
REJECT_COLUMNS: tuple[str, ...] = ("row", "column", "value", "reason")


@dataclass
class ValidationReport:
    """Counts of what validation did, by reason."""

    n_input: int
    n_valid: int
    rejected: dict[str, int] = field(default_factory=dict)
    refunds_netted: int = 0

    @property
    def n_rejected(self) -> int:
        return int(sum(self.rejected.values()))

    def as_dict(self) -> dict:
        return {
            "n_input": self.n_input,
            "n_valid": self.n_valid,
            "n_rejected": self.n_rejected,
            "rejected": dict(self.rejected),
            "refunds_netted": self.refunds_netted,
        }


@dataclass
class ValidationResult:
    """Clean transactions, rejected rows (with reasons) and the report."""

    transactions: pd.DataFrame
    rejects: pd.DataFrame
    report: ValidationReport


def require_columns(frame: pd.DataFrame, required: tuple[str, ...] | list[str], what: str) -> None:
    """Raise :class:`SchemaError` naming every required column that is missing."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"{what} is missing required column(s) {missing}; found {list(frame.columns)}"
        )


def _reject(frame: pd.DataFrame, mask: np.ndarray, column: str, reason: str) -> pd.DataFrame:
    rows = frame.loc[mask]
    values = rows[column] if column in rows.columns else pd.Series("", index=rows.index)
    return pd.DataFrame(
        {
            "row": rows["_row"].to_numpy(),
            "column": column,
            "value": values.astype(str).to_numpy(),
            "reason": reason,
        }
    )


def naive_utc(value) -> pd.Timestamp:
    """A timestamp as naive UTC (time-zone-aware values are converted, naive ones kept)."""
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Parse timestamps to naive UTC ``datetime64[ns]``; unparsable values become NaT.

    Strings with UTC offsets (also several offsets in one column, as across a
    daylight-saving change) are converted to UTC; naive strings are taken as UTC.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        return ts.astype("datetime64[ns]")
    ts = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
    # pandas 3 may parse year 0001 or 9999 at a coarser resolution; such values cannot be
    # nanosecond timestamps, so they become NaT (and the row is rejected) instead of raising.
    ts = ts.where((ts.dt.year >= 1678) & (ts.dt.year <= 2261))
    return ts.dt.tz_localize(None).astype("datetime64[ns]")


def validate_transactions(
    frame: pd.DataFrame,
    as_of: str | pd.Timestamp | None = None,
) -> ValidationResult:
    """Check transactions against the schema and split them into clean and rejected.

    Parameters
    ----------
    frame : pandas.DataFrame
        Raw transaction lines. Not modified.
    as_of : str or Timestamp, optional
        Lines on or after this instant are rejected as future data.

    Returns
    -------
    ValidationResult
        ``transactions`` with ``customer_id`` as str, ``timestamp`` as
        datetime64[ns] and ``amount`` as float64; ``rejects`` with columns
        ``row`` (0-based position in the input), ``column``, ``value``,
        ``reason`` plus the original columns of the row.

    Raises
    ------
    SchemaError
        If a required column is missing.
    """
    require_columns(frame, REQUIRED_TRANSACTION_COLUMNS, "transactions")
    df = frame.copy()
    df["_row"] = np.arange(len(df))
    n_input = len(df)
    rejects: list[pd.DataFrame] = []
    counts: dict[str, int] = {}

    def drop(mask: np.ndarray, column: str, reason: str) -> None:
        nonlocal df
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            bad = _reject(df, mask, column, reason)
            bad = bad.merge(
                frame.iloc[bad["row"].to_numpy()].assign(row=bad["row"].to_numpy()),
                on="row",
                how="left",
                suffixes=("", "_input"),
            )
            rejects.append(bad)
            counts[reason] = counts.get(reason, 0) + int(mask.sum())
            df = df.loc[~mask]

    cid = df["customer_id"]
    cid_str = cid.astype("string").str.strip()
    drop((cid.isna() | (cid_str == "")).to_numpy(), "customer_id", "missing customer_id")
    df["customer_id"] = df["customer_id"].astype("string").str.strip().astype(str)
    drop(erased_mask(df["customer_id"]), "customer_id", ERASED_REASON)

    ts = parse_timestamps(df["timestamp"])
    drop(ts.isna().to_numpy(), "timestamp", "missing or unparsable timestamp")
    df["timestamp"] = ts.loc[df.index].astype("datetime64[ns]")

    amount = pd.to_numeric(df["amount"], errors="coerce").astype("float64")
    drop((~np.isfinite(amount.to_numpy())), "amount", "missing, unparsable or non-finite amount")
    df["amount"] = amount.loc[df.index]

    if as_of is not None:
        cutoff = naive_utc(as_of)
        drop(
            (df["timestamp"] >= cutoff).to_numpy(),
            "timestamp",
            f"timestamp on or after as_of {cutoff.date()}",
        )

    payload = [c for c in df.columns if c != "_row"]
    drop(
        df.duplicated(subset=payload, keep="first").to_numpy(), "customer_id", "exact duplicate row"
    )

    refunds_netted = 0
    neg = (df["amount"] < 0).to_numpy()
    if neg.any():
        day = df["timestamp"].dt.normalize()
        pos_spend = df["amount"].clip(lower=0).groupby([df["customer_id"], day]).transform("sum")
        net = df["amount"].groupby([df["customer_id"], day]).transform("sum")
        no_purchase = neg & (pos_spend.to_numpy() == 0)
        drop(no_purchase, "amount", "refund with no purchase by the customer on the same day")
        neg = (df["amount"] < 0).to_numpy()
        over = neg & (net.loc[df.index].to_numpy() < 0)
        drop(over, "amount", "refund larger than the customer's spend that day")
        refunds_netted = int((df["amount"] < 0).sum())

    clean = df.drop(columns="_row").reset_index(drop=True)
    rej = (
        pd.concat(rejects, ignore_index=True)
        if rejects
        else pd.DataFrame({c: pd.Series(dtype=object) for c in REJECT_COLUMNS})
    )
    rej = blank_erased(rej)
    report = ValidationReport(
        n_input=n_input, n_valid=len(clean), rejected=counts, refunds_netted=refunds_netted
    )
    return ValidationResult(transactions=clean, rejects=rej, report=report)


def validate_customers(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a customers table and fill ``consent_profiling`` (default true).

    Raises
    ------
    SchemaError
        If ``customer_id`` is missing, an id is blank or repeated, or a
        ``consent_profiling`` value is not a recognisable boolean.
    """
    require_columns(frame, ("customer_id",), "customers")
    df = frame.copy()
    blank = df["customer_id"].isna() | (df["customer_id"].astype("string").str.strip() == "")
    if blank.any():
        row = int(np.flatnonzero(blank.to_numpy())[0])
        raise SchemaError(f"customers: column 'customer_id' is blank at row {row}")
    df["customer_id"] = df["customer_id"].astype("string").str.strip().astype(str)
    dup = df["customer_id"].duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise SchemaError(
            f"customers: column 'customer_id' must be unique; "
            f"{df['customer_id'].iloc[row]!r} repeats at row {row}"
        )
    if "consent_profiling" not in df.columns:
        df["consent_profiling"] = True
    else:
        df["consent_profiling"] = _parse_bool(df["consent_profiling"], "consent_profiling")
    return df.reset_index(drop=True)


def opted_out(customers: pd.DataFrame) -> set[str]:
    """Ids of the customers who objected to profiling (``consent_profiling`` false).

    The one place this set is built: training leaves these customers out of
    every fit, scoring gives them the non-personalised action with no scores.
    ``customers`` is a frame checked by :func:`validate_customers`.
    """
    if customers.empty or "consent_profiling" not in customers.columns:
        return set()
    consent = customers["consent_profiling"].fillna(True).astype(bool).to_numpy()
    return set(customers.loc[~consent, "customer_id"].astype(str))


def without_customers(transactions: pd.DataFrame, ids: set[str]) -> pd.DataFrame:
    """``transactions`` minus the lines of customers in ``ids`` (a new frame; no copy if none)."""
    if not ids:
        return transactions
    keep = ~transactions["customer_id"].astype(str).isin(ids)
    return transactions[keep.to_numpy()].reset_index(drop=True)


_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def _parse_bool(values: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values) and not values.isna().any():
        return values.astype(bool)
    out = []
    for i, v in enumerate(values.tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append(True)  # consent default: true unless the customer objected
            continue
        if (
            isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, bool)
            and v in (0, 1)
        ):
            out.append(bool(v))
            continue
        if v is pd.NA:
            out.append(True)
            continue
        s = str(v).strip().lower()
        if s in _TRUE:
            out.append(True)
        elif s in _FALSE:
            out.append(False)
        else:
            raise SchemaError(
                f"customers: column {column!r} at row {i} has {v!r}; expected true/false"
            )
    return pd.Series(out, index=values.index, dtype=bool)
