"""Next-best-offer classifier: P(customer buys the offer's category in the next window).

One LightGBM over (customer, offer) pairs, trained as **cross-sell**: a pair
is an example at a cutoff only if the customer did not buy the offer's
category in the ``prior_window_days`` before it; the label is whether they
bought it in the ``label_window_days`` after. Pair features: the customer's
behaviour and category mix, their history with this category (share of
spend, days since last bought, coupon redemptions in it), the category's
current popularity, the offer itself (categorical) and campaign response
(Complete Journey). The model adds one learned pair feature itself,
``cat_affinity``: how much more often than average customers with this
customer's category mix buy the offer's category (co-purchase lift learned
at fit time from the training rows, :mod:`nextbest.models.affinity`).

Baselines (:func:`popularity_scores`, :func:`last_bought_scores`): rank by
how many customers bought the category lately, or by how recently this
customer bought it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier

from nextbest.features.campaigns import CAMPAIGN_FEATURES
from nextbest.features.customer import category_key
from nextbest.models import compiled
from nextbest.models.affinity import CategoryAffinity, share_keys
from nextbest.models.base import BaseModel, validate_columns
from nextbest.models.tabular import (
    as_matrix,
    check_features,
    fit_estimator,
    model_matrix,
)

CUSTOMER_FEATURES = (
    "days_since_last",
    "n_purchases",
    "avg_spend",
    "n_purchases_30d",
    "n_purchases_90d",
    "spend_90d",
    "ipt_mean_days",
    "trend_30_90",
    "tenure_days",
    "spend_trend_30_90",
    "spend_ew_30d",
    "active_weeks_13w",
    "basket_trend_90d",
    "n_categories",
    "n_categories_90d",
)
PAIR_FEATURES = (
    "cat_share",
    "cat_days_since",
    "cat_ever_bought",
    "cat_popularity_30d",
    "cat_redemptions",
    "cat_n_days",
    "cat_rate_30d",
    "cat_overdue",
)
AFFINITY_FEATURE = "cat_affinity"
"""The pair feature the model derives itself from its fitted lift (not a column of
:func:`offer_pairs`)."""


def offer_pairs(
    features: pd.DataFrame,
    offers,
    popularity: dict[str, float],
    mask: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per (customer, offer) with customer, category and offer features.

    Rows are offer-major: all customers for the first offer, then the second...
    With ``mask`` (n customers x m offers, bool) only the pairs where it is
    true are built, in the same order (scoring builds only eligible pairs).

    Parameters
    ----------
    features : DataFrame
        Customer feature rows (:func:`nextbest.features.build.features_at`):
        ``share_*`` and ``days_since_*`` of every offer category, campaign
        features and ``redemptions_*`` when known (0 otherwise).
    offers : sequence of Offer
    popularity : dict
        Category -> share of customers who bought it in the last 30 days.
    mask : numpy.ndarray, optional
        Which (customer, offer) pairs to build; default all.
    """
    parts = []
    base = _customer_base(features)
    for j, offer in enumerate(offers):
        rows = slice(None) if mask is None else np.flatnonzero(mask[:, j])
        part = base.iloc[rows].reset_index(drop=True)
        for name, value in _pair_values(features, offer, popularity).items():
            part[name] = value[rows] if isinstance(value, np.ndarray) else value
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _customer_base(features: pd.DataFrame) -> pd.DataFrame:
    """The customer part of every pair: behaviour, category mix, campaign response, demographics."""
    share_cols = [c for c in features.columns if c.startswith("share_")]
    base = features[
        ["customer_id", *[c for c in CUSTOMER_FEATURES if c in features.columns], *share_cols]
    ].copy()
    for c in CAMPAIGN_FEATURES:
        base[c] = features[c].to_numpy(dtype=float) if c in features.columns else 0.0
    for c, dtype in features.dtypes.items():
        if c != "customer_id" and _is_text(dtype):
            base[c] = features[c].to_numpy()
    return base.reset_index(drop=True)


def _is_text(dtype) -> bool:
    """Object, categorical or string dtype (from the dtype alone: no look at the values)."""
    return (
        getattr(dtype, "kind", None) == "O"
        or isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
    )


def _pair_values(features: pd.DataFrame, offer, popularity: dict[str, float]) -> dict:
    """The offer's own columns for every customer: arrays (n,) or scalars.

    Besides share, recency and redemptions of the offer's category: ``cat_n_days`` (purchase
    days with it), ``cat_rate_30d`` (those per 30 days of tenure), ``cat_overdue`` (days since
    it times that rate: about how many of the customer's usual gaps have passed; NaN if never
    bought).
    """
    key = category_key(offer.category)
    days = _column(features, f"days_since_{key}", np.nan)
    n_days = _column(features, f"n_days_{key}", 0.0)
    tenure = np.maximum(_column(features, "tenure_days", np.nan), 1.0)
    rate = n_days / tenure

    return {
        "offer_id": offer.offer_id,
        "category": offer.category,
        "cat_share": _column(features, f"share_{key}", 0.0),
        "cat_days_since": days,
        "cat_ever_bought": (~np.isnan(days)).astype(float),
        "cat_popularity_30d": float(popularity.get(offer.category, 0.0)),
        "cat_redemptions": _column(features, f"redemptions_{key}", 0.0),
        "cat_n_days": n_days,
        "cat_rate_30d": 30.0 * rate,
        "cat_overdue": days * rate,
    }


def _column(features: pd.DataFrame, name: str, default: float) -> np.ndarray:
    if name in features.columns:
        return features[name].to_numpy(dtype=float)
    return np.full(len(features), default)


def offer_feature_names(pairs: pd.DataFrame, demographics: list[str]) -> list[str]:
    names = [
        c
        for c in pairs.columns
        if c in CUSTOMER_FEATURES
        or c.startswith("share_")
        or c in PAIR_FEATURES
        or c in CAMPAIGN_FEATURES
    ]
    return ["offer_id", *names, *[d for d in demographics if d in pairs.columns]]


def popularity_scores(pairs: pd.DataFrame) -> np.ndarray:
    """Baseline: the category's recent popularity (same ranking for everyone)."""
    return pairs["cat_popularity_30d"].to_numpy(dtype=float)


def last_bought_scores(pairs: pd.DataFrame) -> np.ndarray:
    """Baseline: categories the customer bought most recently first; never-bought last (by
    popularity)."""
    days = pairs["cat_days_since"].to_numpy(dtype=float)
    return np.where(np.isnan(days), -1e6 + pairs["cat_popularity_30d"].to_numpy(dtype=float), -days)


class OfferModel(BaseModel):
    """LightGBM P(convert) per (customer, offer) pair.

    Parameters
    ----------
    params : dict, optional
        LightGBM parameters (:func:`nextbest.models.tabular.fit_estimator`).
    category_affinity : bool
        Learn the category lift at fit time and add ``cat_affinity`` to the features (when the
        pairs carry ``share_*`` columns).

    Format 2 added the lift (``affinity_``); a format-1 file loads as a model without it.
    """

    FORMAT_VERSION = 2
    OLDER_FORMATS = (1,)

    def __init__(self, params: dict | None = None, category_affinity: bool = True) -> None:
        super().__init__()
        self.params = dict(params or {})
        self.category_affinity = bool(category_affinity)
        self.affinity_: CategoryAffinity | None = None

    def _upgrade(self, format_version: int) -> None:
        if format_version < 2:  # saved before the category lift existed
            self.category_affinity = False
            self.affinity_ = None

    def fit(
        self,
        pairs: pd.DataFrame,
        feature_names: list[str],
        levels: dict[str, list[str]],
    ) -> OfferModel:
        """Fit on training pairs with a 0/1 ``label`` (1 = bought the category in the window).

        With ``category_affinity`` the category lift is learned from these pairs' customer rows
        only (one per customer and ``cutoff``) and ``cat_affinity`` is appended to
        ``feature_names``.
        """
        validate_columns(pairs, ["label", "offer_id"], what="offer training pairs")
        names = [n for n in feature_names if n != AFFINITY_FEATURE]
        check_features(pairs, names, "offer training pairs")
        self.affinity_ = None
        if self.category_affinity and share_keys(pairs):
            validate_columns(pairs, ["category"], what="offer training pairs")
            keys = [c for c in ("customer_id", "cutoff") if c in pairs.columns]
            self.affinity_ = CategoryAffinity.fit(pairs[~pairs.duplicated(keys)])
            names.append(AFFINITY_FEATURE)
        self.feature_names_ = names
        self.levels_ = {k: v for k, v in levels.items() if k in names}
        X = as_matrix(self._with_affinity(pairs), self.feature_names_, self.levels_)
        self.classifier_ = fit_estimator(
            LGBMClassifier,
            self.params,
            X,
            pairs["label"].to_numpy(dtype="int64"),
            categorical_feature=list(self.levels_) or "auto",
        )
        self.n_train_ = len(pairs)
        self.fitted_ = True
        return self

    def _with_affinity(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """``pairs`` with this model's ``cat_affinity`` (a new frame; as given without a lift)."""
        if self.affinity_ is None:
            return pairs
        validate_columns(pairs, ["category"], what="offer pairs")
        aff = self.affinity_
        return pairs.assign(
            **{AFFINITY_FEATURE: aff.values(aff.shares(pairs), aff.codes(pairs["category"]))}
        )

    def predict_proba(self, pairs: pd.DataFrame) -> np.ndarray:
        """P(convert) of each pair (:func:`offer_pairs` rows; ``category`` when the model has a
        lift)."""
        self._check_fitted()
        names = [n for n in self.feature_names_ if n != AFFINITY_FEATURE]
        check_features(pairs, names, "offer pairs")
        X = as_matrix(self._with_affinity(pairs), self.feature_names_, self.levels_)
        return self.classifier_.predict_proba(X)[:, 1]

    def predict_offers(
        self,
        features: pd.DataFrame,
        offers,
        popularity: dict[str, float],
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """P(convert) of (customer, offer) pairs straight from customer feature rows.

        The same values as ``predict_proba(offer_pairs(features, offers, popularity, mask))``,
        in the same (offer-major) order, without building the pair frame: customer columns are
        encoded once per customer (not once per pair) and each offer's block is a float
        matrix handed to the compiled trees (:mod:`nextbest.models.compiled`, LightGBM as the
        fallback). This is the scoring path (batch and service).
        """
        self._check_fitted()
        names = self.feature_names_
        pos = {name: i for i, name in enumerate(names)}
        pair_names = {"offer_id", "category", *PAIR_FEATURES, AFFINITY_FEATURE}
        customer_names = [c for c in names if c not in pair_names]
        # The customer columns straight from the feature rows (what _customer_base would copy;
        # campaign columns a source lacks are 0, as there).
        here = [c for c in customer_names if c in features.columns]
        absent = [c for c in customer_names if c not in features.columns]
        check_features(features, [c for c in absent if c not in CAMPAIGN_FEATURES], "offer pairs")
        aff = self.affinity_
        shares = aff.shares(features) if aff is not None else None
        offer_codes = aff.codes([o.category for o in offers]) if aff is not None else None
        # One customer matrix; each offer writes its own pair columns into it and is predicted on
        # all customers when most are eligible (cheaper than copying the eligible rows out),
        # on a copy of the eligible rows otherwise.
        n = len(features)
        X_all = np.full((n, len(names)), np.nan)
        X_all[:, [pos[c] for c in here]] = model_matrix(features, here, self.levels_)
        X_all[:, [pos[c] for c in absent]] = 0.0
        out = []
        for j, offer in enumerate(offers):
            rows = np.arange(n) if mask is None else np.flatnonzero(mask[:, j])
            if not rows.size:
                continue
            dense = 2 * rows.size >= n
            X = X_all if dense else X_all[rows]
            pair = _pair_values(features, offer, popularity)
            if aff is not None:  # row by row the same floats as _with_affinity
                pair[AFFINITY_FEATURE] = aff.values(shares, offer_codes[j])
            for name, value in pair.items():
                if name not in pos:
                    continue
                if name in self.levels_:  # categorical (offer_id): its code, missing if unseen
                    levels = self.levels_[name]
                    value = float(levels.index(str(value))) if str(value) in levels else np.nan
                X[:, pos[name]] = (
                    value
                    if not isinstance(value, np.ndarray)
                    else (value if dense else value[rows])
                )
            p = compiled.predict_estimator(self.classifier_, X)
            out.append(p[rows] if dense and rows.size < n else p)
        return np.concatenate(out) if out else np.empty(0)

    def predict(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """``customer_id``, ``offer_id``, ``p_convert``."""
        return pd.DataFrame(
            {
                "customer_id": pairs["customer_id"].astype(str).to_numpy(),
                "offer_id": pairs["offer_id"].astype(str).to_numpy(),
                "p_convert": self.predict_proba(pairs),
            }
        )

    def feature_importance(self) -> pd.DataFrame:
        self._check_fitted()
        booster = self.classifier_.booster_
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
