"""Audience export for campaign tools: one CSV per action/offer, consent respected."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from nextbest.batch.audiences import COLUMNS, MARKER, export_audiences
from nextbest.data.synthetic import synthetic_as_of
from nextbest.errors import SchemaError
from tests.batch.batch_helpers import read_scores


def _read(out_dir):
    return {
        p.name: pd.read_csv(p, dtype={"customer_id": str, "reason_code": str, "reason": str})
        for p in sorted(out_dir.glob("*.csv"))
    }


def test_one_file_per_action_and_offer_with_values_and_reasons(scored, bundle, tmp_path):
    scores = read_scores(scored)
    result = export_audiences(scored, tmp_path / "aud", bundle.catalog)
    files = _read(tmp_path / "aud")
    assert set(files) == set(result.files)
    expected = (
        scores[scores["action"] != "no_action"]
        .groupby(["action", "action_offer_id"])
        .size()
        .rename("n")
        .reset_index()
    )
    assert {f"{a}-{o}.csv": n for a, o, n in expected.itertuples(index=False)} == result.files
    assert result.not_exported == {"no_action": int((scores["action"] == "no_action").sum())}
    by_id = scores.set_index("customer_id")
    for name, frame in files.items():
        assert tuple(frame.columns) == COLUMNS
        assert frame["customer_id"].is_unique
        action = name.split("-", 1)[0]
        rows = by_id.loc[frame["customer_id"]]
        assert (rows["action"] == action).all() and (
            rows["action_offer_id"].to_numpy() == frame["offer_id"]
        ).all()
        if action == "cross_sell":
            top = np.array([o[0]["expected_value"] for o in rows["offers"]])
            np.testing.assert_allclose(frame["expected_value"], top)
            assert (frame["reason_code"] == "CROSS_SELL_PROPENSITY").all()
        if action == "retention":
            r = bundle.catalog.retention
            ev = rows["churn_probability"] * r.uplift * rows["predicted_clv"] - r.cost
            np.testing.assert_allclose(frame["expected_value"], ev.round(4).to_numpy())
        if action != "non_personalised":
            assert frame["expected_value"].is_monotonic_decreasing
            assert frame["reason"].notna().all()
    meta = json.loads((tmp_path / "aud" / MARKER).read_text())
    assert meta["as_of"].startswith(str(synthetic_as_of().date())) and meta["horizon_days"] == 365.0
    assert meta["model_versions"] == bundle.versions


def test_opted_out_customers_only_in_the_non_personalised_list(
    scored, batch_data, bundle, tmp_path
):
    files = _read(export_audiences(scored, tmp_path / "aud", bundle.catalog).out_dir)
    opted_out = batch_data["opted_out"]
    default = files.pop(f"non_personalised-{bundle.catalog.default_action.offer_id}.csv")
    assert opted_out <= set(default["customer_id"])
    assert (
        default["expected_value"].isna().all() and default["reason"].isna().all()
    )  # no model output
    assert default["reason_code"].isna().all()
    for frame in files.values():
        assert not opted_out & set(frame["customer_id"])


def test_a_personalised_row_of_an_opted_out_customer_is_never_exported_as_such(
    scored, batch_data, bundle, tmp_path
):
    table = pq.read_table(scored).to_pandas()
    victim = sorted(batch_data["opted_out"])[0]
    i = table.index[table["customer_id"] == victim][0]
    table.loc[i, "action"] = "cross_sell"
    table.loc[i, "action_offer_id"] = "XS-MEAT"
    doctored = tmp_path / "doctored.parquet"
    table.to_parquet(doctored)
    result = export_audiences(doctored, tmp_path / "aud", bundle.catalog)
    files = _read(tmp_path / "aud")
    assert result.moved_to_non_personalised == 1
    assert victim in set(files["non_personalised-NEWSLETTER.csv"]["customer_id"])
    assert all(
        victim not in set(f["customer_id"]) for n, f in files.items() if not n.startswith("non_")
    )


def test_csv_scores_give_the_same_audiences(scored, bundle, tmp_path):
    table = pq.read_table(scored)
    csv = tmp_path / "scores.csv"
    from nextbest.batch.output import csv_frame

    csv_frame(table).to_csv(csv, index=False)
    a = _read(export_audiences(scored, tmp_path / "a", bundle.catalog).out_dir)
    b = _read(export_audiences(csv, tmp_path / "b", bundle.catalog).out_dir)
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])


def test_export_replaces_an_earlier_export_but_not_other_directories(scored, bundle, tmp_path):
    out = tmp_path / "aud"
    export_audiences(scored, out, bundle.catalog)
    (out / "cross_sell-XS-OLD.csv").write_text("customer_id\nstale\n")
    (out / MARKER).write_text("{}")
    export_audiences(scored, out, bundle.catalog)
    assert not (out / "cross_sell-XS-OLD.csv").exists()
    other = tmp_path / "documents"
    other.mkdir()
    (other / "thesis.txt").write_text("precious")
    with pytest.raises(SchemaError, match="not an earlier audience export"):
        export_audiences(scored, other, bundle.catalog)
    assert (other / "thesis.txt").read_text() == "precious"
    (other / "orders.csv").write_text("customer_id,amount\nA,1\n")
    with pytest.raises(SchemaError, match="not a nextbest scores file"):
        export_audiences(other / "orders.csv", tmp_path / "x", bundle.catalog)
