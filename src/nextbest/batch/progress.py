"""Progress of a batch job: a rich progress bar with ETA on a terminal, plain log lines
otherwise."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("nextbest.batch")


class Reporter:
    """Plain progress: one line per step (for logs, CI and cron mail).

    ``write`` receives each line; the default sends it to the
    ``nextbest.batch`` logger at INFO.
    """

    def __init__(
        self, write: Callable[[str], None] | None = None, every_seconds: float = 0.0
    ) -> None:
        self.write = write or log.info
        self.every = every_seconds
        self._phase = ""
        self._total: float | None = None
        self._done = 0.0
        self._start = 0.0
        self._last = 0.0
        self._unit = ""

    def info(self, message: str) -> None:
        self.write(message)

    def start(self, phase: str, total: float | None, unit: str) -> None:
        self._phase, self._total, self._unit = phase, total, unit
        self._done, self._start, self._last = 0.0, time.perf_counter(), 0.0

    def advance(self, n: float = 1, done: float | None = None) -> None:
        self._done = self._done + n if done is None else done
        now = time.perf_counter()
        finished = self._total is not None and self._done >= self._total
        if finished or now - self._last >= self.every:
            self._last = now
            self.write(self._line(now))

    def chunk_saved(self, phase: str, n_done: int) -> None:
        """Called once a chunk of ``phase`` is durably saved (``n_done`` in this run so far).

        A job killed after this call resumes past that chunk; tests use the
        hook to kill a job at a known point.
        """

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _line(self, now: float) -> str:
        elapsed = now - self._start
        if self._total:
            pct = min(1.0, self._done / self._total)
            eta = f"{elapsed / pct - elapsed:.0f}s" if pct > 0 else "?"
            return (
                f"{self._phase}: {self._done:,.0f}/{self._total:,.0f} {self._unit} ({pct:.0%}), "
                f"{elapsed:.1f}s elapsed, ETA {eta}"
            )
        return f"{self._phase}: {self._done:,.0f} {self._unit}, {elapsed:.1f}s elapsed"


class RichReporter(Reporter):
    """A rich progress bar (description, bar, done/total, elapsed, ETA) on ``console``."""

    def __init__(self, console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        super().__init__(lambda m: console.print(m, markup=False, highlight=False))
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.progress.start()
        self.task = None

    def info(self, message: str) -> None:
        self.progress.console.print(message, markup=False, highlight=False)

    def start(self, phase: str, total: float | None, unit: str) -> None:
        self.task = self.progress.add_task(phase, total=total, unit=unit)

    def advance(self, n: float = 1, done: float | None = None) -> None:
        if done is None:
            self.progress.advance(self.task, n)
        else:
            self.progress.update(self.task, completed=done)

    def finish(self) -> None:
        if self.task is not None:
            t = self.progress.tasks[self.task]
            if t.total is None:
                self.progress.update(self.task, total=t.completed)

    def close(self) -> None:
        self.progress.stop()
