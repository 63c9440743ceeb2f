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
from nextbest.batch.chunks import stats_of
from nextbest.batch.events import with_events
from nextbest.batch.job import BatchJob, JobResult, run_local
from nextbest.batch.manifest import is_uri
from nextbest.batch.output import write_scores, write_side_rejects
from nextbest.batch.progress import Reporter, RichReporter
from nextbest.batch.report import ScoreReport, without_ids, write_score_report
from nextbest.batch.source import Source, file_digest
from nextbest.config import settings
from nextbest.data import ATTRIBUTE_DATASETS, load_dataset
from nextbest.data.campaign_log import treatment_contacts, validate_campaign_log
from nextbest.data.files import read_table
from nextbest.data.readers import ReadOptions, split_flagged
from nextbest.data.schema import check_customers, require_columns
from nextbest.decision.catalog import load_catalog
from nextbest.errors import BatchError, SchemaError
from nextbest.features.rfm import as_of_date
from nextbest.scoring import ModelSet, score

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
    options: ReadOptions | None = None,
    campaign_log: Path | None = None,
) -> BatchJob:
    """Check the arguments and the inputs' columns (fatal problems raise before any work).

    ``options`` says how to read CSV inputs (``None`` parts are detected).
    """
    if (dataset is None) == (transactions is None):
        raise SchemaError("give exactly one of --dataset or --transactions")
    if horizon_days <= 0:
        raise SchemaError(f"--horizon-days must be > 0, got {horizon_days}")
    cutoff = as_of_date(as_of) if as_of is not None else None
    extras: dict = {}
    side: dict[str, pd.DataFrame] = {}
    if dataset is not None:
        ds = load_dataset(dataset, None, customers, None, options)
        source, cust, extras = Source.from_frame(dataset, ds.transactions), ds.customers, ds.extras
        if ds.customer_rejects is not None:
            side["customers"] = ds.customer_rejects
    else:
        source = (
            Source.from_uri(str(transactions), mapping)
            if is_uri(transactions)
            else Source.from_path(transactions, mapping, options)
        )
        cust = pd.DataFrame(
            {
                "customer_id": pd.Series([], dtype=object),
                "consent_profiling": pd.Series([], dtype=bool),
            }
        )
        if customers is not None:
            checked = check_customers(read_table(customers, options=options))
            cust = checked.customers
            if len(checked.rejects):
                side["customers"] = checked.rejects
    source.columns()  # a missing required column is fatal before anything is read
    history = None
    if campaign_log is not None:
        history, bad = campaign_contacts(campaign_log, catalog, cutoff, options)
        if len(bad):
            side["campaign-log"] = bad
    elif contact_history is not None:
        history, bad = split_flagged(read_table(contact_history, options=options))
        require_columns(history, ("customer_id", "offer_id", "timestamp"), "contact history")
        if len(bad):
            side["contact-history"] = bad
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
        history_digest=file_digest(Path(campaign_log or contact_history))
        if (campaign_log or contact_history)
        else "",
        workers=int(workers),
        side_rejects=side,
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
    options: ReadOptions | None = None
    campaign_log: Path | None = None


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
    attributes_only = request.transactions is None and (
        request.dataset is None or request.dataset in ATTRIBUTE_DATASETS
    )
    if attributes_only:
        return score_attributes(request)
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
        request.options,
        request.campaign_log,
    )
    job = with_events(job, settings().paths, request.engine)  # consent, contacts, purchases
    result = run_job(job, models, request.engine, reporter, request.spark_master)
    for name, rejects in job.side_rejects.items():
        result.side_rejects[name] = write_side_rejects(rejects, result.output, name)
    if job.source.info is not None:
        result.read_notes.append(f"{Path(request.transactions).name}: {job.source.info.summary}")
    report = None
    if not is_uri(result.output):
        report = write_score_report(result.output, catalog)
        if request.track:
            log_score_run(result, models, report)
    return result, models, report


def campaign_contacts(
    path: Path, catalog, as_of, options: ReadOptions | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The contacts of a campaign log (its treatment rows), for cooldowns and caps, and its rejects.

    The same file the uplift model learns from: what was sent is one log, not two.
    """
    frame, unreadable = split_flagged(read_table(path, options=options))
    checked = validate_campaign_log(frame, catalog, as_of)
    rejects = pd.concat([unreadable, checked.rejects], ignore_index=True)
    return treatment_contacts(checked.log), rejects


def score_attributes(request: ScoreRequest) -> tuple[JobResult, ModelSet, ScoreReport | None]:
    """Score customers known by their attributes only (a customers file, no transactions).

    Only an uplift model (trained from a campaign log) can decide for them: no
    CLV, churn or offer scores. Everything is in memory (one row per customer).
    """
    started = time.perf_counter()
    if request.dataset is not None:
        ds = load_dataset(request.dataset)
        customers, bundled_log = ds.customers, ds.campaign_log
        catalog = load_catalog(request.catalog or ds.catalog_path)
        as_of = pd.Timestamp(request.as_of or ds.default_as_of)
    elif request.customers is not None:
        if request.as_of is None:
            raise SchemaError("scoring customers without transactions needs --as-of")
        checked = check_customers(read_table(request.customers, options=request.options))
        customers, bundled_log = checked.customers, None
        catalog = load_catalog(request.catalog)
        as_of = as_of_date(request.as_of)
    else:
        raise SchemaError("give --dataset, --transactions, or --customers with --as-of")
    models = registry.load_models(catalog, need_clv=False)
    if models.uplift is None:
        raise SchemaError(
            "customers without transactions can only be decided by an uplift model: train one "
            "with `nextbest train --campaign-log LOG --customers FILE`"
        )
    history, side = None, {}
    if request.campaign_log is not None:
        history, bad = campaign_contacts(request.campaign_log, catalog, as_of, request.options)
        if len(bad):
            side["campaign-log"] = bad
    elif bundled_log is not None:
        history = treatment_contacts(validate_campaign_log(bundled_log, catalog, as_of).log)
    scores = score(customers, models, request.horizon_days, None, history, as_of)
    output = write_scores(scores, Path(request.output))
    seconds = time.perf_counter() - started
    result = JobResult(
        output=output,
        rejects_path=None,
        as_of=as_of,
        n_input=len(customers),
        n_chunks=1,
        stats=stats_of(scores),
        rejected={},
        seconds={"scoring": seconds},
    )
    for name, rejects in side.items():
        result.side_rejects[name] = write_side_rejects(rejects, output, name)
    result.read_notes.append("customers known by their attributes only: uplift decisions")
    report = write_score_report(output, catalog)
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
