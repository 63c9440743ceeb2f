"""Control group and exploration reach every batch output: scores, reasons and audiences."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from nextbest.batch import customer_rows
from nextbest.batch.audiences import CONTROL_FILE, export_audiences
from nextbest.batch.output import write_scores
from nextbest.scoring import score
from tests.batch.conftest import AS_OF, _dataset


def test_control_group_and_exploration_reach_every_output(bundle, batch_data, tmp_path):
    """Groups and propensities in the score frame; the holdout gets nothing; audiences split."""
    policy = {**bundle.catalog.policy, "control_share": 0.1, "explore_share": 0.2}
    models = dataclasses.replace(bundle, catalog=dataclasses.replace(bundle.catalog, policy=policy))
    features, popularity, _, _ = customer_rows(
        _dataset(batch_data), AS_OF, 7.0, models.catalog.categories
    )
    scores = score(features, models, 365.0, popularity, as_of=AS_OF)
    consent = scores["consent_profiling"].to_numpy()
    groups = scores.loc[consent, "group"].value_counts(normalize=True)
    assert 0.05 < groups["control"] < 0.15 and 0.1 < groups["explore"] < 0.3
    control = scores["group"] == "control"
    assert (scores.loc[control, "action"] == "no_action").all()
    assert np.allclose(scores.loc[control, "propensity"], 0.1)
    assert (scores.loc[~consent, "group"] == "treatment").all()
    first = scores.loc[control, "reasons"].map(lambda r: r[0]["code"])
    assert (first == "RANDOMIZED_CONTROL_GROUP").all()
    out = write_scores(scores, tmp_path / "s.parquet")
    result = export_audiences(out, tmp_path / "aud", models.catalog)
    assert result.files[CONTROL_FILE] == int(control.sum())
    held = pd.read_csv(tmp_path / "aud" / CONTROL_FILE, dtype={"customer_id": str})
    assert set(held["customer_id"]) == set(scores.loc[control, "customer_id"])
    assert set(held["group"]) == {"control"}
