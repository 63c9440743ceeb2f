"""Parsing rules for values: amounts, timestamps, dates as spreadsheets write them, consent.

One place for what a cell means, used by the validator
(:mod:`nextbest.data.schema`) and by the reader (:mod:`nextbest.data.readers`,
which turns a European file's ``1.234,50`` and ``03.04.2017`` into the
canonical ``1234.5`` and ``2017-04-03`` before the validator sees them).

Amounts
    A number with an optional sign and an optional currency sign or code
    before or after it (``€12.50``, ``12,50 €``, ``-$3``, ``EUR 7``). With
    the decimal point (default) ``,``, ``'`` and spaces may group thousands
    (``1,234.50``); with the decimal comma ``.`` and spaces do (``1.234,50``).
    A value whose marks do not fit the decimal setting (``12,50`` with a
    decimal point, ``12.5`` with a decimal comma) is rejected with a reason
    that says so, never read as another number. ``|amount| >=``
    :data:`MAX_ABS_AMOUNT` (1e9, in the file's currency) is rejected as absurd.
Timestamps
    ISO 8601 and what :func:`pandas.to_datetime` reads with
    ``format="mixed"`` (UTC offsets converted to UTC; naive values taken as
    UTC), within :data:`MIN_TIMESTAMP` <= t < :data:`MAX_TIMESTAMP`. A value
    that parses outside that range is "out of range", not "unparsable". A
    numeric date that does not start with the year (``03.04.2017``) is never
    guessed: the reader converts it when the date order is known
    (``--date-format`` or a sample that settles it), otherwise it is rejected.
Consent
    :data:`CONSENT_TRUE` / :data:`CONSENT_FALSE`, case-insensitive, surrounding
    whitespace ignored; blank means true (no objection recorded: profiling is
    opt-out); any other value is rejected and the customer is treated as
    *not* consenting.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nextbest.errors import SchemaError

# -- reasons ----------------------------------------------------------------------------------
MISSING_TIMESTAMP = "missing timestamp"
UNPARSABLE_TIMESTAMP = "unparsable timestamp"
TIMESTAMP_OUT_OF_RANGE = "timestamp out of range (before 1900 or after 2261)"
AMBIGUOUS_DATE = "ambiguous day/month order in timestamp; give --date-format"
MISSING_AMOUNT = "missing amount"
UNPARSABLE_AMOUNT = "unparsable amount"
NON_FINITE_AMOUNT = "non-finite amount"
DECIMAL_COMMA_AMOUNT = "amount written with a decimal comma; give --decimal ,"
DECIMAL_POINT_AMOUNT = "amount written with a decimal point where the decimal mark is ','"
UNKNOWN_CONSENT = (
    "unknown consent_profiling value (use yes/no, true/false, ja/nein, oui/non, si/no, 1/0, "
    "y/n); treated as no consent"
)

MIN_TIMESTAMP = pd.Timestamp("1900-01-01")
MAX_TIMESTAMP = pd.Timestamp("2262-01-01")  # exclusive; datetime64[ns] ends in April 2262
MAX_ABS_AMOUNT = 1e9

CONSENT_TRUE = frozenset(
    ["true", "t", "yes", "y", "1", "1.0", "ja", "j", "wahr", "oui", "vrai", "si", "sí", "vero"]
)
CONSENT_FALSE = frozenset(
    ["false", "f", "no", "n", "0", "0.0", "nein", "falsch", "non", "faux", "falso"]
)
CONSENT_DEFAULT = True  # blank: no objection recorded


def absurd_amount_reason(max_abs: float) -> str:
    return f"absurd amount (|amount| >= {max_abs:g})"


# -- timestamps -------------------------------------------------------------------------------
def naive_utc(value) -> pd.Timestamp:
    """A timestamp as naive UTC (time-zone-aware values are converted, naive ones kept)."""
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


_DAY_MONTH = r"^\s*\d{1,2}[./-]\d{1,2}[./-]\d{2,4}(?:\D|$)"


def _as_arrow_strings(values: pd.Series) -> pa.Array:
    if not (pd.api.types.is_string_dtype(values) and values.dtype != object):
        values = values.map(lambda v: v if isinstance(v, str) else None).astype("string")
    return pa.array(values, type=pa.large_string(), from_pandas=True)


def classify_timestamps(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Parse timestamps and say why each bad one is bad.

    Returns
    -------
    (pandas.Series, numpy.ndarray)
        Naive UTC ``datetime64[ns]`` (NaT where rejected), and per value
        ``None`` or one of :data:`MISSING_TIMESTAMP`,
        :data:`UNPARSABLE_TIMESTAMP`, :data:`TIMESTAMP_OUT_OF_RANGE`,
        :data:`AMBIGUOUS_DATE`.
    """
    index = values.index
    reasons = np.full(len(values), None, dtype=object)
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        missing = parsed.isna().to_numpy()
        ambiguous = np.zeros(len(values), dtype=bool)
    else:
        text = _as_arrow_strings(values)
        missing = values.isna().to_numpy()
        blank = np.asarray(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(text), ""), False))
        if blank.any():
            missing = missing | blank
            values = values.where(~blank)
        parsed = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
        parsed = parsed.dt.tz_localize(None)
        ambiguous = np.asarray(
            pc.fill_null(pc.match_substring_regex(text, _DAY_MONTH), False), dtype=bool
        )
    ok = parsed.notna().to_numpy()
    unparsable = ~missing & ~ok
    out = ok & ((parsed < MIN_TIMESTAMP) | (parsed >= MAX_TIMESTAMP)).to_numpy()
    ambiguous = ok & ~out & ambiguous
    reasons[missing] = MISSING_TIMESTAMP
    reasons[unparsable] = UNPARSABLE_TIMESTAMP
    reasons[out] = TIMESTAMP_OUT_OF_RANGE
    reasons[ambiguous] = AMBIGUOUS_DATE
    good = ok & ~out & ~ambiguous
    ts = parsed.where(pd.Series(good, index=index)).astype("datetime64[ns]")
    return ts, reasons


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Parse timestamps to naive UTC ``datetime64[ns]``; values the validator rejects become NaT.

    Strings with UTC offsets (also several offsets in one column, as across a
    daylight-saving change) are converted to UTC; naive strings are taken as
    UTC. Missing, unparsable, out-of-range and day/month-ambiguous values
    are NaT (see :func:`classify_timestamps` for the reason of each).
    """
    return classify_timestamps(values)[0]


# -- dates as spreadsheets write them ---------------------------------------------------------
_DATE = re.compile(
    r"^\s*(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})"
    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*$"
)
_FRIENDLY = {
    "DMY": ("DD.MM.YYYY", "DD/MM/YYYY", "DD-MM-YYYY", "%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y"),
    "MDY": ("MM/DD/YYYY", "MM.DD.YYYY", "MM-DD-YYYY", "%m/%d/%Y", "%m.%d.%Y", "%m-%d-%Y"),
    "YMD": ("YYYY-MM-DD", "YYYY/MM/DD", "YYYY.MM.DD", "ISO", "%Y-%m-%d", "%Y/%m/%d"),
}


@dataclass(frozen=True)
class DateFormat:
    """Order of day, month and year in numeric dates, and how to name it in a summary."""

    order: str  # "DMY", "MDY" or "YMD" (ISO, read as is)
    sep: str = "."

    @property
    def label(self) -> str:
        if self.order == "YMD":
            return "ISO (YYYY-MM-DD)"
        parts = ["DD", "MM", "YYYY"] if self.order == "DMY" else ["MM", "DD", "YYYY"]
        return self.sep.join(parts)

    @classmethod
    def parse(cls, text: str) -> DateFormat:
        """``--date-format``: ``DD.MM.YYYY``, ``MM/DD/YYYY``, ``YYYY-MM-DD``, ``%d.%m.%Y``...

        A time part (``DD.MM.YYYY hh:mm``, ``%d.%m.%Y %H:%M``) may follow; times
        are read whenever a value has one.
        """
        date = re.split(r"[ T]", text.strip(), maxsplit=1)[0]
        for order, names in _FRIENDLY.items():
            if date.upper() in (n.upper() for n in names if not n.startswith("%")) or date in names:
                sep = next((c for c in date if c in "./-"), ".")
                return cls(order, sep)
        raise SchemaError(
            f"--date-format {text!r} is not one I know; use one of DD.MM.YYYY, DD/MM/YYYY, "
            "MM/DD/YYYY, YYYY-MM-DD (or %d.%m.%Y, %m/%d/%Y, %Y-%m-%d), optionally with a time"
        )


def detect_date_format(values: list[str]) -> DateFormat | None:
    """Date order from a sample of a timestamp column; ``None`` if no value is day-month style.

    Raises
    ------
    SchemaError
        If the sample does not settle the order (every day and month <= 12,
        as in ``03.04.2017``), or contradicts itself (``13.04.2017`` and
        ``04.13.2017``): never a silent guess.
    """
    evidence: dict[str, Counter] = {}
    examples: dict[str, str] = {}
    for v in values:
        m = _DATE.match(v) if isinstance(v, str) else None
        if m is None:
            continue
        a, sep, b = int(m.group(1)), m.group(2), int(m.group(3))
        seen = evidence.setdefault(sep, Counter())
        seen["n"] += 1
        seen["DMY"] += a > 12
        seen["MDY"] += b > 12
        examples.setdefault(sep, v.strip())
    if not evidence:
        return None
    orders = set()
    for sep, seen in evidence.items():
        if seen["DMY"] and seen["MDY"]:
            raise SchemaError(
                f"timestamps mix day-first and month-first dates (e.g. {examples[sep]!r}); "
                "give --date-format"
            )
        if not seen["DMY"] and not seen["MDY"]:
            raise SchemaError(
                f"ambiguous dates: {examples[sep]!r} could be day-first or month-first and no "
                f"day or month in the first {seen['n']:,} '{sep}' dates is above 12; give "
                "--date-format (e.g. --date-format DD.MM.YYYY)"
            )
        orders.add("DMY" if seen["DMY"] else "MDY")
    if len(orders) > 1:
        raise SchemaError(
            "timestamps mix day-first and month-first date styles; give --date-format"
        )
    styles = list(evidence)
    main = max(styles, key=lambda s: evidence[s]["n"])
    return DateFormat(orders.pop(), main)


def canonical_dates(values: pa.Array, fmt: DateFormat) -> pa.Array:
    """Numeric day-month dates of ``fmt``'s order as ISO text; other values unchanged."""
    if fmt.order == "YMD" or len(values) == 0:
        return values
    original_type = values.type
    values = values.cast(pa.string())
    # the usual shapes (two-digit day and month, four-digit year) in one regex replacement
    order = r"\3-\2-\1\4" if fmt.order == "DMY" else r"\3-\1-\2\4"
    values = pc.replace_substring_regex(values, pattern=_USUAL_DATE, replacement=order)
    left = pc.fill_null(pc.match_substring_regex(values, _DAY_MONTH), False)
    if not pc.any(left).as_py():
        return values.cast(original_type)
    parts = pc.extract_regex(values, _named_date_pattern())
    matched = pc.fill_null(pc.is_valid(parts), False)
    if not pc.any(matched).as_py():
        return values.cast(original_type)
    first, second = pc.struct_field(parts, "a"), pc.struct_field(parts, "b")
    day, month = (first, second) if fmt.order == "DMY" else (second, first)
    year = pc.struct_field(parts, "y")
    short = pc.equal(pc.utf8_length(year), 2)
    year_num = pc.cast(pc.if_else(short, year, "0"), pa.int32())
    century = pc.if_else(pc.less(year_num, 69), "20", "19")
    year = pc.if_else(short, pc.binary_join_element_wise(century, year, ""), year)

    def pad(a):
        return pc.utf8_lpad(a, 2, "0")

    date = pc.binary_join_element_wise(year, pad(month), pad(day), "-")
    hour, minute = pc.struct_field(parts, "h"), pc.struct_field(parts, "mi")
    sec, frac = pc.struct_field(parts, "s"), pc.struct_field(parts, "f")
    has_time = pc.not_equal(hour, "")
    seconds = pc.if_else(pc.equal(sec, ""), "00", sec)
    seconds = pc.if_else(
        pc.equal(frac, ""), seconds, pc.binary_join_element_wise(seconds, frac, ".")
    )
    time = pc.binary_join_element_wise(pad(hour), minute, seconds, ":")
    iso = pc.if_else(has_time, pc.binary_join_element_wise(date, time, " "), date)
    return pc.if_else(matched, iso, values).cast(original_type)


_USUAL_DATE = r"^(\d{2})[./-](\d{2})[./-](\d{4})( \d{2}:\d{2}(?::\d{2})?)?$"


def _named_date_pattern() -> str:
    return (
        r"^\s*(?P<a>\d{1,2})[./-](?P<b>\d{1,2})[./-](?P<y>\d{4}|\d{2})"
        r"(?:[ T]+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?)?\s*$"
    )


# -- amounts ----------------------------------------------------------------------------------
_CURRENCY = r"(?:€|\$|£|¥|₤|EUR|USD|GBP|CHF|JPY|Fr\.|SFr\.)"
_AMOUNT = re.compile(
    rf"^(?P<s1>[+-])?\s*(?P<c1>{_CURRENCY})?\s*(?P<s2>[+-])?\s*"
    r"(?P<num>\d[\d.,' \u00a0\u202f]*(?:[eE][+-]?\d+)?|[.,]\d+)"
    rf"\s*(?P<c2>{_CURRENCY})?$",
    re.IGNORECASE,
)
_NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " "})


def _number(num: str, decimal: str) -> float | None:
    """``num`` (digits and marks, no sign) as a float under ``decimal``, or ``None``."""
    num = num.translate(_SPACES)
    if decimal == ".":
        m = re.fullmatch(r"(\d{1,3}(?:([,' ])\d{3})(?:\2\d{3})*|\d+)?(\.\d*)?([eE][+-]?\d+)?", num)
    else:
        m = re.fullmatch(r"(\d{1,3}(?:([. ])\d{3})(?:\2\d{3})*|\d+)?(,\d*)?()", num)
    if m is None or not (m.group(1) or (m.group(3) or "")[1:]):
        return None
    whole = re.sub(r"[^\d]", "", m.group(1) or "0")
    frac = (m.group(3) or "")[1:]
    return float(f"{whole}.{frac or 0}{m.group(4) or ''}")


def parse_amount_text(text: str, decimal: str = ".") -> tuple[float, str | None]:
    """One amount cell: ``(value, None)`` or ``(nan, reason)``; see the module docstring."""
    s = text.strip()
    if not s:
        return np.nan, MISSING_AMOUNT
    if s.lower() in _NON_FINITE:
        return np.nan, NON_FINITE_AMOUNT
    m = _AMOUNT.match(s)
    if m is None or (m["s1"] and m["s2"]) or (m["c1"] and m["c2"]):
        return np.nan, UNPARSABLE_AMOUNT
    num = m["num"].strip()
    value = _number(num, decimal)
    if value is None:
        return np.nan, _why_not(num, decimal)
    return (-value if "-" in (m["s1"] or "") + (m["s2"] or "") else value), None


def _why_not(num: str, decimal: str) -> str:
    if decimal == "." and re.fullmatch(r"\d{1,3}(?:\.\d{3})*,\d+|\d+,(?:\d{1,2}|\d{4,})", num):
        return DECIMAL_COMMA_AMOUNT
    if decimal == "," and re.fullmatch(r"\d{1,3}(?:,\d{3})*\.\d+|\d+\.(?:\d{1,2}|\d{4,})", num):
        return DECIMAL_POINT_AMOUNT
    return UNPARSABLE_AMOUNT


_PLAIN_COMMA = r"^\s*[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?\s*$"


def _plain_decimal_comma(values: pd.Series) -> np.ndarray:
    """``12,50`` / ``-1.234,5`` (no currency, no spaces inside) as floats, in Arrow; NaN for
    anything else (those go through :func:`parse_amount_text`)."""
    arr = _as_arrow_strings(values)
    plain = pc.fill_null(pc.match_substring_regex(arr, _PLAIN_COMMA), False)
    canon = pc.replace_substring(
        pc.replace_substring(pc.utf8_trim_whitespace(arr), ".", ""), ",", "."
    )
    nums = pc.cast(pc.if_else(plain, canon, pa.scalar(None, canon.type)), pa.float64())
    return np.array(nums.to_numpy(zero_copy_only=False), dtype="float64", copy=True)


def parse_amounts(
    values: pd.Series, decimal: str = ".", max_abs: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Amounts as float64 and, per value, ``None`` or the reason it is rejected.

    Plain numbers go through :func:`pandas.to_numeric` (fast); only the
    distinct values it cannot read are parsed one by one
    (:func:`parse_amount_text`). With ``decimal=","`` every distinct value is.

    Parameters
    ----------
    values : pandas.Series
        Text or numbers, in the file's currency.
    decimal : {".", ","}
    max_abs : float, optional
        ``|amount| >= max_abs`` is rejected as absurd (not checked if ``None``).
    """
    n = len(values)
    reasons = np.full(n, None, dtype=object)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        out = np.array(values.to_numpy(dtype="float64", na_value=np.nan), copy=True)
        reasons[np.isnan(out)] = MISSING_AMOUNT
    else:
        missing = values.isna().to_numpy()
        if decimal == ".":
            out = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            out = np.array(out, copy=True)
        else:
            out = _plain_decimal_comma(values)
        todo = np.flatnonzero(np.isnan(out) & ~missing)
        if len(todo):
            codes, uniques = pd.factorize(values.iloc[todo].astype(str))
            parsed = [parse_amount_text(u, decimal) for u in uniques]
            out[todo] = np.array([p[0] for p in parsed], dtype="float64")[codes]
            reasons[todo] = np.array([p[1] for p in parsed], dtype=object)[codes]
        reasons[missing] = MISSING_AMOUNT
    bad_inf = np.isinf(out)
    reasons[bad_inf] = NON_FINITE_AMOUNT
    out[bad_inf] = np.nan
    if max_abs is not None:
        absurd = np.abs(np.nan_to_num(out)) >= max_abs
        reasons[absurd] = absurd_amount_reason(max_abs)
        out[absurd] = np.nan
    return out, reasons


def detect_decimal(values: list[str]) -> str | None:
    """``","`` or ``"."`` if a sample of amount cells shows the decimal mark, else ``None``.

    A mark followed by other than exactly three digits, or the later of two
    different marks, is the decimal mark; ``1.234`` alone settles nothing.
    The mark at least 90% of the telling values show wins: the others are
    then rejected by :func:`parse_amounts` with a reason, never misread.

    Raises
    ------
    SchemaError
        If neither mark has 90% of the telling values.
    """
    votes = Counter()
    for v in values:
        if not isinstance(v, str):
            continue
        m = _AMOUNT.match(v.strip())
        if m is None:
            continue
        num = m["num"].translate(_SPACES).replace(" ", "").replace("'", "")
        marks = [c for c in num if c in ".,"]
        if not marks:
            continue
        if len(set(marks)) == 2:
            votes[marks[-1]] += 1
        elif len(marks) > 1:
            votes["," if marks[0] == "." else "."] += 1  # the repeated mark groups thousands
        elif len(num) - num.index(marks[0]) - 1 != 3:
            votes[marks[0]] += 1
    total = votes["."] + votes[","]
    if total and max(votes["."], votes[","]) < 0.9 * total:
        raise SchemaError(
            f"amounts mix a decimal comma ({votes[',']:,} values) and a decimal point "
            f"({votes['.']:,} values) in the first lines; give --decimal , or --decimal ."
        )
    return max(votes, key=votes.get) if votes else None


# -- consent ----------------------------------------------------------------------------------
def parse_consent(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``consent_profiling`` as bool and, per value, ``None`` or :data:`UNKNOWN_CONSENT`.

    Blank or missing: :data:`CONSENT_DEFAULT` (true). Unknown: false.
    """
    n = len(values)
    reasons = np.full(n, None, dtype=object)
    if pd.api.types.is_bool_dtype(values) and not values.isna().any():
        return values.to_numpy(dtype=bool), reasons
    out = np.full(n, CONSENT_DEFAULT, dtype=bool)
    for i, v in enumerate(values.tolist()):
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            continue
        if isinstance(v, (bool, np.bool_)):
            out[i] = bool(v)
            continue
        s = str(v).strip().lower()
        if not s:
            continue
        if s in CONSENT_TRUE:
            out[i] = True
        elif s in CONSENT_FALSE:
            out[i] = False
        else:
            out[i] = False
            reasons[i] = UNKNOWN_CONSENT
    return out, reasons
