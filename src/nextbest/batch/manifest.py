"""The work directory of a batch job and its manifest (what is finished, for ``--resume``).

``<output>.work/manifest.json`` records what the job is (input fingerprint,
customers, catalog and contact-history fingerprints, column mapping,
``as_of``, horizon, model versions, engine, chunk size, output format) and
what is done (the partition pass, then each chunk's features and scores).
It is rewritten atomically after every finished step, so a killed job
leaves a manifest that only lists files that are complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from nextbest.config import settings
from nextbest.errors import ResumeError

FORMAT = 1


def is_uri(path) -> bool:
    """``hdfs://...``, ``s3a://...``, ``file://...``: a location only Spark reads and writes."""
    return "://" in str(path)


def work_dir(output) -> Path:
    """``scores.parquet`` -> ``scores.parquet.work`` (next to the output, same file system).

    For a URI output (Spark) the manifest lives on the driver, under
    ``NEXTBEST_HOME/batch-work/<hash of the URI>``.
    """
    if is_uri(output):
        return settings().paths.batch_work / hashlib.sha256(str(output).encode()).hexdigest()[:16]
    output = Path(output)
    return output.with_name(output.name + ".work")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


@dataclass
class Manifest:
    """The job's identity and its progress."""

    path: Path
    job: dict
    state: dict = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.path.parent

    def save(self) -> None:
        atomic_write_text(
            self.path,
            json.dumps(
                {"format": FORMAT, "job": self.job, **self.state},
                indent=1,
                sort_keys=True,
                default=str,
            ),
        )

    def section(self, name: str) -> dict:
        return self.state.setdefault(name, {})

    @classmethod
    def open(cls, output: Path, job: dict, resume: bool, note=print) -> Manifest:
        """Start a job in ``<output>.work``: fresh, or continued when ``resume`` and the job
        matches.

        Raises
        ------
        ResumeError
            If ``resume`` and the work directory holds a different job.
        """
        root = work_dir(output)
        path = root / "manifest.json"
        if resume and path.exists():
            saved = json.loads(path.read_text())
            old = saved.get("job", {})
            if saved.get("format") != FORMAT:
                raise ResumeError(
                    f"cannot resume: {root} was written by another nextbest version; "
                    "run again without --resume to start over"
                )
            diff = sorted(k for k in set(old) | set(job) if old.get(k) != job.get(k))
            if diff:
                detail = "; ".join(f"{k}: was {old.get(k)!r}, now {job.get(k)!r}" for k in diff)
                raise ResumeError(
                    f"cannot resume {root}: the job changed ({detail}); "
                    "run again without --resume to start over"
                )
            state = {k: v for k, v in saved.items() if k not in ("format", "job")}
            return cls(path, job, state)
        if root.exists():
            note(
                f"discarding the unfinished run in {root}"
                + ("" if resume else " (use --resume to continue one)")
            )
            shutil.rmtree(root)
        elif resume:
            note(f"nothing to resume in {root}: starting a new run")
        root.mkdir(parents=True)
        manifest = cls(path, job, {})
        manifest.save()
        return manifest
