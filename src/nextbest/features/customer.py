"""Per-customer behavioural features at a cutoff: RFM, windows, inter-purchase times, trend,
category mix.

Pure functions of ``(transactions, as_of)`` with explicit units (``_days``
suffixes, ``time_unit_days`` for the BTYD columns). The expensive part -
merging lines into customer-days and customer-day-categories - is done once
by :func:`purchase_table`; :func:`customer_features` can then be evaluated at
many cutoffs (rolling training windows) cheaply. Only data strictly before
``as_of`` is used, so features at a cutoff never see its labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.errors import InputError
from nextbest.features.rfm import as_of_date

WINDOWS_DAYS: tuple[int, ...] = (14, 30, 60, 90)
_EPOCH = pd.Timestamp("1970-01-01")


def day_number(ts) -> int:
    """Days since 1970-01-01 of a date-like value."""
    return int((as_of_date(ts) - _EPOCH).days)


@dataclass(frozen=True)
class PurchaseTable:
    """Purchases merged to customer-days (and customer-day-categories), integer-coded.

    ``customer_ids[code]`` is the id of customer ``code``; days are integers
    since 1970-01-01; ``categories[k]`` is the name of category code ``k``;
    ``channels[k]`` the name of channel code ``k`` (``chan_*``: the distinct
    customer-day-channel triples of lines on a tracked ``channel``).
    """

    customer_ids: np.ndarray
    day_cust: np.ndarray
    day_day: np.ndarray
    day_amount: np.ndarray
    cat_cust: np.ndarray
    cat_day: np.ndarray
    cat_code: np.ndarray
    cat_amount: np.ndarray
    categories: tuple[str, ...]
    chan_cust: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="int64"))
    chan_day: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="int64"))
    chan_code: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="int64"))
    channels: tuple[str, ...] = ()

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)


def _group_sum(keys: list[np.ndarray], amount: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct key tuples (sorted) and the sum of ``amount`` over each.

    The integer keys are packed into one int64 (mixed radix over each key's
    range), so one ``np.unique`` does the grouping: faster than a pandas
    groupby at every size measured (0.03 vs 1.8 ms for a re-decided customer's
    200 lines; 0.14 vs 0.41 s for 1.5M lines with three keys).
    """
    if len(amount) == 0:
        return [np.asarray(k, dtype="int64")[:0] for k in keys], np.zeros(0)
    packed = np.zeros(len(amount), dtype="int64")
    spans: list[tuple[int, int]] = []
    capacity = 1
    for key in keys:
        lo = int(key.min())
        span = int(key.max()) - lo + 1
        capacity *= span
        if capacity >= 2**62:
            raise InputError(f"too many distinct keys to group ({capacity:,} combinations)")
        spans.append((lo, span))
        packed = packed * span + (key.astype("int64") - lo)
    unique, inverse = np.unique(packed, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=amount, minlength=len(unique))
    out: list[np.ndarray] = []
    for lo, span in reversed(spans):
        out.append(unique % span + lo)
        unique = unique // span
    return out[::-1], sums


def purchase_table(
    transactions: pd.DataFrame,
    categories: list[str] | tuple[str, ...] = (),
    channels: list[str] | tuple[str, ...] = (),
) -> PurchaseTable:
    """Merge validated transaction lines into customer-days and customer-day-categories.

    Parameters
    ----------
    transactions : pandas.DataFrame
        Validated lines (``customer_id``, ``timestamp``, ``amount``, optional ``category``
        and ``channel``).
    categories : sequence of str
        Categories to track for the category-mix features (others are ignored there).
    channels : sequence of str
        Contact channels (the catalog's) whose purchase-days are counted from the optional
        ``channel`` column (other values are ignored). Without that column, or with no
        channel given, no channel feature is made.
    """
    codes, uniques = pd.factorize(transactions["customer_id"].astype(str), sort=True)
    day = (
        transactions["timestamp"]
        .to_numpy(dtype="datetime64[ns]")
        .astype("datetime64[D]")
        .astype("int64")
    )
    amount = transactions["amount"].to_numpy(dtype="float64")
    (dc, dd), da = _group_sum([codes.astype("int64"), day], amount)
    categories = tuple(categories)
    if categories and "category" in transactions.columns:
        cat_idx = pd.Categorical(
            transactions["category"].astype(str), categories=list(categories)
        ).codes
        keep = cat_idx >= 0
        (cc, cd, ck), ca = _group_sum(
            [codes[keep].astype("int64"), day[keep], cat_idx[keep].astype("int64")], amount[keep]
        )
    else:
        cc = cd = ck = np.zeros(0, dtype="int64")
        ca = np.zeros(0)
    channels = tuple(channels) if "channel" in transactions.columns else ()
    chan = _channel_days(transactions, codes, day, channels)
    return PurchaseTable(
        np.asarray(uniques, dtype=object), dc, dd, da, cc, cd, ck, ca, categories, *chan, channels
    )


def _channel_days(
    transactions: pd.DataFrame, codes: np.ndarray, day: np.ndarray, channels: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (customer code, day, channel code) of the lines on a tracked channel."""
    raw = transactions["channel"] if channels else None
    if raw is None or not raw.notna().any():
        empty = np.zeros(0, dtype="int64")
        return empty, empty, empty
    idx = channel_codes(raw, channels)
    keep = idx >= 0
    triples = pd.DataFrame(
        {"c": codes[keep].astype("int64"), "d": day[keep], "k": idx[keep].astype("int64")}
    ).drop_duplicates()
    return triples["c"].to_numpy(), triples["d"].to_numpy(), triples["k"].to_numpy()


def channel_codes(values: pd.Series, channels: tuple[str, ...]) -> np.ndarray:
    """Position of each value in ``channels`` (-1: none), matched without case or surrounding
    spaces (``" Email"`` is ``email``): the one rule for transactions and contacts."""
    names = values.astype("string").str.strip().str.lower().fillna("")
    return pd.Index([c.lower() for c in channels]).get_indexer(names)


def customer_features(
    table: PurchaseTable,
    as_of,
    time_unit_days: float = 7.0,
    windows_days: tuple[int, ...] = WINDOWS_DAYS,
    category_window_days: int = 90,
) -> pd.DataFrame:
    """Features of every customer first seen before ``as_of``, from data before ``as_of`` only.

    Returns
    -------
    pandas.DataFrame
        One row per customer, sorted by ``customer_id``:

        * ``frequency``, ``recency``, ``T``, ``monetary`` - BTYD summary in
          ``time_unit_days`` units (same conventions as ``rfm_summary``);
        * ``days_since_last``, ``tenure_days``, ``n_purchases``, ``total_spend``, ``avg_spend``;
        * ``n_purchases_{w}d`` and ``spend_{w}d`` for each window ``w``;
        * ``ipt_mean_days``, ``ipt_std_days``, ``ipt_last_days`` - gaps between
          purchase-days (NaN with fewer than 2 or 3 purchases);
        * ``trend_30_90`` - purchases in the last 30 days relative to a third
          of the last 90 (1 = steady, < 1 slowing down); ``spend_trend_30_90`` the same for spend;
        * activity (:func:`_activity_features`): ``spend_ew_30d``, ``spend_per_day``,
          ``active_weeks_13w``, ``basket_trend_90d``;
        * per tracked category ``c``: ``share_{c}`` (share of spend, all history),
          ``days_since_{c}`` (NaN if never bought), ``bought_{c}_{category_window_days}d`` and
          ``n_days_{c}`` (purchase-days with ``c``); ``n_categories`` and
          ``n_categories_{category_window_days}d`` count the tracked categories bought;
        * per tracked channel ``c`` (:func:`_channel_features`): ``channel_days_{c}``.
    """
    cutoff = day_number(as_of)
    last_obs = cutoff - 1
    n = table.n_customers
    m = table.day_day < cutoff
    cust, day, amt = table.day_cust[m], table.day_day[m], table.day_amount[m]
    if cust.size == 0:
        raise InputError(
            f"no transactions before as_of {as_of_date(as_of).date()}: empty feature window"
        )

    counts = np.bincount(cust, minlength=n)
    seen = counts > 0
    total = np.bincount(cust, weights=amt, minlength=n)
    first_day = np.full(n, np.iinfo("int64").max)
    np.minimum.at(first_day, cust, day)
    last_day = np.full(n, np.iinfo("int64").min)
    np.maximum.at(last_day, cust, day)
    first_amount = np.zeros(n)
    is_first = day == first_day[cust]
    np.add.at(first_amount, cust[is_first], amt[is_first])

    unit = float(time_unit_days)
    freq = np.maximum(counts - 1, 0)
    out: dict[str, np.ndarray] = {
        "frequency": freq,
        "recency": (last_day - first_day) / unit,
        "T": (last_obs - first_day) / unit,
        "monetary": np.divide(total - first_amount, freq, out=np.zeros(n), where=freq > 0),
        "days_since_last": (cutoff - last_day).astype("float64"),
        "tenure_days": (cutoff - first_day).astype("float64"),
        "n_purchases": counts.astype("float64"),
        "total_spend": total,
        "avg_spend": np.divide(total, counts, out=np.zeros(n), where=counts > 0),
    }
    for w in windows_days:
        in_w = day >= cutoff - w
        out[f"n_purchases_{w}d"] = np.bincount(cust[in_w], minlength=n).astype("float64")
        out[f"spend_{w}d"] = np.bincount(cust[in_w], weights=amt[in_w], minlength=n)
    out.update(_gap_features(cust, day, n))
    if 30 in windows_days and 90 in windows_days:
        for name, key in (("trend_30_90", "n_purchases"), ("spend_trend_30_90", "spend")):
            out[name] = np.divide(
                out[f"{key}_30d"],
                out[f"{key}_90d"] / 3.0,
                out=np.zeros(n),
                where=out[f"{key}_90d"] > 0,
            )
    out.update(_activity_features(cust, day, amt, cutoff, out["tenure_days"], n))
    if table.categories:
        out.update(_category_features(table, cutoff, n, total, category_window_days))
    if table.channels:
        out.update(_channel_features(table, cutoff, n))

    frame = pd.DataFrame({"customer_id": table.customer_ids.astype(str), **out})
    frame = frame[seen].reset_index(drop=True)
    frame["frequency"] = frame["frequency"].astype("int64")
    return frame


def _gap_features(cust: np.ndarray, day: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Mean, standard deviation and last of the gaps between purchase-days, in days.

    Rows are sorted by (customer, day).
    """
    same = np.zeros(cust.size, dtype=bool)
    same[1:] = cust[1:] == cust[:-1]
    gaps = np.diff(day, prepend=day[0]).astype("float64")
    gc = cust[same]
    gv = gaps[same]
    n_gaps = np.bincount(gc, minlength=n)
    g_sum = np.bincount(gc, weights=gv, minlength=n)
    g_sq = np.bincount(gc, weights=gv * gv, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_gaps > 0, g_sum / np.maximum(n_gaps, 1), np.nan)
        var = np.where(n_gaps > 1, (g_sq - n_gaps * mean**2) / np.maximum(n_gaps - 1, 1), np.nan)
    last_gap = np.full(n, np.nan)
    last_gap[gc] = gv  # later rows overwrite earlier ones: the last gap wins
    return {
        "ipt_mean_days": mean,
        "ipt_std_days": np.sqrt(np.clip(var, 0, None)),
        "ipt_last_days": last_gap,
    }


def _activity_features(
    cust: np.ndarray,
    day: np.ndarray,
    amt: np.ndarray,
    cutoff: int,
    tenure_days: np.ndarray,
    n: int,
) -> dict[str, np.ndarray]:
    """How steadily and how much a customer buys, weighting recent days more.

    * ``spend_ew_30d`` - spend with weight ``0.5 ** (age / 30 days)`` (half-life 30 days);
    * ``spend_per_day`` - all spend over the days since the first purchase;
    * ``active_weeks_13w`` - share of the last 13 weeks with at least one purchase;
    * ``basket_trend_90d`` - spend per purchase-day of the last 90 days over that of all
      history (1 = same basket size, < 1 smaller baskets lately; NaN without a purchase in the
      last 90 days). Money, not lines: it does not depend on how a source splits baskets.
    """
    age = cutoff - day
    weeks = age // 7
    recent = weeks < 13
    week_keys = np.unique(cust[recent].astype("int64") * 13 + weeks[recent])
    out = {
        "spend_ew_30d": np.bincount(cust, weights=amt * 0.5 ** (age / 30.0), minlength=n),
        "spend_per_day": np.bincount(cust, weights=amt, minlength=n) / np.maximum(tenure_days, 1),
        "active_weeks_13w": np.bincount(week_keys // 13, minlength=n) / 13.0,
    }
    recent = age <= 90
    spend_90d = np.bincount(cust[recent], weights=amt[recent], minlength=n)
    visits_90d = np.bincount(cust[recent], minlength=n)
    spend_all = np.bincount(cust, weights=amt, minlength=n)
    visits_all = np.bincount(cust, minlength=n)
    basket_90d = np.divide(spend_90d, visits_90d, out=np.full(n, np.nan), where=visits_90d > 0)
    basket_all = np.divide(spend_all, visits_all, out=np.full(n, np.nan), where=visits_all > 0)
    out["basket_trend_90d"] = np.divide(
        basket_90d, basket_all, out=np.full(n, np.nan), where=basket_all > 0
    )
    return out


def _category_features(
    table: PurchaseTable, cutoff: int, n: int, total: np.ndarray, window_days: int
) -> dict[str, np.ndarray]:
    """Per tracked category: share of spend, days since, bought in the window, purchase-days."""
    mc = table.cat_day < cutoff
    cc, cd, ck, ca = (
        table.cat_cust[mc],
        table.cat_day[mc],
        table.cat_code[mc],
        table.cat_amount[mc],
    )
    k = len(table.categories)
    flat = cc * k + ck
    spend = np.bincount(flat, weights=ca, minlength=n * k).reshape(n, k)
    n_days = np.bincount(flat, minlength=n * k).reshape(n, k)
    last = np.full(n * k, np.iinfo("int64").min)
    np.maximum.at(last, flat, cd)
    last = last.reshape(n, k)
    recent = np.bincount(flat[cd >= cutoff - window_days], minlength=n * k).reshape(n, k)
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(table.categories):
        key = category_key(name)
        out[f"share_{key}"] = np.divide(spend[:, j], total, out=np.zeros(n), where=total > 0)
        ds = (cutoff - last[:, j]).astype("float64")
        out[f"days_since_{key}"] = np.where(last[:, j] == np.iinfo("int64").min, np.nan, ds)
        out[f"bought_{key}_{window_days}d"] = (recent[:, j] > 0).astype("float64")
        out[f"n_days_{key}"] = n_days[:, j].astype("float64")
    out["n_categories"] = (n_days > 0).sum(axis=1).astype("float64")
    out[f"n_categories_{window_days}d"] = (recent > 0).sum(axis=1).astype("float64")
    return out


CHANNEL_DAYS = "channel_days_"
"""Prefix of the purchase-days-per-channel features (``channel_days_email``).

They say where a customer can be reached, for choosing the channel of an action
(:mod:`nextbest.decision.channels`). They exist only when transactions carry a
``channel`` column, so no model takes them as an input.
"""


def _channel_features(table: PurchaseTable, cutoff: int, n: int) -> dict[str, np.ndarray]:
    """Per tracked channel ``c``: ``channel_days_{c}``, purchase-days with a line on ``c``."""
    m = table.chan_day < cutoff
    k = len(table.channels)
    flat = table.chan_cust[m] * k + table.chan_code[m]
    days = np.bincount(flat, minlength=n * k).reshape(n, k).astype("float64")
    return {f"{CHANNEL_DAYS}{name}": days[:, j] for j, name in enumerate(table.channels)}


def category_key(name: str) -> str:
    """A column-safe key for a category name: ``"MEAT-PCKGD"`` -> ``"meat_pckgd"``."""
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


def purchased_in_window(table: PurchaseTable, start, days: int) -> np.ndarray:
    """Boolean per customer code: any purchase-day in ``[start, start + days)``."""
    s = day_number(start)
    m = (table.day_day >= s) & (table.day_day < s + days)
    return np.bincount(table.day_cust[m], minlength=table.n_customers) > 0


def category_bought_in_window(table: PurchaseTable, start, days: int) -> np.ndarray:
    """Boolean matrix (customer code x category code): bought the category in ``[start, start +
    days)``."""
    s = day_number(start)
    m = (table.cat_day >= s) & (table.cat_day < s + days)
    k = len(table.categories)
    flat = table.cat_cust[m] * k + table.cat_code[m]
    return (np.bincount(flat, minlength=table.n_customers * k) > 0).reshape(table.n_customers, k)
