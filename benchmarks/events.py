"""Benchmark: the event store (store part; the HTTP part comes with the service).

Each figure is the median of ``--runs`` runs (default 3), each on a fresh
store, alternating with the runs of its baseline so that both meet the same
machine load, and printed beside its target and that baseline:

* **ingest**: ``ingest_file`` of a Parquet file of ``--events`` purchases
  (default 1M) into SQLite with ``synchronous=FULL`` (the default) and
  ``NORMAL``; target >= 100,000 events/s. Baseline: plain ``sqlite3``
  ``executemany`` of the same rows (read from the same file, no validation)
  into the same table and indexes, 100k rows per transaction.
* **append**: ``validate_events`` + ``append`` of 50 batches of 1,000 JSON-like
  events, a proxy for ``POST /events`` (target >= 2,000 events/s per worker);
  and single-event appends, where each commit pays its own fsync (FULL)
  or not (NORMAL). Baseline: plain ``executemany`` of the same rows per batch.
* **feed poll**: ``since(head)`` with nothing new, on the 1M-event store
  (target well under 1 ms). Baseline: a bare ``SELECT max(seq)``. And the
  time until a second handle waiting in ``wait()`` sees an appended objection.
* **PostgreSQL** (``--postgres URL``): append batches of 1,000, an empty poll,
  and the time until a second connection waiting with ``wait()`` sees an
  appended objection (target <= 1 s). Baseline: plain psycopg
  ``executemany`` of the same rows.

* **HTTP** (``--http HOME``, a trained ``NEXTBEST_HOME``): a purchase posted then ``/predict``
  reflecting it (p99 <= 50 ms at 32 clients), ``/predict`` for other customers meanwhile against
  the trivial BentoML service (>= 0.8x), ingest over HTTP (>= 2,000 events/s per worker), an
  objection honoured by both workers of a 2-worker service at the next request, and the overlay's
  memory for 1M changed customers (:mod:`events_http`).

    python benchmarks/events.py [--events 1000000] [--runs 3] [--postgres postgresql://...]
                                [--keep] [--http HOME [--http-seconds 30] [--http-only]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nextbest.events import open_store, validate_events
from nextbest.events.ingest import ingest_file
from nextbest.events.sql import TABLE

NOW = datetime(2025, 1, 1, tzinfo=UTC)
COLUMNS = ("event_id", "type", "customer_id", "at_us", "amount", "category", "received_us")


def make_parquet(path: Path, n: int, seed: int = 7) -> None:
    """``n`` purchases of 100k customers over two years, with event ids, as Parquet."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "type": "purchase",
            "event_id": [f"tx{i:09d}" for i in range(n)],
            "customer_id": [f"{c:06d}" for c in rng.integers(0, 100_000, n)],
            "timestamp": pd.Timestamp("2023-01-01")
            + pd.to_timedelta(rng.integers(0, 730 * 86400, n), unit="s"),
            "amount": np.round(rng.gamma(2.0, 20.0, n), 2),
            "category": rng.choice(["PRODUCE", "DAIRY", "MEAT", "BAKERY", "DRINKS"], n),
        }
    )
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def json_batches(n_batches: int, size: int, prefix: str) -> list[list[dict]]:
    return [
        [
            {
                "type": "purchase",
                "event_id": f"{prefix}-{b}-{i}",
                "customer_id": f"{(b * size + i) % 5000:06d}",
                "timestamp": "2024-12-01T10:00:00Z",
                "amount": 12.5,
                "category": "PRODUCE",
            }
            for i in range(size)
        ]
        for b in range(n_batches)
    ]


def fresh(root: Path, name: str, sync: str) -> str:
    path = root / f"{name}-{time.perf_counter_ns()}.db"
    return f"sqlite:///{path}?synchronous={sync}"


def raw_connection(url: str) -> sqlite3.Connection:
    """A plain sqlite3 connection to a new store file (tables and indexes made by the store)."""
    open_store(url).close()
    path, sync = url[len("sqlite:///") :].split("?synchronous=")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {sync.upper()}")
    conn.execute("PRAGMA cache_size = -32768")
    return conn


def insert_sql(placeholder: str = "?") -> str:
    marks = ", ".join([placeholder] * len(COLUMNS))
    return f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({marks}) ON CONFLICT DO NOTHING"


def parquet_rows(batch: pa.RecordBatch, received: int) -> list[tuple]:
    at = batch.column("timestamp").cast(pa.timestamp("us")).cast(pa.int64()).to_pylist()
    n = batch.num_rows
    return list(
        zip(
            batch.column("event_id").to_pylist(),
            ["purchase"] * n,
            batch.column("customer_id").to_pylist(),
            at,
            batch.column("amount").to_pylist(),
            batch.column("category").to_pylist(),
            [received] * n,
        )
    )


def baseline_ingest(path: Path, url: str) -> float:
    conn = raw_connection(url)
    received = int(time.time() * 1e6)
    start = time.perf_counter()
    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=100_000):
        rows = parquet_rows(batch, received)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert_sql(), rows)
        conn.execute("COMMIT")
        n += len(rows)
    seconds = time.perf_counter() - start
    conn.close()
    return n / seconds


def ingest_rate(path: Path, url: str) -> float:
    store = open_store(url)
    result = ingest_file(path, store, now=NOW)
    store.close()
    assert result.rejected == 0, result
    return result.rate


def append_rate(url: str, batches: list[list[dict]]) -> float:
    store = open_store(url)
    start = time.perf_counter()
    for events in batches:
        checked = validate_events(events, now=NOW)
        assert checked.ok
        store.append(checked.accepted)
    seconds = time.perf_counter() - start
    store.close()
    return sum(map(len, batches)) / seconds


def validated_rows(batches: list[list[dict]]) -> list[list[tuple]]:
    received = int(time.time() * 1e6)
    out = []
    for events in batches:
        cols = validate_events(events, now=NOW).accepted.columns
        out.append([(*row, received) for row in zip(*(cols[c] for c in COLUMNS[:-1]))])
    return out


def baseline_append_sqlite(url: str, rows: list[list[tuple]]) -> float:
    conn = raw_connection(url)
    start = time.perf_counter()
    for batch in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert_sql(), batch)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    return sum(map(len, rows)) / seconds


def poll_latency(url: str, polls: int = 10_000) -> tuple[float, float]:
    """Median and p99 of an empty ``since(head)``, in microseconds."""
    store = open_store(url)
    cursor = store.head()
    timings = np.empty(polls)
    for k in range(polls):
        start = time.perf_counter()
        store.since(cursor)
        timings[k] = time.perf_counter() - start
    store.close()
    return float(np.median(timings) * 1e6), float(np.percentile(timings, 99) * 1e6)


def baseline_poll(path: str, polls: int = 10_000) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    timings = np.empty(polls)
    for k in range(polls):
        start = time.perf_counter()
        conn.execute(f"SELECT max(seq) FROM {TABLE}").fetchone()
        timings[k] = time.perf_counter() - start
    conn.close()
    return float(np.median(timings) * 1e6)


def visibility_ms(url: str, trials: int = 10) -> float:
    """Median time (ms) until a second handle waiting in ``wait()`` sees an appended objection."""
    writer, reader = open_store(url), open_store(url)
    delays = []
    for k in range(trials):
        cursor = reader.head()
        seen: dict[str, float] = {}

        def watch(cursor=cursor, seen=seen):
            if reader.wait(cursor, timeout=10.0):
                seen["t"] = time.perf_counter()

        thread = threading.Thread(target=watch)
        thread.start()
        time.sleep(0.05)
        objection = {
            "type": "consent",
            "customer_id": f"c{k}",
            "at": "2024-12-01T00:00:00Z",
            "consent_profiling": False,
        }
        sent = time.perf_counter()
        writer.append(validate_events([objection], now=NOW).accepted)
        thread.join()
        delays.append((seen["t"] - sent) * 1e3)
    writer.close()
    reader.close()
    return statistics.median(delays)


def median_of(runs: int, fn, *args) -> float:
    return statistics.median(fn(*args) for _ in range(runs))


def paired(runs: int, ours, baseline) -> tuple[float, float]:
    """Medians of ``runs`` alternating runs of ours and the baseline (same load for both)."""
    a, b = [], []
    for _ in range(runs):
        a.append(ours())
        b.append(baseline())
    return statistics.median(a), statistics.median(b)


def line(name: str, value: str, target: str, verdict: str, baseline: str) -> None:
    print(f"{name:<44} {value:>16}   {target:<22} {verdict:<5} {baseline}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", help="postgresql:// URL of a scratch database")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (~1.6 GB at 1M)")
    parser.add_argument("--http", type=Path, help="a trained NEXTBEST_HOME: measure over HTTP")
    parser.add_argument("--http-seconds", type=float, default=30.0, help="per HTTP load phase")
    parser.add_argument("--http-only", action="store_true", help="skip the store benchmarks")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nextbest-bench-events-"))
    try:
        if not args.http_only:
            run(args, root)
        if args.http is not None:
            from events_http import run_http

            run_http(args.http, args.runs, args.http_seconds, line, verdict)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> None:
    print(f"work dir {root}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    print(f"each figure: median of {args.runs} runs on fresh stores\n")
    source = root / "purchases.parquet"
    make_parquet(source, args.events)
    n = f"{args.events / 1e6:g}M" if args.events >= 1e6 else f"{args.events:,}"

    for sync in ("full", "normal"):
        rate, base = paired(
            args.runs,
            lambda s=sync: ingest_rate(source, fresh(root, "i", s)),
            lambda s=sync: baseline_ingest(source, fresh(root, "b", s)),
        )
        line(
            f"ingest {n} purchases, Parquet, {sync.upper()}",
            f"{rate:,.0f} ev/s",
            ">= 100,000 ev/s",
            verdict(rate >= 1e5),
            f"plain executemany {base:,.0f} ev/s ({rate / base:.2f}x)",
        )

    batches = json_batches(50, 1000, "a")
    rows = validated_rows(batches)
    singles = json_batches(300, 1, "s")
    single_rows = validated_rows(singles)
    for sync in ("full", "normal"):
        rate, base = paired(
            args.runs,
            lambda s=sync: append_rate(fresh(root, "a", s), batches),
            lambda s=sync: baseline_append_sqlite(fresh(root, "ab", s), rows),
        )
        line(
            f"append batches of 1,000, {sync.upper()}",
            f"{rate:,.0f} ev/s",
            ">= 2,000 ev/s/worker",
            verdict(rate >= 2000),
            f"plain executemany {base:,.0f} ev/s ({rate / base:.2f}x)",
        )
        one, one_base = paired(
            args.runs,
            lambda s=sync: append_rate(fresh(root, "o", s), singles),
            lambda s=sync: baseline_append_sqlite(fresh(root, "ob", s), single_rows),
        )
        line(
            f"append single events (1 commit each), {sync.upper()}",
            f"{1e3 / one:.2f} ms/event",
            "(durability cost)",
            "",
            f"plain insert+commit {1e3 / one_base:.2f} ms/event",
        )

    big = fresh(root, "poll", "full")
    store = open_store(big)
    ingest_file(source, store, now=NOW)
    store.close()
    medians = [poll_latency(big) for _ in range(args.runs)]
    med = statistics.median(m for m, _ in medians)
    p99 = statistics.median(p for _, p in medians)
    base = statistics.median(baseline_poll(big.split("?")[0][len("sqlite:///") :]) for _ in "abc")
    line(
        f"empty feed poll since(head), {n} events",
        f"{med:.1f} us (p99 {p99:.0f})",
        "< 1,000 us",
        verdict(med < 1000),
        f"bare SELECT max(seq) {base:.1f} us",
    )

    delay = median_of(args.runs, lambda: visibility_ms(fresh(root, "v", "full")))
    line(
        "objection seen by a 2nd handle waiting",
        f"{delay:.1f} ms",
        "next request",
        "",
        "wait() polls head() every 2 ms",
    )

    if args.postgres:
        postgres(args.postgres, args.runs, batches, rows)
    else:
        print("\nPostgreSQL: not measured (give --postgres postgresql://... of a scratch database)")


def postgres(url: str, runs: int, batches: list[list[dict]], rows: list[list[tuple]]) -> None:
    import psycopg

    def scratch() -> str:
        schema = f"bench_{time.perf_counter_ns()}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}options=-csearch_path%3D{schema}"

    def baseline(target: str) -> float:
        open_store(target).close()
        with psycopg.connect(target) as conn:
            start = time.perf_counter()
            for batch in rows:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(insert_sql("%s"), batch)
            return sum(map(len, rows)) / (time.perf_counter() - start)

    rate, base = paired(runs, lambda: append_rate(scratch(), batches), lambda: baseline(scratch()))
    line(
        "PostgreSQL append batches of 1,000",
        f"{rate:,.0f} ev/s",
        ">= 2,000 ev/s/worker",
        verdict(rate >= 2000),
        f"plain executemany {base:,.0f} ev/s ({rate / base:.2f}x)",
    )
    target = scratch()
    store = open_store(target)
    store.append(validate_events(batches[0], now=NOW).accepted)
    store.close()
    med = statistics.median(poll_latency(target, 2000)[0] for _ in range(runs))
    line("PostgreSQL empty feed poll since(head)", f"{med:.0f} us", "(one query)", "", "")
    delay = median_of(runs, lambda: visibility_ms(scratch()))
    line(
        "PostgreSQL objection seen by a 2nd connection",
        f"{delay:.1f} ms",
        "<= 1,000 ms",
        verdict(delay <= 1000),
        "wait() woken by NOTIFY",
    )


if __name__ == "__main__":
    main()
