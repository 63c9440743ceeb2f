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
  their stored events (:func:`~nextbest.serving.rebuild.customer_decisions`),
  in the worker's decision process when it has a usable one
  (:mod:`~nextbest.serving.decider`), and the answer is cached until their
  next event. Unchanged customers are
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

import asyncio
import logging
import queue
import threading
from collections import OrderedDict

from nextbest.events.schema import Event
from nextbest.events.store import Changes, EventStore
from nextbest.scoring import single_threaded
from nextbest.serving.decider import DecisionProcess
from nextbest.serving.rebuild import customer_decisions
from nextbest.serving.state import ServingState

log = logging.getLogger(__name__)

DEFAULT_CACHE = 10_000
"""Decisions of changed customers kept per worker (least recently used dropped first)."""
PAGE = 1000
CHANGING_TYPES = frozenset({"purchase", "contact", "response", "consent"})
"""Event types that can change a decision (a response through the channel preference)."""


class Overlay:
    """Changed and erased customers on top of one serving state (see the module docstring).

    Parameters
    ----------
    state : ServingState
    store : EventStore
    cache_size : int
        Most re-decided customers kept (least recently used dropped first).

    Attributes
    ----------
    decider : DecisionProcess or None
        Set once the state is in use (the service does, after a swap):
        re-decides in a child process while it holds this state's models and
        snapshot (:mod:`.decider`); in-process while None or not usable.
    """

    def __init__(self, state: ServingState, store: EventStore, cache_size: int = DEFAULT_CACHE):
        self.state = state
        self.store = store
        self.decider: DecisionProcess | None = None
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
        return self.decide_many([customer_id])[customer_id]

    def decide_many(self, customer_ids: list[str]) -> dict[str, dict | None]:
        """Re-decide several changed customers together (one scoring call; cached)."""
        ids = list(dict.fromkeys(customer_ids))
        versions = {c: self.changed.get(c) for c in ids}
        rows = self.decide_from({c: self.store.for_customer(c) for c in ids})
        with self._lock:
            for cid, row in rows.items():
                version = versions[cid]
                if version is not None and self.changed.get(cid) == version:
                    self._cache[cid] = (version, row)
                    self._cache.move_to_end(cid)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return rows

    def decide_from(self, events_by_customer: dict[str, list[Event]]) -> dict[str, dict | None]:
        """Decisions from the child process when it can give them, else in-process (same rows)."""
        decider = self.decider
        if decider is not None and decider.usable_for(self.state.fingerprint):
            rows = decider.decide(events_by_customer)
            if rows is not None:
                return rows
        return customer_decisions(self.state, events_by_customer)

    def close(self) -> None:
        """Stop the decision process, if any (the overlay itself holds no resource)."""
        if self.decider is not None:
            self.decider.close()

    def stats(self) -> dict[str, int]:
        """Sizes: changed customers, cached decisions, erased customers, and the cursor."""
        return {
            "changed": len(self.changed),
            "cached": len(self._cache),
            "erased": len(self.erased),
            "cursor": self.cursor,
        }


class DecisionBatcher:
    """Re-decisions asked for by concurrent requests, made together on one thread.

    A request for a changed customer without a cached decision waits here;
    the thread takes every request waiting at that moment and decides them
    with one :meth:`Overlay.decide_many` (one scoring call), so 32 clients
    posting purchases and asking at once cost about one decision's work per
    round instead of 32. Nothing waits on purpose: a lone request is decided
    at once.
    """

    def __init__(self, max_batch: int = 256) -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def decide(self, overlay: Overlay, customer_id: str) -> dict | None:
        """The customer's re-decision (from the thread; exceptions are raised here)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._start()
        self._queue.put((overlay, customer_id, loop, future))
        return await future

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="nextbest-decisions", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < self.max_batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            by_overlay: dict[int, list] = {}
            for item in items:
                by_overlay.setdefault(id(item[0]), []).append(item)
            for group in by_overlay.values():
                self._decide(group)

    @staticmethod
    def _decide(group: list) -> None:
        overlay = group[0][0]
        try:
            rows = overlay.decide_many([cid for _, cid, _, _ in group])
            results = [(rows[cid], None) for _, cid, _, _ in group]
        except Exception as exc:  # handed to each waiting request; the thread lives on
            log.exception("re-deciding %d customer(s) failed", len(group))
            results = [(None, exc)] * len(group)
        for (_, _, loop, future), (row, exc) in zip(group, results):
            loop.call_soon_threadsafe(_settle, future, row, exc)


def _settle(future: asyncio.Future, row: dict | None, exc: Exception | None) -> None:
    if future.done():  # the request went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(row)
