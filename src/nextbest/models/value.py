"""Boosted CLV: a count model + Gamma-Gamma whose per-customer forecast gradient boosting corrects.

The buy-till-you-die models see only frequency, recency, T and mean spend. A
customer's next months also show in how their spend is trending, how many
weeks they were active lately, how broad their basket is and who they are
(demographics). :class:`BoostedClvModel` learns that from time-split examples
(features at a cutoff, the purchases and revenue of the ``horizon_days``
after it, :mod:`nextbest.train.value`) with two LightGBM regressors (Tweedie
loss: non-negative, many zeros, a long right tail), one for purchases and one
for revenue, fed with the behavioural features *and* the count model's own
outputs (P(alive), expected purchases and spend over the horizon, the
historic rate).

What it returns is what :class:`~nextbest.models.clv.ClvModel` returns, so
scoring, batch and the service do not change:

* ``p_alive`` - the count model's;
* ``expected_purchases`` over any horizon ``h`` - the boosted purchases over
  the model's own horizon ``H``, stretched or shrunk along the customer's own
  count-model path: ``boosted_H x E[N(h)] / E[N(H)]``;
* ``expected_spend`` per purchase - boosted revenue over boosted purchases
  (kept within 1/10 and 10 times the Gamma-Gamma mean);
* ``predicted_clv`` - the discounted count-model path scaled the same way,
  times spend and margin.

Aggregate honesty: both regressors are scaled once, at fit time, so that over
the customers at ``as_of`` their totals equal the count model's totals for
the horizon (the count model's forecast of the whole base stays the
forecast; boosting only redistributes it between customers). The scale
factors are kept and reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor

from nextbest.errors import ConfigError
from nextbest.features.customer import CHANNEL_DAYS
from nextbest.models import compiled
from nextbest.models.base import BaseModel, validate_columns
from nextbest.models.clv import COUNT_MODEL_NAMES, ClvModel
from nextbest.models.fast import expected_purchases_path
from nextbest.models.tabular import (
    as_matrix,
    check_features,
    fit_estimator,
    model_matrix,
)

# The count model's view of each customer over the value horizon (added by btyd_features).
BTYD_FEATURES = (
    "btyd_p_alive",
    "btyd_purchases",
    "btyd_spend",
    "btyd_revenue",
    "historic_revenue",
)
TARGETS = ("y_purchases", "y_revenue")
# Ids, labels, bookkeeping, and outputs of other models that a scoring frame may carry.
EXCLUDED = {
    "customer_id",
    "consent_profiling",
    "cutoff",
    "label",
    "first_day",
    "last_day",
    "p_alive",
    "expected_purchases_h",
    "expected_purchases",
    "expected_spend",
    "predicted_clv",
    "churn_probability",
    *TARGETS,
}
# Spend per purchase is kept within these multiples of the Gamma-Gamma mean.
SPEND_BOUNDS = (0.1, 10.0)


def _at_horizon(model: ClvModel, features: pd.DataFrame, horizon_days: float) -> np.ndarray:
    """E[N(horizon)] of the count model, one time point (the fast path where there is one)."""
    f, r, T = (features[c].to_numpy(dtype="float64") for c in ("frequency", "recency", "T"))
    t = horizon_days / model.time_unit_days
    with np.errstate(all="ignore"):
        path = expected_purchases_path(model.count_fitter_, [t], f, r, T)
    return path[0] if path is not None else model.expected_purchases(horizon_days, features)


def btyd_features(
    model: ClvModel,
    features: pd.DataFrame,
    horizon_days: float,
    p_alive: np.ndarray | None = None,
    spend: np.ndarray | None = None,
) -> pd.DataFrame:
    """:data:`BTYD_FEATURES` of each row of ``features`` (RFM in the model's time unit).

    ``historic_revenue`` = repeat-spend rate ``frequency x monetary / T`` over the horizon (the
    baseline of the evaluation); the others are the count model's P(alive), expected purchases,
    Gamma-Gamma spend per purchase and their product, over ``horizon_days``. ``p_alive`` and
    ``spend`` may be passed when already computed (scoring computes them anyway).
    """
    purchases = _at_horizon(model, features, horizon_days)
    f = features["frequency"].to_numpy(dtype="float64")
    m = features["monetary"].to_numpy(dtype="float64")
    T = features["T"].to_numpy(dtype="float64")
    spend = model._expected_spend(f, m) if spend is None else spend
    rate = np.divide(f * m, T, out=np.zeros_like(T), where=T > 0)
    return pd.DataFrame(
        {
            "btyd_p_alive": model.p_alive(features) if p_alive is None else p_alive,
            "btyd_purchases": purchases,
            "btyd_spend": spend,
            "btyd_revenue": purchases * spend,
            "historic_revenue": rate * horizon_days / model.time_unit_days,
        },
        index=features.index,
    )


def value_feature_names(frame: pd.DataFrame, demographics: list[str]) -> list[str]:
    """Numeric feature columns of ``frame`` (not ids, labels or other models' outputs), the count
    model's :data:`BTYD_FEATURES` and the demographic columns present."""
    names = [
        c
        for c in frame.columns
        if c not in EXCLUDED
        and c not in demographics
        and c not in BTYD_FEATURES
        and not c.startswith(CHANNEL_DAYS)
        and pd.api.types.is_numeric_dtype(frame[c])
    ]
    return [*names, *BTYD_FEATURES, *[d for d in demographics if d in frame.columns]]


class BoostedClvModel(BaseModel):
    """A fitted count model + Gamma-Gamma with boosted per-customer purchases and revenue.

    Parameters
    ----------
    count_model : ClvModel
        The fitted count model whose outputs are features and whose totals are kept.
    params : dict
        ``LGBMRegressor`` keyword arguments (objective, trees, seed ...), shared by both
        regressors.
    horizon_days : int
        The horizon ``H`` the regressors were trained on (days).
    """

    FORMAT_VERSION = 1

    def __init__(
        self, count_model: ClvModel, params: dict | None = None, horizon_days: int = 84
    ) -> None:
        super().__init__()
        if horizon_days <= 0:
            raise ConfigError(f"value horizon_days must be > 0, got {horizon_days}")
        self.count_model = count_model
        self.params = dict(params or {})
        self.horizon_days = int(horizon_days)

    # -- what scoring and the evaluation read of a CLV model ---------------------------------
    @property
    def time_unit_days(self) -> float:
        return self.count_model.time_unit_days

    @property
    def margin(self) -> float:
        return self.count_model.margin

    @property
    def count_model_used_(self) -> str:
        return self.count_model.count_model_used_

    @property
    def count_fitter_(self):
        return self.count_model.count_fitter_

    @property
    def params_(self) -> dict[str, float]:
        return self.count_model.params_

    @property
    def display_name(self) -> str:
        """E.g. ``"BG/NBD + Gamma-Gamma, boosted (LightGBM, 84-day horizon)"``."""
        name = COUNT_MODEL_NAMES.get(self.count_model_used_, self.count_model_used_)
        return f"{name} + Gamma-Gamma, boosted (LightGBM, {self.horizon_days}-day horizon)"

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        examples: pd.DataFrame,
        feature_names: list[str],
        levels: dict[str, list[str]],
        population: pd.DataFrame,
    ) -> BoostedClvModel:
        """Fit both regressors on ``examples``, then scale them to the count model's totals.

        Parameters
        ----------
        examples : DataFrame
            Feature rows at training cutoffs with :data:`BTYD_FEATURES` (from the count
            model refitted at each cutoff) and the targets ``y_purchases`` and ``y_revenue``
            (purchase-days and money in the ``horizon_days`` after the cutoff).
        feature_names, levels
            Feature columns in order; categorical columns and their levels.
        population : DataFrame
            Feature rows of the customers at ``as_of`` (no BTYD columns needed): the totals of
            both regressors over them are scaled to the count model's.
        """
        self.count_model._check_fitted()
        validate_columns(examples, list(TARGETS), what="value-model examples")
        check_features(examples, feature_names, "value-model examples")
        self.feature_names_ = list(feature_names)
        self.levels_ = {k: v for k, v in levels.items() if k in feature_names}
        X = as_matrix(examples, self.feature_names_, self.levels_)
        categorical = list(self.levels_) or "auto"
        self.purchases_regressor_, self.revenue_regressor_ = (
            fit_estimator(
                LGBMRegressor,
                self.params,
                X,
                examples[target].to_numpy(dtype="float64"),
                categorical_feature=categorical,
            )
            for target in TARGETS
        )
        self.purchases_scale_, self.revenue_scale_ = 1.0, 1.0
        self.fitted_ = True
        btyd = btyd_features(self.count_model, population, self.horizon_days)
        n, rev = self._boosted(population, btyd, compile_trees=False)
        self.purchases_scale_ = float(btyd["btyd_purchases"].sum() / max(n.sum(), 1e-12))
        self.revenue_scale_ = float(btyd["btyd_revenue"].sum() / max(rev.sum(), 1e-12))
        self.n_train_ = len(examples)
        return self

    def _boosted(
        self, features: pd.DataFrame, btyd: pd.DataFrame, compile_trees: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scaled boosted purchases and revenue over ``horizon_days`` per row.

        ``compile_trees=False`` predicts with LightGBM itself (at fit time: compiling pays off
        only in the scoring runs that follow, which load the compiled trees from the cache).
        """
        own = [c for c in self.feature_names_ if c not in BTYD_FEATURES]
        check_features(features, own, "value-model features")
        frame = pd.concat([features[own], btyd], axis=1)
        X = model_matrix(frame, self.feature_names_, self.levels_)
        if compile_trees:  # with each regressor's n_jobs (see compiled.single_threaded)
            n = compiled.predict_estimator(self.purchases_regressor_, X)
            rev = compiled.predict_estimator(self.revenue_regressor_, X)
        else:
            n = self.purchases_regressor_.booster_.predict(X)
            rev = self.revenue_regressor_.booster_.predict(X)
        return (
            np.clip(n, 0.0, None) * self.purchases_scale_,
            np.clip(rev, 0.0, None) * self.revenue_scale_,
        )

    # -- prediction --------------------------------------------------------------------------
    def predict(self, features: pd.DataFrame, horizon_days: float = 365) -> pd.DataFrame:
        """``customer_id``, ``p_alive``, ``expected_purchases``, ``expected_spend``,
        ``predicted_clv`` over ``horizon_days`` (see the module docstring)."""
        self._check_fitted()
        c = self.count_model.components(features, horizon_days)
        n, rev, base = self._boosted_and_base(features, c["p_alive"], c["expected_spend"])
        purchases = self._along_path(n, base, c["expected_purchases"], horizon_days)
        # The discounted path, scaled the same way (undiscounted where the count model has none).
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(
                c["expected_purchases"] > 0,
                c["discounted_purchases"] / c["expected_purchases"],
                1.0,
            )
        gg = c["expected_spend"]
        with np.errstate(divide="ignore", invalid="ignore"):
            spend = np.where(n > 1e-12, rev / n, gg)
        lo, hi = SPEND_BOUNDS
        spend = np.clip(spend, lo * gg, hi * gg)
        return pd.DataFrame(
            {
                "customer_id": features["customer_id"].astype(str).to_numpy(),
                "p_alive": c["p_alive"],
                "expected_purchases": purchases,
                "expected_spend": spend,
                "predicted_clv": self.margin * spend * purchases * share,
            }
        )

    def _boosted_and_base(
        self,
        features: pd.DataFrame,
        p_alive: np.ndarray | None = None,
        spend: np.ndarray | None = None,
    ) -> tuple[np.ndarray, ...]:
        """Boosted purchases and revenue over ``H``, and the count model's purchases over ``H``."""
        btyd = btyd_features(self.count_model, features, self.horizon_days, p_alive, spend)
        n, rev = self._boosted(features, btyd)
        return n, rev, btyd["btyd_purchases"].to_numpy()

    def _along_path(
        self, n: np.ndarray, base: np.ndarray, at_h: np.ndarray, horizon_days: float
    ) -> np.ndarray:
        """Boosted purchases over ``H`` carried to ``horizon_days`` along the count model's path
        (``n x E[N(h)] / E[N(H)]``); linearly where the count model expects no purchase at all."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                base > 1e-12, n * at_h / base, n * float(horizon_days) / self.horizon_days
            )

    def expected_purchases(self, horizon_days: float, features: pd.DataFrame) -> np.ndarray:
        """Expected repeat purchases in the next ``horizon_days`` days (boosted)."""
        self._check_fitted()
        n, _, base = self._boosted_and_base(features)
        at_h = _at_horizon(self.count_model, features, horizon_days)
        return self._along_path(n, base, at_h, horizon_days)

    def p_alive(self, features: pd.DataFrame) -> np.ndarray:
        """The count model's probability that each customer is still active."""
        return self.count_model.p_alive(features)

    def feature_importance(self) -> pd.DataFrame:
        """Gain importance of each feature in the revenue regressor, largest first."""
        self._check_fitted()
        booster = self.revenue_regressor_.booster_
        return (
            pd.DataFrame(
                {
                    "feature": booster.feature_name(),
                    "gain": booster.feature_importance(importance_type="gain"),
                }
            )
            .sort_values("gain", ascending=False)
            .reset_index(drop=True)
        )

    def summary(self) -> dict:
        """The count model's summary plus what boosting added."""
        self._check_fitted()
        return {
            **self.count_model.summary(),
            "value_model": "lightgbm",
            "value_horizon_days": self.horizon_days,
            "purchases_scale": self.purchases_scale_,
            "revenue_scale": self.revenue_scale_,
            "n_value_examples": self.n_train_,
            "n_value_features": len(self.feature_names_),
        }
