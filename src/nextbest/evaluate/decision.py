"""Decision backtest: the actions :func:`nextbest.scoring.score` chooses at ``as_of``, against two
simple policies.

Policies, each limited to what the catalog allows (eligibility rules) and to
customers who consented to profiling:

* **model** - exactly what ``score()`` decides (the function behind batch
  and HTTP): retention, the best cross-sell by expected value, or nothing;
* **random offer** - one eligible cross-sell offer drawn uniformly (seeded)
  for every customer who has one;
* **rule** - the retention offer when the customer has not bought for more
  than ``recency_days`` (the churn horizon), else the most popular eligible
  cross-sell offer (category popularity at ``as_of``).

Expected value uses the models' own estimates (cross-sell ``P(convert) x
value - cost``; retention ``P(churn) x uplift x CLV - cost``), so it
favours the model policy by construction. The **realised** value is
measured: a cross-sell offer is worth ``value - cost`` if the customer bought
its category in the ``label_window_days`` after ``as_of`` and ``-cost``
otherwise. No offer was actually sent, so this measures targeting (who buys
anyway), not the offers' causal effect; retention is not measurable this way
and is counted apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.decision.policy import gate_offers
from nextbest.evaluate.data import BacktestData
from nextbest.evaluate.results import HIGHER, Chart, Score, Section
from nextbest.evaluate.uncertainty import add_interval
from nextbest.features.build import category_popularity, features_at
from nextbest.features.customer import category_bought_in_window
from nextbest.plots import evaluation as figures
from nextbest.plots import png
from nextbest.scoring import ModelSet, score

TITLE = "Decisions: who gets which offer"
NONE, RETENTION = -1, -2


def policy_choices(models: ModelSet, data: BacktestData, recency_days: int, seed: int):
    """Per policy an int array per customer: catalog offer index, ``-2`` retention, ``-1``
    nothing."""
    catalog = models.catalog
    f = features_at(data.ctx_full, data.as_of, models.clv.time_unit_days)
    f = f[f["consent_profiling"]].reset_index(drop=True)
    popularity = category_popularity(data.ctx_full, data.as_of)
    decided = score(f, models, data.horizon_days, popularity, None, data.as_of)
    offer_ids = [o.offer_id for o in catalog.offers]
    lookup = {oid: j for j, oid in enumerate(offer_ids)}
    ret_id = catalog.retention.offer_id if catalog.retention else None
    model = np.array(
        [RETENTION if a == ret_id else lookup.get(a, NONE) for a in decided["action_offer_id"]]
    )
    # The baselines use the model scores score() already computed, and P(convert) of every pair.
    pred_clv, churn, p_alive = (
        decided[c].to_numpy() for c in ("predicted_clv", "churn_probability", "p_alive")
    )
    p = models.nbo.predict_offers(f, catalog.offers, popularity).reshape(len(offer_ids), len(f)).T

    n = len(f)
    ok = gate_offers(
        f, catalog, pred_clv, churn, p_alive, np.ones(n, dtype=bool), None, data.as_of
    ).ok
    rng = np.random.default_rng(seed)
    random = np.full(n, NONE)
    counts = ok.sum(axis=1)
    has = counts > 0
    pick = (rng.random(n) * np.maximum(counts, 1)).astype(int)
    random[has] = np.array([np.flatnonzero(row)[k] for row, k in zip(ok[has], pick[has])])
    pop = np.array([popularity.get(o.category, 0.0) for o in catalog.offers])
    by_pop = np.where(ok, pop[None, :], -np.inf).argmax(axis=1)
    rule = np.where(has, by_pop, NONE)
    if catalog.retention is not None:
        rule = np.where(f["days_since_last"].to_numpy() > recency_days, RETENTION, rule)
    ret_ev = np.nan_to_num(churn) * (
        catalog.retention.uplift if catalog.retention else 0
    ) * pred_clv - (catalog.retention.cost if catalog.retention else 0)
    return f, {"model": model, "random offer": random, "rule": rule}, p, ret_ev


def realised_per_customer(
    choice: np.ndarray, converted: np.ndarray, value: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer: sent a cross-sell offer, bought its category, realised value of it."""
    n = len(choice)
    xs = choice >= 0
    j = np.where(xs, choice, 0)
    hit = xs & converted[np.arange(n), j]
    return xs, hit, np.where(xs, hit * value[j] - cost[j], 0.0)


def _conversion_rate(xs: np.ndarray, hit: np.ndarray) -> float:
    return float(hit.sum() / xs.sum()) if xs.any() else float("nan")


# Scores with a bootstrap interval over customers: (sent, bought, realised) on rows -> value.
INTERVALS = {
    "realised_cross_sell_value": lambda xs, hit, realised: float(realised.sum()),
    "cross_sell_conversion_rate": lambda xs, hit, realised: _conversion_rate(xs, hit),
}


def policy_table(
    choices: dict[str, np.ndarray],
    p: np.ndarray,
    ret_ev: np.ndarray,
    converted: np.ndarray,
    value: np.ndarray,
    cost: np.ndarray,
) -> pd.DataFrame:
    """Contacts, expected and realised value per policy (see the module docstring for the
    accounting)."""
    rows = []
    n = len(ret_ev)
    for name, c in choices.items():
        xs, hit, realised = realised_per_customer(c, converted, value, cost)
        j = np.where(xs, c, 0)
        ev = np.where(xs, p[np.arange(n), j] * value[j] - cost[j], 0.0) + np.where(
            c == RETENTION, ret_ev, 0.0
        )
        rows.append(
            {
                "policy": name,
                "customers": n,
                "contacted": int((c != NONE).sum()),
                "cross_sell": int(xs.sum()),
                "retention": int((c == RETENTION).sum()),
                "expected_value": float(ev.sum()),
                "realised_cross_sell_value": float(realised.sum()),
                "cross_sell_conversion_rate": _conversion_rate(xs, hit),
                "realised_value_per_cross_sell": float(realised.sum() / xs.sum())
                if xs.any()
                else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def decision_section(
    models: ModelSet, data: BacktestData, configs: dict, seed: int = 42
) -> Section:
    """Model policy against random-offer and rule policies on expected and realised value."""
    if models.nbo is None:
        return Section.skipped("decision", TITLE, models.skipped.get("nbo", "no offer model"))
    window = int(configs["nbo"]["label_window_days"])
    if not data.window_fits(window):
        return Section.skipped(
            "decision", TITLE, f"the {window}-day window runs past the end of the data"
        )
    recency_days = int(models.churn_horizon_days)
    f, choices, p, ret_ev = policy_choices(models, data, recency_days, seed)
    catalog = models.catalog
    table_ = data.ctx_full.table
    rows = pd.Index(table_.customer_ids.astype(str)).get_indexer(f["customer_id"])
    cols = [table_.categories.index(o.category) for o in catalog.offers]
    converted = category_bought_in_window(table_, data.as_of, window)[rows][:, cols]
    value = np.array([o.value for o in catalog.offers])
    cost = np.array([o.cost for o in catalog.offers])
    t = policy_table(choices, p, ret_ev, converted, value, cost)
    get = t.set_index("policy")

    def s(col, label, headline, fmt):
        return Score(
            col,
            label,
            float(get.loc["model", col]),
            {k: float(get.loc[k, col]) for k in ("random offer", "rule")},
            HIGHER,
            headline,
            fmt,
        )

    section = Section(
        name="decision",
        title=TITLE,
        intro=(
            f"The actions chosen on {data.as_of.date()} for {len(f):,} customers, against sending "
            "a random "
            f"eligible offer (seed {seed}) and a rule (retention offer after {recency_days} days "
            "without a "
            "purchase, else the most popular eligible offer). Realised value counts cross-sell "
            "offers whose "
            f"category the customer bought in the next {window} days."
        ),
        scores=[
            s(
                "realised_cross_sell_value",
                "Realised cross-sell value: conversions x value - cost ($)",
                True,
                "{:,.0f}",
            ),
            s(
                "cross_sell_conversion_rate",
                "Share of cross-sell offers whose category was bought",
                True,
                "{:.1%}",
            ),
            s(
                "realised_value_per_cross_sell",
                "Realised value per cross-sell offer sent ($)",
                False,
                "{:,.2f}",
            ),
            s(
                "expected_value",
                "Expected value of the chosen actions, by the models' estimates ($)",
                False,
                "{:,.0f}",
            ),
        ],
        tables={"policies": t},
        notes=[
            "No offer was really sent in the backtest: realised value shows whether the chosen "
            "customers "
            "buy the category anyway (good targeting), not how many extra purchases an offer "
            "causes. "
            f"Retention offers ({int(get.loc['model', 'retention']):,} chosen by the model) cannot "
            "be "
            "valued this way and are excluded from realised value."
        ],
    )
    per = {k: realised_per_customer(c, converted, value, cost) for k, c in choices.items()}
    for sc in section.scores:
        if sc.key in INTERVALS:

            def measure(rows, base, metric=INTERVALS[sc.key]):
                return metric(*(a[rows] for a in per["model" if base is None else base]))

            add_interval(sc, len(f), measure)
    fig = figures.grouped_bars(
        t,
        "policy",
        ["expected_value", "realised_cross_sell_value"],
        "Value of each policy ($)",
        "$",
        "{:,.0f}",
        labels=["expected (model estimates)", "realised (cross-sell)"],
    )
    section.charts.append(
        Chart(
            "decision_value",
            "Expected and realised value of each policy",
            "Realised value: what the offers sent would have earned from purchases that really "
            "happened, minus the cost of every contact.",
            png(fig),
        )
    )
    return section
