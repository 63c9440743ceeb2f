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
    consent") and whose reserved columns say why: :data:`~nextbest.data.schema.ISSUE`
    (column ``"(line)"`` and the reason) and :data:`~nextbest.data.schema.RAW` (the line,
    decoded with U+FFFD for undecodable bytes and NULs). The validators
    (:func:`~nextbest.data.schema.validate_transactions`,
    :func:`~nextbest.data.schema.check_customers`) turn them into reject rows
    and drop the reserved columns; :func:`split_flagged` does it for inputs no
    validator checks. Every good line
    is kept. A value that does not fit the file's decimal comma is flagged
    the same way with its column.
Row numbers
    Every row of a CSV carries :data:`~nextbest.data.schema.LINE`: its 1-based line number
    in the file as an editor shows it (the header is line 1, blank lines
    count but give no row). The rejects' ``row`` is the 0-based position of
    the row among the file's rows (blank lines skipped), the same in every
    path; ``line`` is the line number. One line is one row: a line break
    inside a quoted value is not supported (both halves are rejected, as an
    unbalanced quote or a ragged line).
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
    (``12,50``, ``1.234,50``; :func:`~nextbest.data.values.detect_decimal`), encoding
    (UTF-8, with or without BOM; otherwise Windows-1252, or Latin-1 if the
    bytes are not Windows-1252; a file that is ASCII in its first MiB is
    decided at its first non-ASCII block), CRLF or CR line ends, and the day
    / month order of ``timestamp`` (``DD.MM.YYYY``, with or without a time;
    :func:`~nextbest.data.values.detect_date_format` raises rather than guess). Amounts
    with a decimal comma and day-month dates are turned into canonical text
    (``1234.5``, ``2017-04-03 10:15``) as they are read, so the validator
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

from pathlib import Path

import pandas as pd

from nextbest.data.readers.base import (
    ID_COLUMNS,
    NA_STRINGS,
    ReadInfo,
    ReadOptions,
    Table,
    decode_dictionaries,
    file_kind,
)
from nextbest.data.readers.delimited import CsvTable
from nextbest.data.readers.parquet import ParquetTable
from nextbest.data.readers.sniff import guess_encoding
from nextbest.data.schema import ISSUE, LINE, RAW, RESERVED_COLUMNS, WHOLE_LINE, split_issue
from nextbest.errors import SchemaError

__all__ = [
    "ID_COLUMNS",
    "NA_STRINGS",
    "CsvTable",
    "ParquetTable",
    "ReadInfo",
    "ReadOptions",
    "Table",
    "decode_dictionaries",
    "file_kind",
    "guess_encoding",
    "open_table",
    "read_frame",
    "split_flagged",
]


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


def split_flagged(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For an input no validator checks (contact history, campaign log, events): the rows the
    reader could read, and the flagged ones as rejects.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The good rows without the reserved columns (index reset), and the
        flagged rows as ``row`` (0-based), ``line``, ``column``, ``value``,
        ``reason``.
    """
    reserved = [c for c in RESERVED_COLUMNS if c in frame.columns]
    flagged = frame[ISSUE].notna().to_numpy() if ISSUE in frame.columns else None
    good = frame if flagged is None else frame.loc[~flagged]
    good = good.drop(columns=reserved).reset_index(drop=True)
    rows = [] if flagged is None else flagged.nonzero()[0].tolist()
    issues = [split_issue(frame[ISSUE].iloc[i]) for i in rows]
    values = []
    for i, (column, _) in zip(rows, issues):
        source = RAW if column == WHOLE_LINE else column
        values.append(str(frame[source].iloc[i]) if source in frame.columns else "")
    rejects = pd.DataFrame(
        {
            "row": pd.Series(rows, dtype="int64"),
            "line": pd.Series(
                [frame[LINE].iloc[i] for i in rows] if LINE in frame else [None] * len(rows),
                dtype="Int64",
            ),
            "column": pd.Series([c for c, _ in issues], dtype=object),
            "value": pd.Series(values, dtype=object),
            "reason": pd.Series([r for _, r in issues], dtype=object),
        }
    )
    return good, rejects
