"""How a CSV file is written, worked out from its first MiB: is it text at all, its encoding,
separator, header, line ends, the decimal mark of its amounts and the day/month order of its dates.
"""

from __future__ import annotations

import codecs
import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

from nextbest.data.readers.base import (
    AMOUNT_COLUMNS,
    DATE_COLUMNS,
    ReadInfo,
    ReadOptions,
    rename_columns,
)
from nextbest.data.values import DateFormat, detect_date_format, detect_decimal
from nextbest.errors import SchemaError

SAMPLE_BYTES = 1 << 20  # bytes looked at to detect the dialect
SAMPLE_LINES = 20_000
SEPARATORS = (",", ";", "\t", "|")
_MAGIC = (
    (b"PAR1", "a Parquet file; name it .parquet"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook?); export the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook; export the sheet as CSV"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "gzip-compressed; name it .csv.gz"),
    (b"\xff\xfe", "UTF-16 text; save it as UTF-8 CSV"),
    (b"\xfe\xff", "UTF-16 text; save it as UTF-8 CSV"),
)
_BOM = codecs.BOM_UTF8


@dataclass
class Dialect:
    """A CSV file's dialect and header, as :func:`sniff` found them."""

    info: ReadInfo
    raw_names: list[str]  # header names as in the file (stripped, made unique)
    columns: list[str]  # after the mapping
    skip: int  # bytes before the first data line (BOM and header)
    bare_cr: bool  # classic Mac line ends, read as LF
    encoding: str | None  # None: ASCII so far, decided at the first non-ASCII block


def sniff(path: Path, mapping: dict[str, str], options: ReadOptions) -> Dialect:
    """Read the first MiB of ``path`` and work out how the file is written.

    Raises
    ------
    SchemaError
        If the file is not a CSV table (empty, binary, header only, no line
        break in the first MiB), a mapped column is missing, or the sample
        shows a decimal mark or date order that cannot be settled.
    """
    with open_binary(path) as fh:
        sample = fh.read(SAMPLE_BYTES)
        at_eof = not fh.read(1)
    why = _not_text(sample)
    if why:
        raise SchemaError(f"{path}: not a CSV table: the file is {why}")
    bom = sample.startswith(_BOM)
    body = sample[len(_BOM) :] if bom else sample
    if not body.strip():
        raise SchemaError(f"{path}: the file is empty")
    bare_cr = b"\n" not in body and b"\r" in body
    if bare_cr:
        body = body.replace(b"\r", b"\n")
    end = body.find(b"\n")
    if end < 0 and not at_eof:
        raise SchemaError(f"{path}: not a CSV table: no line break in the first MiB")
    header = (body if end < 0 else body[:end]).rstrip(b"\r")
    detected = []
    encoding = options.encoding
    if encoding is None:
        cut = body.rfind(b"\n")
        encoding = "utf-8" if bom else guess_encoding(body if at_eof or cut < 0 else body[:cut])
        detected.append("encoding")
    header_text = header.decode(encoding or "utf-8", errors="replace").lstrip("\ufeff")
    rest = [] if end < 0 else body[end + 1 :].split(b"\n")
    if not at_eof and rest:
        rest.pop()  # maybe cut in the middle
    lines = [
        t
        for t in (r.rstrip(b"\r").decode(encoding or "utf-8", errors="replace") for r in rest)
        if t
    ][:SAMPLE_LINES]
    if not lines and at_eof:
        raise SchemaError(f"{path}: the file has a header but no rows")
    sep = options.csv_sep
    if sep is None:
        sep = _detect_sep(header_text, lines)
        detected.append("separator")
    raw_names = _header_names(split_fields(header_text, sep))
    columns = rename_columns(raw_names, mapping, path)
    cells = [split_fields(line, sep) for line in lines if '"' in line or sep in line]
    rows = [r for r in cells if len(r) == len(raw_names)]
    decimal, date_format = options.decimal, None
    if options.date_format is not None:
        date_format = DateFormat.parse(options.date_format)
    try:
        if decimal is None and (k := _first(columns, AMOUNT_COLUMNS)) is not None:
            decimal = detect_decimal([r[k] for r in rows])
            detected.append("decimal")
        if date_format is None and (k := _first(columns, DATE_COLUMNS)) is not None:
            date_format = detect_date_format([r[k] for r in rows])
            detected.append("date format")
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from None
    line_end = "CR" if bare_cr else "CRLF" if body[: end + 1].endswith(b"\r\n") else "LF"
    info = ReadInfo(
        str(path),
        "csv",
        sep=sep,
        decimal=decimal or ".",
        encoding=encoding,
        bom=bom,
        line_end=line_end,
        date_format=date_format,
        detected=tuple(detected),
    )
    skip = (len(_BOM) if bom else 0) + (len(body) if end < 0 else end + 1)
    return Dialect(info, raw_names, columns, skip, bare_cr, encoding)


def _first(columns: list[str], names: tuple[str, ...]) -> int | None:
    return next((columns.index(c) for c in names if c in columns), None)


def open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def _not_text(sample: bytes) -> str | None:
    """Why ``sample`` (a file's first bytes) is not CSV text, or ``None``."""
    for magic, what in _MAGIC:
        if sample.startswith(magic):
            return what
    if not sample:
        return None
    head = sample[:65536]
    controls = sum(
        head.count(bytes([b])) for b in (*range(0, 9), 11, 12, *range(14, 27), *range(28, 32))
    )
    if head.count(b"\x00") > len(head) // 100 or controls > len(head) // 20:
        return "binary data, not text"
    return None


def guess_encoding(data: bytes) -> str | None:
    """``None`` for ASCII, ``"utf-8"`` if the non-ASCII bytes are (mostly) UTF-8, else
    ``"cp1252"`` (``"iso8859-1"`` if not Windows-1252 either)."""
    if data.isascii():
        return None
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ord(ch) > 127) - bad
    if good > bad:  # a UTF-8 file with a few broken lines
        return "utf-8"
    try:
        data.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "iso8859-1"


def split_fields(line: str, sep: str) -> list[str]:
    """Fields of one line as far as they go (for detection; never raises)."""
    try:
        return next(csv.reader([line], delimiter=sep), [])
    except csv.Error:
        return line.split(sep)


def _detect_sep(header: str, lines: list[str]) -> str:
    best, best_score = ",", None
    for sep in SEPARATORS:
        n = len(split_fields(header, sep))
        if n < 2:
            continue
        counts = [len(split_fields(line, sep)) for line in lines[:200]]
        share = sum(c == n for c in counts) / len(counts) if counts else 1.0
        score = (share >= 0.9, share, n)
        if best_score is None or score > best_score:
            best, best_score = sep, score
    return best


def _header_names(fields: list[str]) -> list[str]:
    names: list[str] = []
    for i, name in enumerate(fields):
        name = name.strip() or f"Unnamed: {i}"
        base, k = name, 0
        while name in names:
            k += 1
            name = f"{base}.{k}"
        names.append(name)
    return names
