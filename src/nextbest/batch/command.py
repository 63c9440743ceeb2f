"""What ``nextbest score`` and ``nextbest export-audiences`` do, kept out of the Typer functions."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import pandas as pd

from nextbest.batch.job import BatchError, BatchJob, JobResult, run_local
from nextbest.batch.manifest import is_uri
from nextbest.batch.progress import Reporter, RichReporter
from nextbest.batch.source import Source, file_digest
from nextbest.data.schema import require_columns, validate_customers
from nextbest.errors import SchemaError

ENGINES = ("local", "spark")


def _plain(line: str) -> None:
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} nextbest score: {line}", file=sys.stderr, flush=True
    )


def make_reporter(console) -> Reporter:
    """A progress bar with ETA on a terminal, plain timestamped lines otherwise (logs, cron, CI)."""
    return RichReporter(console) if console.is_terminal else Reporter(_plain)


def catalog_digest(catalog) -> str:
    return hashlib.sha256(
        json.dumps(catalog.as_dict(), sort_keys=True, default=str).encode()
    ).hexdigest()[:16]


def build_job(
    dataset: str | None,
    transactions: Path | None,
    customers: Path | None,
    mapping: dict[str, str],
    as_of: str | None,
    horizon_days: float,
    output: Path,
    contact_history: Path | None,
    chunk_size: int,
    resume: bool,
    catalog,
    workers: int = 1,
) -> BatchJob:
    """Check the arguments and the inputs' columns (fatal problems raise before any work)."""
    from nextbest.data.files import read_table
    from nextbest.features.rfm import as_of_date

    if (dataset is None) == (transactions is None):
        raise SchemaError("give exactly one of --dataset or --transactions")
    if horizon_days <= 0:
        raise SchemaError(f"--horizon-days must be > 0, got {horizon_days}")
    cutoff = as_of_date(as_of) if as_of is not None else None
    extras: dict = {}
    if dataset is not None:
        from nextbest.data import load_dataset

        ds = load_dataset(dataset, None, customers, None)
        source, cust, extras = Source.from_frame(dataset, ds.transactions), ds.customers, ds.extras
    else:
        source = (
            Source.from_uri(str(transactions), mapping)
            if is_uri(transactions)
            else Source.from_path(transactions, mapping)
        )
        cust = (
            validate_customers(read_table(customers))
            if customers is not None
            else pd.DataFrame(
                {
                    "customer_id": pd.Series([], dtype=object),
                    "consent_profiling": pd.Series([], dtype=bool),
                }
            )
        )
    source.columns()  # a missing required column is fatal before anything is read
    history = None
    if contact_history is not None:
        history = read_table(contact_history)
        require_columns(history, ("customer_id", "offer_id", "timestamp"), "contact history")
    job = BatchJob(
        source=source,
        customers=cust,
        output=str(output) if is_uri(output) else Path(output),
        horizon_days=float(horizon_days),
        as_of=cutoff,
        extras=extras,
        contact_history=history,
        chunk_size=int(chunk_size),
        resume=resume,
        catalog_digest=catalog_digest(catalog),
        history_digest=file_digest(Path(contact_history)) if contact_history else "",
        workers=int(workers),
    )
    _ = job.fmt  # raises on an unsupported output suffix
    return job


def run_job(
    job: BatchJob, models, engine: str, reporter: Reporter, spark_master: str | None = None
) -> JobResult:
    if engine not in ENGINES:
        raise BatchError(f"--engine must be one of {list(ENGINES)}, got {engine!r}")
    try:
        if engine == "spark":
            try:
                from pyspark.errors import AnalysisException

                from nextbest.batch.spark import run_spark
            except ImportError as exc:  # pragma: no cover - pyspark is the `spark` extra
                raise BatchError(
                    f"--engine spark needs pyspark (install nextbest[spark]): {exc}"
                ) from exc
            try:
                return run_spark(job, models, reporter, master=spark_master)
            except (
                AnalysisException
            ) as exc:  # a missing path, an unreadable file: its first line says it
                raise BatchError(f"spark: {str(exc).strip().splitlines()[0]}") from exc
        return run_local(job, models, reporter)
    finally:
        reporter.close()


def summary_lines(result: JobResult, models) -> list[str]:
    """The end-of-run summary a marketer reads: who was scored, what they get, what was refused, how
    long."""
    s = result.stats
    secs = result.total_seconds
    rate = s["customers"] / secs if secs > 0 else float("nan")
    lines = [
        f"scored {s['scored']:,} customers ({s['opted_out']:,} opted out: non-personalised, not "
        "scored) "
        f"as of {result.as_of.date()} from {result.n_input:,} lines in {result.n_chunks} chunk(s) "
        f"-> {result.output}",
        "actions: " + (", ".join(f"{k} {v:,}" for k, v in s["actions"].items()) or "none"),
        "offers: " + (", ".join(f"{k} {v:,}" for k, v in s["offers"].items()) or "none"),
    ]
    if result.n_rejects:
        lines.append(
            f"rejected {result.n_rejects:,} lines -> {result.rejects_path}: "
            + ", ".join(f"{k} {v:,}" for k, v in result.rejected.items())
        )
    else:
        lines.append("rejected 0 lines")
    lines.append("models: " + ", ".join(f"{k} v{v}" for k, v in sorted(models.versions.items())))
    lines.append(
        f"time {secs:.1f}s ({rate:,.0f} customers/s): "
        + ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
        + (
            f"; resumed from {result.resumed_chunks} finished step(s)"
            if result.resumed_chunks
            else ""
        )
    )
    return lines
