"""Co-purchase affinity between categories, learned across customers.

The lift of category ``k`` on category ``c`` is the association-rule lift
(Brin, Motwani, Ullman & Tsur 1997, "interest"), counted over customers::

    lift[k, c] = P(has bought c | has bought k) / P(has bought c)

with "has bought" read from the customer's all-history spend shares
(``share_<key> > 0``, data before the cutoff only). Lift 1 means no
association; a category bought by few customers is shrunk towards 1 with
``prior`` pseudo-customers who buy ``c`` at its base rate (an additive
prior, as in Bayesian average rating)::

    lift[k, c] = (n[k, c] + prior * p[c]) / ((n[k] + prior) * p[c]),
    p[c] = (n[c] + 1) / (n + 2)

A customer's affinity to category ``c`` is the mean of ``lift[k, c]`` over the
*other* categories ``k`` they have bought, weighted by their share of spend in
``k``: it says how much more often than average customers with this mix buy
``c``, which carries signal for a category the customer has not bought lately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.errors import ModelInputError
from nextbest.features.customer import category_key

SHARE_PREFIX = "share_"
LIFT_PRIOR = 20.0
"""Pseudo-customers (buying at the base rate) added to every row of the lift matrix."""


def share_keys(frame: pd.DataFrame) -> list[str]:
    """Category keys of the ``share_<key>`` columns of a frame, in column order."""
    return [c[len(SHARE_PREFIX) :] for c in frame.columns if c.startswith(SHARE_PREFIX)]


def category_lift(bought: np.ndarray, prior: float = LIFT_PRIOR) -> np.ndarray:
    """Lift matrix ``lift[k, c] = P(bought c | bought k) / P(bought c)``, shrunk towards 1.

    Parameters
    ----------
    bought : numpy.ndarray
        Boolean (customers x categories): the customer has bought the category.
    prior : float
        Pseudo-customers per row who buy ``c`` at its base rate; 0 gives the plain
        ``n[k, c] / (n[k] p[c])`` (NaN in the row of a category nobody bought).

    Returns
    -------
    numpy.ndarray
        (categories x categories) float. The diagonal (about ``1 / p[c]``) is kept as the
        formula gives it; :meth:`CategoryAffinity.values` does not use it.
    """
    b = np.asarray(bought, dtype=float)
    n = b.shape[0]
    n_k = b.sum(axis=0)
    n_kc = b.T @ b
    p_c = (n_k + 1.0) / (n + 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (n_kc + prior * p_c[None, :]) / ((n_k[:, None] + prior) * p_c[None, :])


@dataclass(frozen=True)
class CategoryAffinity:
    """A fitted lift matrix over the categories ``keys`` (``share_<key>`` columns).

    Attributes
    ----------
    keys : tuple of str
        Category keys (:func:`nextbest.features.customer.category_key`), the order of ``lift``.
    lift : numpy.ndarray
        (len(keys) x len(keys)) :func:`category_lift` of the customers it was fitted on.
    n_customers : int
        How many customer rows it was fitted on.
    """

    keys: tuple[str, ...]
    lift: np.ndarray
    n_customers: int

    @classmethod
    def fit(cls, customers: pd.DataFrame, prior: float = LIFT_PRIOR) -> CategoryAffinity:
        """Learn the lift from customer rows (one per customer and cutoff) with ``share_*``."""
        keys = tuple(share_keys(customers))
        if not keys or customers.empty:
            raise ModelInputError(
                "category affinity: needs customer rows with share_<category> columns; got "
                f"{len(customers)} rows and columns {list(customers.columns)}"
            )
        bought = customers[[SHARE_PREFIX + k for k in keys]].to_numpy(dtype=float) > 0
        return cls(keys, category_lift(bought, prior), len(customers))

    def shares(self, frame: pd.DataFrame) -> np.ndarray:
        """The frame's ``share_<key>`` columns in ``keys`` order, float, column-contiguous."""
        cols = [SHARE_PREFIX + k for k in self.keys]
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ModelInputError(f"category affinity: missing column(s) {missing}")
        return np.asfortranarray(frame[cols].to_numpy(dtype=float))

    def codes(self, categories) -> np.ndarray:
        """Position in ``keys`` of each category name; -1 for a category it does not know."""
        pos = {k: i for i, k in enumerate(self.keys)}
        names = pd.Series(np.asarray(categories, dtype=object)).astype(str)
        uniq, inverse = np.unique(names.to_numpy(), return_inverse=True)
        known = np.array([pos.get(category_key(u), -1) for u in uniq], dtype="int64")
        return known[inverse.reshape(-1)]

    def values(self, shares: np.ndarray, codes) -> np.ndarray:
        """Share-weighted mean lift from each row's other bought categories to its category.

        Parameters
        ----------
        shares : numpy.ndarray
            (rows x len(keys)) spend shares, from :meth:`shares`.
        codes : int or numpy.ndarray
            The rows' category (one for all, or one per row), from :meth:`codes`.

        Returns
        -------
        numpy.ndarray
            (rows,) float; NaN where the category is unknown or the customer bought no other
            category.

        Notes
        -----
        The sums run over the categories in ``keys`` order, one vector operation per category
        (a handful), so a row's value is the same float whether its code comes alone or among
        others: the scoring path and the pair frame agree exactly.
        """
        shares = np.asarray(shares, dtype=float)
        codes = np.asarray(codes, dtype="int64")
        known = codes >= 0
        c = np.where(known, codes, 0)
        other = 1.0 - np.eye(len(self.keys))  # the row's own category weighs 0
        weight = self.lift * other
        num = np.zeros(len(shares))
        den = np.zeros(len(shares))
        for k in range(len(self.keys)):
            num += shares[:, k] * weight[k, c]
            den += shares[:, k] * other[k, c]
        ok = known & (den > 0)
        return np.divide(num, den, out=np.full(len(shares), np.nan), where=ok)
