"""CLV backtest: predicted purchases and spend over the horizon against what customers really did.

For every customer first seen before ``as_of``:

* actual: repeat purchase-days and spend in ``[as_of, as_of + horizon_days)``;
* model: ``E[purchases]`` of the count model times the Gamma-Gamma mean
  spend per purchase - revenue, **undiscounted and before margin**, because
  that is what can be observed (``predicted_clv`` in scores is the same
  number discounted and times the margin);
* baseline (historic rate): each customer keeps their calibration repeat
  purchase rate and repeat spend rate
  (:func:`nextbest.models.evaluation.historic_rate_baseline`), the baseline
  the CLV promotion gate also uses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.evaluate.data import BacktestData
from nextbest.evaluate.results import HIGHER, LOWER, ZERO, Chart, Score, Section
from nextbest.evaluate.uncertainty import add_interval
from nextbest.features.build import features_at
from nextbest.features.customer import day_number
from nextbest.features.rfm import calibration_holdout, customer_days
from nextbest.models.clv import COUNT_MODEL_NAMES
from nextbest.models.evaluation import (
    decile_table,
    historic_rate_baseline,
    historic_spend_baseline,
    holdout_metrics,
    normalized_gini,
    spearman,
    value_metrics,
)
from nextbest.plots import clv as plots
from nextbest.plots import evaluation as figures
from nextbest.plots import png
from nextbest.scoring import ModelSet

TITLE = "Customer lifetime value"
BASELINE = "historic rate"
TOP_SHARE = 0.2


def top_share(actual: np.ndarray, score: np.ndarray, share: float = TOP_SHARE) -> float:
    """Share of total actual value from the top ``share`` of customers ranked by ``score``."""
    curve = figures.capture_curve(actual, score, points=1001)
    return float(np.interp(share, curve["share_of_customers"], curve["share_of_value"]))


def clv_section(models: ModelSet, data: BacktestData) -> Section:
    """Scores, tables and charts of the CLV model on the horizon after ``as_of``."""
    clv = models.clv
    unit, h = clv.time_unit_days, data.horizon_days
    cal = calibration_holdout(data.transactions, data.as_of, h, unit)
    pred = clv.predict(_scoring_rows(data, cal, unit), horizon_days=h)
    pred_n = pred["expected_purchases"].to_numpy()
    pred_spend = pred_n * pred["expected_spend"].to_numpy()
    act_n = cal["frequency_holdout"].to_numpy(dtype="float64")
    act_spend = act_n * cal["monetary_holdout"].to_numpy(dtype="float64")
    base_n, base_spend = historic_rate_baseline(cal), historic_spend_baseline(cal)
    mn, bn = holdout_metrics(act_n, pred_n), holdout_metrics(act_n, base_n)
    ms, bs = value_metrics(act_spend, pred_spend), value_metrics(act_spend, base_spend)

    def score(key, label, m, b, metric, better, headline=False, fmt="{:.3f}"):
        return Score(key, label, m[metric], {BASELINE: b[metric]}, better, headline, fmt)

    top_m, top_b, top_p = (top_share(act_spend, s) for s in (pred_spend, base_spend, act_spend))
    scores = [
        score(
            "purchases_aggregate_error",
            "Total repeat purchases: error of the forecast",
            mn,
            bn,
            "aggregate_error",
            ZERO,
            True,
            "{:+.1%}",
        ),
        score(
            "purchases_mae",
            "Purchases per customer: mean absolute error",
            mn,
            bn,
            "mae",
            LOWER,
            True,
        ),
        score(
            "spend_aggregate_error",
            "Total revenue: error of the forecast",
            ms,
            bs,
            "aggregate_error",
            ZERO,
            False,
            "{:+.1%}",
        ),
        score(
            "spend_mae",
            "Revenue per customer: mean absolute error ($)",
            ms,
            bs,
            "mae",
            LOWER,
            True,
            "{:,.2f}",
        ),
        score(
            "spend_spearman",
            "Ranking of customers by value (Spearman)",
            ms,
            bs,
            "spearman",
            HIGHER,
            True,
        ),
        score(
            "spend_normalized_gini",
            "Separating high from low value (normalised Gini)",
            ms,
            bs,
            "normalized_gini",
            HIGHER,
            True,
        ),
        score(
            "spend_decile_mape",
            "Revenue per value decile: mean absolute % error",
            ms,
            bs,
            "decile_mape",
            LOWER,
            True,
            "{:.1%}",
        ),
        Score(
            "spend_top20_share",
            "Share of revenue from the top 20% predicted customers",
            top_m,
            {BASELINE: top_b},
            HIGHER,
            True,
            "{:.1%}",
            references={"perfect hindsight": top_p},
        ),
    ]
    _add_intervals(scores, (act_n, pred_n, base_n), (act_spend, pred_spend, base_spend))
    totals = pd.DataFrame(
        [
            {
                "quantity": "repeat purchases",
                "actual": mn["actual_total"],
                "model": mn["predicted_total"],
                BASELINE: bn["predicted_total"],
            },
            {
                "quantity": "revenue ($)",
                "actual": ms["actual_total"],
                "model": ms["predicted_total"],
                BASELINE: bs["predicted_total"],
            },
        ]
    )
    deciles = {
        "model": decile_table(act_spend, pred_spend),
        BASELINE: decile_table(act_spend, base_spend),
    }
    section = Section(
        name="clv",
        title=TITLE,
        intro=(
            f"{len(cal):,} customers seen before {data.as_of.date()}; what each was predicted to "
            "buy in the "
            f"next {h} days against what they bought. Model: {_model_name(clv)}; baseline: every "
            "customer keeps buying at their past rate. Revenue is undiscounted and before margin."
        ),
        scores=scores,
        tables={
            "totals": totals,
            "deciles_model": deciles["model"],
            "deciles_baseline": deciles[BASELINE],
        },
    )
    _charts(section, clv, cal, data, act_spend, pred_spend, base_spend, deciles)
    section.notes.append(
        f"Actual: {mn['actual_total']:,.0f} repeat purchases and ${ms['actual_total']:,.0f} in the "
        "horizon; the "
        f"model predicted {mn['predicted_total']:,.0f} ({mn['aggregate_error']:+.1%}) and "
        f"${ms['predicted_total']:,.0f} ({ms['aggregate_error']:+.1%})."
    )
    return section


def _holdout(name: str):
    return lambda actual, predicted: holdout_metrics(actual, predicted)[name]


# Scores with a bootstrap interval: which quantity (0 purchases, 1 revenue) and measure.
INTERVALS = {
    "purchases_aggregate_error": (0, _holdout("aggregate_error")),
    "purchases_mae": (0, _holdout("mae")),
    "spend_aggregate_error": (1, _holdout("aggregate_error")),
    "spend_mae": (1, _holdout("mae")),
    "spend_spearman": (1, spearman),
    "spend_normalized_gini": (1, normalized_gini),
}


def _add_intervals(scores: list[Score], purchases: tuple, revenue: tuple) -> None:
    """Paired bootstrap intervals over customers (:mod:`nextbest.evaluate.uncertainty`): each
    quantity is (actual, model, historic-rate baseline)."""
    quantities = (purchases, revenue)
    for s in scores:
        if s.key not in INTERVALS:
            continue
        which, metric = INTERVALS[s.key]
        actual, model, base = quantities[which]

        def measure(rows, baseline, actual=actual, model=model, base=base, metric=metric):
            return metric(actual[rows], (model if baseline is None else base)[rows])

        add_interval(s, len(actual), measure)


def _scoring_rows(data: BacktestData, cal: pd.DataFrame, unit: float) -> pd.DataFrame:
    """The feature rows scoring would use at ``as_of`` (every feature, not only RFM), in the
    order of ``cal``: a boosted CLV model reads them all."""
    rows = features_at(data.ctx_full, data.as_of, unit).set_index("customer_id")
    return rows.loc[cal["customer_id"].astype(str)].reset_index()


def _model_name(clv) -> str:
    if hasattr(clv, "display_name"):
        return clv.display_name
    return f"{COUNT_MODEL_NAMES.get(clv.count_model_used_, clv.count_model_used_)} + Gamma-Gamma"


def _charts(
    section: Section,
    clv,
    cal: pd.DataFrame,
    data: BacktestData,
    act_spend,
    pred_spend,
    base_spend,
    deciles,
) -> None:
    unit, h = clv.time_unit_days, data.horizon_days
    fitter = clv.count_fitter_
    end = data.as_of + pd.Timedelta(days=h)
    days = customer_days(data.transactions, as_of=end)
    first = days.groupby("customer_id")["day"].min()
    as_of_day = day_number(data.as_of)
    first = first[first < as_of_day]
    days = days[days["customer_id"].isin(first.index)]
    tracking = plots.tracking_data(days, first, fitter, as_of_day, h, unit)
    section.tables["tracking_weekly"] = tracking
    section.tables["conditional_expectations"] = plots.conditional_expectations_data(cal, fitter)
    max_f = int(min(40, cal["frequency"].quantile(0.99) + 1))
    charts = [
        (
            "tracking",
            "Repeat purchases week by week: actual vs model",
            "Lines close together = the model tracks real buying, before the cut-off (fit) and "
            "after it (forecast); "
            "it expects purchases from the cohort seen at the start, so it reads best on a cohort "
            "such as CDNOW.",
            plots.tracking_plot(days, first, fitter, as_of_day, h, unit),
        ),
        (
            "conditional_expectations",
            "Forecast vs reality by how often customers bought before",
            "Each pair of bars is a group of customers with the same number of past repeat "
            "purchases: the closer "
            "the bars, the better the forecast for that kind of customer.",
            plots.conditional_expectations_plot(cal, fitter),
        ),
        (
            "p_alive_matrix",
            "Probability a customer is still active",
            "Bright = probably still a customer, dark = probably gone. Recency is how late in "
            "their history the "
            "last purchase came, so the top of the chart bought recently; frequent buyers who then "
            "went quiet "
            "(bottom right) are the ones the model thinks have left.",
            plots.frequency_recency_matrix(
                fitter,
                max_frequency=max(max_f, 1),
                max_recency=float(cal["T"].max()),
                kind="p_alive",
                time_unit_days=unit,
            ),
        ),
        (
            "value_capture",
            "How much revenue the top-ranked customers bring",
            "The higher the curve, the more of next period's revenue sits with the customers the "
            "model ranks first; "
            "'perfect' is the best any ranking could do.",
            figures.capture_plot(
                {
                    "model": figures.capture_curve(act_spend, pred_spend),
                    BASELINE: figures.capture_curve(act_spend, base_spend),
                    "perfect": figures.capture_curve(act_spend, act_spend),
                }
            ),
        ),
        (
            "value_deciles",
            "Predicted vs actual revenue per customer, by decile of predicted value",
            "Customers split into ten equal groups by predicted value; bars of equal height mean "
            "the forecast "
            "is right for that group.",
            figures.decile_plot(deciles),
        ),
    ]
    section.charts += [Chart(n, t, e, png(f)) for n, t, e, f in charts]
