"""Next-best-offer backtest: cross-sell rankings at ``as_of`` and coupon campaigns that started
after it.

Ranking (as in training): a (customer, offer) pair counts only when the
customer did not buy the offer's category in the ``prior_window_days``
before ``as_of``; it converted when they bought it in the
``label_window_days`` after. hit@k = share of converting customers with a
converted offer in their top k; MAP@k as in
:func:`nextbest.models.evaluation.ranking_metrics`. Baselines: category
popularity (same list for everyone) and last-bought (the categories the
customer bought most recently).

Campaigns (Complete Journey): every (household, campaign, offer category)
where the household received a campaign starting in the horizon and the
campaign had coupons in that category (coupon -> products -> department);
the outcome is a redemption of such a coupon. Predicted propensity is the
offer model's P(convert) for that household and category at ``as_of``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.evaluate.data import BacktestData
from nextbest.evaluate.results import HIGHER, Chart, Score, Section
from nextbest.evaluate.sources import MODEL_ERRORS
from nextbest.evaluate.uncertainty import add_interval
from nextbest.features.build import category_popularity, features_at
from nextbest.models.evaluation import (
    classification_metrics,
    cluster_rows,
    lift_table,
    rank_lists,
    ranking_metrics,
    roc_auc,
    user_hits,
)
from nextbest.models.offers import last_bought_scores, offer_pairs, popularity_scores
from nextbest.plots import evaluation as figures
from nextbest.plots import png
from nextbest.scoring import ModelSet
from nextbest.train.nbo import offer_examples

TITLE = "Next best offer"
CAMPAIGN_TITLE = "Coupon campaigns after the cut-off"
CAMPAIGN_TABLES = ("campaigns", "campaign_descriptions", "coupon_redemptions")


def offers_section(models: ModelSet, data: BacktestData, config: dict) -> Section:
    """hit@k, MAP@k and pair AUC of the offer model against the popularity and last-bought
    rankings."""

    if models.nbo is None:
        return Section.skipped("nbo", TITLE, models.skipped.get("nbo", "no offer model"))
    window, k = int(config["label_window_days"]), int(config["k"])
    if not data.window_fits(window):
        return Section.skipped(
            "nbo", TITLE, f"the {window}-day offer window runs past the end of the data"
        )
    pairs = offer_examples(
        data.ctx_full, [data.as_of], models.catalog, config, models.clv.time_unit_days
    )
    try:
        p = models.nbo.predict_proba(pairs)
    except MODEL_ERRORS as exc:
        return Section.skipped("nbo", TITLE, f"the offer model cannot score this data: {exc}")
    rankers = {
        "model": p,
        "popularity": popularity_scores(pairs),
        "last bought": last_bought_scores(pairs),
    }
    rows, hits = [], {}
    for name, score in rankers.items():
        rel, ranked = rank_lists(pairs, score)
        hits[name] = user_hits(rel, ranked, k)
        row = {
            "ranking": name,
            "pair_auc": classification_metrics(pairs["label"].to_numpy(), score)["auc"],
        }
        for kk in sorted({1, k}):
            r = ranking_metrics(rel, ranked, kk)
            row.update(
                {
                    f"hit_at_{kk}": r[f"hit@{kk}"],
                    f"map_at_{kk}": r[f"map@{kk}"],
                    "n_converting_customers": r["n_users"],
                }
            )
        rows.append(row)
    table = pd.DataFrame(rows)
    get = table.set_index("ranking")

    def score(col, label, headline, fmt="{:.3f}"):
        return Score(
            col,
            label,
            float(get.loc["model", col]),
            {n: float(get.loc[n, col]) for n in rankers if n != "model"},
            HIGHER,
            headline,
            fmt,
        )

    n_conv = int(get.loc["model", "n_converting_customers"])
    section = Section(
        name="nbo",
        title=TITLE,
        intro=(
            f"{pairs['customer_id'].nunique():,} customers with {len(pairs):,} cross-sell offers "
            "they were "
            f"eligible for on {data.as_of.date()} (category not bought in the previous "
            f"{config['prior_window_days']} days); {n_conv:,} of them bought at least one of those "
            "categories "
            f"in the next {window} days."
        ),
        scores=[
            score(
                f"hit_at_{k}",
                f"Converted offer among the top {k} recommended (hit@{k})",
                True,
                "{:.1%}",
            ),
            score(f"map_at_{k}", f"Converted offers ranked near the top (MAP@{k})", True),
            score("hit_at_1", "First recommendation converted (hit@1)", False, "{:.1%}"),
            score("pair_auc", "Ranking converting offers above the others (AUC)", False),
        ],
        tables={"rankings": table, "per_offer": _per_offer(pairs, p)},
    )
    # hit@k's interval: a paired bootstrap over the converting customers.
    add_interval(
        section.scores[0],
        len(hits["model"]),
        lambda rows, base: float(hits["model" if base is None else base][rows].mean()),
    )
    cols = list(dict.fromkeys(("hit_at_1", f"hit_at_{k}", f"map_at_{k}")))
    fig = figures.grouped_bars(
        table,
        "ranking",
        cols,
        "Offer rankings against what customers bought next",
        "share of converting customers",
        labels=[c.replace("_at_", "@").replace("map", "MAP") for c in cols],
    )
    section.charts.append(
        Chart(
            "nbo_rankings",
            "How often the recommended offers were the ones customers took",
            "Taller bars for 'model' mean its recommendations match what customers went on to "
            "buy more often than the simple rules do.",
            png(fig),
        )
    )
    return section


def _per_offer(pairs: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    rows = []
    for oid, g in pairs.assign(p=p).groupby("offer_id"):
        m = classification_metrics(g["label"].to_numpy(), g["p"].to_numpy())
        rows.append(
            {
                "offer_id": oid,
                "n_eligible": int(m["n"]),
                "conversion_rate": m["base_rate"],
                "mean_p_convert": m["mean_prediction"],
                "auc": m["auc"],
            }
        )
    return pd.DataFrame(rows)


def campaign_targets(data: BacktestData, categories: tuple[str, ...]) -> pd.DataFrame:
    """(customer, campaign, category, redeemed) for campaigns starting in the horizon, catalog
    categories only."""
    ex = data.extras
    desc = ex["campaign_descriptions"]
    start = pd.to_datetime(desc["start_date"])
    horizon_end = data.as_of + pd.Timedelta(days=data.horizon_days)
    ids = desc.loc[(start >= data.as_of) & (start < horizon_end), "campaign_id"]
    dept = data.ctx_full.coupon_dept
    if dept is None or dept.empty or ids.empty:
        return pd.DataFrame(columns=["customer_id", "campaign_id", "category", "redeemed"])
    dept = dept[dept["campaign_id"].isin(ids) & dept["category"].isin(categories)]
    cats = dept[["campaign_id", "category"]].drop_duplicates()
    got = ex["campaigns"][ex["campaigns"]["campaign_id"].isin(ids)]
    triples = got.assign(customer_id=got["customer_id"].astype(str)).merge(cats, on="campaign_id")
    red = ex["coupon_redemptions"].merge(dept, on=["campaign_id", "coupon_upc"])
    red = red.assign(customer_id=red["customer_id"].astype(str))[
        ["customer_id", "campaign_id", "category"]
    ]
    red = red.drop_duplicates().assign(redeemed=1)
    out = triples.merge(red, on=["customer_id", "campaign_id", "category"], how="left")
    return out.assign(redeemed=out["redeemed"].fillna(0).astype("int64")).reset_index(drop=True)


def campaign_section(models: ModelSet, data: BacktestData) -> Section | None:
    """Redemption rate by predicted-propensity decile; ``None`` when the dataset has no campaign
    tables."""
    if not all(t in data.extras for t in CAMPAIGN_TABLES) or "coupons" not in data.extras:
        return None
    if models.nbo is None:
        return Section.skipped(
            "campaigns", CAMPAIGN_TITLE, models.skipped.get("nbo", "no offer model")
        )
    catalog = models.catalog
    targets = campaign_targets(data, catalog.categories)
    f = features_at(data.ctx_full, data.as_of, models.clv.time_unit_days)
    f = f[f["consent_profiling"]].reset_index(drop=True)
    targets = targets[targets["customer_id"].isin(set(f["customer_id"]))].reset_index(drop=True)
    y = targets["redeemed"].to_numpy()
    if len(targets) == 0 or y.sum() < 5:
        return Section.skipped(
            "campaigns",
            CAMPAIGN_TITLE,
            f"too few redemptions of catalog-category coupons in campaigns starting between "
            f"{data.as_of.date()} and the end of the horizon ({int(y.sum())} of {len(y)})",
        )
    pairs = offer_pairs(f, catalog.offers, category_popularity(data.ctx_full, data.as_of))
    pairs = pairs.assign(p=models.nbo.predict_proba(pairs))
    by_cat = pairs.groupby(["customer_id", "category"], as_index=False).agg(
        p=("p", "max"), popularity=("cat_popularity_30d", "max"), past=("n_redemptions", "max")
    )
    t = targets.merge(by_cat, on=["customer_id", "category"], how="left")
    scores_ = {
        "model": t["p"].to_numpy(float),
        "past redemptions": t["past"].to_numpy(float),
        "category popularity": t["popularity"].to_numpy(float),
    }
    lifts = {k: lift_table(y, s) for k, s in scores_.items()}
    auc = {k: classification_metrics(y, s)["auc"] for k, s in scores_.items()}
    top = {k: float(v["lift"].iloc[0]) for k, v in lifts.items()}
    section = Section(
        name="campaigns",
        title=CAMPAIGN_TITLE,
        intro=(
            f"{targets['campaign_id'].nunique()} campaigns started in the horizon; {len(t):,} "
            "household x "
            f"campaign x offer-category targets, {int(y.sum())} redeemed ({y.mean():.2%}). "
            "Propensity: the "
            f"offer model's P(convert) on {data.as_of.date()}, before any of these campaigns began."
        ),
        scores=[
            Score(
                "redemption_auc",
                "Ranking redeemers above the rest (AUC)",
                auc["model"],
                {k: v for k, v in auc.items() if k != "model"},
                HIGHER,
                True,
            ),
            Score(
                "redemption_top_decile_lift",
                "Redemption rate in the top 10% propensity vs average",
                top["model"],
                {k: v for k, v in top.items() if k != "model"},
                HIGHER,
                False,
                "{:.2f}x",
            ),
        ],
        tables={f"redemption_by_decile_{k}": v for k, v in lifts.items()},
    )
    # A household has several targets: the bootstrap draws households with all their rows.
    n_households, rows_of = cluster_rows(pd.factorize(t["customer_id"])[0])
    add_interval(
        section.scores[0],
        n_households,
        lambda draw, base: roc_auc(
            y[rows_of(draw)], scores_["model" if base is None else base][rows_of(draw)]
        ),
    )
    fig = figures.rate_by_decile_plot(
        {k: lifts[k] for k in ("model", "past redemptions")},
        "Coupon redemption rate by predicted propensity",
        "redemption rate",
    )
    section.charts.append(
        Chart(
            "campaign_redemption",
            "Who redeemed the coupons of later campaigns",
            "If the model is useful, the first deciles (highest predicted propensity) redeem "
            "far more often than the last ones.",
            png(fig),
        )
    )
    return section
