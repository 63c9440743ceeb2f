"""Readiness of the whole service, not of one worker: ``/readyz`` is 200 only when all can answer.

``bentoml serve`` with ``workers: N`` starts N processes that share the
listening socket; the kernel hands each connection to any of them, and each
loads its models and snapshot on its own. A worker that answered ``/readyz``
for itself would let a load balancer send traffic that the other, still
loading, worker answers with 503. So:

* each worker writes a marker file ``NEXTBEST_HOME/serving/ready/<server
  pid>/worker-<index>`` (holding its pid) once its state is built and its
  overlay has replayed the events;
* ``/readyz`` (any worker) answers 200 only when it is ready itself and the
  markers of all N workers of this server are there, each naming a live
  process (a worker that died and is being restarted does not count);
* N is BentoML's configured ``services.nextbest.workers``
  (``BENTOML_CONFIG_OPTIONS="services.nextbest.workers=2"``; ``cpu_count``
  is the CPU count), the server is the workers' parent process, so two
  servers on one home, or a previous run's markers, never mix.

Outside ``bentoml serve`` (the in-process ASGI app of the tests) there is
one worker and no marker.

A worker also leaves with its server (:func:`exit_with_server`): BentoML
starts each worker in its own session, so a ``kill -9`` of ``bentoml serve``
(or of its process group) would otherwise leave orphaned workers answering
on the inherited socket with a state no one reloads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

SERVICE_NAME = "nextbest"


def worker_index() -> int | None:
    """BentoML's 1-based index of this worker, or None outside ``bentoml serve``."""
    try:
        from bentoml._internal.context import server_context
    except ImportError:  # pragma: no cover - bentoml is a dependency
        return None
    return server_context.worker_index


def expected_workers(default: int = 1) -> int:
    """The number of workers BentoML was configured to start for this service."""
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer

        workers = BentoMLContainer.config.services.get().get(SERVICE_NAME, {}).get("workers")
    except Exception:  # a BentoML internal moved: fall back to one worker per marker
        log.warning("cannot read BentoML's worker count; /readyz checks this worker only")
        return default
    if workers == "cpu_count":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        return max(1, int(workers))
    except (TypeError, ValueError):
        return default


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerReadiness:
    """This worker's marker and the check over all workers (see the module docstring).

    Parameters
    ----------
    directory : Path
        ``NEXTBEST_HOME/serving/ready``.
    index, expected, server_pid : optional
        Worker index (1-based), number of workers and the server's pid
        (defaults: from BentoML and the parent process).
    """

    def __init__(
        self,
        directory: Path,
        index: int | None = None,
        expected: int | None = None,
        server_pid: int | None = None,
    ) -> None:
        self.index = worker_index() if index is None else index
        self.expected = (expected_workers() if self.index else 1) if expected is None else expected
        self.root = Path(directory)
        self.run_dir = self.root / str(server_pid or os.getppid())
        self.marker = self.run_dir / f"worker-{self.index}" if self.index else None

    def clean_stale(self) -> None:
        """Remove marker directories of servers that are no longer running."""
        if not self.root.is_dir():
            return
        for run in self.root.iterdir():
            if run.is_dir() and run.name.isdigit() and not _alive(int(run.name)):
                shutil.rmtree(run, ignore_errors=True)

    def mark_ready(self) -> None:
        """Say that this worker can answer (written atomically)."""
        if self.marker is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.marker.with_name(self.marker.name + f".{os.getpid()}.tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(self.marker)

    def clear(self) -> None:
        """Remove this worker's marker (at shutdown)."""
        if self.marker is not None:
            with contextlib.suppress(FileNotFoundError):
                if self.marker.read_text().strip() == str(os.getpid()):
                    self.marker.unlink()

    def ready_workers(self) -> int:
        """Workers of this server whose marker names a live process."""
        if not self.run_dir.is_dir():
            return 0
        n = 0
        for marker in self.run_dir.glob("worker-*"):
            if marker.name.endswith(".tmp"):
                continue
            try:
                pid = int(marker.read_text().strip())
            except (OSError, ValueError):
                continue
            n += _alive(pid)
        return n

    def all_ready(self) -> bool:
        """True when every configured worker of this server has said it is ready."""
        if self.marker is None:
            return True
        return self.ready_workers() >= self.expected


def exit_with_server(
    server_pid: int, interval: float = 1.0, grace: float = 15.0
) -> threading.Thread:
    """Watch the server (this worker's parent) and leave when it is gone.

    A daemon thread checks every ``interval`` seconds that the parent is
    still ``server_pid``; once it is not (the server died and the worker was
    re-parented), the worker sends itself SIGTERM (a graceful shutdown:
    readiness marker, decision process, audit log, store) and exits at once
    if that has not happened within ``grace`` seconds.
    """

    def watch() -> None:
        while os.getppid() == server_pid:
            time.sleep(interval)
        log.warning("server %d is gone: this worker (pid %d) shuts down", server_pid, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    thread = threading.Thread(target=watch, name="nextbest-server-watch", daemon=True)
    thread.start()
    return thread
