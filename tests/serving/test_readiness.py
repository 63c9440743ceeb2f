"""Readiness of every worker: markers per server and worker, dead processes do not count."""

from __future__ import annotations

import os
import subprocess
import sys

from nextbest.serving.readiness import WorkerReadiness


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_ready_only_when_every_worker_said_so(tmp_path):
    server = os.getpid()
    one = WorkerReadiness(tmp_path, index=1, expected=2, server_pid=server)
    two = WorkerReadiness(tmp_path, index=2, expected=2, server_pid=server)
    assert not one.all_ready()
    one.mark_ready()
    assert not one.all_ready() and not two.all_ready()
    two.mark_ready()
    assert one.all_ready() and two.all_ready()
    two.clear()
    assert not one.all_ready()


def test_a_dead_worker_or_another_server_does_not_count(tmp_path):
    mine = WorkerReadiness(tmp_path, index=1, expected=2, server_pid=os.getpid())
    mine.mark_ready()
    (mine.run_dir / "worker-2").write_text(str(dead_pid()))  # crashed, being restarted
    assert mine.ready_workers() == 1 and not mine.all_ready()
    gone = WorkerReadiness(tmp_path, index=1, expected=1, server_pid=dead_pid())
    gone.mark_ready()
    mine.clean_stale()
    assert not gone.run_dir.exists() and mine.run_dir.exists()


def test_outside_bentoml_serve_there_is_one_worker_and_no_marker(tmp_path):
    solo = WorkerReadiness(tmp_path, index=None)
    solo.mark_ready()
    assert solo.all_ready() and not any(tmp_path.iterdir())
