"""One reader for every file input: CSV as spreadsheets export it, and Parquet.

:func:`open_table` opens a file (CSV, ``.csv.gz``, Parquet or a directory of
Parquet files), works out how it is written and yields Arrow record batches
(:meth:`Table.batches`, the streaming batch job) or one frame
(:func:`read_frame`, train / evaluate). Both paths read the same bytes with
the same code, so they keep and reject the same lines.

Lines that cannot be read are rejects, never the end of the job
    A CSV line with more or fewer fields than the header, an unbalanced or
    misplaced quote, a NUL byte, a carriage return inside the line, or bytes
    that are not in the file's encoding stays in the output as a row whose
    columns are empty (except ``customer_id`` of a ragged line, split as
    far as it goes, so that a lost customers line can still mean "no
    consent") and whose reserved columns say why: :data:`~.schema.ISSUE`
    (column ``"(line)"`` and the reason) and :data:`~.schema.RAW` (the line,
    decoded with U+FFFD for undecodable bytes and NULs). The validators
    (:func:`~.schema.validate_transactions`, :func:`~.schema.check_customers`)
    turn them into reject rows and drop the reserved columns. Every good line
    is kept. A value that does not fit the file's decimal comma is flagged
    the same way with its column.
Row numbers
    Every row of a CSV carries :data:`~.schema.LINE`: its 1-based line number
    in the file as an editor shows it (the header is line 1, blank lines
    count but give no row). The rejects' ``row`` is the 0-based position of
    the row among the file's rows (blank lines skipped), the same in every
    path; ``line`` is the line number. One line is one row: a line break
    inside a quoted value is not supported (the two halves are rejected as
    unbalanced quotes).
A file that is not a table is one :class:`~nextbest.errors.SchemaError`
    An empty file, a binary file (Parquet, ZIP/xlsx, old Excel, PDF, gzip
    without ``.gz``, UTF-16, or mostly control bytes), a header with no
    rows, no line break in the first MiB, a mapped column that is not in
    the file, and (from the validators) a file with none of the required
    columns.
Spreadsheet exports
    Detected from the first MiB unless given (:class:`ReadOptions`, the CLI's
    ``--csv-sep``, ``--decimal``, ``--encoding``, ``--date-format``):
    separator (``,`` ``;`` tab ``|``), decimal mark of ``amount``
    (``12,50``, ``1.234,50``; :func:`~.values.detect_decimal`), encoding
    (UTF-8, with or without BOM; otherwise Windows-1252, or Latin-1 if the
    bytes are not Windows-1252; a file that is ASCII in its first MiB is
    decided at its first non-ASCII block), CRLF or CR line ends, and the day
    / month order of ``timestamp`` (``DD.MM.YYYY``, with or without a time;
    :func:`~.values.detect_date_format` raises rather than guess). Amounts
    with a decimal comma and day-month dates are turned into canonical text
    (``1234.5``, ``2017-04-03 10:15:00``) as they are read, so the validator
    sees one format. :attr:`ReadInfo.summary` says what was used.
Ids exactly as given
    Every CSV column is read as text: ``00042`` stays ``00042``, ``1e5``
    stays ``1e5``, case, inner spaces and non-ASCII letters are kept. In
    Parquet, id columns (:data:`ID_COLUMNS`) are turned into text: integers
    as their decimal string, integral floats likewise (``42.0`` -> ``"42"``).
    Surrounding whitespace is *not* removed here; the validators remove it
    (and the batch job's hashing does the same), so ``" 42 "`` and ``"42"``
    are one customer. Cells equal to one of :data:`NA_STRINGS` (pandas'
    defaults: empty, ``NA``, ``NULL``, ``nan``...) are missing, ids included.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nextbest.data.schema import ISSUE, LINE, RAW, WHOLE_LINE, issue_text
from nextbest.data.values import (
    MISSING_AMOUNT,
    DateFormat,
    canonical_dates,
    detect_date_format,
    detect_decimal,
    parse_amounts,
)
from nextbest.errors import SchemaError

BLOCK_BYTES = 1 << 24  # CSV bytes parsed at a time (one record batch)
SAMPLE_BYTES = 1 << 20  # bytes looked at to detect the dialect
SAMPLE_LINES = 20_000
ID_COLUMNS: tuple[str, ...] = ("customer_id", "order_id", "offer_id")
AMOUNT_COLUMNS: tuple[str, ...] = ("amount",)
DATE_COLUMNS: tuple[str, ...] = ("timestamp",)
SEPARATORS = (",", ";", "\t", "|")
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

MORE_FIELDS = "ragged line: more fields than the header"
FEWER_FIELDS = "ragged line: fewer fields than the header"
BAD_QUOTE = "unbalanced or misplaced quote"
NUL_BYTE = "NUL byte in the line"
STRAY_CR = "carriage return inside the line"

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
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


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


# -- opening ----------------------------------------------------------------------------------
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


def open_table(
    path: str | Path, mapping: dict[str, str] | None = None, options: ReadOptions | None = None
) -> Table:
    """Open ``path`` and work out its columns and dialect (nothing but the first MiB is read).

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.txt``, ``.tsv``, ``.csv.gz``, ``.parquet``, ``.pq`` or a
        directory of Parquet files.
    mapping : dict, optional
        Source column -> schema column renames (``--map``).
    options : ReadOptions, optional
        Separator, decimal mark, encoding, date format; detected when not given.

    Raises
    ------
    SchemaError
        If the file is missing, of an unsupported type, or not a table (see
        the module docstring), or a mapped column is not in it.
    """
    path = Path(path)
    if not path.exists():
        raise SchemaError(f"file not found: {path}")
    options = options or ReadOptions()
    mapping = dict(mapping or {})
    if file_kind(path) == "parquet":
        return ParquetTable(path, mapping, options)
    return CsvTable(path, mapping, options)


def read_frame(
    path: str | Path, mapping: dict[str, str] | None = None, options: ReadOptions | None = None
) -> tuple[pd.DataFrame, ReadInfo]:
    """The whole file as one frame (CSV: every column text, plus the reserved columns) and how it
    was read."""
    table = open_table(path, mapping, options)
    return table.read(), table.info


def _rename(names: list[str], mapping: dict[str, str], path: Path) -> list[str]:
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


# -- Parquet ----------------------------------------------------------------------------------
class ParquetTable(Table):
    """Parquet: typed columns as stored, id columns as text, renamed by the mapping."""

    def __init__(self, path: Path, mapping: dict[str, str], options: ReadOptions):
        import pyarrow.dataset as ds

        self.path, self.options = path, options
        try:
            self._dataset = ds.dataset(path, format="parquet")
        except (pa.ArrowInvalid, OSError) as exc:
            raise SchemaError(f"{path}: not a readable Parquet file ({exc})") from None
        # pandas' stored index (df.to_parquet with an index) is not data: as pd.read_parquet
        self._names = [n for n in self._dataset.schema.names if not _PANDAS_INDEX.fullmatch(n)]
        self.columns = _rename(self._names, mapping, path)
        self.info = ReadInfo(
            str(path),
            "parquet",
            decimal=options.decimal or ".",
            date_format=DateFormat.parse(options.date_format) if options.date_format else None,
        )

    def n_rows(self) -> int:
        return int(self._dataset.count_rows())

    def batches(self, batch_rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
        self.info.n_rows = self.info.n_rejected = 0
        for batch in self._dataset.to_batches(columns=self._names, batch_size=batch_rows):
            if not batch.num_rows:
                continue
            batch = decode_dictionaries(batch).rename_columns(self.columns)
            batch = _ids_as_text(batch)
            batch = _canonical(batch, self.info)
            self.info.n_rows += batch.num_rows
            yield batch

    def _empty(self) -> pd.DataFrame:
        return _ids_as_text(
            self._dataset.schema.empty_table().select(self._names).rename_columns(self.columns)
        ).to_pandas()


def decode_dictionaries(batch):
    """Dictionary-encoded (pandas categorical) columns decoded: every batch has the same schema."""
    if not any(pa.types.is_dictionary(t) for t in batch.schema.types):
        return batch
    cols = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def _ids_as_text(batch):
    """Id columns as text: integers (and integral floats) as their decimal string."""
    names = batch.schema.names
    cols = list(batch.columns)
    changed = False
    for i, name in enumerate(names):
        t = cols[i].type
        if name not in ID_COLUMNS or pa.types.is_string(t) or pa.types.is_large_string(t):
            continue
        col = cols[i]
        if pa.types.is_floating(t):
            valid = pc.drop_null(col)
            integral = len(valid) == 0 or pc.all(pc.equal(pc.floor(valid), valid)).as_py()
            if integral and pc.all(pc.less(pc.abs(valid), 2.0**63)).as_py() in (True, None):
                col = col.cast(pa.int64())
        try:
            cols[i] = col.cast(pa.string())
            changed = True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    if not changed:
        return batch
    if isinstance(batch, pa.Table):
        return pa.Table.from_arrays(cols, names=names)
    return pa.RecordBatch.from_arrays(cols, names=names)


def _canonical(batch: pa.RecordBatch, info: ReadInfo) -> pa.RecordBatch:
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


# -- CSV --------------------------------------------------------------------------------------
def _open_binary(path: Path):
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


def _split(line: str, sep: str) -> list[str]:
    """Fields of one line as far as they go (for detection; never raises)."""
    try:
        return next(csv.reader([line], delimiter=sep), [])
    except csv.Error:
        return line.split(sep)


def _detect_sep(header: str, lines: list[str]) -> str:
    best, best_score = ",", None
    for sep in SEPARATORS:
        n = len(_split(header, sep))
        if n < 2:
            continue
        counts = [len(_split(line, sep)) for line in lines[:200]]
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


class CsvTable(Table):
    """A CSV file: dialect worked out from its first MiB, rows read block by block."""

    def __init__(self, path: Path, mapping: dict[str, str], options: ReadOptions):
        self.path, self.options = path, options
        with _open_binary(path) as fh:
            sample = fh.read(SAMPLE_BYTES)
            at_eof = not fh.read(1)
        why = _not_text(sample)
        if why:
            raise SchemaError(f"{path}: not a CSV table: the file is {why}")
        bom = sample.startswith(_BOM)
        body = sample[len(_BOM) :] if bom else sample
        if not body.strip():
            raise SchemaError(f"{path}: the file is empty")
        self._bare_cr = b"\n" not in body and b"\r" in body
        if self._bare_cr:
            body = body.replace(b"\r", b"\n")
        end = body.find(b"\n")
        if end < 0 and not at_eof:
            raise SchemaError(f"{path}: not a CSV table: no line break in the first MiB")
        header = (body if end < 0 else body[:end]).rstrip(b"\r")
        self._skip = (len(_BOM) if bom else 0) + (len(body) if end < 0 else end + 1)
        detected = []
        encoding = options.encoding
        if encoding is None:
            cut = body.rfind(b"\n")
            encoding = "utf-8" if bom else guess_encoding(body if at_eof or cut < 0 else body[:cut])
            detected.append("encoding")
        self._encoding = encoding
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
        raw_names = _header_names(_split(header_text, sep))
        self.columns = _rename(raw_names, mapping, path)
        self.n_fields = len(raw_names)
        cells = [_split(line, sep) for line in lines if '"' in line or sep in line]
        decimal, date_format = options.decimal, None
        if options.date_format is not None:
            date_format = DateFormat.parse(options.date_format)
        for role, names in (("decimal", AMOUNT_COLUMNS), ("date format", DATE_COLUMNS)):
            present = [c for c in names if c in self.columns]
            if (
                not present
                or (role == "decimal" and decimal)
                or (role != "decimal" and date_format)
            ):
                continue
            k = self.columns.index(present[0])
            sample_values = [r[k] for r in cells if len(r) == self.n_fields]
            try:
                if role == "decimal":
                    decimal = detect_decimal(sample_values)
                else:
                    date_format = detect_date_format(sample_values)
            except SchemaError as exc:
                raise SchemaError(f"{path}: {exc}") from None
            detected.append(role)
        self.info = ReadInfo(
            str(path),
            "csv",
            sep=sep,
            decimal=decimal or ".",
            encoding=encoding,
            bom=bom,
            line_end="CR"
            if self._bare_cr
            else "CRLF"
            if body[: end + 1].endswith(b"\r\n")
            else "LF",
            date_format=date_format,
            detected=tuple(detected),
        )
        self._id_pos = self.columns.index("customer_id") if "customer_id" in self.columns else None
        placeholders = [f"f{i}" for i in range(self.n_fields)]
        self._placeholders = placeholders
        self._schema = pa.schema(
            [pa.field(c, pa.string()) for c in self.columns]
            + [pa.field(LINE, pa.int64()), pa.field(ISSUE, pa.string()), pa.field(RAW, pa.string())]
        )

    def _empty(self) -> pd.DataFrame:
        return self._schema.empty_table().to_pandas()

    # -- reading ----------------------------------------------------------------------------
    def blocks(self) -> Iterator[tuple[bytes, int]]:
        """(bytes of whole lines, line number of the first) after the header."""
        line_no = 2
        with _open_binary(self.path) as fh:
            fh.read(self._skip)
            carry = b""
            while True:
                chunk = fh.read(BLOCK_BYTES)
                if self._bare_cr:
                    chunk = chunk.replace(b"\r", b"\n")
                if not chunk:
                    if carry:
                        yield carry, line_no
                    return
                data = carry + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                block, carry = data[: cut + 1], data[cut + 1 :]
                yield block, line_no
                line_no += block.count(b"\n")

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Record batches with the mapped columns (text) and :data:`LINE`, :data:`ISSUE`,
        :data:`RAW`, in file order."""
        self.info.n_rows = self.info.n_rejected = 0
        self._encoding_now = self._encoding
        for block, first in self.blocks():
            if self._encoding_now is None and not block.isascii():
                self._encoding_now = guess_encoding(block)  # ASCII so far: this block decides
            table = self._fast(block, first)
            if table is None:
                table = self._exact(block, first)
            for batch in table.to_batches():
                if batch.num_rows:
                    batch = _canonical(batch, self.info)
                    self.info.n_rows += batch.num_rows
                    yield batch
        self.info.encoding = self._encoding_now

    def _utf8(self, block: bytes) -> bytes | None:
        """``block`` as UTF-8, or ``None`` if some bytes are not in the encoding."""
        enc = self._encoding_now
        if enc in (None, "utf-8"):
            if block.isascii():
                return block
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                return None
            return block
        try:
            return block.decode(enc).encode("utf-8")
        except UnicodeDecodeError:
            return None

    def _parse(self, data: bytes, quoted: bool) -> tuple[pa.Table, bool]:
        """pyarrow's parser on ``data`` (UTF-8 lines); also says whether a row was ragged."""
        import pyarrow.csv as pcsv

        ragged = []

        def flag(row) -> str:
            ragged.append(row.number)
            return "skip"

        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(column_names=self._placeholders, use_threads=True),
            parse_options=pcsv.ParseOptions(
                delimiter=self.info.sep,
                quote_char='"' if quoted else False,
                invalid_row_handler=flag,
                ignore_empty_lines=True,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in self._placeholders},
                null_values=NA_STRINGS,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        return table, bool(ragged)

    def _fast(self, block: bytes, first: int) -> pa.Table | None:
        """The whole block at once when nothing in it needs a closer look, else ``None``."""
        if b"\x00" in block or b'"' in block:
            return None
        if b"\r" in block and not _only_crlf(block):
            return None
        data = self._utf8(block)
        if data is None:
            return None
        n = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        table, ragged = self._parse(data, quoted=False)
        if ragged or table.num_rows != n:  # fewer rows: blank lines, which shift line numbers
            return None
        return self._with_reserved(table, np.arange(first, first + n, dtype="int64"))

    def _with_reserved(self, table: pa.Table, lines: np.ndarray) -> pa.Table:
        n = table.num_rows
        cols = list(table.columns) + [
            pa.array(lines),
            pa.nulls(n, pa.string()),
            pa.nulls(n, pa.string()),
        ]
        return pa.Table.from_arrays(cols, schema=self._schema)

    def _exact(self, block: bytes, first: int) -> pa.Table:
        """Line by line: each line kept, or flagged with the reason it cannot be read."""
        enc = self._encoding_now or "utf-8"
        sep, n = self.info.sep, self.n_fields
        plain, plain_lines = [], []
        quoted, quoted_lines = [], []
        bad, bad_lines, bad_why = [], [], []
        lines = block.split(b"\n")
        if block.endswith(b"\n"):
            lines.pop()
        for i, raw in enumerate(lines):
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if not raw:
                continue
            why = NUL_BYTE if b"\x00" in raw else None
            try:
                text = raw.decode(enc)
            except UnicodeDecodeError:
                text = None
                why = why or f"undecodable bytes (not {enc})"
            if why is None and "\r" in text:
                why = STRAY_CR
            if why is None and '"' in text:
                try:
                    fields = next(csv.reader([text], delimiter=sep, strict=True))
                except csv.Error:
                    why = BAD_QUOTE
                else:
                    if len(fields) == n:
                        quoted.append(fields)
                        quoted_lines.append(first + i)
                        continue
                    why = MORE_FIELDS if len(fields) > n else FEWER_FIELDS
            elif why is None:
                k = text.count(sep) + 1
                if k == n:
                    plain.append(text)
                    plain_lines.append(first + i)
                    continue
                why = MORE_FIELDS if k > n else FEWER_FIELDS
            bad.append(raw.decode(enc, errors="replace").replace("\x00", "\ufffd"))
            bad_lines.append(first + i)
            bad_why.append(why)
        parts = []
        if plain:
            parts.append(
                self._with_reserved(self._plain_rows(plain), np.array(plain_lines, dtype="int64"))
            )
        if quoted:
            parts.append(
                self._with_reserved(_columns(quoted, n), np.array(quoted_lines, dtype="int64"))
            )
        if bad:
            parts.append(self._rejected(bad, bad_lines, bad_why))
            self.info.n_rejected += len(bad)
        if not parts:
            return self._schema.empty_table()
        table = pa.concat_tables(parts)
        if len(parts) > 1:
            order = np.argsort(table.column(LINE).to_numpy(), kind="stable")
            table = table.take(pa.array(order))
        return table

    def _plain_rows(self, texts: list[str]) -> pa.Table:
        """Unquoted lines with the right number of fields: pyarrow in bulk (str.split if it
        disagrees)."""
        table, ragged = self._parse(("\n".join(texts) + "\n").encode("utf-8"), quoted=False)
        if ragged or table.num_rows != len(texts):
            table = _columns([t.split(self.info.sep) for t in texts], self.n_fields)
        return table

    def _rejected(self, raws: list[str], lines: list[int], why: list[str]) -> pa.Table:
        m = len(raws)
        cols = [pa.nulls(m, pa.string()) for _ in self.columns]
        if self._id_pos is not None:  # a ragged line still says which customer it was about
            ids = []
            for raw, w in zip(raws, why):
                fields = _split(raw, self.info.sep) if w in (MORE_FIELDS, FEWER_FIELDS) else []
                v = fields[self._id_pos] if len(fields) > self._id_pos else None
                ids.append(None if v is None or v in _NA else v)
            cols[self._id_pos] = pa.array(ids, type=pa.string())
        cols += [
            pa.array(lines, type=pa.int64()),
            pa.array([issue_text(WHOLE_LINE, w) for w in why], type=pa.string()),
            pa.array(raws, type=pa.string()),
        ]
        return pa.Table.from_arrays(cols, schema=self._schema)


def _only_crlf(block: bytes) -> bool:
    """Is every carriage return in ``block`` the end of a CRLF line end?"""
    data = np.frombuffer(block, dtype=np.uint8)
    cr = np.flatnonzero(data == 13)
    return bool(len(cr) and cr[-1] + 1 < len(data) and (data[cr + 1] == 10).all())


def _columns(rows: list[list[str]], n: int) -> pa.Table:
    """Rows of text fields as a table of ``n`` string columns (NA strings as missing)."""
    cols = [[None if r[j] in _NA else r[j] for r in rows] for j in range(n)]
    return pa.Table.from_arrays(
        [pa.array(c, type=pa.string()) for c in cols], names=[f"f{j}" for j in range(n)]
    )


__all__ = [
    "ID_COLUMNS",
    "NA_STRINGS",
    "CsvTable",
    "ParquetTable",
    "ReadInfo",
    "ReadOptions",
    "Table",
    "file_kind",
    "guess_encoding",
    "open_table",
    "read_frame",
]
