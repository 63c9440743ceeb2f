"""Stored events as the frames the rest of nextbest reads (pure functions of rows).

* :func:`purchases_frame`: the transactions schema (``customer_id``,
  ``timestamp``, ``amount``, ``order_id``, ``category``, ``channel``,
  ``quantity``) plus ``event_id`` and ``seq``; times are naive UTC
  ``datetime64[ns]`` like :func:`nextbest.data.schema.parse_timestamps` gives.
* :func:`contacts_frame`: the campaign log of issue 11 (``customer_id``,
  ``offer_id``, ``contacted_at``, ``group``, ``propensity``, ``channel``,
  ``converted``, ``revenue``), with outcomes taken from response events.
* :func:`consent_frame`: the newest consent per customer and scope.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PURCHASE_COLUMNS = (
    "seq",
    "event_id",
    "customer_id",
    "at_us",
    "amount",
    "order_id",
    "category",
    "channel",
    "quantity",
)
CONTACT_COLUMNS = (
    "seq",
    "event_id",
    "customer_id",
    "offer_id",
    "at_us",
    "group",
    "propensity",
    "channel",
)
RESPONSE_COLUMNS = ("seq", "event_id", "customer_id", "offer_id", "at_us", "converted", "revenue")
CONSENT_COLUMNS = ("seq", "event_id", "customer_id", "channel", "granted", "at_us")


def times(us) -> np.ndarray:
    """Microseconds since the epoch as naive UTC ``datetime64[ns]``."""
    return np.asarray(us, dtype=np.int64).astype("datetime64[us]").astype("datetime64[ns]")


def _text(values) -> pd.Series:
    return pd.Series(values, dtype=object)


def _numbers(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _columns(rows: list[tuple], names: tuple[str, ...]) -> dict[str, list]:
    if not rows:
        return {n: [] for n in names}
    return {n: list(col) for n, col in zip(names, zip(*rows))}


def purchases_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows in :data:`PURCHASE_COLUMNS` order -> a transactions frame."""
    c = _columns(rows, PURCHASE_COLUMNS)
    return pd.DataFrame(
        {
            "customer_id": _text(c["customer_id"]),
            "timestamp": times(c["at_us"]),
            "amount": _numbers(c["amount"]),
            "order_id": _text(c["order_id"]),
            "category": _text(c["category"]),
            "channel": _text(c["channel"]),
            "quantity": _numbers(c["quantity"]),
            "event_id": _text(c["event_id"]),
            "seq": np.asarray(c["seq"], dtype=np.int64),
        }
    )


def responses_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows in :data:`RESPONSE_COLUMNS` order -> ``customer_id, offer_id, at, converted, ...``."""
    c = _columns(rows, RESPONSE_COLUMNS)
    return pd.DataFrame(
        {
            "customer_id": _text(c["customer_id"]),
            "offer_id": _text(c["offer_id"]),
            "at": times(c["at_us"]),
            "converted": np.asarray(c["converted"], dtype=np.int8),
            "revenue": _numbers(c["revenue"]),
            "event_id": _text(c["event_id"]),
            "seq": np.asarray(c["seq"], dtype=np.int64),
        }
    )


def response_outcomes(
    contacts: pd.DataFrame, time_col: str, responses: pd.DataFrame
) -> pd.DataFrame:
    """The outcome of every contact that responses belong to, indexed by its position in
    ``contacts`` (``converted``: the maximum; ``revenue``: the sum).

    A response (``customer_id, offer_id, at, converted, revenue``) belongs to the
    latest contact of the same customer and offer made at or before it
    (``contacts[time_col]``); one without such a contact is left out.
    """
    if contacts.empty or responses.empty:
        return pd.DataFrame({"converted": [], "revenue": []})
    keyed = pd.DataFrame(
        {
            "t": pd.to_datetime(contacts[time_col]).to_numpy(dtype="datetime64[ns]"),
            "_key": _key(contacts),
            "_pos": np.arange(len(contacts)),
        }
    )
    resp = pd.DataFrame(
        {
            "at": pd.to_datetime(responses["at"]).to_numpy(dtype="datetime64[ns]"),
            "_key": _key(responses),
            "converted": responses["converted"].to_numpy(),
            "revenue": responses["revenue"].to_numpy(dtype=float),
        }
    )
    matched = pd.merge_asof(
        resp.sort_values("at"),
        keyed.sort_values("t"),
        left_on="at",
        right_on="t",
        by="_key",
        direction="backward",
    ).dropna(subset=["_pos"])
    return matched.groupby(matched["_pos"].astype(np.int64)).agg(
        converted=("converted", "max"), revenue=("revenue", lambda r: r.sum(min_count=1))
    )


def _key(frame: pd.DataFrame) -> pd.Series:
    ids = frame["customer_id"].astype(str).to_numpy(dtype=object)
    offers = frame["offer_id"].fillna("").astype(str).to_numpy(dtype=object)
    return pd.Series(ids + "\x00" + offers, dtype=object)


def contacts_frame(contact_rows: list[tuple], response_rows: list[tuple]) -> pd.DataFrame:
    """Contacts joined with their responses -> a campaign-log frame.

    A response belongs to the latest contact of the same customer and offer
    made at or before the response (``offer_id`` empty: the universal
    holdout). Several responses to one contact count once for ``converted``
    (the maximum) and sum their ``revenue``. A contact without a response has
    ``converted`` and ``revenue`` missing: the outcome is then derived from
    transactions (issue 11). A response without an earlier contact is left out.
    """
    c = _columns(contact_rows, CONTACT_COLUMNS)
    log = pd.DataFrame(
        {
            "customer_id": _text(c["customer_id"]),
            "offer_id": _text(c["offer_id"]),
            "contacted_at": times(c["at_us"]),
            "group": _text(c["group"]),
            "propensity": _numbers(c["propensity"]),
            "channel": _text(c["channel"]),
            "event_id": _text(c["event_id"]),
            "seq": np.asarray(c["seq"], dtype=np.int64),
        }
    )
    log["converted"] = pd.array([pd.NA] * len(log), dtype="Int8")
    log["revenue"] = np.nan
    outcome = response_outcomes(log, "contacted_at", responses_frame(response_rows))
    if outcome.empty:
        return log
    pos = outcome.index.to_numpy()
    converted = log["converted"].to_numpy(dtype=object, na_value=pd.NA)
    converted[pos] = outcome["converted"].to_numpy()
    log["converted"] = pd.array(converted, dtype="Int8")
    revenue = log["revenue"].to_numpy(copy=True)
    revenue[pos] = outcome["revenue"].to_numpy(dtype=float)
    log["revenue"] = revenue
    return log


def consent_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows in :data:`CONSENT_COLUMNS` order (newest per scope) -> the consent state.

    Columns: ``customer_id``; ``channel`` (missing for the profiling consent,
    else the channel name); ``granted`` (bool: profiling allowed / channel opted
    in); ``at`` (naive UTC); ``seq`` and ``event_id`` of the deciding event.
    """
    c = _columns(rows, CONSENT_COLUMNS)
    return pd.DataFrame(
        {
            "customer_id": _text(c["customer_id"]),
            "channel": _text(c["channel"]),
            "granted": np.asarray([bool(v) for v in c["granted"]], dtype=bool),
            "at": times(c["at_us"]),
            "seq": np.asarray(c["seq"], dtype=np.int64),
            "event_id": _text(c["event_id"]),
        }
    )
