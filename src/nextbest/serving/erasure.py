"""Erase one customer from everything nextbest holds (GDPR Art. 17): ``nextbest customer forget``.

What :func:`forget_customer` touches, in this order:

1. **The event store**: every event of the customer is deleted and a salted
   hash kept as a tombstone, so later appends of the id are rejected with
   reason ``erased`` (:meth:`~nextbest.events.store.EventStore.forget`; SQLite
   files are scrubbed, PostgreSQL needs ``VACUUM FULL``).
2. **The tombstone list** under ``NEXTBEST_HOME/erased`` (salted hashes only),
   which the transactions validator reads: a later ``train``, ``score`` or
   ``evaluate`` of an old file rejects the customer's lines with reason
   ``erased`` and an empty value.
3. **Every file under** ``NEXTBEST_HOME`` that holds the id, by format:

   * Parquet (snapshot, training transactions, contacts, rejects, scores of
     ``nextbest run``): rows with the id in any text column are dropped and
     the file is rewritten atomically (a running service reloads the
     snapshot; it already answers 404 for the id from the erasure event);
   * JSON lines (audit logs, under the audit writers' lock), CSV and logs:
     the lines or rows holding the id are dropped;
   * JSON (MLflow input examples of models logged before examples used
     synthetic ids): rows holding the id are dropped;
   * HTML reports: the id is replaced by ``[erased]``;
   * batch work directories (``*.work`` and ``batch-work/``) are removed
     whole: a killed job must start again without ``--resume``;
   * any other file that still holds the id's bytes (a binary file nextbest
     cannot rewrite) is listed in :attr:`ForgetReport.left` and the command
     fails, so nothing is claimed that was not done.

Files outside ``NEXTBEST_HOME`` (your transactions and customers files,
scores written with ``-o`` elsewhere, events files you ingested) are yours:
forget the customer there too, or the tombstone rejects their rows at the
next import.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nextbest.config import Paths
from nextbest.data.erased import add_tombstone, tombstone_path
from nextbest.data.history import ROW_GROUP
from nextbest.errors import InputError
from nextbest.events.store import EventStore

ERASED_TEXT = "[erased]"
_TEXT_SUFFIXES = (".log", ".txt", ".md", ".yaml", ".yml", ".tsv")
_CHUNK = 1 << 22


@dataclass
class ForgetReport:
    """What :func:`forget_customer` removed, file by file."""

    customer_id_hash: str = ""
    events: dict[str, int] = field(default_factory=dict)
    events_scrubbed: bool = True
    tombstoned: bool = False
    files: list[tuple[str, str]] = field(default_factory=list)
    removed_dirs: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.left


def _holds(path: Path, needle: bytes) -> bool:
    """Whether the raw bytes of ``path`` contain ``needle`` (read in chunks)."""
    tail = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if needle in tail + chunk:
                return True
            tail = chunk[-len(needle) :]
    return False


def _is_text_column(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _parquet(path: Path, customer_id: str) -> int:
    """Drop the rows holding the id in a text column; return how many."""
    table = pq.read_table(path)
    hit = None
    for name in table.column_names:
        col = table[name]
        if not _is_text_column(col.type):
            continue
        eq = pc.fill_null(pc.equal(col.cast(pa.string()), customer_id), False)
        hit = eq if hit is None else pc.or_(hit, eq)
    n = 0 if hit is None else int(pc.sum(hit).as_py() or 0)
    if n:
        kept = table.filter(pc.invert(hit))
        tmp = path.with_name(path.name + ".forget.tmp")
        pq.write_table(kept, tmp, row_group_size=ROW_GROUP)
        tmp.replace(path)
    return n


def _holds_value(obj, customer_id: str) -> bool:
    if isinstance(obj, dict):
        return any(_holds_value(v, customer_id) for v in obj.values())
    if isinstance(obj, list):
        return any(_holds_value(v, customer_id) for v in obj)
    return obj == customer_id


def _scrub_json(obj, customer_id: str):
    """Lists lose the items that hold the id; a lone value equal to it becomes ``[erased]``."""
    if isinstance(obj, dict):
        return {k: _scrub_json(v, customer_id) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub_json(v, customer_id) for v in obj if not _holds_row(v, customer_id)]
    return ERASED_TEXT if obj == customer_id else obj


def _holds_row(item, customer_id: str) -> bool:
    return isinstance(item, (dict, list)) and _holds_value(item, customer_id) or item == customer_id


def _rewrite_locked(path: Path, keep) -> int:
    """Rewrite a line-oriented file in place under an exclusive lock; return lines removed.

    The audit writers append with ``O_APPEND`` under the same lock, so no line
    is lost and none is half-written while the file is rewritten.
    """
    with path.open("r+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            lines = fh.read().splitlines(keepends=True)
            kept = [line for line in lines if keep(line)]
            if len(kept) != len(lines):
                fh.seek(0)
                fh.write(b"".join(kept))
                fh.truncate()
                fh.flush()
                os.fsync(fh.fileno())
            return len(lines) - len(kept)
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _jsonl_keep(customer_id: str, needle: bytes):
    def keep(line: bytes) -> bool:
        if needle not in line:
            return True
        try:
            return not _holds_value(json.loads(line), customer_id)
        except ValueError:
            return False  # a broken line that holds the id's bytes goes too

    return keep


def _csv(path: Path, customer_id: str) -> int:
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    kept = [r for r in rows if customer_id not in r]
    if len(kept) == len(rows):
        return 0
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(kept)
    _atomic_text(path, out.getvalue())
    return len(rows) - len(kept)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".forget.tmp")
    tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
    tmp.replace(path)


def _html(path: Path, customer_id: str) -> int:
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    pattern = re.compile(r"(?<![\w-])" + re.escape(customer_id) + r"(?![\w-])")
    new, n = pattern.subn(ERASED_TEXT, text)
    if n:
        _atomic_text(path, new)
    return n


def _json(path: Path, customer_id: str) -> int:
    data = json.loads(path.read_text())
    if not _holds_value(data, customer_id):
        return 0
    _atomic_text(path, json.dumps(_scrub_json(data, customer_id)))
    return 1


def _scrub_file(path: Path, customer_id: str, needle: bytes) -> str | None:
    """Erase the id from one file by its format; a description, or None if untouched."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        n = _parquet(path, customer_id)
        return f"{n} row(s)" if n else None
    if not _holds(path, needle):
        return None
    if name.endswith((".jsonl", ".ndjson")):
        n = _rewrite_locked(path, _jsonl_keep(customer_id, needle))
        return f"{n} line(s)"
    if name.endswith(_TEXT_SUFFIXES):
        n = _rewrite_locked(path, lambda line: needle not in line)
        return f"{n} line(s)"
    if name.endswith(".csv"):
        return f"{_csv(path, customer_id)} row(s)"
    if name.endswith(".json"):
        return f"{_json(path, customer_id)} document rewritten"
    if name.endswith((".html", ".htm")):
        return f"{_html(path, customer_id)} mention(s) replaced by {ERASED_TEXT}"
    return None


def _work_dirs(root: Path, paths: Paths) -> list[Path]:
    found = [p for p in root.rglob("*.work") if p.is_dir()]
    if paths.batch_work.is_dir():
        found += [p for p in paths.batch_work.iterdir()]
    return sorted(set(found))


def forget_customer(customer_id: str, paths: Paths, store: EventStore | None) -> ForgetReport:
    """Erase ``customer_id`` from the event store and every file under ``paths.root``.

    Parameters
    ----------
    customer_id : str
        The id exactly as stored.
    paths : Paths
        The home to clean (``NEXTBEST_HOME``).
    store : EventStore, optional
        The event store (None: there is none).

    Returns
    -------
    ForgetReport
        What was removed; :attr:`ForgetReport.left` lists files that still hold
        the id's bytes and could not be rewritten (then the erasure is incomplete).
    """
    if not customer_id or customer_id != customer_id.strip():
        raise InputError(f"customer id {customer_id!r}: give the id exactly as stored")
    report = ForgetReport()
    skip: set[Path] = {tombstone_path(paths)}
    if store is not None:
        result = store.forget(customer_id)
        report.events = result.removed
        report.events_scrubbed = result.scrubbed
        report.customer_id_hash = store.customer_hash(customer_id)
        db = getattr(store, "path", None)
        if db is not None:
            skip |= {Path(db), Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")}
    report.tombstoned = add_tombstone(customer_id, paths)
    root = paths.root
    for work in _work_dirs(root, paths):
        shutil.rmtree(work, ignore_errors=True) if work.is_dir() else work.unlink(missing_ok=True)
        report.removed_dirs.append(str(work))
    needle = customer_id.encode("utf-8")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path in skip or path.name.endswith(".forget.tmp"):
            continue
        try:
            what = _scrub_file(path, customer_id, needle)
        except (OSError, ValueError, pa.ArrowException) as exc:
            what, exc_text = None, f"{type(exc).__name__}: {exc}"
            if _holds(path, needle):
                report.left.append(f"{path} ({exc_text})")
            continue
        if what is not None:
            report.files.append((str(path), what))
        if _holds(path, needle):
            report.left.append(str(path))
    return report
