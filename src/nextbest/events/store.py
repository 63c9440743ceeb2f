"""The event store interface, its results, and :func:`open_store`.

Two backends implement :class:`EventStore`: SQLite (one file in WAL mode,
the embedded default) and PostgreSQL (several replicas on several hosts).
See the package docstring of :mod:`nextbest.events` for the guarantees.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from nextbest.config import home
from nextbest.errors import ConfigError
from nextbest.events.schema import Event, EventBatch, Reject

URL_ENV = "NEXTBEST_EVENTS_URL"


@dataclass
class AppendResult:
    """What :meth:`EventStore.append` did with a batch.

    Attributes
    ----------
    seqs : numpy.ndarray
        Per event of the batch (in order): its sequence number, the earlier
        copy's for a duplicate, -1 if rejected (or if nothing was written
        because ``all_or_nothing`` met a reject).
    event_ids : list of str
        Per event: its id (as given, or assigned).
    new, duplicates : int
        Events stored now, and repeats of stored events with equal content.
    rejects : list of Reject
        ``event_id`` already stored with other content, or ``customer_id``
        erased; ``index`` is the event's position in the request or file.
    head : int
        The store's highest sequence number after the append.
    """

    seqs: np.ndarray
    event_ids: list[str]
    new: int
    duplicates: int
    rejects: list[Reject]
    head: int

    @property
    def ok(self) -> bool:
        return not self.rejects


@dataclass
class Changes:
    """One page of the change feed after a cursor (see :meth:`EventStore.since`).

    ``erased`` holds the salted hashes of customers forgotten in this page
    (compare with :meth:`EventStore.customer_hash`); ``cursor`` is the
    sequence number to pass to the next call; ``more`` says a page was full.
    """

    events: list[Event]
    erased: list[str]
    cursor: int
    more: bool = False


@dataclass
class ForgetResult:
    """What :meth:`EventStore.forget` removed, by event type, and whether files were scrubbed."""

    removed: dict[str, int] = field(default_factory=dict)
    tombstoned: bool = False
    scrubbed: bool = True

    @property
    def total(self) -> int:
        return int(sum(self.removed.values()))


@runtime_checkable
class EventStore(Protocol):
    """Append-only events keyed by customer, with a change feed.

    Every method is safe to call from several threads and several processes.
    """

    url: str

    def append(
        self, events: EventBatch | Iterable[Event], *, all_or_nothing: bool = False
    ) -> AppendResult:
        """Store validated events atomically; a repeated ``event_id`` with equal content is a
        no-op, with other content a reject, as is an erased customer. With ``all_or_nothing``
        a single reject stores nothing. Once it returns, the events survive a crash."""
        ...

    def head(self) -> int:
        """The highest sequence number stored (0 for an empty store)."""
        ...

    def since(self, cursor: int, limit: int = 1000) -> Changes:
        """Events with a sequence number above ``cursor``, oldest first, at most ``limit``."""
        ...

    def wait(self, cursor: int, timeout: float) -> bool:
        """Block until an event above ``cursor`` is visible or ``timeout`` seconds pass."""
        ...

    def for_customer(self, customer_id: str) -> list[Event]:
        """Every event of one customer, in sequence order."""
        ...

    def consent_state(self, customer_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Newest consent per customer, for profiling and per channel (see frames)."""
        ...

    def purchases(self, since: datetime | str | None = None, *, after_seq: int = 0) -> pd.DataFrame:
        """Purchase events as a transactions frame (time at or after ``since``, seq above
        ``after_seq``)."""
        ...

    def contacts(self) -> pd.DataFrame:
        """Contact events with their responses as a campaign-log frame."""
        ...

    def responses(self) -> pd.DataFrame:
        """Response events as a frame."""
        ...

    def export(self, path: str | Path) -> int:
        """Write every event to Parquet (``.parquet``) or JSON lines (``.jsonl``); return count."""
        ...

    def forget(self, customer_id: str) -> ForgetResult:
        """Delete a customer's events and keep only a salted hash, so later appends of the id
        are rejected with reason ``erased``."""
        ...

    def is_erased(self, customer_id: str) -> bool:
        """True if ``customer_id`` was forgotten."""
        ...

    def customer_hash(self, customer_id: str) -> str:
        """The store's salted hash of ``customer_id`` (as in :attr:`Changes.erased`)."""
        ...

    def compact(self, before: int) -> dict[str, int]:
        """Delete events with sequence number below ``before`` that a snapshot has folded in,
        keeping the newest consent per customer and scope; return counts by type."""
        ...

    def close(self) -> None:
        """Close every connection this handle opened."""
        ...


def default_url() -> str:
    """``$NEXTBEST_EVENTS_URL`` if set, else the SQLite file ``NEXTBEST_HOME/events.db``."""
    return os.environ.get(URL_ENV) or f"sqlite:///{home() / 'events.db'}"


def open_store(url: str | None = None) -> EventStore:
    """Open (and create if needed) the event store at ``url``.

    Parameters
    ----------
    url : str, optional
        ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (as
        SQLAlchemy and MLflow write them; a plain file path works too), with
        an optional ``?synchronous=normal``; or ``postgresql://user@host/db``
        (psycopg 3, the ``postgres`` extra). Default: :func:`default_url`.

    Raises
    ------
    ConfigError
        An unknown URL scheme or option.
    """
    url = url or default_url()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        from nextbest.events.postgres import PostgresEventStore

        return PostgresEventStore(url)
    if scheme not in ("sqlite", ""):
        raise ConfigError(
            f"event store URL {url!r}: unknown scheme {scheme!r}; use sqlite:///PATH "
            "or postgresql://..."
        )
    from nextbest.events.sqlite import SqliteEventStore

    if scheme == "":
        return SqliteEventStore(Path(url), url=f"sqlite:///{url}")
    parts = urlsplit(url)
    raw_path = url[len("sqlite:///") :].split("?", 1)[0]
    if not url.lower().startswith("sqlite:///") or not raw_path:
        raise ConfigError(f"event store URL {url!r}: write sqlite:///PATH")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(options) - {"synchronous"}
    if unknown:
        raise ConfigError(f"event store URL {url!r}: unknown option(s) {sorted(unknown)}")
    return SqliteEventStore(Path(raw_path), url=url, synchronous=options.get("synchronous", "full"))
