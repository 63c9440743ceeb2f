"""Co-purchase affinity between categories, learned across customers.

"Who buys MEAT also buys SEAFOOD" is a property of the customer base, not of
one customer: :func:`category_affinity` estimates, from every customer's
categories of the last 90 days at a cutoff, ``P(buys j | buys k)``.
:func:`customer_affinity` then scores each customer for category ``j`` by
the mean of ``P(j | k)`` over the *other* categories ``k`` they bought lately -
a signal for a category they have not bought lately (the cross-sell case),
which their own history of ``j`` cannot give.

Pure functions of feature rows (``bought_<key>_90d`` columns of
:func:`nextbest.features.customer.customer_features`): at a training cutoff
the rows are that cutoff's, so nothing after it is used; the offer model keeps
the matrix of its own ``as_of`` for scoring, so every chunk of a batch (and the
service) scores with the same matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.features.customer import category_key

WINDOW_DAYS = 90


def _bought(features: pd.DataFrame, categories: tuple[str, ...] | list[str]) -> np.ndarray:
    cols = [f"bought_{category_key(c)}_{WINDOW_DAYS}d" for c in categories]
    return (
        np.column_stack(
            [
                features[c].to_numpy(dtype="float64")
                if c in features.columns
                else np.zeros(len(features))
                for c in cols
            ]
        )
        if cols
        else np.zeros((len(features), 0))
    )


def category_affinity(
    features: pd.DataFrame, categories: tuple[str, ...] | list[str], prior: float = 1.0
) -> pd.DataFrame:
    """``P(buys j | buys k)`` over the last 90 days, rows ``k``, columns ``j`` (categories).

    Estimated across the customers of ``features`` with a ``prior`` pseudo-count pulling each
    row towards the overall share of buyers of ``j`` (a rare ``k`` says little). The diagonal
    is 1 and never used.
    """
    B = _bought(features, categories)
    n = max(len(B), 1)
    base = B.sum(axis=0) / n
    both = B.T @ B
    count_k = B.sum(axis=0)
    A = (both + prior * base[None, :]) / (count_k[:, None] + prior)
    return pd.DataFrame(A, index=list(categories), columns=list(categories))


def customer_affinity(features: pd.DataFrame, affinity: pd.DataFrame, category: str) -> np.ndarray:
    """Per customer: mean ``P(category | k)`` over the other categories ``k`` bought lately.

    Customers who bought none of the others get the mean of ``P(category | k)`` over all ``k``,
    so the value is always defined. Categories the matrix does not know give NaN.
    """
    if category not in affinity.columns:
        return np.full(len(features), np.nan)
    others = [c for c in affinity.index if c != category]
    B = _bought(features, others)
    weights = affinity.loc[others, category].to_numpy(dtype="float64")
    n_other = B.sum(axis=1)
    fallback = float(np.mean(weights)) if len(weights) else np.nan
    return np.divide(B @ weights, n_other, out=np.full(len(features), fallback), where=n_other > 0)
