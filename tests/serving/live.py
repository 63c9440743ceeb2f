"""A real ``bentoml serve`` of the service on a free localhost port, for tests that talk HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

START_TIMEOUT_S = 300
STOP_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it does not exit in time."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT_S)


def processes_of(home: Path) -> list[int]:
    """Live processes whose environment names ``home`` as NEXTBEST_HOME (workers, children)."""
    needle = f"NEXTBEST_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append(int(entry.name))
    return found


def wait_gone(home: Path, timeout: float = 30.0) -> list[int]:
    """Wait until no process of ``home`` is left; the survivors' pids (empty when all left)."""
    deadline = time.monotonic() + timeout
    while (left := processes_of(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@contextlib.contextmanager
def live_server(home: Path, tmp_path: Path, api_key: str, **extra: str):
    """Yield ``(base_url, process)`` of ``bentoml serve`` on ``home``, ready (``/readyz`` 200)."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "PROMETHEUS_MULTIPROC_DIR", "NEXTBEST_ALLOW_NO_AUTH")
    }
    env.update(
        NEXTBEST_HOME=str(home),
        NEXTBEST_API_KEY=api_key,
        BENTOML_HOME=str(tmp_path / "bentoml"),
        BENTOML_DO_NOT_TRACK="True",
        NEXTBEST_RELOAD_SECONDS="0",
        **extra,
    )
    bentoml = Path(sys.executable).with_name("bentoml")
    log_path = tmp_path / "serve.log"
    cmd = [str(bentoml), "serve", "nextbest.service:NextBest", "--host", "127.0.0.1"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline, ready = time.monotonic() + START_TIMEOUT_S, False
            with httpx.Client(base_url=base, timeout=10) as http:
                while time.monotonic() < deadline and proc.poll() is None:
                    try:
                        if http.get("/readyz").status_code == 200:
                            ready = True
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.5)
            assert ready, log_path.read_text()[-3000:]
            yield base, proc
        finally:
            stop(proc)
