"""Metrics shared by training (promotion gates) and evaluation: classification, ranking, CLV.

All functions are pure numpy/pandas; labels are 0/1 arrays, scores are
higher-is-more-likely. The CLV functions compare per-customer predicted and
actual holdout values (purchases or spend); ``nextbest train`` gates on
them and ``nextbest evaluate`` reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, PR-AUC (average precision), Brier score, base rate and mean prediction.

    AUC and PR-AUC are NaN when only one class is present.
    """
    y = np.asarray(y, dtype="int64")
    p = np.asarray(p, dtype="float64")
    both = 0 < y.sum() < len(y)
    return {
        "auc": roc_auc(y, p),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": brier(y, p),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_prediction": float(p.mean()) if len(p) else float("nan"),
        "n": float(len(y)),
    }


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC alone (NaN when only one class is present): what bootstrap draws recompute."""
    y = np.asarray(y, dtype="int64")
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Brier score alone (probabilities clipped to [0, 1]; NaN without rows)."""
    y = np.asarray(y, dtype="int64")
    return float(brier_score_loss(y, np.clip(p, 0, 1))) if len(y) else float("nan")


def calibration_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed rate in equal-width probability bins (empty bins dropped)."""
    y = np.asarray(y, dtype="float64")
    p = np.clip(np.asarray(p, dtype="float64"), 0, 1)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    frame = pd.DataFrame({"bin": bins, "y": y, "p": p})
    g = frame.groupby("bin").agg(
        mean_predicted=("p", "mean"), observed_rate=("y", "mean"), n=("y", "size")
    )
    return g.reset_index()


def lift_table(y: np.ndarray, score: np.ndarray, n_groups: int = 10) -> pd.DataFrame:
    """Rate, lift and cumulative gain by score decile (decile 1 = highest scores).

    Ties are broken by position, so equal scores are split across deciles.
    """
    y = np.asarray(y, dtype="float64")
    order = np.argsort(-np.asarray(score, dtype="float64"), kind="stable")
    ys = y[order]
    groups = np.minimum(np.arange(len(ys)) * n_groups // max(len(ys), 1), n_groups - 1) + 1
    frame = pd.DataFrame({"decile": groups, "y": ys})
    g = frame.groupby("decile").agg(n=("y", "size"), positives=("y", "sum"))
    g["rate"] = g["positives"] / g["n"]
    base = y.mean() if len(y) else np.nan
    g["lift"] = g["rate"] / base if base > 0 else np.nan
    g["cumulative_gain"] = g["positives"].cumsum() / y.sum() if y.sum() > 0 else np.nan
    return g.reset_index()


def top_decile_lift(y: np.ndarray, score: np.ndarray) -> float:
    table = lift_table(y, score)
    return float(table["lift"].iloc[0]) if len(table) else float("nan")


def ranking_metrics(relevant: list[set], ranked: list[list], k: int) -> dict[str, float]:
    """hit@k and MAP@k over users with at least one relevant item.

    Parameters
    ----------
    relevant : list of set
        Items each user actually took (converted on).
    ranked : list of list
        Items recommended to each user, best first.
    k : int
        Cut-off.

    Notes
    -----
    hit@k = share of users with at least one relevant item in their top k.
    AP@k = (1 / min(k, |relevant|)) * sum_{i<=k} precision@i * rel_i; MAP@k
    is its mean (the usual recommender definition).
    """
    hits, aps = list(user_hits(relevant, ranked, k)), []
    for rel, rec in zip(relevant, ranked):
        if not rel:
            continue
        top = list(rec)[:k]
        n_hit, score = 0, 0.0
        for i, item in enumerate(top, start=1):
            if item in rel:
                n_hit += 1
                score += n_hit / i
        aps.append(score / min(k, len(rel)))
    return {
        f"hit@{k}": float(np.mean(hits)) if hits else float("nan"),
        f"map@{k}": float(np.mean(aps)) if aps else float("nan"),
        "n_users": float(len(hits)),
    }


def user_hits(relevant: list[set], ranked: list[list], k: int) -> np.ndarray:
    """1.0 per user with a relevant item in their top ``k``, else 0.0; users without a relevant
    item are left out (their mean is hit@k)."""
    return np.array(
        [
            float(any(item in rel for item in list(rec)[:k]))
            for rel, rec in zip(relevant, ranked)
            if rel
        ],
        dtype="float64",
    )


# -- CLV (value regression) ------------------------------------------------------------------
# Used by the CLV promotion gate in ``nextbest.train.clv`` and by ``nextbest evaluate``.


def holdout_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Per-customer MAE and RMSE, totals and the relative aggregate error.

    ``aggregate_error = (sum(predicted) - sum(actual)) / sum(actual)``: signed,
    negative = under-forecast (NaN when nothing happened).
    """
    actual = np.asarray(actual, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64")
    total_a, total_p = actual.sum(), predicted.sum()
    return {
        "mae": float(np.mean(np.abs(actual - predicted))),
        "rmse": float(np.sqrt(np.mean((actual - predicted) ** 2))),
        "actual_total": float(total_a),
        "predicted_total": float(total_p),
        "aggregate_error": float((total_p - total_a) / total_a) if total_a > 0 else float("nan"),
    }


def historic_rate_baseline(cal: pd.DataFrame) -> np.ndarray:
    """Baseline purchases: each customer keeps their calibration repeat-purchase rate.

    ``frequency / T * duration_holdout`` (0 when ``T == 0``), all in model units.
    """
    T = cal["T"].to_numpy(dtype="float64")
    rate = np.divide(
        cal["frequency"].to_numpy(dtype="float64"), T, out=np.zeros_like(T), where=T > 0
    )
    return rate * cal["duration_holdout"].to_numpy(dtype="float64")


def historic_spend_baseline(cal: pd.DataFrame) -> np.ndarray:
    """Baseline spend: each customer keeps their calibration repeat-spend rate.

    ``frequency * monetary / T * duration_holdout`` (money over the holdout;
    0 when ``T == 0``): the historic-rate baseline times the customer's mean
    repeat-purchase spend.
    """
    return historic_rate_baseline(cal) * cal["monetary"].to_numpy(dtype="float64")


def spearman(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN if either side is constant."""
    from scipy.stats import spearmanr

    actual = np.asarray(actual, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64")
    if len(actual) < 2 or np.ptp(actual) == 0 or np.ptp(predicted) == 0:
        return float("nan")
    return float(spearmanr(actual, predicted).statistic)


def _gini(actual: np.ndarray, score: np.ndarray) -> float:
    order = np.argsort(-score, kind="stable")
    s, a = score[order], actual[order]
    # Ties in the score carry no ordering: give every member of a tie group its mean.
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sizes = np.diff(np.r_[starts, len(s)])
    a = np.repeat(np.add.reduceat(a, starts) / sizes, sizes)
    n = len(a)
    return float(np.cumsum(a).sum() / a.sum() / n - (n + 1) / (2 * n))


def normalized_gini(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Gini of ``actual`` ordered by ``predicted``, divided by the Gini of the perfect order.

    1 = ranks customers by value perfectly, 0 = no better than random.
    Lorenz form: ``G(s) = (1/n) sum_i L_i - (n + 1) / (2n)`` with ``L_i`` the
    share of total actual value in the ``i`` customers with the highest
    ``s``; tied scores share their group's mean value. NaN when the total
    actual value is not positive. Reference: Wang, Liu & Miao (2019), "A deep
    probabilistic model for customer lifetime value prediction", sec. 4.
    """
    actual = np.asarray(actual, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64")
    if len(actual) < 2 or actual.sum() <= 0:
        return float("nan")
    best = _gini(actual, actual)
    return _gini(actual, predicted) / best if best > 0 else float("nan")


def decile_table(actual: np.ndarray, predicted: np.ndarray, n_groups: int = 10) -> pd.DataFrame:
    """Mean predicted vs actual per predicted-value decile (decile 1 = highest predictions).

    Groups have equal size (ties split by position, as in :func:`lift_table`).
    ``ape`` = ``|mean predicted - mean actual| / mean actual`` (NaN when the
    decile's actual mean is 0).
    """
    actual = np.asarray(actual, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64")
    order = np.argsort(-predicted, kind="stable")
    groups = np.minimum(np.arange(len(order)) * n_groups // max(len(order), 1), n_groups - 1) + 1
    frame = pd.DataFrame({"decile": groups, "predicted": predicted[order], "actual": actual[order]})
    g = frame.groupby("decile").agg(
        n=("actual", "size"), predicted_mean=("predicted", "mean"), actual_mean=("actual", "mean")
    )
    a = g["actual_mean"].to_numpy()
    g["ape"] = np.divide(
        np.abs(g["predicted_mean"].to_numpy() - a), a, out=np.full(len(a), np.nan), where=a > 0
    )
    return g.reset_index()


def decile_mape(actual: np.ndarray, predicted: np.ndarray, n_groups: int = 10) -> float:
    """Decile-level MAPE: mean of :func:`decile_table`'s ``ape`` over deciles with actual > 0.

    Wang, Liu & Miao (2019): customers are grouped by predicted value and
    each group's mean prediction is compared with its mean outcome.
    """
    ape = decile_table(actual, predicted, n_groups)["ape"].to_numpy()
    ape = ape[np.isfinite(ape)]
    return float(ape.mean()) if ape.size else float("nan")


def value_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """:func:`holdout_metrics` plus ``spearman``, ``normalized_gini`` and ``decile_mape``."""
    out = holdout_metrics(actual, predicted)
    out["spearman"] = spearman(actual, predicted)
    out["normalized_gini"] = normalized_gini(actual, predicted)
    out["decile_mape"] = decile_mape(actual, predicted)
    return out


def rank_lists(pairs: pd.DataFrame, score: np.ndarray) -> tuple[list[set], list[list]]:
    """Per customer: converted offers and offers ranked by ``score`` (ties keep row order).

    ``pairs`` has ``customer_id``, ``offer_id`` and a 0/1 ``label``; customers come
    out in sorted order. One sort, no per-customer group-by.
    """
    codes, _ = pd.factorize(pairs["customer_id"].astype(str), sort=True)
    order = np.lexsort((-np.asarray(score, dtype="float64"), codes))
    offers = pairs["offer_id"].to_numpy()[order]
    labels = pairs["label"].to_numpy()[order] == 1
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    relevant = [set(o[lab]) for o, lab in zip(np.split(offers, cuts), np.split(labels, cuts))]
    return relevant, [list(o) for o in np.split(offers, cuts)]


# -- How sure: paired bootstrap intervals -----------------------------------------------------
# A measure on one sample of customers, the model and its baseline measured on the same draws
# (nextbest.evaluate.uncertainty explains them for the report).

N_DRAWS = 200
LEVEL = 0.95
SEED = 20_251_201

Stat = Callable[[np.ndarray], tuple[float, float]]
"""Rows (indices into the customers, with repeats) -> (model value, baseline value) on them."""


@dataclass(frozen=True)
class Interval:
    """Bootstrap intervals of a score's value and of its gain over the best baseline."""

    value: tuple[float, float]
    gain: tuple[float, float]
    level: float = LEVEL
    draws: int = N_DRAWS

    def as_dict(self) -> dict:
        return {
            "level": self.level,
            "draws": self.draws,
            "model": [finite_or_none(v) for v in self.value],
            "gain": [finite_or_none(v) for v in self.gain],
        }


def goodness(values: np.ndarray, better: str) -> np.ndarray:
    """Values turned so that larger is better (``higher``, ``lower``, ``closer_to_zero``)."""
    values = np.asarray(values, dtype="float64")
    if better == "higher":
        return values
    return -values if better == "lower" else -np.abs(values)


def paired_interval(
    n: int,
    stat: Stat,
    better: str,
    draws: int = N_DRAWS,
    level: float = LEVEL,
    seed: int = SEED,
) -> Interval | None:
    """Percentile intervals of the model's value and of its gain over the baseline.

    ``stat`` measures both on the same resampled rows; ``n`` is the number of customers. ``None``
    when fewer than 2 customers or fewer than half the draws give finite values (a measure
    undefined on most draws has no honest interval).
    """
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    got = np.array([stat(rng.integers(0, n, n)) for _ in range(draws)], dtype="float64")
    gain = goodness(got[:, 0], better) - goodness(got[:, 1], better)
    ok_value, ok_gain = np.isfinite(got[:, 0]), np.isfinite(gain)
    if ok_value.sum() < draws / 2 or ok_gain.sum() < draws / 2:
        return None
    q = [50 * (1 - level), 50 * (1 + level)]
    value = np.percentile(got[ok_value, 0], q)
    g = np.percentile(gain[ok_gain], q)
    return Interval((float(value[0]), float(value[1])), (float(g[0]), float(g[1])), level, draws)


def cluster_rows(codes: np.ndarray) -> tuple[int, Callable[[np.ndarray], np.ndarray]]:
    """For rows that come in groups (one customer's several targets): the number of groups, and
    a map from drawn groups to all their rows, so that a bootstrap draws customers, not rows."""
    codes = np.asarray(codes, dtype="int64")
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))

    def rows(groups: np.ndarray) -> np.ndarray:
        lengths = counts[groups]
        first = np.repeat(starts[groups] - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        return order[first + np.arange(lengths.sum())]

    return len(counts), rows


def finite_or_none(v: float | None) -> float | None:
    """``v`` as a float, or ``None`` when it is missing or not finite (strict JSON)."""
    return float(v) if v is not None and np.isfinite(v) else None
