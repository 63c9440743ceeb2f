"""Precomputed decisions for every snapshot customer, stored compactly and looked up by id.

"Decide before the customer asks": at load time every snapshot row goes
through :func:`nextbest.scoring.score` (in chunks); the rows are kept here as
columnar numpy arrays, so answering a request is a binary search plus
building one small dict - no model work.

Memory per customer (top-k = 3): 40 bytes of scores (float64, exactly the
batch values), 57 bytes of offers (int16 index, int8 channel, two float64 per offer), 5
bytes of codes and flags, 8 bytes of propensity, the id (fixed-width bytes, the longest id sets the
width) and the reasons as UTF-8 JSON in one shared buffer with int64 offsets
(~100-200 bytes). About 0.3 GB for 1M customers; Python objects are created
only for the rows a request asks for.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.decision.experiment import GROUPS
from nextbest.decision.policy import ACTIONS
from nextbest.scoring import MODEL_SCORE_COLUMNS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecisionTable:
    """Columnar ``score()`` rows sorted by ``customer_id`` (see the module docstring)."""

    ids: np.ndarray  # (n,) fixed-width UTF-8 bytes, sorted
    scores: np.ndarray  # (n, 5) float64 in MODEL_SCORE_COLUMNS order, NaN = not scored
    action: np.ndarray  # (n,) uint8 index into ACTIONS
    action_offer: np.ndarray  # (n,) int16 index into offer_ids, -1 = none
    offer_index: np.ndarray  # (n, k) int16 index into offer_ids, -1 = none
    offer_p: np.ndarray  # (n, k) float64
    offer_ev: np.ndarray  # (n, k) float64
    offer_channel: np.ndarray  # (n, k) int8 index into channels, -1 = none
    consent: np.ndarray  # (n,) bool
    channel: np.ndarray  # (n,) int8 index into channels, -1 = nothing sent
    group: np.ndarray  # (n,) uint8 index into GROUPS
    propensity: np.ndarray  # (n,) float64: P(chosen arm | policy)
    reasons: bytes | bytearray  # concatenated JSON arrays of {code, text} (never modified)
    reason_offsets: np.ndarray  # (n + 1,) int64
    offer_ids: tuple[str, ...]
    offer_categories: tuple[str, ...]
    channels: tuple[str, ...] = ()
    model_versions: dict[str, str] = field(default_factory=dict)
    as_of: dt.date | None = None
    horizon_days: float = 365.0

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays and the reasons buffer."""
        arrays = (
            self.ids,
            self.scores,
            self.action,
            self.action_offer,
            self.offer_index,
            self.offer_p,
            self.offer_ev,
            self.offer_channel,
            self.consent,
            self.channel,
            self.group,
            self.propensity,
            self.reason_offsets,
        )
        return int(sum(a.nbytes for a in arrays) + len(self.reasons))

    def find(self, customer_id: str) -> int:
        """Row of ``customer_id``, or -1 if it is not in the snapshot."""
        key = customer_id.encode("utf-8")
        if not key or len(key) > self.ids.dtype.itemsize or b"\x00" in key:
            return -1
        i = int(np.searchsorted(self.ids, key))
        return i if i < len(self.ids) and self.ids[i] == key else -1

    def find_many(self, customer_ids: list[str]) -> np.ndarray:
        """Rows of ``customer_ids`` (int64, -1 where unknown), one vectorised search."""
        width = self.ids.dtype.itemsize
        keys = [c.encode("utf-8") for c in customer_ids]
        valid = np.array([0 < len(k) <= width and b"\x00" not in k for k in keys], dtype=bool)
        out = np.full(len(keys), -1, dtype=np.int64)
        if not valid.any() or not len(self.ids):
            return out
        probe = np.array([k for k, v in zip(keys, valid) if v], dtype=self.ids.dtype)
        pos = np.searchsorted(self.ids, probe)
        hit = pos < len(self.ids)
        hit[hit] = self.ids[pos[hit]] == probe[hit]
        out[np.flatnonzero(valid)] = np.where(hit, pos, -1)
        return out

    def row(self, i: int) -> dict:
        """The ``score()`` row ``i`` as JSON-ready Python values (NaN -> ``None``)."""
        s = self.scores[i].tolist()
        offers = []
        for j, p, ev, c in zip(
            self.offer_index[i].tolist(),
            self.offer_p[i].tolist(),
            self.offer_ev[i].tolist(),
            self.offer_channel[i].tolist(),
        ):
            if j < 0:
                break
            offers.append(
                {
                    "offer_id": self.offer_ids[j],
                    "category": self.offer_categories[j],
                    "p_convert": p,
                    "expected_value": ev,
                    "channel": self.channels[c] if c >= 0 else None,
                }
            )
        a = int(self.action_offer[i])
        start, end = self.reason_offsets[i], self.reason_offsets[i + 1]
        out = {"customer_id": self.ids[i].decode("utf-8")}
        out.update({c: (None if v != v else v) for c, v in zip(MODEL_SCORE_COLUMNS, s)})
        out.update(
            action=ACTIONS[self.action[i]],
            action_offer_id=self.offer_ids[a] if a >= 0 else None,
            offers=offers,
            reasons=json.loads(self.reasons[start:end]),
            model_versions=self.model_versions,
            consent_profiling=bool(self.consent[i]),
            as_of=self.as_of,
            horizon_days=self.horizon_days,
            channel=self.channels[self.channel[i]] if self.channel[i] >= 0 else None,
            group=GROUPS[self.group[i]],
            propensity=float(self.propensity[i]),
        )
        return out


class DecisionTableBuilder:
    """Fill a :class:`DecisionTable` from ``score()`` frames, one chunk at a time.

    Parameters
    ----------
    n : int
        Upper bound on the number of rows (the snapshot's row count).
    offer_ids, offer_categories : sequence of str
        Every offer id an ``offers`` list or ``action_offer_id`` may name
        (catalog offers, retention offer, default action).
    top_k : int
        Offers kept per customer.
    """

    def __init__(
        self,
        n: int,
        offer_ids,
        offer_categories,
        top_k: int,
        max_id_chars: int,
        channels: tuple[str, ...] = (),
    ) -> None:
        self.channels = tuple(channels)
        self.offer_ids = tuple(offer_ids)
        self.offer_categories = tuple(offer_categories)
        self._code = {o: i for i, o in enumerate(self.offer_ids)}
        self._action_code = {a: i for i, a in enumerate(ACTIONS)}
        self.k = int(top_k)
        self.max_id_chars = int(max_id_chars)
        self.n = 0
        self.skipped = 0
        self._ids: list[np.ndarray] = []
        self.scores = np.full((n, len(MODEL_SCORE_COLUMNS)), np.nan)
        self.action = np.zeros(n, dtype=np.uint8)
        self.action_offer = np.full(n, -1, dtype=np.int16)
        self.offer_index = np.full((n, self.k), -1, dtype=np.int16)
        self.offer_p = np.full((n, self.k), np.nan)
        self.offer_ev = np.full((n, self.k), np.nan)
        self.offer_channel = np.full((n, self.k), -1, dtype=np.int8)
        self.consent = np.zeros(n, dtype=bool)
        self.channel = np.full(n, -1, dtype=np.int8)
        self.group = np.zeros(n, dtype=np.uint8)
        self.propensity = np.ones(n)
        self.reasons = bytearray()
        self.reason_offsets = np.zeros(n + 1, dtype=np.int64)

    def add(self, scored: pd.DataFrame) -> None:
        """Append the rows of one ``score()`` output frame."""
        ids = scored["customer_id"].astype(str)
        ok = (
            (ids.str.len() <= self.max_id_chars)
            & (ids.str.len() > 0)
            & ~ids.str.contains("\x00", regex=False)
        ).to_numpy()
        if not ok.all():
            self.skipped += int((~ok).sum())
            log.warning(
                "skipping %d snapshot id(s) longer than %d characters or containing NUL "
                "(no request can name them)",
                int((~ok).sum()),
                self.max_id_chars,
            )
            scored, ids = scored[ok], ids[ok]
        m = len(scored)
        lo, hi = self.n, self.n + m
        self._ids.append(np.char.encode(ids.to_numpy(dtype=str), "utf-8"))
        self.scores[lo:hi] = scored[list(MODEL_SCORE_COLUMNS)].to_numpy(dtype="float64")
        self.action[lo:hi] = [self._action_code[a] for a in scored["action"]]
        self.action_offer[lo:hi] = [
            self._code[o] if isinstance(o, str) else -1 for o in scored["action_offer_id"]
        ]
        self.consent[lo:hi] = scored["consent_profiling"].to_numpy(dtype=bool)
        if "channel" in scored.columns:
            code = {c: i for i, c in enumerate(self.channels)}
            self.channel[lo:hi] = [code.get(c, -1) for c in scored["channel"]]
        if "group" in scored.columns:
            self.group[lo:hi] = [GROUPS.index(g) for g in scored["group"]]
            self.propensity[lo:hi] = scored["propensity"].to_numpy(dtype="float64")
        channel_code = {c: i for i, c in enumerate(self.channels)}
        for r, offers in enumerate(scored["offers"], start=lo):
            for j, o in enumerate(offers[: self.k]):
                self.offer_index[r, j] = self._code[o["offer_id"]]
                self.offer_p[r, j] = o["p_convert"]
                self.offer_ev[r, j] = o["expected_value"]
                self.offer_channel[r, j] = channel_code.get(o.get("channel"), -1)
        offsets = self.reason_offsets
        for r, reasons in enumerate(scored["reasons"], start=lo):
            self.reasons += json.dumps(reasons, separators=(",", ":")).encode("utf-8")
            offsets[r + 1] = len(self.reasons)
        self.n = hi

    def finish(self, model_versions: dict[str, str], as_of, horizon_days: float) -> DecisionTable:
        """The table, sorted by id (arrays trimmed to the rows added)."""
        n = self.n
        ids = np.concatenate(self._ids) if self._ids else np.zeros(0, dtype="S1")
        self._ids.clear()
        order = (
            None if n < 2 or bool(np.all(ids[:-1] <= ids[1:])) else np.argsort(ids, kind="stable")
        )
        starts, ends = self.reason_offsets[:n], self.reason_offsets[1 : n + 1]
        reasons = self.reasons  # kept as is: a bytes() copy would double it for a moment
        offsets = self.reason_offsets[: n + 1]
        if order is not None:
            ids = ids[order]
            parts = [reasons[s:e] for s, e in zip(starts[order].tolist(), ends[order].tolist())]
            reasons = b"".join(parts)
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum([len(p) for p in parts], out=offsets[1:])

        def take(a: np.ndarray) -> np.ndarray:
            if order is not None:
                return np.ascontiguousarray(a[:n][order])
            return a if len(a) == n else a[:n].copy()

        return DecisionTable(
            ids=ids,
            scores=take(self.scores),
            action=take(self.action),
            action_offer=take(self.action_offer),
            offer_index=take(self.offer_index),
            offer_p=take(self.offer_p),
            offer_ev=take(self.offer_ev),
            offer_channel=take(self.offer_channel),
            consent=take(self.consent),
            channel=take(self.channel),
            group=take(self.group),
            propensity=take(self.propensity),
            reasons=reasons,
            reason_offsets=offsets,
            offer_ids=self.offer_ids,
            offer_categories=self.offer_categories,
            channels=self.channels,
            model_versions=dict(model_versions),
            as_of=pd.Timestamp(as_of).date() if as_of is not None else None,
            horizon_days=float(horizon_days),
        )
