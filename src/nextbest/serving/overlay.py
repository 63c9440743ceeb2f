"""Customers changed by events since the snapshot, kept by each worker on top of its state.

A :class:`~nextbest.serving.state.ServingState` never changes; events do.
Each worker holds one :class:`Overlay` per state:

* **Start-up (replay).** The overlay starts at the snapshot's ``events_head``
  (the store's head when ``nextbest train`` folded the events in) and reads
  the change feed from there (:meth:`Overlay.catch_up`) before the worker
  says it is ready: every customer with a purchase, contact or consent event
  since the snapshot is marked changed; customers forgotten since are marked
  erased.
* **Before every answer** the worker polls the feed (:meth:`Overlay.poll`,
  ``since(cursor)``: about 5 us on SQLite and one indexed query on
  PostgreSQL when nothing is new). Every event acknowledged before the
  request began is therefore seen: an objection posted to one worker is
  honoured by the very next ``/predict`` on any worker of the host, and on
  another host (PostgreSQL) as soon as its commit is visible there.
* **A changed customer** is re-decided on demand from the snapshot and all
  their stored events (:func:`~nextbest.serving.rebuild.customer_decision`),
  and the answer is cached until their next event. Unchanged customers are
  answered from the precomputed table, as before.
* **An erased customer** (``nextbest customer forget``) is unknown from the
  next request on (404), even before the rewritten snapshot is reloaded.

Memory
------
The overlay holds, per changed customer, one entry of a ``dict`` (id -> the
sequence number of their latest event): about 120 bytes with a 10-character
id (``benchmarks/events.py --http`` measures it: 122 MB for 1M changed
customers), and at most :data:`DEFAULT_CACHE` re-decided answers of about
2.2 KB each (22 MB; ``NEXTBEST_OVERLAY_CACHE``). Events themselves are read
from the store when a customer is re-decided, not kept. The overlay is dropped
with its state: after ``nextbest train`` folds the events into a new snapshot
and the service reloads it, only events after the new ``events_head`` are
replayed, so the overlay shrinks back. 1M changed customers cost about
0.15 GB per worker with a full cache; retrain before the changed customers
outgrow the memory you budget.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from nextbest.events.schema import Event
from nextbest.events.store import Changes, EventStore
from nextbest.serving.rebuild import customer_decision, single_threaded
from nextbest.serving.state import ServingState

log = logging.getLogger(__name__)

DEFAULT_CACHE = 10_000
"""Decisions of changed customers kept per worker (least recently used dropped first)."""
PAGE = 1000
CHANGING_TYPES = frozenset({"purchase", "contact", "consent"})
"""Event types that can change a decision (a response does not)."""


class Overlay:
    """Changed and erased customers on top of one serving state (see the module docstring).

    Parameters
    ----------
    state : ServingState
    store : EventStore
    cache_size : int
        Most re-decided customers kept (least recently used dropped first).
    """

    def __init__(self, state: ServingState, store: EventStore, cache_size: int = DEFAULT_CACHE):
        self.state = state
        self.store = store
        single_threaded(state.bundle)
        self.cache_size = int(cache_size)
        self.cursor = int(state.events_head)
        self.changed: dict[str, int] = {}
        self.erased: set[str] = set()
        self._cache: OrderedDict[str, tuple[int, dict | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()

    # -- the change feed -------------------------------------------------------------------------
    def poll(self) -> int:
        """Apply every event after the cursor; return how many events were read."""
        seen = 0
        with self._poll_lock:
            while True:
                changes = self.store.since(self.cursor, PAGE)
                if changes.cursor == self.cursor:
                    return seen
                self._apply(changes)
                seen += len(changes.events) + len(changes.erased)
                if not changes.more:
                    return seen

    catch_up = poll
    """Replay from the snapshot's ``events_head`` (the first poll reads everything since)."""

    def _apply(self, changes: Changes) -> None:
        with self._lock:
            for event in changes.events:
                if event.type in CHANGING_TYPES:
                    self.changed[event.customer_id] = int(event.seq or 0)
                    self._cache.pop(event.customer_id, None)
            if changes.erased:
                self.erased.update(changes.erased)
                gone = set(changes.erased)
                for cid in [c for c in self.changed if self.store.customer_hash(c) in gone]:
                    self.changed.pop(cid, None)
                    self._cache.pop(cid, None)
            self.cursor = changes.cursor

    # -- lookups ---------------------------------------------------------------------------------
    def is_erased(self, customer_id: str) -> bool:
        """Whether the customer was forgotten after the snapshot was taken."""
        return bool(self.erased) and self.store.customer_hash(customer_id) in self.erased

    def is_changed(self, customer_id: str) -> bool:
        return customer_id in self.changed

    def cached(self, customer_id: str) -> tuple[bool, dict | None]:
        """``(True, decision or None)`` if a re-decision is cached and still current."""
        with self._lock:
            hit = self._cache.get(customer_id)
            if hit is None or hit[0] != self.changed.get(customer_id):
                return False, None
            self._cache.move_to_end(customer_id)
            return True, hit[1]

    def decide(self, customer_id: str) -> dict | None:
        """Re-decide a changed customer from the snapshot and their events (cached)."""
        version = self.changed.get(customer_id)
        events = self.store.for_customer(customer_id)
        row = self.decide_from(customer_id, events)
        with self._lock:
            if version is not None and self.changed.get(customer_id) == version:
                self._cache[customer_id] = (version, row)
                self._cache.move_to_end(customer_id)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return row

    def decide_from(self, customer_id: str, events: list[Event]) -> dict | None:
        return customer_decision(self.state, customer_id, events)

    def stats(self) -> dict[str, int]:
        """Sizes: changed customers, cached decisions, erased customers, and the cursor."""
        return {
            "changed": len(self.changed),
            "cached": len(self._cache),
            "erased": len(self.erased),
            "cursor": self.cursor,
        }
