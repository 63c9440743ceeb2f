"""Validate events: from a JSON request (a list of objects) or a file (an Arrow table).

Both paths end in one set of rules (:func:`_check`), applied column-wise so
that a file of a million purchases validates in about a second. Only
how raw values become typed columns differs (:mod:`nextbest.events.columns`):

* **JSON** (:func:`validate_events`) is strict about types: a number where a
  string is expected (``"customer_id": 42``) is an error, as is a string where
  a number is expected (``"amount": "30"``) or a boolean given as 0/1
  (``converted`` alone accepts 0/1 or false/true). Unknown fields are errors.
* **Files** (:func:`validate_table`) hold text in CSV, so numbers, booleans
  (true/false/1/0/yes/no) and times are parsed from text; typed Parquet
  columns are used as they are, except that a column which must hold text
  (``customer_id``, ``event_id``, ``offer_id``, ...) but holds numbers is a
  :class:`~nextbest.errors.SchemaError` for the whole file: ``00042`` has
  already become ``42``. Columns that are not event fields are ignored and
  listed in the result.

Each problem is a :class:`~nextbest.events.schema.Reject` naming the event
(index or file row), the field, the value and the rule; an event with any
problem is not accepted, the others are. Rules, per event:

* ``type`` is one of purchase, contact, response, consent;
* ``customer_id`` is a non-empty string of at most 256 characters without
  leading or trailing spaces, kept exactly as given;
* ``event_id``, when given, is 1-64 characters of ``[A-Za-z0-9._:-]``;
  otherwise a ULID is assigned;
* a field that does not belong to the type is an error;
* the time field is required, parses as ISO 8601 and lies between 1900-01-01
  and ``now + max_future`` (default one day);
* purchase: ``amount`` required and finite; contact: ``group`` in treatment,
  control, explore, ``offer_id`` required for treatment, ``propensity`` in
  (0, 1]; response: ``converted`` 0 or 1; consent: ``consent_profiling``, or
  ``channel`` and ``opt_in``; every number finite; text at most 256 characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nextbest.errors import InputError, SchemaError
from nextbest.events.columns import NO_TIME, Columns, from_arrow, from_records, json_kind, show
from nextbest.events.ids import new_event_ids
from nextbest.events.schema import (
    COLUMNS,
    COMMON_FIELDS,
    EVENT_TYPES,
    GROUPS,
    MAX_BATCH,
    MAX_FUTURE,
    MAX_TEXT,
    MIN_TIME,
    TIME_FIELD,
    TYPE_FIELDS,
    BatchTooLarge,
    Event,
    EventBatch,
    EventError,
    Reject,
    iso,
    to_us,
)

_ID_REGEX = "^[A-Za-z0-9._:-]{1,64}$"
_TYPES_TEXT = "purchase, contact, response or consent"


@dataclass
class ValidationResult:
    """Accepted events (as a batch for the store) and rejects, in input order."""

    accepted: EventBatch
    rejects: list[Reject]
    ignored_fields: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no event was rejected."""
        return not self.rejects

    def events(self) -> list[Event]:
        """The accepted events as :class:`Event` objects."""
        return self.accepted.events()

    def raise_for_rejects(self, what: str = "events") -> None:
        """Raise :class:`EventError` (HTTP 422) listing every reject, if any."""
        if self.rejects:
            raise EventError(self.rejects, what)


class _Found:
    """Rejects collected rule by rule; at most one per (event, field), the first found."""

    def __init__(self, cols: Columns, first_row: int) -> None:
        self.cols = cols
        self.first_row = first_row
        self.items: dict[tuple[int, str], tuple[Any, str]] = {}

    def one(self, pos: int, name: str, value: Any, reason: str) -> None:
        self.items.setdefault((pos, name), (value, reason))

    def add(self, mask: np.ndarray, name: str, reason: str) -> None:
        for pos in np.flatnonzero(mask).tolist():
            if (pos, name) not in self.items:
                value = self.cols.raw(name, pos)
                self.items[(pos, name)] = (value, reason.replace("{value}", show(value)))

    def bad_rows(self) -> np.ndarray:
        bad = np.zeros(self.cols.n, dtype=bool)
        if self.items:
            bad[[pos for pos, _ in self.items]] = True
        return bad

    def rejects(self) -> list[Reject]:
        whole = {pos for pos, name in self.items if name == ""}
        out = [
            Reject(self.first_row + pos, name, _text(value), reason)
            for (pos, name), (value, reason) in self.items.items()
            if name == "" or pos not in whole
        ]
        return sorted(out, key=lambda r: r.index)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = value if isinstance(value, str) else str(value)
    return text[:200]


# -- the rules ------------------------------------------------------------------------------------


def _mask(arr: pa.Array) -> np.ndarray:
    return arr.fill_null(False).to_numpy(zero_copy_only=False)


def _tolerance(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} days"


def _check(
    cols: Columns, found: _Found, now_us: int, max_future: timedelta
) -> tuple[np.ndarray, np.ndarray]:
    """Apply every rule; return (accepted mask, event time in microseconds)."""
    n = cols.n
    none = np.zeros(n, dtype=bool)
    text = cols.text
    typ = text.get("type", pa.nulls(n, pa.string()))
    is_type = {t: _mask(pc.equal(typ, t)) for t in EVENT_TYPES}
    known = np.logical_or.reduce(list(is_type.values())) if n else none
    found.add(~cols.has("type"), "type", f"required: {_TYPES_TEXT}")
    found.add(
        cols.has("type") & ~known, "type", "unknown event type {value}; expected " + _TYPES_TEXT
    )

    cid = text.get("customer_id", pa.nulls(n, pa.string()))
    found.add(~cols.has("customer_id"), "customer_id", "required")
    found.add(_mask(pc.equal(cid, "")), "customer_id", "must not be empty")
    spaced = _mask(pc.not_equal(pc.utf8_trim_whitespace(cid), cid))
    found.add(
        spaced, "customer_id", "has leading or trailing spaces; ids are kept exactly as given"
    )
    if "event_id" in text:
        bad_id = cols.has("event_id") & ~_mask(
            pc.match_substring_regex(text["event_id"], _ID_REGEX)
        )
        found.add(
            bad_id, "event_id", "malformed: use 1 to 64 of the characters A-Z a-z 0-9 . _ : -"
        )
    for name, arr in text.items():
        if name not in ("type", "event_id"):
            found.add(
                _mask(pc.greater(pc.utf8_length(arr), MAX_TEXT)),
                name,
                f"longer than {MAX_TEXT} characters",
            )
    for name, values in cols.num.items():
        found.add(cols.parsed(name) & ~np.isfinite(values), name, "must be a finite number")

    at_us = np.full(n, NO_TIME, dtype=np.int64)
    source = np.full(n, "at", dtype=object)
    for t in EVENT_TYPES:
        rows = is_type[t]
        if not rows.any():
            continue
        allowed = TYPE_FIELDS[t] | COMMON_FIELDS
        takes = ", ".join(sorted(allowed))
        for name in cols.given:
            if name not in allowed:
                found.add(rows & cols.has(name), name, f"not a field of a {t} event ({takes})")
        _resolve_time(cols, found, t, rows, at_us, source)
        _RULES[t](cols, found, rows)

    has_time = at_us != NO_TIME
    late = has_time & (at_us > now_us + max_future // timedelta(microseconds=1))
    early = has_time & (at_us < to_us(MIN_TIME))
    for name in np.unique(source[late | early]).tolist():
        here = source == name
        found.add(
            late & here,
            name,
            f"more than {_tolerance(max_future)} in the future (now {iso(now_us)})",
        )
        found.add(early & here, name, f"before {MIN_TIME.date()}")
    return ~found.bad_rows(), at_us


def _resolve_time(
    cols: Columns, found: _Found, t: str, rows: np.ndarray, at_us: np.ndarray, source: np.ndarray
) -> None:
    named = TIME_FIELD[t]
    given_at = rows & cols.has("at")
    if named != "at":
        given_named = rows & cols.has(named)
        found.add(given_named & given_at, "at", f"give either {named} or at, not both")
        use = rows & cols.parsed(named)
        if use.any():
            at_us[use] = cols.time[named][use]
        source[given_named] = named
        use_at = given_at & ~given_named & cols.parsed("at")
    else:
        given_named = np.zeros_like(rows)
        use_at = given_at & cols.parsed("at")
    if use_at.any():
        at_us[use_at] = cols.time["at"][use_at]
    found.add(rows & ~given_named & ~given_at, named, f"required for a {t} event")


def _purchase(cols: Columns, found: _Found, rows: np.ndarray) -> None:
    found.add(rows & ~cols.has("amount"), "amount", "required for a purchase event")


def _contact(cols: Columns, found: _Found, rows: np.ndarray) -> None:
    n = cols.n
    group = cols.text.get("group", pa.nulls(n, pa.string()))
    found.add(
        rows & ~cols.has("group"), "group", "required for a contact event: " + ", ".join(GROUPS)
    )
    in_groups = _mask(pc.is_in(group, value_set=pa.array(GROUPS)))
    found.add(rows & cols.has("group") & ~in_groups, "group", "must be " + ", ".join(GROUPS))
    offer = cols.text.get("offer_id", pa.nulls(n, pa.string()))
    no_offer = ~cols.has("offer_id") | _mask(pc.equal(offer, ""))
    treated = rows & _mask(pc.equal(group, "treatment"))
    found.add(
        treated & no_offer,
        "offer_id",
        "required for a treatment contact (empty only for a control or explore row)",
    )
    if "propensity" in cols.num:
        p = cols.num["propensity"]
        with np.errstate(invalid="ignore"):
            outside = ~((p > 0) & (p <= 1))
        found.add(
            rows & cols.parsed("propensity") & outside,
            "propensity",
            "must be in (0, 1]: the probability with which the chosen arm was picked",
        )


def _response(cols: Columns, found: _Found, rows: np.ndarray) -> None:
    found.add(rows & ~cols.has("converted"), "converted", "required for a response event (0 or 1)")
    if "converted" in cols.num:
        c = cols.num["converted"]
        found.add(
            rows & cols.parsed("converted") & ~np.isin(c, [0.0, 1.0]),
            "converted",
            "must be 0 or 1",
        )


def _consent(cols: Columns, found: _Found, rows: np.ndarray) -> None:
    profiling, channel, opt_in = (
        cols.has("consent_profiling"),
        cols.has("channel"),
        cols.has("opt_in"),
    )
    found.add(
        rows & ~profiling & ~channel & ~opt_in,
        "consent_profiling",
        "a consent event needs consent_profiling (true/false), or channel and opt_in",
    )
    found.add(
        rows & profiling & (channel | opt_in),
        "consent_profiling",
        "give consent_profiling, or channel and opt_in, not both in one event",
    )
    found.add(rows & ~profiling & opt_in & ~channel, "channel", "required with opt_in")
    found.add(rows & ~profiling & channel & ~opt_in, "opt_in", "required with channel (true/false)")


_RULES = {"purchase": _purchase, "contact": _contact, "response": _response, "consent": _consent}


# -- accepted rows -> batch -----------------------------------------------------------------------


def _batch(cols: Columns, accepted: np.ndarray, at_us: np.ndarray, first_row: int) -> EventBatch:
    pos = np.flatnonzero(accepted)
    k = len(pos)
    take = pa.array(pos, type=pa.int64())
    out: dict[str, list] = {}
    for name in COLUMNS:
        if name == "at_us":
            out[name] = at_us[pos].tolist()
        elif name in cols.text:
            out[name] = cols.text[name].take(take).to_pylist()
        elif name in cols.num:
            values, ok = cols.num[name][pos], cols.ok[name][pos]
            if name == "converted":
                out[name] = [int(v) if o else None for v, o in zip(values.tolist(), ok.tolist())]
            elif ok.all():
                out[name] = values.tolist()
            else:
                out[name] = np.where(ok, values, None).tolist()
        elif name in cols.flag:
            out[name] = [None if v < 0 else bool(v) for v in cols.flag[name][pos].tolist()]
        else:
            out[name] = [None] * k
    ids = out["event_id"]
    missing = [i for i, v in enumerate(ids) if v is None]
    for i, new in zip(missing, new_event_ids(len(missing))):
        ids[i] = new
    offers = out["offer_id"]
    for i, t in enumerate(out["type"]):
        if t in ("contact", "response") and offers[i] is None:
            offers[i] = ""
    return EventBatch(out, (pos + first_row).tolist())


def _now_us(now: datetime | None) -> int:
    return to_us(now if now is not None else datetime.now(UTC))


def _finish(
    cols: Columns, pre: list, first_row: int, now: datetime | None, max_future: timedelta
) -> tuple[EventBatch, list[Reject]]:
    found = _Found(cols, first_row)
    for pos, name, value, reason in pre:
        found.one(pos, name, value, reason)
    accepted, at_us = _check(cols, found, _now_us(now), max_future)
    return _batch(cols, accepted, at_us, first_row), found.rejects()


def validate_events(
    raw: Any,
    *,
    now: datetime | None = None,
    max_future: timedelta = MAX_FUTURE,
    max_batch: int | None = MAX_BATCH,
    unknown_fields: str = "reject",
    first_index: int = 0,
) -> ValidationResult:
    """Validate a list of events as JSON objects (the body of ``POST /events``).

    Parameters
    ----------
    raw : list of dict
        The events, each with a ``type``.
    now : datetime, optional
        The time of receipt (default: the current UTC time); times more than
        ``max_future`` after it are rejected.
    max_future : timedelta
        Tolerance for clocks ahead of ours (default one day).
    max_batch : int or None
        Most events allowed (default :data:`~nextbest.events.schema.MAX_BATCH`,
        1,000); None for no limit (files).
    unknown_fields : {"reject", "ignore"}
        What to do with keys that are no event field (reject over HTTP;
        ignore in files, listed in ``ignored_fields``).
    first_index : int
        Index of the first event (for messages about a slice of a longer list).

    Returns
    -------
    ValidationResult

    Raises
    ------
    BatchTooLarge
        More than ``max_batch`` events (HTTP 413).
    InputError
        ``raw`` is not a list.
    """
    if not isinstance(raw, (list, tuple)):
        raise InputError(f"events must be a list of objects, got {json_kind(raw)}")
    if max_batch is not None and len(raw) > max_batch:
        raise BatchTooLarge(
            f"events: {len(raw):,} events in one request; at most {max_batch:,} "
            "(send several requests, or ingest a file)"
        )
    pre: list = []
    cols, ignored = from_records(raw, unknown_fields, pre)
    batch, rejects = _finish(cols, pre, first_index, now, max_future)
    return ValidationResult(batch, rejects, ignored)


def _from_pandas(frame: pd.DataFrame) -> pa.Table:
    arrays = {}
    for name in frame.columns:
        try:
            arrays[str(name)] = pa.array(frame[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(
                f"column {name!r} mixes kinds of values ({exc}); write it as text"
            ) from exc
    return pa.table(arrays)


def validate_table(
    table: pa.Table | pa.RecordBatch | pd.DataFrame,
    *,
    first_row: int = 0,
    event_type: str | None = None,
    now: datetime | None = None,
    max_future: timedelta = MAX_FUTURE,
) -> ValidationResult:
    """Validate a table of events (one row per event, a ``type`` column).

    Parameters
    ----------
    table : pyarrow.Table, pyarrow.RecordBatch or pandas.DataFrame
        Columns named like the event fields; text columns are parsed.
    first_row : int
        File row of the table's first row (rejects name file rows, 0-based).
    event_type : str, optional
        The type of every row when the table has no ``type`` column (a plain
        transactions file: ``"purchase"``).
    now, max_future
        As in :func:`validate_events`.

    Raises
    ------
    SchemaError
        No ``customer_id`` column, no ``type`` column and no ``event_type``,
        or a column whose type cannot hold its field (numbers in ``customer_id``).
    """
    if isinstance(table, pd.DataFrame):
        table = _from_pandas(table)
    elif isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if event_type is not None and event_type not in EVENT_TYPES:
        raise InputError(f"event type {event_type!r} unknown; expected {_TYPES_TEXT}")
    pre: list = []
    cols, ignored = from_arrow(table, event_type, pre)
    batch, rejects = _finish(cols, pre, first_row, now, max_future)
    return ValidationResult(batch, rejects, ignored)
