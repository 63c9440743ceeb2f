"""Validate events: from a JSON request (a list of objects) or a file (an Arrow table).

Both paths end in one set of rules (:func:`_check`), applied column-wise so
that a file of a million purchases validates in well under a second. Only
how raw values become typed columns differs:

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nextbest.errors import InputError, SchemaError
from nextbest.events.ids import new_event_ids
from nextbest.events.schema import (
    BOOL,
    COLUMNS,
    COMMON_FIELDS,
    EVENT_TYPES,
    FIELD_KINDS,
    GROUPS,
    MAX_BATCH,
    MAX_FUTURE,
    MAX_TEXT,
    MIN_TIME,
    NUM,
    STR,
    TIME_FIELD,
    TYPE_FIELDS,
    BatchTooLarge,
    Event,
    EventBatch,
    EventError,
    Reject,
    iso,
    parse_time,
    to_us,
)

_NO_TIME = np.iinfo(np.int64).min
_ID_REGEX = "^[A-Za-z0-9._:-]{1,64}$"
_EMPTY_AS_ABSENT = frozenset({"category", "order_id", "channel"})
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})
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


@dataclass
class _Cols:
    """Typed columns of one batch; ``given`` = non-null in the input, ``ok`` = parsed."""

    n: int
    text: dict[str, pa.Array]
    num: dict[str, np.ndarray]
    flag: dict[str, np.ndarray]  # int8: 0, 1, or -1 when absent or unparsable
    time: dict[str, np.ndarray]  # int64 microseconds, _NO_TIME when absent or unparsable
    given: dict[str, np.ndarray]
    ok: dict[str, np.ndarray]
    raw: Callable[[str, int], Any]

    def has(self, name: str) -> np.ndarray:
        return self.given.get(name, np.zeros(self.n, dtype=bool))

    def parsed(self, name: str) -> np.ndarray:
        return self.ok.get(name, np.zeros(self.n, dtype=bool))


class _Found:
    """Rejects collected rule by rule; at most one per (event, field), the first found."""

    def __init__(self, cols: _Cols, first_row: int) -> None:
        self.cols = cols
        self.first_row = first_row
        self.items: dict[tuple[int, str], tuple[Any, str]] = {}

    def one(self, pos: int, name: str, value: Any, reason: str) -> None:
        self.items.setdefault((pos, name), (value, reason))

    def add(self, mask: np.ndarray, name: str, reason: str) -> None:
        for pos in np.flatnonzero(mask).tolist():
            if (pos, name) not in self.items:
                value = self.cols.raw(name, pos)
                self.items[(pos, name)] = (value, reason.replace("{value}", _show(value)))

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


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = value if isinstance(value, str) else str(value)
    return text[:200]


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


# -- JSON records -> columns ----------------------------------------------------------------------


def _record_value(name: str, kind: str, value: Any) -> tuple[Any, str | None]:
    """A JSON value as its typed form, or an error reason."""
    if kind == STR:
        if isinstance(value, str):
            return value, None
        hint = (
            "; send ids as strings so that leading zeros are kept" if name.endswith("_id") else ""
        )
        return None, f"must be a string, got {_json_kind(value)}{hint}"
    if kind == NUM:
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric or (name == "converted" and isinstance(value, bool)):
            try:
                return float(value), None
            except OverflowError:
                return None, "must be a finite number"
        return None, f"must be a number, got {_json_kind(value)}"
    if kind == BOOL:
        if isinstance(value, bool):
            return value, None
        return None, f"must be true or false, got {_json_kind(value)}"
    # TIME
    if isinstance(value, str):
        us = parse_time(value)
        if us is None:
            return None, "not an ISO 8601 time (e.g. 2024-05-01T10:00:00Z)"
        return us, None
    if isinstance(value, datetime):
        return to_us(value), None
    if isinstance(value, date):
        return to_us(datetime(value.year, value.month, value.day, tzinfo=UTC)), None
    return None, f"must be an ISO 8601 time string, got {_json_kind(value)}"


def _from_records(
    raw: Sequence[Any], unknown_fields: str, found_out: list
) -> tuple[_Cols, list[str]]:
    n = len(raw)
    values: dict[str, list] = {}
    ignored: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, (dict, Mapping)):
            found_out.append(
                (i, "", item, f"must be an object with a type, got {_json_kind(item)}")
            )
            continue
        for key, value in item.items():
            kind = FIELD_KINDS.get(key)
            if kind is None:
                if unknown_fields == "reject":
                    found_out.append((i, str(key), value, _unknown_reason(item.get("type"))))
                else:
                    ignored.add(str(key))
                continue
            if value is None:
                continue
            if kind == STR and type(value) is str:
                typed, problem = value, None
            else:
                typed, problem = _record_value(key, kind, value)
            column = values.get(key)
            if column is None:
                column = values[key] = [None] * n
            if problem is None:
                column[i] = typed
            else:
                column[i] = _BAD
                found_out.append((i, key, value, problem))

    def raw_value(name: str, pos: int) -> Any:
        item = raw[pos]
        return item.get(name) if isinstance(item, Mapping) else None

    cols = _Cols(n, {}, {}, {}, {}, {}, {}, raw_value)
    for name, column in values.items():
        kind = FIELD_KINDS[name]
        given = np.fromiter((v is not None for v in column), dtype=bool, count=n)
        ok = np.fromiter((v is not None and v is not _BAD for v in column), dtype=bool, count=n)
        clean = [v if v is not _BAD else None for v in column]
        if kind == STR:
            if name in _EMPTY_AS_ABSENT:
                clean = [None if v == "" else v for v in clean]
                given &= np.fromiter((v is not None for v in clean), dtype=bool, count=n) | ~ok
            cols.text[name] = pa.array(clean, type=pa.string())
        elif kind == NUM:
            cols.num[name] = np.array([np.nan if v is None else v for v in clean], dtype=float)
        elif kind == BOOL:
            cols.flag[name] = np.array([-1 if v is None else int(v) for v in clean], dtype=np.int8)
        else:
            cols.time[name] = np.array(
                [_NO_TIME if v is None else v for v in clean], dtype=np.int64
            )
        cols.given[name], cols.ok[name] = given, ok
    return cols, sorted(ignored)


_BAD = object()


def _unknown_reason(event_type: Any) -> str:
    if isinstance(event_type, str) and event_type in TYPE_FIELDS:
        allowed = ", ".join(sorted(TYPE_FIELDS[event_type] | COMMON_FIELDS))
        return f"unknown field; a {event_type} event takes {allowed}"
    return "unknown field (not part of any event type)"


# -- Arrow table (files) -> columns ---------------------------------------------------------------


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _arrow_text(name: str, arr: pa.Array) -> pa.Array:
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.string())
    if not _is_text(arr.type):
        raise SchemaError(
            f"column {name!r} holds {arr.type} values; it must hold text "
            "(a number loses leading zeros: 00042 becomes 42). Write it as a string column."
        )
    arr = arr.cast(pa.string())
    if name in _EMPTY_AS_ABSENT:
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
    return arr


def _arrow_number(name: str, arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    given = arr.is_valid().to_numpy(zero_copy_only=False)
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = arr.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        return values, given, given.copy()
    if pa.types.is_boolean(t) and name == "converted":
        values = arr.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        return values, given, given.copy()
    if _is_text(t):
        text = pd.Series(arr.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
        stripped = text.str.strip()
        given &= (stripped != "").to_numpy(dtype=bool, na_value=False)
        values = pd.to_numeric(stripped.where(given), errors="coerce").to_numpy(dtype=float)
        literal_nan = stripped.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy(dtype=bool)
        return values, given, given & (~np.isnan(values) | literal_nan)
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan), given, given.copy()
    raise SchemaError(f"column {name!r} holds {t} values; it must hold numbers")


def _arrow_flag(name: str, arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    given = arr.is_valid().to_numpy(zero_copy_only=False)
    t = arr.type
    if pa.types.is_boolean(t):
        flag = np.where(given, arr.fill_null(False).to_numpy(zero_copy_only=False), -1)
        return flag.astype(np.int8), given, given.copy()
    if pa.types.is_integer(t):
        v = arr.fill_null(-1).to_numpy(zero_copy_only=False)
        ok = given & np.isin(v, [0, 1])
        return np.where(ok, v, -1).astype(np.int8), given, ok
    if _is_text(t):
        text = pd.Series(arr.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
        low = text.str.strip().str.lower()
        given &= (low != "").to_numpy(dtype=bool, na_value=False)
        flag = np.where(low.isin(_TRUE), 1, np.where(low.isin(_FALSE), 0, -1)).astype(np.int8)
        return flag, given, given & (flag >= 0)
    if pa.types.is_null(t):
        return np.full(len(arr), -1, dtype=np.int8), given, given.copy()
    raise SchemaError(f"column {name!r} holds {t} values; it must hold true/false")


def _arrow_time(name: str, arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    given = arr.is_valid().to_numpy(zero_copy_only=False)
    t = arr.type
    if pa.types.is_date(t):
        arr = arr.cast(pa.timestamp("s")).cast(pa.timestamp("us"))
        t = arr.type
    if pa.types.is_timestamp(t):
        if t.unit != "us":
            arr = arr.cast(pa.timestamp("us", tz=t.tz), safe=False)
        us = arr.cast(pa.int64()).fill_null(_NO_TIME).to_numpy(zero_copy_only=False)
        return us, given, given.copy()
    if _is_text(t):
        encoded = arr.cast(pa.string()).dictionary_encode()
        uniques = encoded.dictionary.to_pylist()
        parsed = np.array(
            [_NO_TIME if (u := parse_time(s.strip())) is None else u for s in uniques] or [0],
            dtype=np.int64,
        )
        codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
        us = np.where(given, parsed[codes], _NO_TIME)
        blank = np.array([s.strip() == "" for s in uniques] or [False], dtype=bool)[codes]
        given &= ~blank
        return us, given, given & (us != _NO_TIME)
    if pa.types.is_null(t):
        return np.full(len(arr), _NO_TIME, dtype=np.int64), given, given.copy()
    raise SchemaError(f"column {name!r} holds {t} values; it must hold times (ISO 8601 text)")


def _from_arrow(table: pa.Table, event_type: str | None, found_out: list) -> tuple[_Cols, list]:
    names = table.column_names
    if "type" not in names and event_type is None:
        raise SchemaError(
            f"events file has no 'type' column (found {names}); add one "
            "(purchase, contact, response, consent) or name the type of every row"
        )
    if "customer_id" not in names:
        raise SchemaError(f"events file has no 'customer_id' column (found {names})")
    arrays = {c: table.column(c).combine_chunks() for c in names if c in FIELD_KINDS}
    if "type" not in names:
        arrays["type"] = pa.array([event_type] * table.num_rows, type=pa.string())

    def raw_value(name: str, pos: int) -> Any:
        return arrays[name][pos].as_py() if name in arrays else None

    cols = _Cols(table.num_rows, {}, {}, {}, {}, {}, {}, raw_value)
    for name, arr in arrays.items():
        kind = FIELD_KINDS[name]
        if kind == STR:
            cols.text[name] = _arrow_text(name, arr)
            cols.given[name] = cols.text[name].is_valid().to_numpy(zero_copy_only=False)
            cols.ok[name] = cols.given[name]
            continue
        if kind == NUM:
            cols.num[name], given, ok = _arrow_number(name, arr)
            problem = "must be a number"
        elif kind == BOOL:
            cols.flag[name], given, ok = _arrow_flag(name, arr)
            problem = "must be true or false (or 1/0, yes/no)"
        else:
            cols.time[name], given, ok = _arrow_time(name, arr)
            problem = "not an ISO 8601 time (e.g. 2024-05-01T10:00:00Z)"
        cols.given[name], cols.ok[name] = given, ok
        for pos in np.flatnonzero(given & ~ok).tolist():
            found_out.append((pos, name, raw_value(name, pos), problem))
    ignored = [c for c in names if c not in FIELD_KINDS]
    return cols, ignored


# -- the rules ------------------------------------------------------------------------------------


def _mask(arr: pa.Array) -> np.ndarray:
    return arr.fill_null(False).to_numpy(zero_copy_only=False)


def _tolerance(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} days"


def _check(
    cols: _Cols, found: _Found, now_us: int, max_future: timedelta
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

    at_us = np.full(n, _NO_TIME, dtype=np.int64)
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

    has_time = at_us != _NO_TIME
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
    cols: _Cols, found: _Found, t: str, rows: np.ndarray, at_us: np.ndarray, source: np.ndarray
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


def _purchase(cols: _Cols, found: _Found, rows: np.ndarray) -> None:
    found.add(rows & ~cols.has("amount"), "amount", "required for a purchase event")


def _contact(cols: _Cols, found: _Found, rows: np.ndarray) -> None:
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


def _response(cols: _Cols, found: _Found, rows: np.ndarray) -> None:
    found.add(rows & ~cols.has("converted"), "converted", "required for a response event (0 or 1)")
    if "converted" in cols.num:
        c = cols.num["converted"]
        found.add(
            rows & cols.parsed("converted") & ~np.isin(c, [0.0, 1.0]),
            "converted",
            "must be 0 or 1",
        )


def _consent(cols: _Cols, found: _Found, rows: np.ndarray) -> None:
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


def _batch(cols: _Cols, accepted: np.ndarray, at_us: np.ndarray, first_row: int) -> EventBatch:
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
    cols: _Cols, pre: list, first_row: int, now: datetime | None, max_future: timedelta
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
        raise InputError(f"events must be a list of objects, got {_json_kind(raw)}")
    if max_batch is not None and len(raw) > max_batch:
        raise BatchTooLarge(
            f"events: {len(raw):,} events in one request; at most {max_batch:,} "
            "(send several requests, or ingest a file)"
        )
    pre: list = []
    cols, ignored = _from_records(raw, unknown_fields, pre)
    batch, rejects = _finish(cols, pre, first_index, now, max_future)
    return ValidationResult(batch, rejects, ignored)


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
        table = pa.Table.from_pandas(table, preserve_index=False)
    elif isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if event_type is not None and event_type not in EVENT_TYPES:
        raise InputError(f"event type {event_type!r} unknown; expected {_TYPES_TEXT}")
    pre: list = []
    cols, ignored = _from_arrow(table, event_type, pre)
    batch, rejects = _finish(cols, pre, first_row, now, max_future)
    return ValidationResult(batch, rejects, ignored)
