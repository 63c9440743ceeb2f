"""Re-decisions of changed customers in a child process, beside the worker's request loop.

Re-deciding a customer (:func:`~nextbest.serving.rebuild.customer_decisions`)
is 30-50 ms of pandas and model work that holds the GIL (35 ms on Complete
Journey with one model thread; see :func:`nextbest.models.compiled.single_threaded`). Run in the
worker's own process, it competes with the event loop that answers every
other request: measured on Complete Journey with 32 clients asking for other
customers, three purchases a second cut their throughput from 0.83x to 0.55x
the trivial BentoML service, and the purchases' own answers waited up to
1.5 s for the GIL. A :class:`DecisionProcess` does that work in a child
process (started with ``spawn``: no inherited threads or OpenMP state), on
the other core, while the worker only looks up answers.

* **Same models, same snapshot.** The child loads the serving state without
  precomputing any decision (:func:`~nextbest.serving.state.load_state`) and
  says which :class:`~nextbest.serving.state.Fingerprint` it loaded. It is
  used only while that equals the worker's state's; otherwise (a promotion
  landed between the two loads) the worker decides in-process until its
  next reload starts a new child.
* **Faults.** Until the child is ready, after it dies, or when a call fails
  or takes longer than ``timeout`` seconds, the worker decides in-process: an
  answer never depends on the child. A dead child is not restarted within a
  state (the next reload starts a fresh one); a warning says so.
* **Lifetime.** One child per state, started once the state is in and the
  previous state's child has stopped (so a worker never has two, and a
  child loads while the worker holds one state, not two as during a
  reload's build); stopped when the state is replaced or the service shuts
  down. A child whose parent died (``kill -9``) sees its pipe close and exits.

``NEXTBEST_DECISION_PROCESS=0`` turns it off (one process per worker, as
before). It costs one more process per worker, holding the libraries, the
champion models and the contact history but not the decision table:
measured on Complete Journey, 296 MB proportional set size (245 MB private)
beside the worker's 398 MB.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import threading
import weakref
from typing import Any

from nextbest.events.schema import Event
from nextbest.scoring import single_threaded
from nextbest.serving.rebuild import customer_decisions
from nextbest.serving.settings import ServiceSettings
from nextbest.serving.state import load_state

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0


def _child(conn, settings: ServiceSettings) -> None:
    """The child's loop: load the state, say its fingerprint, then decide what is asked."""
    try:
        state = load_state(settings)
        single_threaded(state.bundle)
        gc.collect()
        gc.freeze()  # the models stay out of every later collection (as in the worker)
        conn.send(("ready", state.fingerprint))
    except Exception as exc:  # said to the parent, which decides in-process
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if request is None:
            return
        try:
            conn.send(("ok", customer_decisions(state, request)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _stop(process, conn) -> None:
    try:
        conn.send(None)
    except (OSError, ValueError):
        pass
    process.join(timeout=2)
    if process.is_alive():
        process.kill()
        process.join(timeout=2)
    conn.close()


class DecisionProcess:
    """A child process that re-decides customers for one serving state (see the module docstring).

    Parameters
    ----------
    settings : ServiceSettings
        What the child loads (the same settings the worker's state was built with).
    timeout : float
        Longest wait for one call's answer before deciding in-process instead.
    """

    def __init__(self, settings: ServiceSettings, timeout: float = 30.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_child, args=(child, settings), name="nextbest-decisions", daemon=True
        )
        self._process.start()
        child.close()
        self.timeout = float(timeout)
        self.fingerprint: Any = None
        self._state = "starting"  # -> ready | failed | dead
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _stop, self._process, self._conn)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def usable_for(self, fingerprint: Any) -> bool:
        """Whether the child is ready and loaded ``fingerprint`` (never waits)."""
        return self._loaded(0) and self.fingerprint == fingerprint

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """Wait until the child has loaded (True) or failed (False)."""
        return self._loaded(timeout)

    def _loaded(self, timeout: float) -> bool:
        """Read the child's hello if it came within ``timeout``; whether it is ready."""
        with self._lock:
            if self._state == "starting" and self._conn.poll(timeout):
                self._hello()
            return self._state == "ready"

    def _hello(self) -> None:
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            kind, payload = "failed", "the process exited while loading"
        if kind == "ready":
            self._state, self.fingerprint = "ready", payload
        else:
            self._state = "failed"
            log.warning("decision process could not load (%s): deciding in-process", payload)

    def decide(self, events_by_customer: dict[str, list[Event]]) -> dict[str, dict | None] | None:
        """The child's decisions, or None if it cannot answer (then decide in-process)."""
        with self._lock:
            if self._state != "ready":
                return None
            try:
                self._conn.send(events_by_customer)
                if not self._conn.poll(self.timeout):
                    raise TimeoutError(f"no answer in {self.timeout:g}s")
                kind, payload = self._conn.recv()
            except (EOFError, OSError, TimeoutError) as exc:
                self._state = "dead"
                log.warning("decision process lost (%s): deciding in-process", exc)
                self._finalizer()
                return None
        if kind != "ok":
            log.warning("decision process failed a call (%s): deciding it in-process", payload)
            return None
        return payload

    def close(self) -> None:
        """Stop the child (idempotent)."""
        with self._lock:
            self._state = "dead"
            self._finalizer()
