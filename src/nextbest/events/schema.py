"""Event types, their fields, and the typed objects validation and the store exchange.

Four event types share three fields (``type``, ``event_id``, ``customer_id``)
and a time; the rest depend on the type (``*`` required):

=========  ===================  ==========================================================
type       time field           fields
=========  ===================  ==========================================================
purchase   ``timestamp``\\*      ``amount``\\*, ``category``, ``order_id``, ``channel``,
                                ``quantity`` (the transactions schema)
contact    ``contacted_at``\\*   ``group``\\* (treatment, control, explore), ``offer_id``
                                (\\* for treatment; empty for a universal holdout),
                                ``propensity`` in (0, 1], ``channel`` (a campaign-log row)
response   ``at``\\*             ``converted``\\* (0/1), ``revenue``, ``offer_id``
consent    ``at``\\*             ``consent_profiling`` (bool), or ``channel`` + ``opt_in``
                                (bool)
=========  ===================  ==========================================================

Every type also accepts ``at`` in place of its named time field (an export
writes ``at`` for all types). Times are stored in UTC with microsecond
precision; a time without an offset is taken as UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from nextbest.errors import InputError

EVENT_TYPES: tuple[str, ...] = ("purchase", "contact", "response", "consent")
GROUPS: tuple[str, ...] = ("treatment", "control", "explore")
MAX_BATCH = 1000
"""Most events in one HTTP request (``POST /events``); files are streamed and unbounded."""
MAX_FUTURE = timedelta(days=1)
"""Default tolerance for event times after the time of validation."""
MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TEXT = 256
"""Longest ``customer_id``, ``offer_id``, ``category``, ``order_id`` or ``channel`` (characters)."""

STR, NUM, BOOL, TIME = "str", "num", "bool", "time"
FIELD_KINDS: dict[str, str] = {
    "type": STR,
    "event_id": STR,
    "customer_id": STR,
    "at": TIME,
    "timestamp": TIME,
    "contacted_at": TIME,
    "amount": NUM,
    "quantity": NUM,
    "category": STR,
    "order_id": STR,
    "channel": STR,
    "offer_id": STR,
    "group": STR,
    "propensity": NUM,
    "converted": NUM,
    "revenue": NUM,
    "consent_profiling": BOOL,
    "opt_in": BOOL,
}
"""Every input field and its kind (JSON: string, number, boolean, ISO 8601 time string)."""

COMMON_FIELDS: frozenset[str] = frozenset({"type", "event_id", "customer_id", "at"})
TIME_FIELD: dict[str, str] = {
    "purchase": "timestamp",
    "contact": "contacted_at",
    "response": "at",
    "consent": "at",
}
TYPE_FIELDS: dict[str, frozenset[str]] = {
    "purchase": frozenset({"timestamp", "amount", "quantity", "category", "order_id", "channel"}),
    "contact": frozenset({"contacted_at", "offer_id", "group", "propensity", "channel"}),
    "response": frozenset({"offer_id", "converted", "revenue"}),
    "consent": frozenset({"consent_profiling", "channel", "opt_in"}),
}
"""Fields a type may carry besides :data:`COMMON_FIELDS`."""

COLUMNS: tuple[str, ...] = (
    "event_id",
    "type",
    "customer_id",
    "at_us",
    "amount",
    "quantity",
    "category",
    "order_id",
    "channel",
    "offer_id",
    "group",
    "propensity",
    "converted",
    "revenue",
    "consent_profiling",
    "opt_in",
)
"""Canonical columns of a stored event (``at_us``: microseconds since 1970-01-01 UTC)."""
CONTENT_COLUMNS: tuple[str, ...] = COLUMNS[1:]
"""What must be equal for a repeated ``event_id`` to be a harmless duplicate."""
_PAYLOAD = COLUMNS[4:]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class EventError(InputError):
    """Events that cannot be stored; ``rejects`` lists each problem (event index and field)."""

    http_status = 422

    def __init__(self, rejects: list[Reject], what: str = "events") -> None:
        self.rejects = list(rejects)
        shown = "; ".join(r.message(what) for r in self.rejects[:5])
        more = len(self.rejects) - 5
        super().__init__(
            f"{len(self.rejects)} problem(s): {shown}" + (f"; and {more} more" if more > 0 else ""),
            detail=[r.as_dict(what) for r in self.rejects],
        )


class BatchTooLarge(InputError):
    """More events in one request than :data:`MAX_BATCH`."""

    http_status = 413


def to_us(value: datetime) -> int:
    """A datetime as microseconds since 1970-01-01 UTC (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _US


def from_us(us: int) -> datetime:
    """Microseconds since 1970-01-01 UTC as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=int(us))


def iso(us: int) -> str:
    """Microseconds since the epoch as ISO 8601 in UTC with a ``Z`` (``2024-05-01T10:00:00Z``)."""
    text = from_us(us).isoformat(timespec="microseconds" if us % 1_000_000 else "seconds")
    return text.replace("+00:00", "Z")


def parse_time(text: str) -> int | None:
    """Parse an ISO 8601 time string to microseconds since the epoch (UTC); None if unparsable.

    ``2024-05-01``, ``2024-05-01T10:00:00``, ``2024-05-01 10:00:00.5+02:00`` and
    ``2024-05-01T10:00:00Z`` are all accepted; a time without an offset is UTC.
    """
    try:
        return to_us(datetime.fromisoformat(text))
    except (ValueError, TypeError, OverflowError):
        return None


@dataclass(frozen=True, slots=True)
class Reject:
    """One problem with one event: its position, the field, the value given and why.

    ``index`` is the position in the request (``events[index]``) or the 0-based
    row of a file; ``field`` is empty when the event as a whole is wrong.
    """

    index: int
    field: str
    value: str
    reason: str

    def message(self, what: str = "events") -> str:
        """``events[3].amount: required for a purchase event``."""
        where = f"{what}[{self.index}]" + (f".{self.field}" if self.field else "")
        return f"{where}: {self.reason}"

    def as_dict(self, what: str = "events") -> dict[str, Any]:
        return {
            "index": self.index,
            "field": self.field,
            "value": self.value,
            "reason": self.reason,
            "message": self.message(what),
        }


REJECT_COLUMNS: tuple[str, ...] = ("row", "field", "value", "reason")


def rejects_frame(rejects: list[Reject]) -> pd.DataFrame:
    """Rejects as a frame with columns ``row``, ``field``, ``value``, ``reason``."""
    return pd.DataFrame(
        {
            "row": np.array([r.index for r in rejects], dtype=np.int64),
            "field": pd.Series([r.field for r in rejects], dtype=object),
            "value": pd.Series([r.value for r in rejects], dtype=object),
            "reason": pd.Series([r.reason for r in rejects], dtype=object),
        }
    )


@dataclass(frozen=True, slots=True)
class Event:
    """One validated event. Fields that do not apply to its type are None.

    ``seq`` (the store's sequence number) and ``received_us`` are set on events
    read from a store; they are not part of the content compared for idempotency.
    """

    type: str
    event_id: str
    customer_id: str
    at_us: int
    amount: float | None = None
    quantity: float | None = None
    category: str | None = None
    order_id: str | None = None
    channel: str | None = None
    offer_id: str | None = None
    group: str | None = None
    propensity: float | None = None
    converted: int | None = None
    revenue: float | None = None
    consent_profiling: bool | None = None
    opt_in: bool | None = None
    seq: int | None = field(default=None, compare=False)
    received_us: int | None = field(default=None, compare=False)

    @property
    def at(self) -> datetime:
        """The event time (aware, UTC)."""
        return from_us(self.at_us)

    def content(self) -> tuple:
        """Everything but the id: equal content under one id makes a repeat a no-op."""
        return tuple(getattr(self, c) for c in CONTENT_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON, in the shape ``POST /events`` takes (absent fields left out)."""
        out: dict[str, Any] = {
            "type": self.type,
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            TIME_FIELD.get(self.type, "at"): iso(self.at_us),
        }
        for name in _PAYLOAD:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.seq is not None:
            out["seq"] = self.seq
        if self.received_us is not None:
            out["received_at"] = iso(self.received_us)
        return out


_EVENT_FIELDS = tuple(f.name for f in fields(Event))


class EventBatch:
    """Validated events as columns of plain Python values (None where absent).

    ``index`` holds each event's position in the input (request index or file
    row), so that problems found later by the store still name it.
    """

    __slots__ = ("columns", "index")

    def __init__(self, columns: dict[str, list], index: list[int]) -> None:
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"EventBatch needs columns {missing}")
        self.columns = {c: columns[c] for c in COLUMNS}
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def from_events(cls, events: list[Event], index: list[int] | None = None) -> EventBatch:
        """A batch of already validated :class:`Event` objects."""
        columns = {c: [getattr(e, c) for e in events] for c in COLUMNS}
        return cls(columns, list(range(len(events))) if index is None else list(index))

    def take(self, positions: list[int] | np.ndarray) -> EventBatch:
        """The events at ``positions`` (0-based positions in this batch)."""
        pos = [int(p) for p in positions]
        columns = {c: [v[p] for p in pos] for c, v in self.columns.items()}
        return EventBatch(columns, [self.index[p] for p in pos])

    def events(self) -> list[Event]:
        """The batch as :class:`Event` objects."""
        cols = [self.columns[c] for c in COLUMNS]
        return [Event(**dict(zip(COLUMNS, row))) for row in zip(*cols)]

    def content(self, position: int) -> tuple:
        return tuple(self.columns[c][position] for c in CONTENT_COLUMNS)


def row_to_event(row: tuple, names: tuple[str, ...]) -> Event:
    """An :class:`Event` from a database row with the given column names (booleans normalised)."""
    values = dict(zip(names, row))
    for name in ("consent_profiling", "opt_in"):
        if values.get(name) is not None:
            values[name] = bool(values[name])
    if values.get("converted") is not None:
        values["converted"] = int(values["converted"])
    return Event(**{k: v for k, v in values.items() if k in _EVENT_FIELDS})
