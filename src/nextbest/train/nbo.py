"""Next-best-offer training on rolling cutoffs, as cross-sell.

At each cutoff, a (customer, offer) pair is an example only when the customer
did not buy the offer's category in the ``prior_window_days`` before it; the
label is whether they bought it in the ``label_window_days`` after.
Evaluation: train on all cutoffs but the newest, rank each customer's
eligible offers on the newest, and compare hit@k / MAP@k with the popularity
and last-bought baselines, plus per-offer AUC. The production model is then
fitted on all cutoffs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.decision.catalog import Catalog
from nextbest.errors import NotApplicableError
from nextbest.features.build import FeatureContext, category_popularity, features_at
from nextbest.features.customer import category_bought_in_window
from nextbest.features.splits import rolling_cutoffs
from nextbest.models.evaluation import classification_metrics, rank_lists, ranking_metrics
from nextbest.models.offers import (
    OfferModel,
    last_bought_scores,
    offer_feature_names,
    offer_pairs,
    popularity_scores,
)
from nextbest.models.tabular import learn_levels
from nextbest.train.gate import gate


@dataclass
class NboResult:
    model: OfferModel
    metrics: dict[str, float]
    gate: dict
    cutoffs: list[pd.Timestamp]
    per_offer: pd.DataFrame
    importance: pd.DataFrame
    example: pd.DataFrame


def offer_examples(
    ctx: FeatureContext,
    cutoffs: list[pd.Timestamp],
    catalog: Catalog,
    config: dict,
    time_unit_days: float,
) -> pd.DataFrame:
    """Eligible (customer, offer) pairs per cutoff with ``label`` (bought the category in the
    window)."""
    prior = int(config["prior_window_days"])
    window = int(config["label_window_days"])
    index = pd.Index(ctx.table.customer_ids.astype(str))
    cat_index = {c: i for i, c in enumerate(ctx.table.categories)}
    frames = []
    for c in cutoffs:
        f = features_at(ctx, c, time_unit_days)
        f = f[f["consent_profiling"]].reset_index(drop=True)
        pairs = offer_pairs(f, catalog.offers, category_popularity(ctx, c))
        bought = category_bought_in_window(ctx.table, c, window)
        rows = np.tile(index.get_indexer(f["customer_id"]), len(catalog.offers))
        cols = np.repeat([cat_index[o.category] for o in catalog.offers], len(f))
        pairs["label"] = bought[rows, cols].astype("int64")
        pairs["cutoff"] = c
        days = pairs["cat_days_since"].to_numpy(dtype=float)
        frames.append(pairs[np.isnan(days) | (days > prior)])
    return pd.concat(frames, ignore_index=True)


def train_nbo(
    ctx: FeatureContext, as_of, config: dict, catalog: Catalog, time_unit_days: float
) -> NboResult:
    """Build pair examples, evaluate on the newest cutoff against baselines, fit the production
    model."""
    if ctx.table.cat_cust.size == 0:
        raise NotApplicableError(
            "no purchase in any catalog category (the data has no `category` column or none of its "
            "categories is in the offer catalog): next-best-offer not trained"
        )
    window = int(config["label_window_days"])
    k = int(config["k"])
    cutoffs = rolling_cutoffs(
        ctx.first_day,
        as_of,
        window,
        int(config["cutoff_step_days"]),
        int(config["n_cutoffs"]),
        int(config["min_history_days"]),
    )
    ex = offer_examples(ctx, cutoffs, catalog, config, time_unit_days)
    names = offer_feature_names(ex, ctx.demographics)
    levels = learn_levels(ex, ["offer_id", *[d for d in ctx.demographics if d in names]])
    levels["offer_id"] = [o.offer_id for o in catalog.offers]
    train = ex[ex["cutoff"] < cutoffs[-1]]
    test = ex[ex["cutoff"] == cutoffs[-1]]
    evaluation = OfferModel(config["lightgbm"]).fit(train, names, levels)
    p = evaluation.predict_proba(test)
    metrics: dict[str, float] = {}
    for name, score in (
        ("model", p),
        ("baseline_popularity", popularity_scores(test)),
        ("baseline_last_bought", last_bought_scores(test)),
    ):
        rel, ranked = rank_lists(test, score)
        for kk in sorted({1, k}):
            r = ranking_metrics(rel, ranked, kk)
            metrics[f"{name}_hit_at_{kk}"] = r[f"hit@{kk}"]
            metrics[f"{name}_map_at_{kk}"] = r[f"map@{kk}"]
        metrics[f"{name}_pair_auc"] = classification_metrics(test["label"].to_numpy(), score)["auc"]
    metrics["n_test_customers_with_conversion"] = float(
        ranking_metrics(*rank_lists(test, p), k)["n_users"]
    )
    metrics["n_examples"] = float(len(ex))
    per_offer = []
    for oid, g in test.assign(p=p).groupby("offer_id"):
        m = classification_metrics(g["label"].to_numpy(), g["p"].to_numpy())
        per_offer.append(
            {
                "offer_id": oid,
                "auc": m["auc"],
                "conversion_rate": m["base_rate"],
                "mean_p_convert": m["mean_prediction"],
                "n_pairs": m["n"],
            }
        )
    per_offer = pd.DataFrame(per_offer)
    for row in per_offer.itertuples():
        metrics[f"offer_auc.{row.offer_id}"] = row.auc
    best_base = max(
        metrics[f"baseline_popularity_hit_at_{k}"], metrics[f"baseline_last_bought_hit_at_{k}"]
    )
    gain = metrics[f"model_hit_at_{k}"] - best_base
    metrics[f"hit_at_{k}_gain_vs_best_baseline"] = gain
    verdict = gate({"min_hit_gain_vs_baselines": gain}, config["thresholds"])
    final = OfferModel(config["lightgbm"]).fit(ex, names, levels)
    return NboResult(
        final,
        metrics,
        verdict,
        cutoffs,
        per_offer,
        final.feature_importance(),
        test[["customer_id", *names]].head(5),
    )
