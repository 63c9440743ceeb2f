"""``nextbest`` command line: generate, train, score, run.

Every command reads and writes state under ``NEXTBEST_HOME`` (default
``./.nextbest``); ``MLFLOW_TRACKING_URI`` overrides the MLflow store.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from nextbest.errors import SchemaError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="nextbest: the next best action for every customer (CLV, churn, offers).",
)
console = Console(stderr=True)
out = Console()

DatasetOpt = typer.Option(
    None, "--dataset", "-d", help="Bundled dataset: cdnow, cdnow-full or completejourney."
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


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


def _load(dataset, transactions, customers, mapping):
    from nextbest.data import load_dataset
    from nextbest.data.files import parse_mapping

    if (dataset is None) == (transactions is None):
        _fail("give exactly one of --dataset or --transactions")
    try:
        return load_dataset(dataset, transactions, customers, parse_mapping(mapping))
    except SchemaError as exc:
        _fail(str(exc))


@app.command()
def generate(
    n_customers: int = typer.Option(
        10_000, "--n-customers", "-n", min=1, help="Number of customers."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed, same file."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .parquet or .csv."),
) -> None:
    """Write seeded synthetic transactions (BG/NBD + Gamma-Gamma, known parameters)."""
    from nextbest.data.synthetic import SyntheticParams, generate_transactions, synthetic_as_of

    frame = generate_transactions(n_customers, seed=seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".csv":
        frame.to_csv(output, index=False)
    else:
        frame.to_parquet(output, index=False)
    console.print(
        f"wrote {len(frame):,} transactions of {n_customers:,} customers to {output} "
        f"(as_of {synthetic_as_of().date()}, true parameters {SyntheticParams().as_dict()})"
    )


CatalogOpt = typer.Option(
    None, "--catalog", help="Offer catalog YAML (default models/offers.yaml)."
)


def _configs(overrides: dict | None = None, config_dir: Path | None = None) -> dict[str, dict]:
    from nextbest.config import load_config

    return {
        name: load_config(
            name,
            (overrides or {}).get(name),
            path=(config_dir / f"{name}.yaml") if config_dir else None,
        )
        for name in ("clv", "churn", "nbo")
    }


@app.command()
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
    config_dir: Path | None = typer.Option(
        None,
        "--config-dir",
        help="Directory with clv.yaml, churn.yaml, nbo.yaml (default models/).",
    ),
    clv_only: bool = typer.Option(False, "--clv-only", help="Train only the CLV model."),
) -> None:
    """Train CLV, churn and next-best-offer models; log to MLflow; register; promote past the
    gates."""
    from nextbest.decision.catalog import load_catalog
    from nextbest.train import train_clv
    from nextbest.train.pipeline import train_all

    cfg = _configs(
        {
            "clv": {
                "horizon_days": horizon_days,
                "time_unit_days": time_unit_days,
                "margin": margin,
                "discount_rate_annual": discount_rate,
            },
            "churn": {"horizon_days": churn_horizon_days},
        },
        config_dir,
    )
    ds = _load(dataset, transactions, customers, mapping)
    try:
        if clv_only:
            result = train_clv(ds, cfg["clv"], as_of=as_of)
            clv, promoted, versions = (
                result,
                {"nextbest-clv": result.promoted},
                {"nextbest-clv": result.version},
            )
        else:
            pipe = train_all(ds, cfg, load_catalog(catalog), as_of=as_of)
            clv, promoted, versions = pipe.clv, pipe.promoted, pipe.versions
    except (SchemaError, ValueError) as exc:
        _fail(str(exc))
    s = clv.model.summary()
    console.print(
        f"[bold]CLV[/] as_of {clv.as_of.date()}  model {s['count_model']} "
        f"(penalizer {s['penalizer']})  LL {s['log_likelihood']:.1f}"
    )
    console.print(clv.notes[0])
    console.print(
        f"inner holdout: MAE {clv.metrics['inner_holdout_mae']:.4f} "
        f"(baseline {clv.metrics['baseline_holdout_mae']:.4f}), aggregate error "
        f"{clv.metrics['inner_holdout_aggregate_error']:+.1%}"
    )
    if not clv_only:
        cm = pipe.churn.metrics
        k = cfg["nbo"]["k"]
        console.print(
            f"[bold]churn[/] test AUC {cm['test_auc']:.3f} (recency "
            f"{cm['baseline_recency_auc']:.3f}, "
            f"P(alive) {cm['baseline_p_alive_auc']:.3f}), Brier {cm['test_brier']:.3f}"
        )
        if pipe.nbo is None:
            console.print("[bold]next best offer[/] skipped: no purchases in any catalog category")
        else:
            nm = pipe.nbo.metrics
            console.print(
                f"[bold]next best offer[/] hit@{k} {nm[f'model_hit_at_{k}']:.3f} (popularity "
                f"{nm[f'baseline_popularity_hit_at_{k}']:.3f}, last-bought "
                f"{nm[f'baseline_last_bought_hit_at_{k}']:.3f})"
            )
        console.print(f"pipeline took {pipe.seconds:.1f}s; snapshot {pipe.snapshot}")
    for name, ok in promoted.items():
        status = "promoted to champion" if ok else "NOT promoted (gate failed)"
        console.print(f"registered {name} version {versions[name]}: {status}")
    if clv.rejects_path:
        console.print(f"rejected rows written to {clv.rejects_path}")


@app.command()
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
    horizon_days: int = typer.Option(
        365, "--horizon-days", help="Horizon for expected purchases and CLV, in days."
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
        help="Past contacts (customer_id, offer_id, timestamp) for cooldowns and caps.",
    ),
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
) -> None:
    """Score every customer with the champion models, in chunks; one decision per customer, rejects
    beside it."""
    from nextbest import tracking
    from nextbest.batch.command import build_job, make_reporter, run_job, summary_lines
    from nextbest.batch.job import BatchError
    from nextbest.data.files import parse_mapping
    from nextbest.decision.catalog import load_catalog

    try:
        tracking.setup()
        cat = load_catalog(catalog)
        bundle = tracking.load_bundle(cat)
        job = build_job(
            dataset,
            transactions,
            customers,
            parse_mapping(mapping),
            as_of,
            horizon_days,
            output,
            contact_history,
            chunk_size,
            resume,
            cat,
            workers,
        )
        result = run_job(job, bundle, engine, make_reporter(console), spark_master)
    except LookupError as exc:
        _fail(str(exc).strip("'\""))
    except (SchemaError, BatchError, ValueError, OSError) as exc:
        _fail(str(exc))
    for line in summary_lines(result, bundle):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command("export-audiences")
def export_audiences(
    scores: Path = typer.Option(
        ..., "--scores", "-s", help="Scores file written by `nextbest score` (.parquet or .csv)."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Directory for one CSV per action and offer."
    ),
    catalog: Path | None = CatalogOpt,
) -> None:
    """One CSV per action/offer (customer_id, offer, expected value, reason) for a campaign tool."""
    from nextbest.audiences import export_audiences as export
    from nextbest.decision.catalog import load_catalog

    try:
        result = export(scores, output, load_catalog(catalog))
    except (SchemaError, ValueError, OSError) as exc:
        _fail(str(exc))
    for name, n in result.files.items():
        console.print(f"{n:>10,}  {output / name}", markup=False, highlight=False, soft_wrap=True)
    for action, n in result.not_exported.items():
        console.print(
            f"{n:>10,}  {action}: not exported (nothing to send)", markup=False, highlight=False
        )
    if result.moved_to_non_personalised:
        console.print(
            f"warning: {result.moved_to_non_personalised:,} opted-out customers had a personalised "
            "action "
            "in the scores; exported in the non-personalised list only",
            markup=False,
        )


@app.command()
def run(
    dataset: str = typer.Option(
        "completejourney", "--dataset", "-d", help="Dataset to train on if a champion is missing."
    ),
    top: int = typer.Option(15, "--top", help="How many customers to show."),
    horizon_days: int = typer.Option(365, "--horizon-days"),
) -> None:
    """The main job: train if any champion is missing, then show the top customers and their next
    best action."""
    from nextbest import batch, tracking
    from nextbest.decision.catalog import load_catalog
    from nextbest.train import default_as_of
    from nextbest.train.pipeline import train_all

    tracking.setup()
    ds = _load(dataset, None, None, None)
    catalog = load_catalog()
    missing = [
        n
        for n in (tracking.CLV_MODEL_NAME, tracking.CHURN_MODEL_NAME)
        if tracking.champion_version(n) is None
    ]
    if missing:
        console.print(f"no champion for {missing}: training on {dataset} ...")
        pipe = train_all(ds, _configs(), catalog)
        failed = [n for n, ok in pipe.promoted.items() if not ok]
        if failed:
            _fail(
                f"trained models did not pass their promotion gates: {failed}; see the MLflow run "
                f"{pipe.run_id}"
            )
    bundle = tracking.load_bundle(catalog)
    cutoff = default_as_of(ds.transactions)
    result = batch.score_dataset(ds, bundle, cutoff, horizon_days)
    scores = result.scores
    table = Table(
        title=f"Top {top} customers by predicted {horizon_days}-day CLV and their next best action "
        f"({dataset}, as of {cutoff.date()})"
    )
    for col in ("customer", "P(alive)", "churn risk", "predicted CLV", "action", "why"):
        table.add_column(col, justify="right" if col not in ("action", "why") else "left")
    from nextbest.scoring import top_customers

    for row in top_customers(scores, top).itertuples():
        why = row.reasons[0]["text"] if row.reasons else ""
        table.add_row(
            row.customer_id,
            f"{row.p_alive:.2f}",
            f"{row.churn_probability:.2f}",
            f"${row.predicted_clv:,.0f}",
            f"{row.action} {row.action_offer_id or ''}".strip(),
            why,
        )
    out.print(table)
    counts = scores["action"].value_counts()
    out.print("actions over all customers: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    out.print("models: " + ", ".join(f"{k} v{v}" for k, v in bundle.versions.items()))


@app.command()
def evaluate(
    dataset: str | None = DatasetOpt,
    transactions: Path | None = TransactionsOpt,
    customers: Path | None = CustomersOpt,
    mapping: list[str] | None = MapOpt,
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="First day of the backtest horizon (YYYY-MM-DD); models see only earlier data. "
        "Default: the last data day + 1 - horizon.",
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
    config_dir: Path | None = typer.Option(
        None,
        "--config-dir",
        help="Directory with clv.yaml, churn.yaml, nbo.yaml (default models/).",
    ),
    seed: int = typer.Option(42, "--seed", help="Seed of the random-offer baseline policy."),
) -> None:
    """Backtest: predict the horizon after --as-of and measure CLV, churn, offers and decisions
    against what happened."""
    from nextbest.decision.catalog import load_catalog
    from nextbest.evaluate import evaluate_to_dir
    from nextbest.evaluate.report import summary_rows

    cfg = _configs(
        {
            "clv": {"count_models": count_model or None},
            "churn": {"horizon_days": churn_horizon_days},
        },
        config_dir,
    )
    ds = _load(dataset, transactions, customers, mapping)
    try:
        result = evaluate_to_dir(
            ds,
            as_of,
            horizon_days,
            output,
            cfg,
            load_catalog(catalog),
            tuple(compare) if compare else (models,),
            seed,
        )
    except LookupError as exc:
        _fail(str(exc).strip("'\""))
    except (SchemaError, ValueError) as exc:
        _fail(str(exc))
    head, rows = summary_rows(result)
    table = Table(
        title=f"Backtest on {result.dataset}: {result.horizon_days} days from {result.as_of.date()}"
    )
    for i, col in enumerate(head):
        table.add_column(col, justify="left" if i < 2 or i == len(head) - 1 else "right")
    for row in rows:
        table.add_row(*row)
    out.print(table)
    for note in result.notes + [n for r in result.runs for n in r.notes]:
        console.print(f"[yellow]{note}[/]" if note.startswith("WARNING") else note)
    console.print(
        f"wrote {output / 'metrics.json'} and {output / 'report.html'} in {result.seconds:.0f}s "
        f"(MLflow run {result.run_id})"
    )


@app.callback()
def _quiet_libraries() -> None:
    """Keep library INFO chatter (MLflow, alembic) out of the terminal."""
    for name in ("mlflow", "alembic", "lightgbm"):
        logging.getLogger(name).setLevel(logging.WARNING)


@app.command()
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
    import os
    import secrets

    from nextbest import tracking
    from nextbest.config import Paths
    from nextbest.decision.catalog import load_catalog
    from nextbest.serving.settings import API_KEY_ENV, ConfigurationError, api_keys_from_env
    from nextbest.train.pipeline import SNAPSHOT_FILE, train_all

    paths = Paths.from_env().ensure()
    if generate_key and not os.environ.get(API_KEY_ENV, "").strip():
        key_file = paths.root / "api-key"
        if not key_file.exists():
            key_file.touch(mode=0o600)
            key_file.write_text(secrets.token_urlsafe(32) + "\n")
        os.environ[API_KEY_ENV] = key_file.read_text().strip()
        console.print(
            f"API key (from {key_file}): send 'Authorization: Bearer {os.environ[API_KEY_ENV]}'"
        )
    try:
        api_keys_from_env()
    except ConfigurationError as exc:
        _fail(str(exc))
    tracking.setup(paths)
    missing = [n for n in tracking.MODEL_NAMES if tracking.champion_version(n) is None]
    if missing or not (paths.snapshots / SNAPSHOT_FILE).exists():
        console.print(
            f"no champion for {missing} or no feature snapshot: training on {dataset} ..."
        )
        pipe = train_all(_load(dataset, None, None, None), _configs(), load_catalog(), paths=paths)
        failed = [n for n, ok in pipe.promoted.items() if not ok]
        if failed:
            _fail(
                f"trained models did not pass their promotion gates: {failed}; see the MLflow run "
                f"{pipe.run_id}"
            )
    bentoml = Path(sys.executable).with_name("bentoml")
    console.print(f"serving on http://{host}:{port} (docs at /docs) ...")
    os.execv(
        bentoml,
        [str(bentoml), "serve", "nextbest.service:NextBest", "--host", host, "--port", str(port)],
    )


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
