"""Uplift model: the incremental effect of each offer against no contact, learned from a log.

For every customer ``x`` and offer ``k`` the model estimates

* the incremental conversion probability ``tau_k(x) = P(y | offer k, x) - P(y | no contact, x)``;
* the incremental revenue (currency units per contact), when the log has ``revenue``.

It learns from a validated campaign log (:mod:`nextbest.data.campaign_log`) joined
on ``customer_id`` with a feature frame (transaction features, customer
attributes, or both). Action 0 is "no contact" (every ``control`` row, universal
or held out from a named offer); actions ``1..K`` are the offers of the log's
treatment rows, in sorted order (:attr:`UpliftModel.arms_`).

Learners (Kunzel et al. 2019; Kennedy 2020), all on LightGBM:

* ``"t"`` (T-learner): one classifier per action on that action's rows,
  weighted by ``1 / propensity`` so each arm's sample stands for the whole
  population; ``tau_k = mu_k - mu_0``.
* ``"x"`` (X-learner, the default): the T-learner's models impute each
  row's effect, ``y - mu_0(x)`` for rows that got offer k and ``mu_k(x) - y`` for
  control rows (each model applied to rows it did not see); one regressor per
  group learns it, and ``tau_k = g tau_k0 + (1 - g) tau_k1`` with ``g = e_k / (e_k
  + e_0)`` (Kunzel et al. 2019, eq. 9; ``e`` the estimated propensities, or the
  arms' shares of the log when propensities were logged).
* ``"dr"`` (DR-learner): the T-learner's outcome models, cross-fitted inside
  ``fit`` (``dr_folds`` folds), give doubly robust pseudo-outcomes
  (:func:`nextbest.models.causal.effect_scores`); one regressor per offer on all
  rows predicts ``tau_k``.

In every learner the T-learner's models, fitted on all rows, also give the
response probabilities ``mu_k`` (and expected revenue). Effects on conversion
are clipped to [-1, 1].

Trees are small and leaves large (``num_leaves`` 3, at least ``min_child_share``
of a fit's rows per leaf): effects are a few points against a noisy outcome, and
on Hillstrom deeper trees found noise, not effects.

Propensities come from the log's ``propensity`` column when every training row
has one; otherwise a multinomial LightGBM classifier estimates them (out of fold).
The overlap check then reports and trims rows whose estimated probability of
some action is below ``trim[0]`` or above ``trim[1]``: their effect cannot be
learned from comparable customers.

Rows whose ``converted`` is not known yet are left out of the fit (counted in
``report_``). Log rows whose customer has no feature row keep missing features
(LightGBM sends them down its default branches) and are counted too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier, LGBMRegressor

from nextbest.errors import ModelInputError
from nextbest.features.build import ID_COLUMNS
from nextbest.features.customer import CHANNEL_DAYS
from nextbest.models.base import BaseModel, validate_columns
from nextbest.models.causal import effect_scores
from nextbest.models.tabular import (
    check_features,
    learn_levels,
    model_matrix,
)

CONTROL = "control"
LEARNERS = ("t", "x", "dr")
UPLIFT_DEFAULTS: dict = {
    "learner": "x",
    "min_child_share": 0.05,
    "lightgbm": {
        "n_estimators": 150,
        "learning_rate": 0.03,
        "num_leaves": 3,
        "min_child_samples": 20,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "random_state": 42,
        # One thread: on the shared 2-core machine, 1M contacts took 22 s with 1 thread and
        # 130 s with 2 while other processes ran (18 s with 2 on an idle machine).
        "n_jobs": 1,
        "verbose": -1,
    },
    "propensity_lightgbm": {"n_estimators": 60, "num_leaves": 7, "min_child_samples": 200},
    "propensity_folds": 3,
    "dr_folds": 2,
    "trim": [0.01, 0.99],
    "min_rows_per_action": 20,
    "max_levels": 50,
}


def uplift_config(overrides: dict | None = None) -> dict:
    """:data:`UPLIFT_DEFAULTS` with ``overrides`` merged on top (a new dict)."""
    from nextbest.config import merge

    return merge(UPLIFT_DEFAULTS, overrides)


def uplift_feature_names(features: pd.DataFrame, max_levels: int = 50) -> tuple[list[str], list]:
    """Feature columns of ``features`` and which of them are categorical.

    Every column except ids and consent; text columns with at most ``max_levels``
    distinct values are categorical, other text columns are skipped.
    """
    names, categorical = [], []
    for col in features.columns:
        if col in ID_COLUMNS or col.startswith(CHANNEL_DAYS):
            continue
        values = features[col]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            names.append(col)
        elif values.nunique(dropna=True) <= max_levels:
            names.append(col)
            categorical.append(col)
    return names, categorical


@dataclass
class LogRows:
    """A campaign log joined to features, as the learners take it."""

    customer_id: np.ndarray
    X: np.ndarray  # float matrix, categoricals as codes
    action: np.ndarray  # 0 = no contact, k = arms[k - 1]
    converted: np.ndarray
    revenue: np.ndarray | None
    propensity: np.ndarray | None  # logged probability of the row's action, None if unknown
    n_without_features: int


class UpliftModel(BaseModel):
    """Multi-offer uplift model (T-, X- or DR-learner on LightGBM) with a propensity model.

    Parameters
    ----------
    config : dict, optional
        Overrides of :data:`UPLIFT_DEFAULTS` (``learner``, ``lightgbm`` params with
        ``n_jobs`` and ``random_state``, ``trim``, folds).
    """

    FORMAT_VERSION = 1
    constant = False  # effects differ by customer

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        self.config = uplift_config(config)
        if self.config["learner"] not in LEARNERS:
            raise ModelInputError(
                f"uplift learner must be one of {list(LEARNERS)}, got {self.config['learner']!r}"
            )

    # -- data --------------------------------------------------------------------------------------

    def _learn_schema(self, features: pd.DataFrame, log: pd.DataFrame) -> None:
        validate_columns(features, ["customer_id"], ["customer_id"], what="uplift features")
        validate_columns(
            log, ["customer_id", "offer_id", "group", "converted"], what="campaign log"
        )
        names, categorical = uplift_feature_names(features, self.config["max_levels"])
        if not names:
            raise ModelInputError("uplift features: no usable feature column besides customer_id")
        self.feature_names_ = names
        self.levels_ = learn_levels(features, categorical)
        self.categorical_index_ = [names.index(c) for c in categorical]
        treated = log.loc[log["group"] != CONTROL, "offer_id"].astype(str)
        self.arms_ = tuple(sorted(treated.unique()))

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """Float model matrix of ``features`` in the model's column order."""
        check_features(features, self.feature_names_, "uplift features")
        return model_matrix(features, self.feature_names_, self.levels_)

    def log_rows(self, features: pd.DataFrame, log: pd.DataFrame) -> LogRows:
        """Join log rows to their customer's features; rows with unknown outcome are left out."""
        validate_columns(features, ["customer_id"], ["customer_id"], what="uplift features")
        known = log[log["converted"].notna()] if "converted" in log.columns else log.iloc[:0]
        ids = known["customer_id"].astype(str).to_numpy()
        pos = pd.Index(features["customer_id"].astype(str)).get_indexer(ids)
        X_all = self.matrix(features)
        X = np.full((len(ids), X_all.shape[1]), np.nan)
        X[pos >= 0] = X_all[pos[pos >= 0]]
        offer = known["offer_id"].astype(str).to_numpy()
        control = known["group"].astype(str).to_numpy() == CONTROL
        arm_index = pd.Index(self.arms_).get_indexer(offer) + 1
        if (~control & (arm_index == 0)).any():
            bad = offer[~control & (arm_index == 0)][0]
            raise ModelInputError(f"campaign log: offer_id {bad!r} was not in the training log")
        has_p = "propensity" in known.columns and known["propensity"].notna().all()
        has_r = "revenue" in known.columns and known["revenue"].notna().all() and len(known)
        return LogRows(
            customer_id=ids,
            X=X,
            action=np.where(control, 0, arm_index).astype("int64"),
            converted=known["converted"].to_numpy(dtype="float64"),
            revenue=known["revenue"].to_numpy(dtype="float64") if has_r else None,
            propensity=known["propensity"].to_numpy(dtype="float64") if has_p else None,
            n_without_features=int((pos < 0).sum()),
        )

    # -- fit ---------------------------------------------------------------------------------------

    def fit(self, features: pd.DataFrame, log: pd.DataFrame) -> UpliftModel:
        """Learn the effect of each logged offer from ``log`` joined to ``features``.

        Parameters
        ----------
        features : pandas.DataFrame
            One row per customer: ``customer_id`` and feature columns (numbers, or
            text with few levels, encoded as categoricals).
        log : pandas.DataFrame
            A validated campaign log with ``converted`` (and optionally
            ``propensity``, ``revenue``).

        Raises
        ------
        ModelInputError
            If a column is missing, no control or no treated rows have a known
            outcome, or an action has fewer than ``min_rows_per_action`` rows.
        """
        self._learn_schema(features, log)
        rows = self.log_rows(features, log)
        self._check_actions(rows)
        p_matrix, source = self._propensities(rows)
        keep = self._overlap(p_matrix, source, len(rows.action))
        p = (
            rows.propensity
            if source == "logged"
            else p_matrix[np.arange(len(rows.action)), rows.action]
        )
        X, a, y = rows.X[keep], rows.action[keep], rows.converted[keep]
        p = p[keep]
        r = rows.revenue[keep] if rows.revenue is not None else None
        self.outcome_models_ = self._fit_arms(X, a, y, 1 / p, classify=True)
        self.revenue_models_ = (
            self._fit_arms(X, a, r, 1 / p, classify=False) if r is not None else None
        )
        self.effect_models_ = self.revenue_effect_models_ = None
        self.arm_share_ = np.bincount(a, minlength=len(self.arms_) + 1) / len(a)
        if self.config["learner"] == "dr":
            self.effect_models_ = self._fit_dr(X, a, y, p, classify=True)
            if r is not None:
                self.revenue_effect_models_ = self._fit_dr(X, a, r, p, classify=False)
        elif self.config["learner"] == "x":
            self.effect_models_ = self._fit_x(X, a, y, 1 / p, self.outcome_models_)
            if r is not None:
                self.revenue_effect_models_ = self._fit_x(X, a, r, 1 / p, self.revenue_models_)
        self.report_ = {
            "n_log_rows": int(len(log)),
            "n_outcome_unknown": int(len(log) - len(rows.action)),
            "n_without_features": rows.n_without_features,
            "n_train": int(keep.sum()),
            "n_per_action": {
                name: int((a == k).sum()) for k, name in enumerate((CONTROL, *self.arms_))
            },
            "revenue_modelled": r is not None,
            **self.overlap_,
        }
        self.fitted_ = True
        return self

    def _check_actions(self, rows: LogRows) -> None:
        if not self.arms_:
            raise ModelInputError("campaign log: no treatment rows; nothing to learn an effect of")
        counts = np.bincount(rows.action, minlength=len(self.arms_) + 1)
        floor = int(self.config["min_rows_per_action"])
        for k, name in enumerate((CONTROL, *self.arms_)):
            if counts[k] < floor:
                raise ModelInputError(
                    f"campaign log: {counts[k]} row(s) with a known outcome for {name!r}; the "
                    f"uplift model needs at least {floor} per action (control included)"
                )

    def _propensities(self, rows: LogRows) -> tuple[np.ndarray | None, str]:
        """(estimated n x actions matrix or None, "logged" or "estimated")."""
        self.propensity_model_ = None
        if rows.propensity is not None:
            return None, "logged"
        n_actions = len(self.arms_) + 1
        params = {**self.config["lightgbm"], **self.config["propensity_lightgbm"]}
        folds = fold_numbers(
            len(rows.action), self.config["propensity_folds"], params["random_state"]
        )
        out = np.empty((len(rows.action), n_actions))
        for f in range(folds.max() + 1):
            test = folds == f
            model = _multiclass(rows.X[~test], rows.action[~test], params, self.categorical_index_)
            out[test] = _predict_multiclass(model, rows.X[test], n_actions)
        self.propensity_model_ = _multiclass(rows.X, rows.action, params, self.categorical_index_)
        return out, "estimated"

    def _overlap(self, p: np.ndarray | None, source: str, n: int) -> np.ndarray:
        """Rows to train on: all with logged propensities, else those with overlap."""
        low, high = (float(v) for v in self.config["trim"])
        if p is None:
            self.overlap_ = {"propensity_source": source, "n_trimmed": 0}
            return np.ones(n, dtype=bool)
        poor = (p.min(axis=1) < low) | (p.max(axis=1) > high)
        if poor.all():
            raise ModelInputError(
                f"no overlap: every row has an estimated propensity outside [{low}, {high}]; "
                "the log cannot tell what the offers did (assignment was near deterministic)"
            )
        self.overlap_ = {
            "propensity_source": source,
            "n_trimmed": int(poor.sum()),
            "trim": [low, high],
            "propensity_min": {
                name: float(p[:, k].min()) for k, name in enumerate((CONTROL, *self.arms_))
            },
            "propensity_max": {
                name: float(p[:, k].max()) for k, name in enumerate((CONTROL, *self.arms_))
            },
        }
        return ~poor

    def _fit(self, X, y, w, classify: bool):
        params = dict(self.config["lightgbm"])
        share = float(self.config["min_child_share"])
        params["min_child_samples"] = max(int(params["min_child_samples"]), int(share * len(y)))
        return _fit_one(X, y, w, params, classify, self.categorical_index_)

    def _fit_arms(self, X, a, y, w, classify: bool) -> list:
        return [
            self._fit(X[a == k], y[a == k], w[a == k], classify) for k in range(len(self.arms_) + 1)
        ]

    def _fit_x(self, X, a, y, w, arm_models: list) -> list[tuple]:
        """X-learner: per offer, regressors of imputed effects on its rows and on control rows."""
        control = a == 0
        mu0 = _predict_one(arm_models[0], X[~control])  # control model on rows it did not see
        treated_rows = np.flatnonzero(~control)
        out = []
        for k in range(1, len(self.arms_) + 1):
            mine = a[treated_rows] == k
            rows = treated_rows[mine]
            tau1 = self._fit(X[rows], y[rows] - mu0[mine], w[rows], classify=False)
            d0 = _predict_one(arm_models[k], X[control]) - y[control]
            tau0 = self._fit(X[control], d0, w[control], classify=False)
            out.append((tau0, tau1))
        return out

    def _x_weight(self, X: np.ndarray) -> np.ndarray:
        """g = e_k / (e_k + e_0) per row and offer (n x K)."""
        e = self.propensity_matrix(X)
        if e is None:
            e = np.broadcast_to(self.arm_share_, (len(X), len(self.arm_share_)))
        return e[:, 1:] / np.maximum(e[:, 1:] + e[:, [0]], 1e-12)

    def _effects(self, models: list, X: np.ndarray) -> np.ndarray:
        if models and isinstance(models[0], tuple):
            g = self._x_weight(X)
            return np.column_stack(
                [
                    g[:, j] * _predict_one(t0, X) + (1 - g[:, j]) * _predict_one(t1, X)
                    for j, (t0, t1) in enumerate(models)
                ]
            )
        return np.column_stack([_predict_one(m, X) for m in models])

    def _fit_dr(self, X, a, y, p, classify: bool) -> list:
        """DR-learner: cross-fitted outcome models -> pseudo-outcomes -> one regressor per offer."""
        params = self.config["lightgbm"]
        folds = fold_numbers(len(a), self.config["dr_folds"], params["random_state"] + 1)
        mu = np.empty((len(a), len(self.arms_) + 1))
        for f in range(folds.max() + 1):
            test = folds == f
            models = self._fit_arms(X[~test], a[~test], y[~test], 1 / p[~test], classify)
            mu[test] = np.column_stack([_predict_one(m, X[test]) for m in models])
        gamma = effect_scores(a, p, y, mu)
        return [self._fit(X, gamma[:, k], None, False) for k in range(1, len(self.arms_) + 1)]

    # -- predict -----------------------------------------------------------------------------------

    def predict_arrays(self, features: pd.DataFrame) -> dict[str, np.ndarray | None]:
        """Per customer (rows of ``features``) and action, as arrays.

        Returns
        -------
        dict
            ``mu`` (n x 1+K): P(convert | action, x), action 0 = no contact;
            ``uplift`` (n x K): incremental conversion probability per offer;
            ``mu_revenue``, ``uplift_revenue``: the same for revenue (currency
            units), or None when revenue was not logged.
        """
        self._check_fitted()
        return self._predict_matrix(self.matrix(features))

    def _predict_matrix(self, X: np.ndarray) -> dict[str, np.ndarray | None]:
        mu = np.column_stack([_predict_one(m, X) for m in self.outcome_models_])
        out = {
            "mu": mu,
            "uplift": mu[:, 1:] - mu[:, [0]],
            "mu_revenue": None,
            "uplift_revenue": None,
        }
        if self.effect_models_ is not None:
            out["uplift"] = np.clip(self._effects(self.effect_models_, X), -1.0, 1.0)
        if self.revenue_models_ is not None:
            mr = np.column_stack([_predict_one(m, X) for m in self.revenue_models_])
            out["mu_revenue"], out["uplift_revenue"] = mr, mr[:, 1:] - mr[:, [0]]
            if self.revenue_effect_models_ is not None:
                out["uplift_revenue"] = self._effects(self.revenue_effect_models_, X)
        return out

    def predict_propensity(self, features: pd.DataFrame) -> np.ndarray | None:
        """Estimated P(action | x) (n x 1+K), or None when the log's propensities were used."""
        self._check_fitted()
        return self.propensity_matrix(self.matrix(features))

    def propensity_matrix(self, X: np.ndarray) -> np.ndarray | None:
        """:meth:`predict_propensity` on a model matrix (:meth:`matrix`)."""
        if self.propensity_model_ is None:
            return None
        return _predict_multiclass(self.propensity_model_, X, len(self.arms_) + 1)

    def predict_matrix(self, X: np.ndarray) -> dict[str, np.ndarray | None]:
        """:meth:`predict_arrays` on a model matrix (:meth:`matrix`)."""
        self._check_fitted()
        return self._predict_matrix(X)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """One row per (customer, offer), customer-major.

        Columns: ``customer_id``, ``offer_id``, ``uplift`` (incremental conversion
        probability), ``p_offer`` and ``p_control`` (P(convert) with and without the
        offer) and, when revenue was logged, ``uplift_revenue`` (currency units).
        """
        validate_columns(features, ["customer_id"], what="uplift features")
        arrays = self.predict_arrays(features)
        n, k = arrays["uplift"].shape
        out = pd.DataFrame(
            {
                "customer_id": np.repeat(features["customer_id"].astype(str).to_numpy(), k),
                "offer_id": np.tile(np.array(self.arms_, dtype=object), n),
                "uplift": arrays["uplift"].ravel(),
                "p_offer": arrays["mu"][:, 1:].ravel(),
                "p_control": np.repeat(arrays["mu"][:, 0], k),
            }
        )
        if arrays["uplift_revenue"] is not None:
            out["uplift_revenue"] = arrays["uplift_revenue"].ravel()
        return out


# -- LightGBM helpers --------------------------------------------------------------------------


def fold_numbers(n: int, k: int, seed: int) -> np.ndarray:
    """Fold number per row, balanced and seeded."""
    k = max(2, min(int(k), n))
    return np.random.default_rng(seed).permutation(np.arange(n) % k)


def _fit_one(X, y, w, params: dict, classify: bool, categorical: list[int]):
    """A fitted LightGBM model, or a float when the target is constant (e.g. no conversion)."""
    if len(y) == 0:
        return 0.0
    if np.unique(y).size < 2:
        return float(y[0])
    model = (LGBMClassifier if classify else LGBMRegressor)(**copy.deepcopy(params))
    model.fit(X, y, sample_weight=w, categorical_feature=categorical or "auto")
    return model


def _predict_one(model, X: np.ndarray) -> np.ndarray:
    if isinstance(model, float):
        return np.full(len(X), model)
    if isinstance(model, LGBMClassifier):
        return model.predict_proba(X)[:, 1]
    return model.predict(X)


def _multiclass(X, a, params: dict, categorical: list[int]):
    present = np.unique(a)
    if present.size < 2:
        return int(present[0])
    model = LGBMClassifier(**copy.deepcopy(params))
    model.fit(X, a, categorical_feature=categorical or "auto")
    return model


def _predict_multiclass(model, X: np.ndarray, n_actions: int) -> np.ndarray:
    out = np.zeros((len(X), n_actions))
    if isinstance(model, int):
        out[:, model] = 1.0
        return out
    out[:, model.classes_] = model.predict_proba(X)
    return out


class AverageEffectModel(BaseModel):
    """The same effect of each offer for everyone: the fallback when uplift fails its gate.

    When the learned policy does not beat the best single action, the decision
    falls back to that action for everyone. This model gives the decision layer
    exactly that: per offer, the average effect estimated from the log (the
    self-normalised inverse-propensity means of each arm, the difference in
    means for a randomized test), the same for every customer. Ranking offers by
    ``effect x value - cost`` then chooses the best single action, or no
    contact when no offer pays.
    """

    FORMAT_VERSION = 1
    constant = True

    def __init__(self) -> None:
        super().__init__()

    def fit(self, features: pd.DataFrame, log: pd.DataFrame) -> AverageEffectModel:
        """Average conversion (and revenue) of each action in ``log``; ``features`` unused."""
        validate_columns(
            log, ["customer_id", "offer_id", "group", "converted"], what="campaign log"
        )
        known = log[log["converted"].notna()]
        control = known["group"].astype(str).to_numpy() == CONTROL
        offer = known["offer_id"].astype(str).to_numpy()
        self.arms_ = tuple(sorted(set(offer[~control])))
        if not control.any() or not self.arms_:
            raise ModelInputError("campaign log: average effects need control and treated rows")
        action = np.where(control, 0, pd.Index(self.arms_).get_indexer(offer) + 1)
        p = (
            known["propensity"].to_numpy(dtype=float)
            if "propensity" in known.columns and known["propensity"].notna().all()
            else np.ones(len(known))
        )
        w = 1.0 / p
        y = known["converted"].to_numpy(dtype=float)
        has_r = "revenue" in known.columns and known["revenue"].notna().all()
        r = known["revenue"].to_numpy(dtype=float) if has_r else None
        k = len(self.arms_) + 1
        weight = np.bincount(action, weights=w, minlength=k)
        self.mu_ = np.bincount(action, weights=w * y, minlength=k) / weight
        self.mu_revenue_ = (
            np.bincount(action, weights=w * r, minlength=k) / weight if r is not None else None
        )
        self.feature_names_ = []
        self.report_ = {
            "n_train": int(len(known)),
            "n_per_action": {
                name: int((action == j).sum()) for j, name in enumerate((CONTROL, *self.arms_))
            },
            "revenue_modelled": r is not None,
        }
        self.fitted_ = True
        return self

    def predict_arrays(self, features: pd.DataFrame) -> dict[str, np.ndarray | None]:
        """As :meth:`UpliftModel.predict_arrays`, the same row for every customer."""
        self._check_fitted()
        n = len(features)
        mu = np.tile(self.mu_, (n, 1))
        out = {
            "mu": mu,
            "uplift": mu[:, 1:] - mu[:, [0]],
            "mu_revenue": None,
            "uplift_revenue": None,
        }
        if self.mu_revenue_ is not None:
            mr = np.tile(self.mu_revenue_, (n, 1))
            out["mu_revenue"], out["uplift_revenue"] = mr, mr[:, 1:] - mr[:, [0]]
        return out

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """One row per (customer, offer), as :meth:`UpliftModel.predict`."""
        validate_columns(features, ["customer_id"], what="uplift features")
        arrays = self.predict_arrays(features)
        n, k = arrays["uplift"].shape
        return pd.DataFrame(
            {
                "customer_id": np.repeat(features["customer_id"].astype(str).to_numpy(), k),
                "offer_id": np.tile(np.array(self.arms_, dtype=object), n),
                "uplift": arrays["uplift"].ravel(),
                "p_offer": arrays["mu"][:, 1:].ravel(),
                "p_control": np.repeat(arrays["mu"][:, 0], k),
            }
        )
