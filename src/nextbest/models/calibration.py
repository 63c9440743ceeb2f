"""Probability calibration that never says 0 or 1: bounded isotonic, Platt or beta.

A classifier's raw scores are mapped to probabilities on a calibration set
(customers or a cutoff the classifier did not learn from). Three monotone
maps are candidates:

* ``isotonic`` - centred isotonic regression (Oron & Flournoy 2017): the
  pool-adjacent-violators blocks, joined by straight lines through each
  block's mean score, so scores inside a block keep their order instead of
  tying; bounded to ``[1 / (n + 2), 1 - 1 / (n + 2)]`` with ``n`` the
  calibration rows - the flat ends of a plain isotonic map say exactly 0 or 1,
  which a marketer reads as a certainty;
* ``platt`` - logistic regression on the logit of the score (Platt 1999);
* ``beta`` - logistic regression on ``ln p`` and ``-ln(1 - p)`` with
  non-negative slopes (Kull, Silva Filho & Flach 2017, "Beta calibration").

:func:`fit_calibrator` chooses the map with the lowest Brier score on the
calibration data out of fold (5 folds, seeded: a map is never scored on the
rows it was fitted on, else the most flexible, isotonic, would always win),
then refits it on all of them. All three are increasing, so the ranking of
the raw scores survives (up to the flat ends of the isotonic map).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from nextbest.errors import ModelInputError

METHODS = ("isotonic", "platt", "beta")
_EPS = 1e-6  # scores are clipped to [eps, 1 - eps] before logs


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _beta_features(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.column_stack([np.log(p), -np.log1p(-p)])


def _centred_isotonic(score: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots (block mean score, block rate) of the centred isotonic fit, increasing in score."""
    order = np.argsort(score, kind="stable")
    s, t = score[order], y[order]
    fitted = IsotonicRegression(out_of_bounds="clip").fit_transform(s, t)
    starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
    sizes = np.diff(np.r_[starts, len(s)])
    x = np.add.reduceat(s, starts) / sizes
    keep = np.r_[True, np.diff(x) > 0]  # equal centres (ties in score) would not interpolate
    return x[keep], fitted[starts][keep]


@dataclass
class Calibrator:
    """A fitted monotone map from raw scores to probabilities strictly inside (0, 1)."""

    method: str
    bounds: tuple[float, float]
    model: object
    columns: tuple[int, ...] = (0, 1)  # beta: the features kept (slopes >= 0)
    brier: dict[str, float] = field(default_factory=dict)  # out-of-fold Brier per method

    def predict(self, score: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``score`` (raw classifier probabilities)."""
        s = np.asarray(score, dtype="float64")
        if self.method == "isotonic":
            x, y = self.model
            p = np.interp(s, x, y)
        elif self.method == "platt":
            p = self.model.predict_proba(_logit(s).reshape(-1, 1))[:, 1]
        else:
            p = self.model.predict_proba(_beta_features(s)[:, list(self.columns)])[:, 1]
        lo, hi = self.bounds
        return np.clip(p, lo, hi)


def _fit_one(method: str, score: np.ndarray, y: np.ndarray) -> Calibrator:
    n = len(y)
    lo = 1.0 / (n + 2)
    bounds = (lo, 1.0 - lo)
    if method == "isotonic":
        return Calibrator(method, bounds, _centred_isotonic(score, y))
    if method == "platt":
        lr = LogisticRegression(C=1e6).fit(_logit(score).reshape(-1, 1), y)
        return Calibrator(method, bounds, lr)
    X = _beta_features(score)
    columns = (0, 1)
    lr = LogisticRegression(C=1e6).fit(X, y)
    negative = [j for j in columns if lr.coef_[0][j] < 0]
    if negative:  # a negative slope would break monotonicity: drop that term (Kull et al.)
        columns = tuple(j for j in columns if j not in negative) or (0,)
        lr = LogisticRegression(C=1e6).fit(X[:, list(columns)], y)
    return Calibrator(method, bounds, lr, columns)


def fit_calibrator(
    score: np.ndarray,
    y: np.ndarray,
    methods: tuple[str, ...] = METHODS,
    n_folds: int = 5,
    seed: int = 0,
) -> Calibrator:
    """Choose the calibration map with the lowest out-of-fold Brier score and fit it on all rows.

    Parameters
    ----------
    score : array
        Raw classifier probabilities of the calibration rows.
    y : array of 0/1
        Their outcomes.
    methods : tuple of str
        Candidates among :data:`METHODS`.

    Raises
    ------
    ModelInputError
        If the calibration data has fewer than 20 rows or a single class, or a method is unknown.
    """
    s = np.asarray(score, dtype="float64")
    y = np.asarray(y, dtype="float64")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ModelInputError(f"unknown calibration method(s) {unknown}; choose from {METHODS}")
    if len(y) < 20 or y.min() == y.max():
        raise ModelInputError(
            f"calibration needs at least 20 rows with both outcomes; got {len(y)} rows, "
            f"{int(y.sum())} positive"
        )
    folds = np.random.default_rng(seed).permutation(len(y)) % n_folds
    brier = {}
    for method in methods:
        out = np.empty(len(y))
        for k in range(n_folds):
            train, test = folds != k, folds == k
            if y[train].min() == y[train].max():
                out[test] = y[train].mean()
                continue
            out[test] = _fit_one(method, s[train], y[train]).predict(s[test])
        brier[method] = float(np.mean((out - y) ** 2))
    best = min(methods, key=lambda m: (brier[m], methods.index(m)))
    chosen = _fit_one(best, s, y)
    chosen.brier = brier
    return chosen
