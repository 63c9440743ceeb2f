"""Per-customer files beside the serving snapshot: the training transactions and the contacts.

``nextbest train`` writes, next to ``features.parquet``:

* ``history.parquet``: the validated transaction lines the snapshot's
  features were built from (``customer_id``, ``timestamp`` and ``amount``,
  plus ``category``, ``order_id``, ``channel``, ``quantity`` where present),
  sorted by ``customer_id`` in row groups of :data:`ROW_GROUP` lines. The
  service rebuilds one customer's features from these lines and the purchase
  events that came after the snapshot; the data-access export lists them.
* ``contacts.parquet``: the contact events folded into the snapshot (a
  campaign log: ``customer_id``, ``offer_id``, ``timestamp``, ``group``,
  ``channel``), read as contact history for cooldowns and caps.

:class:`SortedParquet` finds one customer's rows of such a file (or of the
snapshot itself, also sorted by id) by reading only the row groups whose
``customer_id`` range holds the id: a few milliseconds, whatever the file
size, and nothing kept in memory but two id bounds per row group.
"""

from __future__ import annotations

import bisect
import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nextbest.config import Paths
from nextbest.data.campaign_log import CONTACT_OUTCOME

HISTORY_FILE = "history.parquet"
CONTACTS_FILE = "contacts.parquet"
ROW_GROUP = 4096
"""Rows per Parquet row group: one customer lookup reads about this many rows."""
HISTORY_COLUMNS = ("customer_id", "timestamp", "amount", "category", "order_id", "channel")
CONTACT_COLUMNS = ("customer_id", "offer_id", "timestamp", "group", "channel", "converted")


def history_files(paths: Paths) -> tuple[Path, Path]:
    """``(history.parquet, contacts.parquet)`` under ``paths.snapshots``."""
    return paths.snapshots / HISTORY_FILE, paths.snapshots / CONTACTS_FILE


def write_sorted(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` sorted by ``customer_id`` in small row groups, atomically."""
    rows = frame.sort_values(["customer_id"], kind="stable").reset_index(drop=True)
    rows["customer_id"] = rows["customer_id"].astype(str)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), tmp, row_group_size=ROW_GROUP)
    tmp.replace(path)
    return path


def write_history(
    transactions: pd.DataFrame, contacts: pd.DataFrame | None, paths: Paths
) -> tuple[Path, Path]:
    """Write the training transactions and the folded contacts beside the snapshot.

    Parameters
    ----------
    transactions : DataFrame
        Validated lines (the ones the snapshot's features were built from).
    contacts : DataFrame, optional
        A campaign log with ``contacted_at`` (event store frame) or ``timestamp``.
    """
    hist_path, contacts_path = history_files(paths)
    keep = [c for c in (*HISTORY_COLUMNS, "quantity") if c in transactions.columns]
    tx = transactions[keep].copy()
    for col in ("category", "order_id", "channel"):
        if col in tx.columns:
            tx[col] = tx[col].astype("string")
    write_sorted(tx, hist_path)
    log = contacts if contacts is not None else pd.DataFrame()
    if "contacted_at" in log.columns:
        log = log.rename(columns={"contacted_at": "timestamp"})
    out = pd.DataFrame(
        {c: log[c] if c in log.columns else pd.Series([], dtype=object) for c in CONTACT_COLUMNS}
    )
    out["timestamp"] = pd.to_datetime(out["timestamp"]).astype("datetime64[ns]")
    for col in ("offer_id", "group", "channel"):
        out[col] = out[col].astype("string")
    out["converted"] = pd.to_numeric(out["converted"], errors="coerce").astype("float64")
    write_sorted(out, contacts_path)
    return hist_path, contacts_path


def read_contacts(paths: Paths) -> pd.DataFrame | None:
    """The folded contacts as a contact history (``customer_id, offer_id, timestamp``,
    ``channel``, ``converted``), or None.

    Only contacts that were sent count for cooldowns and caps: rows of the
    ``control`` group (held out) and rows without an offer are left out.
    """
    path = history_files(paths)[1]
    if not path.exists():
        return None
    log = pd.read_parquet(path)
    sent = (log["group"].fillna("treatment") != "control") & (log["offer_id"].fillna("") != "")
    log = log[sent.to_numpy()]
    if log.empty:
        return None
    cols = ["customer_id", "offer_id", "timestamp"]
    return log[cols + [c for c in CONTACT_OUTCOME if c in log.columns]].reset_index(drop=True)


class SortedParquet:
    """Rows of one customer from a Parquet file sorted by ``customer_id``.

    Parameters
    ----------
    path : Path
        A file written sorted by ``customer_id`` (:func:`write_sorted`, the snapshot).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.file = pq.ParquetFile(self.path)
        self._lock = threading.Lock()  # one reader per file handle at a time
        meta = self.file.metadata
        col = self.file.schema_arrow.get_field_index("customer_id")
        self.columns = self.file.schema_arrow.names
        self._lo: list[str] = []
        self._hi: list[str] = []
        self._groups: list[int] = []
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(col).statistics
            if meta.row_group(g).num_rows == 0:
                continue
            if stats is None or not stats.has_min_max:
                self._lo, self._hi, self._groups = [], [], []  # unsorted or no stats: scan all
                self._groups = list(range(meta.num_row_groups))
                break
            self._lo.append(_text(stats.min))
            self._hi.append(_text(stats.max))
            self._groups.append(g)

    def _candidates(self, customer_id: str) -> list[int]:
        if not self._lo:
            return self._groups
        # Groups are sorted: the first whose upper bound >= id, then while lower bound <= id.
        start = bisect.bisect_left(self._hi, customer_id)
        out = []
        for k in range(start, len(self._groups)):
            if self._lo[k] > customer_id:
                break
            out.append(self._groups[k])
        return out

    def rows_many(self, customer_ids) -> pd.DataFrame:
        """Every row of any of ``customer_ids`` (each row group read once)."""
        wanted = sorted(set(customer_ids))
        groups = sorted({g for cid in wanted for g in self._candidates(cid)})
        if not groups:
            return self.file.schema_arrow.empty_table().to_pandas()
        with self._lock:
            table = self.file.read_row_groups(groups, use_threads=False)  # small reads: faster
        ids = table["customer_id"].cast(pa.string())
        return table.filter(pc.is_in(ids, value_set=pa.array(wanted, pa.string()))).to_pandas()

    def rows(self, customer_id: str) -> pd.DataFrame:
        """Every row of ``customer_id`` (an empty frame with the file's columns if none)."""
        groups = self._candidates(customer_id)
        if not groups:
            return self.file.schema_arrow.empty_table().to_pandas()
        with self._lock:
            table = self.file.read_row_groups(groups, use_threads=False)  # small reads: faster
        table = table.filter(pc.equal(table["customer_id"].cast(pa.string()), customer_id))
        return table.to_pandas()


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def open_sorted(path: Path) -> SortedParquet | None:
    """A :class:`SortedParquet` on ``path``, or None if the file does not exist."""
    return SortedParquet(path) if Path(path).exists() else None
