"""The campaign log: what was sent, to whom, under which rule, and what happened.

Each row is one decision taken for one customer:

* ``customer_id``, ``offer_id``, ``contacted_at`` (required);
* ``group`` (required): ``treatment`` = the offer was sent; ``control`` = the
  customer was held out on purpose and nothing was sent, ``offer_id`` naming
  the offer they were held out from, or empty for a universal holdout.
  ``explore`` (what nextbest's own exploration writes) is accepted: with an
  offer it was sent (read as ``treatment``), without one it chose "no contact"
  (read as ``control``);
* ``propensity`` (optional): the probability with which the deciding rule chose
  this row's arm for this customer, in (0, 1]; blank = unknown (it is then
  estimated by the uplift model);
* ``converted`` (optional, 0/1) and ``revenue`` (optional, >= 0, currency
  units): the outcome. Blank = not known yet (the row still counts as a
  contact). Without these columns, :func:`derive_outcomes` derives them from
  transactions;
* ``sent`` (optional, true/false): whether the campaign tool actually sent
  something. It is only used to catch a contradiction: a ``control`` row with
  ``sent`` true "says something was sent" and is rejected. A ``treatment`` row
  with ``sent`` false is kept as treatment (intent to treat).

Rules applied by :func:`validate_campaign_log`, in this order. Every row that
breaks one becomes a reject (row, column, value, reason) and the rest carry on:

1. A required column missing -> :class:`SchemaError` (fatal).
2. ``customer_id`` missing or blank.
3. ``contacted_at`` missing or unparsable.
4. ``group`` not one of treatment, control, explore (case and spaces ignored).
5. A treatment row without an ``offer_id``; an ``offer_id`` that is not in the
   catalog (its offers and its retention offer).
6. A control row whose ``sent`` is true, or a ``sent`` that is not true/false.
7. A ``propensity`` that is not a number in (0, 1].
8. A ``converted`` that is not 0/1 (true/false accepted).
9. A ``revenue`` that is not a finite number >= 0.
10. ``contacted_at`` on or after ``as_of`` (when given).
11. Exact duplicate rows: all but the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from nextbest.data.schema import (
    LINE,
    RESERVED_COLUMNS,
    Rejects,
    ValidationReport,
    naive_utc,
    parse_timestamps,
    reader_issues,
    require_columns,
)


class Catalog(Protocol):
    """What this module reads of :class:`nextbest.decision.catalog.Catalog` (the data layer does
    not import the decision layer): ``offers`` (``offer_id``, ``category``,
    ``response_window_days``) and ``retention`` (``offer_id``, or None)."""

    offers: tuple[Any, ...]
    retention: Any


REQUIRED_LOG_COLUMNS: tuple[str, ...] = ("customer_id", "offer_id", "contacted_at", "group")
OPTIONAL_LOG_COLUMNS: tuple[str, ...] = ("propensity", "converted", "revenue", "sent")
TREATMENT, CONTROL, EXPLORE = "treatment", "control", "explore"

_TRUE = {"true", "1", "1.0", "yes", "y", "t"}
_FALSE = {"false", "0", "0.0", "no", "n", "f"}


@dataclass
class CampaignLogResult:
    """Clean log rows, rejected rows (with reasons) and the report."""

    log: pd.DataFrame
    rejects: pd.DataFrame
    report: ValidationReport


def _blank(values: pd.Series) -> pd.Series:
    return values.isna() | (values.astype("string").str.strip() == "")


def _text(values: pd.Series) -> pd.Series:
    """Stripped strings, missing as ``""``."""
    return values.astype("string").str.strip().fillna("").astype(str)


def _flags(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(parsed 0/1 as float with NaN for blank, mask of values that are not 0/1 or true/false)."""
    text = _text(values).str.lower()
    out = np.full(len(values), np.nan)
    out[text.isin(_TRUE).to_numpy()] = 1.0
    out[text.isin(_FALSE).to_numpy()] = 0.0
    bad = (text != "").to_numpy() & np.isnan(out)
    return out, bad


def known_offer_ids(catalog: Catalog) -> set[str]:
    """Offer ids a log row may name: the catalog's offers and its retention offer."""
    ids = {o.offer_id for o in catalog.offers}
    if catalog.retention is not None:
        ids.add(catalog.retention.offer_id)
    return ids


def validate_campaign_log(
    frame: pd.DataFrame, catalog: Catalog, as_of: str | pd.Timestamp | None = None
) -> CampaignLogResult:
    """Check a campaign log against the schema and split it into clean and rejected rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        Raw log rows (e.g. from :func:`nextbest.data.files.read_table`). Not modified.
    catalog : Catalog
        Offers a row may name.
    as_of : str or Timestamp, optional
        Rows contacted on or after this instant are rejected as future data.

    Returns
    -------
    CampaignLogResult
        ``log`` with ``customer_id`` and ``offer_id`` as str (``""`` for a universal
        holdout), ``contacted_at`` as datetime64[ns], ``group`` as ``treatment`` or
        ``control``, and, when the input has them, ``propensity``, ``converted``
        (float 0/1, NaN = not known yet), ``revenue`` (float, NaN = not known) and
        ``sent`` (bool); other columns pass through. ``rejects`` has ``row``
        (0-based position in the input), ``column``, ``value``, ``reason`` and the
        original columns of the row.

    Raises
    ------
    SchemaError
        If a required column is missing.
    """
    require_columns(frame, REQUIRED_LOG_COLUMNS, "campaign log")
    reserved = [c for c in RESERVED_COLUMNS if c in frame.columns]
    original = frame.drop(columns=reserved) if reserved else frame
    rejects = Rejects(original, frame[LINE].to_numpy() if LINE in frame.columns else None)
    df = original.copy()
    df["_row"] = np.arange(len(df))
    df = reader_issues(frame, df, rejects)  # lines the reader could not read

    df = rejects.take(df, _blank(df["customer_id"]), "customer_id", "missing customer_id")
    df["customer_id"] = _text(df["customer_id"])

    ts = parse_timestamps(df["contacted_at"])
    df = rejects.take(df, ts.isna(), "contacted_at", "missing or unparsable contacted_at")
    df["contacted_at"] = ts.loc[df.index].astype("datetime64[ns]")

    group = _text(df["group"]).str.lower()
    df = rejects.take(
        df,
        ~group.isin([TREATMENT, CONTROL, EXPLORE]),
        "group",
        "group must be treatment or control (or explore)",
    )
    group = group.loc[df.index]
    df["offer_id"] = _text(df["offer_id"])
    no_offer = (df["offer_id"] == "").to_numpy()
    # explore: sent when it names an offer, "no contact" chosen by exploration when not.
    df["group"] = np.where(group == EXPLORE, np.where(no_offer, CONTROL, TREATMENT), group)

    treated = (df["group"] == TREATMENT).to_numpy()
    df = rejects.take(df, treated & no_offer, "offer_id", "treatment row names no offer")
    known = known_offer_ids(catalog)
    unknown = (df["offer_id"] != "") & ~df["offer_id"].isin(known)
    df = rejects.take(df, unknown, "offer_id", "unknown offer_id (not in the offer catalog)")

    if "sent" in df.columns:
        sent, bad = _flags(df["sent"])
        df = rejects.take(df, bad, "sent", "sent is not true/false")
        sent = _flags(df["sent"])[0]
        control_sent = (df["group"] == CONTROL).to_numpy() & (sent == 1.0)
        df = rejects.take(df, control_sent, "sent", "control row says something was sent")
        df["sent"] = _flags(df["sent"])[0] == 1.0

    df = _check_numbers(df, rejects)

    if as_of is not None:
        cutoff = naive_utc(as_of)
        df = rejects.take(
            df,
            df["contacted_at"] >= cutoff,
            "contacted_at",
            f"contacted_at on or after as_of {cutoff.date()}",
        )

    payload = [c for c in df.columns if c != "_row"]
    df = rejects.take(
        df, df.duplicated(subset=payload, keep="first"), "customer_id", "exact duplicate row"
    )
    clean = df.drop(columns="_row").reset_index(drop=True)
    report = ValidationReport(n_input=len(frame), n_valid=len(clean), rejected=rejects.counts)
    return CampaignLogResult(log=clean, rejects=rejects.frame(), report=report)


def _check_numbers(df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
    """Rules 7-9: propensity in (0, 1], converted 0/1, revenue >= 0; blanks stay NaN."""
    if "propensity" in df.columns:
        blank = _blank(df["propensity"]).to_numpy()
        p = pd.to_numeric(df["propensity"], errors="coerce").to_numpy(dtype="float64")
        with np.errstate(invalid="ignore"):
            bad = ~blank & ~((p > 0) & (p <= 1))
        df = rejects.take(df, bad, "propensity", "propensity outside (0, 1]")
        p = pd.to_numeric(df["propensity"], errors="coerce").to_numpy(dtype="float64")
        df["propensity"] = p
    if "converted" in df.columns:
        values = df["converted"]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            num = values.to_numpy(dtype="float64", na_value=np.nan)
            bad = ~np.isnan(num) & ~np.isin(num, (0.0, 1.0))
            df = rejects.take(df, bad, "converted", "converted is not 0/1")
            df["converted"] = df["converted"].to_numpy(dtype="float64", na_value=np.nan)
        else:
            _, bad = _flags(values)
            df = rejects.take(df, bad, "converted", "converted is not 0/1")
            df["converted"] = _flags(df["converted"])[0]
    if "revenue" in df.columns:
        blank = _blank(df["revenue"]).to_numpy()
        r = pd.to_numeric(df["revenue"], errors="coerce").to_numpy(dtype="float64")
        with np.errstate(invalid="ignore"):
            bad = ~blank & ~(np.isfinite(r) & (r >= 0))
        df = rejects.take(df, bad, "revenue", "revenue is not a number >= 0")
        df["revenue"] = pd.to_numeric(df["revenue"], errors="coerce").to_numpy(dtype="float64")
    return df


def derive_outcomes(
    log: pd.DataFrame,
    transactions: pd.DataFrame,
    catalog: Catalog,
    as_of: str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Outcomes of each log row from transactions, for logs without outcome columns.

    A row converts when its customer buys the row's offer's ``category`` in
    ``[contacted_at, contacted_at + response_window_days)``; ``revenue`` is that
    spend. For an offer without a category, and for a universal-holdout row (empty
    ``offer_id``), any purchase counts; a universal holdout uses the longest
    response window in the catalog. Hold customers out from a named offer (control
    rows with that ``offer_id``) when offers have categories: a universal holdout's
    "any purchase" is not comparable with a category purchase.

    Parameters
    ----------
    log : pandas.DataFrame
        A validated log (:func:`validate_campaign_log`). Not modified.
    transactions : pandas.DataFrame
        Validated transactions (``customer_id``, ``timestamp``, ``amount``, optional
        ``category``).
    catalog : Catalog
    as_of : str or Timestamp, optional
        Rows whose window ends after ``as_of`` are not fully observed: their
        ``converted`` and ``revenue`` are NaN (not known yet).

    Returns
    -------
    pandas.DataFrame
        A copy of ``log`` with ``converted`` (float 0/1) and ``revenue`` (float,
        currency units) set.
    """
    offers = {o.offer_id: o for o in catalog.offers}
    if catalog.retention is not None:
        offers.setdefault(catalog.retention.offer_id, None)
    longest = max(o.response_window_days for o in catalog.offers)
    window = log["offer_id"].map(
        lambda oid: offers[oid].response_window_days if offers.get(oid) is not None else longest
    )
    category = log["offer_id"].map(
        lambda oid: offers[oid].category if offers.get(oid) is not None else None
    )
    rows = pd.DataFrame(
        {
            "_i": np.arange(len(log)),
            "customer_id": log["customer_id"].astype(str).to_numpy(),
            "start": log["contacted_at"].to_numpy(dtype="datetime64[ns]"),
            "end": (
                log["contacted_at"] + pd.to_timedelta(window.to_numpy(dtype="int64"), unit="D")
            ).to_numpy(dtype="datetime64[ns]"),
            "want": category.astype(object).to_numpy(),
        }
    )
    tx_cols = ["customer_id", "timestamp", "amount"]
    tx = transactions[tx_cols].copy()
    tx["category"] = transactions["category"] if "category" in transactions.columns else None
    tx["customer_id"] = tx["customer_id"].astype(str)
    hits = rows.merge(tx, on="customer_id", how="inner")
    wanted = pd.isna(hits["want"]) | (hits["category"].astype(object) == hits["want"])
    hits = hits[(hits["timestamp"] >= hits["start"]) & (hits["timestamp"] < hits["end"]) & wanted]
    spend = hits.groupby("_i")["amount"].sum()
    converted = np.zeros(len(log))
    revenue = np.zeros(len(log))
    converted[spend.index.to_numpy()] = 1.0
    revenue[spend.index.to_numpy()] = spend.to_numpy()
    if as_of is not None:
        open_ = rows["end"].to_numpy() > naive_utc(as_of).to_datetime64()
        converted[open_] = np.nan
        revenue[open_] = np.nan
    return log.assign(converted=converted, revenue=revenue)


CONTACT_OUTCOME = ("channel", "converted")
"""Optional contact-history columns: where a contact went and whether it converted (what the
channel preference, :func:`nextbest.decision.channels.channel_weights`, learns from)."""


def treatment_contacts(log: pd.DataFrame) -> pd.DataFrame:
    """The contact history in a validated log: its treatment rows.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``offer_id``, ``timestamp`` (= ``contacted_at``), the frame
        :func:`nextbest.decision.policy.contact_state` reads for cooldowns and caps, and the
        log's ``channel`` and ``converted`` where it has them (the channel preference,
        :func:`nextbest.decision.channels.channel_weights`).
    """
    sent = log[log["group"] == TREATMENT]
    out = pd.DataFrame(
        {
            "customer_id": sent["customer_id"].astype(str).to_numpy(),
            "offer_id": sent["offer_id"].astype(str).to_numpy(),
            "timestamp": sent["contacted_at"].to_numpy(dtype="datetime64[ns]"),
        }
    )
    for col in CONTACT_OUTCOME:
        if col in sent.columns:
            out[col] = sent[col].to_numpy()
    return out
