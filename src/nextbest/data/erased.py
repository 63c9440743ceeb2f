"""Customers who were forgotten (GDPR Art. 17): a salted-hash tombstone list under the home.

``nextbest customer forget ID`` erases a customer everywhere and adds the
salted SHA-256 of the id to ``NEXTBEST_HOME/erased/tombstones.json`` (the
event store keeps its own list too). The one transactions validator
(:func:`nextbest.data.schema.validate_transactions`) asks :func:`erased_mask`
about every id it sees, so a later import of an old file - by ``train``,
``score``, ``evaluate`` or ``/predict_features`` - does not bring the
customer back: their lines are rejected with reason :data:`ERASED_REASON`,
and the rejects keep an empty value instead of the id (:func:`blank_erased`).

The file holds only the salt (random, made with the list) and the hashes;
no id can be read back from it. Reads are cached by file modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.config import Paths, settings

ERASED_REASON = "erased: this customer was forgotten"
TOMBSTONE_FILE = "tombstones.json"
_cache: dict[str, tuple[tuple[int, int], str, frozenset[str]]] = {}


def tombstone_path(paths: Paths | None = None) -> Path:
    """``NEXTBEST_HOME/erased/tombstones.json``."""
    return (paths or settings().paths).root / "erased" / TOMBSTONE_FILE


def salted_hash(salt: str, customer_id: str) -> str:
    """SHA-256 of the salt and the id (64 hex characters)."""
    return hashlib.sha256(f"{salt}\x00{customer_id}".encode()).hexdigest()


def _load(path: Path) -> tuple[str, frozenset[str]]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return "", frozenset()
    key = (st.st_mtime_ns, st.st_size)
    hit = _cache.get(str(path))
    if hit is not None and hit[0] == key:
        return hit[1], hit[2]
    data = json.loads(path.read_text())
    salt, hashes = str(data["salt"]), frozenset(data.get("hashes", ()))
    _cache[str(path)] = (key, salt, hashes)
    return salt, hashes


def add_tombstone(customer_id: str, paths: Paths | None = None) -> bool:
    """Add ``customer_id``'s salted hash to the list (created with a new salt if missing).

    Returns True if the id was not listed yet. The file is replaced atomically.
    """
    path = tombstone_path(paths)
    salt, hashes = _load(path)
    salt = salt or os.urandom(32).hex()
    digest = salted_hash(salt, customer_id)
    if digest in hashes:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"salt": salt, "hashes": sorted(hashes | {digest})}, indent=0))
    tmp.replace(path)
    return True


def is_erased(customer_id: str, paths: Paths | None = None) -> bool:
    """Whether ``customer_id`` is on the tombstone list."""
    salt, hashes = _load(tombstone_path(paths))
    return bool(hashes) and salted_hash(salt, customer_id) in hashes


def erased_mask(customer_ids: pd.Series, paths: Paths | None = None) -> np.ndarray:
    """Boolean per row: the (normalised, text) id is on the tombstone list.

    Costs one ``stat`` when nobody was forgotten; else one hash per distinct id.
    """
    salt, hashes = _load(tombstone_path(paths))
    if not hashes or len(customer_ids) == 0:
        return np.zeros(len(customer_ids), dtype=bool)
    codes, uniques = pd.factorize(customer_ids.astype(str))
    hit = np.array([salted_hash(salt, u) in hashes for u in uniques], dtype=bool)
    return hit[codes] if len(hit) else np.zeros(len(customer_ids), dtype=bool)


def blank_erased(rejects: pd.DataFrame) -> pd.DataFrame:
    """Rejects with the id removed from rows rejected as erased (``value`` and ``customer_id``)."""
    if rejects.empty or "reason" not in rejects.columns:
        return rejects
    gone = (rejects["reason"] == ERASED_REASON).to_numpy()
    if not gone.any():
        return rejects
    out = rejects.copy()
    for col in ("value", "customer_id"):
        if col in out.columns:
            out[col] = out[col].astype(object)
            out.loc[gone, col] = ""
    return out
