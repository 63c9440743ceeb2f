"""What ``nextbest score`` does, kept out of the Typer function: check the request, run the job.

:func:`score_files` is the one call: it loads the champions, checks every
input before any work (a missing column or an unknown engine is fatal at
once), then runs the job on the local or the Spark engine.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nextbest import registry
from nextbest.batch.events import with_events
from nextbest.batch.job import BatchJob, JobResult, run_local
from nextbest.batch.manifest import is_uri
from nextbest.batch.progress import Reporter, RichReporter
from nextbest.batch.report import ScoreReport, without_ids, write_score_report
from nextbest.batch.source import Source, file_digest
from nextbest.config import settings
from nextbest.data import load_dataset
from nextbest.data.files import read_table
from nextbest.data.schema import require_columns, validate_customers
from nextbest.decision.catalog import load_catalog
from nextbest.errors import BatchError, SchemaError
from nextbest.features.rfm import as_of_date
from nextbest.scoring import ModelSet

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
    if (dataset is None) == (transactions is None):
        raise SchemaError("give exactly one of --dataset or --transactions")
    if horizon_days <= 0:
        raise SchemaError(f"--horizon-days must be > 0, got {horizon_days}")
    cutoff = as_of_date(as_of) if as_of is not None else None
    extras: dict = {}
    if dataset is not None:
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
    """Run ``job`` on ``engine`` (``local`` or ``spark``); the reporter is closed afterwards."""
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


@dataclass(frozen=True)
class ScoreRequest:
    """The options of ``nextbest score`` (see ``nextbest score --help``)."""

    dataset: str | None
    transactions: str | Path | None
    customers: Path | None
    mapping: dict[str, str]
    as_of: str | None
    horizon_days: float
    output: str | Path
    catalog: Path | None = None
    contact_history: Path | None = None
    engine: str = "local"
    chunk_size: int = 100_000
    resume: bool = False
    workers: int = 1
    spark_master: str | None = None
    track: bool = True


def score_files(
    request: ScoreRequest, reporter: Reporter
) -> tuple[JobResult, ModelSet, ScoreReport | None]:
    """Score every customer of the request's input with the champions; write the report.

    Returns the job result, the models that decided and the scoring report
    (``<output stem>.report.html``; ``None`` for an output URI, which only
    Spark writes). With ``request.track`` the report and the run's figures are
    logged to MLflow.

    Raises
    ------
    NoChampionError
        If the CLV or churn model has no champion (run ``nextbest train``).
    SchemaError, BatchError
        On an unusable input or output, before any work is done.
    """
    registry.setup(settings().paths)
    catalog = load_catalog(request.catalog)
    models = registry.load_models(catalog)
    job = build_job(
        request.dataset,
        request.transactions,
        request.customers,
        request.mapping,
        request.as_of,
        request.horizon_days,
        request.output,
        request.contact_history,
        request.chunk_size,
        request.resume,
        catalog,
        request.workers,
    )
    job = with_events(job, settings().paths, request.engine)  # consent, contacts, purchases
    result = run_job(job, models, request.engine, reporter, request.spark_master)
    report = None
    if not is_uri(result.output):
        report = write_score_report(result.output, catalog)
        if request.track:
            log_score_run(result, models, report)
    return result, models, report


def log_score_run(result: JobResult, models: ModelSet, report: ScoreReport) -> str:
    """One MLflow run per scoring run: counts, timings, model versions and the report."""
    import mlflow

    s = result.stats
    with mlflow.start_run(run_name=f"score-{Path(str(result.output)).stem}-{result.as_of.date()}"):
        mlflow.set_tags({"stage": "score", "as_of": str(result.as_of.date())})
        mlflow.log_params({f"version.{k}": v for k, v in models.versions.items()})
        mlflow.log_metrics(
            {
                "customers": float(s["customers"]),
                "scored": float(s["scored"]),
                "opted_out": float(s["opted_out"]),
                "rejected_lines": float(result.n_rejects),
                "seconds": float(result.total_seconds),
                "report_seconds": float(report.seconds),
                **{f"action.{k}": float(v) for k, v in s["actions"].items()},
            }
        )
        with tempfile.TemporaryDirectory() as tmp:  # MLflow gets the copy without ids
            copy = Path(tmp) / report.path.name
            copy.write_text(without_ids(report.path.read_text(encoding="utf-8")), "utf-8")
            mlflow.log_artifact(str(copy), "report")
        return mlflow.active_run().info.run_id
