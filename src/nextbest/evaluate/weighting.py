"""Observational effects by propensity weighting: propensities, weights, effects, balance.

For a log without propensities (assignment was not random), each offer's
treated customers are compared with control customers weighted to resemble
them (the effect on the treated, ATT; Rosenbaum & Rubin 1983, Hirano, Imbens
& Ridder 2003):

* the propensity ``e(x) = P(treated | x)`` is a logistic regression (L2,
  ``C``) on standardized features (:func:`design_matrix`: numbers with missing
  values imputed by the mean plus a ``<col> missing`` indicator, categories as
  indicators);
* treated rows weigh 1, control rows ``e / (1 - e)`` (Hajek-normalised);
  rows with ``e`` above ``max_propensity`` have no comparable control and are
  trimmed (:func:`att_weights`);
* the effect is ``mean_treated(y) - sum_c w y / sum_c w``, its standard
  error ``sqrt(var_t / n_t + sum_c w^2 (y - m_c)^2 / (sum_c w)^2)`` (each
  term with an ``n / (n - 1)`` correction), weights taken as known
  (:func:`weighted_difference`, which also weights logged propensities);
* balance is the standardized mean difference of every design column,
  ``(m_t - m_c) / sqrt((s_t^2 + s_c^2) / 2)``, before and after weighting, with
  the same unweighted denominator (Austin 2009); ``|SMD| < 0.1`` is the usual
  bar (:func:`balance`).

Pure statistics on arrays and frames; nothing here reads files or plots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import LogisticRegression

from nextbest.errors import ModelInputError


def design_matrix(frame: pd.DataFrame, columns: list[str], max_levels: int = 20) -> pd.DataFrame:
    """Numeric covariates of ``frame[columns]``, one column per term, no missing values.

    Numeric and boolean columns stay as they are, missing values replaced by the
    column mean and flagged in ``"<col> missing"`` (only when some are missing);
    other columns become ``"<col>=<level>"`` indicators of their ``max_levels``
    most frequent levels (missing = all zero). Constant columns are dropped.
    """
    out: dict[str, np.ndarray] = {}
    for col in columns:
        values = frame[col]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            x = values.to_numpy(dtype="float64", na_value=np.nan)
            missing = np.isnan(x)
            if missing.all():
                continue
            if missing.any():
                out[f"{col} missing"] = missing.astype("float64")
                x = np.where(missing, np.nanmean(x), x)
            out[col] = x
        else:
            text = values.astype("string")
            for level in text.value_counts().index[:max_levels]:
                out[f"{col}={level}"] = (text == level).fillna(False).to_numpy(dtype="float64")
    design = pd.DataFrame(out, index=frame.index)
    varying = design.std(ddof=0) > 0
    return design.loc[:, varying]


def fit_propensity(design: pd.DataFrame, treated: np.ndarray, C: float = 1.0) -> np.ndarray:
    """P(treated | x) per row from an L2 logistic regression on standardized ``design``.

    Raises
    ------
    ModelInputError
        If the rows are all treated or all control.
    """
    t = np.asarray(treated, dtype=bool)
    if t.all() or not t.any():
        raise ModelInputError("a propensity model needs both treated and control rows")
    if design.shape[1] == 0:
        return np.full(len(t), t.mean())
    X = design.to_numpy(dtype="float64")
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    model = LogisticRegression(C=C, max_iter=2000)
    model.fit(X, t)
    return model.predict_proba(X)[:, 1]


def att_weights(
    e: np.ndarray, treated: np.ndarray, max_propensity: float = 0.99
) -> tuple[np.ndarray, np.ndarray]:
    """(weight per row, kept mask) for the effect on the treated.

    Treated rows weigh 1 and control rows ``e / (1 - e)``; rows with ``e >
    max_propensity`` are trimmed (weight 0, ``kept`` False).
    """
    e = np.asarray(e, dtype="float64")
    t = np.asarray(treated, dtype=bool)
    kept = e <= max_propensity
    w = np.where(t, 1.0, e / np.maximum(1.0 - e, 1e-12))
    return np.where(kept, w, 0.0), kept


def effective_size(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 for no weight)."""
    w = np.asarray(w, dtype="float64")
    s2 = float((w**2).sum())
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def weighted_difference(
    y: np.ndarray, treated: np.ndarray, w: np.ndarray, alpha: float = 0.05
) -> dict:
    """Weighted treated mean minus weighted control mean (Hajek), with a normal interval.

    Each group's mean is ``sum w y / sum w``; its variance ``n / (n - 1) sum w^2 (y -
    m)^2 / (sum w)^2`` with the weights taken as known (with unit weights: Welch's).

    Parameters
    ----------
    y : array of float
        Outcome per row (NaN rows are left out).
    treated : array of bool
    w : array of float
        Row weights: :func:`att_weights` (treated 1, controls ``e / (1 - e)``), ``1 /
        propensity`` for logged propensities, or ones; 0 = left out.
    alpha : float
        Two-sided level (0.05 = 95% interval).

    Returns
    -------
    dict
        ``n_treated``, ``n_control`` (rows with weight > 0), ``ess_treated``,
        ``ess_control`` (Kish), ``mean_treated``, ``mean_control`` (weighted),
        ``effect``, ``se``, ``ci_low``, ``ci_high``, ``p_value``; NaN figures when a
        group is empty.
    """
    y = np.asarray(y, dtype="float64")
    t = np.asarray(treated, dtype=bool)
    w = np.asarray(w, dtype="float64")
    use = ~np.isnan(y) & (w > 0)
    groups = [(y[use & t], w[use & t]), (y[use & ~t], w[use & ~t])]
    out = {
        "n_treated": int(len(groups[0][0])),
        "n_control": int(len(groups[1][0])),
        "ess_treated": effective_size(groups[0][1]),
        "ess_control": effective_size(groups[1][1]),
        "mean_treated": float("nan"),
        "mean_control": float("nan"),
        "effect": float("nan"),
        "se": float("nan"),
        "ci_low": float("nan"),
        "ci_high": float("nan"),
        "p_value": float("nan"),
    }
    if not (len(groups[0][0]) and len(groups[1][0])):
        return out
    (mt, var_t), (mc, var_c) = (_weighted_mean_var(yy, ww) for yy, ww in groups)
    se = float(np.sqrt(var_t + var_c))
    z = float(stats.norm.ppf(1 - alpha / 2))
    effect = mt - mc
    p = float(2 * stats.norm.sf(abs(effect) / se)) if se > 0 else float("nan")
    out.update(
        mean_treated=mt,
        mean_control=mc,
        effect=effect,
        se=se,
        ci_low=effect - z * se,
        ci_high=effect + z * se,
        p_value=p,
    )
    return out


def _weighted_mean_var(y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Hajek mean and the variance of that mean (weights known, n / (n - 1) corrected)."""
    n = len(y)
    m = float((w * y).sum() / w.sum())
    if n < 2:
        return m, float("nan")
    return m, float(n / (n - 1) * (w**2 * (y - m) ** 2).sum() / w.sum() ** 2)


def balance(design: pd.DataFrame, treated: np.ndarray, w: np.ndarray) -> pd.DataFrame:
    """Standardized mean differences of every design column, before and after weighting.

    Returns
    -------
    pandas.DataFrame
        ``feature``, ``mean_treated``, ``mean_control``, ``mean_control_weighted``,
        ``smd_before``, ``smd_after`` (treated minus control over the pooled
        unweighted standard deviation; 0 when that is 0). Before = every row;
        after = rows with weight > 0, control rows weighted.
    """
    t = np.asarray(treated, dtype=bool)
    w = np.asarray(w, dtype="float64")
    X = design.to_numpy(dtype="float64")
    if X.shape[1] == 0 or not t.any() or t.all():
        numbers = ["mean_treated", "mean_control", "mean_control_weighted"]
        numbers += ["smd_before", "smd_after"]
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in numbers})
        return empty.assign(feature=pd.Series(dtype=object))[["feature", *numbers]]
    xt, xc = X[t], X[~t]
    sd = np.sqrt((xt.var(axis=0) + xc.var(axis=0)) / 2)
    sd = np.where(sd > 0, sd, np.inf)
    kept_t = w[t] > 0
    wc = w[~t]
    mt_after = xt[kept_t].mean(axis=0) if kept_t.any() else np.full(X.shape[1], np.nan)
    mc_after = (wc[:, None] * xc).sum(axis=0) / wc.sum() if wc.sum() > 0 else np.nan
    return pd.DataFrame(
        {
            "feature": list(design.columns),
            "mean_treated": xt.mean(axis=0),
            "mean_control": xc.mean(axis=0),
            "mean_control_weighted": mc_after,
            "smd_before": (xt.mean(axis=0) - xc.mean(axis=0)) / sd,
            "smd_after": (mt_after - mc_after) / sd,
        }
    )
