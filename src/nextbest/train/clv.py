"""CLV training: inner time split, count-model choice, final fit, MLflow logging, promotion.

The flow of :func:`train_clv`:

1. validate transactions (rows on or after ``as_of`` are rejected as future;
   every reject is written to a side file) and drop customers who objected
   to profiling (``consent_profiling = false``: never used in training);
2. carve an inner holdout of ``selection_holdout_days`` off the end of the
   data; fit each candidate count model on the inner calibration period and
   choose the one with the lowest ``MAE / historic-rate MAE + w x |total
   error|`` (:func:`select_count_model`);
3. refit the chosen model on all data before ``as_of`` (penalizer search and
   fallback recorded);
4. if ``value_model.enabled``: train the boosted model on top of it and keep
   it when it passes its rule on held-out customers
   (:func:`nextbest.train.value.train_value`);
5. log config, data fingerprint, metrics, both choices and their reasons,
   plots and the pyfunc model to MLflow, register it as ``nextbest-clv`` and
   move the ``champion`` alias only if the thresholds of ``models/clv.yaml``
   pass (measured on the count model's inner holdout).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.config import Paths, config_hash
from nextbest.data import Dataset
from nextbest.data.schema import (
    REQUIRED_TRANSACTION_COLUMNS,
    require_columns,
    validate_transactions,
    without_customers,
)
from nextbest.errors import ConvergenceError, InputError
from nextbest.features.build import FeatureContext, build_context, features_at
from nextbest.features.rfm import calibration_holdout, customer_days, rfm_summary
from nextbest.models.btyd import RFM_INPUT_COLUMNS
from nextbest.models.clv import COUNT_MODEL_NAMES, ClvModel, make_clv_model

# The gate's metrics live with every other metric (``nextbest evaluate`` uses the same ones);
# re-exported here for callers of ``nextbest.train``.
from nextbest.models.evaluation import historic_rate_baseline, holdout_metrics
from nextbest.models.value import BTYD_FEATURES, BoostedClvModel
from nextbest.plots import clv as plots
from nextbest.registry import CLV_MODEL_NAME, data_fingerprint, flatten, log_model, setup
from nextbest.train.gate import gate
from nextbest.train.value import ValueResult, train_value

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced."""

    run_id: str
    model: ClvModel | BoostedClvModel
    metrics: dict[str, float]
    selection: pd.DataFrame
    promoted: bool
    gate: dict[str, Any]
    version: str | None
    as_of: pd.Timestamp
    rejects_path: Path | None
    rfm: pd.DataFrame  # the training RFM summary (in memory only; opted-out customers absent)
    notes: list[str] = field(default_factory=list)


def default_as_of(transactions: pd.DataFrame) -> pd.Timestamp:
    """The day after the last transaction: every row is then in the past."""
    require_columns(transactions, REQUIRED_TRANSACTION_COLUMNS, "transactions")
    ts = (
        pd.to_datetime(transactions["timestamp"], errors="coerce", format="mixed")
        if not pd.api.types.is_datetime64_any_dtype(transactions["timestamp"])
        else transactions["timestamp"]
    )
    last = ts.max()
    if pd.isna(last):
        raise InputError("no parsable timestamp in transactions")
    return last.normalize() + pd.Timedelta(days=1)


def select_count_model(
    transactions: pd.DataFrame, as_of, config: dict
) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """Fit each candidate on an inner calibration period and score it on the inner holdout.

    **Rule**: the lowest ``selection_score = holdout MAE / historic-rate MAE + w x |aggregate
    error|`` wins, with ``w = selection_aggregate_weight`` (1 by default: one percent of total
    error weighs as much as one percent of the baseline's per-customer error). Per-customer
    error alone would pick a model that ranks customers well but misses the total; the total
    alone would ignore who buys. Ties go to the higher log-likelihood.

    Returns
    -------
    best, table, cal_holdout
        Name of the chosen count model, one row per candidate (holdout MAE,
        aggregate error, selection score, log-likelihood, penalizer, fit seconds, outcome),
        and the inner calibration/holdout frame.
    """
    hold_days = int(config["selection_holdout_days"])
    unit = float(config["time_unit_days"])
    weight = float(config.get("selection_aggregate_weight", 1.0))
    inner_as_of = pd.Timestamp(as_of) - pd.Timedelta(days=hold_days)
    cal = calibration_holdout(transactions, inner_as_of, hold_days, unit)
    actual = cal["frequency_holdout"].to_numpy()
    base_mae = holdout_metrics(actual, historic_rate_baseline(cal))["mae"]
    rows = []
    for name in config["count_models"]:
        model = make_clv_model(config, name, fallback=False)
        try:
            model.fit(cal)
        except RuntimeError as exc:
            rows.append({"model": name, "outcome": f"failed: {exc}"[:300]})
            continue
        pred = model.expected_purchases(hold_days, cal)
        m = holdout_metrics(actual, pred)
        rows.append(
            {
                "model": name,
                "outcome": "ok",
                "penalizer": model.penalizer_used_,
                "log_likelihood": model.log_likelihood_,
                "holdout_mae": m["mae"],
                "holdout_rmse": m["rmse"],
                "aggregate_error": m["aggregate_error"],
                "predicted_total": m["predicted_total"],
                "actual_total": m["actual_total"],
                "baseline_mae": base_mae,
                "selection_score": m["mae"] / base_mae + weight * abs(m["aggregate_error"])
                if base_mae > 0
                else m["mae"] + weight * abs(m["aggregate_error"]),
                "fit_seconds": model.fit_seconds_,
            }
        )
    table = pd.DataFrame(rows)
    ok = table[table["outcome"] == "ok"]
    if ok.empty:
        raise ConvergenceError(f"no count model converged on the inner split: {rows}")
    return selection_order(table)[0], table, cal


def selection_order(table: pd.DataFrame) -> list[str]:
    """The candidates best first by the selection rule (score, then log-likelihood), then those
    that failed on the inner split: the order in which the final fit tries them, so that a
    winner that cannot be fitted on all the data gives way to the runner-up by the same rule."""
    ok = table["outcome"] == "ok"
    ranked = table[ok].sort_values(["selection_score", "log_likelihood"], ascending=[True, False])
    return [str(m) for m in (*ranked["model"], *table.loc[~ok, "model"])]


def selection_reason(best: str, table: pd.DataFrame, config: dict) -> str:
    """The count-model choice in words, with every candidate's figures."""
    ok = table[table["outcome"] == "ok"]
    weight = float(config.get("selection_aggregate_weight", 1.0))
    return (
        f"{COUNT_MODEL_NAMES[best]} chosen: lowest MAE / historic-rate MAE + {weight:g} x "
        f"|total error| on the inner {config['selection_holdout_days']}-day holdout ("
        + "; ".join(
            f"{r.model} {r.selection_score:.3f} = {r.holdout_mae / r.baseline_mae:.3f} + "
            f"{weight:g} x {abs(r.aggregate_error):.1%}"
            for r in ok.itertuples()
        )
        + ")"
    )


def prepare_transactions(dataset: Dataset, as_of) -> tuple[pd.DataFrame, pd.DataFrame, dict, int]:
    """Validate, then drop opted-out customers. Returns (clean, rejects, report, n_opted_out)."""
    result = validate_transactions(dataset.transactions, as_of=as_of)
    gone = dataset.opted_out
    tx = without_customers(result.transactions, gone)
    return tx, result.rejects, result.report.as_dict(), len(gone)


def train_clv(
    dataset: Dataset,
    config: dict,
    as_of=None,
    paths: Paths | None = None,
    register: bool = True,
    prepared: tuple | None = None,
    ctx: FeatureContext | None = None,
) -> TrainResult:
    """Train, evaluate, log, register and (if the gate passes) promote the CLV model.

    Parameters
    ----------
    dataset : Dataset
        Transactions and customers (consent is honoured).
    config : dict
        The merged CLV config (see ``models/clv.yaml``).
    as_of : date-like, optional
        First day not used; defaults to the day after the last transaction.
    ctx : FeatureContext, optional
        Features of the same validated transactions (the pipeline builds it once); built here
        when the boosted model needs it and none is given.
    """
    import mlflow

    paths = (paths or Paths.from_env()).ensure()
    started = time.perf_counter()
    as_of = pd.Timestamp(as_of) if as_of is not None else default_as_of(dataset.transactions)
    tx, rejects, report, n_opted_out = prepared or prepare_transactions(dataset, as_of)
    unit = float(config["time_unit_days"])
    horizon = int(config["horizon_days"])
    setup(paths)

    with mlflow.start_run(
        run_name=f"clv-{dataset.name}-{as_of.date()}", nested=mlflow.active_run() is not None
    ) as run:
        rejects_path = None
        if len(rejects):
            rejects_path = paths.rejects / f"{run.info.run_id}.rejects.parquet"
            rejects.astype(
                {c: str for c in rejects.columns if rejects[c].dtype == object}
            ).to_parquet(rejects_path)
        mlflow.set_tags({"dataset": dataset.name, "stage": "clv", "as_of": str(as_of.date())})
        mlflow.log_params(flatten("config", config))
        mlflow.log_params(
            {
                "as_of": str(as_of.date()),
                "dataset": dataset.name,
                "data_fingerprint": data_fingerprint(tx),
                "config_hash": config_hash(config),
                "n_transactions": len(tx),
                "n_opted_out_excluded": n_opted_out,
            }
        )
        mlflow.log_dict(report, "data/validation_report.json")

        best, table, cal = select_count_model(tx, as_of, config)
        chosen = table.set_index("model").loc[best]
        baseline = historic_rate_baseline(cal)
        base = holdout_metrics(cal["frequency_holdout"].to_numpy(), baseline)
        reason = selection_reason(best, table, config)
        mlflow.log_text(table.to_csv(index=False), "selection/candidates.csv")
        mlflow.set_tag("selection_reason", reason[:5000])

        count = make_clv_model(config, best, fallbacks=selection_order(table))
        rfm = rfm_summary(tx, as_of, unit)
        count.fit(rfm)
        summary = count.summary()
        mlflow.log_dict(summary, "model/summary.json")
        mlflow.log_params(
            {
                "count_model": count.count_model_used_,
                "penalizer": count.penalizer_used_,
                **{f"param.{k}": round(v, 6) for k, v in count.params_.items()},
            }
        )
        if count.count_model_used_ != best or count.penalizer_used_ > 0:
            mlflow.set_tag("convergence_note", json.dumps(summary["fit_log"])[:5000])

        metrics = {
            "log_likelihood": count.log_likelihood_,
            "spend_log_likelihood": count.spend_log_likelihood_,
            "inner_holdout_mae": float(chosen["holdout_mae"]),
            "inner_holdout_rmse": float(chosen["holdout_rmse"]),
            "inner_holdout_aggregate_error": float(chosen["aggregate_error"]),
            "inner_holdout_actual_total": float(chosen["actual_total"]),
            "inner_holdout_predicted_total": float(chosen["predicted_total"]),
            "baseline_holdout_mae": base["mae"],
            "baseline_aggregate_error": base["aggregate_error"],
            "inner_holdout_mae_ratio_vs_baseline": float(chosen["holdout_mae"]) / base["mae"]
            if base["mae"] > 0
            else float("nan"),
            "n_customers": float(len(rfm)),
            "fit_seconds": count.fit_seconds_,
            "frequency_monetary_corr": count.frequency_monetary_corr_,
        }
        model, notes, example = count, [reason], rfm.head(5)[list(RFM_INPUT_COLUMNS)]
        if config["value_model"]["enabled"]:
            ctx = ctx or build_context(tx, dataset.customers, (), dataset.extras)
            value = _boost(ctx, as_of, config, count, metrics, notes)
            if value.model is not None:
                model, example = value.model, _example_rows(ctx, as_of, value.model)
        mlflow.set_tag("clv_model", model.display_name)
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})

        _log_plots(tx, cal, count, as_of, config)

        verdict = gate(
            {
                "max_abs_aggregate_error": abs(metrics["inner_holdout_aggregate_error"]),
                "max_holdout_mae_ratio_vs_baseline": metrics["inner_holdout_mae_ratio_vs_baseline"],
            },
            config["thresholds"],
        )
        mlflow.log_dict(verdict, "model/gate.json")
        version, promoted = log_model(
            model,
            example,
            CLV_MODEL_NAME,
            promote_if=verdict["passed"],
            register=register,
            params={"horizon_days": float(horizon)},
            metadata={
                "time_unit_days": unit,
                "horizon_days": horizon,
                "count_model": model.count_model_used_,
                "model_class": type(model).__name__,
                "as_of": str(as_of.date()),
                "config_hash": config_hash(config),
            },
        )
        mlflow.set_tag("promoted", str(promoted))
        mlflow.log_metric("train_seconds", time.perf_counter() - started)
        return TrainResult(
            run_id=run.info.run_id,
            model=model,
            metrics=metrics,
            selection=table,
            promoted=promoted,
            gate=verdict,
            version=version,
            as_of=as_of,
            rejects_path=rejects_path,
            rfm=rfm,
            notes=notes,
        )


def _boost(
    ctx: FeatureContext,
    as_of,
    config: dict,
    count: ClvModel,
    metrics: dict[str, float],
    notes: list[str],
) -> ValueResult:
    """Train the boosted model on top of ``count`` and log its choice (metrics, notes, tables)."""
    import mlflow

    value = train_value(ctx, as_of, config, count)
    notes.append(value.reason)
    metrics.update(value.metrics)
    mlflow.set_tag("value_model_reason", value.reason[:5000])
    if not value.table.empty:
        mlflow.log_text(value.table.to_csv(index=False), "selection/value_holdout.csv")
    if value.model is not None:
        mlflow.log_dict(value.model.summary(), "model/summary.json")
        mlflow.log_text(
            value.model.feature_importance().to_csv(index=False), "model/feature_importance.csv"
        )
    return value


def _example_rows(ctx: FeatureContext, as_of, model: BoostedClvModel) -> pd.DataFrame:
    """A few feature rows at ``as_of`` with the columns the boosted model reads (pyfunc example)."""
    rows = features_at(ctx, as_of, model.time_unit_days)
    rows = rows[rows["consent_profiling"]].head(5)
    own = [c for c in model.feature_names_ if c not in BTYD_FEATURES]
    columns = list(dict.fromkeys([*RFM_INPUT_COLUMNS, *own]))
    return rows[columns].reset_index(drop=True)


def _log_plots(tx: pd.DataFrame, cal: pd.DataFrame, model: ClvModel, as_of, config: dict) -> None:
    """Diagnostic plots of the inner split (refit on the inner calibration for honesty)."""
    import mlflow

    unit = float(config["time_unit_days"])
    hold_days = int(config["selection_holdout_days"])
    inner_as_of = pd.Timestamp(as_of) - pd.Timedelta(days=hold_days)
    inner = make_clv_model(config, model.count_model_used_, fallback=False).fit(cal)
    days = customer_days(tx, as_of=pd.Timestamp(inner_as_of) + pd.Timedelta(days=hold_days))
    first_day = days.groupby("customer_id")["day"].min()
    first_day = first_day[first_day < (inner_as_of - pd.Timestamp("1970-01-01")).days]
    days = days[days["customer_id"].isin(first_day.index)]
    as_of_day = int((inner_as_of - pd.Timestamp("1970-01-01")).days)
    figs = {
        "plots/tracking_calibration_holdout.png": plots.tracking_plot(
            days, first_day, inner.count_fitter_, as_of_day, hold_days, unit
        ),
        "plots/conditional_expectations_by_frequency.png": plots.conditional_expectations_plot(
            cal, inner.count_fitter_
        ),
        "plots/p_alive_matrix.png": plots.frequency_recency_matrix(
            model.count_fitter_,
            max_frequency=int(min(40, cal["frequency"].quantile(0.99) + 1)),
            max_recency=float(cal["T"].max()),
            kind="p_alive",
            time_unit_days=unit,
        ),
        "plots/expected_purchases_matrix.png": plots.frequency_recency_matrix(
            model.count_fitter_,
            max_frequency=int(min(40, cal["frequency"].quantile(0.99) + 1)),
            max_recency=float(cal["T"].max()),
            kind="expected",
            time_unit_days=unit,
        ),
    }
    for name, fig in figs.items():
        mlflow.log_figure(fig, name)
