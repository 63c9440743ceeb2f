"""Next-best-offer training on rolling cutoffs, as cross-sell.

At each cutoff, a (customer, offer) pair is an example only when the customer
did not buy the offer's category in the ``prior_window_days`` before it; the
label is whether they bought it in the ``label_window_days`` after.

Evaluation, against the popularity and last-bought rankings (hit@k, MAP@k,
pair and per-offer AUC):

* ``time``: train on the cutoffs whose label windows end by the newest one,
  test on the newest;
* ``held-out customers`` (short history: no such older cutoff, from 120 days
  of data with the defaults): train on a seeded share of the customers (all
  their cutoffs), test on the others at the newest cutoff.

The production model is then fitted on every pair. The best of the two
baselines on the test fold is fitted too, as a
:class:`~nextbest.models.offer_baselines.BaselineOfferModel` with its own
conversion rates: when the learned model fails its gate, that policy decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.decision.catalog import Catalog
from nextbest.errors import NotApplicableError
from nextbest.features.build import FeatureContext, category_popularity, features_at
from nextbest.features.customer import category_bought_in_window
from nextbest.features.splits import rolling_cutoffs
from nextbest.models.evaluation import (
    classification_metrics,
    paired_interval,
    rank_lists,
    ranking_metrics,
    user_hits,
)
from nextbest.models.offer_baselines import POLICY_NAMES, BaselineOfferModel
from nextbest.models.offers import (
    OfferModel,
    last_bought_scores,
    offer_feature_names,
    offer_pairs,
    popularity_scores,
)
from nextbest.models.tabular import learn_levels
from nextbest.train.gate import gate

SCHEME_TIME = "time"
SCHEME_CUSTOMERS = "held-out customers"
TEST_SHARE = 0.3  # of the newest cutoff's customers, in the held-out-customers scheme


@dataclass
class NboResult:
    model: OfferModel
    metrics: dict[str, float]
    gate: dict
    cutoffs: list[pd.Timestamp]
    per_offer: pd.DataFrame
    importance: pd.DataFrame
    example: pd.DataFrame
    baseline: BaselineOfferModel | None = None
    notes: list[str] = field(default_factory=list)


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


def _folds(
    ex: pd.DataFrame, cutoffs: list[pd.Timestamp], window_days: int, seed: int
) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(train mask, test mask, scheme, note) of the evaluation model.

    In the time scheme only cutoffs whose label windows end by the newest cutoff train (with a
    step shorter than the window, the next older windows overlap the test window).
    """
    cut = ex["cutoff"].to_numpy()
    newest = cutoffs[-1]
    last_train = newest - pd.Timedelta(days=window_days)
    n_train = sum(c <= last_train for c in cutoffs)
    if n_train >= 1:
        note = (
            f"{len(cutoffs)} cutoffs: trained on the {n_train} whose label windows end by "
            f"{newest.date()}, tested on {newest.date()}"
        )
        return cut <= last_train, cut == newest, SCHEME_TIME, note
    ids = np.sort(ex["customer_id"].astype(str).unique())
    test_ids = set(ids[np.random.default_rng(seed).random(len(ids)) < TEST_SHARE])
    test = ex["customer_id"].astype(str).isin(test_ids).to_numpy()
    note = (
        f"short history, {len(cutoffs)} cutoff(s): trained on {1 - TEST_SHARE:.0%} of the "
        f"customers, tested on the other {TEST_SHARE:.0%} at {newest.date()}"
    )
    return ~test, test & (cut == newest), SCHEME_CUSTOMERS, note


def _rank_metrics(test: pd.DataFrame, scores: dict[str, np.ndarray], k: int) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for name, score in scores.items():
        rel, ranked = rank_lists(test, score)
        for kk in sorted({1, k}):
            r = ranking_metrics(rel, ranked, kk)
            metrics[f"{name}_hit_at_{kk}"] = r[f"hit@{kk}"]
            metrics[f"{name}_map_at_{kk}"] = r[f"map@{kk}"]
        metrics[f"{name}_pair_auc"] = classification_metrics(test["label"].to_numpy(), score)["auc"]
    return metrics


def _per_offer(test: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    rows = []
    for oid, g in test.assign(p=p).groupby("offer_id"):
        m = classification_metrics(g["label"].to_numpy(), g["p"].to_numpy())
        rows.append(
            {
                "offer_id": oid,
                "auc": m["auc"],
                "conversion_rate": m["base_rate"],
                "mean_p_convert": m["mean_prediction"],
                "n_pairs": m["n"],
            }
        )
    return pd.DataFrame(rows)


def train_nbo(
    ctx: FeatureContext, as_of, config: dict, catalog: Catalog, time_unit_days: float
) -> NboResult:
    """Build pair examples, evaluate against baselines, fit the production model and the best
    baseline policy."""
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
        min_cutoffs=1,
    )
    ex = offer_examples(ctx, cutoffs, catalog, config, time_unit_days)
    names = offer_feature_names(ex, ctx.demographics)
    levels = learn_levels(ex, ["offer_id", *[d for d in ctx.demographics if d in names]])
    levels["offer_id"] = [o.offer_id for o in catalog.offers]
    train_mask, test_mask, scheme, note = _folds(ex, cutoffs, window, 42)
    train, test = ex[train_mask], ex[test_mask]
    affinity = bool(config["category_affinity"])
    evaluation = OfferModel(config["lightgbm"], affinity).fit(train, names, levels)
    p = evaluation.predict_proba(test)
    metrics = _rank_metrics(
        test,
        {
            "model": p,
            "baseline_popularity": popularity_scores(test),
            "baseline_last_bought": last_bought_scores(test),
        },
        k,
    )
    metrics["n_test_customers_with_conversion"] = float(
        ranking_metrics(*rank_lists(test, p), k)["n_users"]
    )
    metrics["n_examples"] = float(len(ex))
    metrics["n_cutoffs"] = float(len(cutoffs))
    metrics["short_history"] = float(scheme == SCHEME_CUSTOMERS)
    per_offer = _per_offer(test, p)
    for row in per_offer.itertuples():
        metrics[f"offer_auc.{row.offer_id}"] = row.auc
    base_hits = {
        policy: metrics[f"baseline_{policy}_hit_at_{k}"] for policy in ("last_bought", "popularity")
    }
    best_policy = max(base_hits, key=lambda name: (base_hits[name], name == "last_bought"))
    gain = metrics[f"model_hit_at_{k}"] - base_hits[best_policy]
    metrics[f"hit_at_{k}_gain_vs_best_baseline"] = gain
    base_score = {"last_bought": last_bought_scores, "popularity": popularity_scores}[best_policy]
    hits = user_hits(*rank_lists(test, p), k), user_hits(*rank_lists(test, base_score(test)), k)
    interval = paired_interval(
        len(hits[0]), lambda rows: (hits[0][rows].mean(), hits[1][rows].mean()), "higher"
    )
    if interval is not None:
        metrics[f"hit_at_{k}_gain_low"], metrics[f"hit_at_{k}_gain_high"] = interval.gain
    verdict = gate(
        {
            "min_hit_gain_vs_baselines": gain,
            "min_hit_gain_low_vs_baselines": interval.gain[0] if interval else float("nan"),
        },
        config["thresholds"],
    )
    final = OfferModel(config["lightgbm"], affinity).fit(ex, names, levels)
    baseline = BaselineOfferModel(best_policy).fit(ex, levels["offer_id"])
    notes = [
        f"next best offer validation: {note}",
        f"next best offer: hit@{k} {metrics[f'model_hit_at_{k}']:.3f} vs the best baseline, "
        f"{POLICY_NAMES[best_policy]}, {base_hits[best_policy]:.3f}"
        + (
            f" (gain {gain:+.3f}, 95% interval {interval.gain[0]:+.3f} to "
            f"{interval.gain[1]:+.3f} over {len(hits[0]):,} converting test customers)"
            if interval is not None
            else ""
        )
        + ": "
        + (
            "the learned model passes its gate"
            if verdict["passed"]
            else f"the learned model fails its gate, the {POLICY_NAMES[best_policy]} policy "
            "(with its own conversion rates) decides instead"
        ),
    ]
    return NboResult(
        final,
        metrics,
        verdict,
        cutoffs,
        per_offer,
        final.feature_importance(),
        test[["customer_id", "category", *names]].head(5),  # category: for cat_affinity
        baseline,
        notes,
    )
