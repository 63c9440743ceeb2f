"""The decision audit log: one JSON line per decision under ``NEXTBEST_HOME/audit/``.

Each line holds ``time`` (UTC, ISO 8601), ``request_id``, ``endpoint``,
``customer_id``, ``action``, ``action_offer_id``, ``offers``,
``model_versions``, ``as_of``, ``consent_profiling``, ``group`` and
``propensity`` (the experiment arm, for the campaign log) and - only for
customers who did not object to profiling - their model ``scores``. No
feature value and no posted transaction is ever written; for an opted-out
customer the line records only that the non-personalised default was given.

Files are per UTC day (``decisions-YYYY-MM-DD.jsonl``), opened with
``O_APPEND`` and written with one ``write`` per request under an exclusive
``flock``, so lines from several workers never interleave and ``nextbest
customer forget`` can rewrite a file without losing a line. A failed write is logged and counted but
does not fail the request.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import pydantic_core

log = logging.getLogger(__name__)

SCORE_KEYS = (
    "p_alive",
    "expected_purchases",
    "expected_spend",
    "predicted_clv",
    "churn_probability",
)


def audit_record(decision: dict, request_id: str, endpoint: str, now: str) -> dict:
    """The audit line for one decision (a :class:`~nextbest.serving.schemas.Decision`-shaped
    dict)."""
    rec = {
        "time": now,
        "request_id": request_id,
        "endpoint": endpoint,
        "customer_id": decision["customer_id"],
        "action": decision["action"],
        "action_offer_id": decision["action_offer_id"],
        "offers": [o["offer_id"] for o in decision["offers"]],
        "model_versions": decision["model_versions"],
        "as_of": str(decision["as_of"]) if decision["as_of"] is not None else None,
        "consent_profiling": decision["consent_profiling"],
        "group": decision.get("group", "treatment"),
        "propensity": decision.get("propensity", 1.0),
    }
    if decision["consent_profiling"]:
        rec["scores"] = {k: decision[k] for k in SCORE_KEYS}
    return rec


class AuditLog:
    """Append-only JSON-lines writer, safe across threads and worker processes.

    Parameters
    ----------
    directory : Path
        Created on first write.
    on_error : callable, optional
        Called with no argument when a write fails (metrics).
    """

    def __init__(self, directory: Path, on_error: Callable[[], None] | None = None) -> None:
        self.directory = Path(directory)
        self._on_error = on_error or (lambda: None)
        self._lock = threading.Lock()
        self._day: str | None = None
        self._fd: int | None = None

    def path_for(self, day: str) -> Path:
        return self.directory / f"decisions-{day}.jsonl"

    def write(self, decisions: Iterable[dict], request_id: str, endpoint: str) -> None:
        """Append one line per decision (one ``write`` call for all of them)."""
        now = dt.datetime.now(dt.UTC)
        stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        lines = [
            pydantic_core.to_json(audit_record(d, request_id, endpoint, stamp), inf_nan_mode="null")
            for d in decisions
        ]
        if not lines:
            return
        data = b"\n".join(lines) + b"\n"
        try:
            with self._lock:
                fd = self._fd_for(now.strftime("%Y-%m-%d"))
                fcntl.flock(fd, fcntl.LOCK_EX)  # `customer forget` rewrites the file under it
                try:
                    os.write(fd, data)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            log.exception("audit log write failed (%d decision(s) not recorded)", len(lines))
            self._on_error()

    def _fd_for(self, day: str) -> int:
        if self._fd is None or day != self._day:
            self._close_fd()
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path_for(day), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self._day = day
        return self._fd

    def close(self) -> None:
        """Close the current file (the next write reopens it)."""
        with self._lock:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None
                self._day = None
