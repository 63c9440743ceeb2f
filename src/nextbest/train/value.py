"""Training the boosted CLV model, and the rule that says whether it replaces the count model.

Examples (:func:`value_examples`): at each cutoff ``c`` (every
``cutoff_step_days``, the newest ``as_of - horizon_days`` so its window ends at
``as_of``) the feature row of every customer seen before ``c``, the count
model refitted on data before ``c`` (its P(alive), expected purchases and
spend become features), and the targets: purchase-days and revenue in
``[c, c + horizon_days)``.

Selection on held-out customers (:func:`train_value`): a seeded
``holdout_share`` of the customers of the newest cutoff is taken out of every
cutoff (their older windows overlap the newest one, so keeping them would
leak); the boosted model is fitted on the others and, on the held-out
customers, compared with the count model refitted at the newest cutoff and
with the historic rate. **Rule:** the boosted model is chosen when it is not
worse than the count model on any of revenue MAE, Spearman and normalised
Gini of revenue, and better on at least one; differences under 1% (relative)
are ties, as in ``nextbest evaluate``. Totals need no check here: the boosted
model is scaled to the count model's totals (see
:mod:`nextbest.models.value`). The production model is then fitted on every
customer and cutoff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.errors import InputError
from nextbest.features.build import FeatureContext, features_at
from nextbest.features.customer import day_number
from nextbest.features.splits import rolling_cutoffs
from nextbest.models.clv import ClvModel, make_clv_model
from nextbest.models.evaluation import value_metrics
from nextbest.models.tabular import learn_levels
from nextbest.models.value import BoostedClvModel, btyd_features, value_feature_names

log = logging.getLogger(__name__)

# Relative differences under this are ties (the same tolerance as the evaluation report).
TIE = 0.01
RULE = (
    "boosted model chosen when, on held-out customers of the newest cutoff, it is not worse than "
    "the count model on revenue MAE, Spearman or normalised Gini and better on at least one "
    "(differences under 1% are ties); its totals are the count model's"
)


@dataclass
class ValueResult:
    """What :func:`train_value` produced."""

    chosen: bool
    reason: str
    model: BoostedClvModel | None = None
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: dict[str, float] = field(default_factory=dict)
    cutoffs: list[pd.Timestamp] = field(default_factory=list)


def window_targets(ctx: FeatureContext, start, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Per customer code: purchase-days and revenue in ``[start, start + days)``."""
    t = ctx.table
    s = day_number(start)
    m = (t.day_day >= s) & (t.day_day < s + days)
    n = np.bincount(t.day_cust[m], minlength=t.n_customers).astype("float64")
    revenue = np.bincount(t.day_cust[m], weights=t.day_amount[m], minlength=t.n_customers)
    return n, revenue


def value_examples(
    ctx: FeatureContext,
    cutoffs: list[pd.Timestamp],
    horizon_days: int,
    clv_config: dict,
    count_model: str,
) -> tuple[pd.DataFrame, dict[pd.Timestamp, ClvModel]]:
    """Feature rows with count-model features and targets at every cutoff, and those count models.

    Customers who objected to profiling are left out.
    """
    unit = float(clv_config["time_unit_days"])
    index = pd.Index(ctx.table.customer_ids.astype(str))
    frames, models = [], {}
    for c in cutoffs:
        f = features_at(ctx, c, unit)
        f = f[f["consent_profiling"]].reset_index(drop=True)
        btyd = make_clv_model(clv_config, count_model).fit(f)
        models[c] = btyd
        n, revenue = window_targets(ctx, c, horizon_days)
        rows = index.get_indexer(f["customer_id"])
        targets = pd.DataFrame(
            {"y_purchases": n[rows], "y_revenue": revenue[rows], "cutoff": c}, index=f.index
        )
        frames.append(pd.concat([f, btyd_features(btyd, f, horizon_days), targets], axis=1))
    return pd.concat(frames, ignore_index=True), models


def held_out(customer_ids: pd.Series, share: float, seed: int) -> np.ndarray:
    """A seeded random ``share`` of the distinct ``customer_ids`` (a boolean mask per row)."""
    ids = np.sort(customer_ids.astype(str).unique())
    rng = np.random.default_rng(seed)
    chosen = set(ids[rng.random(len(ids)) < share])
    return customer_ids.astype(str).isin(chosen).to_numpy()


def _historic_purchases(frame: pd.DataFrame, horizon_units: float) -> np.ndarray:
    """Each customer's repeat-purchase rate ``frequency / T`` over ``horizon_units``."""
    T = frame["T"].to_numpy(dtype="float64")
    f = frame["frequency"].to_numpy(dtype="float64")
    return np.divide(f, T, out=np.zeros_like(T), where=T > 0) * horizon_units


def _compare(test: pd.DataFrame, boosted: BoostedClvModel, horizon_days: int) -> pd.DataFrame:
    """Revenue and purchase measures of each candidate on the held-out rows."""
    pred = boosted.predict(test, horizon_days=horizon_days)
    h = horizon_days / boosted.time_unit_days
    candidates = {
        "boosted": (
            pred["expected_purchases"].to_numpy() * pred["expected_spend"].to_numpy(),
            pred["expected_purchases"].to_numpy(),
        ),
        "count model": (test["btyd_revenue"].to_numpy(), test["btyd_purchases"].to_numpy()),
        "historic rate": (test["historic_revenue"].to_numpy(), _historic_purchases(test, h)),
    }
    rows = []
    for name, (revenue, purchases) in candidates.items():
        r = value_metrics(test["y_revenue"].to_numpy(), revenue)
        n = value_metrics(test["y_purchases"].to_numpy(), purchases)
        rows.append(
            {
                "candidate": name,
                "revenue_mae": r["mae"],
                "revenue_spearman": r["spearman"],
                "revenue_normalized_gini": r["normalized_gini"],
                "revenue_aggregate_error": r["aggregate_error"],
                "purchases_mae": n["mae"],
                "purchases_aggregate_error": n["aggregate_error"],
            }
        )
    return pd.DataFrame(rows).set_index("candidate")


def _verdicts(table: pd.DataFrame) -> dict[str, str]:
    """``better``/``worse``/``tie`` of the boosted model against the count model per measure."""
    out = {}
    for measure, higher in (
        ("revenue_mae", False),
        ("revenue_spearman", True),
        ("revenue_normalized_gini", True),
    ):
        a, b = table.loc["boosted", measure], table.loc["count model", measure]
        if not (np.isfinite(a) and np.isfinite(b)):
            out[measure] = "n/a"
        elif abs(a - b) <= TIE * max(abs(a), abs(b)):
            out[measure] = "tie"
        else:
            out[measure] = "better" if (a > b) == higher else "worse"
    return out


def train_value(ctx: FeatureContext, as_of, clv_config: dict, count_model: ClvModel) -> ValueResult:
    """Fit the boosted CLV model on top of ``count_model`` (fitted at ``as_of``) and decide.

    Returns a :class:`ValueResult`; ``chosen`` is false (with the reason) when the data has too
    little history for a single cutoff, or the boosted model does not pass the rule.
    """
    cfg = clv_config["value_model"]
    h = int(cfg["horizon_days"])
    try:
        cutoffs = rolling_cutoffs(
            ctx.first_day,
            as_of,
            h,
            int(cfg["cutoff_step_days"]),
            int(cfg["n_cutoffs"]),
            int(cfg["min_history_days"]),
            min_cutoffs=1,
        )
    except InputError as exc:
        return ValueResult(False, f"boosted CLV not trained: {exc}")
    name = count_model.count_model_used_
    ex, models = value_examples(ctx, cutoffs, h, clv_config, name)
    names = value_feature_names(ex, ctx.demographics)
    levels = learn_levels(ex, [d for d in ctx.demographics if d in names])
    newest = cutoffs[-1]
    out = held_out(ex["customer_id"], float(cfg["holdout_share"]), int(clv_config["seed"]))
    at_newest = (ex["cutoff"] == newest).to_numpy()
    params = dict(cfg["lightgbm"])
    evaluation = BoostedClvModel(models[newest], params, h).fit(
        ex[~out], names, levels, ex[at_newest & ~out]
    )
    test = ex[at_newest & out].reset_index(drop=True)
    if len(test) < 50:
        return ValueResult(
            False, f"boosted CLV not chosen: only {len(test)} held-out customers to judge it by"
        )
    table = _compare(test, evaluation, h)
    verdicts = _verdicts(table)
    chosen = "worse" not in verdicts.values() and "better" in verdicts.values()
    metrics = {
        f"value_holdout.{cand.replace(' ', '_')}.{k}": float(v)
        for cand, row in table.iterrows()
        for k, v in row.items()
    }
    metrics["value_n_examples"] = float(len(ex))
    metrics["value_n_holdout_customers"] = float(len(test))
    detail = ", ".join(
        f"{m.replace('revenue_', '')} {table.loc['boosted', m]:.3f} vs "
        f"{table.loc['count model', m]:.3f} ({v})"
        for m, v in verdicts.items()
    )
    reason = (
        f"boosted CLV {'chosen' if chosen else 'not chosen'} on {len(test):,} held-out customers "
        f"of the {newest.date()} cutoff ({h}-day revenue; boosted vs count model: {detail}); "
        f"rule: {RULE}"
    )
    result = ValueResult(
        chosen, reason, table=table.reset_index(), metrics=metrics, cutoffs=cutoffs
    )
    if chosen:
        population = features_at(ctx, as_of, count_model.time_unit_days)
        population = population[population["consent_profiling"]].reset_index(drop=True)
        result.model = BoostedClvModel(count_model, params, h).fit(ex, names, levels, population)
    return result
