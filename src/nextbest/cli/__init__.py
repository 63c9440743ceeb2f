"""``nextbest`` command line.

Commands: ``generate`` (synthetic data), ``train`` (fit, log, register,
promote), ``score`` (batch decisions for every customer, local or Spark),
``export-audiences`` (one CSV per action for a campaign tool), ``evaluate``
(backtest against baselines), ``run`` (the main job: train if needed, then
decide for every customer), ``serve`` (the HTTP API), ``events ingest`` and
``events export`` (the event store), ``customer export`` and ``customer
forget`` (data-subject requests: access and erasure).

Each command parses its options, calls one function of the package and
prints what it returned (:mod:`.present`). Every error nextbest raises on
purpose (:class:`~nextbest.errors.NextbestError`) is caught once and printed
as one ``error:`` line with exit code 2; anything else is a bug and keeps its
traceback (``--debug`` for the whole of it).

Every command reads and writes state under ``NEXTBEST_HOME`` (default
``./.nextbest``); ``MLFLOW_TRACKING_URI`` overrides the MLflow store. Library
log output (MLflow, LightGBM, ...) goes to ``NEXTBEST_HOME/logs/nextbest.log``;
``--verbose`` shows it on the terminal too.

The application packages (train, batch, evaluate, serving) are imported inside
the command that uses them: they pull in LightGBM, lifetimes and MLflow, which
take seconds to import, and ``nextbest --help`` should not wait for them.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import sys
import traceback
import warnings
from pathlib import Path

import typer
from rich.console import Console

from nextbest import __version__
from nextbest.cli import present
from nextbest.config import load_config, load_configs, settings
from nextbest.errors import NextbestError, SchemaError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="nextbest: the next best action for every customer (CLV, churn, offers).",
)
events_app = typer.Typer(
    no_args_is_help=True,
    help="The event store: purchases, contacts, responses and consent (NEXTBEST_EVENTS_URL).",
)
customer_app = typer.Typer(
    no_args_is_help=True,
    help="Data-subject requests for one customer: access (export) and erasure (forget).",
)
app.add_typer(events_app, name="events")
app.add_typer(customer_app, name="customer")
console = Console(stderr=True)
out = Console()
_state = {"debug": False}
LOG_FILE = "nextbest.log"

DatasetOpt = typer.Option(
    None,
    "--dataset",
    "-d",
    help="Bundled dataset: cdnow, cdnow-full, completejourney or hillstrom (a campaign log).",
)
TransactionsOpt = typer.Option(
    None, "--transactions", "-t", exists=False, help="Your transactions file (.csv or .parquet)."
)
CustomersOpt = typer.Option(
    None, "--customers", help="Customers file with customer_id, consent_profiling."
)
MapOpt = typer.Option(
    None, "--map", help="Column mapping schema=source, repeatable, e.g. --map customer_id=HH_KEY."
)
AsOfOpt = typer.Option(
    None,
    "--as-of",
    help="First day NOT observed (YYYY-MM-DD); default: day after the last transaction.",
)
CatalogOpt = typer.Option(
    None, "--catalog", help="Offer catalog YAML (default models/offers.yaml)."
)
CampaignLogOpt = typer.Option(
    None,
    "--campaign-log",
    help="What was sent to whom and what happened (CSV or Parquet: customer_id, offer_id, "
    "contacted_at, group, propensity?, converted?, revenue?); see README 'Learning what works'.",
)
CsvSepOpt = typer.Option(
    None, "--csv-sep", help="CSV field separator, e.g. ';' or tab (default: detected)."
)
DecimalOpt = typer.Option(
    None, "--decimal", help="Decimal mark of amounts: '.' or ',' (default: detected)."
)
EncodingOpt = typer.Option(
    None, "--encoding", help="File encoding, e.g. utf-8, cp1252, latin-1 (default: detected)."
)
DateFormatOpt = typer.Option(
    None,
    "--date-format",
    help="Date order, e.g. DD.MM.YYYY or MM/DD/YYYY (default: detected; an ambiguous file is "
    "an error, never a guess).",
)
ConfigDirOpt = typer.Option(
    None, "--config-dir", help="Directory with clv.yaml, churn.yaml, nbo.yaml (default models/)."
)


def command(*args, group: typer.Typer | None = None, **kwargs):
    """``app.command`` (or ``group.command``) whose errors are printed as one line (see the
    module docstring)."""

    def register(func):
        @functools.wraps(func)
        def run(*a, **kw):
            try:
                return func(*a, **kw)
            except NextbestError as exc:
                _fail(str(exc))
            except (typer.Exit, typer.Abort, KeyboardInterrupt):
                raise
            except OSError as exc:  # an unreadable input, an unwritable output, a full disk
                _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
            except Exception as exc:
                if _state["debug"]:
                    raise
                console.print(
                    "".join(traceback.format_exception(exc, limit=-3)).rstrip(),
                    markup=False,
                    highlight=False,
                )
                console.print(
                    "[bold red]internal error[/] (a bug in nextbest, not in your input): "
                    "run again with --debug for the full traceback"
                )
                raise typer.Exit(code=1) from None

        return (group or app).command(*args, **kwargs)(run)

    return register


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


def _say(lines: list[str]) -> None:
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


def _log_to_file(verbose: bool) -> None:
    """Library log output to ``NEXTBEST_HOME/logs``; the terminal shows nextbest's warnings only."""
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # let MLflow's records propagate
    logs = settings().paths.logs
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for old in [h for h in root.handlers if getattr(h, "nextbest", False)]:
        root.removeHandler(old)  # a second command in the same process (tests) starts afresh
        old.close()
    try:
        logs.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(logs / LOG_FILE, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.nextbest = True
        root.addHandler(handler)
    except OSError:
        pass  # a read-only home: the terminal still gets what matters
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        terminal.addFilter(lambda record: record.name.startswith("nextbest"))
    terminal.nextbest = True
    root.addHandler(terminal)
    logging.captureWarnings(True)
    if not verbose:
        warnings.filterwarnings("ignore", module="mlflow")


@app.callback()
def main(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show library log output (MLflow, LightGBM) too."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback of an unexpected error."
    ),
) -> None:
    """nextbest: the next best action for every customer (CLV, churn, offers)."""
    _state["debug"] = debug
    _log_to_file(verbose)


def _read_options(csv_sep=None, decimal=None, encoding=None, date_format=None):
    """The CSV reading flags as :class:`~nextbest.data.readers.ReadOptions` (``None``: detect)."""
    from nextbest.data.readers import ReadOptions

    options = ReadOptions(csv_sep, decimal, encoding, date_format)
    return options if options.given else None


def _load(dataset, transactions, customers, mapping, options=None, campaign_log=None):
    from nextbest.data import load_dataset, write_customer_rejects
    from nextbest.data.files import parse_mapping

    if dataset is not None and transactions is not None:
        raise SchemaError("give exactly one of --dataset or --transactions, not both")
    if dataset is None and transactions is None and (customers is None or campaign_log is None):
        raise SchemaError(
            "give --dataset or --transactions (or --customers with --campaign-log: customers "
            "known by their attributes only)"
        )
    ds = load_dataset(
        dataset, transactions, customers, parse_mapping(mapping), options, campaign_log
    )
    rejects = write_customer_rejects(ds, settings().paths.ensure().rejects)
    _say(present.input_lines(ds, rejects))
    return ds


@command()
def generate(
    n_customers: int = typer.Option(
        10_000, "--n-customers", "-n", min=1, help="Number of customers."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed, same file."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .parquet or .csv."),
) -> None:
    """Write seeded synthetic transactions (BG/NBD + Gamma-Gamma, known parameters)."""
    from nextbest.data.synthetic import write_synthetic

    _say([write_synthetic(n_customers, seed, output)])


@command()
def train(
    dataset: str | None = DatasetOpt,
    transactions: Path | None = TransactionsOpt,
    customers: Path | None = CustomersOpt,
    mapping: list[str] | None = MapOpt,
    as_of: str | None = AsOfOpt,
    horizon_days: int | None = typer.Option(
        None, "--horizon-days", help="CLV horizon in days (default: models/clv.yaml)."
    ),
    churn_horizon_days: int | None = typer.Option(
        None,
        "--churn-horizon-days",
        help="Churn label window in days (default: models/churn.yaml).",
    ),
    time_unit_days: float | None = typer.Option(
        None, "--time-unit-days", help="CLV model time unit in days (default 7 = weeks)."
    ),
    margin: float | None = typer.Option(
        None, "--margin", help="Gross margin in (0, 1] applied to spend."
    ),
    discount_rate: float | None = typer.Option(
        None, "--discount-rate", help="Annual discount rate."
    ),
    catalog: Path | None = CatalogOpt,
    config_dir: Path | None = ConfigDirOpt,
    clv_only: bool = typer.Option(False, "--clv-only", help="Train only the CLV model."),
    campaign_log: Path | None = CampaignLogOpt,
    csv_sep: str | None = CsvSepOpt,
    decimal: str | None = DecimalOpt,
    encoding: str | None = EncodingOpt,
    date_format: str | None = DateFormatOpt,
) -> None:
    """Train CLV, churn and next-best-offer models (and uplift, with --campaign-log); log to
    MLflow; register; promote past the gates."""
    from nextbest.decision.catalog import load_catalog
    from nextbest.train import train_clv
    from nextbest.train.pipeline import train_all

    clv_flags = {
        "horizon_days": horizon_days,
        "time_unit_days": time_unit_days,
        "margin": margin,
        "discount_rate_annual": discount_rate,
    }
    cfg = load_configs(
        {"clv": clv_flags, "churn": {"horizon_days": churn_horizon_days}}, config_dir
    )
    options = _read_options(csv_sep, decimal, encoding, date_format)
    ds = _load(dataset, transactions, customers, mapping, options, campaign_log)
    if clv_only:
        _say(present.train_lines(clv=train_clv(ds, cfg["clv"], as_of=as_of)))
    else:
        pipe = train_all(ds, cfg, load_catalog(catalog or ds.catalog_path), as_of=as_of)
        _say(present.train_lines(pipe=pipe, k=cfg["nbo"]["k"]))


@command()
def score(
    dataset: str | None = DatasetOpt,
    transactions: str | None = typer.Option(
        None,
        "--transactions",
        "-t",
        help="Your transactions file (.csv or .parquet); with --engine spark also a Parquet URI "
        "(hdfs://, s3a://).",
    ),
    customers: Path | None = CustomersOpt,
    mapping: list[str] | None = MapOpt,
    as_of: str | None = AsOfOpt,
    horizon_days: int | None = typer.Option(
        None,
        "--horizon-days",
        help="Horizon for expected purchases and CLV, in days (default: models/clv.yaml).",
    ),
    output: str = typer.Option(
        ...,
        "--output",
        "-o",
        help="Output .parquet or .csv; with --engine spark also a URI (a Parquet directory).",
    ),
    catalog: Path | None = CatalogOpt,
    contact_history: Path | None = typer.Option(
        None,
        "--contact-history",
        help="Past contacts (customer_id, offer_id, timestamp) for cooldowns and caps; optional "
        "channel and converted columns feed the channel preference. --campaign-log replaces it "
        "(its treatment rows are the contacts).",
    ),
    campaign_log: Path | None = CampaignLogOpt,
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local (this machine, streaming by chunks) or spark (pyspark; see README).",
    ),
    chunk_size: int = typer.Option(
        100_000,
        "--chunk-size",
        min=1,
        help="Customers per chunk, approximately (memory grows with it).",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue a killed run from its finished chunks "
        "(same inputs, as_of, horizon, models).",
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Local engine: scoring processes, one chunk in memory each."
    ),
    spark_master: str | None = typer.Option(
        None,
        "--spark-master",
        help="Spark master URL (default $NEXTBEST_SPARK_MASTER, spark-submit's master, else "
        "local[*]).",
    ),
    track: bool = typer.Option(
        True, "--track/--no-track", help="Log the run and its report to MLflow."
    ),
    csv_sep: str | None = CsvSepOpt,
    decimal: str | None = DecimalOpt,
    encoding: str | None = EncodingOpt,
    date_format: str | None = DateFormatOpt,
) -> None:
    """Score every customer with the champion models, in chunks; one decision per customer,
    rejects and a report (<output stem>.report.html) beside it."""
    from nextbest.batch import command as batch_command
    from nextbest.data.files import parse_mapping

    horizon = horizon_days or load_config("clv")["horizon_days"]
    result, models, report = batch_command.score_files(
        batch_command.ScoreRequest(
            dataset=dataset,
            transactions=transactions,
            customers=customers,
            mapping=parse_mapping(mapping),
            as_of=as_of,
            horizon_days=float(horizon),
            output=output,
            catalog=catalog,
            contact_history=contact_history,
            engine=engine,
            chunk_size=chunk_size,
            resume=resume,
            workers=workers,
            spark_master=spark_master,
            track=track,
            options=_read_options(csv_sep, decimal, encoding, date_format),
            campaign_log=campaign_log,
        ),
        batch_command.make_reporter(console),
    )
    _say(present.score_lines(result, models, report))


@command()
def segments(
    scores: Path = typer.Option(
        ..., "--scores", "-s", help="Scores file written by `nextbest score` (.parquet or .csv)."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Output .csv or .parquet: customer_id and segment columns."
    ),
) -> None:
    """Each customer's micro-segment (value tier x churn risk x activity) for a CRM, with the
    definitions of the scoring report."""
    from nextbest.batch.segments import export_segments

    path, counts = export_segments(scores, output)
    _say(present.segment_lines(path, counts))


@command("export-audiences")
def export_audiences(
    scores: Path = typer.Option(
        ..., "--scores", "-s", help="Scores file written by `nextbest score` (.parquet or .csv)."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Directory for one CSV per action and offer."
    ),
    catalog: Path | None = CatalogOpt,
) -> None:
    """One CSV per action/offer (customer_id, offer, expected value, reason) for a campaign
    tool."""
    from nextbest.batch.audiences import export_audiences as export
    from nextbest.decision.catalog import load_catalog

    _say(present.audience_lines(export(scores, output, load_catalog(catalog)), output))


@command()
def run(
    dataset: str = typer.Option(
        "completejourney", "--dataset", "-d", help="Dataset to train on if a champion is missing."
    ),
    top: int = typer.Option(15, "--top", help="How many customers to show."),
    horizon_days: int | None = typer.Option(
        None, "--horizon-days", help="CLV horizon in days (default: models/clv.yaml)."
    ),
) -> None:
    """The main job: train if any champion is missing, then decide for every customer and show
    the top ones."""
    from nextbest.batch import run_main_job

    ds = _load(dataset, None, None, None)
    horizon = float(horizon_days or load_config("clv")["horizon_days"])
    result = run_main_job(
        ds,
        load_configs(),
        horizon,
        on_training=lambda missing: console.print(
            f"no champion for {missing}: training on {dataset} ..."
        ),
    )
    out.print(present.top_customers_table(result.top(top), horizon, dataset, result.as_of))
    lines = present.action_lines(result.scores, result.versions)
    lines += present.where_lines(result.output, result.report, settings().paths)
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True)


@command()
def evaluate(
    dataset: str | None = DatasetOpt,
    transactions: Path | None = TransactionsOpt,
    customers: Path | None = CustomersOpt,
    mapping: list[str] | None = MapOpt,
    as_of: list[str] | None = typer.Option(
        None,
        "--as-of",
        help="First day of the backtest horizon (YYYY-MM-DD); models see only earlier data. "
        "Default: the last data day + 1 - horizon. Repeatable: one backtest per cut-off in "
        "OUTPUT/<as_of>/ and the headline measures across them in OUTPUT/summary.json.",
    ),
    horizon_days: int = typer.Option(
        90, "--horizon-days", min=1, help="Days after --as-of that CLV predicts and is measured on."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Directory for metrics.json and report.html."
    ),
    models: str = typer.Option(
        "train",
        "--models",
        help="Models to evaluate: 'train' (fit now on data before --as-of), a registry alias "
        "('champion'), a version ('3') or 'clv=3,churn=champion,nbo=train'.",
    ),
    compare: tuple[str, str] | None = typer.Option(
        None,
        "--compare",
        help="Two model specs side by side, e.g. --compare champion 3; says which wins on each "
        "measure.",
    ),
    count_model: list[str] | None = typer.Option(
        None,
        "--count-model",
        help="CLV count model candidates when training (bgnbd, pareto, mbgnbd), repeatable; "
        "default models/clv.yaml.",
    ),
    churn_horizon_days: int | None = typer.Option(
        None,
        "--churn-horizon-days",
        help="Churn window in days when training (default models/churn.yaml).",
    ),
    catalog: Path | None = CatalogOpt,
    config_dir: Path | None = ConfigDirOpt,
    seed: int = typer.Option(42, "--seed", help="Seed of the random-offer baseline policy."),
    campaign_log: str | None = typer.Option(
        None,
        "--campaign-log",
        help="Add the Impact section: a campaign log file, or 'completejourney' (the "
        "dataset's 27 campaigns as an observational log).",
    ),
    campaign_catalog: Path | None = typer.Option(
        None, "--campaign-catalog", help="Catalog of the log's offers (default --catalog)."
    ),
    csv_sep: str | None = CsvSepOpt,
    decimal: str | None = DecimalOpt,
    encoding: str | None = EncodingOpt,
    date_format: str | None = DateFormatOpt,
) -> None:
    """Backtest: predict the horizon after --as-of and measure CLV, churn, offers and decisions
    against what happened."""
    from nextbest.decision.catalog import load_catalog
    from nextbest.evaluate import evaluate_to_dir
    from nextbest.evaluate.impact import campaign_for

    cfg = load_configs(
        {
            "clv": {"count_models": count_model or None},
            "churn": {"horizon_days": churn_horizon_days},
        },
        config_dir,
    )
    options = _read_options(csv_sep, decimal, encoding, date_format)
    ds = _load(dataset, transactions, customers, mapping, options)
    log = campaign_for(ds, campaign_log, campaign_catalog) if campaign_log else None
    specs = tuple(compare) if compare else (models,)
    if as_of and len(as_of) > 1:
        from nextbest.evaluate.run import evaluate_periods_to_dir

        results, summary = evaluate_periods_to_dir(
            ds, as_of, horizon_days, output, cfg, load_catalog(catalog), specs, seed, log
        )
        out.print(present.periods_table(results))
        _say(present.periods_lines(results, output, summary))
        return
    result = evaluate_to_dir(
        ds,
        as_of[0] if as_of else None,
        horizon_days,
        output,
        cfg,
        load_catalog(catalog),
        specs,
        seed,
        campaign_log=log,
    )
    out.print(present.backtest_table(result))
    _say(present.backtest_lines(result, output))


def _api_key(generate_key: bool) -> None:
    """With ``--generate-key`` and no ``NEXTBEST_API_KEY``: create one (kept across runs)."""
    from nextbest.serving.settings import API_KEY_ENV

    if not generate_key or os.environ.get(API_KEY_ENV, "").strip():
        return
    paths = settings().paths.ensure()
    key_file = paths.root / "api-key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(32) + "\n")
    os.environ[API_KEY_ENV] = key_file.read_text().strip()
    console.print(
        f"API key (from {key_file}): send 'Authorization: Bearer {os.environ[API_KEY_ENV]}'",
        soft_wrap=True,
        highlight=False,
    )


@command()
def serve(
    dataset: str = typer.Option(
        "completejourney",
        "--dataset",
        "-d",
        help="Dataset to train on if a champion or the feature snapshot is missing.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="Port to listen on."),
    generate_key: bool = typer.Option(
        False,
        "--generate-key",
        help="If NEXTBEST_API_KEY is unset, create one in NEXTBEST_HOME/api-key "
        "(kept across runs) and use it.",
    ),
) -> None:
    """Train if a champion or the snapshot is missing, then serve the HTTP API (bentoml serve) on
    HOST:PORT."""
    from nextbest.decision.catalog import load_catalog
    from nextbest.serving.settings import api_keys_from_env
    from nextbest.train.pipeline import needs_training, train_if_missing

    _api_key(generate_key)
    api_keys_from_env()  # refuse to start an open service before any training
    paths = settings().paths.ensure()
    if needs_training(paths, serving=True):
        train_if_missing(
            _load(dataset, None, None, None),
            load_configs(),
            load_catalog(),
            paths,
            serving=True,
            on_training=lambda missing: console.print(
                f"no champion or snapshot ({', '.join(missing)}): training on {dataset} ..."
            ),
        )
    bentoml = Path(sys.executable).with_name("bentoml")
    console.print(
        f"serving nextbest {__version__} on http://{host}:{port} (API page: /docs) ...",
        soft_wrap=True,
        highlight=False,
    )
    args = ["serve", "nextbest.service:NextBest", "--host", host, "--port", str(port)]
    os.execv(bentoml, [str(bentoml), *args])


@command("ingest", group=events_app)
def events_ingest(
    path: Path = typer.Argument(..., help="Events file: .parquet, .csv or .jsonl."),
    event_type: str | None = typer.Option(
        None,
        "--type",
        help="Type of every row of a file without a `type` column, e.g. purchase for a "
        "transactions file.",
    ),
) -> None:
    """Validate and store every event of a file; bad rows go to <file>.rejects.parquet."""
    from nextbest.events import ingest_file
    from nextbest.events.fold import store_for

    store = store_for(settings().paths, create=True)
    try:
        result = ingest_file(path, store, event_type=event_type)
    finally:
        store.close()
    _say(present.ingest_lines(result, store.url))


@command("export", group=events_app)
def events_export(
    path: Path = typer.Argument(..., help="Output .parquet or .jsonl."),
) -> None:
    """Write every stored event to a file (reads back with `nextbest events ingest`)."""
    from nextbest.events.fold import store_for

    store = store_for(settings().paths)
    if store is None:
        _fail(f"no event store under {settings().paths.root} yet (nothing was ingested)")
    try:
        n = store.export(path)
    finally:
        store.close()
    _say([f"exported {n:,} events from {store.url} -> {path}"])


@command("export", group=customer_app)
def customer_export(
    customer_id: str = typer.Argument(..., help="The customer id, exactly as stored."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the JSON document here (default: print it)."
    ),
) -> None:
    """Everything held about one customer as one JSON document (GDPR Art. 15/20): the same
    document as GET /customers/{id}/data."""
    import json

    from nextbest.serving.settings import ServiceSettings
    from nextbest.serving.subject import export_customer

    doc = export_customer(customer_id, ServiceSettings.from_env(require_key=False))
    if doc is None:
        _fail("nothing is held about this customer id")
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if output is None:
        out.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        _say([f"wrote {output}"])


@command("forget", group=customer_app)
def customer_forget(
    customer_id: str = typer.Argument(..., help="The customer id, exactly as stored."),
) -> None:
    """Erase one customer from the event store and every file under NEXTBEST_HOME (GDPR Art.
    17); keep only a salted hash so later imports reject the id (reason `erased`)."""
    from nextbest.events.fold import store_for
    from nextbest.serving.erasure import forget_customer

    paths = settings().paths
    store = store_for(paths, create=True)
    try:
        report = forget_customer(customer_id, paths, store)
    finally:
        store.close()
    _say(present.forget_lines(report, paths.root))
    if not report.complete:
        raise typer.Exit(code=1)
