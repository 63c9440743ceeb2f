"""Churn training on rolling cutoffs: examples, time-held-out evaluation, final fit, MLflow.

Cutoffs c1 < ... < cN (see :func:`nextbest.features.splits.rolling_cutoffs`),
the newest ending its label window at ``as_of``:

* evaluation model: LightGBM on c1..c(N-2), isotonic calibration on c(N-1),
  metrics on cN - against the recency-only and 1 - P(alive) baselines, each
  calibrated on c(N-1) the same way;
* production model: LightGBM on c1..c(N-1), calibrated on cN.

At every cutoff the CLV count model is refitted on data before it, so
``p_alive`` and ``expected_purchases_h`` never see the label window.
Customers who objected to profiling never appear (dropped upstream and
filtered again here).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from nextbest.features.build import FeatureContext, add_clv_features, features_at
from nextbest.features.customer import purchased_in_window
from nextbest.features.splits import rolling_cutoffs
from nextbest.models.churn import ChurnModel, churn_feature_names
from nextbest.models.clv import make_clv_model
from nextbest.models.evaluation import calibration_table, classification_metrics, lift_table
from nextbest.models.tabular import learn_levels
from nextbest.train.gate import gate

log = logging.getLogger(__name__)


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
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(cal_score, cal_y)
    return iso.predict(test_score)


def train_churn(
    ctx: FeatureContext, as_of, config: dict, clv_config: dict, count_model: str
) -> ChurnResult:
    """Build examples, evaluate on the newest cutoff against baselines, fit the production model."""
    horizon = int(config["horizon_days"])
    cutoffs = rolling_cutoffs(
        ctx.first_day,
        as_of,
        horizon,
        int(config["cutoff_step_days"]),
        int(config["n_cutoffs"]),
        int(config["min_history_days"]),
    )
    ex = churn_examples(ctx, cutoffs, horizon, clv_config, count_model)
    names = churn_feature_names(ex, ctx.demographics)
    levels = learn_levels(ex, [d for d in ctx.demographics if d in names])
    train = ex[ex["cutoff"] < cutoffs[-2]]
    cal = ex[ex["cutoff"] == cutoffs[-2]]
    test = ex[ex["cutoff"] == cutoffs[-1]]

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
    best_base = max(metrics["baseline_recency_auc"], metrics["baseline_p_alive_auc"])
    metrics["test_auc_gain_vs_best_baseline"] = metrics["test_auc"] - best_base
    metrics["n_cutoffs"] = float(len(cutoffs))
    metrics["n_examples"] = float(len(ex))
    verdict = gate(
        {
            "min_auc_gain_vs_baselines": metrics["test_auc_gain_vs_best_baseline"],
            "max_brier": metrics["test_brier"],
        },
        config["thresholds"],
    )

    final = ChurnModel(config["lightgbm"]).fit(ex[ex["cutoff"] < cutoffs[-1]], test, names, levels)
    final.horizon_days_ = horizon
    return ChurnResult(
        final,
        metrics,
        verdict,
        cutoffs,
        calib,
        lifts,
        final.feature_importance(),
        test[["customer_id", *names]].head(5),
    )
