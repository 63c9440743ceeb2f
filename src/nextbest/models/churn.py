"""Churn classifier: LightGBM on behavioural, CLV and demographic features, calibrated.

Label: the customer makes **no purchase** in the ``horizon_days`` after a
cutoff. Examples come from several rolling cutoffs before ``as_of``; features
use data strictly before each cutoff and labels strictly after it.

Monotone constraints encode what every marketer expects and the behavioural
test checks: with everything else equal, more days since the last purchase
never lowers the churn risk, and more recent activity (window counts and
spend, P(alive), expected purchases) never raises it. Calibration
(:mod:`nextbest.models.calibration`: bounded isotonic, Platt or beta, chosen
by out-of-fold Brier score) is monotone too, so the ordering survives it, and
no probability is exactly 0 or 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier

from nextbest.features.customer import CHANNEL_DAYS
from nextbest.models import compiled
from nextbest.models.base import BaseModel, validate_columns
from nextbest.models.calibration import fit_calibrator
from nextbest.models.tabular import (
    as_matrix,
    check_features,
    fit_estimator,
    model_matrix,
)

# BTYD bookkeeping columns that only restate age; P(alive) already uses them.
EXCLUDED_FEATURES = {
    "T",
    "tenure_days",
    "recency",
    "customer_id",
    "cutoff",
    "label",
    "consent_profiling",
    "expected_purchases",
    "expected_spend",
    "predicted_clv",
}


def monotone_direction(feature: str) -> int:
    """+1: more of it never lowers churn risk; -1: never raises it; 0: free."""
    if feature == "days_since_last" or feature.startswith("days_since_"):
        return 1
    if feature.startswith(("n_purchases_", "spend_", "bought_")) or feature in {
        "p_alive",
        "expected_purchases_h",
        "trend_30_90",
    }:
        return -1
    return 0


def churn_feature_names(frame: pd.DataFrame, demographics: list[str]) -> list[str]:
    """Numeric behavioural + CLV features of ``frame`` plus the demographic columns."""
    names = [
        c
        for c in frame.columns
        if c not in EXCLUDED_FEATURES
        and c not in demographics
        and not c.startswith(("redemptions_", CHANNEL_DAYS))
        and pd.api.types.is_numeric_dtype(frame[c])
    ]
    return names + [d for d in demographics if d in frame.columns]


class ChurnModel(BaseModel):
    """LightGBM churn classifier with a calibration map (bounded isotonic, Platt or beta).

    Parameters
    ----------
    params : dict
        ``LGBMClassifier`` keyword arguments (seeded via ``random_state``).
    monotone : bool
        Apply the monotone constraints of :func:`monotone_direction`.
    """

    FORMAT_VERSION = 1

    def __init__(self, params: dict | None = None, monotone: bool = True) -> None:
        super().__init__()
        self.params = dict(params or {})
        self.monotone = monotone

    def fit(
        self,
        train: pd.DataFrame,
        calibration: pd.DataFrame,
        feature_names: list[str],
        levels: dict[str, list[str]],
    ) -> ChurnModel:
        """Fit LightGBM on ``train`` and the calibration map on ``calibration`` (a later cutoff,
        or held-out customers).

        Both frames need the feature columns and a 0/1 ``label`` (1 = churned).
        """
        for frame, what in ((train, "churn training set"), (calibration, "churn calibration set")):
            validate_columns(frame, ["label"], what=what)
            check_features(frame, feature_names, what)
        self.feature_names_ = list(feature_names)
        self.levels_ = {k: v for k, v in levels.items() if k in feature_names}
        params = dict(self.params)
        if self.monotone:
            params["monotone_constraints"] = [monotone_direction(f) for f in self.feature_names_]
            params["monotone_constraints_method"] = "advanced"
        X = as_matrix(train, self.feature_names_, self.levels_)
        self.classifier_ = fit_estimator(
            LGBMClassifier,
            params,
            X,
            train["label"].to_numpy(dtype="int64"),
            categorical_feature=list(self.levels_) or "auto",
        )
        raw = self._raw(calibration)
        self.calibrator_ = fit_calibrator(raw, calibration["label"].to_numpy(dtype="float64"))
        self.n_train_, self.n_calibration_ = len(train), len(calibration)
        self.fitted_ = True
        return self

    def _raw(self, frame: pd.DataFrame) -> np.ndarray:
        X = model_matrix(frame, self.feature_names_, self.levels_)
        return compiled.predict_estimator(self.classifier_, X)

    def predict_proba(self, frame: pd.DataFrame, calibrated: bool = True) -> np.ndarray:
        """P(churn) per row of ``frame`` (calibrated unless told otherwise)."""
        self._check_fitted()
        check_features(frame, self.feature_names_, "churn features")
        raw = self._raw(frame)
        return self.calibrator_.predict(raw) if calibrated else raw

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``customer_id`` and ``churn_probability``."""
        validate_columns(frame, ["customer_id"], what="churn features")
        return pd.DataFrame(
            {
                "customer_id": frame["customer_id"].astype(str).to_numpy(),
                "churn_probability": self.predict_proba(frame),
            }
        )

    @property
    def calibration_method_(self) -> str:
        """``isotonic``, ``platt`` or ``beta`` (``isotonic`` for models saved before the choice)."""
        return getattr(self.calibrator_, "method", "isotonic")

    def feature_importance(self) -> pd.DataFrame:
        """Gain importance per feature, largest first."""
        self._check_fitted()
        booster = self.classifier_.booster_
        gain = booster.feature_importance(importance_type="gain")
        return (
            pd.DataFrame({"feature": booster.feature_name(), "gain": gain})
            .sort_values("gain", ascending=False)
            .reset_index(drop=True)
        )
