"""Churn backtest: risk scored at ``as_of`` against who really bought nothing in the churn horizon.

Label (as in training): 1 = no purchase in ``[as_of, as_of + h)`` with ``h``
the churn model's own horizon (``models/churn.yaml``, 30 days by default).
Baselines, as in the churn promotion gate:

* recency - days since the last purchase (longer = riskier);
* P(alive) - ``1 - P(alive)`` of the CLV model.

AUC, PR-AUC and lift use the raw baseline scores (rankings); for the Brier
score and the calibration curve the baselines are turned into probabilities
by the same kind of map as the model's (bounded isotonic, Platt or beta, the
lowest out-of-fold Brier score; :mod:`nextbest.models.calibration`) fitted on
the previous window (cutoff ``as_of - h``, label window ending at ``as_of``),
so no baseline sees the horizon either.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from nextbest.evaluate.data import BacktestData
from nextbest.evaluate.results import HIGHER, LOWER, ZERO, Chart, Score, Section
from nextbest.evaluate.sources import MODEL_ERRORS
from nextbest.evaluate.uncertainty import add_interval
from nextbest.features.build import add_clv_features, features_at
from nextbest.features.customer import purchased_in_window
from nextbest.models.calibration import fit_calibrator
from nextbest.models.evaluation import (
    brier,
    calibration_table,
    classification_metrics,
    lift_table,
    roc_auc,
)
from nextbest.plots import classifier as pc
from nextbest.plots import evaluation as figures
from nextbest.plots import png
from nextbest.scoring import ModelSet
from nextbest.train.churn import churn_examples

log = logging.getLogger(__name__)

TITLE = "Churn risk"
MIN_CLASS = 10
BASELINES = {"recency": ("days_since_last", 1.0), "P(alive)": ("p_alive", -1.0)}


def churn_frame(
    models: ModelSet, data: BacktestData, ctx, cutoff: pd.Timestamp, h: int
) -> pd.DataFrame:
    """Features at ``cutoff`` (data before it) with ``p_alive`` and ``label`` (no purchase in the
    next ``h`` days)."""
    f = features_at(ctx, cutoff, models.clv.time_unit_days)
    f = f[f["consent_profiling"]].reset_index(drop=True)
    f = add_clv_features(f, models.clv, h)
    index = pd.Index(ctx.table.customer_ids.astype(str))
    bought = purchased_in_window(ctx.table, cutoff, h)
    return f.assign(label=(~bought[index.get_indexer(f["customer_id"])]).astype("int64"))


def _baseline_probabilities(
    models: ModelSet, data: BacktestData, configs: dict, h: int, test: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Calibrated maps from each baseline score to P(churn), fitted on the window before
    ``as_of``."""

    prev = data.as_of - pd.Timedelta(days=h)
    clv_cfg = {**configs["clv"], "time_unit_days": models.clv.time_unit_days}
    try:
        cal = churn_examples(data.ctx_train, [prev], h, clv_cfg, models.clv.count_model_used_)
    except MODEL_ERRORS as exc:
        log.warning("baseline calibration window unavailable: %s", exc)
        return {}
    out = {}
    for name, (col, sign) in BASELINES.items():
        try:
            calibrator = fit_calibrator(
                sign * cal[col].to_numpy(dtype=float), cal["label"].to_numpy(dtype=float)
            )
        except MODEL_ERRORS as exc:
            log.warning("baseline %s cannot be calibrated: %s", name, exc)
            continue
        out[name] = calibrator.predict(sign * test[col].to_numpy(dtype=float))
    return out


def churn_section(models: ModelSet, data: BacktestData, configs: dict) -> Section:
    """Scores, tables and charts of the churn model at ``as_of``; skipped (with the reason) when not
    measurable."""
    if models.churn is None:
        return Section.skipped("churn", TITLE, models.skipped.get("churn", "no churn model"))
    h = models.churn_horizon_days
    if not data.window_fits(h):
        return Section.skipped(
            "churn",
            TITLE,
            f"the {h}-day churn window after {data.as_of.date()} runs past the end of the data",
        )
    test = churn_frame(models, data, data.ctx_full, data.as_of, h)
    y = test["label"].to_numpy()
    if min(y.sum(), len(y) - y.sum()) < MIN_CLASS:
        return Section.skipped(
            "churn",
            TITLE,
            f"too few churners or buyers in the {h}-day window "
            f"({int(y.sum())} of {len(y)} churned) to measure a ranking",
        )
    try:
        p = models.churn.predict_proba(test)
    except MODEL_ERRORS as exc:
        return Section.skipped("churn", TITLE, f"the churn model cannot score this data: {exc}")
    raw = {name: sign * test[col].to_numpy(dtype=float) for name, (col, sign) in BASELINES.items()}
    probs = _baseline_probabilities(models, data, configs, h, test)
    m = classification_metrics(y, p)
    lifts = {"model": lift_table(y, p), **{name: lift_table(y, s) for name, s in raw.items()}}
    calib = {
        "model": calibration_table(y, p),
        **{name: calibration_table(y, q) for name, q in probs.items()},
    }
    scores = _scores(y, m, raw, probs, lifts)
    _add_intervals(scores, y, p, raw, probs)
    section = Section(
        name="churn",
        title=TITLE,
        intro=(
            f"{len(y):,} customers scored on {data.as_of.date()}; {int(y.sum()):,} "
            f"({m['base_rate']:.1%}) "
            f"then made no purchase in the next {h} days. Baselines: days since the last purchase, "
            "and 1 - P(alive) from the CLV model."
        ),
        scores=scores,
        tables={
            **{f"lift_{k}": v for k, v in lifts.items()},
            **{f"calibration_{k}": v for k, v in calib.items()},
        },
    )
    section.charts += _charts(calib, lifts)
    calibrator = getattr(models.churn, "calibrator_", None)
    if getattr(calibrator, "brier", None):
        section.notes.append(
            f"Calibration: {calibrator.method} map, chosen by the lowest out-of-fold Brier score "
            "on the calibration data ("
            + ", ".join(f"{k} {v:.4f}" for k, v in calibrator.brier.items())
            + "); predictions stay within "
            + f"[{calibrator.bounds[0]:.4f}, {calibrator.bounds[1]:.4f}]."
        )
    if not 0.05 <= m["base_rate"] <= 0.9:
        section.notes.append(
            f"{m['base_rate']:.0%} of customers bought nothing in the {h}-day window: the label "
            "barely separates "
            "customers, so no ranking can do much. Slower categories need a longer churn window "
            "(--churn-horizon-days, models/churn.yaml)."
        )
    if not probs:
        section.notes.append(
            "The baselines' Brier score needs the window before as_of, which the data does not "
            "have: shown as n/a."
        )
    return section


def _scores(
    y: np.ndarray,
    m: dict,
    raw: dict[str, np.ndarray],
    probs: dict[str, np.ndarray],
    lifts: dict[str, pd.DataFrame],
) -> list[Score]:
    base = {name: classification_metrics(y, s) for name, s in raw.items()}
    brier = {
        name: classification_metrics(y, probs[name])["brier"] if name in probs else float("nan")
        for name in raw
    }

    def top(name):
        return float(lifts[name]["lift"].iloc[0])

    return [
        Score(
            "auc",
            "Ranking churners above buyers (AUC)",
            m["auc"],
            {k: v["auc"] for k, v in base.items()},
            HIGHER,
            True,
        ),
        Score(
            "pr_auc",
            "Precision on churners (PR-AUC)",
            m["pr_auc"],
            {k: v["pr_auc"] for k, v in base.items()},
            HIGHER,
            True,
        ),
        Score(
            "brier", "Probability accuracy (Brier score)", m["brier"], brier, LOWER, True, "{:.4f}"
        ),
        Score(
            "top_decile_lift",
            "Churn rate in the riskiest 10% vs average (lift)",
            top("model"),
            {k: top(k) for k in raw},
            HIGHER,
            True,
            "{:.2f}x",
        ),
        Score(
            "rate_error",
            f"Predicted minus actual churn rate (actual {m['base_rate']:.1%})",
            m["mean_prediction"] - m["base_rate"],
            {k: float(q.mean()) - m["base_rate"] for k, q in probs.items()},
            ZERO,
            False,
            "{:+.1%}",
        ),
    ]


def _add_intervals(
    scores: list[Score],
    y: np.ndarray,
    p: np.ndarray,
    raw: dict[str, np.ndarray],
    probs: dict[str, np.ndarray],
) -> None:
    """Paired bootstrap intervals over customers for AUC (baselines' raw scores) and Brier score
    (their calibrated probabilities); :mod:`nextbest.evaluate.uncertainty`."""
    for s in scores:
        if s.key == "auc":
            metric, baselines = roc_auc, raw
        elif s.key == "brier":
            metric, baselines = brier, probs
        else:
            continue

        def measure(rows, baseline, metric=metric, baselines=baselines):
            return metric(y[rows], (p if baseline is None else baselines[baseline])[rows])

        add_interval(s, len(y), measure)


def _charts(calib: dict[str, pd.DataFrame], lifts: dict[str, pd.DataFrame]) -> list[Chart]:
    shown = {k: v[v["n"] >= MIN_CLASS] for k, v in calib.items()}
    charts = [
        (
            "churn_calibration",
            "Predicted vs observed churn",
            "Points on the diagonal mean that when the model says 30% risk, about 30% of those "
            "customers really "
            f"stopped buying (bins of fewer than {MIN_CLASS} customers not drawn).",
            pc.calibration_plot(shown, "Calibration in the churn window"),
        ),
        (
            "churn_lift",
            "Churn rate by risk decile, relative to average",
            "Bars above 1 in the first deciles mean the customers flagged as riskiest really do "
            "churn more often.",
            pc.lift_plot(lifts),
        ),
        (
            "churn_gain",
            "Share of all churners found when contacting the riskiest customers first",
            "The steeper the curve, the fewer customers a retention campaign must contact to reach "
            "most churners.",
            figures.gain_plot(lifts, "Cumulative gain: churners found"),
        ),
    ]
    return [Chart(n, t, e, png(f)) for n, t, e, f in charts]
