"""Fixtures for the event store: a real throwaway PostgreSQL server, and stores on both backends.

The server comes from Debian's ``postgresql`` package (``initdb`` and
``pg_ctl`` under ``/usr/lib/postgresql/*/bin``); ``.ci/run`` installs it.
It runs as the ``postgres`` user when the tests run as root, listens on a
free port on 127.0.0.1, keeps its data in a temporary directory, and is
stopped at the end of the session. Each test gets its own schema (through
``search_path`` in the URL), so tests never see each other's events.
Without the binaries the PostgreSQL tests fail, naming the install step.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from nextbest.events import open_store

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql "
    "package (apt-get update && apt-get install -y postgresql), as .ci/run does"
)


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    pytest.fail(INSTALL_HINT, pytrace=False)


def _version(path: str) -> float:
    try:
        return float(Path(path).parents[1].name)
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A running server; :meth:`new_url` gives a URL to an empty schema of its own."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._names = itertools.count()

    def new_url(self) -> str:
        import psycopg

        schema = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.base}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def postgres_server():
    """Start a PostgreSQL server for the session (fails without Debian's postgresql)."""
    bindir = _bindir()
    root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="nextbest-pg-"))
    data, log = base / "data", base / "server.log"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = ["runuser", "-u", "postgres", "--", *args] if root else list(args)
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    if root:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
    port = _free_port()
    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "-N",
        )
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {base}"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
    except subprocess.CalledProcessError as exc:
        server_log = log.read_text() if log.exists() else ""
        pytest.fail(
            f"PostgreSQL did not start: {exc.stderr or exc.stdout}\n{server_log}", pytrace=False
        )
    try:
        yield PostgresServer(port)
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    """A URL to an empty store, on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return request.getfixturevalue("postgres_server").new_url()


@pytest.fixture()
def store(store_url):
    """An open, empty event store on each backend in turn (closed afterwards)."""
    handle = open_store(store_url)
    yield handle
    handle.close()
