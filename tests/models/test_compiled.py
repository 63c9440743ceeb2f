"""Compiled trees (lleaves) predict what LightGBM predicts, are cached, and fall back cleanly."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier

from nextbest.models import compiled


@pytest.fixture(scope="module")
def classifier():
    """A binary LightGBM with a categorical feature and missing values, like the offer model."""
    rng = np.random.default_rng(7)
    n = 6_000
    X = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.exponential(size=n),
            "offer": pd.Categorical(
                rng.choice(list("abcdefg"), size=n), categories=list("abcdefg")
            ),
        }
    )
    X.loc[rng.random(n) < 0.1, "x2"] = np.nan
    logit = X["x1"] - X["x2"].fillna(1) + (X["offer"].cat.codes % 3 - 1)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    clf = LGBMClassifier(
        n_estimators=40, num_leaves=15, learning_rate=0.1, random_state=1, n_jobs=1, verbose=-1
    )
    clf.fit(X, y, categorical_feature=["offer"])
    codes = X["offer"].cat.codes.to_numpy().astype(float)
    codes[:50] = np.nan  # unseen / missing category
    matrix = np.column_stack([X["x1"], X["x2"], codes])
    return clf, matrix


@pytest.fixture()
def fresh(nb_home, monkeypatch):
    """An empty in-process cache and a private NEXTBEST_HOME (the on-disk cache lives there)."""
    monkeypatch.setattr(compiled, "_compiled", {})
    monkeypatch.delenv("NEXTBEST_COMPILED_TREES", raising=False)
    return nb_home


def test_compiled_predictions_equal_lightgbm(classifier, fresh):
    clf, X = classifier
    ours = compiled.predict_estimator(clf, X)
    theirs = clf.booster_.predict(X)
    assert compiled._compiled and all(
        m is not None for m in compiled._compiled.values()
    )  # it did compile
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    assert np.isfinite(ours).all() and ((ours > 0) & (ours < 1)).all()


def test_compiled_library_is_cached_on_disk_and_reused(classifier, fresh, monkeypatch):
    clf, X = classifier
    compiled.predict_estimator(clf, X)
    libraries = list((fresh / "cache" / "lleaves").glob("*.so"))
    assert len(libraries) == 1
    stamp = libraries[0].stat().st_mtime_ns
    monkeypatch.setattr(compiled, "_compiled", {})  # a new process: nothing in memory
    again = compiled.predict_estimator(clf, X)
    assert libraries[0].stat().st_mtime_ns == stamp  # loaded, not compiled again
    assert not list((fresh / "cache" / "lleaves").glob("*.tmp"))
    np.testing.assert_allclose(again, clf.booster_.predict(X), rtol=1e-12, atol=1e-15)


def test_small_batches_and_switched_off_use_lightgbm(classifier, fresh, monkeypatch):
    clf, X = classifier
    small = X[: compiled.MIN_ROWS - 1]
    np.testing.assert_array_equal(
        compiled.predict_estimator(clf, small), clf.booster_.predict(small)
    )
    assert compiled._compiled == {}
    monkeypatch.setenv("NEXTBEST_COMPILED_TREES", "0")
    np.testing.assert_array_equal(compiled.predict_estimator(clf, X), clf.booster_.predict(X))
    assert compiled._compiled == {}


def test_compile_failure_falls_back_to_lightgbm_with_one_warning(
    classifier, fresh, monkeypatch, caplog
):
    clf, X = classifier
    monkeypatch.setitem(sys.modules, "lleaves", None)  # import fails, as without the package
    with caplog.at_level(logging.WARNING, logger="nextbest.models.compiled"):
        first = compiled.predict_estimator(clf, X)
        second = compiled.predict_estimator(clf, X)
    np.testing.assert_array_equal(first, clf.booster_.predict(X))
    np.testing.assert_array_equal(second, first)
    warnings = [r for r in caplog.records if "compiled trees unavailable" in r.getMessage()]
    assert len(warnings) == 1


def test_single_threaded_reaches_every_estimator_inside_the_models():
    """Estimators held directly, in dicts and lists, and inside sub-models all predict with one
    thread afterwards; other attributes are left alone."""
    from types import SimpleNamespace

    from lightgbm import LGBMRegressor
    from sklearn.ensemble import RandomForestClassifier

    direct = LGBMClassifier(n_jobs=2)
    in_dict = {"treated": LGBMRegressor(n_jobs=4), "control": LGBMRegressor()}
    in_list = [RandomForestClassifier(n_jobs=3)]
    value = SimpleNamespace(
        purchases_regressor_=LGBMRegressor(n_jobs=2),
        count_model=SimpleNamespace(params={"n_jobs": 7}),
    )
    uplift = SimpleNamespace(learner=SimpleNamespace(models_=in_dict, forests_=in_list))
    compiled.single_threaded(value, SimpleNamespace(classifier_=direct), uplift, None)
    estimators = [direct, *in_dict.values(), *in_list, value.purchases_regressor_]
    assert [e.get_params()["n_jobs"] for e in estimators] == [1] * len(estimators)
    assert value.count_model.params == {"n_jobs": 7}
