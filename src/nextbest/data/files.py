"""The user's own transaction and customer files (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nextbest.data.readers import ReadOptions, read_frame
from nextbest.errors import SchemaError


def parse_mapping(items: list[str] | None) -> dict[str, str]:
    """Parse ``["our_col=their_col", ...]`` into ``{their_col: our_col}`` for renaming.

    Raises
    ------
    SchemaError
        If an item has no ``=`` or maps a column twice.
    """
    mapping: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise SchemaError(f"column mapping {item!r} must look like customer_id=HouseholdKey")
        ours, theirs = (s.strip() for s in item.split("=", 1))
        if theirs in mapping:
            raise SchemaError(f"column mapping names source column {theirs!r} twice")
        mapping[theirs] = ours
    return mapping


def read_table(
    path: str | Path, mapping: dict[str, str] | None = None, options: ReadOptions | None = None
) -> pd.DataFrame:
    """Read a CSV or Parquet file with the one reader and rename columns with ``mapping``.

    The frame of :func:`nextbest.data.readers.read_frame` (use that to get
    the :class:`~nextbest.data.readers.ReadInfo` too): CSV columns are text
    so that ids keep leading zeros and bad values reach the validator (which
    names them); lines that cannot be read are rows flagged in the reserved
    columns, which :func:`~nextbest.data.schema.validate_transactions` and
    :func:`~nextbest.data.schema.check_customers` turn into rejects.

    Parameters
    ----------
    path : str or Path
    mapping : dict, optional
        Source column -> schema column renames.
    options : ReadOptions, optional
        Separator, decimal mark, encoding and date format (detected when not given).

    Raises
    ------
    SchemaError
        If the file is missing, of an unsupported type or not a table.
    """
    return read_frame(path, mapping, options)[0]
