"""The streaming local engine: chunks give the in-memory answer, rejects, atomic output, resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from nextbest.batch import score_dataset
from nextbest.batch.chunks import SCORES_SCHEMA
from nextbest.batch.command import build_job
from nextbest.batch.job import run_local
from nextbest.batch.manifest import work_dir
from nextbest.batch.output import rejects_path
from nextbest.cli.present import score_lines as summary_lines
from nextbest.data import Dataset
from nextbest.data.files import read_table
from nextbest.data.schema import validate_customers, validate_transactions
from nextbest.data.synthetic import synthetic_as_of
from nextbest.errors import BatchError, ResumeError, SchemaError
from tests.batch.batch_helpers import comparable, read_scores

AS_OF = synthetic_as_of()


def _job(
    batch_data,
    bundle,
    output,
    *,
    chunk_size=300,
    history=True,
    resume=False,
    horizon=365,
    transactions=None,
    customers=True,
):
    return build_job(
        None,
        transactions or batch_data["transactions"],
        batch_data["customers"] if customers else None,
        {},
        str(AS_OF.date()),
        horizon,
        output,
        batch_data["history"] if history else None,
        chunk_size,
        resume,
        bundle.catalog,
    )


def test_chunked_run_equals_in_memory_scoring(batch_data, bundle, tmp_path):
    """Five chunks with consent and contact history give exactly the all-in-memory scores."""
    out = tmp_path / "scores.parquet"
    result = run_local(_job(batch_data, bundle, out), bundle)
    assert result.n_chunks >= 4
    got = read_scores(out)
    ds = Dataset(
        "synthetic", batch_data["tx"], validate_customers(read_table(batch_data["customers"]))
    )
    expected = comparable(
        score_dataset(ds, bundle, AS_OF, 365, read_table(batch_data["history"])).scores
    )
    pd.testing.assert_frame_equal(
        got[list(SCORES_SCHEMA.names)],
        expected[list(SCORES_SCHEMA.names)],
        check_exact=True,
        check_dtype=False,
    )
    assert pq.read_schema(out).equals(SCORES_SCHEMA)
    assert (got["as_of"] == AS_OF).all() and (got["horizon_days"] == 365.0).all()
    assert json.loads(got["model_versions"].iloc[0]) == bundle.versions
    assert not work_dir(out).exists() and not rejects_path(out).exists()
    assert result.stats["customers"] == len(got) and result.n_rejects == 0


def test_opted_out_customers_get_the_default_and_no_scores(batch_data, bundle, tmp_path):
    out = tmp_path / "scores.parquet"
    result = run_local(_job(batch_data, bundle, out, history=False), bundle)
    got = read_scores(out)
    gone = got[got["customer_id"].isin(batch_data["opted_out"])]
    assert len(gone) == len(batch_data["opted_out"]) and not gone["consent_profiling"].any()
    assert (gone["action"] == "non_personalised").all() and (
        gone["action_offer_id"] == "NEWSLETTER"
    ).all()
    assert (
        gone[["p_alive", "expected_purchases", "predicted_clv", "churn_probability"]]
        .isna()
        .all()
        .all()
    )
    assert all(o == [] for o in gone["offers"])
    assert all(r[0]["code"] == "CONSENT_OBJECTED" for r in gone["reasons"])
    kept = got[got["consent_profiling"]]
    assert kept["predicted_clv"].notna().all() and (kept["action"] != "non_personalised").all()
    assert result.stats["opted_out"] == len(gone)
    assert result.stats["scored"] == len(kept)


BAD_ROWS = [  # (customer_id, timestamp, amount, expected reason, column)
    ("", "2024-06-01", "10", "missing customer_id", "customer_id"),
    ("R1", "not a date", "10", "unparsable timestamp", "timestamp"),
    ("R1", "", "10", "missing timestamp", "timestamp"),
    ("R2", "2024-06-01", "ten", "unparsable amount", "amount"),
    ("R2", "2024-06-02", "NaN", "missing amount", "amount"),
    ("R2", "2024-06-03", "inf", "non-finite amount", "amount"),
    ("R3", "2025-02-01", "10", f"timestamp on or after as_of {AS_OF.date()}", "timestamp"),
    ("R4", "2024-03-01", "-5", "refund with no purchase by the customer on the same day", "amount"),
    ("R5", "2024-03-02", "-500", "refund larger than the customer's spend that day", "amount"),
]


def test_each_reject_reason_lands_in_the_rejects_file(batch_data, bundle, tmp_path):
    """Bad lines spread over a CSV: each reason, column and input row number is reported; the job
    carries on."""
    good = (
        batch_data["tx"].head(400).astype(str)[["customer_id", "timestamp", "amount", "category"]]
    )
    rows = [dict(r, _expect=None) for r in good.to_dict("records")]
    for k, (cid, ts, amount, reason, column) in enumerate(BAD_ROWS):
        rows.insert(
            20 + 37 * k,
            {
                "customer_id": cid,
                "timestamp": ts,
                "amount": amount,
                "category": "PRODUCE",
                "_expect": (column, reason),
            },
        )
    rows.insert(
        300,
        {
            "customer_id": "R5",
            "timestamp": "2024-03-02",
            "amount": "10",
            "category": "MEAT",
            "_expect": None,
        },
    )  # the purchase the R5 refund exceeds
    rows.insert(350, dict(rows[100], _expect=("customer_id", "exact duplicate row")))
    expected = [(i, *r["_expect"]) for i, r in enumerate(rows) if r["_expect"]]
    frame = pd.DataFrame(rows).drop(columns="_expect")
    src = tmp_path / "tx.csv"
    frame.to_csv(src, index=False)
    out = tmp_path / "scores.parquet"
    result = run_local(
        _job(batch_data, bundle, out, transactions=src, chunk_size=30, history=False), bundle
    )

    rejects = pd.read_parquet(rejects_path(out))
    got = sorted(zip(rejects["row"].tolist(), rejects["column"], rejects["reason"]))
    assert got == expected
    assert set(rejects["reason"]) == {b[3] for b in BAD_ROWS} | {"exact duplicate row"}
    # Same rows, columns and reasons as validating the whole file at once.
    whole = validate_transactions(read_table(src), as_of=AS_OF).rejects
    assert sorted(zip(whole["row"].astype(int), whole["column"], whole["reason"])) == got
    assert {"row", "column", "value", "reason", "customer_id", "timestamp", "amount"} <= set(
        rejects.columns
    )
    assert rejects["row"].dtype == np.int64
    assert result.n_rejects == len(expected) and result.n_input == len(frame)
    assert (
        result.n_chunks > 1 and out.exists() and result.stats["customers"] > 0
    )  # the job carried on
    assert any(
        f"rejected {len(expected):,} lines" in line for line in summary_lines(result, bundle)
    )


def test_missing_required_column_is_fatal_before_any_work(batch_data, bundle, tmp_path):
    src = tmp_path / "tx.parquet"
    batch_data["tx"].drop(columns="amount").to_parquet(src)
    out = tmp_path / "scores.parquet"
    with pytest.raises(SchemaError, match=r"missing required column\(s\) \['amount'\]"):
        _job(batch_data, bundle, out, transactions=src)
    assert not out.exists() and not work_dir(out).exists()


def test_bad_output_suffix_and_empty_input_are_fatal(batch_data, bundle, tmp_path):
    with pytest.raises(BatchError, match=r"must end in \.parquet or \.csv"):
        _job(batch_data, bundle, tmp_path / "scores.xlsx")
    src = tmp_path / "empty.parquet"
    batch_data["tx"].head(0).to_parquet(src)
    with pytest.raises(BatchError, match="no transaction lines"):
        run_local(_job(batch_data, bundle, tmp_path / "s.parquet", transactions=src), bundle)


def _fail_on_chunk(monkeypatch, k: int) -> None:
    """Make scoring chunk number ``k`` (1-based) of this process raise, like a crash."""
    import nextbest.batch.job as job_module

    real, calls = job_module.score_chunk, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == k:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(job_module, "score_chunk", flaky)


def test_failed_run_leaves_the_old_output_and_resume_finishes_identically(
    batch_data, bundle, tmp_path, monkeypatch
):
    fresh = tmp_path / "fresh.parquet"
    run_local(_job(batch_data, bundle, fresh), bundle)

    out = tmp_path / "scores.parquet"
    out.write_bytes(b"yesterday's scores")
    _fail_on_chunk(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_local(_job(batch_data, bundle, out), bundle)
    assert out.read_bytes() == b"yesterday's scores"  # never a partial file at the final path
    manifest = json.loads((work_dir(out) / "manifest.json").read_text())
    assert len(manifest["scores"]) == 2

    monkeypatch.undo()
    with pytest.raises(ResumeError, match="horizon_days: was 365.0, now 180.0"):
        run_local(_job(batch_data, bundle, out, resume=True, horizon=180), bundle)
    result = run_local(_job(batch_data, bundle, out, resume=True), bundle)
    assert result.resumed_chunks > 0
    assert out.read_bytes() == fresh.read_bytes()
    assert not work_dir(out).exists()


def test_a_new_run_without_resume_discards_unfinished_work(
    batch_data, bundle, tmp_path, monkeypatch
):
    out = tmp_path / "scores.parquet"
    _fail_on_chunk(monkeypatch, 2)
    with pytest.raises(RuntimeError):
        run_local(_job(batch_data, bundle, out), bundle)
    monkeypatch.undo()
    notes = []
    from nextbest.batch.progress import Reporter

    result = run_local(_job(batch_data, bundle, out), bundle, Reporter(notes.append))
    assert result.resumed_chunks == 0 and out.exists()
    assert any("discarding the unfinished run" in n for n in notes)


def test_csv_output_has_the_same_scores_with_json_lists(batch_data, bundle, tmp_path):
    pq_out, csv_out = tmp_path / "s.parquet", tmp_path / "s.csv"
    run_local(_job(batch_data, bundle, pq_out, history=False), bundle)
    run_local(_job(batch_data, bundle, csv_out, history=False), bundle)
    a, b = read_scores(pq_out), read_scores(csv_out)
    assert list(b.columns) == list(SCORES_SCHEMA.names)
    assert a["customer_id"].tolist() == b["customer_id"].tolist()
    assert (
        a["offers"].tolist() == b["offers"].tolist()
        and a["reasons"].tolist() == b["reasons"].tolist()
    )
    np.testing.assert_allclose(a["predicted_clv"], b["predicted_clv"], rtol=1e-12)
    assert (b["model_versions"] == a["model_versions"]).all()


def test_plain_progress_lines_when_not_on_a_terminal():
    from nextbest.batch.progress import Reporter

    lines = []
    r = Reporter(lines.append)
    r.start("scoring", 200, "customers")
    r.advance(100)
    r.advance(100)
    assert lines[0].startswith("scoring: 100/200 customers (50%)") and "ETA" in lines[0]
    assert lines[-1].startswith("scoring: 200/200 customers (100%)")


@pytest.mark.slow
def test_worker_processes_write_the_same_bytes(batch_data, bundle, tmp_path):
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    run_local(_job(batch_data, bundle, one), bundle)
    job = _job(batch_data, bundle, two)
    job.workers = 2
    result = run_local(job, bundle)
    assert result.n_chunks >= 4 and two.read_bytes() == one.read_bytes()


def test_a_channel_column_steers_each_customers_channel(batch_data, bundle, tmp_path):
    """Transactions with a ``channel`` column: chunks still equal in-memory scoring, and each
    customer is reached more often where they buy than when the column is absent."""
    tx = batch_data["tx"].copy()
    ids = np.sort(tx["customer_id"].unique())
    in_app = set(ids[::2].tolist())
    tx["channel"] = np.where(tx["customer_id"].isin(in_app), "app", "email")
    src = tmp_path / "tx.parquet"
    tx.to_parquet(src, index=False)
    out = tmp_path / "scores.parquet"
    run_local(_job(batch_data, bundle, out, transactions=src), bundle)
    got = read_scores(out)
    ds = Dataset("synthetic", tx, validate_customers(read_table(batch_data["customers"])))
    expected = comparable(
        score_dataset(ds, bundle, AS_OF, 365, read_table(batch_data["history"])).scores
    )
    names = list(SCORES_SCHEMA.names)
    pd.testing.assert_frame_equal(got[names], expected[names], check_exact=True, check_dtype=False)

    plain_out = tmp_path / "plain.parquet"
    run_local(_job(batch_data, bundle, plain_out), bundle)
    plain = read_scores(plain_out)
    app_buyer = got["customer_id"].isin(in_app)

    def share(frame, who, channel):
        sent = frame[who & (frame["action"] == "cross_sell")]
        return (sent["channel"] == channel).mean()

    assert share(got, app_buyer, "app") > share(plain, app_buyer, "app")
    assert share(got, ~app_buyer, "email") > share(plain, ~app_buyer, "email")
    codes = {r["code"] for rs in got["reasons"] for r in rs}
    assert "CHANNEL_PREFERENCE" in codes
    # Every listed offer names the channel it would go out on; the action's is its offer's.
    catalog_channel = {o.offer_id: o.channel for o in bundle.catalog.offers}
    for action, offer_id, channel, offers in got[
        ["action", "action_offer_id", "channel", "offers"]
    ].itertuples(index=False):
        assert all(o["channel"] == catalog_channel[o["offer_id"]] for o in offers)
        if action == "cross_sell" and offers and offers[0]["offer_id"] == offer_id:
            assert offers[0]["channel"] == channel
