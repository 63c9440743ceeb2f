"""Metrics shared by training (promotion gates) and evaluation: classification and ranking.

All functions are pure numpy/pandas; labels are 0/1 arrays, scores are
higher-is-more-likely.
"""

from __future__ import annotations

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
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, np.clip(p, 0, 1))) if len(y) else float("nan"),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_prediction": float(p.mean()) if len(p) else float("nan"),
        "n": float(len(y)),
    }


def calibration_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed rate in equal-width probability bins (empty bins dropped)."""
    y = np.asarray(y, dtype="float64")
    p = np.clip(np.asarray(p, dtype="float64"), 0, 1)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    frame = pd.DataFrame({"bin": bins, "y": y, "p": p})
    g = frame.groupby("bin").agg(mean_predicted=("p", "mean"), observed_rate=("y", "mean"), n=("y", "size"))
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
    hits, aps = [], []
    for rel, rec in zip(relevant, ranked):
        if not rel:
            continue
        top = list(rec)[:k]
        hits.append(float(any(item in rel for item in top)))
        n_hit, score = 0, 0.0
        for i, item in enumerate(top, start=1):
            if item in rel:
                n_hit += 1
                score += n_hit / i
        aps.append(score / min(k, len(rel)))
    return {f"hit@{k}": float(np.mean(hits)) if hits else float("nan"),
            f"map@{k}": float(np.mean(aps)) if aps else float("nan"),
            "n_users": float(len(hits))}
