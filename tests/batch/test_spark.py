"""``--engine spark`` (pyspark ``local[2]``) gives the local engine's scores and rejects."""

from __future__ import annotations

import pandas as pd
import pytest
from batch_helpers import read_scores

from nextbest.batch.chunks import SCORES_SCHEMA
from nextbest.batch.command import build_job
from nextbest.batch.job import run_local
from nextbest.batch.manifest import work_dir
from nextbest.batch.output import rejects_path
from nextbest.data.synthetic import synthetic_as_of

pytest.importorskip("pyspark")
pytestmark = pytest.mark.slow
AS_OF = str(synthetic_as_of().date())


@pytest.fixture(scope="module")
def text_input(batch_data, tmp_path_factory):
    """The test transactions as all-text Parquet (as exported from a CSV) with a few bad lines."""
    frame = batch_data["tx"][["customer_id", "timestamp", "amount", "category"]].astype(str)
    bad = pd.DataFrame({"customer_id": ["", "S0001", "S0002", "S0003", "Z9"],
                        "timestamp": ["2024-05-01", "garbage", "2024-05-01", "2025-03-01", "2024-04-01"],
                        "amount": ["3", "4", "lots", "5", "-2"], "category": ["PRODUCE"] * 5})
    rows = pd.concat([frame.iloc[:1000], bad, frame.iloc[1000:], frame.iloc[[7]]], ignore_index=True)
    path = tmp_path_factory.mktemp("spark") / "tx.parquet"
    rows.to_parquet(path, index=False)
    return path


def test_spark_local2_equals_the_local_engine(text_input, batch_data, bundle, tmp_path, monkeypatch):
    from nextbest.batch.spark import run_spark

    monkeypatch.setenv("NEXTBEST_SPARK_DRIVER_MEMORY", "1g")

    def job(out):
        return build_job(None, text_input, batch_data["customers"], {}, AS_OF, 365, out, batch_data["history"],
                         400, False, bundle.catalog)

    local_out, spark_out = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    local = run_local(job(local_out), bundle)
    spark = run_spark(job(spark_out), bundle, master="local[2]")

    a, b = read_scores(local_out), read_scores(spark_out)
    pd.testing.assert_frame_equal(a[list(SCORES_SCHEMA.names)], b[list(SCORES_SCHEMA.names)], check_exact=True)
    assert spark.stats == local.stats and spark.rejected == local.rejected
    ra, rb = (pd.read_parquet(rejects_path(p)).sort_values("row", ignore_index=True) for p in (local_out, spark_out))
    assert ra[["row", "column", "reason"]].equals(rb[["row", "column", "reason"]])
    assert len(ra) == 6  # five bad lines and one exact duplicate
    assert not work_dir(spark_out).exists()
