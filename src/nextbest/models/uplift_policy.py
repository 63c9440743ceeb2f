"""Selecting and promoting an uplift model by the value of the policy it implies.

Differences in policy value are small next to their noise, and one holdout
split wastes most of the log. So:

1. :func:`crossfit_predictions` gives every logged row an out-of-fold
   prediction (k models, each blind to one fold of customers);
2. :func:`policy_evaluation` scores, on those rows, the greedy uplift policy
   (per row the action with the largest incremental value
   ``uplift x value + margin x incremental revenue - cost``, "no contact" = 0)
   and the baselines: no contact, each offer to everyone, and response-model
   targeting (the current ranking by ``P(convert | offer) x value - cost``, at the
   uplift policy's contact volume);
3. each policy's gain over contacting no one is scored per row with doubly
   robust effect scores (:func:`nextbest.models.causal.effect_scores`; IPW
   beside it), and the uplift policy is compared with each baseline as a paired
   difference on the same rows. It is promoted only if the one-sided 95% lower
   bound of every difference is above zero; otherwise the decision falls back to
   the best single action (no contact, or one offer for everyone) and the reason
   says which baseline it did not beat and by how much.

Values are per logged row (per customer when each customer has one row), in
currency units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.errors import ModelInputError
from nextbest.models import causal
from nextbest.models.uplift import CONTROL, UpliftModel, fold_numbers

UPLIFT_POLICY = "uplift"
NO_CONTACT = "no contact"
RESPONSE_POLICY = "response model"


@dataclass
class CrossFit:
    """Out-of-sample predictions for logged rows: what policy evaluation takes.

    One entry per logged row with a known outcome (and overlap, when propensities
    were estimated). ``action`` 0 is no contact, ``k`` is ``arms[k - 1]``;
    ``propensity`` is the probability of the logged action (logged, or estimated
    by the model that did not see the row); ``mu`` (n x 1+K) P(convert | action);
    ``uplift`` (n x K) incremental conversion probability; ``*_revenue`` the same
    for revenue (None when not logged).
    """

    customer_id: np.ndarray
    arms: tuple[str, ...]
    action: np.ndarray
    propensity: np.ndarray
    converted: np.ndarray
    revenue: np.ndarray | None
    fold: np.ndarray
    mu: np.ndarray
    uplift: np.ndarray
    mu_revenue: np.ndarray | None
    uplift_revenue: np.ndarray | None
    propensity_source: str
    n_trimmed: int = 0

    def __len__(self) -> int:
        return len(self.action)

    @staticmethod
    def concat(parts: list[CrossFit]) -> CrossFit:
        """Stack the folds of one cross-fit (same arms)."""
        arrays = (
            "customer_id",
            "action",
            "propensity",
            "converted",
            "revenue",
            "fold",
            "mu",
            "uplift",
            "mu_revenue",
            "uplift_revenue",
        )

        def cat(name: str):
            values = [getattr(p, name) for p in parts]
            return None if any(v is None for v in values) else np.concatenate(values)

        return CrossFit(
            **{name: cat(name) for name in arrays},
            arms=parts[0].arms,
            propensity_source=parts[0].propensity_source,
            n_trimmed=sum(p.n_trimmed for p in parts),
        )


def holdout_predictions(
    model: UpliftModel, features: pd.DataFrame, log: pd.DataFrame, fold: int = 0
) -> CrossFit:
    """Predictions of a fitted model for log rows it was not trained on.

    Without logged propensities, the model's propensity model estimates them and
    rows outside its ``trim`` range are left out (counted in ``n_trimmed``).

    Raises
    ------
    ModelInputError
        If the log has no propensities and the model has no propensity model.
    """
    rows = model.log_rows(features, log)
    keep = np.ones(len(rows.action), dtype=bool)
    if rows.propensity is not None:
        p, source = rows.propensity, "logged"
    else:
        matrix = model.propensity_matrix(rows.X)
        if matrix is None:
            raise ModelInputError(
                "campaign log: no propensity column, and the model was trained on logged "
                "propensities (it has no propensity model to estimate them)"
            )
        low, high = (float(v) for v in model.config["trim"])
        keep = (matrix.min(axis=1) >= low) & (matrix.max(axis=1) <= high)
        p, source = matrix[np.arange(len(rows.action)), rows.action], "estimated"
    pred = model.predict_matrix(rows.X[keep])
    return CrossFit(
        customer_id=rows.customer_id[keep],
        arms=model.arms_,
        action=rows.action[keep],
        propensity=p[keep],
        converted=rows.converted[keep],
        revenue=rows.revenue[keep] if rows.revenue is not None else None,
        fold=np.full(int(keep.sum()), fold),
        mu=pred["mu"],
        uplift=pred["uplift"],
        mu_revenue=pred["mu_revenue"],
        uplift_revenue=pred["uplift_revenue"],
        propensity_source=source,
        n_trimmed=int((~keep).sum()),
    )


def crossfit_predictions(
    features: pd.DataFrame,
    log: pd.DataFrame,
    config: dict | None = None,
    k: int = 5,
    seed: int = 0,
) -> CrossFit:
    """Out-of-fold predictions for every logged row: k models, each blind to one fold.

    Folds are drawn over customers (all rows of a customer share a fold), seeded by
    ``seed``, so every logged customer is held out once and no row is scored by a
    model that saw it.

    Parameters
    ----------
    features, log : pandas.DataFrame
        As for :meth:`nextbest.models.uplift.UpliftModel.fit`.
    config : dict, optional
        Overrides of :data:`nextbest.models.uplift.UPLIFT_DEFAULTS`.
    k : int
        Number of folds (>= 2).
    seed : int
        Seed of the fold assignment.
    """
    if k < 2:
        raise ModelInputError(f"cross-fitting needs k >= 2 folds, got {k}")
    ids = log["customer_id"].astype(str)
    unique = ids.unique()
    row_fold = pd.Series(fold_numbers(len(unique), k, seed), index=unique).loc[ids].to_numpy()
    arms = tuple(sorted(log.loc[log["group"] != CONTROL, "offer_id"].astype(str).unique()))
    parts = []
    for f in range(k):
        model = UpliftModel(config).fit(features, log[row_fold != f])
        if model.arms_ != arms:
            raise ModelInputError(
                f"fold {f}: its training rows have offers {list(model.arms_)}, the log has "
                f"{list(arms)}; use fewer folds or drop offers with very few rows"
            )
        parts.append(holdout_predictions(model, features, log[row_fold == f], fold=f))
    return CrossFit.concat(parts)


# -- policies ----------------------------------------------------------------------------------


def _economics(cf: CrossFit, values: Mapping[str, float], costs: Mapping[str, float]):
    missing = [a for a in cf.arms if a not in values or a not in costs]
    if missing:
        raise ModelInputError(f"no value or cost for offer(s) {missing} (add them to the catalog)")
    return (
        np.array([float(values[a]) for a in cf.arms]),
        np.array([float(costs[a]) for a in cf.arms]),
    )


def incremental_value(
    cf: CrossFit, values: Mapping[str, float], costs: Mapping[str, float], margin: float = 0.0
) -> np.ndarray:
    """Expected incremental value per row and offer (n x K), currency units.

    ``uplift x value + margin x incremental revenue - cost``; the revenue term only
    when revenue was modelled and ``margin`` > 0.
    """
    value, cost = _economics(cf, values, costs)
    out = cf.uplift * value - cost
    if margin and cf.uplift_revenue is not None:
        out = out + margin * cf.uplift_revenue
    return out


def policy_actions(
    cf: CrossFit, values: Mapping[str, float], costs: Mapping[str, float], margin: float = 0.0
) -> dict[str, np.ndarray]:
    """Action per row (0 = no contact, k = ``arms[k - 1]``) of every policy compared.

    ``uplift``: the largest incremental value, or no contact when none is positive.
    ``response model``: each row's best offer by ``P(convert | offer) x value -
    cost`` (+ margin x expected revenue), the rows with the highest such value
    contacted, as many as the uplift policy contacts. ``no contact`` and
    ``everyone: <offer>`` are constant.
    """
    n, k = cf.uplift.shape
    gain = incremental_value(cf, values, costs, margin)
    best = gain.argmax(axis=1)
    uplift = np.where(gain[np.arange(n), best] > 0, best + 1, 0)
    value, cost = _economics(cf, values, costs)
    response = cf.mu[:, 1:] * value - cost
    if margin and cf.mu_revenue is not None:
        response = response + margin * cf.mu_revenue[:, 1:]
    r_best = response.argmax(axis=1)
    volume = int((uplift > 0).sum())
    order = np.argsort(-response[np.arange(n), r_best], kind="stable")
    by_response = np.zeros(n, dtype="int64")
    by_response[order[:volume]] = r_best[order[:volume]] + 1
    out = {UPLIFT_POLICY: uplift, NO_CONTACT: np.zeros(n, dtype="int64")}
    out.update({f"everyone: {arm}": np.full(n, j + 1) for j, arm in enumerate(cf.arms)})
    out[RESPONSE_POLICY] = by_response
    return out


@dataclass
class PolicyEvaluation:
    """Policy values, paired comparisons, Qini per offer and the promotion decision.

    ``promote`` is true when the uplift policy beats every baseline with a
    one-sided 95% lower bound above zero; ``chosen`` is ``"uplift"`` then, else the
    best single action (``"no contact"`` or ``"everyone: <offer>"``); ``reason``
    says why in one sentence.
    """

    policies: pd.DataFrame
    comparisons: pd.DataFrame
    qini: pd.DataFrame
    promote: bool
    chosen: str
    reason: str
    actions: dict[str, np.ndarray] = field(repr=False)
    scores: dict[str, np.ndarray] = field(repr=False)

    def as_dict(self) -> dict:
        """JSON-ready summary (no per-row arrays)."""
        return {
            "promote": self.promote,
            "chosen": self.chosen,
            "reason": self.reason,
            "policies": self.policies.to_dict(orient="records"),
            "comparisons": self.comparisons.to_dict(orient="records"),
            "qini": self.qini.to_dict(orient="records"),
        }


def policy_evaluation(
    cf: CrossFit,
    values: Mapping[str, float],
    costs: Mapping[str, float],
    margin: float = 0.0,
    alpha: float = 0.05,
) -> PolicyEvaluation:
    """Value every policy on out-of-sample rows and decide whether to promote uplift.

    Parameters
    ----------
    cf : CrossFit
        Out-of-sample predictions (:func:`crossfit_predictions` or
        :func:`holdout_predictions`).
    values, costs : mapping offer_id -> float
        Value of one conversion and cost of one contact (currency units), as in the
        catalog.
    margin : float
        Share of incremental revenue counted as value (0 = conversions only).
    alpha : float
        One-sided level of the promotion test and two-sided level of intervals.

    Returns
    -------
    PolicyEvaluation
        ``policies``: per policy ``contact_share``, the doubly robust value
        (``dr_value``, ``dr_se``, ``dr_low``, ``dr_high``) and the IPW value
        (``ipw_value``, ``ipw_se``), both as the gain over contacting no one per row.
        ``comparisons``: uplift minus each baseline (``difference``, ``se``,
        ``lower``, ``z``).
    """
    value, cost = _economics(cf, values, costs)
    actions = policy_actions(cf, values, costs, margin)
    dr = _reward_scores(cf, value, cost, margin, doubly_robust=True)
    ipw = _reward_scores(cf, value, cost, margin, doubly_robust=False)
    rows = np.arange(len(cf))
    scores = {name: dr[rows, a] for name, a in actions.items()}
    table = []
    for name, a in actions.items():
        d = causal.Estimate.from_scores(scores[name], alpha)
        i = causal.Estimate.from_scores(ipw[rows, a], alpha)
        table.append(
            {
                "policy": name,
                "contact_share": float((a > 0).mean()),
                "dr_value": d.value,
                "dr_se": d.se,
                "dr_low": d.ci_low,
                "dr_high": d.ci_high,
                "ipw_value": i.value,
                "ipw_se": i.se,
            }
        )
    comparisons = []
    for name in actions:
        if name == UPLIFT_POLICY:
            continue
        c = causal.paired_difference(scores[UPLIFT_POLICY], scores[name], alpha)
        comparisons.append({"baseline": name, **c.as_dict()})
    comp = pd.DataFrame(comparisons)
    promote = bool(comp["significant"].all())
    policies = pd.DataFrame(table)
    chosen, reason = _decide(policies, comp, promote)
    return PolicyEvaluation(
        policies=policies,
        comparisons=comp,
        qini=qini_by_offer(cf),
        promote=promote,
        chosen=chosen,
        reason=reason,
        actions=actions,
        scores=scores,
    )


def _reward_scores(cf, value, cost, margin: float, doubly_robust: bool) -> np.ndarray:
    """Per-row score of each action's net gain over no contact (n x 1+K); column 0 is 0."""
    mu = cf.mu if doubly_robust else None
    gamma = causal.effect_scores(cf.action, cf.propensity, cf.converted, mu)
    out = gamma * np.r_[0.0, value] - np.r_[0.0, cost]
    if margin and cf.revenue is not None:
        mu_r = cf.mu_revenue if doubly_robust else None
        out = out + margin * causal.effect_scores(cf.action, cf.propensity, cf.revenue, mu_r)
    return out


def _decide(policies: pd.DataFrame, comp: pd.DataFrame, promote: bool) -> tuple[str, str]:
    worst = comp.loc[comp["lower"].idxmin()]
    if promote:
        return UPLIFT_POLICY, (
            f"the uplift policy beats every baseline; closest is {worst['baseline']} "
            f"(+{worst['difference']:.4f} per customer, one-sided 95% lower bound "
            f"+{worst['lower']:.4f})"
        )
    constants = policies[policies["policy"].str.startswith("everyone: ")]
    constants = pd.concat([policies[policies["policy"] == NO_CONTACT], constants])
    best = constants.loc[constants["dr_value"].idxmax(), "policy"]
    return best, (
        f"the uplift policy does not beat {worst['baseline']} beyond noise "
        f"({worst['difference']:+.4f} per customer, one-sided 95% lower bound "
        f"{worst['lower']:+.4f}); falling back to the best single action: {best}"
    )


def qini_by_offer(cf: CrossFit) -> pd.DataFrame:
    """Qini coefficient of each offer's predicted uplift, on its treated and control rows.

    Unweighted: read as a randomized comparison (propensities equal within arms).
    """
    rows = []
    for j, arm in enumerate(cf.arms):
        mask = (cf.action == j + 1) | (cf.action == 0)
        treated = cf.action[mask] == j + 1
        if not treated.any() or treated.all():
            continue
        q = causal.qini(cf.converted[mask], treated, cf.uplift[mask, j])
        rows.append(
            {
                "offer_id": arm,
                "qini_coefficient": q.coefficient,
                "qini_area": q.area,
                "n_treated": int(treated.sum()),
                "n_control": int((~treated).sum()),
            }
        )
    return pd.DataFrame(rows)
