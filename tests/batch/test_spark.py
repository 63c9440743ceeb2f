"""``--engine spark`` (pyspark ``local[2]``) gives the local engine's scores and rejects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.batch.chunks import SCORES_SCHEMA
from nextbest.batch.command import build_job
from nextbest.batch.job import run_local
from nextbest.batch.manifest import work_dir
from nextbest.batch.output import rejects_path
from nextbest.data.synthetic import synthetic_as_of
from tests.batch.batch_helpers import read_scores

pytest.importorskip("pyspark")
pytestmark = pytest.mark.slow
AS_OF = str(synthetic_as_of().date())


@pytest.fixture(scope="module")
def text_input(batch_data, tmp_path_factory):
    """The test transactions as all-text Parquet (as exported from a CSV) with a few bad lines,
    and a ``channel`` column (the channel preference must be the same on both engines)."""
    frame = batch_data["tx"][["customer_id", "timestamp", "amount", "category"]].astype(str)
    frame["channel"] = np.where(np.arange(len(frame)) % 3 == 0, "app", "email")
    bad = pd.DataFrame(
        {
            "customer_id": ["", "S0001", "S0002", "S0003", "Z9"],
            "timestamp": ["2024-05-01", "garbage", "2024-05-01", "2025-03-01", "2024-04-01"],
            "amount": ["3", "4", "lots", "5", "-2"],
            "category": ["PRODUCE"] * 5,
            "channel": ["app", None, "email", "app", "email"],
        }
    )
    rows = pd.concat(
        [frame.iloc[:1000], bad, frame.iloc[1000:], frame.iloc[[7]]], ignore_index=True
    )
    path = tmp_path_factory.mktemp("spark") / "tx.parquet"
    rows.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def spark():
    """One local[2] session for the module (run_spark uses an active session and leaves it
    running)."""
    from nextbest.batch.spark import spark_session

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBEST_SPARK_DRIVER_MEMORY", "1g")
        session, _ = spark_session("local[2]", n_partitions=4)
    yield session
    session.stop()


def _job(batch_data, bundle, source, out):
    return build_job(
        None,
        source,
        batch_data["customers"],
        {},
        AS_OF,
        365,
        out,
        batch_data["history"],
        400,
        False,
        bundle.catalog,
    )


def test_spark_local2_equals_the_local_engine(spark, text_input, batch_data, bundle, tmp_path):
    from nextbest.batch.spark import run_spark

    local_out, spark_out = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    local = run_local(_job(batch_data, bundle, text_input, local_out), bundle)
    spark = run_spark(_job(batch_data, bundle, text_input, spark_out), bundle)

    a, b = read_scores(local_out), read_scores(spark_out)
    pd.testing.assert_frame_equal(
        a[list(SCORES_SCHEMA.names)], b[list(SCORES_SCHEMA.names)], check_exact=True
    )
    assert spark.stats == local.stats and spark.rejected == local.rejected
    assert any(r["code"] == "CHANNEL_PREFERENCE" for rs in a["reasons"] for r in rs)
    ra, rb = (
        pd.read_parquet(rejects_path(p)).sort_values("row", ignore_index=True)
        for p in (local_out, spark_out)
    )
    assert ra[["row", "column", "reason"]].equals(rb[["row", "column", "reason"]])
    assert len(ra) == 6  # five bad lines and one exact duplicate
    assert not work_dir(spark_out).exists()


def test_spark_reads_and_writes_uris(spark, batch_data, bundle, tmp_path, monkeypatch):
    """A cluster path (here file://): Parquet directory out, rejects beside it, manifest on the
    driver."""
    from nextbest.batch.spark import run_spark

    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "home"))
    tx = batch_data["tx"].head(600)
    src = tmp_path / "in"
    src.mkdir()
    tx.iloc[:300].assign(timestamp=tx["timestamp"].iloc[:300].astype("datetime64[us]")).to_parquet(
        src / "a.parquet"
    )
    bad = tx.iloc[300:].assign(timestamp=tx["timestamp"].iloc[300:].astype("datetime64[us]"))
    bad.iloc[[5], bad.columns.get_loc("amount")] = float("nan")
    bad.to_parquet(src / "b.parquet")
    out = f"file://{tmp_path}/scores/"
    result = run_spark(_job(batch_data, bundle, f"file://{src}", out), bundle)
    got = read_scores(tmp_path / "scores")
    local_out = tmp_path / "local.parquet"
    run_local(_job(batch_data, bundle, src, local_out), bundle)
    pd.testing.assert_frame_equal(got, read_scores(local_out), check_exact=True)
    rejects = pd.read_parquet(tmp_path / "scores.rejects.parquet")
    assert rejects[["row", "reason"]].values.tolist() == [[305, "missing amount"]]
    assert result.n_rejects == 1 and result.stats["customers"] == len(got)
    assert not (tmp_path / "scores.work").exists() and not list(
        (tmp_path / "home").glob("batch-work/*")
    )


def test_spark_rejects_the_lines_of_a_broken_csv_like_the_local_engine(
    spark, batch_data, bundle, tmp_path
):
    """Ragged, quote and NUL lines in a CSV: both engines reject the same rows."""
    from nextbest.batch.spark import run_spark

    frame = batch_data["tx"][["customer_id", "timestamp", "amount", "category"]].head(1500)
    lines = frame.astype(str).to_csv(index=False, header=False).encode().splitlines()
    broken = {
        10: b"S0001,2024-05-01,3,PRODUCE,EXTRA",
        200: b"S0002,2024-05-01",
        400: b'S0003,"2024-05-01,3,PRODUCE',
        600: b"S0004,2024-05-01,3\x00,PRODUCE",
        900: b"S0006,2999-01-01,3,PRODUCE",
    }
    for at, line in sorted(broken.items()):
        lines.insert(at, line)
    src = tmp_path / "tx.csv"
    src.write_bytes(b"customer_id,timestamp,amount,category\n" + b"\n".join(lines) + b"\n")
    local_out, spark_out = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    local = run_local(_job(batch_data, bundle, src, local_out), bundle)
    spark_result = run_spark(_job(batch_data, bundle, src, spark_out), bundle)
    a, b = read_scores(local_out), read_scores(spark_out)
    pd.testing.assert_frame_equal(
        a[list(SCORES_SCHEMA.names)], b[list(SCORES_SCHEMA.names)], check_exact=True
    )
    ra, rb = (
        pd.read_parquet(rejects_path(p)).sort_values("row", ignore_index=True)
        for p in (local_out, spark_out)
    )
    cols = ["row", "line", "column", "value", "reason"]
    assert ra[cols].equals(rb[cols])
    assert ra["row"].tolist() == sorted(broken)
    assert ra["line"].tolist() == [str(r + 2) for r in sorted(broken)]
    assert spark_result.rejected == local.rejected
