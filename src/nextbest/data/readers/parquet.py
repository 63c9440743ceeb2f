"""Parquet input: typed columns as stored, id columns as text, renamed by the mapping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nextbest.data.readers.base import (
    ID_COLUMNS,
    ReadInfo,
    ReadOptions,
    Table,
    canonical_values,
    decode_dictionaries,
    rename_columns,
)
from nextbest.data.values import DateFormat
from nextbest.errors import SchemaError

_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


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
        self.columns = rename_columns(self._names, mapping, path)
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
            batch = ids_as_text(batch)
            batch = canonical_values(batch, self.info)
            self.info.n_rows += batch.num_rows
            yield batch

    def _empty(self) -> pd.DataFrame:
        return ids_as_text(
            self._dataset.schema.empty_table().select(self._names).rename_columns(self.columns)
        ).to_pandas()


def ids_as_text(batch):
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
