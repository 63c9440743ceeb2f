"""Causal estimates from campaign logs: arm effects, policy values, Qini, detectable effects.

Pure statistics on numpy arrays; no model is fitted here.

Conventions
-----------
* Actions are integer indices: ``0`` is "no contact" (control), ``1..K`` the
  offers. ``propensity`` is the probability of the *logged* action.
* Intervals are normal-approximation intervals (large samples); one-sided
  bounds use the 95th percentile of the standard normal (1.645).

Estimators
----------
* Difference in means with Welch's standard error,
  ``se = sqrt(s1^2 / n1 + s0^2 / n0)``.
* Inverse propensity weighting (IPW) of a deterministic policy ``pi``:
  Horvitz-Thompson ``mean(1[a = pi(x)] y / p)`` or, by default, its
  self-normalised (Hajek) form ``sum(w y) / sum(w)`` with ``w = 1[a = pi] / p``,
  which equals the arm's sample mean for a constant policy in a randomized test.
* Doubly robust (augmented IPW, Robins, Rotnitzky & Zhao 1994; Dudik, Langford &
  Li 2011): ``score_i = mu(x_i, pi_i) + 1[a_i = pi_i] / p_i (y_i - mu(x_i, a_i))``;
  value = mean, se = sd / sqrt(n). Paired differences of two policies use the
  per-customer scores on the same customers.
* Qini curve (Radcliffe 2007) and its normalised area (see :func:`qini`).
* Minimum detectable effect of a two-group comparison (two-sided test, power).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from nextbest.errors import ModelInputError

Z95_ONE_SIDED = float(stats.norm.ppf(0.95))


def _z(alpha: float, two_sided: bool = True) -> float:
    return float(stats.norm.ppf(1 - alpha / 2 if two_sided else 1 - alpha))


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error and two-sided ``1 - alpha`` interval."""

    value: float
    se: float
    ci_low: float
    ci_high: float
    n: int

    @classmethod
    def from_scores(cls, scores: np.ndarray, alpha: float = 0.05) -> Estimate:
        """Mean of per-unit scores with the standard error of the mean."""
        scores = np.asarray(scores, dtype="float64")
        n = len(scores)
        value = float(scores.mean())
        se = float(scores.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        z = _z(alpha)
        return cls(value, se, value - z * se, value + z * se, n)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """Paired difference ``a - b`` on the same units, with a one-sided lower bound.

    ``lower`` is the one-sided ``1 - alpha`` lower confidence bound; ``a`` beats
    ``b`` at that level when ``lower > 0``.
    """

    difference: float
    se: float
    lower: float
    z: float
    n: int

    @property
    def significant(self) -> bool:
        return bool(self.lower > 0)

    def as_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant}


def _check_lengths(**arrays: np.ndarray) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ModelInputError(f"arrays must have the same length, got {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ModelInputError("no rows to estimate from")
    return n


def _check_propensity(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype="float64")
    bad = ~((p > 0) & (p <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ModelInputError(f"propensity at row {i} is {float(p[i])!r}; must be in (0, 1]")
    return p


# -- randomized groups -----------------------------------------------------------------------------


def difference_in_means(
    outcome: np.ndarray,
    arm: np.ndarray,
    control: object = "",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Effect of each treated arm against the control group, with Welch intervals.

    Parameters
    ----------
    outcome : array of float
        Outcome per unit (0/1 conversion, or revenue in currency units).
    arm : array
        Arm label per unit; ``control`` marks the control group.
    control : object
        The control label (``""`` for a universal holdout in a campaign log).
    alpha : float
        Two-sided level of the intervals (0.05 = 95%).

    Returns
    -------
    pandas.DataFrame
        One row per treated arm (sorted) and a last row ``"(all offers)"`` pooling
        every treated unit: ``arm``, ``n_treated``, ``n_control``, ``mean_treated``,
        ``mean_control``, ``effect`` (difference in means, outcome units per unit),
        ``se``, ``ci_low``, ``ci_high``, ``p_value`` (two-sided), and
        ``incremental``, ``incremental_low``, ``incremental_high``: effect x
        n_treated, the total extra conversions (or revenue) the arm caused.
    """
    y = np.asarray(outcome, dtype="float64")
    arm = np.asarray(arm, dtype=object)
    _check_lengths(outcome=y, arm=arm)
    is_control = arm == control
    if not is_control.any():
        raise ModelInputError(f"no control units (arm == {control!r})")
    y0 = y[is_control]
    z = _z(alpha)
    rows = []
    labels = sorted({a for a in arm[~is_control].tolist()}, key=str)
    groups = [(a, arm == a) for a in labels] + [("(all offers)", ~is_control)]
    for label, mask in groups:
        y1 = y[mask]
        n1, n0 = len(y1), len(y0)
        if n1 == 0:
            continue
        effect = y1.mean() - y0.mean()
        var1 = y1.var(ddof=1) if n1 > 1 else np.nan
        var0 = y0.var(ddof=1) if n0 > 1 else np.nan
        se = float(np.sqrt(var1 / n1 + var0 / n0))
        p_value = float(2 * stats.norm.sf(abs(effect) / se)) if se > 0 else float("nan")
        rows.append(
            {
                "arm": label,
                "n_treated": n1,
                "n_control": n0,
                "mean_treated": float(y1.mean()),
                "mean_control": float(y0.mean()),
                "effect": float(effect),
                "se": se,
                "ci_low": float(effect - z * se),
                "ci_high": float(effect + z * se),
                "p_value": p_value,
                "incremental": float(effect * n1),
                "incremental_low": float((effect - z * se) * n1),
                "incremental_high": float((effect + z * se) * n1),
            }
        )
    return pd.DataFrame(rows)


def minimum_detectable_effect(
    n_treated: int,
    n_control: int,
    base_rate: float | None = None,
    sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.80,
) -> float:
    """Smallest true effect a two-group comparison detects with the given power.

    ``MDE = (z_{1 - alpha/2} + z_{power}) * sd * sqrt(1/n_treated + 1/n_control)``,
    with ``sd = sqrt(p (1 - p))`` for a conversion rate ``p``.

    Parameters
    ----------
    n_treated, n_control : int
        Group sizes.
    base_rate : float, optional
        Conversion rate of the control group (0-1); gives ``sd`` for 0/1 outcomes.
    sd : float, optional
        Outcome standard deviation (e.g. of revenue), used instead of ``base_rate``.
    alpha : float
        Two-sided significance level.
    power : float
        Probability of detecting an effect of exactly the MDE.

    Returns
    -------
    float
        The MDE in outcome units (a rate difference for conversions: 0.01 = 1 point).
    """
    if (base_rate is None) == (sd is None):
        raise ModelInputError("give exactly one of base_rate and sd")
    if n_treated < 1 or n_control < 1:
        return float("inf")
    if sd is None:
        if not 0 <= base_rate <= 1:
            raise ModelInputError(f"base_rate must be in [0, 1], got {base_rate!r}")
        sd = float(np.sqrt(base_rate * (1 - base_rate)))
    z = _z(alpha) + float(stats.norm.ppf(power))
    return float(z * sd * np.sqrt(1 / n_treated + 1 / n_control))


# -- policy values ---------------------------------------------------------------------------------


def ipw_value(
    policy_action: np.ndarray,
    logged_action: np.ndarray,
    propensity: np.ndarray,
    outcome: np.ndarray,
    self_normalised: bool = True,
    alpha: float = 0.05,
) -> Estimate:
    """IPW estimate of a deterministic policy's mean outcome per unit.

    Parameters
    ----------
    policy_action, logged_action : array of int
        The policy's action and the logged action per unit.
    propensity : array of float
        Probability of the logged action, in (0, 1].
    outcome : array of float
        Observed outcome per unit (under the logged action).
    self_normalised : bool
        Hajek form ``sum(w y) / sum(w)`` (default) or Horvitz-Thompson ``mean(w y)``;
        ``w = 1[logged = policy] / propensity``.

    Returns
    -------
    Estimate
        Mean outcome per unit under the policy. The self-normalised standard error
        is the delta-method one, ``sd(w (y - V) / mean(w)) / sqrt(n)``.
    """
    n = _check_lengths(
        policy=np.asarray(policy_action),
        logged=np.asarray(logged_action),
        propensity=np.asarray(propensity),
        outcome=np.asarray(outcome),
    )
    p = _check_propensity(propensity)
    y = np.asarray(outcome, dtype="float64")
    w = (np.asarray(policy_action) == np.asarray(logged_action)) / p
    if not self_normalised:
        return Estimate.from_scores(w * y, alpha)
    if w.sum() == 0:
        raise ModelInputError("no logged unit took the policy's action: IPW value undefined")
    value = float((w * y).sum() / w.sum())
    scores = w * (y - value) / w.mean()
    se = float(scores.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    z = _z(alpha)
    return Estimate(value, se, value - z * se, value + z * se, n)


def dr_scores(
    policy_action: np.ndarray,
    logged_action: np.ndarray,
    propensity: np.ndarray,
    outcome: np.ndarray,
    mu: np.ndarray,
) -> np.ndarray:
    """Per-unit doubly robust scores of a deterministic policy.

    ``score_i = mu[i, pi_i] + 1[a_i = pi_i] / p_i * (y_i - mu[i, a_i])``.

    Parameters
    ----------
    policy_action, logged_action : array of int
        Action indices into the columns of ``mu``.
    propensity : array of float
        Probability of the logged action, in (0, 1].
    outcome : array of float
        Observed outcome.
    mu : array of shape (n, n_actions)
        Outcome-model prediction per unit and action (cross-fitted: out of fold).
    """
    pi = np.asarray(policy_action, dtype="int64")
    a = np.asarray(logged_action, dtype="int64")
    mu = np.asarray(mu, dtype="float64")
    _check_lengths(policy=pi, logged=a, propensity=np.asarray(propensity), mu=mu)
    p = _check_propensity(propensity)
    y = np.asarray(outcome, dtype="float64")
    rows = np.arange(len(pi))
    return mu[rows, pi] + (pi == a) / p * (y - mu[rows, a])


def dr_value(
    policy_action: np.ndarray,
    logged_action: np.ndarray,
    propensity: np.ndarray,
    outcome: np.ndarray,
    mu: np.ndarray,
    alpha: float = 0.05,
) -> Estimate:
    """Doubly robust estimate of a deterministic policy's mean outcome (see :func:`dr_scores`)."""
    return Estimate.from_scores(
        dr_scores(policy_action, logged_action, propensity, outcome, mu), alpha
    )


def effect_scores(
    logged_action: np.ndarray,
    propensity: np.ndarray,
    outcome: np.ndarray,
    mu: np.ndarray | None = None,
) -> np.ndarray:
    """Per-unit scores of each action's effect against action 0 (no contact).

    Doubly robust (``mu`` given) ``Gamma[i, k] = mu[i, k] - mu[i, 0]
    + 1[a_i = k] (y_i - mu[i, k]) / p_i - 1[a_i = 0] (y_i - mu[i, 0]) / p_i``; IPW
    (``mu`` None) the same with ``mu = 0``. Their mean over units is an unbiased
    estimate of the average effect of action k; ``sum_k 1[pi_i = k] Gamma[i, k]``
    scores a policy's gain over contacting no one.

    Returns
    -------
    numpy.ndarray of shape (n, n_actions)
        Column 0 is zero.
    """
    a = np.asarray(logged_action, dtype="int64")
    p = _check_propensity(propensity)
    y = np.asarray(outcome, dtype="float64")
    n = _check_lengths(logged=a, propensity=p, outcome=y)
    if mu is None:
        n_actions = int(a.max()) + 1
        mu = np.zeros((n, n_actions))
    mu = np.asarray(mu, dtype="float64")
    rows = np.arange(n)
    residual = (y - mu[rows, a]) / p
    gamma = mu - mu[:, [0]]
    gamma[rows, a] += residual
    gamma[:, 1:] -= np.where(a == 0, residual, 0.0)[:, None]
    gamma[:, 0] = 0.0
    return gamma


def paired_difference(
    scores_a: np.ndarray, scores_b: np.ndarray, alpha: float = 0.05
) -> Comparison:
    """Paired difference of two policies' per-unit scores on the same units.

    ``lower = mean(d) - z_{1 - alpha} * sd(d) / sqrt(n)``: the one-sided lower bound.
    """
    a = np.asarray(scores_a, dtype="float64")
    b = np.asarray(scores_b, dtype="float64")
    n = _check_lengths(a=a, b=b)
    d = a - b
    diff = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    z = diff / se if se > 0 else (float("inf") if diff > 0 else 0.0)
    return Comparison(diff, se, diff - _z(alpha, two_sided=False) * se, float(z), n)


# -- Qini ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Qini:
    """A Qini curve and its areas.

    ``fraction``: share of units targeted (0 to 1), best scores first;
    ``gain``: incremental outcomes among them per unit of the whole sample,
    ``(Y_T(f) - Y_C(f) N_T(f) / N_C(f)) / N`` (Radcliffe 2007), linear between
    distinct scores (ties are taken in random order).

    ``area`` is the area between the curve and the random-targeting line
    (straight from (0, 0) to (1, gain(1))): the Qini coefficient in outcome units
    per unit. ``coefficient`` is ``area`` divided by the same area of the perfect
    ordering (treated responders first, control responders last), as in
    scikit-uplift's ``qini_auc_score``: 1 = perfect, 0 = random, negative = worse
    than random. This normalised figure is what the reports call the Qini
    coefficient (AUUC).
    """

    fraction: np.ndarray
    gain: np.ndarray
    area: float
    perfect_area: float

    @property
    def coefficient(self) -> float:
        return float(self.area / self.perfect_area) if self.perfect_area > 0 else float("nan")


def _qini_points(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-score, kind="stable")
    s, y, t = score[order], y[order], t[order]
    cy_t = np.cumsum(y * t)
    cy_c = np.cumsum(y * (1 - t))
    cn_t = np.cumsum(t)
    cn_c = np.cumsum(1 - t)
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each tie group
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = cy_t[ends] - np.where(cn_c[ends] > 0, cy_c[ends] * cn_t[ends] / cn_c[ends], 0.0)
    n = len(s)
    return np.r_[0.0, (ends + 1) / n], np.r_[0.0, gain / n]


def qini(outcome: np.ndarray, treated: np.ndarray, score: np.ndarray) -> Qini:
    """Qini curve of an uplift score on a randomized sample (treated vs control units).

    Parameters
    ----------
    outcome : array of float
        0/1 conversion (or revenue) per unit.
    treated : array of bool
        True for treated units, False for control.
    score : array of float
        Predicted uplift; higher is targeted first.
    """
    y = np.asarray(outcome, dtype="float64")
    t = np.asarray(treated, dtype="float64")
    s = np.asarray(score, dtype="float64")
    _check_lengths(outcome=y, treated=t, score=s)
    if not (t.any() and (1 - t).any()):
        raise ModelInputError("a Qini curve needs both treated and control units")
    fraction, gain = _qini_points(y, t, s)
    area = _area_above_random(fraction, gain)
    # Perfect ordering: treated responders first, control non-responders, control responders last.
    perfect = y * t - y * (1 - t)
    pf, pg = _qini_points(y, t, perfect + 1e-9 * (perfect == 0) * (1 - t))
    return Qini(fraction, gain, area, _area_above_random(pf, pg))


def _area_above_random(fraction: np.ndarray, gain: np.ndarray) -> float:
    return float(np.trapezoid(gain, fraction) - gain[-1] / 2)
