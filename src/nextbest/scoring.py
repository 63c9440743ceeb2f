"""``score``: the one function behind batch scoring and the HTTP service.

Per customer it returns ``customer_id, p_alive, expected_purchases,
expected_spend, predicted_clv, churn_probability, action, action_offer_id,
offers, reasons, model_versions`` (plus ``consent_profiling``, ``as_of``,
``horizon_days``, ``channel``, ``group`` and ``propensity``). ``channel`` is
where the action goes out: a channel the customer has not refused, the one
with the best expected value given their channel preference
(:mod:`nextbest.decision.channels`; ``None``: nothing is sent). ``offers`` is the ranked
top-k list of ``{offer_id, category, p_convert, expected_value, channel}`` (each offer's
best permitted channel);
``reasons`` a list of ``{code, text}``. ``group`` is ``treatment`` (the
greedy choice), ``control`` (the randomized holdout: nothing is sent) or
``explore`` (a random eligible action), and ``propensity`` the probability of
the chosen arm under the policy (:mod:`nextbest.decision.experiment`).

Consent first: a customer with ``consent_profiling = false`` gets the
non-personalised default action, an empty offer list and **no** model scores
(the score columns are empty), and no model is even evaluated on their row.
"""

from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from nextbest.decision.catalog import Catalog
from nextbest.decision.experiment import experiment_reasons, run_experiment
from nextbest.decision.policy import Effects, decide, gate_offers
from nextbest.decision.reasons import build_reasons
from nextbest.features.build import count_model_of
from nextbest.models import compiled

SCORE_COLUMNS = (
    "customer_id",
    "p_alive",
    "expected_purchases",
    "expected_spend",
    "predicted_clv",
    "churn_probability",
    "action",
    "action_offer_id",
    "offers",
    "reasons",
    "model_versions",
)
MODEL_SCORE_COLUMNS = (
    "p_alive",
    "expected_purchases",
    "expected_spend",
    "predicted_clv",
    "churn_probability",
)


class ClvPredictor(Protocol):
    """What scoring needs of a CLV model (:class:`~nextbest.models.clv.ClvModel`)."""

    time_unit_days: float

    def predict(self, rfm: pd.DataFrame, horizon_days: float = 365) -> pd.DataFrame: ...

    def expected_purchases(self, horizon_days: float, rfm: pd.DataFrame) -> np.ndarray: ...


class ChurnPredictor(Protocol):
    """What scoring needs of a churn model (:class:`~nextbest.models.churn.ChurnModel`)."""

    def predict_proba(self, frame: pd.DataFrame, calibrated: bool = True) -> np.ndarray: ...


class OfferPredictor(Protocol):
    """What scoring needs of an offer model (:class:`~nextbest.models.offers.OfferModel`)."""

    levels_: dict[str, list[str]]

    def predict_offers(
        self, features: pd.DataFrame, offers, popularity: dict[str, float], mask=None
    ) -> np.ndarray: ...


class UpliftPredictor(Protocol):
    """What scoring needs of an uplift model (:class:`~nextbest.models.uplift.UpliftModel`)."""

    arms_: tuple[str, ...]
    feature_names_: list[str]

    def predict_arrays(self, features: pd.DataFrame) -> dict[str, np.ndarray | None]: ...


@dataclass
class ModelSet:
    """The models and catalog one scoring run uses, with their registry versions.

    ``churn``, ``nbo`` and ``uplift`` are optional: without an offer model
    decisions are retention or no action; without a churn model there is no
    retention; with an uplift model (learned from a campaign log) the offers it
    covers are chosen by their incremental value. ``clv`` is None only for
    customers known by attributes alone (no transactions): no scores then.
    ``label``, ``notes`` and ``skipped`` say where the models came from (a
    backtest compares two sets).
    """

    clv: ClvPredictor | None
    catalog: Catalog
    churn: ChurnPredictor | None = None
    nbo: OfferPredictor | None = None
    uplift: UpliftPredictor | None = None
    versions: dict[str, str] = field(default_factory=dict)
    label: str = ""
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def churn_horizon_days(self) -> float:
        """The churn model's label window in days (30 without a churn model)."""
        return float(getattr(self.churn, "horizon_days_", 30.0))


def single_threaded(models: ModelSet) -> ModelSet:
    """One thread per model prediction, for a private copy of the models where processes are
    the parallelism: the service's re-decisions (one row at a time), batch worker processes,
    Spark tasks. :func:`nextbest.models.compiled.single_threaded` on the CLV, churn, offer and
    uplift models; predictions do not depend on the thread count."""
    compiled.single_threaded(*(getattr(models, k, None) for k in ("clv", "churn", "nbo", "uplift")))
    return models


def score(
    features: pd.DataFrame,
    models: ModelSet,
    horizon_days: float,
    popularity: dict[str, float] | None = None,
    contact_history: pd.DataFrame | None = None,
    as_of=None,
) -> pd.DataFrame:
    """Score customers from their feature rows and decide one action each.

    Parameters
    ----------
    features : pandas.DataFrame
        Rows from :func:`nextbest.features.build.features_at` (or a snapshot
        of them): RFM in the CLV model's unit, windows, category mix,
        ``consent_profiling``.
    models : ModelSet
    horizon_days : float
        Horizon of ``expected_purchases`` and ``predicted_clv``.
    popularity : dict, optional
        Category popularity at ``as_of`` (offer-model feature).
    contact_history : DataFrame, optional
        ``customer_id, offer_id, timestamp`` of past contacts (cooldowns, caps).
    """
    n = len(features)
    consent = (
        features["consent_profiling"].fillna(True).astype(bool).to_numpy()
        if "consent_profiling" in features.columns
        else np.ones(n, dtype=bool)
    )
    allowed = np.flatnonzero(consent)
    scores = {c: np.full(n, np.nan) for c in MODEL_SCORE_COLUMNS}
    m = len(models.catalog.offers)
    p_convert = np.zeros((n, m))
    sub = features if allowed.size == n else features.iloc[allowed]  # no copy when all consent
    if allowed.size and models.clv is not None:
        clv = models.clv.predict(sub, horizon_days=horizon_days)
        for c in ("p_alive", "expected_purchases", "expected_spend", "predicted_clv"):
            scores[c][allowed] = clv[c].to_numpy()
        if models.churn is not None:
            churn_in = sub.assign(
                p_alive=clv["p_alive"].to_numpy(),
                expected_purchases_h=count_model_of(models.clv).expected_purchases(
                    models.churn_horizon_days, sub
                ),
            )
            scores["churn_probability"][allowed] = models.churn.predict_proba(churn_in)
    gate = gate_offers(
        features,
        models.catalog,
        scores["predicted_clv"],
        scores["churn_probability"],
        scores["p_alive"],
        consent,
        contact_history,
        as_of,
    )
    if allowed.size and models.nbo is not None:
        # Only pairs the policy could list are predicted (the same pairs the offer model was
        # trained on: a category not bought lately); decide() never reads the others. An offer
        # without a category has no response model: only an uplift model values it.
        eligible = gate.ok[allowed] & models.catalog.has_category[None, :]
        if eligible.any():
            offer_j, cust_i = np.nonzero(
                eligible.T
            )  # offer-major, the order predict_offers returns
            p_convert[allowed[cust_i], offer_j] = models.nbo.predict_offers(
                sub, models.catalog.offers, popularity or {}, mask=eligible
            )
    effects = (
        uplift_effects(models.uplift, sub, allowed, n, models.catalog)
        if models.uplift is not None and allowed.size
        else None
    )
    d = decide(
        features,
        models.catalog,
        p_convert,
        scores["predicted_clv"],
        scores["churn_probability"],
        scores["p_alive"],
        consent,
        gate=gate,
        effects=effects,
    )
    ids = features["customer_id"].astype(str).to_numpy()
    run_key = str(pd.Timestamp(as_of).date()) if as_of is not None else ""
    d, arms = run_experiment(d, ids, models.catalog, gate.ok, consent, run_key)
    with _no_cyclic_gc():
        reasons = build_reasons(
            features,
            models.catalog,
            d,
            scores["predicted_clv"],
            scores["churn_probability"],
            scores["p_alive"],
            consent,
        )
        offers = _offer_lists(models.catalog, d)
        # A baseline offer policy (no learned model beat it) says so on every cross-sell.
        policy_reason = getattr(models.nbo, "decision_reason", None)
        if policy_reason is not None:
            for row, action in zip(reasons, d.action.tolist()):
                if action == "cross_sell":
                    row.append(dict(policy_reason))
        if (arms.group != "treatment").any():
            first = experiment_reasons(arms, models.catalog.policy)
            reasons = [r if f is None else [f, *r] for f, r in zip(first, reasons)]
    n_rows = len(ids)
    columns = {
        "customer_id": ids,
        **{c: scores[c] for c in MODEL_SCORE_COLUMNS},
        "action": d.action,
        "action_offer_id": d.action_offer_id,
        "offers": _objects(offers),
        "reasons": _objects(reasons),
        "model_versions": json.dumps(models.versions, sort_keys=True),
        "consent_profiling": consent,
        "as_of": pd.Series(pd.Timestamp(as_of) if as_of is not None else pd.NaT, range(n_rows)),
        "horizon_days": float(horizon_days),
        "channel": d.channel,
        "group": arms.group,
        "propensity": arms.propensity,
    }
    # One frame built at once: a column assigned at a time cost 2-3 ms of a re-decision.
    return pd.DataFrame(columns)


def _objects(values: list) -> np.ndarray:
    """A list of lists as a 1-D object array (one list per row)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def uplift_effects(
    model: UpliftPredictor, sub: pd.DataFrame, rows: np.ndarray, n: int, catalog: Catalog
) -> Effects:
    """The uplift model's effects on the catalog's offers for customers ``rows`` of ``n``.

    Offers (and the retention offer) the model was not trained on stay NaN:
    the decision values them by response (or the catalog's assumed uplift).
    Feature columns the model knows but ``sub`` lacks are missing values.
    """
    m = len(catalog.offers)
    frame = sub.reindex(columns=["customer_id", *model.feature_names_])
    arrays = model.predict_arrays(frame)
    arm = {a: k for k, a in enumerate(model.arms_)}
    effect = np.full((n, m), np.nan)
    revenue_value = np.zeros((n, m))
    margin = float(catalog.policy.get("revenue_margin", 0.0))
    for j, offer in enumerate(catalog.offers):
        k = arm.get(offer.offer_id)
        if k is None:
            continue
        effect[rows, j] = arrays["uplift"][:, k]
        if margin and arrays["uplift_revenue"] is not None:
            revenue_value[rows, j] = margin * arrays["uplift_revenue"][:, k]
    retention = np.full(n, np.nan)
    if catalog.retention is not None and catalog.retention.offer_id in arm:
        retention[rows] = arrays["uplift"][:, arm[catalog.retention.offer_id]]
    return Effects(
        effect, revenue_value, retention, average=bool(getattr(model, "constant", False))
    )


@contextmanager
def _no_cyclic_gc():
    """Pause the cyclic garbage collector while building millions of small acyclic objects.

    Reasons and offer lists are plain dicts of strings and floats (no reference cycles), but
    their sheer number triggers collections that rescan everything alive: about half of the
    time of building them for 100k customers. Reference counting still frees everything.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _offer_lists(catalog: Catalog, d) -> list[list[dict]]:
    # Plain Python lists (tolist) and numpy rounding instead of per-element work: same values, fast.
    ids = [o.offer_id for o in catalog.offers]
    cats = [o.category for o in catalog.offers]
    p_rounded = np.round(d.top_p, 6).tolist()
    ev_rounded = np.round(d.top_ev, 4).tolist()
    names = [*catalog.channel_names, None]  # index -1: no channel
    if d.offer_channel is not None and d.top_index.size:
        rows = np.arange(d.top_index.shape[0])[:, None]
        via = d.offer_channel[rows, np.maximum(d.top_index, 0)].tolist()
    else:
        via = [[-1] * d.top_index.shape[1]] * d.top_index.shape[0]
    return [
        [
            {
                "offer_id": ids[o],
                "category": cats[o],
                "p_convert": p,
                "expected_value": ev,
                "channel": names[c],
            }
            for o, p, ev, c in zip(irow, prow, erow, crow)
            if o >= 0
        ]  # -1 (none) only ever trails
        for irow, prow, erow, crow in zip(d.top_index.tolist(), p_rounded, ev_rounded, via)
    ]


def top_customers(scores: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` customers with the highest predicted CLV (opted-out customers excluded)."""
    ranked = scores.dropna(subset=["predicted_clv"]).sort_values("predicted_clv", ascending=False)
    return ranked.head(n).reset_index(drop=True)
