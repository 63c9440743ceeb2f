"""Churn training on rolling cutoffs: examples, time-held-out evaluation, final fit, MLflow.

Cutoffs c1 < ... < cN (see :func:`nextbest.features.splits.rolling_cutoffs`),
the newest ending its label window at ``as_of``:

* evaluation model: LightGBM on the cutoffs whose label windows end by the
  calibration cutoff (the newest one whose window ends by cN), calibration
  there, metrics on cN - against the recency-only and 1 - P(alive)
  baselines, each calibrated the same way;
* production model: LightGBM on the cutoffs whose label windows end by cN,
  calibrated on cN.

With cutoffs ``horizon_days`` apart (the default) that is c1..c(N-2), c(N-1)
and cN. Without such a chain (a short history: from 120 days of data with the
defaults) the folds are held-out customers of the newest cutoff instead
(:func:`split_folds`). Calibration: bounded isotonic, Platt or beta, chosen by
out-of-fold Brier score (:mod:`nextbest.models.calibration`).

At every cutoff the CLV count model is refitted on data before it, so
``p_alive`` and ``expected_purchases_h`` never see the label window.
Customers who objected to profiling never appear (dropped upstream and
filtered again here).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.features.build import FeatureContext, add_clv_features, features_at
from nextbest.features.customer import purchased_in_window
from nextbest.features.splits import rolling_cutoffs
from nextbest.models.calibration import fit_calibrator
from nextbest.models.churn import ChurnModel, churn_feature_names
from nextbest.models.clv import make_clv_model
from nextbest.models.evaluation import (
    calibration_table,
    classification_metrics,
    lift_table,
    paired_interval,
    roc_auc,
)
from nextbest.models.tabular import learn_levels
from nextbest.train.gate import gate

log = logging.getLogger(__name__)


BASELINE_NAMES = {"recency": "recency", "p_alive": "P(alive)"}


@dataclass
class ChurnResult:
    model: ChurnModel
    metrics: dict[str, float]
    gate: dict
    cutoffs: list[pd.Timestamp]
    calibration: dict[str, pd.DataFrame]
    lift: dict[str, pd.DataFrame]
    importance: pd.DataFrame
    example: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def churn_examples(
    ctx: FeatureContext,
    cutoffs: list[pd.Timestamp],
    horizon_days: int,
    clv_config: dict,
    count_model: str,
) -> pd.DataFrame:
    """Features at each cutoff (data before it) with ``label`` = no purchase in the next
    ``horizon_days``."""
    unit = float(clv_config["time_unit_days"])
    index = pd.Index(ctx.table.customer_ids.astype(str))
    frames = []
    for c in cutoffs:
        f = features_at(ctx, c, unit)
        f = f[f["consent_profiling"]].reset_index(drop=True)
        clv = make_clv_model({**clv_config, "time_unit_days": unit}, count_model).fit(f)
        f = add_clv_features(f, clv, horizon_days)
        bought = purchased_in_window(ctx.table, c, horizon_days)
        f["label"] = (~bought[index.get_indexer(f["customer_id"])]).astype("int64")
        f["cutoff"] = c
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def _calibrated_baseline(cal_score, cal_y, test_score) -> np.ndarray:
    """A baseline score turned into probabilities the same way as the model's (chosen map)."""
    return fit_calibrator(cal_score, cal_y).predict(test_score)


@dataclass
class Folds:
    """Which example rows train, calibrate and test the evaluation model and the final one."""

    scheme: str
    note: str
    train: np.ndarray
    calibrate: np.ndarray
    test: np.ndarray
    final_train: np.ndarray
    final_calibrate: np.ndarray


SCHEME_TIME = "time"
SCHEME_CUSTOMERS = "held-out customers"


def split_folds(
    examples: pd.DataFrame,
    cutoffs: list[pd.Timestamp],
    shares: tuple[float, float],
    seed: int,
    horizon_days: int,
) -> Folds:
    """Train / calibration / test rows of ``examples`` (which has ``cutoff`` and ``customer_id``).

    No fold learns from a label window that overlaps a later fold's (cutoffs closer together
    than ``horizon_days`` overlap):

    * ``time``, when such a chain exists: test on the newest cutoff, calibrate on the newest
      one whose label window ends by it, train on the cutoffs whose label windows end by the
      calibration cutoff; the final model trains on the cutoffs whose label windows end by the
      newest and calibrates on the newest;
    * otherwise (``held-out customers``, short history): a seeded share of the newest cutoff's
      customers calibrates (``shares[0]``) and another tests (``shares[1]``); those customers are
      left out of every training row (older windows of theirs could overlap the newest). The
      final model trains on the same rows and calibrates on both held-out groups.
    """
    cut = examples["cutoff"].to_numpy()
    newest = cutoffs[-1]
    window = pd.Timedelta(days=horizon_days)
    before = [c for c in cutoffs if c + window <= newest]
    train_cuts = [c for c in cutoffs if before and c + window <= before[-1]]
    if train_cuts:
        calibrate = before[-1]
        return Folds(
            SCHEME_TIME,
            f"{len(cutoffs)} cutoffs: trained on the {len(train_cuts)} whose label windows end by "
            f"{calibrate.date()}, calibrated on {calibrate.date()}, tested on {newest.date()} "
            f"(the production model trains on the {len(before)} whose label windows end by the "
            "newest and calibrates on it)",
            cut + window <= calibrate,
            cut == calibrate,
            cut == newest,
            cut + window <= newest,
            cut == newest,
        )
    ids = np.sort(examples.loc[cut == newest, "customer_id"].astype(str).unique())
    u = np.random.default_rng(seed).random(len(ids))
    cal_ids = set(ids[u < shares[0]])
    test_ids = set(ids[(u >= shares[0]) & (u < shares[0] + shares[1])])
    cid = examples["customer_id"].astype(str)
    in_cal, in_test = cid.isin(cal_ids).to_numpy(), cid.isin(test_ids).to_numpy()
    train = ~in_cal & ~in_test
    return Folds(
        SCHEME_CUSTOMERS,
        f"short history, {len(cutoffs)} cutoff(s): calibrated on {shares[0]:.0%} and tested on "
        f"{shares[1]:.0%} of the customers of {newest.date()}, held out of training",
        train,
        in_cal & (cut == newest),
        in_test & (cut == newest),
        train,
        (in_cal | in_test) & (cut == newest),
    )


def train_churn(
    ctx: FeatureContext, as_of, config: dict, clv_config: dict, count_model: str
) -> ChurnResult:
    """Build examples, evaluate on the newest cutoff against baselines, fit the production model.

    With fewer than three cutoffs of history the folds are customers of the newest cutoff
    instead of cutoffs (:func:`split_folds`); ``metrics["short_history"]`` says which.
    """
    horizon = int(config["horizon_days"])
    cutoffs = rolling_cutoffs(
        ctx.first_day,
        as_of,
        horizon,
        int(config["cutoff_step_days"]),
        int(config["n_cutoffs"]),
        int(config["min_history_days"]),
        min_cutoffs=1,
    )
    ex = churn_examples(ctx, cutoffs, horizon, clv_config, count_model)
    names = churn_feature_names(ex, ctx.demographics)
    levels = learn_levels(ex, [d for d in ctx.demographics if d in names])
    folds = split_folds(ex, cutoffs, (0.25, 0.25), int(clv_config.get("seed", 42)), horizon)
    train, cal, test = ex[folds.train], ex[folds.calibrate], ex[folds.test]

    evaluation = ChurnModel(config["lightgbm"]).fit(train, cal, names, levels)
    y = test["label"].to_numpy()
    p = evaluation.predict_proba(test)
    baselines = {
        "recency": ("days_since_last", 1.0),
        "p_alive": ("p_alive", -1.0),
    }
    metrics = {f"test_{k}": v for k, v in classification_metrics(y, p).items()}
    metrics["test_top_decile_lift"] = float(lift_table(y, p)["lift"].iloc[0])
    calib = {"model": calibration_table(y, p)}
    lifts = {"model": lift_table(y, p)}
    for name, (col, sign) in baselines.items():
        cal_s = sign * cal[col].to_numpy(dtype=float)
        test_s = sign * test[col].to_numpy(dtype=float)
        bp = _calibrated_baseline(cal_s, cal["label"].to_numpy(dtype=float), test_s)
        m = classification_metrics(y, test_s)
        m["brier"] = classification_metrics(y, bp)["brier"]
        metrics.update(
            {f"baseline_{name}_{k}": v for k, v in m.items() if k in ("auc", "pr_auc", "brier")}
        )
        metrics[f"baseline_{name}_top_decile_lift"] = float(lift_table(y, test_s)["lift"].iloc[0])
        calib[name] = calibration_table(y, bp)
        lifts[name] = lift_table(y, test_s)
    best_name = max(baselines, key=lambda name: metrics[f"baseline_{name}_auc"])
    best_base = metrics[f"baseline_{best_name}_auc"]
    metrics["test_auc_gain_vs_best_baseline"] = metrics["test_auc"] - best_base
    col, sign = baselines[best_name]
    base_s = sign * test[col].to_numpy(dtype=float)
    interval = paired_interval(
        len(y),
        lambda rows: (roc_auc(y[rows], p[rows]), roc_auc(y[rows], base_s[rows])),
        "higher",
    )
    if interval is not None:
        metrics["test_auc_gain_low"], metrics["test_auc_gain_high"] = interval.gain
    metrics["n_cutoffs"] = float(len(cutoffs))
    metrics["n_examples"] = float(len(ex))
    metrics["short_history"] = float(folds.scheme == SCHEME_CUSTOMERS)
    metrics.update({f"calibration_brier_{k}": v for k, v in evaluation.calibrator_.brier.items()})
    verdict = gate(
        {
            "min_auc_gain_vs_baselines": metrics["test_auc_gain_vs_best_baseline"],
            "min_auc_gain_low_vs_baselines": metrics.get("test_auc_gain_low", float("nan")),
            "max_brier": metrics["test_brier"],
        },
        config["thresholds"],
    )

    final = ChurnModel(config["lightgbm"]).fit(
        ex[folds.final_train], ex[folds.final_calibrate], names, levels
    )
    final.horizon_days_ = horizon
    gain = metrics["test_auc_gain_vs_best_baseline"]
    notes = [
        f"churn validation: {folds.note}",
        f"churn: test AUC {metrics['test_auc']:.3f} vs {BASELINE_NAMES[best_name]} "
        f"{best_base:.3f}, gain {gain:+.3f}"
        + (
            f" (95% interval {interval.gain[0]:+.3f} to {interval.gain[1]:+.3f} over "
            f"{len(y):,} test customers)"
            if interval is not None
            else ""
        ),
        f"churn calibration: {final.calibration_method_} (out-of-fold Brier "
        + ", ".join(f"{k} {v:.4f}" for k, v in final.calibrator_.brier.items())
        + ")",
    ]
    return ChurnResult(
        final,
        metrics,
        verdict,
        cutoffs,
        calib,
        lifts,
        final.feature_importance(),
        test[["customer_id", *names]].head(5),
        notes,
    )
