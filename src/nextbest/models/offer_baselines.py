"""Baseline offer policies as offer models: last-bought or popularity, with their own conversion
rates.

When no learned offer model beats the simple rankings on the test fold it is
not promoted - but customers should still get a decision. A
:class:`BaselineOfferModel` is the best simple ranking packaged as an offer
model (the same ``predict_offers`` / ``predict_proba`` / ``levels_`` as
:class:`~nextbest.models.offers.OfferModel`), so scoring, batch and the
service use it unchanged until a learned model passes the gate:

* ``last_bought`` - a customer is more likely to come back to a category they
  bought recently. ``P(convert)`` is the empirical conversion rate of the offer
  among customers in the same days-since-last-bought band (30-44, 45-59,
  60-89, 90-179, 180+ days, never);
* ``popularity`` - everyone gets the offers of the currently most bought
  categories; ``P(convert)`` is the offer's empirical conversion rate.

Rates come from the training pairs (cross-sell pairs of the rolling cutoffs,
label = bought the category in the window); each band's rate is shrunk
towards the offer's overall rate with ``prior`` pseudo-pairs, so a thin band
does not get an extreme rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.errors import ConfigError
from nextbest.features.customer import category_key
from nextbest.models.base import BaseModel, validate_columns

POLICIES = ("last_bought", "popularity")
POLICY_NAMES = {"last_bought": "last-bought", "popularity": "popularity"}
# Days-since-last-bought band edges (days); NaN (never bought) is its own band.
BAND_EDGES = (45.0, 60.0, 90.0, 180.0)
REASON_CODE = "BASELINE_OFFER_POLICY"


def _bands(days: np.ndarray) -> np.ndarray:
    """Band index per pair: 0..len(BAND_EDGES) by days since, len(BAND_EDGES) + 1 = never."""
    days = np.asarray(days, dtype="float64")
    band = np.searchsorted(np.asarray(BAND_EDGES), np.nan_to_num(days, nan=0.0), side="right")
    return np.where(np.isnan(days), len(BAND_EDGES) + 1, band)


class BaselineOfferModel(BaseModel):
    """A simple ranking with empirical conversion rates, behind the offer-model interface.

    Parameters
    ----------
    policy : {"last_bought", "popularity"}
    prior : float
        Pseudo-pairs shrinking each band's rate towards the offer's overall rate.
    """

    FORMAT_VERSION = 1

    def __init__(self, policy: str = "last_bought", prior: float = 20.0) -> None:
        super().__init__()
        if policy not in POLICIES:
            raise ConfigError(f"unknown baseline offer policy {policy!r}; choose from {POLICIES}")
        self.policy = policy
        self.prior = float(prior)

    def fit(self, pairs: pd.DataFrame, offer_ids: list[str]) -> BaselineOfferModel:
        """Conversion rates per offer (and band) from cross-sell pairs with a 0/1 ``label``."""
        validate_columns(pairs, ["offer_id", "label", "cat_days_since"], what="offer pairs")
        n_bands = len(BAND_EDGES) + 2
        self.levels_ = {"offer_id": list(offer_ids)}
        self.feature_names_ = ["offer_id", "cat_days_since"]
        y = pairs["label"].to_numpy(dtype="float64")
        overall = float(y.mean()) if len(y) else 0.0
        offer = pd.Index(offer_ids).get_indexer(pairs["offer_id"].astype(str))
        known = offer >= 0
        m = len(offer_ids)
        n_offer = np.bincount(offer[known], minlength=m).astype(float)
        hits_offer = np.bincount(offer[known], weights=y[known], minlength=m)
        offer_rate = (hits_offer + self.prior * overall) / (n_offer + self.prior)
        rates = np.repeat(offer_rate[:, None], n_bands, axis=1)
        if self.policy == "last_bought":
            band = _bands(pairs["cat_days_since"].to_numpy())[known]
            flat = offer[known] * n_bands + band
            n = np.bincount(flat, minlength=m * n_bands).reshape(m, n_bands)
            hits = np.bincount(flat, weights=y[known], minlength=m * n_bands).reshape(m, n_bands)
            rates = (hits + self.prior * offer_rate[:, None]) / (n + self.prior)
        self.rates_ = rates
        self.n_train_ = int(known.sum())
        self.fitted_ = True
        return self

    @property
    def display_name(self) -> str:
        return f"{POLICY_NAMES[self.policy]} baseline policy"

    @property
    def decision_reason(self) -> dict[str, str]:
        """The reason every cross-sell decision of this policy carries."""
        how = (
            "offers ranked by how recently the customer bought the category"
            if self.policy == "last_bought"
            else "offers ranked by how many customers bought the category lately"
        )
        return {
            "code": REASON_CODE,
            "text": f"{how} (the {POLICY_NAMES[self.policy]} policy: no learned offer model "
            "beat it yet); P(buys) is that policy's past conversion rate",
        }

    def _rates(self, offer_index: np.ndarray, days: np.ndarray) -> np.ndarray:
        self._check_fitted()
        band = _bands(days) if self.policy == "last_bought" else np.zeros(len(days), dtype=int)
        out = np.full(len(offer_index), np.nan)
        ok = offer_index >= 0
        out[ok] = self.rates_[offer_index[ok], band[ok]]
        return out

    def predict_proba(self, pairs: pd.DataFrame) -> np.ndarray:
        """P(convert) of each pair: its offer's (and band's) conversion rate."""
        validate_columns(pairs, ["offer_id", "cat_days_since"], what="offer pairs")
        offer = pd.Index(self.levels_["offer_id"]).get_indexer(pairs["offer_id"].astype(str))
        return self._rates(offer, pairs["cat_days_since"].to_numpy(dtype="float64"))

    def predict_offers(
        self,
        features: pd.DataFrame,
        offers,
        popularity: dict[str, float],
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """P(convert) of (customer, offer) pairs in offer-major order, as
        :meth:`nextbest.models.offers.OfferModel.predict_offers`."""
        known = self.levels_["offer_id"]
        n = len(features)
        out = []
        for j, offer in enumerate(offers):
            rows = np.arange(n) if mask is None else np.flatnonzero(mask[:, j])
            if not rows.size:
                continue
            col = f"days_since_{category_key(offer.category)}"
            days = (
                features[col].to_numpy(dtype="float64")[rows]
                if col in features.columns
                else np.full(rows.size, np.nan)
            )
            index = known.index(offer.offer_id) if offer.offer_id in known else -1
            out.append(self._rates(np.full(rows.size, index), days))
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
        """No learned features: the policy's conversion rates per offer and band instead."""
        self._check_fitted()
        edges = [int(e) for e in BAND_EDGES]
        bands = [
            f"<{edges[0]}d",
            *(f"{a}-{b - 1}d" for a, b in zip(edges, edges[1:])),
            f">={edges[-1]}d",
            "never",
        ]
        frame = pd.DataFrame(self.rates_, index=self.levels_["offer_id"], columns=bands)
        return frame.reset_index(names="offer_id")
