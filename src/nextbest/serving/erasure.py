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
3. **Every file under** ``NEXTBEST_HOME`` that holds the customer, by format
   (a record is the customer's when its ``customer_id`` is the id; in a file
   without that column, when any text value is):

   * Parquet (snapshot, training transactions, contacts, rejects, scores of
     ``nextbest run``): the customer's rows are dropped and the file is
     rewritten atomically (a running service reloads the snapshot; it
     already answers 404 for the id from the erasure event on);
   * JSON lines (audit logs, rewritten in place under the audit writers'
     lock, so no line is lost) and CSV: the customer's lines and rows;
   * JSON (e.g. MLflow input examples of models logged before examples used
     synthetic ids): the customer's records;
   * logs and text: lines naming the id as a word;
   * HTML reports: table cells holding exactly the id become ``[erased]``;
   * batch work directories (``*.work`` and ``batch-work/``) are removed
     whole: a killed job must start again without ``--resume``;
   * any other file whose raw bytes still hold the id (binary files nextbest
     cannot rewrite; only for ids of at least :data:`MIN_GREP_BYTES` bytes,
     as a shorter one occurs in binary data by chance) is listed in
     :attr:`ForgetReport.left` and the command fails, so nothing is claimed
     that was not done.

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
from html import escape
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


MIN_GREP_BYTES = 6
"""Ids at least this long are also searched as raw bytes in files nextbest cannot parse (a
shorter id occurs by chance in binary data, so a hit would mean nothing)."""


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
    """Drop the rows of the customer (``customer_id`` column, else any text column equal to the
    id); return how many."""
    table = pq.read_table(path)
    names = ["customer_id"] if "customer_id" in table.column_names else table.column_names
    hit = None
    for name in names:
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


def _names_customer(obj, customer_id: str) -> bool:
    """A record of the customer: ``customer_id`` equal to the id (any value, without that key)."""
    if isinstance(obj, dict):
        if "customer_id" in obj:
            return obj["customer_id"] == customer_id
        return any(v == customer_id for v in obj.values())
    if isinstance(obj, list):
        return customer_id in obj
    return obj == customer_id


def _scrub_json(obj, customer_id: str) -> tuple[object, int]:
    """Records of the customer removed from every list (MLflow's ``{"columns", "data"}`` by the
    ``customer_id`` column); returns the new object and how many records went."""
    if isinstance(obj, dict):
        columns, data = obj.get("columns"), obj.get("data")
        if isinstance(columns, list) and "customer_id" in columns and isinstance(data, list):
            k = columns.index("customer_id")
            kept = [
                r for r in data if not (isinstance(r, list) and len(r) > k and r[k] == customer_id)
            ]
            return {**obj, "data": kept}, len(data) - len(kept)
        n, out = 0, {}
        for key, value in obj.items():
            out[key], m = _scrub_json(value, customer_id)
            n += m
        return out, n
    if isinstance(obj, list):
        kept = [v for v in obj if not (isinstance(v, dict) and _names_customer(v, customer_id))]
        n, out = len(obj) - len(kept), []
        for value in kept:
            new, m = _scrub_json(value, customer_id)
            out.append(new)
            n += m
        return out, n
    return obj, 0


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
            return not _names_customer(json.loads(line), customer_id)
        except ValueError:
            return True

    return keep


def _token(customer_id: str) -> re.Pattern:
    return re.compile(r"(?<![\w.-])" + re.escape(customer_id) + r"(?![\w.-])")


def _csv(path: Path, customer_id: str) -> int:
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return 0
    k = rows[0].index("customer_id") if "customer_id" in rows[0] else None
    kept = [rows[0]] + [
        r
        for r in rows[1:]
        if not (r[k] == customer_id if k is not None and len(r) > k else customer_id in r)
    ]
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
    """Table cells holding exactly the id (a report's customer column) become ``[erased]``."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    cell = re.compile(r"(<td[^>]*>)\s*" + re.escape(escape(customer_id)) + r"\s*(</td>)")
    new, n = cell.subn(r"\g<1>" + ERASED_TEXT + r"\g<2>", text)
    if n:
        _atomic_text(path, new)
    return n


def _json(path: Path, customer_id: str) -> int:
    data = json.loads(path.read_text())
    new, n = _scrub_json(data, customer_id)
    if n:
        _atomic_text(path, json.dumps(new))
    return n


def _scrub_file(path: Path, customer_id: str, needle: bytes) -> tuple[str | None, bool]:
    """Erase the customer from one file by its format.

    Returns a description of what went (None: nothing) and whether the format
    was understood (else only a raw-byte search can tell if the id is there).
    """
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        n = _parquet(path, customer_id)
        return (f"{n} row(s)" if n else None), True
    known = name.endswith((".jsonl", ".ndjson", ".csv", ".json", ".html", ".htm", *_TEXT_SUFFIXES))
    if not known or not _holds(path, needle):
        return None, known
    if name.endswith((".jsonl", ".ndjson")):
        n = _rewrite_locked(path, _jsonl_keep(customer_id, needle))
        what = f"{n} line(s)"
    elif name.endswith(_TEXT_SUFFIXES):
        token = _token(customer_id)
        n = _rewrite_locked(path, lambda line: not token.search(line.decode("utf-8", "replace")))
        what = f"{n} line(s) naming the id"
    elif name.endswith(".csv"):
        n = _csv(path, customer_id)
        what = f"{n} row(s)"
    elif name.endswith(".json"):
        n = _json(path, customer_id)
        what = f"{n} record(s)"
    else:
        n = _html(path, customer_id)
        what = f"{n} table cell(s) replaced by {ERASED_TEXT}"
    return (what if n else None), True


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
    grep = len(needle) >= MIN_GREP_BYTES
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path in skip or path.name.endswith(".forget.tmp"):
            continue
        try:
            what, understood = _scrub_file(path, customer_id, needle)
        except (OSError, ValueError, pa.ArrowException) as exc:
            if grep and _holds(path, needle):
                report.left.append(f"{path} ({type(exc).__name__}: {exc})")
            continue
        if what is not None:
            report.files.append((str(path), what))
        if not understood and grep and _holds(path, needle):
            report.left.append(str(path))
    return report
