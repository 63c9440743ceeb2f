"""CDNOW: the Fader-Hardie benchmark, from the files bundled with ``lifetimes``.

* ``cdnow`` - the paper's 1/10th sample: 2,357 customers who made their first
  purchase in the first quarter of 1997, 6,919 order lines until 1998-06-30.
* ``cdnow-full`` - all 23,570 customers of the same cohort (69,659 lines).

``customer_id`` is the master file's id (zero-padded, e.g. ``"00004"``) in
both. Each line of the source is one order, so each line gets its own
``order_id``: identical lines are separate orders, not duplicates. Same-day
orders are merged into one purchase later, by the feature code.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

CALIBRATION_END = "1997-10-01"  # 39 weeks after 1997-01-01: first holdout day
HOLDOUT_DAYS = 273  # weeks 40-78


def _path(name: str):
    return resources.files("lifetimes") / "datasets" / name


def load_cdnow(full: bool = False) -> pd.DataFrame:
    """Load CDNOW transactions in the nextbest schema.

    Parameters
    ----------
    full : bool
        ``False`` for the 2,357-customer sample of the paper, ``True`` for all
        23,570 customers.

    Returns
    -------
    pandas.DataFrame
        ``customer_id`` (str), ``timestamp`` (day resolution), ``amount``
        (US dollars), ``order_id`` (str), ``quantity`` (number of CDs).
    """
    if full:
        raw = pd.read_csv(
            _path("CDNOW_master.txt"),
            sep=r"\s+",
            header=0,
            names=["customer_id", "date", "quantity", "amount"],
            dtype={"customer_id": str, "date": str},
        )
    else:
        raw = pd.read_csv(
            _path("CDNOW_sample.txt"),
            sep=r"\s+",
            header=None,
            names=["customer_id", "sample_id", "date", "quantity", "amount"],
            dtype={"customer_id": str, "sample_id": str, "date": str},
        )
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype(str),
            "timestamp": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "amount": raw["amount"].astype("float64"),
            "order_id": raw["customer_id"].astype(str) + "-" + raw.index.astype(str),
            "quantity": raw["quantity"].astype("int64"),
        }
    )
