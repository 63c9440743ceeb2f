"""The current serving state: first load, reloads, and the watcher that notices a new champion.

Reload without restart and without a failed request:

* a new :class:`~nextbest.serving.state.ServingState` is built completely on
  the side (the old one keeps answering), then swapped in with a single
  reference assignment; in-flight requests finish on the state they took;
* if the build fails (no champion, broken snapshot) the old state stays and
  the error is kept for ``/admin/reload`` and the logs;
* a daemon thread polls every ``reload_seconds`` and rebuilds when a
  champion alias moved, the snapshot or catalog changed, or another worker's
  ``POST /admin/reload`` touched the reload marker (so all workers follow).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

from nextbest.errors import NotReady, ReloadFailed
from nextbest.serving.settings import ServiceSettings
from nextbest.serving.state import ServingState, build_state, current_fingerprint

log = logging.getLogger(__name__)

INITIAL_RETRY_SECONDS = 10.0


def _compact_heap() -> None:
    """Collect the previous state's garbage, freeze the survivors, give freed heap back to the OS.

    ``gc.freeze()`` keeps the long-lived models and tables out of every later
    collection; ``malloc_trim`` (glibc only, best effort) returns the memory
    the build used for its temporary frames.
    """
    gc.unfreeze()  # the previous state's reference cycles become collectable again
    gc.collect()
    gc.freeze()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class StateHolder:
    """Owns the current state and the watcher thread.

    Parameters
    ----------
    settings : ServiceSettings
    build : callable, optional
        ``settings -> ServingState`` (tests pass a fake).
    fingerprint : callable, optional
        ``settings -> Fingerprint`` of what a build would load now.
    on_reload : callable, optional
        Called with ``"reloaded" | "unchanged" | "failed"`` after each attempt (metrics).
    compact_heap : bool
        After a swap, collect garbage and ``gc.freeze()`` what is left: the
        long-lived models and tables then no longer slow down every later
        garbage collection (fewer and shorter pauses per request).
    """

    def __init__(
        self,
        settings: ServiceSettings,
        build: Callable = build_state,
        fingerprint: Callable = current_fingerprint,
        on_reload: Callable | None = None,
        compact_heap: bool = True,
    ) -> None:
        self.settings = settings
        self._build = build
        self._fingerprint = fingerprint
        self._on_reload = on_reload or (lambda outcome: None)
        self._compact_heap = compact_heap
        self._state: ServingState | None = None
        self._build_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    # -- reading ---------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._state is not None

    def current(self) -> ServingState:
        """The state to answer one request with.

        Raises
        ------
        NotReady
            Until the first state is built.
        """
        state = self._state
        if state is None:
            raise NotReady(detail=self.last_error)
        return state

    # -- building --------------------------------------------------------------------------------
    def reload(self, force: bool = False) -> tuple[str, ServingState]:
        """Build and swap in a new state if anything changed (or ``force``).

        Returns ``(outcome, state)`` with outcome ``"reloaded"`` or ``"unchanged"``.

        Raises
        ------
        ReloadFailed
            If the build fails; the previous state (if any) keeps serving.
        """
        with self._build_lock:
            current = self._state
            try:
                unchanged = (
                    not force
                    and current is not None
                    and self._fingerprint(self.settings) == current.fingerprint
                )
                if unchanged:
                    self._on_reload("unchanged")
                    return "unchanged", current
                new = self._build(self.settings)
            except Exception as exc:  # any failure leaves the old state serving
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "building the serving state failed (%s); %s",
                    self.last_error,
                    "still serving the previous state" if current else "not ready",
                )
                self._on_reload("failed")
                raise ReloadFailed(detail=self.last_error) from exc
            self._state = new
            self.last_error = None
            previous = current.versions if current is not None else None
            overlay = getattr(current, "overlay", None)
            if overlay is not None:
                overlay.close()  # its decision process; in-flight calls decide in-process
            current = None
            if self._compact_heap:
                _compact_heap()
            self._on_reload("reloaded")
            if previous is not None:
                log.info("reloaded: models %s -> %s", previous, new.versions)
            return "reloaded", new

    def request_reload_everywhere(self) -> None:
        """Touch the reload marker so every worker's watcher rebuilds on its next poll."""
        marker = self.settings.reload_marker
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{time.time():.6f}\n")

    # -- background thread -----------------------------------------------------------------------
    def start(self) -> None:
        """Load the first state and then watch for changes, in a daemon thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="nextbest-state", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the watcher (a build in progress finishes first, bounded by ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set() and self._state is None:
            try:
                self.reload(force=True)
            except ReloadFailed:
                interval = self.settings.reload_seconds or INITIAL_RETRY_SECONDS
                self._stop.wait(min(interval, INITIAL_RETRY_SECONDS))
        interval = self.settings.reload_seconds
        if interval <= 0:
            return
        while not self._stop.wait(interval):
            try:
                self.reload()
            except ReloadFailed:
                pass  # logged in reload(); keep serving and try again next time
            except Exception:  # the watcher must never die
                log.exception("state watcher error")
