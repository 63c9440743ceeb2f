"""CSV rows, block by block: a fast path for clean blocks, an exact path line by line for the rest.

A block (about :data:`BLOCK_BYTES` of whole lines) with no NUL byte, no
quote, no stray carriage return and nothing outside the encoding is parsed by
pyarrow at once; if pyarrow finds as many rows as the block has lines and no
ragged one, that is the answer. Otherwise each line of the block is looked
at: unquoted lines are counted by separators, quoted ones parsed by
:mod:`csv` (strict), and every line that cannot be read becomes a flagged
row (see :mod:`nextbest.data.readers`). Either way each row carries its
line number.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from nextbest.data.readers.base import (
    NA_STRINGS,
    ReadOptions,
    Table,
    canonical_values,
)
from nextbest.data.readers.sniff import guess_encoding, open_binary, sniff, split_fields
from nextbest.data.schema import ISSUE, LINE, RAW, WHOLE_LINE, issue_text

BLOCK_BYTES = 1 << 24  # CSV bytes parsed at a time (one record batch)
MORE_FIELDS = "ragged line: more fields than the header"
FEWER_FIELDS = "ragged line: fewer fields than the header"
BAD_QUOTE = "unbalanced or misplaced quote"
NUL_BYTE = "NUL byte in the line"
STRAY_CR = "carriage return inside the line"
_NA = frozenset(NA_STRINGS)


class CsvTable(Table):
    """A CSV file: dialect worked out from its first MiB, rows read block by block."""

    def __init__(self, path: Path, mapping: dict[str, str], options: ReadOptions):
        self.path, self.options = path, options
        dialect = sniff(path, mapping, options)
        self.info, self.columns = dialect.info, dialect.columns
        self.n_fields = len(dialect.raw_names)
        self._skip, self._bare_cr, self._encoding = dialect.skip, dialect.bare_cr, dialect.encoding
        self._encoding_now = self._encoding
        self._id_pos = self.columns.index("customer_id") if "customer_id" in self.columns else None
        self._placeholders = [f"f{i}" for i in range(self.n_fields)]
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
        with open_binary(self.path) as fh:
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
                    batch = canonical_values(batch, self.info)
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
                ragged = w in (MORE_FIELDS, FEWER_FIELDS)
                fields = split_fields(raw, self.info.sep) if ragged else []
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
