"""What every reader shares: the options, how a file was read, the table interface, and the
value canonicalization that makes a spreadsheet's numbers and dates look like everyone else's."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nextbest.data.schema import ISSUE, issue_text
from nextbest.data.values import MISSING_AMOUNT, DateFormat, canonical_dates, parse_amounts
from nextbest.errors import SchemaError

ID_COLUMNS: tuple[str, ...] = ("customer_id", "order_id", "offer_id")
AMOUNT_COLUMNS: tuple[str, ...] = ("amount",)
DATE_COLUMNS: tuple[str, ...] = ("timestamp",)
CSV_SUFFIXES = (".csv", ".txt", ".tsv", ".gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
# pandas' default NA strings (read_csv keep_default_na=True).
NA_STRINGS = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]
_NA = frozenset(NA_STRINGS)


@dataclass(frozen=True)
class ReadOptions:
    """What the user said about a CSV file; ``None`` means detect it.

    Parameters
    ----------
    csv_sep : str, optional
        Field separator: one character, or ``tab`` / ``\\t``.
    decimal : {".", ","}, optional
        Decimal mark of amounts (``,`` makes ``.`` and spaces thousands separators).
    encoding : str, optional
        Any Python codec name (``utf-8``, ``cp1252``, ``latin-1``...).
    date_format : str, optional
        ``DD.MM.YYYY``, ``MM/DD/YYYY``, ``YYYY-MM-DD`` or the ``%d.%m.%Y`` forms.
    """

    csv_sep: str | None = None
    decimal: str | None = None
    encoding: str | None = None
    date_format: str | None = None

    def __post_init__(self) -> None:
        if self.csv_sep is not None:
            sep = {"tab": "\t", "\\t": "\t"}.get(self.csv_sep.lower(), self.csv_sep)
            if len(sep) != 1 or sep in '\r\n"':
                raise SchemaError(f"--csv-sep must be one character (or 'tab'), got {sep!r}")
            object.__setattr__(self, "csv_sep", sep)
        if self.decimal is not None and self.decimal not in (".", ","):
            raise SchemaError(f"--decimal must be '.' or ',', got {self.decimal!r}")
        if self.encoding is not None:
            try:
                object.__setattr__(self, "encoding", codecs.lookup(self.encoding).name)
            except LookupError:
                raise SchemaError(f"--encoding {self.encoding!r} is not a known encoding") from None
        if self.date_format is not None:
            DateFormat.parse(self.date_format)

    @property
    def given(self) -> bool:
        return any(
            v is not None for v in (self.csv_sep, self.decimal, self.encoding, self.date_format)
        )


@dataclass
class ReadInfo:
    """How a file was read, for the run summary (:attr:`summary`)."""

    path: str
    kind: str  # "csv" or "parquet"
    sep: str | None = None
    decimal: str = "."
    encoding: str | None = None
    bom: bool = False
    line_end: str = "LF"  # "LF", "CRLF" or "CR"
    date_format: DateFormat | None = None
    detected: tuple[str, ...] = ()  # which settings were detected rather than given
    n_rows: int = 0  # rows read so far (good and rejected)
    n_rejected: int = 0  # of which flagged by the reader

    @property
    def summary(self) -> str:
        """``read as ';'-separated, decimal comma, cp1252, dates DD.MM.YYYY``."""
        if self.kind == "parquet":
            parts = ["Parquet"]
            if self.decimal == ",":
                parts.append("decimal comma")
            if self.date_format is not None:
                parts.append(f"dates {self.date_format.label}")
            return "read as " + ", ".join(parts)
        sep = "tab" if self.sep == "\t" else repr(self.sep)
        parts = [
            f"{sep}-separated",
            "decimal comma" if self.decimal == "," else "decimal point",
            (self.encoding or "utf-8") + (" with BOM" if self.bom else ""),
            f"dates {self.date_format.label}" if self.date_format else "dates ISO",
        ]
        if self.line_end != "LF":
            parts.append(f"{self.line_end} line ends")
        return "read as " + ", ".join(parts)


def file_kind(path: Path) -> str:
    """``"parquet"`` or ``"csv"`` by suffix (a directory is Parquet); raises on anything else."""
    if path.is_dir():
        return "parquet"
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    raise SchemaError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")


def rename_columns(names: list[str], mapping: dict[str, str], path: Path) -> list[str]:
    missing = [c for c in mapping if c not in names]
    if missing:
        raise SchemaError(f"{path}: mapped column(s) {missing} not in file; found {names}")
    out = [mapping.get(c, c) for c in names]
    twice = sorted({c for c in out if out.count(c) > 1})
    if twice:
        raise SchemaError(
            f"{path}: column(s) {twice} appear twice after the mapping; found {names}"
        )
    return out


class Table:
    """An opened input file: columns and dialect known, rows read on demand."""

    path: Path
    columns: list[str]  # after the mapping, without the reserved columns
    info: ReadInfo

    def batches(self) -> Iterator[pa.RecordBatch]:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self) -> pd.DataFrame:
        """Every batch as one frame (text columns as pandas strings)."""
        batches = list(self.batches())
        if not batches:
            return self._empty()
        return pa.Table.from_batches(batches).to_pandas()

    def _empty(self) -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype="str") for c in self.columns})


def decode_dictionaries(batch):
    """Dictionary-encoded (pandas categorical) columns decoded: every batch has the same schema."""
    if not any(pa.types.is_dictionary(t) for t in batch.schema.types):
        return batch
    cols = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def canonical_values(batch: pa.RecordBatch, info: ReadInfo) -> pa.RecordBatch:
    """Decimal-comma amounts and day-month dates as canonical text; amounts that do not fit the
    decimal comma flagged in :data:`ISSUE` (when the batch has it)."""
    names = batch.schema.names
    cols = list(batch.columns)
    text = {
        n
        for n, c in zip(names, cols)
        if pa.types.is_string(c.type) or pa.types.is_large_string(c.type)
    }
    changed = False
    if info.date_format is not None and info.date_format.order != "YMD":
        for name in DATE_COLUMNS:
            if name in text:
                i = names.index(name)
                cols[i] = canonical_dates(cols[i], info.date_format).cast(cols[i].type)
                changed = True
    if info.decimal == ",":
        for name in AMOUNT_COLUMNS:
            if name not in text:
                continue
            i = names.index(name)
            amounts, why = parse_amounts(cols[i].to_pandas(), ",")
            ok = pd.isna(why)
            canon = pa.array(amounts, from_pandas=True).cast(cols[i].type)
            cols[i] = pc.if_else(pa.array(ok), canon, cols[i])
            flagged = ~ok & (why != MISSING_AMOUNT)
            if flagged.any() and ISSUE in names:
                j = names.index(ISSUE)
                issues = np.asarray(cols[j].to_pylist(), dtype=object)
                new = flagged & pd.isna(issues)
                issues[new] = [issue_text(name, r) for r in why[new]]
                cols[j] = pa.array(issues, type=pa.string(), from_pandas=True)
                info.n_rejected += int(new.sum())
            changed = True
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(cols, names=names)
