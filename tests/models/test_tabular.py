"""The model matrix encodes categoricals exactly as LightGBM does from a pandas frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier

from nextbest.data.completejourney import load_completejourney
from nextbest.models.tabular import SMALL_FRAME, as_matrix, learn_levels, model_matrix


@pytest.fixture(scope="module")
def households():
    """Complete Journey customers with demographics (text categoricals, missing values)."""
    _, customers, _ = load_completejourney(with_extras=False)
    rng = np.random.default_rng(0)
    frame = customers.assign(
        spend=rng.gamma(2.0, 50.0, len(customers)),
        visits=pd.array(rng.integers(0, 30, len(customers)), dtype="Int64"),
        loyal=rng.random(len(customers)) < 0.3,
    )
    frame.loc[frame.index[:5], "visits"] = pd.NA
    return frame.reset_index(drop=True)


def test_model_matrix_predicts_like_lightgbm_on_the_categorical_frame(households):
    cats = ["income", "marital_status", "household_comp", "home_ownership"]
    names = ["spend", "visits", "loyal", *cats]
    train = households.sample(frac=0.6, random_state=1)
    levels = learn_levels(train, cats)
    y = (train["spend"] > train["spend"].median()).astype(int) ^ train["income"].isna()
    model = LGBMClassifier(n_estimators=30, verbose=-1, min_child_samples=5)
    model.fit(as_matrix(train, names, levels), y)

    # Unseen levels and a missing column become missing values, as in as_matrix.
    score = households.copy()
    score.loc[score.index[:20], "income"] = "never seen"
    unknown = score.assign(home_ownership=None)
    frames = {
        "all": (score, score),
        "one row": (score.iloc[[7]], score.iloc[[7]]),
        "small frame, unseen levels": (score.iloc[:SMALL_FRAME], score.iloc[:SMALL_FRAME]),
        "no home_ownership column": (score.drop(columns=["home_ownership"]), unknown),
    }
    for what, (frame, reference) in frames.items():
        expected = model.predict_proba(as_matrix(reference, names, levels))[:, 1]
        X = model_matrix(frame, names, levels)
        assert X.shape == (len(frame), len(names)), what
        got = model.booster_.predict(X)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=what)
    X = model_matrix(score, names, levels)
    assert np.isnan(X[:20, names.index("income")]).all()
    assert np.isnan(X[:5, names.index("visits")]).all()
    assert set(np.unique(X[:, names.index("loyal")])) == {0.0, 1.0}


def test_model_matrix_reads_numbers_stored_as_text(households):
    frame = households.assign(spend=households["spend"].round(2).astype(str))
    frame.loc[frame.index[3], "spend"] = "n/a"
    X = model_matrix(frame, ["spend"], {})
    assert np.isnan(X[3, 0])
    assert X[0, 0] == pytest.approx(float(frame["spend"].iat[0]))


def test_small_frames_are_coded_like_large_ones(households):
    """A request's few rows (dict lookup) get the codes a batch (pandas index) gets."""
    cats = ["income", "marital_status", "household_comp", "kids_count"]
    levels = learn_levels(households.iloc[100:], cats)
    frame = households.copy()
    frame.loc[frame.index[:3], "income"] = "never seen"
    frame["kids_count"] = frame["kids_count"].astype(object)  # not a text dtype: cast to text
    batch = model_matrix(frame, cats, levels)
    assert len(frame) > SMALL_FRAME
    for start in range(0, 4 * SMALL_FRAME, SMALL_FRAME):
        part = frame.iloc[start : start + SMALL_FRAME]
        np.testing.assert_array_equal(
            model_matrix(part, cats, levels), batch[start : start + SMALL_FRAME]
        )
    assert np.isnan(batch[:3, 0]).all() and not np.isnan(batch[3:, 0]).all()
