"""One immutable serving state (champions, snapshot metadata, precomputed decisions) and how to
build it.

A state is built completely (models loaded, every snapshot customer scored)
before anyone sees it; :class:`nextbest.serving.holder.StateHolder` then
swaps it in with one reference assignment. Requests take the current state
once and use only it, so a reload never mixes two model versions in one
answer and never fails a request.

Memory is bounded by reading the snapshot in chunks of
``ServiceSettings.score_chunk`` rows: at most one chunk of features and its
offer pairs exist at a time, next to the compact
:class:`~nextbest.serving.decisions.DecisionTable`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest import registry
from nextbest.data.files import read_table
from nextbest.data.history import SortedParquet, history_files, open_sorted, read_contacts
from nextbest.data.snapshot import read_snapshot, snapshot_files
from nextbest.decision.catalog import load_catalog
from nextbest.errors import NoSnapshotError
from nextbest.events.fold import merge_histories
from nextbest.scoring import ModelSet, score
from nextbest.serving.decisions import DecisionTable, DecisionTableBuilder
from nextbest.serving.schemas import MAX_ID_LENGTH
from nextbest.serving.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fingerprint:
    """What a state was built from: champion versions and the files' (name, mtime_ns, size)."""

    versions: tuple[tuple[str, str | None], ...]
    files: tuple[tuple[str, int, int], ...]


class ContactIndex:
    """A contact history sorted by customer, for one customer's rows in O(log n)."""

    def __init__(self, history: pd.DataFrame | None) -> None:
        if history is None or history.empty:
            self.frame, self.ids = None, np.zeros(0, dtype=object)
            return
        frame = history.assign(customer_id=history["customer_id"].astype(str))
        self.frame = frame.sort_values("customer_id", kind="stable").reset_index(drop=True)
        self.ids = self.frame["customer_id"].to_numpy(dtype=object)

    def rows(self, customer_id: str) -> pd.DataFrame | None:
        """The customer's contacts (``customer_id, offer_id, timestamp``), or None."""
        if self.frame is None:
            return None
        lo = int(np.searchsorted(self.ids, customer_id, side="left"))
        hi = int(np.searchsorted(self.ids, customer_id, side="right"))
        return self.frame.iloc[lo:hi].reset_index(drop=True) if hi > lo else None


@dataclass(frozen=True)
class ServingState:
    """Everything a request needs, built once and never modified.

    ``overlay`` (:class:`~nextbest.serving.overlay.Overlay`, set by the service)
    holds the customers changed by events after the snapshot; ``events_head``
    is the event store's head when training folded the events in;
    ``snapshot_rows`` and ``history`` find one customer's feature row and
    training transactions on disk.
    """

    bundle: ModelSet
    table: DecisionTable
    popularity: dict[str, float]
    as_of: pd.Timestamp
    horizon_days: float
    time_unit_days: float
    feature_dtypes: dict[str, object]
    attributes: tuple[str, ...]
    fingerprint: Fingerprint
    build_seconds: float
    contact_history: pd.DataFrame | None = None
    events_head: int = 0
    snapshot_rows: SortedParquet | None = None
    history: SortedParquet | None = None
    contact_index: ContactIndex | None = None
    overlay: Any = None

    @property
    def versions(self) -> dict[str, str]:
        return dict(self.bundle.versions)

    def contacts_of(self, customer_id: str) -> pd.DataFrame | None:
        """The customer's rows of the contact history (file and folded contacts), or None."""
        return None if self.contact_index is None else self.contact_index.rows(customer_id)


def _file_stats(settings: ServiceSettings) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in (
        *snapshot_files(settings.paths),
        *history_files(settings.paths),
        settings.catalog_path,
        settings.reload_marker,
        settings.contact_history,
    ):
        if path is None:
            continue
        try:
            st = Path(path).stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append((str(path), 0, -1))
    return tuple(out)


def current_fingerprint(settings: ServiceSettings) -> Fingerprint:
    """Champion versions in the registry and the snapshot/catalog/marker file stats, now."""
    registry.setup(settings.paths)
    versions = []
    for name in registry.MODEL_NAMES:
        mv = registry.champion_version(name)
        versions.append((name, None if mv is None else str(mv.version)))
    return Fingerprint(tuple(sorted(versions)), _file_stats(settings))


def offer_vocabulary(bundle: ModelSet) -> tuple[list[str], list[str]]:
    """Every offer id a decision may name (catalog, retention, default action) and its category."""
    cat = bundle.catalog
    ids = [o.offer_id for o in cat.offers]
    cats = [o.category for o in cat.offers]
    if cat.retention is not None:
        ids.append(cat.retention.offer_id)
        cats.append("")
    ids.append(cat.default_action.offer_id)
    cats.append("")
    return ids, cats


def decision_table(
    scored: Iterable[pd.DataFrame],
    n_rows: int,
    bundle: ModelSet,
    versions: dict[str, str],
    as_of,
    horizon_days: float,
) -> DecisionTable:
    """A :class:`DecisionTable` from ``score()`` frames (at most ``n_rows`` rows in all)."""
    ids, cats = offer_vocabulary(bundle)
    builder = DecisionTableBuilder(
        n_rows,
        ids,
        cats,
        int(bundle.catalog.policy["top_k"]),
        MAX_ID_LENGTH,
        bundle.catalog.channel_names,
    )
    for frame in scored:
        builder.add(frame)
    return builder.finish(versions, as_of, horizon_days)


def build_state(settings: ServiceSettings, attempts: int = 3) -> ServingState:
    """Load the champions and the snapshot and precompute every snapshot customer's decision.

    Retried (up to ``attempts`` times) when the snapshot files change while
    being read, so the features and their metadata always belong together.

    Raises
    ------
    LookupError
        If a champion or the snapshot is missing (run ``nextbest train``).
    """
    for attempt in range(1, attempts + 1):
        before = _file_stats(settings)
        state = _build_once(settings)
        if _file_stats(settings) == before:
            return state
        log.warning(
            "snapshot changed while loading (attempt %d/%d); loading again", attempt, attempts
        )
    raise NoSnapshotError(
        f"the snapshot under {settings.paths.snapshots} kept changing while being loaded"
    )


def load_state(settings: ServiceSettings) -> ServingState:
    """Champions, snapshot metadata and lookups, without precomputing any decision.

    For one customer at a time (``nextbest customer export``): the table is
    empty and :func:`nextbest.serving.rebuild.customer_decision` decides.
    """
    return _build_once(settings, precompute=False)


def _build_once(settings: ServiceSettings, precompute: bool = True) -> ServingState:
    started = time.perf_counter()
    stats = _file_stats(settings)
    registry.setup(settings.paths)
    bundle = registry.load_models(load_catalog(settings.catalog_path))
    n_rows, batches, meta = read_snapshot(settings.paths, chunk_rows=settings.score_chunk)
    as_of = pd.Timestamp(meta["as_of"])
    popularity = {str(k): float(v) for k, v in (meta.get("popularity") or {}).items()}
    history = merge_histories(
        read_table(settings.contact_history) if settings.contact_history is not None else None,
        read_contacts(settings.paths),
    )
    dtypes: dict[str, object] = {}

    def scored():
        nonlocal dtypes
        for features in batches:
            dtypes = dtypes or features.dtypes.to_dict()
            if not precompute:
                return
            yield score(features, bundle, settings.horizon_days, popularity, history, as_of=as_of)

    table = decision_table(
        scored(), n_rows if precompute else 0, bundle, bundle.versions, as_of, settings.horizon_days
    )
    attributes = tuple(
        c
        for c, d in dtypes.items()
        if c not in ("customer_id", "consent_profiling")
        and not pd.api.types.is_numeric_dtype(d)
        and not pd.api.types.is_bool_dtype(d)
    )
    seconds = time.perf_counter() - started
    log.info(
        "serving state built: %d customers, models %s, snapshot as_of %s, %.1f MB, %.1fs",
        len(table),
        bundle.versions,
        as_of.date(),
        table.nbytes / 1e6,
        seconds,
    )
    return ServingState(
        bundle=bundle,
        table=table,
        popularity=popularity,
        as_of=as_of,
        horizon_days=settings.horizon_days,
        time_unit_days=float(meta.get("time_unit_days", bundle.clv.time_unit_days)),
        feature_dtypes=dtypes,
        attributes=attributes,
        fingerprint=Fingerprint(
            tuple(sorted((n, bundle.versions.get(n)) for n in registry.MODEL_NAMES)), stats
        ),
        build_seconds=seconds,
        contact_history=history,
        events_head=int(meta.get("events_head") or 0),
        snapshot_rows=open_sorted(snapshot_files(settings.paths)[0]),
        history=open_sorted(history_files(settings.paths)[0]),
        contact_index=ContactIndex(history),
    )
