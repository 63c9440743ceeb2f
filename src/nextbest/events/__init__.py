"""Real-time events: purchases, contacts, responses and consent, in one append-only store.

Event types
-----------
Every event has a ``type``, a ``customer_id`` (a string, kept exactly as
given: ``"00042"`` stays ``"00042"``; a JSON number is an error), a time, and
an ``event_id``: given by the client (1-64 characters of ``A-Z a-z 0-9 . _ :
-``), or assigned by the store (a ULID). Times are ISO 8601; without an offset
they are UTC. Every type accepts ``at`` in place of its named time field.

A purchase: a transaction line (``amount`` may be negative for a refund)::

    {"type": "purchase", "event_id": "pos-7781-1", "customer_id": "00042",
     "timestamp": "2024-05-01T10:00:00Z", "amount": 30.0, "category": "PRODUCE",
     "order_id": "pos-7781", "channel": "store", "quantity": 2}

A contact: a campaign-log row, sent (``treatment``), held out (``control``;
``offer_id`` empty for the universal holdout) or explored, with the
probability of the chosen arm::

    {"type": "contact", "customer_id": "00042", "offer_id": "EMAIL-WOMENS",
     "contacted_at": "2024-05-01T09:00:00Z", "group": "treatment",
     "propensity": 0.95, "channel": "email"}

A response: the outcome of a contact (joined to the latest earlier contact of
the same customer and offer in :meth:`EventStore.contacts`)::

    {"type": "response", "customer_id": "00042", "offer_id": "EMAIL-WOMENS",
     "at": "2024-05-03T18:00:00Z", "converted": 1, "revenue": 45.0}

Consent: an objection to profiling (GDPR Art. 21: ``false``) or its
withdrawal (``true``); or a per-channel opt-in or opt-out::

    {"type": "consent", "customer_id": "00042", "at": "2024-05-04T08:00:00Z",
     "consent_profiling": false}
    {"type": "consent", "customer_id": "00042", "at": "2024-05-04T08:00:00Z",
     "channel": "sms", "opt_in": true}

Bad input (:mod:`nextbest.events.validate`) is never a 5xx: each problem
names the event and the field, in our words, e.g. ``events[3].amount:
required for a purchase event``, ``events[0].type: unknown event type
'refund'``, ``events[2].timestamp: more than 24 h in the future``,
``events[5].event_id: malformed``, ``events[1].consent_profiling: a consent
event needs consent_profiling (true/false), or channel and opt_in``. More than
:data:`MAX_BATCH` (1,000) events in one request is :class:`BatchTooLarge`
(HTTP 413); any other problem is :class:`EventError` (HTTP 422) listing
every reject. In a file, bad rows go to ``<file>.rejects.parquet`` (row,
field, value, reason) and the rest is stored.

Using it
--------
::

    from nextbest.events import open_store, ingest_events, ingest_file

    store = open_store()                   # NEXTBEST_EVENTS_URL, else NEXTBEST_HOME/events.db
    ingest_events(body["events"], store)   # POST /events: validate, append all or nothing
    ingest_file("events.parquet", store)   # nextbest events ingest FILE (streamed)
    store.export("all.parquet")            # nextbest events export (or .jsonl)

    changes = store.since(cursor)          # the change feed: events after a cursor
    cursor = changes.cursor                # ... and erased customers (salted hashes)
    store.wait(cursor, timeout=1.0)        # block until something new (NOTIFY on PostgreSQL)

    store.consent_state(ids)               # newest consent per customer and scope
    store.purchases(after_seq=snapshot_seq)  # a transactions frame
    store.contacts()                       # a campaign-log frame with outcomes
    store.for_customer(id)                 # everything held (Art. 15)
    store.forget(id)                       # erasure (Art. 17), tombstone kept
    store.compact(before=snapshot_seq)     # after a snapshot folded the events in

Replaying onto a snapshot (service start-up, ``score``): take
``cursor = store.head()`` first, then read the frames and drop their rows with
``seq > cursor``, then apply ``since(cursor)`` page by page, with the same
newest-wins rule for consent (latest ``at``, then highest ``seq``). Reading
the cursor last would miss what arrived while the frames were read.

Consistency guarantees
----------------------
* **Atomic batches.** An append is one transaction: all of a batch is
  visible at once, or none of it. :func:`ingest_events` (and
  ``append(..., all_or_nothing=True)``) store nothing if any event is
  rejected; ``append`` alone stores the good events and returns the rejects.
  A file is appended in batches of 100,000 rows, each atomic.
* **Idempotent ids.** A repeated ``event_id`` with equal content is a no-op
  (counted as a duplicate, the earlier sequence number returned); with
  different content it is rejected and the stored event is unchanged.
  Retrying a request is therefore safe when the client sends ids; events
  without one get a new id on every attempt. Ids are remembered until
  compaction removes their events.
* **A monotone change feed.** Every event gets a sequence number that never
  repeats, and writers are serialised (SQLite's write lock; a PostgreSQL
  advisory lock held from insert to commit), so numbers become visible in
  order: a reader that has seen ``n`` has seen everything below ``n``. Polling
  ``since(cursor)`` with nothing new costs about 5 us on SQLite (1M events) and
  one indexed query (30-60 us) on PostgreSQL. A worker that polls before each
  request sees every event acknowledged before that request began.
* **Read your writes, across processes.** Once ``append`` returns, any
  handle in any process (SQLite, one host) or any replica (PostgreSQL) sees the
  events on its next read. Measured: a second process waiting in ``wait()``
  sees an objection in 13-17 ms on PostgreSQL (NOTIFY; re-checked at least
  every 250 ms should a notice be lost), and in 5-6 ms on SQLite (``wait()``
  polls every 2 ms).
* **Newest consent wins** per customer and scope (profiling, or one channel):
  the latest event time; on equal times the latest arrival. An old objection
  imported late does not undo a newer withdrawal.

Durability
----------
Once ``append`` returns, the events survive a ``kill -9`` of the process
(tested). SQLite runs in WAL mode with ``synchronous=FULL`` by default: the
WAL is fsynced at every commit, so an acknowledged objection also survives a
power cut. This costs one fsync per commit; ``benchmarks/events.py`` measured
on this machine (2 CPUs shared with other sessions, load average 4 to 7;
ranges over two runs of the benchmark, each figure a median of three):

=====================================  ====================  ====================
                                       FULL (default)        NORMAL
=====================================  ====================  ====================
append, batches of 1,000 (validated)   46,000-83,000 ev/s    71,000-107,000 ev/s
append, one event per commit           4.0-7.6 ms/event      0.7-1.3 ms/event
ingest 1M purchases from Parquet       122,000 ev/s          122,000 ev/s
=====================================  ====================  ====================

``NORMAL``
(``sqlite:///PATH?synchronous=normal``) still survives a killed process,
since the WAL is written to the OS before the commit returns, but may lose
the last commits on a power cut or OS crash. Writers share one lock, so with
FULL a host commits at most 130-250 single-event requests per second; a service
that needs more should append concurrent requests together (one commit for
several requests) or choose NORMAL knowingly. PostgreSQL returns after
``COMMIT`` with the server's ``synchronous_commit`` (default on).

Erasure
-------
:meth:`EventStore.forget` deletes every event of the customer, keeps only a
salted SHA-256 of the id (the salt is random per store, kept in the store)
in a tombstone table, and puts an erasure marker (the hash) in the change
feed so that every worker drops the customer. Later appends of that id, from
the API or an old file, are rejected with reason ``erased`` (the rejects file
keeps an empty value, not the id). SQLite runs with ``secure_delete`` and
truncates the WAL after a forget: none of the id's bytes remain in the
database, WAL or shared-memory files (tested on the raw bytes).
PostgreSQL keeps old row versions until ``VACUUM`` and in its WAL and backups
until recycled (``ForgetResult.scrubbed`` is False); run
``VACUUM FULL nextbest_events`` for a byte-level purge, and mind backups.

Compaction
----------
The store only grows until compacted. ``nextbest train`` folds events into its
snapshot (:func:`nextbest.events.fold.apply_to_dataset`: purchases into the
transactions, contacts into the snapshot's contact history, consent over the
customers file) and records the store's ``head()`` at that moment as
``events_head`` in the snapshot metadata; the service replays what came after.
``compact(before=that_seq)`` then deletes purchase, contact, response and
erasure-marker events below it, and every
consent event below it except the newest per customer and scope, so that
:meth:`EventStore.consent_state` is unchanged. Compact only what every
worker has moved past (in practice: after the service reloaded the new
snapshot), since a poller does not see deleted events; a re-sent id of a
compacted event is stored again. Compaction is one transaction (writers wait
for it). On SQLite the file keeps its size (free pages are reused); ``VACUUM``
shrinks it.

Several replicas on PostgreSQL
------------------------------
1. Install the ``postgres`` extra (psycopg 3) and create a database and a
   role, e.g. ``CREATE ROLE nextbest LOGIN PASSWORD '...'; CREATE DATABASE
   nextbest OWNER nextbest;``.
2. Set ``NEXTBEST_EVENTS_URL=postgresql://nextbest:...@db-host:5432/nextbest``
   on every replica (a schema other than ``public``: append
   ``?options=-csearch_path%3Dmyschema``).
3. The first ``open_store`` creates the tables ``nextbest_events``,
   ``nextbest_tombstones`` and ``nextbest_meta`` (it needs CREATE then; later
   opens need only SELECT, INSERT, DELETE and TEMP).
4. Replicas learn of new events through ``LISTEN/NOTIFY`` on the channel
   ``nextbest_events``; behind a connection pooler use session pooling (a
   pooler in transaction mode drops LISTEN; ``wait()`` then falls back to
   re-checking every 250 ms). Writers serialise on an advisory lock, so a
   burst of appends from many replicas queues instead of interleaving.

Modules: :mod:`~nextbest.events.schema` (types, :class:`Event`),
:mod:`~nextbest.events.columns` and :mod:`~nextbest.events.validate` (raw input
to typed columns, then the rules), :mod:`~nextbest.events.store` (the
:class:`EventStore` protocol, :func:`open_store`), :mod:`~nextbest.events.sql`
(what both backends share), :mod:`~nextbest.events.sqlite`,
:mod:`~nextbest.events.postgres`, :mod:`~nextbest.events.ingest`,
:mod:`~nextbest.events.export`, :mod:`~nextbest.events.frames`,
:mod:`~nextbest.events.ids`.
"""

from nextbest.events.ingest import IngestResult, ingest_events, ingest_file
from nextbest.events.schema import (
    EVENT_TYPES,
    MAX_BATCH,
    MAX_FUTURE,
    BatchTooLarge,
    Event,
    EventBatch,
    EventError,
    Reject,
)
from nextbest.events.store import (
    AppendResult,
    Changes,
    EventStore,
    ForgetResult,
    default_url,
    open_store,
)
from nextbest.events.validate import ValidationResult, validate_events, validate_table

__all__ = [
    "EVENT_TYPES",
    "MAX_BATCH",
    "MAX_FUTURE",
    "AppendResult",
    "BatchTooLarge",
    "Changes",
    "Event",
    "EventBatch",
    "EventError",
    "EventStore",
    "ForgetResult",
    "IngestResult",
    "Reject",
    "ValidationResult",
    "default_url",
    "ingest_events",
    "ingest_file",
    "open_store",
    "validate_events",
    "validate_table",
]
