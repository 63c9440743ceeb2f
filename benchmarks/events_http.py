"""HTTP targets of the event store (``python benchmarks/events.py --http HOME``), each figure the
median of ``--runs`` runs and printed beside its target:

* **purchase reflected**: a client posts one purchase (``POST /events``) of the category of a
  snapshot customer's best offer, then asks ``/predict`` for that customer; the pair's end-to-end
  time (target p99 <= 50 ms at 32 clients, every client doing pairs) and whether the answer
  reflects it (the offer for that category is gone);
* **other customers meanwhile**: 32 clients ask ``/predict`` for customers no event touched while
  one more client, in a process of its own, starts 10 purchases a second (open loop) and
  re-asks each, against the trivial BentoML service of ``benchmarks/http_load.py`` (a dict
  lookup; its ``/events`` stores nothing) under the same load, run by run (target >= 0.8x).
  For reference also against the trivial service with the 32 readers alone (the second client
  process costs the shared 2 cores), and nextbest with no event at all;
* **ingest over HTTP**: 4 clients post batches of 1,000 purchases to one worker (target >= 2,000
  events/s per worker);
* **consent on 2 workers**: an objection posted, then ``/predict`` for that customer on 8
  connections opened beforehand (the kernel spreads them over both workers): every answer must be
  ``non_personalised`` (target: all, at the next request);
* **overlay memory**: 1M changed customers replayed into an overlay, measured with tracemalloc.

Needs a trained ``NEXTBEST_HOME`` (``nextbest train --dataset completejourney``); every server
runs on a fresh copy of its snapshot, registry and models, with an empty event store.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import shutil
import statistics
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from http_load import start_server as _start_server
from http_load import stop_server

KEY = "bench"
HEADERS = f"Authorization: Bearer {KEY}\r\n"
CLIENTS = 32
MIXED_PAIRS_PER_S = 10
"""Purchases posted (and re-asked) per second while 32 clients ask for other customers."""


# -- a raw HTTP/1.1 client that keeps the body --------------------------------------------------
async def call(reader, writer, path: str, payload: dict, headers: str = HEADERS):
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{headers}Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
    header = await reader.readuntil(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    data = await reader.readexactly(int(fields.get("content-length", 0)))
    return status, data


def quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


# -- the workloads --------------------------------------------------------------------------------
class Pairs:
    """Purchase-then-predict pairs over snapshot customers, each pair a customer not used yet."""

    def __init__(
        self, decisions: dict[str, dict], queue: list[str], as_of: pd.Timestamp, start: int = 0
    ) -> None:
        self.decisions = decisions
        self.queue = queue
        self.day = (as_of - pd.Timedelta(hours=12)).isoformat() + "Z"
        self.latency: list[float] = []
        self.post_latency: list[float] = []
        self.predict_latency: list[float] = []
        self.checked = self.reflected = self.errors = 0
        self.n = start

    async def one(self, reader, writer) -> None:
        cid = self.queue[self.n % len(self.queue)]
        self.n += 1
        before = self.decisions[cid]
        category = before["offers"][0]["category"] if before["offers"] else "PRODUCE"
        event = {
            "type": "purchase",
            "customer_id": cid,
            "timestamp": self.day,
            "amount": 20.0,
            "category": category,
        }
        t0 = time.perf_counter()
        status, _ = await call(reader, writer, "/events", {"events": [event]})
        t1 = time.perf_counter()
        status2, data = await call(reader, writer, "/predict", {"customer_id": cid})
        t2 = time.perf_counter()
        if status != 200 or status2 != 200:
            self.errors += 1
            return
        self.latency.append(t2 - t0)
        self.post_latency.append(t1 - t0)
        self.predict_latency.append(t2 - t1)
        if before["offers"]:
            self.checked += 1
            gone = before["offers"][0]["offer_id"]
            self.reflected += gone not in [o["offer_id"] for o in json.loads(data)["offers"]]


async def readers(port: int, ids: list[str], clients: int, seconds: float, done: list) -> int:
    """``clients`` keep-alive connections asking /predict for ``ids`` until ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    count = 0

    async def one(k: int) -> None:
        nonlocal count
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        try:
            while time.monotonic() < deadline:
                status, _ = await call(
                    reader, writer, "/predict", {"customer_id": ids[i % len(ids)]}
                )
                count += status == 200
                i += clients
        finally:
            writer.close()

    await asyncio.gather(*(one(k) for k in range(clients)))
    done.append(count / seconds)
    return count


async def pair_clients(
    port: int, pairs: Pairs, clients: int, seconds: float, every: float = 0.0
) -> None:
    """``clients`` connections doing pairs back to back, or one pair every ``every`` seconds."""
    deadline = time.monotonic() + seconds

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                started = time.monotonic()
                await pairs.one(reader, writer)
                await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(clients)))


async def paced_pairs(
    port: int, pairs: Pairs, seconds: float, rate: float, connections: int = 8
) -> None:
    """Pairs started at a fixed ``rate`` per second (open loop: a slow answer does not slow the
    next start), each on one of ``connections`` keep-alive connections."""
    free: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        free.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    async def one() -> None:
        reader, writer = await free.get()
        try:
            await pairs.one(reader, writer)
        finally:
            free.put_nowait((reader, writer))

    start = time.monotonic()
    tasks = []
    while time.monotonic() < start + seconds:
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(max(0.0, start + len(tasks) / rate - time.monotonic()))
    await asyncio.gather(*tasks)
    while not free.empty():
        free.get_nowait()[1].close()


def timed_pairs(port: int, pairs: Pairs, seconds: float, rate: float) -> Pairs:
    """:func:`paced_pairs` in this process (run in a process of its own, beside the readers)."""
    asyncio.run(paced_pairs(port, pairs, seconds, rate))
    return pairs


def readers_beside_pairs(port: int, quiet: list[str], pairs: Pairs, seconds: float) -> tuple:
    """32 readers of ``quiet`` customers while another process posts ``MIXED_PAIRS_PER_S``
    purchases a second and re-asks each: (readers' requests/s, the pairs)."""
    rates: list = []
    # The pair client runs in a process of its own: timed from the readers' event loop,
    # a pair would also wait for the 32 readers' responses to be handled client-side.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(time.sleep, 0).result()  # started before the clock runs
        done = pool.submit(timed_pairs, port, pairs, seconds, MIXED_PAIRS_PER_S)
        asyncio.run(readers(port, quiet, CLIENTS, seconds, rates))
        pairs = done.result()
    return rates[0], pairs


async def ingest(port: int, clients: int, batches: int, size: int, day: str) -> float:
    todo = iter(range(batches))

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for b in todo:
                events = [
                    {
                        "type": "purchase",
                        "customer_id": f"ingest-{b}-{i % 97}",
                        "timestamp": day,
                        "amount": 5.0,
                        "category": "MEAT",
                    }
                    for i in range(size)
                ]
                status, data = await call(reader, writer, "/events", {"events": events})
                assert status == 200, data[:300]
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    return batches * size / (time.perf_counter() - start)


async def consent_check(port: int, ids: list[str], day: str, connections: int = 8) -> tuple:
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections + 1)]
    honoured = asked = 0
    waits = []
    try:
        for cid in ids:
            objection = {
                "type": "consent",
                "customer_id": cid,
                "at": day,
                "consent_profiling": False,
            }
            status, _ = await call(*conns[0], "/events", {"events": [objection]})
            assert status == 200
            t0 = time.perf_counter()
            for reader, writer in conns[1:]:
                _, data = await call(reader, writer, "/predict", {"customer_id": cid})
                honoured += json.loads(data)["action"] == "non_personalised"
                asked += 1
            waits.append((time.perf_counter() - t0) / connections)
    finally:
        for _, writer in conns:
            writer.close()
    return honoured, asked, statistics.median(waits) * 1e3


# -- servers --------------------------------------------------------------------------------------
def start_server(target: str, name: str, env: dict, workers: int, log: Path, attempts: int = 3):
    """``http_load.start_server``, tried again when a server dies while starting (printing why)."""
    for attempt in range(1, attempts + 1):
        try:
            return _start_server(target, name, env, workers, log)
        except RuntimeError:
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            print(f"  {target} did not start (attempt {attempt}/{attempts}):\n{tail}", flush=True)
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def fresh_home(home: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(
        home, dst, ignore=shutil.ignore_patterns("audit", "events.db*", "serving", "logs", "*.work")
    )
    return dst


def nextbest_server(home: Path, tmp: Path, env: dict, workers: int, name: str):
    senv = {
        **env,
        "NEXTBEST_HOME": str(home),
        "NEXTBEST_API_KEY": KEY,
        "NEXTBEST_RELOAD_SECONDS": "0",
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }
    return start_server("nextbest.service:NextBest", "nextbest", senv, workers, tmp / f"{name}.log")


def snapshot_decisions(port: int, ids: list[str]) -> dict[str, dict]:
    import httpx

    out = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        for start in range(0, len(ids), 1000):
            r = http.post(
                "/predict_batch",
                json={"customer_ids": ids[start : start + 1000]},
                headers={"Authorization": f"Bearer {KEY}"},
            )
            out.update({d["customer_id"]: d for d in r.json()["decisions"]})
    return out


def one_run(home: Path, tmp: Path, env: dict, seconds: float, seed: int) -> dict:
    meta = json.loads((home / "snapshots" / "features.json").read_text())
    as_of = pd.Timestamp(meta["as_of"])
    day = (as_of - pd.Timedelta(hours=12)).isoformat() + "Z"
    all_ids = pd.read_parquet(home / "snapshots" / "features.parquet", columns=["customer_id"])
    all_ids = all_ids["customer_id"].tolist()
    (tmp / "ids.txt").write_text("\n".join(all_ids))
    out: dict = {}

    proc, port = start_server(
        "http_load:Trivial",
        "trivial",
        {**env, "TRIVIAL_IDS_FILE": str(tmp / "ids.txt")},
        1,
        tmp / "trivial.log",
    )
    try:
        rates: list = []
        asyncio.run(readers(port, all_ids, CLIENTS, 5, []))  # warm-up
        asyncio.run(readers(port, all_ids, CLIENTS, seconds, rates))
        out["trivial_rps"] = rates[0]
        # The same mixed load as nextbest's below (32 readers, and a process of its own posting
        # purchases, which this service drops, and re-asking): the like-for-like baseline.
        half = len(all_ids) // 2
        trivial_pairs = Pairs({c: {"offers": []} for c in all_ids}, all_ids[:half], as_of)
        out["trivial_mixed_rps"], trivial_pairs = readers_beside_pairs(
            port, all_ids[half:], trivial_pairs, seconds
        )
        out["trivial_mixed_pairs_per_s"] = len(trivial_pairs.latency) / seconds
        # The floor of the pair target: the same pairs against a service that does no work
        # (events validated by the schema and dropped, a prebuilt decision answered).
        floor = Pairs({c: {"offers": []} for c in all_ids}, all_ids, as_of)
        asyncio.run(pair_clients(port, floor, CLIENTS, seconds))
        out["trivial_pair_p50_ms"] = quantile(floor.latency, 50) * 1e3
        out["trivial_pair_p99_ms"] = quantile(floor.latency, 99) * 1e3
    finally:
        stop_server(proc)

    proc, port = nextbest_server(fresh_home(home, tmp / "home1"), tmp, env, 1, "nextbest1")
    try:
        decisions = snapshot_decisions(port, all_ids)
        rng = random.Random(seed)
        ids = list(decisions)
        rng.shuffle(ids)
        touched, quiet = ids[: len(ids) // 2], ids[len(ids) // 2 :]
        asyncio.run(readers(port, quiet, CLIENTS, 5, []))  # warm-up
        rates = []
        asyncio.run(readers(port, quiet, CLIENTS, seconds, rates))
        out["readers_only_rps"] = rates[0]
        mixed = Pairs(decisions, touched, as_of)
        out["mixed_readers_rps"], mixed = readers_beside_pairs(port, quiet, mixed, seconds)
        out["mixed_pairs_per_s"] = len(mixed.latency) / seconds
        out["mixed_pair_p99_ms"] = quantile(mixed.latency, 99) * 1e3
        pairs = Pairs(decisions, touched, as_of, start=mixed.n)  # customers not touched yet
        asyncio.run(pair_clients(port, pairs, CLIENTS, seconds))
        out["pairs"] = len(pairs.latency)
        out["pairs_reused_customers"] = max(0, pairs.n - len(touched))
        out["pair_p50_ms"] = quantile(pairs.latency, 50) * 1e3
        out["pair_p99_ms"] = quantile(pairs.latency, 99) * 1e3
        out["pair_predict_p99_ms"] = quantile(pairs.predict_latency, 99) * 1e3
        out["pair_post_p99_ms"] = quantile(pairs.post_latency, 99) * 1e3
        out["reflected"] = (pairs.reflected + mixed.reflected) / max(
            1, pairs.checked + mixed.checked
        )
        out["pair_errors"] = pairs.errors + mixed.errors
        one = Pairs(decisions, touched, as_of, start=pairs.n)
        asyncio.run(pair_clients(port, one, 1, min(seconds, 15)))
        out["pair_1client_p50_ms"] = quantile(one.latency, 50) * 1e3
        out["pair_1client_p99_ms"] = quantile(one.latency, 99) * 1e3
        out["ingest_ev_s"] = asyncio.run(ingest(port, 4, 40, 1000, day))
    finally:
        stop_server(proc)

    two = {**env, "NEXTBEST_OVERLAY_CACHE": "10000"}
    proc, port = nextbest_server(fresh_home(home, tmp / "home2"), tmp, two, 2, "nextbest2")
    try:
        sample = random.Random(seed).sample(all_ids, 30)
        honoured, asked, wait_ms = asyncio.run(consent_check(port, sample, day))
        out["consent_honoured"], out["consent_asked"] = honoured, asked
        out["consent_next_request_ms"] = wait_ms
    finally:
        stop_server(proc)
    return out


def overlay_memory(n: int = 1_000_000) -> float:
    """MB held by an overlay's index of ``n`` changed customers (10-character ids)."""
    from types import SimpleNamespace

    from nextbest.events.schema import Event
    from nextbest.events.store import Changes
    from nextbest.serving.overlay import Overlay

    state = SimpleNamespace(events_head=0, bundle=SimpleNamespace(churn=None, nbo=None))
    overlay = Overlay(state, store=None)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for start in range(0, n, 100_000):  # pages as the feed gives them, dropped once applied
        stop = min(n, start + 100_000)
        events = [
            Event("purchase", f"e{i}", f"c{i:09d}", 0, amount=1.0, seq=1_000_000_000 + i)
            for i in range(start, stop)
        ]
        overlay._apply(Changes(events, [], stop))
        del events
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert overlay.stats()["changed"] == n
    return held / 1e6


def run_http(home: Path, runs: int, seconds: float, line, verdict) -> None:
    """Measure the HTTP targets ``runs`` times and print the medians beside their targets."""
    import tempfile

    home = home.resolve()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    results = []
    with tempfile.TemporaryDirectory(prefix="nextbest-bench-http-") as tmp:
        tmp = Path(tmp)
        env["BENTOML_HOME"] = str(tmp / "bentoml")
        for r in range(runs):
            res = one_run(home, tmp, env, seconds, seed=7 + r)
            results.append(res)
            print(
                f"  run {r + 1}: " + json.dumps({k: round(v, 2) for k, v in res.items()}),
                flush=True,
            )
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    ratio = statistics.median(r["mixed_readers_rps"] / r["trivial_mixed_rps"] for r in results)
    ratio_quiet_trivial = statistics.median(
        r["mixed_readers_rps"] / r["trivial_rps"] for r in results
    )
    print(f"\nHTTP (median of {runs} runs, {CLIENTS} clients, {seconds:g} s each)")
    line(
        "purchase posted, then /predict reflects it",
        f"p99 {med['pair_p99_ms']:.0f} ms",
        "p99 <= 50 ms @ 32 cl.",
        verdict(med["pair_p99_ms"] <= 50),
        f"p50 {med['pair_p50_ms']:.0f} ms, parts p99: post {med['pair_post_p99_ms']:.0f} / predict "
        f"{med['pair_predict_p99_ms']:.0f} ms; 1 client p50 {med['pair_1client_p50_ms']:.0f} / "
        f"p99 {med['pair_1client_p99_ms']:.0f} ms",
    )
    line(
        "  same pairs, trivial BentoML service (floor)",
        f"p99 {med['trivial_pair_p99_ms']:.0f} ms",
        "",
        "",
        f"p50 {med['trivial_pair_p50_ms']:.0f} ms: no storage, no decision; pairs "
        f"{statistics.median(r['pair_p99_ms'] / r['trivial_pair_p99_ms'] for r in results):.1f}x "
        "this floor",
    )
    line(
        "  answers that reflect the purchase",
        f"{med['reflected']:.1%}",
        "100%",
        verdict(med["reflected"] == 1.0),
        f"{med['pair_errors']:.0f} non-2xx",
    )
    quiet = statistics.median(r["readers_only_rps"] / r["trivial_rps"] for r in results)
    line(
        "/predict for other customers meanwhile",
        f"{med['mixed_readers_rps']:,.0f} req/s",
        ">= 0.8x trivial",
        verdict(ratio >= 0.8),
        f"trivial BentoML under the same load {med['trivial_mixed_rps']:,.0f} req/s "
        f"({ratio:.2f}x); {med['mixed_pairs_per_s']:.1f} purchases+re-asks/s (trivial "
        f"{med['trivial_mixed_pairs_per_s']:.1f}), their p99 {med['mixed_pair_p99_ms']:.0f} ms",
    )
    line(
        "  the same, against trivial with readers alone",
        f"{ratio_quiet_trivial:.2f}x",
        "",
        "",
        f"trivial {med['trivial_rps']:,.0f} req/s with no second client process; no events: "
        f"nextbest {med['readers_only_rps']:,.0f} req/s ({quiet:.2f}x)",
    )
    line(
        "ingest over HTTP, batches of 1,000, 1 worker",
        f"{med['ingest_ev_s']:,.0f} ev/s",
        ">= 2,000 ev/s/worker",
        verdict(med["ingest_ev_s"] >= 2000),
        "4 clients",
    )
    asked = sum(r["consent_asked"] for r in results)
    honoured = sum(r["consent_honoured"] for r in results)
    line(
        "objection honoured by 2 workers, next request",
        f"{honoured}/{asked}",
        "all",
        verdict(honoured == asked),
        f"next /predict {med['consent_next_request_ms']:.1f} ms after the 2xx",
    )
    mb = overlay_memory()
    line(
        "overlay index, 1M changed customers",
        f"{mb:,.0f} MB",
        "bounded, documented",
        "",
        "plus <= 10,000 cached decisions",
    )
