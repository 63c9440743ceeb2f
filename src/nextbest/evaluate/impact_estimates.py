"""The numbers of the Impact section: effects per offer, weights, placebo, policy values.

:mod:`nextbest.evaluate.impact` turns them into the report section. Conventions:

* **Control group of an offer:** control rows that name the offer (held out
  from it) plus the universal holdout (control rows with an empty
  ``offer_id``). The pooled line "(all offers)" (logs with several offers)
  compares every treated row with every control row (A/B test) or adds up the
  offers' incremental totals (weighted estimates; standard errors combined as
  if independent: offers share control customers, so that interval is
  approximate).
* **Randomized log** (every row has a ``propensity``): difference in means with
  Welch intervals (:func:`nextbest.models.causal.difference_in_means`) when the
  chance of each arm was the same for every row of it, as in an A/B test; when
  it varied (a policy with exploration), ``1 / propensity``-weighted means
  (IPW, Hajek) of each offer's treated rows and its control group.
* **Observational log** (no propensities): the effect on the treated by
  propensity weighting (:mod:`nextbest.evaluate.weighting`), one propensity
  model per offer on that offer's treated and control rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from nextbest.errors import ModelInputError
from nextbest.evaluate import weighting
from nextbest.models import causal
from nextbest.models.uplift import uplift_feature_names
from nextbest.models.uplift_policy import (
    CrossFit,
    PolicyEvaluation,
    crossfit_predictions,
    holdout_predictions,
    policy_evaluation,
)

ALL = "(all offers)"
ROW_KEYS = ("customer_id", "offer_id", "contacted_at")
OUTCOMES = ("converted", "revenue")


# -- log rows and features -------------------------------------------------------------------------


def known_rows(log: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows of a validated log whose outcome is known (ids as str, 0..n-1 index), and how many
    were left out because ``converted`` is not known yet."""
    missing = [c for c in ("customer_id", "offer_id", "group", "converted") if c not in log]
    if missing:
        raise ModelInputError(f"campaign log: missing column(s) {missing} (derive outcomes first)")
    known = log[log["converted"].notna()].reset_index(drop=True)
    known = known.assign(
        customer_id=known["customer_id"].astype(str), offer_id=known["offer_id"].astype(str)
    )
    return known, int(len(log) - len(known))


def is_randomized(rows: pd.DataFrame) -> bool:
    """Every row carries the logged probability of its arm."""
    return "propensity" in rows.columns and bool(rows["propensity"].notna().all())


def has_revenue(rows: pd.DataFrame) -> bool:
    return "revenue" in rows.columns and bool(rows["revenue"].notna().all())


def feature_keys(features: pd.DataFrame) -> list[str]:
    """Join keys of a feature frame: ``customer_id``, plus ``offer_id`` / ``contacted_at`` when
    the features are per log row (measured before each campaign)."""
    return [k for k in ROW_KEYS if k in features.columns]


def aligned_features(
    rows: pd.DataFrame, features: pd.DataFrame | None
) -> tuple[pd.DataFrame, list[str]]:
    """Feature columns for each log row (same order; NaN where a row has no feature row) and
    their names (numbers and categories with at most 50 levels).

    Raises
    ------
    ModelInputError
        If ``features`` lacks ``customer_id`` or has two rows for one key.
    """
    if features is None:
        return pd.DataFrame(index=rows.index), []
    keys = feature_keys(features)
    if "customer_id" not in keys:
        raise ModelInputError("impact features: no customer_id column")
    feats = features.assign(customer_id=features["customer_id"].astype(str))
    if "offer_id" in keys:
        feats = feats.assign(offer_id=feats["offer_id"].astype(str))
    dup = feats.duplicated(subset=keys)
    if dup.any():
        first = feats.loc[dup, keys].iloc[0].to_dict()
        raise ModelInputError(f"impact features: two rows for {first}; keys {keys} must be unique")
    names, _ = uplift_feature_names(feats.drop(columns=[k for k in keys if k != "customer_id"]))
    joined = rows[keys].merge(feats[keys + names], on=keys, how="left")
    joined.index = rows.index
    return joined[names], names


def aligned_pre(rows: pd.DataFrame, pre: pd.DataFrame | None) -> pd.DataFrame | None:
    """Pre-period ``converted`` / ``revenue`` for each log row (NaN where unknown), joined on the
    keys both frames have among customer_id, offer_id, contacted_at."""
    if pre is None:
        return None
    keys = [k for k in ROW_KEYS if k in pre.columns and k in rows.columns]
    cols = [c for c in OUTCOMES if c in pre.columns]
    p = pre.assign(customer_id=pre["customer_id"].astype(str))
    if "offer_id" in keys:
        p = p.assign(offer_id=p["offer_id"].astype(str))
    p = p.drop_duplicates(subset=keys)
    out = rows[keys].merge(p[keys + cols], on=keys, how="left")
    out.index = rows.index
    return out[cols]


def offers_of(rows: pd.DataFrame) -> list[str]:
    """Offers with treated rows, in natural order (``CJ-CAMPAIGN-2`` before ``CJ-CAMPAIGN-10``)."""
    offers = rows.loc[rows["group"] == "treatment", "offer_id"].unique()
    return sorted(
        offers, key=lambda o: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", o)]
    )


def offer_mask(rows: pd.DataFrame, offer: str) -> np.ndarray:
    """Treated rows of ``offer`` and its control group (named holdout + universal holdout)."""
    treated = (rows["group"] == "treatment") & (rows["offer_id"] == offer)
    control = (rows["group"] == "control") & rows["offer_id"].isin([offer, ""])
    return (treated | control).to_numpy()


# -- effects ---------------------------------------------------------------------------------------


def _mde(
    outcome: str, n_t: float, n_c: float, y_control: np.ndarray, base: float, cfg: dict
) -> float:
    """Minimum detectable effect for these group sizes; a conversion's sd from ``base`` (the
    control rate), revenue's from the control rows."""
    if n_t < 1 or n_c < 1 or len(y_control) == 0 or not np.isfinite(base):
        return float("inf")
    kwargs = (
        {"base_rate": min(max(base, 0.0), 1.0)}
        if outcome == "converted"
        else {"sd": float(np.std(y_control, ddof=1)) if len(y_control) > 1 else 0.0}
    )
    return causal.minimum_detectable_effect(
        max(int(n_t), 1), max(int(round(n_c)), 1), alpha=cfg["alpha"], power=cfg["power"], **kwargs
    )


def propensities_vary(rows: pd.DataFrame) -> bool:
    """Whether the logged probability differs between rows of one arm (a policy with
    exploration, not an A/B test)."""
    arm = np.where(rows["group"] == "control", "", rows["offer_id"])
    return bool(rows.groupby(arm)["propensity"].nunique().max() > 1)


def randomized_effects(rows: pd.DataFrame, outcomes: list[str], cfg: dict) -> pd.DataFrame:
    """Difference in means per offer (its control group) and pooled, per outcome; weighted by
    the logged probabilities (:func:`logged_weight_effects`) when they vary within an arm."""
    if propensities_vary(rows):
        return logged_weight_effects(rows, outcomes, cfg)
    treated = (rows["group"] == "treatment").to_numpy()
    arm = np.where(treated, rows["offer_id"].to_numpy(dtype=object), "")
    out = []
    for outcome in outcomes:
        y = rows[outcome].to_numpy(dtype="float64")
        for offer in offers_of(rows):
            m = offer_mask(rows, offer)
            if treated[m].all():
                out.append({"offer_id": offer, "outcome": outcome, "n_treated": int(m.sum())})
                continue
            r = causal.difference_in_means(y[m], arm[m], control="", alpha=cfg["alpha"]).iloc[0]
            y0 = y[m & ~treated]
            out.append(_effect_row(offer, outcome, r.to_dict(), y0, cfg))
        if len(offers_of(rows)) > 1:
            r = causal.difference_in_means(y, arm, control="", alpha=cfg["alpha"]).iloc[-1]
            out.append(_effect_row(ALL, outcome, r.to_dict(), y[~treated], cfg))
    return pd.DataFrame(out)


def logged_weight_effects(rows: pd.DataFrame, outcomes: list[str], cfg: dict) -> pd.DataFrame:
    """Per offer, ``1 / propensity``-weighted (Hajek) means of its treated rows and of its control
    group: the effect of the offer against no contact over all customers (IPW)."""
    w = 1.0 / rows["propensity"].to_numpy(dtype="float64")
    is_treated = (rows["group"] == "treatment").to_numpy()
    out = []
    for outcome in outcomes:
        y = rows[outcome].to_numpy(dtype="float64")
        per_offer = []
        for offer in offers_of(rows):
            m = offer_mask(rows, offer)
            if is_treated[m].all():
                out.append({"offer_id": offer, "outcome": outcome, "n_treated": int(m.sum())})
                continue
            r = weighting.weighted_difference(y[m], is_treated[m], w[m], cfg["alpha"])
            row = _effect_row(offer, outcome, r, y[m & ~is_treated], cfg)
            per_offer.append(row)
            out.append(row)
        if len(per_offer) > 1:
            out.append(_added_up(per_offer, outcome, cfg))
    return pd.DataFrame(out)


def _effect_row(offer: str, outcome: str, r: dict, y0: np.ndarray, cfg: dict) -> dict:
    n_t, n_c = r["n_treated"], r.get("ess_control", r["n_control"])
    return {
        "offer_id": offer,
        "outcome": outcome,
        "n_treated": int(r["n_treated"]),
        "n_control": int(r["n_control"]),
        "mean_treated": r["mean_treated"],
        "mean_control": r["mean_control"],
        "effect": r["effect"],
        "se": r["se"],
        "ci_low": r["ci_low"],
        "ci_high": r["ci_high"],
        "p_value": r["p_value"],
        "incremental": r["effect"] * n_t,
        "incremental_low": r["ci_low"] * n_t,
        "incremental_high": r["ci_high"] * n_t,
        "mde": _mde(outcome, n_t, n_c, y0, r["mean_control"], cfg),
        **({"ess_control": r["ess_control"]} if "ess_control" in r else {}),
    }


@dataclass
class OfferWeights:
    """Propensity weighting of one offer's comparison (positions into the log rows)."""

    offer_id: str
    index: np.ndarray
    treated: np.ndarray
    e: np.ndarray
    w: np.ndarray
    kept: np.ndarray
    design: pd.DataFrame


def offer_weights(rows: pd.DataFrame, X: pd.DataFrame, names: list[str], cfg: dict) -> dict:
    """Per offer with treated and control rows: its propensity model and ATT weights."""
    out = {}
    for offer in offers_of(rows):
        index = np.flatnonzero(offer_mask(rows, offer))
        treated = rows["group"].to_numpy()[index] == "treatment"
        if treated.all():
            continue
        design = weighting.design_matrix(X.iloc[index], names) if names else X.iloc[index, :0]
        e = weighting.fit_propensity(design, treated, cfg["propensity_C"])
        w, kept = weighting.att_weights(e, treated, cfg["max_propensity"])
        out[offer] = OfferWeights(offer, index, treated, e, w, kept, design)
    return out


def weighted_effects(
    rows: pd.DataFrame, weights: dict[str, OfferWeights], outcomes: list[str], cfg: dict
) -> pd.DataFrame:
    """Effect on the treated per offer by propensity weighting, and the offers added up."""
    out = []
    for outcome in outcomes:
        y = rows[outcome].to_numpy(dtype="float64")
        per_offer = []
        for offer in offers_of(rows):
            ow = weights.get(offer)
            if ow is None:
                n_t = int(((rows["group"] == "treatment") & (rows["offer_id"] == offer)).sum())
                out.append({"offer_id": offer, "outcome": outcome, "n_treated": n_t})
                continue
            r = weighting.weighted_difference(y[ow.index], ow.treated, ow.w, cfg["alpha"])
            y0 = y[ow.index][~ow.treated & ow.kept]
            row = _effect_row(offer, outcome, r, y0, cfg)
            row["n_trimmed"] = int((~ow.kept).sum())
            per_offer.append(row)
            out.append(row)
        if len(per_offer) > 1:
            out.append(_added_up(per_offer, outcome, cfg))
    return pd.DataFrame(out)


def _added_up(per_offer: list[dict], outcome: str, cfg: dict) -> dict:
    """The offers' incremental totals added up (se combined as if the offers were independent)."""
    t = pd.DataFrame(per_offer)
    n_t = float(t["n_treated"].sum())
    total = float(t["incremental"].sum())
    se_total = float(np.sqrt(((t["n_treated"] * t["se"]) ** 2).sum()))
    z = float(stats.norm.ppf(1 - cfg["alpha"] / 2))
    effect, se = total / n_t, se_total / n_t
    return {
        "offer_id": ALL,
        "outcome": outcome,
        "n_treated": int(n_t),
        "n_control": int(t["n_control"].max()),
        "mean_treated": float((t["mean_treated"] * t["n_treated"]).sum() / n_t),
        "mean_control": float((t["mean_control"] * t["n_treated"]).sum() / n_t),
        "effect": effect,
        "se": se,
        "ci_low": effect - z * se,
        "ci_high": effect + z * se,
        "p_value": float(2 * stats.norm.sf(abs(effect) / se)) if se > 0 else float("nan"),
        "incremental": total,
        "incremental_low": total - z * se_total,
        "incremental_high": total + z * se_total,
        "mde": float("nan"),
    }


def placebo(
    rows: pd.DataFrame,
    pre: pd.DataFrame,
    weights: dict[str, OfferWeights] | None,
    outcomes: list[str],
    cfg: dict,
) -> pd.DataFrame:
    """The same comparison on the outcome of the weeks before contact (the same weights, or none
    in a randomized log), per offer with a known pre-period outcome: ``includes_zero`` is the
    placebo's pass."""
    out = []
    for outcome in (o for o in outcomes if o in pre.columns):
        y = pre[outcome].to_numpy(dtype="float64")
        for offer in offers_of(rows):
            if weights is not None:
                ow = weights.get(offer)
                if ow is None:
                    continue
                index, treated, w = ow.index, ow.treated, ow.w
            else:
                index = np.flatnonzero(offer_mask(rows, offer))
                treated = rows["group"].to_numpy()[index] == "treatment"
                w = np.ones(len(index))
            if np.isnan(y[index]).all():
                continue
            r = weighting.weighted_difference(y[index], treated, w, cfg["alpha"])
            if not np.isfinite(r["effect"]):
                continue
            r["includes_zero"] = bool(r["ci_low"] <= 0 <= r["ci_high"])
            out.append({"offer_id": offer, "outcome": outcome, **r})
    return pd.DataFrame(out)


def overlap_table(weights: dict[str, OfferWeights], cfg: dict) -> pd.DataFrame:
    """Per offer: the propensity ranges of each group, rows trimmed, effective control size."""
    out = []
    for offer, ow in weights.items():
        et, ec = ow.e[ow.treated], ow.e[~ow.treated]
        out.append(
            {
                "offer_id": offer,
                "n_treated": int(ow.treated.sum()),
                "n_control": int((~ow.treated).sum()),
                "propensity_treated_min": float(et.min()),
                "propensity_treated_median": float(np.median(et)),
                "propensity_treated_max": float(et.max()),
                "propensity_control_median": float(np.median(ec)),
                "propensity_control_max": float(ec.max()),
                "n_trimmed": int((~ow.kept).sum()),
                "share_trimmed": float((~ow.kept).mean()),
                "share_treated_trimmed": float((~ow.kept[ow.treated]).mean()),
                "ess_control": weighting.effective_size(ow.w[~ow.treated]),
                "max_propensity": cfg["max_propensity"],
            }
        )
    return pd.DataFrame(out)


def balance_tables(
    weights: dict[str, OfferWeights], cfg: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per offer, the ``balance_rows`` features with the largest |SMD| before or after
    weighting; per offer, a summary over every feature)."""
    parts, summary = [], []
    bar = cfg["smd_threshold"]
    for offer, ow in weights.items():
        b = weighting.balance(ow.design, ow.treated, ow.w)
        worst = np.maximum(b["smd_before"].abs(), b["smd_after"].abs()).astype("float64")
        top = b.loc[worst.sort_values(ascending=False).index[: cfg["balance_rows"]]]
        parts.append(top.assign(offer_id=offer)[["offer_id", *b.columns]])
        before, after = b["smd_before"].abs(), b["smd_after"].abs()
        summary.append(
            {
                "offer_id": offer,
                "n_features": int(len(b)),
                "max_abs_smd_before": float(before.max()) if len(b) else float("nan"),
                "max_abs_smd_after": float(after.max()) if len(b) else float("nan"),
                "mean_abs_smd_before": float(before.mean()) if len(b) else float("nan"),
                "mean_abs_smd_after": float(after.mean()) if len(b) else float("nan"),
                "n_over_threshold_before": int((before > bar).sum()),
                "n_over_threshold_after": int((after > bar).sum()),
            }
        )
    full = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return full, pd.DataFrame(summary)


# -- the uplift model: Qini and policy values ------------------------------------------------------


@dataclass
class ModelParts:
    """Out-of-sample predictions of the uplift model and what they imply."""

    crossfit: CrossFit
    evaluation: PolicyEvaluation
    qini: pd.DataFrame
    curves: dict[str, dict[str, pd.DataFrame]]
    source: str


def model_parts(
    rows: pd.DataFrame,
    features: pd.DataFrame,
    catalog,
    cfg: dict,
    uplift_model=None,
    seed: int = 0,
) -> ModelParts:
    """Cross-fitted (or the given model's) predictions, policy values, gate and Qini curves.

    Raises
    ------
    ModelInputError
        When the uplift model cannot be fitted or evaluated on this log (too few
        rows per action, no overlap, an offer without value or cost, ...).
    """
    offers = list(catalog.offers)
    values = {o.offer_id: o.value for o in offers}
    costs = {o.offer_id: o.cost for o in offers}
    if uplift_model is not None:
        cf = holdout_predictions(uplift_model, features, rows)
        source = "the given uplift model (trained before this log)"
    else:
        k = int(cfg["folds"])
        cf = crossfit_predictions(features, rows, cfg["uplift"], k=k, seed=seed)
        source = f"{k}-fold cross-fitting (each customer scored by a model that did not see it)"
    evaluation = policy_evaluation(cf, values, costs, cfg["margin"], cfg["alpha"])
    qrows, curves = [], {}
    for j, arm in enumerate(cf.arms):
        mask = (cf.action == j + 1) | (cf.action == 0)
        treated = cf.action[mask] == j + 1
        if treated.all() or not treated.any():
            continue
        y = cf.converted[mask]
        q_up = causal.qini(y, treated, cf.uplift[mask, j])
        q_resp = causal.qini(y, treated, cf.mu[mask, j + 1])
        curves[arm] = {
            "uplift model": pd.DataFrame({"fraction": q_up.fraction, "gain": q_up.gain}),
            "response model": pd.DataFrame({"fraction": q_resp.fraction, "gain": q_resp.gain}),
        }
        qrows.append(
            {
                "offer_id": arm,
                "qini_uplift": q_up.coefficient,
                "qini_response": q_resp.coefficient,
                "qini_random": 0.0,
                "qini_area_uplift": q_up.area,
                "qini_area_response": q_resp.area,
                "n_treated": int(treated.sum()),
                "n_control": int((~treated).sum()),
            }
        )
    return ModelParts(cf, evaluation, pd.DataFrame(qrows), curves, source)
