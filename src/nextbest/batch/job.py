"""The streaming batch job (local engine): bounded memory, resumable, atomic output.

Three passes over the data, each recorded in the manifest (:mod:`.manifest`):

1. **partition** - read the input in Arrow record batches and append each
   line (with its input row number) to one of ``n`` bucket files chosen by a
   hash of the normalised ``customer_id``; ``n`` is about
   customers / ``chunk_size``. Memory: one record batch.
2. **features** - per bucket (= chunk): validate (rejects with their input
   row numbers), drop opted-out customers' lines, build features, and count
   active customers and category buyers of the last 30 days. Memory: one chunk.
3. **scores** - the global category popularity is summed from the counts;
   per chunk :func:`nextbest.scoring.score` (the HTTP service's function)
   writes a part file.

Then the parts are concatenated into ``<output>.tmp`` and renamed onto the
output, rejects into ``<output>.rejects.parquet`` the same way, and the work
directory is removed. A killed job continues with ``--resume`` from its
finished chunks; chunks are deterministic, so the output is the same as an
uninterrupted run's, byte for byte.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nextbest.batch.chunks import (
    ChunkData,
    FeatureSetup,
    bucket_of,
    chunk_features,
    merge_stats,
    popularity_counts,
    popularity_from_counts,
    rejects_frame,
    score_chunk,
    scores_table,
    stats_of,
    validate_chunk,
)
from nextbest.batch.manifest import Manifest, is_uri, work_dir
from nextbest.batch.output import assemble_rejects, assemble_scores, rejects_path
from nextbest.batch.partition import chunk_name, partition, read_bucket
from nextbest.batch.progress import Reporter
from nextbest.batch.source import Source, frame_digest
from nextbest.data.schema import ValidationReport
from nextbest.errors import BatchError, EmptyInput
from nextbest.scoring import ModelSet, single_threaded

DEFAULT_CHUNK_SIZE = 100_000


@dataclass
class BatchJob:
    """One scoring job over a transaction source."""

    source: Source
    customers: pd.DataFrame
    output: Path | str  # a str URI (hdfs://, s3a://) only with the Spark engine
    horizon_days: float
    as_of: pd.Timestamp | None = None
    extras: dict = field(default_factory=dict)
    contact_history: pd.DataFrame | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    resume: bool = False
    catalog_digest: str = ""
    history_digest: str = ""
    workers: int = 1
    # Rejected rows of the side inputs (customers, contact history), by input name.
    side_rejects: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def fmt(self) -> str:
        if is_uri(self.output):
            return "parquet"  # Spark's directory of part files
        suffix = Path(self.output).suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise BatchError(f"output {self.output} must end in .parquet or .csv")
        return suffix[1:]

    def identity(self, models: ModelSet, engine: str) -> dict:
        """What must not change between a killed run and its ``--resume``."""
        return {
            "input": str(self.source.uri or self.source.path or self.source.name),
            "input_fingerprint": self.source.fingerprint(),
            "mapping": dict(sorted(self.source.mapping.items())),
            "customers_fingerprint": frame_digest(self.customers),
            "catalog": self.catalog_digest,
            "contact_history": self.history_digest,
            "as_of": None if self.as_of is None else str(pd.Timestamp(self.as_of).date()),
            "horizon_days": float(self.horizon_days),
            "model_versions": dict(sorted(models.versions.items())),
            "engine": engine,
            "chunk_size": int(self.chunk_size),
            "output_format": self.fmt,
        }


@dataclass
class JobResult:
    """What a finished job did."""

    output: Path
    rejects_path: Path | None
    as_of: pd.Timestamp
    n_input: int
    n_chunks: int
    stats: dict
    rejected: dict[str, int]
    seconds: dict[str, float]
    resumed_chunks: int = 0
    side_rejects: dict[str, Path] = field(default_factory=dict)  # input name -> rejects file
    read_notes: list[str] = field(default_factory=list)  # how the input files were read

    @property
    def n_rejects(self) -> int:
        return int(sum(self.rejected.values()))

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))


def _write_parquet(frame_or_table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(frame_or_table, pa.Table):
        pq.write_table(frame_or_table, tmp)
    else:
        frame_or_table.to_parquet(tmp, index=False)
    tmp.replace(path)


def resolve_as_of(as_of, last_timestamp: str | None) -> pd.Timestamp:
    """``--as-of``, or the day after the last transaction (as ``nextbest train`` does)."""
    if as_of is not None:
        return pd.Timestamp(as_of)
    if last_timestamp is None:
        raise BatchError("no parsable timestamp in the transactions; give --as-of")
    return pd.Timestamp(last_timestamp).normalize() + pd.Timedelta(days=1)


# -- pass 2 ------------------------------------------------------------------------------------
def features_pass(
    job: BatchJob, manifest: Manifest, setup: FeatureSetup, as_of: pd.Timestamp, reporter: Reporter
) -> None:
    root, done = manifest.root, manifest.section("features")
    n_buckets = manifest.state["partition"]["n_buckets"]
    (root / "features").mkdir(exist_ok=True)
    (root / "rejects").mkdir(exist_ok=True)
    cust_bucket = bucket_of(job.customers["customer_id"], n_buckets)
    reporter.start("features", n_buckets, "chunks")
    reporter.advance(done=len(done))
    finished_here = 0
    for b in range(n_buckets):
        if str(b) in done:
            continue
        raw = read_bucket(root, b)
        if raw is None:
            chunk = ChunkData(
                pd.DataFrame(columns=["customer_id"]),
                pd.DataFrame(),
                ValidationReport(0, 0),
                np.zeros(0, dtype="int64"),
            )
        else:
            chunk = validate_chunk(raw, as_of)
        del raw
        customers = job.customers[cust_bucket == b]
        features, table = chunk_features(chunk.transactions, customers, setup, as_of)
        _write_parquet(
            _storable(features), root / "features" / chunk_name("features", b, "parquet")
        )
        if len(chunk.rejects):
            _write_parquet(
                rejects_frame(chunk.rejects), root / "rejects" / chunk_name("rejects", b, "parquet")
            )
        active, buyers = popularity_counts(table, as_of, len(setup.categories))
        done[str(b)] = {
            "customers": int(len(features)),
            "lines": chunk.report.n_input,
            "valid": chunk.report.n_valid,
            "rejected": chunk.report.rejected,
            "active_30d": active,
            "buyers_30d": buyers,
        }
        manifest.save()
        finished_here += 1
        reporter.advance(1)
        reporter.chunk_saved("features", finished_here)
    reporter.finish()
    if not sum(c["customers"] for c in done.values()):
        raise BatchError(
            f"no valid transactions before as_of {as_of.date()}: nothing to score "
            f"(see the rejects for why lines were refused)"
        )


def _storable(features: pd.DataFrame) -> pd.DataFrame:
    """Object columns (demographics) as pandas strings so every chunk's Parquet has stable types."""
    out = features
    for col in features.columns:
        if features[col].dtype == object and col != "customer_id":
            out = out.assign(**{col: features[col].astype("string")})
    return out


def global_popularity(manifest: Manifest, categories: tuple[str, ...]) -> dict[str, float]:
    chunks = manifest.section("features").values()
    active = sum(c["active_30d"] for c in chunks)
    buyers = [sum(c["buyers_30d"][j] for c in chunks) for j in range(len(categories))]
    return popularity_from_counts(categories, active, buyers)


# -- pass 3 ------------------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(models_blob: bytes) -> None:
    """Worker process: unpickle the models once."""
    import pickle

    _WORKER["models"] = single_threaded(pickle.loads(models_blob))


def _score_bucket(
    root: Path,
    b: int,
    horizon_days: float,
    popularity: dict,
    history,
    as_of,
    models: ModelSet | None = None,
) -> tuple[int, dict, int]:
    """Score chunk ``b`` from its features file and write its part; returns (b, stats,
    customers)."""
    models = models or _WORKER["models"]
    features = pd.read_parquet(root / "features" / chunk_name("features", b, "parquet"))
    if not len(features):
        return b, merge_stats([]), 0
    scores = score_chunk(features, models, horizon_days, popularity, history, as_of)
    _write_parquet(scores_table(scores), root / "scores" / chunk_name("scores", b, "parquet"))
    return b, stats_of(scores), len(features)


def scores_pass(
    job: BatchJob,
    manifest: Manifest,
    models: ModelSet,
    popularity: dict[str, float],
    as_of: pd.Timestamp,
    reporter: Reporter,
) -> None:
    root, done = manifest.root, manifest.section("scores")
    n_buckets = manifest.state["partition"]["n_buckets"]
    (root / "scores").mkdir(exist_ok=True)
    history = job.contact_history
    hist_bucket = bucket_of(history["customer_id"], n_buckets) if history is not None else None
    total = sum(c["customers"] for c in manifest.section("features").values())
    reporter.start("scoring", total, "customers")
    reporter.advance(done=sum(s["customers"] for s in done.values()))
    todo = [b for b in range(n_buckets) if str(b) not in done]
    args = [
        (
            root,
            b,
            job.horizon_days,
            popularity,
            history[hist_bucket == b] if history is not None else None,
            as_of,
        )
        for b in todo
    ]
    finished_here = 0

    def record(b: int, stats: dict, n: int) -> None:
        nonlocal finished_here
        done[str(b)] = stats
        manifest.save()
        finished_here += 1
        reporter.advance(n)
        reporter.chunk_saved("scores", finished_here)

    workers = min(job.workers, len(todo))
    if workers <= 1:
        for a in args:
            record(*_score_bucket(*a, models=models))
    else:
        import multiprocessing as mp
        import pickle
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        blob = pickle.dumps(models)
        with ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(blob,)
        ) as pool:
            pending = set()
            queue = list(args)
            while queue or pending:
                while queue and len(pending) < workers:  # at most one chunk per worker in flight
                    pending.add(pool.submit(_score_bucket, *queue.pop(0)))
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    record(*fut.result())
    reporter.finish()


def rejected_counts(manifest: Manifest) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in manifest.section("features").values():
        for reason, n in c["rejected"].items():
            out[reason] = out.get(reason, 0) + int(n)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# -- the job -----------------------------------------------------------------------------------
def run_local(job: BatchJob, models: ModelSet, reporter: Reporter | None = None) -> JobResult:
    """Score every customer of ``job.source`` with ``models``; write ``job.output`` and its
    rejects."""

    reporter = reporter or Reporter()
    if is_uri(job.output) or job.source.uri is not None:
        raise BatchError("hdfs://, s3a:// and other URIs need --engine spark")
    output = Path(job.output)
    fmt = job.fmt
    manifest = Manifest.open(output, job.identity(models, "local"), job.resume, note=reporter.info)
    seconds: dict[str, float] = dict(manifest.state.get("seconds", {}))
    resumed = len(manifest.section("scores")) + len(manifest.section("features"))

    def timed(phase: str, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start
        manifest.state["seconds"] = seconds
        manifest.save()
        return out

    if not manifest.state.get("partition", {}).get("done"):
        manifest.state.pop("features", None)
        manifest.state.pop("scores", None)
        try:
            manifest.state["partition"] = timed(
                "read",
                partition,
                job.source,
                manifest.root,
                job.chunk_size,
                reporter,
                job.as_of is None,
            )
        except EmptyInput as exc:
            raise BatchError(str(exc)) from exc
    part = manifest.state["partition"]
    as_of = resolve_as_of(job.as_of, part.get("last_timestamp"))
    setup = FeatureSetup.build(
        job.customers,
        models.catalog.categories,
        float(models.clv.time_unit_days),
        job.extras,
        models.catalog.channel_names,
    )
    timed("features", features_pass, job, manifest, setup, as_of, reporter)
    popularity = global_popularity(manifest, setup.categories)
    timed("scoring", scores_pass, job, manifest, models, popularity, as_of, reporter)

    start = time.perf_counter()
    n_buckets = part["n_buckets"]
    parts = [
        p
        for b in range(n_buckets)
        if (p := manifest.root / "scores" / chunk_name("scores", b, "parquet")).exists()
    ]
    assemble_scores(parts, output, fmt)
    rej_parts = [
        p
        for b in range(n_buckets)
        if (p := manifest.root / "rejects" / chunk_name("rejects", b, "parquet")).exists()
    ]
    rej = assemble_rejects(rej_parts, rejects_path(output))
    seconds["write"] = seconds.get("write", 0.0) + time.perf_counter() - start
    stats = merge_stats(list(manifest.section("scores").values()))
    rejected = rejected_counts(manifest)
    shutil.rmtree(manifest.root, ignore_errors=True)
    return JobResult(
        output,
        rej,
        as_of,
        int(part["n_rows"]),
        n_buckets,
        stats,
        rejected,
        seconds,
        resumed_chunks=resumed,
    )


__all__ = ["BatchError", "BatchJob", "JobResult", "run_local", "work_dir", "DEFAULT_CHUNK_SIZE"]
