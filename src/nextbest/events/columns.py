"""Raw events as typed columns: from JSON objects (strict types) or an Arrow table (a file).

Both give a :class:`Columns`: per field, typed values plus two masks, ``given``
(not null in the input) and ``ok`` (parsed). Values that cannot be parsed are
reported here, as ``(position, field, value, reason)``; the rules in
:mod:`nextbest.events.validate` then only look at typed values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nextbest.errors import SchemaError
from nextbest.events.schema import (
    BOOL,
    COMMON_FIELDS,
    FIELD_KINDS,
    NUM,
    STR,
    TYPE_FIELDS,
    parse_time,
    to_us,
)

NO_TIME = np.iinfo(np.int64).min
"""Marks an absent or unparsable time in an int64 column of microseconds."""
EMPTY_AS_ABSENT = frozenset({"category", "order_id", "channel"})
"""Optional text fields where an empty string means absent."""
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


@dataclass
class Columns:
    """Typed columns of one batch; ``given`` = non-null in the input, ``ok`` = parsed."""

    n: int
    text: dict[str, pa.Array]
    num: dict[str, np.ndarray]
    flag: dict[str, np.ndarray]  # int8: 0, 1, or -1 when absent or unparsable
    time: dict[str, np.ndarray]  # int64 microseconds, NO_TIME when absent or unparsable
    given: dict[str, np.ndarray]
    ok: dict[str, np.ndarray]
    raw: Callable[[str, int], Any]

    def has(self, name: str) -> np.ndarray:
        return self.given.get(name, np.zeros(self.n, dtype=bool))

    def parsed(self, name: str) -> np.ndarray:
        return self.ok.get(name, np.zeros(self.n, dtype=bool))


def show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {show(value)}"
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
        return None, f"must be a string, got {json_kind(value)}{hint}"
    if kind == NUM:
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric or (name == "converted" and isinstance(value, bool)):
            try:
                return float(value), None
            except OverflowError:
                return None, "must be a finite number"
        return None, f"must be a number, got {json_kind(value)}"
    if kind == BOOL:
        if isinstance(value, bool):
            return value, None
        return None, f"must be true or false, got {json_kind(value)}"
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
    return None, f"must be an ISO 8601 time string, got {json_kind(value)}"


def from_records(
    raw: Sequence[Any], unknown_fields: str, found_out: list
) -> tuple[Columns, list[str]]:
    n = len(raw)
    values: dict[str, list] = {}
    ignored: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, (dict, Mapping)):
            found_out.append((i, "", item, f"must be an object with a type, got {json_kind(item)}"))
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

    cols = Columns(n, {}, {}, {}, {}, {}, {}, raw_value)
    for name, column in values.items():
        kind = FIELD_KINDS[name]
        given = np.fromiter((v is not None for v in column), dtype=bool, count=n)
        ok = np.fromiter((v is not None and v is not _BAD for v in column), dtype=bool, count=n)
        clean = [v if v is not _BAD else None for v in column]
        if kind == STR:
            if name in EMPTY_AS_ABSENT:
                clean = [None if v == "" else v for v in clean]
                given &= np.fromiter((v is not None for v in clean), dtype=bool, count=n) | ~ok
            cols.text[name] = pa.array(clean, type=pa.string())
        elif kind == NUM:
            cols.num[name] = np.array([np.nan if v is None else v for v in clean], dtype=float)
        elif kind == BOOL:
            cols.flag[name] = np.array([-1 if v is None else int(v) for v in clean], dtype=np.int8)
        else:
            cols.time[name] = np.array([NO_TIME if v is None else v for v in clean], dtype=np.int64)
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
    if name in EMPTY_AS_ABSENT:
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
        us = arr.cast(pa.int64()).fill_null(NO_TIME).to_numpy(zero_copy_only=False)
        return us, given, given.copy()
    if _is_text(t):
        encoded = arr.cast(pa.string()).dictionary_encode()
        uniques = encoded.dictionary.to_pylist()
        parsed = np.array(
            [NO_TIME if (u := parse_time(s.strip())) is None else u for s in uniques] or [0],
            dtype=np.int64,
        )
        codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
        us = np.where(given, parsed[codes], NO_TIME)
        blank = np.array([s.strip() == "" for s in uniques] or [False], dtype=bool)[codes]
        given &= ~blank
        return us, given, given & (us != NO_TIME)
    if pa.types.is_null(t):
        return np.full(len(arr), NO_TIME, dtype=np.int64), given, given.copy()
    raise SchemaError(f"column {name!r} holds {t} values; it must hold times (ISO 8601 text)")


def from_arrow(table: pa.Table, event_type: str | None, found_out: list) -> tuple[Columns, list]:
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

    cols = Columns(table.num_rows, {}, {}, {}, {}, {}, {}, raw_value)
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
