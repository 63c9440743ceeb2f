"""The user's own transaction and customer files (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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


def read_table(path: str | Path, mapping: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file and rename columns with ``mapping`` (source -> schema).

    CSV columns are read as text so that ids keep leading zeros and bad values
    reach the validator (which names them) instead of failing here.
    """
    path = Path(path)
    if not path.exists():
        raise SchemaError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif suffix in (".csv", ".txt", ".gz"):
        frame = pd.read_csv(path, dtype=str, keep_default_na=True)
    else:
        raise SchemaError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    if mapping:
        missing = [c for c in mapping if c not in frame.columns]
        if missing:
            raise SchemaError(
                f"{path}: mapped column(s) {missing} not in file; found {list(frame.columns)}"
            )
        frame = frame.rename(columns=mapping)
    return frame
