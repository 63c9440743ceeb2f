"""The one transactions schema and its validator.

A transaction line has ``customer_id`` (string), ``timestamp``, ``amount``
and optionally ``order_id``, ``category`` and ``channel``; other columns pass
through untouched. A customers table has ``customer_id`` and
``consent_profiling`` (default true) plus optional attributes. What a value
means (amounts with currency signs, out-of-range timestamps, consent words)
is defined in :mod:`nextbest.data.values`.

Rules applied by :func:`validate_transactions`, in this order. Every row that
breaks one goes to the rejects frame with the row number, the column, the
value and the reason; nothing is dropped silently.

1. Missing required columns -> :class:`SchemaError` (fatal, nothing to salvage).
2. Lines the reader could not split into fields (ragged, unbalanced quote,
   NUL byte, undecodable bytes) or whose value did not fit the file's
   decimal mark -> rejected with the reader's reason (see
   :mod:`nextbest.data.readers`; they travel in-band in the reserved
   columns :data:`LINE`, :data:`ISSUE`, :data:`RAW`).
3. ``customer_id`` missing or blank -> rejected; so is a customer who was
   forgotten (:mod:`nextbest.data.erased`), with the id left out of the rejects.
4. ``timestamp`` missing, unparsable, out of range (before 1900 or after
   2261) or a day-month date of unknown order -> rejected, each with its
   own reason.
5. ``amount`` missing, unparsable (or written with the other decimal mark),
   NaN or infinite, or absurd (``|amount| >= max_abs_amount``, 1e9) ->
   rejected, each with its own reason.
6. ``timestamp`` on or after ``as_of`` (when given) -> rejected: the future is
   not known at ``as_of``.
7. Exact duplicate rows (every column equal) -> all but the first rejected.
   Give each line an ``order_id`` (or a line id) if identical lines are real.
8. Refunds (negative ``amount``) are netted against the same customer's
   positive spend on the same day (a returned item in a basket). A refund
   with no purchase by that customer that day, or one that takes the day's
   net spend below zero, is rejected: it cannot be attributed to a purchase.

``customer_id`` is kept exactly as given (case, leading zeros, inner spaces,
non-ASCII letters) except that surrounding whitespace is removed.

A *purchase* is then one customer-day (all lines of a customer on a day
merged, amounts summed): the buy-till-you-die convention, needed to
reproduce Fader, Hardie & Lee (2005) on CDNOW.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.data.erased import ERASED_REASON, blank_erased, erased_mask
from nextbest.data.values import (
    MAX_ABS_AMOUNT,
    classify_timestamps,
    naive_utc,
    parse_amounts,
    parse_consent,
    parse_timestamps,
)
from nextbest.errors import SchemaError

__all__ = [
    "ISSUE",
    "LINE",
    "MAX_ABS_AMOUNT",
    "RAW",
    "REJECT_COLUMNS",
    "REQUIRED_TRANSACTION_COLUMNS",
    "CustomersResult",
    "SchemaError",
    "ValidationReport",
    "ValidationResult",
    "check_customers",
    "issue_text",
    "split_issue",
    "naive_utc",
    "parse_timestamps",
    "require_columns",
    "validate_customers",
    "validate_transactions",
]

REQUIRED_TRANSACTION_COLUMNS: tuple[str, ...] = ("customer_id", "timestamp", "amount")
OPTIONAL_TRANSACTION_COLUMNS: tuple[str, ...] = ("order_id", "category", "channel")
REJECT_COLUMNS: tuple[str, ...] = ("row", "column", "value", "reason")

# Reserved columns the reader adds (nextbest.data.readers): the 1-based line of each row in its
# file, and for a row the reader could not read: "<column>\x1f<reason>" and the raw line.
LINE = "__nextbest_line__"
ISSUE = "__nextbest_issue__"
RAW = "__nextbest_raw__"
RESERVED_COLUMNS: tuple[str, ...] = (LINE, ISSUE, RAW)
WHOLE_LINE = "(line)"  # the reject's column when the line itself could not be read
_ISSUE_SEP = "\x1f"


def split_issue(text: str) -> tuple[str, str]:
    """The column and the reason of an :data:`ISSUE` cell."""
    column, _, reason = str(text).partition(_ISSUE_SEP)
    return column, reason


def issue_text(column: str, reason: str) -> str:
    """The :data:`ISSUE` cell for a row rejected by the reader (``column`` may be
    :data:`WHOLE_LINE`)."""
    return f"{column}{_ISSUE_SEP}{reason}"


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
    found = [c for c in frame.columns if c not in RESERVED_COLUMNS]
    missing = [c for c in required if c not in frame.columns]
    if missing and len(missing) == len(required) and len(required) > 1:
        raise SchemaError(
            f"{what} is missing required column(s) {missing}; found {found}: none of the "
            "required columns is there. Is it the right file? Check the separator (--csv-sep) "
            "and the column mapping (--map)"
        )
    if missing:
        raise SchemaError(f"{what} is missing required column(s) {missing}; found {found}")


class Rejects:
    """Collects reject rows while rules remove them from the working frame ``df``.

    ``df`` must carry ``_row`` (the 0-based position in ``original``); every
    reject keeps the original columns of its row (and its ``line`` in a CSV).
    """

    def __init__(self, original: pd.DataFrame, lines: np.ndarray | None):
        self.original = original
        self.lines = lines
        self.parts: list[pd.DataFrame] = []
        self.counts: dict[str, int] = {}

    def take(self, df: pd.DataFrame, mask, column: str, reason: str, values=None) -> pd.DataFrame:
        """Record ``df[mask]`` as rejected and return the rest of ``df``.

        ``values`` (aligned with ``df``) overrides what is recorded as the value; by default
        the working frame's ``column``.
        """
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return df
        positions = df["_row"].to_numpy()[mask]
        if values is None:
            values = df[column] if column in df.columns else pd.Series("", index=df.index)
        values = np.asarray(values, dtype=object)[mask]
        bad = pd.DataFrame(
            {
                "row": positions,
                "column": column,
                "value": pd.Series(values, dtype=object).astype(str).to_numpy(),
                "reason": reason,
            }
        )
        if self.lines is not None:
            bad.insert(1, "line", self.lines[positions])
        bad = bad.merge(
            self.original.iloc[positions].assign(row=positions),
            on="row",
            how="left",
            suffixes=("", "_input"),
        )
        self.parts.append(bad)
        self.counts[reason] = self.counts.get(reason, 0) + int(mask.sum())
        return df.loc[~mask]

    def frame(self) -> pd.DataFrame:
        if self.parts:
            return pd.concat(self.parts, ignore_index=True)
        cols = list(REJECT_COLUMNS)
        if self.lines is not None:
            cols.insert(1, "line")
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


def reader_issues(frame: pd.DataFrame, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
    """Rule 2: rows the reader flagged, rejected with its column and reason."""
    if ISSUE not in frame.columns:
        return df
    issue = frame[ISSUE]
    flagged = issue.notna().to_numpy()
    if not flagged.any():
        return df
    raw = frame[RAW] if RAW in frame.columns else pd.Series(None, index=frame.index)
    for text in pd.unique(issue[flagged]):
        column, reason = split_issue(text)
        mask = (issue == text).to_numpy()
        values = raw if column == WHOLE_LINE else frame.get(column)
        if values is not None:
            values = values.to_numpy(dtype=object)[df["_row"].to_numpy()]
        keep = np.isin(df["_row"].to_numpy(), np.flatnonzero(mask))
        df = rejects.take(df, keep, column, reason, values=values)
    return df


def validate_transactions(
    frame: pd.DataFrame,
    as_of: str | pd.Timestamp | None = None,
    *,
    max_abs_amount: float = MAX_ABS_AMOUNT,
) -> ValidationResult:
    """Check transactions against the schema and split them into clean and rejected.

    Parameters
    ----------
    frame : pandas.DataFrame
        Raw transaction lines (as :func:`nextbest.data.readers.read_frame`
        gives them, or any frame). Not modified.
    as_of : str or Timestamp, optional
        Lines on or after this instant are rejected as future data.
    max_abs_amount : float, default 1e9
        Amounts with ``|amount| >= max_abs_amount`` (file currency) are
        rejected as absurd.

    Returns
    -------
    ValidationResult
        ``transactions`` with ``customer_id`` as str, ``timestamp`` as
        datetime64[ns] and ``amount`` as float64 (the reader's reserved
        columns removed); ``rejects`` with columns ``row`` (0-based position
        in the input), ``line`` (1-based line in the file, when the frame
        came from a CSV reader), ``column``, ``value``, ``reason`` plus the
        original columns of the row.

    Raises
    ------
    SchemaError
        If a required column is missing.
    """
    require_columns(frame, REQUIRED_TRANSACTION_COLUMNS, "transactions")
    reserved = [c for c in RESERVED_COLUMNS if c in frame.columns]
    original = frame.drop(columns=reserved) if reserved else frame
    lines = frame[LINE].to_numpy() if LINE in frame.columns else None
    df = original.copy()
    df["_row"] = np.arange(len(df))
    n_input = len(df)
    rejects = Rejects(original, lines)
    df = reader_issues(frame, df, rejects)

    cid = df["customer_id"]
    cid_str = cid.astype("string").str.strip()
    df = rejects.take(
        df, (cid.isna() | (cid_str == "")).to_numpy(), "customer_id", "missing customer_id"
    )
    df["customer_id"] = df["customer_id"].astype("string").str.strip().astype(str)
    df = rejects.take(df, erased_mask(df["customer_id"]), "customer_id", ERASED_REASON)

    ts, why = classify_timestamps(df["timestamp"])
    df = df.assign(timestamp=ts)
    df = _drop_reasons(df, why, "timestamp", rejects, original)

    amount, why = parse_amounts(df["amount"], ".", max_abs_amount)
    df = df.assign(amount=amount)
    df = _drop_reasons(df, why, "amount", rejects, original)

    if as_of is not None:
        cutoff = naive_utc(as_of)
        df = rejects.take(
            df,
            (df["timestamp"] >= cutoff).to_numpy(),
            "timestamp",
            f"timestamp on or after as_of {cutoff.date()}",
        )

    payload = [c for c in df.columns if c != "_row"]
    df = rejects.take(
        df,
        df.duplicated(subset=payload, keep="first").to_numpy(),
        "customer_id",
        "exact duplicate row",
    )

    refunds_netted = 0
    neg = (df["amount"] < 0).to_numpy()
    if neg.any():
        day = df["timestamp"].dt.normalize()
        pos_spend = df["amount"].clip(lower=0).groupby([df["customer_id"], day]).transform("sum")
        net = df["amount"].groupby([df["customer_id"], day]).transform("sum")
        no_purchase = neg & (pos_spend.to_numpy() == 0)
        df = rejects.take(
            df, no_purchase, "amount", "refund with no purchase by the customer on the same day"
        )
        neg = (df["amount"] < 0).to_numpy()
        over = neg & (net.loc[df.index].to_numpy() < 0)
        df = rejects.take(df, over, "amount", "refund larger than the customer's spend that day")
        refunds_netted = int((df["amount"] < 0).sum())

    clean = df.drop(columns="_row").reset_index(drop=True)
    report = ValidationReport(
        n_input=n_input, n_valid=len(clean), rejected=rejects.counts, refunds_netted=refunds_netted
    )
    return ValidationResult(
        transactions=clean, rejects=blank_erased(rejects.frame()), report=report
    )


def _drop_reasons(
    df: pd.DataFrame, why: np.ndarray, column: str, rejects: Rejects, original: pd.DataFrame
) -> pd.DataFrame:
    """Reject the rows of ``df`` with a reason in ``why`` (aligned with ``df``), one reason at a
    time; the value recorded is the input's."""
    why = pd.Series(why, index=df.index)
    for reason in pd.unique(why.dropna()):
        mask = (why.loc[df.index] == reason).to_numpy()
        df = rejects.take(df, mask, column, reason, values=_input(original, column, df))
    return df


def _input(original: pd.DataFrame, column: str, df: pd.DataFrame) -> np.ndarray:
    """The input's values of ``column`` for the rows still in ``df``."""
    return original[column].to_numpy(dtype=object)[df["_row"].to_numpy()]


@dataclass
class CustomersResult:
    """Checked customers and the rows rejected (with reasons) on the way."""

    customers: pd.DataFrame
    rejects: pd.DataFrame


def check_customers(frame: pd.DataFrame) -> CustomersResult:
    """Check a customers table, fill ``consent_profiling``, and collect rejected rows.

    * Lines the reader could not read are rejected; when the reader still
      recovered the line's ``customer_id``, that customer is kept with
      ``consent_profiling = false`` (a lost line never becomes consent).
    * ``consent_profiling`` words are mapped as in
      :func:`nextbest.data.values.parse_consent` (blank: true); any other
      value rejects the row and the customer is kept as not consenting.

    Raises
    ------
    SchemaError
        If ``customer_id`` is missing, an id is blank or repeated.
    """
    require_columns(frame, ("customer_id",), "customers")
    reserved = [c for c in RESERVED_COLUMNS if c in frame.columns]
    original = frame.drop(columns=reserved) if reserved else frame
    lines = frame[LINE].to_numpy() if LINE in frame.columns else None
    rejects = Rejects(original, lines)
    df = original.copy()
    df["_row"] = np.arange(len(df))
    kept = reader_issues(frame, df, rejects)
    lost = df.loc[~df["_row"].isin(kept["_row"])]
    df = kept
    recovered = lost["customer_id"].astype("string").str.strip()
    recovered = recovered[recovered.notna() & (recovered != "")]
    recovered = recovered[~recovered.isin(df["customer_id"].astype("string").str.strip())]
    if len(recovered):
        df = pd.concat(
            [df, pd.DataFrame({"customer_id": recovered.drop_duplicates().to_numpy()})],
            ignore_index=True,
        )
        consent = df["consent_profiling"] if "consent_profiling" in df.columns else None
        consent = pd.Series(consent, index=df.index, dtype=object)
        consent[df["_row"].isna().to_numpy()] = False  # a line lost is never consent
        df["consent_profiling"] = consent
    blank = df["customer_id"].isna() | (df["customer_id"].astype("string").str.strip() == "")
    if blank.any():
        row = int(df["_row"].to_numpy()[np.flatnonzero(blank.to_numpy())[0]])
        raise SchemaError(f"customers: column 'customer_id' is blank at row {row}")
    df["customer_id"] = df["customer_id"].astype("string").str.strip().astype(str)
    dup = df["customer_id"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise SchemaError(
            f"customers: column 'customer_id' must be unique; "
            f"{df['customer_id'].iloc[i]!r} repeats at row {int(df['_row'].iloc[i])}"
        )
    if "consent_profiling" not in df.columns:
        df["consent_profiling"] = True
    else:
        consent, why = parse_consent(df["consent_profiling"])
        unknown = pd.notna(why)
        if unknown.any():
            rejects.take(df, unknown, "consent_profiling", why[unknown][0])
        df["consent_profiling"] = consent
    out = typed_attributes(df.drop(columns="_row").reset_index(drop=True))
    return CustomersResult(out, rejects.frame())


def typed_attributes(customers: pd.DataFrame) -> pd.DataFrame:
    """Attribute columns of text that are all numbers (blanks aside) as floats; others as given.

    A CSV is read as text (ids keep their zeros); an attribute such as ``age``
    or ``recency`` is a number to a model. A column with one value that is not
    a number stays text (categorical).
    """
    out = customers
    for col in customers.columns:
        if col in ("customer_id", "consent_profiling"):
            continue
        values = customers[col]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        text = values.astype("string").str.strip()
        blank = text.isna() | (text == "")
        numbers = pd.to_numeric(text.where(~blank), errors="coerce")
        if (~blank).any() and numbers[~blank].notna().all():
            if out is customers:
                out = customers.copy()
            out[col] = numbers.astype("float64")
    return out


def validate_customers(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a customers table and fill ``consent_profiling`` (default true).

    The customers of :func:`check_customers` (use that to get the rejected
    rows too). An unknown consent value makes that customer not consenting.

    Raises
    ------
    SchemaError
        If ``customer_id`` is missing, an id is blank or repeated.
    """
    return check_customers(frame).customers


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
