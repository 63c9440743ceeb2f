"""``nextbest`` command line: generate, train, score, run.

Every command reads and writes state under ``NEXTBEST_HOME`` (default
``./.nextbest``); ``MLFLOW_TRACKING_URI`` overrides the MLflow store.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from nextbest.data.schema import SchemaError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="nextbest: the next best action for every customer (CLV, churn, offers).")
console = Console(stderr=True)
out = Console()

DatasetOpt = typer.Option(None, "--dataset", "-d",
                          help="Bundled dataset: cdnow, cdnow-full or completejourney.")
TransactionsOpt = typer.Option(None, "--transactions", "-t", exists=False,
                               help="Your transactions file (.csv or .parquet).")
CustomersOpt = typer.Option(None, "--customers", help="Customers file with customer_id, consent_profiling.")
MapOpt = typer.Option(None, "--map", help="Column mapping schema=source, repeatable, e.g. --map customer_id=HH_KEY.")
AsOfOpt = typer.Option(None, "--as-of", help="First day NOT observed (YYYY-MM-DD); default: day after the last transaction.")


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
    n_customers: int = typer.Option(10_000, "--n-customers", "-n", min=1, help="Number of customers."),
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
    console.print(f"wrote {len(frame):,} transactions of {n_customers:,} customers to {output} "
                  f"(as_of {synthetic_as_of().date()}, true parameters {SyntheticParams().as_dict()})")


@app.command()
def train(
    dataset: Optional[str] = DatasetOpt,
    transactions: Optional[Path] = TransactionsOpt,
    customers: Optional[Path] = CustomersOpt,
    mapping: Optional[list[str]] = MapOpt,
    as_of: Optional[str] = AsOfOpt,
    horizon_days: Optional[int] = typer.Option(None, "--horizon-days", help="Prediction horizon in days (default: models/clv.yaml)."),
    time_unit_days: Optional[float] = typer.Option(None, "--time-unit-days", help="Model time unit in days (default 7 = weeks)."),
    margin: Optional[float] = typer.Option(None, "--margin", help="Gross margin in (0, 1] applied to spend."),
    discount_rate: Optional[float] = typer.Option(None, "--discount-rate", help="Annual discount rate."),
    config: Optional[Path] = typer.Option(None, "--config", help="CLV config YAML (default models/clv.yaml)."),
) -> None:
    """Fit the CLV model, log it to MLflow, register it and promote it if it passes the gate."""
    from nextbest.config import load_config
    from nextbest.train import train_clv

    cfg = load_config("clv", {"horizon_days": horizon_days, "time_unit_days": time_unit_days,
                              "margin": margin, "discount_rate_annual": discount_rate}, path=config)
    ds = _load(dataset, transactions, customers, mapping)
    try:
        result = train_clv(ds, cfg, as_of=as_of)
    except (SchemaError, ValueError) as exc:
        _fail(str(exc))
    s = result.model.summary()
    console.print(f"[bold]run[/] {result.run_id}  as_of {result.as_of.date()}  "
                  f"model {s['count_model']} (penalizer {s['penalizer']})  LL {s['log_likelihood']:.1f}")
    console.print(result.notes[0])
    console.print(f"inner holdout: MAE {result.metrics['inner_holdout_mae']:.4f} "
                  f"(baseline {result.metrics['baseline_holdout_mae']:.4f}), aggregate error "
                  f"{result.metrics['inner_holdout_aggregate_error']:+.1%}")
    status = "promoted to champion" if result.promoted else "NOT promoted (gate failed)"
    console.print(f"registered nextbest-clv version {result.version}: {status}")
    if result.rejects_path:
        console.print(f"rejected rows written to {result.rejects_path}")


@app.command()
def score(
    dataset: Optional[str] = DatasetOpt,
    transactions: Optional[Path] = TransactionsOpt,
    customers: Optional[Path] = CustomersOpt,
    mapping: Optional[list[str]] = MapOpt,
    as_of: Optional[str] = AsOfOpt,
    horizon_days: int = typer.Option(365, "--horizon-days", help="Horizon for expected purchases and CLV, in days."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .parquet or .csv."),
) -> None:
    """Score every customer with the champion CLV model and write a file."""
    from nextbest import scoring, tracking
    from nextbest.data.schema import validate_transactions
    from nextbest.train import default_as_of

    ds = _load(dataset, transactions, customers, mapping)
    tracking.setup()
    try:
        model, version = tracking.load_champion(tracking.CLV_MODEL_NAME)
    except LookupError as exc:
        _fail(str(exc))
    try:
        cutoff = as_of or default_as_of(ds.transactions)
        checked = validate_transactions(ds.transactions, as_of=cutoff)
        unit = float(model.metadata.metadata["time_unit_days"])
        scores = scoring.score_transactions(checked.transactions, cutoff, horizon_days, model, unit,
                                            ds.customers, {tracking.CLV_MODEL_NAME: str(version.version)})
    except (SchemaError, ValueError) as exc:
        _fail(str(exc))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    if output.suffix.lower() == ".csv":
        scores.to_csv(tmp, index=False)
    else:
        scores.to_parquet(tmp, index=False)
    tmp.replace(output)
    if len(checked.rejects):
        rej = output.with_name(output.stem + ".rejects.parquet")
        checked.rejects.astype(str).to_parquet(rej, index=False)
        console.print(f"{len(checked.rejects):,} rejected rows -> {rej}: {checked.report.rejected}")
    console.print(f"scored {scores['predicted_clv'].notna().sum():,} customers "
                  f"({(~scores['consent_profiling']).sum():,} opted out, not scored) -> {output}")


@app.command()
def run(
    dataset: str = typer.Option("completejourney", "--dataset", "-d", help="Dataset to train on if no champion exists."),
    top: int = typer.Option(15, "--top", help="How many customers to show."),
    horizon_days: int = typer.Option(365, "--horizon-days"),
) -> None:
    """The main job: train if no champion exists, then show the top customers by predicted CLV."""
    from nextbest import scoring, tracking
    from nextbest.config import load_config
    from nextbest.data import load_dataset
    from nextbest.data.schema import validate_transactions
    from nextbest.train import default_as_of, train_clv

    tracking.setup()
    ds = load_dataset(dataset)
    if tracking.champion_version(tracking.CLV_MODEL_NAME) is None:
        console.print(f"no champion yet: training on {dataset} ...")
        result = train_clv(ds, load_config("clv"))
        if not result.promoted:
            _fail(f"the trained model did not pass the promotion gate: {result.gate}")
    model, version = tracking.load_champion(tracking.CLV_MODEL_NAME)
    cutoff = default_as_of(ds.transactions)
    checked = validate_transactions(ds.transactions, as_of=cutoff)
    scores = scoring.score_transactions(checked.transactions, cutoff, horizon_days, model,
                                        float(model.metadata.metadata["time_unit_days"]), ds.customers,
                                        {tracking.CLV_MODEL_NAME: str(version.version)})
    table = Table(title=f"Top {top} customers by predicted {horizon_days}-day CLV "
                        f"({dataset}, as of {cutoff.date()}, nextbest-clv v{version.version})")
    for col in ("customer", "P(alive)", "expected purchases", "spend / purchase", "predicted CLV"):
        table.add_column(col, justify="right")
    for row in scoring.top_customers(scores, top).itertuples():
        table.add_row(row.customer_id, f"{row.p_alive:.2f}", f"{row.expected_purchases:.1f}",
                      f"${row.expected_spend:,.2f}", f"${row.predicted_clv:,.0f}")
    out.print(table)


def main() -> None:  # pragma: no cover
    logging.basicConfig(level=logging.WARNING)
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
