"""Event ids assigned by the store, and the salted hash kept for an erased customer.

Assigned ids are ULIDs (https://github.com/ulid/spec): 26 characters of
Crockford base 32, a 48-bit millisecond time followed by 80 random bits.
They sort by creation time, so the store's unique index on ``event_id``
grows at its right edge (as fast as an integer key) instead of at random
places (as a UUID4 would). Within one process ids are monotone: a batch
continues from the previous one when the clock has not moved.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time

import numpy as np

EVENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
"""A valid ``event_id``: 1 to 64 characters of letters, digits, ``.``, ``_``, ``:`` and ``-``."""

_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)
_SHIFTS_40 = np.arange(35, -1, -5, dtype=np.uint64)  # 8 digits of 5 bits = 40 bits
_MASK_40 = (1 << 40) - 1
_lock = threading.Lock()
_last = {"ms": -1, "rand": 0}


def _encode(value: int, digits: int) -> bytes:
    out = bytearray(digits)
    for k in range(digits - 1, -1, -1):
        out[k] = _ALPHABET[value & 31]
        value >>= 5
    return bytes(out)


def _reserve(n: int) -> tuple[int, int]:
    """Reserve ``n`` consecutive (time, random) values; monotone within the process."""
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last["ms"]:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for the counter
        else:
            ms, rand = _last["ms"], _last["rand"] + 1
        if rand + n >= 1 << 80:  # counter exhausted within one millisecond: move time on
            ms, rand = ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
        _last["ms"], _last["rand"] = ms, rand + n - 1
    return ms, rand


def new_event_ids(n: int) -> list[str]:
    """``n`` new ULIDs, in increasing order.

    Parameters
    ----------
    n : int
        How many ids.

    Returns
    -------
    list of str
        26-character ids, each matching :data:`EVENT_ID_PATTERN`.
    """
    if n <= 0:
        return []
    ms, rand = _reserve(n)
    prefix = np.frombuffer(_encode(ms & ((1 << 48) - 1), 10), dtype=np.uint8)
    lo = np.uint64(rand & _MASK_40) + np.arange(n, dtype=np.uint64)
    hi = np.uint64(rand >> 40) + (lo >> np.uint64(40))
    lo &= np.uint64(_MASK_40)
    out = np.empty((n, 26), dtype=np.uint8)
    out[:, :10] = prefix
    out[:, 10:18] = _ALPHABET[((hi[:, None] >> _SHIFTS_40) & np.uint64(31)).astype(np.intp)]
    out[:, 18:] = _ALPHABET[((lo[:, None] >> _SHIFTS_40) & np.uint64(31)).astype(np.intp)]
    text = out.tobytes().decode("ascii")
    return [text[i : i + 26] for i in range(0, 26 * n, 26)]


def new_salt() -> str:
    """A fresh random salt (64 hex characters) for a new store."""
    return os.urandom(32).hex()


def customer_hash(salt: str, customer_id: str) -> str:
    """The salted SHA-256 of a customer id (64 hex characters), kept after erasure."""
    return hashlib.sha256(f"{salt}\x00{customer_id}".encode()).hexdigest()
