"""What the command line prints: results as lines and tables, nothing computed here.

Each function takes what a command's one call returned and gives lines (rich
markup allowed) or a :class:`rich.table.Table`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # pandas takes a second to import; --help should not wait for it
    import pandas as pd


def train_lines(pipe=None, clv=None, k: int = 3) -> list[str]:
    """The summary of ``nextbest train``: CLV choice, churn, offer and uplift measures, registry.

    Give the pipeline result ``pipe`` (all models) or only the CLV result ``clv`` (``--clv-only``).
    """
    clv = pipe.clv if pipe is not None else clv
    lines: list[str] = []
    if clv is not None:
        s = clv.model.summary()
        m = clv.metrics
        lines += [
            f"[bold]CLV[/] as_of {clv.as_of.date()}  model {s['count_model']} "
            f"(penalizer {s['penalizer']})  LL {s['log_likelihood']:.1f}",
            *clv.notes,
            f"inner holdout: MAE {m['inner_holdout_mae']:.4f} "
            f"(baseline {m['baseline_holdout_mae']:.4f}), aggregate error "
            f"{m['inner_holdout_aggregate_error']:+.1%}",
        ]
    if pipe is not None and pipe.churn is not None:
        cm = pipe.churn.metrics
        lines.append(
            f"[bold]churn[/] test AUC {cm['test_auc']:.3f} (recency "
            f"{cm['baseline_recency_auc']:.3f}, P(alive) {cm['baseline_p_alive_auc']:.3f}), "
            f"Brier {cm['test_brier']:.3f}"
        )
        lines.extend(pipe.churn.notes)
        if pipe.nbo is None:
            lines.append("[bold]next best offer[/] skipped: no purchases in any catalog category")
        else:
            nm = pipe.nbo.metrics
            lines.append(
                f"[bold]next best offer[/] hit@{k} {nm[f'model_hit_at_{k}']:.3f} (popularity "
                f"{nm[f'baseline_popularity_hit_at_{k}']:.3f}, last-bought "
                f"{nm[f'baseline_last_bought_hit_at_{k}']:.3f})"
            )
            lines.extend(pipe.nbo.notes)
    if pipe is not None and pipe.uplift is not None:
        lines.append(f"[bold]uplift[/] {pipe.uplift.kind}, {pipe.uplift.seconds:.1f}s")
        table = pipe.uplift.evaluation.policies
        for row in table.itertuples():
            lines.append(
                f"  policy {row.policy}: contacts {row.contact_share:.0%}, value per customer "
                f"{row.dr_value:+.4f} (95% CI {row.dr_low:+.4f} to {row.dr_high:+.4f})"
            )
    if pipe is not None:
        lines += pipe.notes
        if pipe.snapshot is not None:
            lines.append(f"pipeline took {pipe.seconds:.1f}s; snapshot {pipe.snapshot}")
        else:
            lines.append(f"pipeline took {pipe.seconds:.1f}s")
        promoted, versions = pipe.promoted, pipe.versions
    else:
        promoted = {"nextbest-clv": clv.promoted}
        versions = {"nextbest-clv": clv.version}
    for name, ok in promoted.items():
        status = "promoted to champion" if ok else "NOT promoted (gate failed)"
        lines.append(f"registered {name} version {versions.get(name)}: {status}")
    if clv is not None and clv.rejects_path:
        lines.append(f"rejected rows written to {clv.rejects_path}")
    return lines


def score_lines(result, models, report=None) -> list[str]:
    """The end-of-run summary a marketer reads: who was scored, what they get, what was refused.

    ``result`` is a :class:`~nextbest.batch.job.JobResult`.
    """
    s = result.stats
    secs = result.total_seconds
    rate = s["customers"] / secs if secs > 0 else float("nan")
    lines = [
        f"scored {s['scored']:,} customers ({s['opted_out']:,} opted out: non-personalised, "
        f"not scored) as of {result.as_of.date()} from {result.n_input:,} lines in "
        f"{result.n_chunks} chunk(s) -> {result.output}",
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
    resumed = (
        f"; resumed from {result.resumed_chunks} finished step(s)" if result.resumed_chunks else ""
    )
    lines.append(
        f"time {secs:.1f}s ({rate:,.0f} customers/s): "
        + ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
        + resumed
    )
    lines += list(result.read_notes)
    lines += [f"rejected {name} rows -> {path}" for name, path in result.side_rejects.items()]
    if report is not None:
        lines.append(f"report: {report.path} ({report.seconds:.1f}s)")
    return lines


def input_lines(dataset, rejects_path: Path | None) -> list[str]:
    """How the user's files were read, and where rejected customers rows went."""
    lines = list(dataset.read_notes)
    if rejects_path is not None:
        n = len(dataset.customer_rejects)
        lines.append(f"rejected {n:,} customers rows -> {rejects_path}")
    return lines


def segment_lines(path: Path, counts) -> list[str]:
    """Customers per segment and where the file is."""
    lines = [f"{n:>10,}  {segment}" for segment, n in counts.items()]
    return [*lines, f"wrote {path}"]


def audience_lines(result, output: Path) -> list[str]:
    """One line per audience file written, per action not exported, and any consent fix."""
    lines = [f"{n:>10,}  {output / name}" for name, n in result.files.items()]
    lines += [
        f"{n:>10,}  {action}: not exported (nothing to send)"
        for action, n in result.not_exported.items()
    ]
    if result.moved_to_non_personalised:
        lines.append(
            f"warning: {result.moved_to_non_personalised:,} opted-out customers had a "
            "personalised action in the scores; exported in the non-personalised list only"
        )
    return lines


def top_customers_table(
    top: pd.DataFrame, horizon_days: float, dataset: str, as_of: pd.Timestamp
) -> Table:
    """The customers of ``top`` (highest predicted CLV first) with their next best action."""
    table = Table(
        title=f"Top {len(top)} customers by predicted {horizon_days:g}-day CLV and their next "
        f"best action ({dataset}, as of {as_of.date()})"
    )
    for col in ("customer", "P(alive)", "churn risk", "predicted CLV", "action", "why"):
        table.add_column(col, justify="left" if col in ("action", "why") else "right")
    for row in top.itertuples():
        why = row.reasons[0]["text"] if row.reasons else ""
        table.add_row(
            row.customer_id,
            f"{row.p_alive:.2f}",
            f"{row.churn_probability:.2f}",
            f"${row.predicted_clv:,.0f}",
            f"{row.action} {row.action_offer_id or ''}".strip(),
            why,
        )
    return table


def action_lines(scores: pd.DataFrame, versions: dict[str, str]) -> list[str]:
    """How many customers get each action, and the model versions that decided."""
    counts = scores["action"].value_counts()
    return [
        "actions over all customers: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()),
        "models: " + ", ".join(f"{k} v{v}" for k, v in versions.items()),
    ]


def where_lines(output: Path, report: Path, paths) -> list[str]:
    """Where the scores, the report and the MLflow runs are, and how to open the MLflow UI."""
    mlflow = Path(sys.executable).with_name("mlflow")  # this environment's MLflow
    ui = f"{mlflow} ui --backend-store-uri {paths.tracking_uri()}"
    return [
        f"scores: {output}",
        f"report: {report}  (open it in a browser)",
        f"MLflow runs: {ui}  then http://127.0.0.1:5000",
    ]


def backtest_table(result) -> Table:
    """The backtest summary: every measure beside its baseline, with the verdict."""
    # The rows come from the report module, so terminal and report.html agree.
    from nextbest.evaluate.report import summary_rows

    head, rows = summary_rows(result)
    when = f"{result.horizon_days} days from {result.as_of.date()}"
    table = Table(
        title=f"Backtest on {result.dataset}: {when}",
        caption=escape("verdict: gain over the best baseline [its 95% interval over customers]"),
    )
    for i, col in enumerate(head):
        table.add_column(col, justify="left" if i < 2 or i == len(head) - 1 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def periods_table(results: list) -> Table:
    """Backtests at several cut-offs: each headline measure per period, with its gain over the
    best baseline and the gain's interval."""
    from nextbest.evaluate.periods import summary_rows

    head, rows = summary_rows(results)
    first = results[0]
    table = Table(
        title=f"Backtests on {first.dataset}: {first.horizon_days} days from each cut-off",
        caption=escape("model (gain over the best baseline [its 95% interval over customers])"),
    )
    for i, col in enumerate(head):
        table.add_column(col, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def periods_lines(results: list, output: Path, summary: Path) -> list[str]:
    """Where each period's files are, and the summary."""
    lines = [
        f"{r.as_of.date()}: {output / str(r.as_of.date()) / 'report.html'} (MLflow run {r.run_id})"
        for r in results
    ]
    lines.append(f"wrote {summary} in {sum(r.seconds for r in results):.0f}s")
    return lines


def backtest_lines(result, output: Path) -> list[str]:
    """Notes of a backtest (warnings highlighted) and where its files are."""
    notes = result.notes + [n for r in result.runs for n in r.notes]
    lines = [f"[yellow]{n}[/]" if n.startswith("WARNING") else n for n in notes]
    lines.append(
        f"wrote {output / 'metrics.json'} and {output / 'report.html'} in {result.seconds:.0f}s "
        f"(MLflow run {result.run_id})"
    )
    return lines


def ingest_lines(result, store_url: str) -> list[str]:
    """What ``nextbest events ingest`` stored and rejected."""
    lines = [
        f"read {result.rows:,} rows of {result.path} in {result.seconds:.1f}s "
        f"({result.rate:,.0f} rows/s) into {store_url}",
        f"stored {result.new:,} new events, {result.duplicates:,} repeats of stored events",
    ]
    if result.rejected:
        lines.append(f"rejected {result.rejected:,} rows -> {result.rejects_path}")
    else:
        lines.append("rejected 0 rows")
    if result.ignored_columns:
        lines.append("ignored columns (not event fields): " + ", ".join(result.ignored_columns))
    return lines


def forget_lines(report, root: Path) -> list[str]:
    """What ``nextbest customer forget`` removed, and anything it could not."""
    events = ", ".join(f"{k} {v:,}" for k, v in sorted(report.events.items())) or "none"
    lines = [f"event store: removed events ({events}); tombstone kept (salted hash only)"]
    if not report.events_scrubbed:
        lines.append(
            "  the store's files may still hold deleted bytes until the next checkpoint or "
            "VACUUM (PostgreSQL: VACUUM FULL nextbest_events)"
        )
    for directory in report.removed_dirs:
        lines.append(f"removed batch work directory {directory}")
    for path, what in report.files:
        lines.append(f"{Path(path).relative_to(root)}: removed {what}")
    if not report.files and not report.removed_dirs:
        lines.append(f"no file under {root} held the id")
    for path in report.left:
        lines.append(f"[bold red]NOT erased[/]: {path} still holds the id (remove it by hand)")
    return lines
