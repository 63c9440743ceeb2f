"""RFM summaries and calibration/holdout splits in explicit time units.

Pure functions of ``(transactions, as_of, time_unit_days)``: no I/O, the
caller's frame is never modified.

Conventions (buy-till-you-die, Fader, Hardie & Lee 2005):

* a *purchase* is a customer-day: all lines of a customer on one calendar day
  are merged and their amounts summed;
* ``as_of`` is the first instant **not** observed: only transactions with
  ``timestamp < as_of`` are used, so the last observed day is ``as_of - 1 day``;
* ``frequency`` = number of repeat purchase-days (first purchase excluded);
* ``recency`` = (last purchase day - first purchase day) in units;
* ``T`` = (last observed day - first purchase day) in units;
* ``monetary`` = mean spend of the repeat purchase-days (0 if none), as the
  Gamma-Gamma model expects.

With ``as_of = 1997-10-01`` and ``time_unit_days = 7`` this reproduces the
CDNOW calibration summary of Fader, Hardie & Lee (T = 38.86 weeks for a
customer first seen on 1997-01-01).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.data.schema import naive_utc
from nextbest.errors import InputError

_EPOCH = np.datetime64("1970-01-01", "D")


def _day_number(ts: pd.Series) -> np.ndarray:
    return ts.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype("int64")


def as_of_date(as_of) -> pd.Timestamp:
    """``as_of`` as a naive-UTC midnight timestamp.

    Raises
    ------
    ValueError
        If ``as_of`` has a time of day: features are built from whole days,
        so the cutoff must be a day boundary.
    """

    ts = naive_utc(as_of)
    if ts != ts.normalize():
        raise InputError(
            f"as_of must be a date (midnight), got {ts}; use {ts.normalize().date()} "
            f"or {(ts.normalize() + pd.Timedelta(days=1)).date()}"
        )
    return ts


def _as_day(as_of) -> int:
    return int(np.datetime64(as_of_date(as_of).to_datetime64(), "D").astype("int64"))


def customer_days(transactions: pd.DataFrame, as_of=None, start=None) -> pd.DataFrame:
    """Merge lines into purchases: one row per (customer, day) in ``[start, as_of)``.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` (str), ``day`` (int64, days since 1970-01-01)
        and ``amount`` (float64, summed), sorted by customer and day.
    """
    ts = transactions["timestamp"]
    mask = np.ones(len(transactions), dtype=bool)
    if as_of is not None:
        mask &= (ts < as_of_date(as_of)).to_numpy()
    if start is not None:
        mask &= (ts >= as_of_date(start)).to_numpy()
    sub = transactions.loc[mask, ["customer_id", "timestamp", "amount"]]
    codes, uniques = pd.factorize(sub["customer_id"], sort=True)
    day = _day_number(sub["timestamp"])
    amount = sub["amount"].to_numpy(dtype="float64")
    key = codes.astype("int64") * (1 << 32) + (day - day.min() if day.size else day)
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    first = np.ones(key_sorted.size, dtype=bool)
    first[1:] = key_sorted[1:] != key_sorted[:-1]
    group = np.cumsum(first) - 1
    summed = np.bincount(group, weights=amount[order], minlength=int(first.sum()))
    idx = order[first]
    return pd.DataFrame(
        {
            "customer_id": np.asarray(uniques, dtype=object)[codes[idx]],
            "day": day[idx],
            "amount": summed,
        }
    )


def rfm_summary(
    transactions: pd.DataFrame,
    as_of,
    time_unit_days: float = 7.0,
) -> pd.DataFrame:
    """Per-customer frequency, recency, T and monetary value at ``as_of``.

    Parameters
    ----------
    transactions : pandas.DataFrame
        Validated transactions (``customer_id``, ``timestamp``, ``amount``).
    as_of : str or Timestamp
        First instant not observed; only earlier transactions are used.
    time_unit_days : float
        Length of one model time unit in days (7 = weeks). ``recency`` and
        ``T`` are expressed in these units.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``frequency`` (int), ``recency``, ``T``,
        ``monetary`` (mean repeat-purchase spend), ``first_day``,
        ``last_day`` (int days since epoch), one row per customer seen
        before ``as_of``, sorted by ``customer_id``.

    Raises
    ------
    ValueError
        If no transaction falls before ``as_of`` or the unit is not positive.
    """
    if time_unit_days <= 0:
        raise InputError(f"time_unit_days must be > 0, got {time_unit_days}")
    days = customer_days(transactions, as_of=as_of)
    if days.empty:
        raise InputError(
            f"no transactions before as_of {pd.Timestamp(as_of).date()}: empty calibration window"
        )
    return _summarise(days, _as_day(as_of) - 1, time_unit_days)


def _summarise(days: pd.DataFrame, last_observed_day: int, unit: float) -> pd.DataFrame:
    cid = days["customer_id"].to_numpy()
    d = days["day"].to_numpy()
    amt = days["amount"].to_numpy()
    first = np.ones(cid.size, dtype=bool)
    first[1:] = cid[1:] != cid[:-1]
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, cid.size))
    last_idx = starts + counts - 1
    total = np.add.reduceat(amt, starts)
    frequency = counts - 1
    repeat_spend = total - amt[starts]
    monetary = np.divide(
        repeat_spend, frequency, out=np.zeros_like(repeat_spend), where=frequency > 0
    )
    return pd.DataFrame(
        {
            "customer_id": cid[starts],
            "frequency": frequency.astype("int64"),
            "recency": (d[last_idx] - d[starts]) / unit,
            "T": (last_observed_day - d[starts]) / unit,
            "monetary": monetary,
            "first_day": d[starts],
            "last_day": d[last_idx],
        }
    )


def calibration_holdout(
    transactions: pd.DataFrame,
    as_of,
    horizon_days: int,
    time_unit_days: float = 7.0,
) -> pd.DataFrame:
    """RFM at ``as_of`` plus what each customer did in ``[as_of, as_of + horizon_days)``.

    A leakage-free replacement for
    ``lifetimes.utils.calibration_and_holdout_data`` (which fails on pandas 3):
    features come only from before ``as_of``, the holdout columns only from
    the window after it. Customers first seen in the holdout are excluded.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`rfm_summary` plus ``frequency_holdout``
        (purchase-days in the window), ``monetary_holdout`` (mean spend per
        holdout purchase-day, 0 if none) and ``duration_holdout`` (the window
        in units).

    Raises
    ------
    ValueError
        If the calibration or the holdout window holds no transaction.
    """
    if horizon_days <= 0:
        raise InputError(f"horizon_days must be > 0, got {horizon_days}")
    cal = rfm_summary(transactions, as_of, time_unit_days)
    end = as_of_date(as_of) + pd.Timedelta(days=horizon_days)
    hold = customer_days(transactions, as_of=end, start=as_of)
    if hold.empty:
        raise InputError(
            f"no transactions in the holdout window [{pd.Timestamp(as_of).date()}, {end.date()}): "
            "empty holdout"
        )
    agg = hold.groupby("customer_id", sort=False)["amount"].agg(["size", "sum"])
    out = cal.merge(agg, left_on="customer_id", right_index=True, how="left")
    n = out.pop("size").fillna(0).astype("int64")
    s = out.pop("sum").fillna(0.0)
    out["frequency_holdout"] = n
    out["monetary_holdout"] = np.where(n > 0, s / n.clip(lower=1), 0.0)
    out["duration_holdout"] = horizon_days / time_unit_days
    return out
