"""The offer model's category affinity: learned from the training rows only, the scoring path
equal to the pair path with it, files saved before it still loading."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from nextbest.decision.catalog import parse_catalog
from nextbest.errors import ArtifactMismatchError, ModelInputError
from nextbest.models.affinity import CategoryAffinity
from nextbest.models.offers import (
    AFFINITY_FEATURE,
    OfferModel,
    offer_feature_names,
    offer_pairs,
)

PARAMS = {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 5, "verbose": -1, "n_jobs": 1}
CATS = ("MEAT", "DELI", "FLORAL")


def _catalog(categories=CATS):
    return parse_catalog(
        {
            "default_action": {"offer_id": "D", "name": "newsletter"},
            "offers": [
                {"offer_id": f"X-{c}", "name": c, "category": c, "value": 5, "cost": 1}
                for c in categories
            ],
        }
    )


def _features(n: int, seed: int) -> pd.DataFrame:
    """Customers whose MEAT and DELI buying go together; FLORAL on its own."""
    rng = np.random.default_rng(seed)
    meat = rng.random(n) < 0.5
    deli = np.where(meat, rng.random(n) < 0.8, rng.random(n) < 0.2)
    floral = rng.random(n) < 0.3
    spend = np.column_stack([meat, deli, floral]) * rng.uniform(1, 10, (n, 3))
    total = spend.sum(axis=1) + rng.uniform(5, 20, n)  # plus uncategorised spend
    out = {"customer_id": [f"c{i}" for i in range(n)], "tenure_days": rng.uniform(60, 400, n)}
    for j, key in enumerate(("meat", "deli", "floral")):
        bought = spend[:, j] > 0
        out[f"share_{key}"] = spend[:, j] / total
        out[f"days_since_{key}"] = np.where(bought, rng.uniform(31, 300, n), np.nan)
        out[f"n_days_{key}"] = np.where(bought, rng.integers(1, 20, n), 0).astype(float)
    return pd.DataFrame(out)


def _training_pairs(features: pd.DataFrame, seed: int) -> pd.DataFrame:
    pairs = offer_pairs(features, _catalog().offers, {c: 0.2 for c in CATS})
    rng = np.random.default_rng(seed)
    deli_fan = pairs["share_deli"].to_numpy() > 0
    p = np.where(pairs["category"].eq("MEAT").to_numpy() & deli_fan, 0.7, 0.2)
    return pairs.assign(label=(rng.random(len(pairs)) < p).astype("int64"))


def _fit(pairs: pd.DataFrame, affinity: bool = True) -> OfferModel:
    names = offer_feature_names(pairs, [])
    return OfferModel(PARAMS, category_affinity=affinity).fit(
        pairs, names, {"offer_id": [f"X-{c}" for c in CATS]}
    )


def test_the_lift_is_learned_from_the_training_rows_only_once_per_customer():
    features = _features(400, 0)
    train = _training_pairs(features.iloc[:250].reset_index(drop=True), 1)
    model = _fit(train)
    expected = CategoryAffinity.fit(features.iloc[:250])  # 3 pairs per customer count once
    assert model.affinity_.n_customers == 250
    assert model.affinity_.keys == expected.keys
    np.testing.assert_array_equal(model.affinity_.lift, expected.lift)
    assert model.feature_names_[-1] == AFFINITY_FEATURE
    assert AFFINITY_FEATURE not in train.columns  # the caller's frame is not written to


def test_each_cutoff_of_a_customer_is_a_row_of_the_lift():
    features = _features(100, 2)
    pairs = pd.concat(
        [
            _training_pairs(features, 3).assign(cutoff=pd.Timestamp("2024-01-01")),
            _training_pairs(features, 4).assign(cutoff=pd.Timestamp("2024-02-01")),
        ],
        ignore_index=True,
    )
    assert _fit(pairs).affinity_.n_customers == 200


def test_scoring_path_equals_the_pair_path_with_the_affinity():
    model = _fit(_training_pairs(_features(300, 5), 6))
    assert AFFINITY_FEATURE in model.feature_names_
    features = _features(120, 7)
    features.loc[:4, ["share_meat", "share_deli", "share_floral"]] = 0.0  # no category: NaN
    catalog = _catalog((*CATS, "SEAFOOD"))  # a category the lift has never seen: NaN
    pop = {"MEAT": 0.3, "DELI": 0.2}
    rng = np.random.default_rng(8)
    for mask in (None, rng.random((120, 4)) < 0.3, rng.random((120, 4)) < 0.8):
        fast = model.predict_offers(features, catalog.offers, pop, mask=mask)
        slow = model.predict_proba(offer_pairs(features, catalog.offers, pop, mask=mask))
        assert fast.shape == slow.shape
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=0)


def test_the_affinity_carries_the_planted_cross_sell():
    """MEAT converts among DELI buyers: the lift DELI -> MEAT is above 1 and the model uses it."""
    model = _fit(_training_pairs(_features(600, 9), 10))
    aff = model.affinity_
    meat, deli, floral = (aff.keys.index(k) for k in ("meat", "deli", "floral"))
    assert aff.lift[deli, meat] > 1.2
    assert aff.lift[deli, floral] == pytest.approx(1.0, abs=0.2)  # independent
    imp = model.feature_importance().set_index("feature")["gain"]
    assert imp[AFFINITY_FEATURE] > 0


def test_pairs_without_a_category_are_refused_by_a_model_with_a_lift():
    pairs = _training_pairs(_features(200, 11), 12)
    model = _fit(pairs)
    with pytest.raises(ModelInputError, match=r"missing required column\(s\) \['category'\]"):
        model.predict_proba(pairs.drop(columns="category"))


def test_without_affinity_the_model_has_no_lift_and_needs_no_category():
    pairs = _training_pairs(_features(200, 13), 14)
    model = _fit(pairs, affinity=False)
    assert model.affinity_ is None and AFFINITY_FEATURE not in model.feature_names_
    assert model.predict_proba(pairs.drop(columns="category")).shape == (len(pairs),)


def _rewrite(path, **changes) -> None:
    payload = pickle.loads(path.read_bytes())
    state = dict(payload["state"])
    for key in changes.pop("drop", ()):
        state.pop(key)
    path.write_bytes(pickle.dumps({**payload, **changes, "state": state}))


def test_a_format_1_file_loads_as_a_model_without_affinity(tmp_path):
    """Offer models saved before the lift existed (format 1) still load and score as before."""
    pairs = _training_pairs(_features(200, 15), 16)
    old = _fit(pairs, affinity=False)
    path = old.save(tmp_path / "nbo.pkl")
    _rewrite(path, format_version=1, drop=("affinity_", "category_affinity"))
    loaded = OfferModel.load(path)
    assert loaded.affinity_ is None and loaded.category_affinity is False
    features = _features(50, 17)
    np.testing.assert_array_equal(
        loaded.predict_offers(features, _catalog().offers, {}),
        old.predict_offers(features, _catalog().offers, {}),
    )


def test_a_saved_model_keeps_its_lift_and_an_unknown_format_is_refused(tmp_path):
    pairs = _training_pairs(_features(200, 18), 19)
    model = _fit(pairs)
    loaded = OfferModel.load(model.save(tmp_path / "nbo.pkl"))
    np.testing.assert_array_equal(loaded.affinity_.lift, model.affinity_.lift)
    np.testing.assert_array_equal(loaded.predict_proba(pairs), model.predict_proba(pairs))
    _rewrite(tmp_path / "nbo.pkl", format_version=3)
    with pytest.raises(ArtifactMismatchError, match="saved as OfferModel v3, expected OfferModel"):
        OfferModel.load(tmp_path / "nbo.pkl")
