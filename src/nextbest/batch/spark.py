"""``--engine spark``: the same chunk functions and the same ``scoring.score`` on Spark.

Two ``groupBy(bucket).applyInPandas`` stages over Parquet:

A. every line gets its input row number (``_metadata.row_index`` plus the
   offset of its file) and a bucket (the local engine's hash of the
   normalised ``customer_id``); per bucket :func:`~.chunks.validate_chunk`
   returns the clean lines, the rejects and the 30-day popularity counts,
   written to ``<output>.work/stage_a`` (partitioned by kind);
B. the driver sums the counts into the global popularity; per bucket
   :func:`~.chunks.chunk_features` + :func:`~.chunks.score_chunk` give the
   scores, written as Parquet.

Customers (consent, demographics), the contact history and the models are
broadcast. For a local output path the Spark part files are then combined
into the one file the local engine writes (same schema, ``.parquet`` or
``.csv``), renamed atomically; for a cluster URI (``hdfs://``, ``s3a://``)
Spark's own directory of part files is the output.

Where Spark runs: ``master`` argument, else ``$NEXTBEST_SPARK_MASTER``, else
the master ``spark-submit`` was given, else ``local[*]``. The session never
downloads anything (no ``spark.jars.packages``); it only needs Java 17+ and
``pyspark`` (the ``spark`` extra). ``--resume`` restarts from the last
finished stage (Spark itself retries failed tasks).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nextbest.batch.chunks import (
    ROW,
    FeatureSetup,
    bucket_of,
    merge_stats,
    popularity_from_counts,
    rejects_frame,
)
from nextbest.batch.job import BatchError, BatchJob, JobResult, resolve_as_of
from nextbest.batch.manifest import Manifest, is_uri
from nextbest.batch.output import assemble_scores, rejects_path
from nextbest.batch.progress import Reporter
from nextbest.batch.spark_stages import (
    BUCKET,
    LINE_COLUMNS,
    STAGE_A_DDL,
    quiet_pandas3_warnings,
    score_group,
    spark_type_ddl,
    validate_group,
)
from nextbest.config import settings
from nextbest.data.schema import parse_timestamps
from nextbest.scoring import ModelSet


def spark_session(master: str | None = None, n_partitions: int = 8):
    """A Spark session for scoring (created if none is active).

    Offline and quiet: no package downloads, no UI in local mode, UTC
    session time zone, Arrow transfers; Python workers run this interpreter
    unless ``PYSPARK_PYTHON`` says otherwise.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            return active, False
        config = settings()
        master = master or config.spark_master
        under_submit = "PYSPARK_GATEWAY_PORT" in os.environ  # launched by spark-submit
        if master is None and not under_submit:
            master = "local[*]"
        builder = SparkSession.builder.appName("nextbest-score")
        if master:
            builder = builder.master(master)
        if master and master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            builder = (
                builder.config("spark.ui.enabled", "false")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.memory", config.spark_driver_memory)
            )
        builder = (
            builder.config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.shuffle.partitions", str(n_partitions))
            .config("spark.sql.adaptive.enabled", "false")
            .config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
            .config(
                "spark.jars.ivy", os.path.join(os.environ.get("TMPDIR", "/tmp"), "nextbest-ivy")
            )
        )
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel(config.spark_log_level)
        return spark, True


# -- driver ---------------------------------------------------------------------------------------
def _parse_timestamp_udf():
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import TimestampNTZType

    @pandas_udf(TimestampNTZType())
    def parse(values: pd.Series) -> pd.Series:
        return parse_timestamps(values).astype("datetime64[us]")

    return parse


def _input_path(job: BatchJob, root: Path, reporter: Reporter) -> str:
    """A Parquet path Spark can read: the file or URI given, else the input written as Parquet."""
    src = job.source
    if src.uri is not None:
        return src.uri
    if src.kind == "parquet":
        import pyarrow.dataset as ds

        schema = ds.dataset(src.path, format="parquet").schema
        if not any(pa.types.is_timestamp(f.type) and f.type.unit == "ns" for f in schema):
            return str(src.path.resolve())
        why = "nanosecond timestamps (pandas' default), which Spark cannot read"
    else:
        why = "Spark reads Parquet" if src.kind == "csv" else "it is in memory"
    path = root / "input.parquet"
    reporter.info(f"spark: writing {src.name} as Parquet in the work directory ({why})")
    writer = None
    try:
        for batch in src.batches():
            batch = _micros(batch)
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema)
            writer.write_batch(batch)
    finally:
        if writer is not None:
            writer.close()
    return str(path)


def _micros(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Nanosecond timestamp columns as microseconds (Spark's unit; days are all features use)."""
    cols = []
    for col, f in zip(batch.columns, batch.schema):
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns":
            col = col.cast(pa.timestamp("us", f.type.tz), safe=False)
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def _with_rows(spark, path: str, mapping: dict[str, str]):
    """Input lines with their global row number: offset of the file (files in path order) + row
    index."""
    from pyspark.sql import functions as F

    df = spark.read.parquet(path)
    for theirs, ours in mapping.items():
        if theirs not in df.columns:
            raise BatchError(f"{path}: mapped column(s) {[theirs]} not in file; found {df.columns}")
        df = df.withColumnRenamed(theirs, ours)
    if len(df.inputFiles()) <= 1:
        return df.withColumn(ROW, F.col("_metadata.row_index"))
    df = df.withColumn("_file", F.col("_metadata.file_path")).withColumn(
        "_idx", F.col("_metadata.row_index")
    )
    files = sorted(r["_file"] for r in df.select("_file").distinct().collect())
    counts = {r["_file"]: r["count"] for r in df.groupBy("_file").count().collect()}
    offsets, total = {}, 0
    for f in files:
        offsets[f] = total
        total += counts[f]
    mapping_expr = F.create_map(*[x for f in files for x in (F.lit(f), F.lit(offsets[f]))])
    return df.withColumn(ROW, mapping_expr[F.col("_file")] + F.col("_idx")).drop("_file", "_idx")


def run_spark(
    job: BatchJob, models: ModelSet, reporter: Reporter | None = None, master: str | None = None
) -> JobResult:
    """Score ``job`` on Spark; same outputs (scores, rejects, summary) as
    :func:`~.job.run_local`."""
    reporter = reporter or Reporter()
    fmt = job.fmt
    manifest = Manifest.open(
        job.output, job.identity(models, "spark"), job.resume, note=reporter.info
    )
    started = time.perf_counter()
    reporter.info("spark: starting the session")
    spark, created = spark_session(master)
    seconds: dict[str, float] = dict(manifest.state.get("seconds", {}))
    seconds["spark_start"] = time.perf_counter() - started
    # Spark's intermediate files: next to the manifest for a local output (local mode or a file
    # system the executors share), next to the output for a URI.
    stages = (
        f"{str(job.output).rstrip('/')}.work"
        if is_uri(job.output)
        else str(manifest.root.resolve())
    )
    try:
        with warnings.catch_warnings():
            quiet_pandas3_warnings()
            result = _run(job, models, reporter, manifest, spark, seconds, fmt, stages)
        if not settings().keep_work:
            if is_uri(job.output):
                _delete(spark, stages)
            shutil.rmtree(manifest.root, ignore_errors=True)
        return result
    finally:
        if created:
            spark.stop()


def _delete(spark, uri: str) -> None:
    """Remove a directory through Spark's Hadoop file system (hdfs://, s3a://, file://)."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(path, True)


def _run(job, models, reporter, manifest, spark, seconds, fmt, stages: str) -> JobResult:
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType

    root = manifest.root
    sc = spark.sparkContext
    t0 = time.perf_counter()
    path = _input_path(job, root, reporter)
    df = _with_rows(spark, path, job.source.mapping)
    lacking = [c for c in ("customer_id", "timestamp", "amount") if c not in df.columns]
    if lacking:
        raise BatchError(
            f"transactions is missing required column(s) {lacking}; found {df.columns[:-1]}"
        )
    part = manifest.state.get("partition")
    if not part:
        aggs = [F.count(F.lit(1)).alias("n"), F.approx_count_distinct("customer_id").alias("d")]
        if (
            job.as_of is None
        ):  # the default as_of needs the last timestamp as the validator parses it
            aggs.append(F.max(_parse_timestamp_udf()(F.col("timestamp"))).alias("last"))
        stats = df.agg(*aggs).collect()[0]
        if not stats["n"]:
            raise BatchError(f"no transaction lines in {path}")
        part = {
            "done": True,
            "n_rows": int(stats["n"]),
            "n_buckets": max(1, math.ceil(int(stats["d"]) / job.chunk_size)),
            "last_timestamp": None
            if job.as_of is not None or stats["last"] is None
            else str(pd.Timestamp(stats["last"])),
        }
        manifest.state["partition"] = part
        manifest.save()
    n_buckets = int(part["n_buckets"])
    as_of = resolve_as_of(job.as_of, part.get("last_timestamp"))
    reporter.info(f"spark: {part['n_rows']:,} lines in {n_buckets} chunk(s), as_of {as_of.date()}")
    has_category = "category" in df.columns
    setup = FeatureSetup.build(
        job.customers,
        models.catalog.categories,
        float(models.clv.time_unit_days),
        job.extras,
        models.catalog.channel_names,
    )

    cust = job.customers.assign(**{BUCKET: bucket_of(job.customers["customer_id"], n_buckets)})
    customers_bc = sc.broadcast(cust)
    history = job.contact_history
    history_bc = sc.broadcast(
        None
        if history is None
        else history.assign(**{BUCKET: bucket_of(history["customer_id"], n_buckets)})
    )
    models_bc = sc.broadcast(models)
    spark.conf.set("spark.sql.shuffle.partitions", str(n_buckets))

    from pyspark.sql.functions import pandas_udf

    @pandas_udf(LongType())
    def bucket_udf(ids: pd.Series) -> pd.Series:
        return pd.Series(bucket_of(ids, n_buckets))

    stage_a, stage_b = f"{stages}/stage_a", f"{stages}/stage_b"
    seconds["spark_prepare"] = seconds.get("spark_prepare", 0.0) + time.perf_counter() - t0
    if not manifest.state.get("stage_a"):
        t0 = time.perf_counter()
        reporter.info(f"spark: stage 1/2 - validate {n_buckets} chunk(s)")
        keyed = df.withColumn(BUCKET, bucket_udf(F.col("customer_id").cast("string")))
        fn = validate_group(as_of, len(setup.categories), setup.categories, customers_bc)
        (
            keyed.groupBy(BUCKET)
            .applyInPandas(fn, STAGE_A_DDL)
            .write.mode("overwrite")
            .partitionBy("kind")
            .parquet(stage_a)
        )
        counts = [
            {
                "active": int(r["active"]),
                "buyers": [int(b) for b in r["buyers"]],
                "report": r["report"],
            }
            for r in spark.read.parquet(f"{stage_a}/kind=count")
            .select("active", "buyers", "report")
            .collect()
        ]
        manifest.state["stage_a"] = {"counts": counts}
        manifest.save()
        seconds["features"] = seconds.get("features", 0.0) + time.perf_counter() - t0
    counts = manifest.state["stage_a"]["counts"]
    k = len(setup.categories)
    popularity = popularity_from_counts(
        setup.categories,
        sum(c["active"] for c in counts),
        [sum(c["buyers"][j] for c in counts) for j in range(k)],
    )
    rejected: dict[str, int] = {}
    for c in counts:
        for reason, n in json.loads(c["report"])["rejected"].items():
            rejected[reason] = rejected.get(reason, 0) + int(n)

    target = str(job.output) if is_uri(job.output) else stage_b
    if not manifest.state.get("stage_b"):
        t0 = time.perf_counter()
        reporter.info(f"spark: stage 2/2 - features and scores of {n_buckets} chunk(s)")
        lines = spark.read.parquet(f"{stage_a}/kind=line").select(BUCKET, "row", *LINE_COLUMNS)
        fn = score_group(
            setup,
            as_of,
            job.horizon_days,
            popularity,
            customers_bc,
            models_bc,
            history_bc,
            has_category,
            "channel" in df.columns,
        )
        scored = lines.groupBy(BUCKET).applyInPandas(fn, spark_type_ddl())
        scored.orderBy("customer_id").write.mode("overwrite").parquet(target)
        manifest.state["stage_b"] = True
        manifest.save()
        seconds["scoring"] = seconds.get("scoring", 0.0) + time.perf_counter() - t0

    t0 = time.perf_counter()
    stats = _stats(spark.read.parquet(target))
    rejects = _rejects(spark, stage_a)
    if is_uri(job.output):
        output, rej = str(job.output), None
        if rejects is not None:
            rej = f"{str(job.output).rstrip('/')}.rejects.parquet"
            ddl = ", ".join(f"`{c}` {'long' if c == 'row' else 'string'}" for c in rejects.columns)
            spark.createDataFrame(rejects, schema=ddl).coalesce(1).write.mode("overwrite").parquet(
                rej
            )
    else:
        output = Path(job.output)
        assemble_scores(sorted(Path(stage_b).glob("part-*.parquet")), output, fmt)
        rej = rejects_path(output)
        if rejects is None:
            rej.unlink(missing_ok=True)
            rej = None
        else:
            tmp = rej.with_name(rej.name + ".tmp")
            rejects.to_parquet(tmp, index=False)
            tmp.replace(rej)
    seconds["write"] = seconds.get("write", 0.0) + time.perf_counter() - t0
    return JobResult(
        output,
        rej,
        as_of,
        int(part["n_rows"]),
        n_buckets,
        stats,
        dict(sorted(rejected.items(), key=lambda kv: -kv[1])),
        seconds,
    )


def _rejects(spark, stage_a: str) -> pd.DataFrame | None:
    """All rejected lines, shaped like the local engine's file (original columns from their
    JSON)."""
    from pyspark.errors import AnalysisException

    try:
        t = (
            spark.read.parquet(f"{stage_a}/kind=reject")
            .select("row", "column", "value", "reason", "payload")
            .toPandas()
        )
    except AnalysisException:  # no reject partition: nothing was rejected
        return None
    if not len(t):
        return None
    extra = pd.DataFrame([json.loads(s) for s in t["payload"]], index=t.index)
    frame = pd.concat([t.drop(columns="payload"), extra], axis=1).sort_values("row", kind="stable")
    frame["row"] = frame["row"].astype("int64")
    return rejects_frame(frame.reset_index(drop=True))


def _stats(scores) -> dict:
    """:func:`~.chunks.stats_of` of the whole scores table, aggregated by Spark."""
    from pyspark.sql import functions as F

    rows = (
        scores.groupBy("action", "action_offer_id")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.count("predicted_clv").alias("scored"),
            F.sum(F.when(F.col("consent_profiling"), 0).otherwise(1)).alias("opted_out"),
        )
        .collect()
    )
    items = [
        {
            "customers": r["n"],
            "scored": r["scored"],
            "opted_out": int(r["opted_out"] or 0),
            "actions": {r["action"]: r["n"]},
            "offers": {r["action_offer_id"] or "(no offer)": r["n"]},
        }
        for r in rows
    ]
    return merge_stats(items)


__all__ = ["run_spark", "spark_session", "spark_type_ddl"]
