"""Hillstrom: the MineThatData e-mail experiment (Kevin Hillstrom, 2008) as a campaign log.

64,000 customers who bought in the last twelve months were randomly assigned,
with probability 1/3 each, to a men's merchandise e-mail, a women's
merchandise e-mail or no e-mail; visits, purchases and spend were then
recorded for two weeks. The file is fetched at install time
(:mod:`nextbest.data.fetch`); nothing is downloaded here.

Mapping to nextbest:

* ``customer_id`` is the 1-based row number of the source file as a string,
  ``"1"`` to ``"64000"`` (the file has no id of its own).
* Log rows: ``offer_id`` ``EMAIL-MENS`` / ``EMAIL-WOMENS`` with group
  ``treatment``; "No E-Mail" is a universal holdout: group ``control`` and an
  empty ``offer_id``. ``propensity`` is 1/3 for every row (the assignment
  probability of the row's arm).
* ``contacted_at`` is 2008-03-01 for every row: the source gives no date; the
  experiment ran in spring 2008. Use an ``as_of`` after 2008-03-15 (the end of
  the two-week window), e.g. :data:`HILLSTROM_AS_OF`.
* ``converted`` is the visit (default) or the conversion flag, per ``outcome``;
  ``revenue`` is always the spend in the two weeks (US dollars).
* Customers: the attributes recency (months since last purchase), history
  (dollars spent in the past year), history_segment, mens, womens (bought
  men's / women's merchandise in the past year), zip_code, newbie (new in the
  past twelve months), channel; ``consent_profiling`` is true for all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.data.fetch import dataset_path

HILLSTROM_CONTACTED_AT = pd.Timestamp("2008-03-01")
HILLSTROM_AS_OF = pd.Timestamp("2008-03-16")  # the day after the 14-day response window
HILLSTROM_OFFERS = {"Mens E-Mail": "EMAIL-MENS", "Womens E-Mail": "EMAIL-WOMENS", "No E-Mail": ""}
HILLSTROM_OUTCOMES = ("visit", "conversion")
ATTRIBUTES = (
    "recency",
    "history",
    "history_segment",
    "mens",
    "womens",
    "zip_code",
    "newbie",
    "channel",
)


def read_hillstrom() -> pd.DataFrame:
    """The source CSV as published (64,000 rows, 12 columns), from the data cache.

    Raises
    ------
    nextbest.data.fetch.DataNotInstalledError
        If the file was not fetched (``make data``).
    """
    return pd.read_csv(
        dataset_path("hillstrom"),
        dtype={"history_segment": str, "zip_code": str, "channel": str, "segment": str},
    )


def load_hillstrom(
    outcome: str = "visit", offers: tuple[str, ...] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Hillstrom experiment as a campaign log and a customers table.

    Parameters
    ----------
    outcome : {"visit", "conversion"}
        Which 0/1 flag becomes ``converted``. Spend is always in ``revenue``.
    offers : tuple of str, optional
        Keep only the rows of these offers and the control group, e.g.
        ``("EMAIL-WOMENS",)`` for women's e-mail vs none. ``propensity`` is then the
        assignment probability within the kept arms, ``1 / (len(offers) + 1)`` (1/2
        for one offer): a randomized two-arm test, not the design's 1/3.

    Returns
    -------
    campaign_log : pandas.DataFrame
        One row per customer: ``customer_id`` (str), ``offer_id`` (str, ``""`` for
        no e-mail), ``contacted_at`` (datetime64, 2008-03-01), ``group``
        (``treatment``/``control``), ``propensity`` (1/3), ``converted`` (float 0/1),
        ``revenue`` (float, US dollars in the two weeks after).
    customers : pandas.DataFrame
        ``customer_id``, the eight attributes and ``consent_profiling`` (true).

    Raises
    ------
    ValueError
        If ``outcome`` is not one of :data:`HILLSTROM_OUTCOMES`, or ``offers`` names
        an unknown offer.
    nextbest.data.fetch.DataNotInstalledError
        If the file was not fetched (``make data``).
    """
    if outcome not in HILLSTROM_OUTCOMES:
        raise ValueError(
            f"Hillstrom outcome must be one of {list(HILLSTROM_OUTCOMES)}, got {outcome!r} "
            "(spend is always the revenue column)"
        )
    raw = read_hillstrom()
    ids = pd.Series(np.arange(1, len(raw) + 1)).astype(str).to_numpy()
    offer = raw["segment"].map(HILLSTROM_OFFERS)
    if offer.isna().any():
        bad = raw["segment"][offer.isna()].iloc[0]
        raise ValueError(f"Hillstrom: unexpected segment {bad!r}")
    log = pd.DataFrame(
        {
            "customer_id": ids,
            "offer_id": offer.to_numpy(dtype=object).astype(str),
            "contacted_at": np.full(len(raw), HILLSTROM_CONTACTED_AT.to_datetime64()).astype(
                "datetime64[ns]"
            ),
            "group": np.where(offer.to_numpy() == "", "control", "treatment"),
            "propensity": np.full(len(raw), 1.0 / 3.0),
            "converted": raw[outcome].to_numpy(dtype="float64"),
            "revenue": raw["spend"].to_numpy(dtype="float64"),
        }
    )
    customers = raw[list(ATTRIBUTES)].copy()
    customers.insert(0, "customer_id", ids)
    customers["consent_profiling"] = True
    if offers is not None:
        unknown = sorted(set(offers) - set(HILLSTROM_OFFERS.values()) - {""})
        if unknown or not offers:
            raise ValueError(f"Hillstrom offers are EMAIL-MENS and EMAIL-WOMENS, got {offers!r}")
        log = log[log["offer_id"].isin(["", *offers])].reset_index(drop=True)
        log["propensity"] = 1.0 / (len(set(offers)) + 1)
        customers = customers[customers["customer_id"].isin(log["customer_id"])]
        customers = customers.reset_index(drop=True)
    return log, customers
