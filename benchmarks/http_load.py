"""HTTP load: the nextbest service against a trivial BentoML service, same run, same concurrency and
workers.

    .venv/bin/python benchmarks/http_load.py [--concurrency 32] [--requests 6000] [--workers 1]
    .venv/bin/python benchmarks/http_load.py --memory-customers 1000000   # memory of the decision
    table

Needs a trained ``NEXTBEST_HOME`` (``nextbest train --dataset completejourney``). Both servers
run with ``bentoml serve`` on 127.0.0.1, one after the other (``--rounds`` times, alternating),
under the same bounded load: ``--concurrency`` keep-alive connections sending ``POST /predict``
for random snapshot customers until ``--requests`` answers or ``--seconds`` pass. Printed per
server: requests/s, p50 and p99 latency, server CPU per request; then the ratio real/trivial
(target >= 0.8) and the in-process cost of one request's model work (lookup of the
precomputed decision + response model), next to what scoring one customer on demand costs.

The trivial service (:class:`Trivial`, served from this file) answers the same request with a
dict lookup of a prebuilt response of the same shape - the least work a BentoML service can do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bentoml

from nextbest.serving.schemas import Decision, EventsRequest, EventsResult, PredictRequest

HERE = Path(__file__).resolve().parent
EXAMPLE = Decision.model_json_schema()["example"]


@bentoml.service(name="trivial", workers=1)
class Trivial:
    """Baseline: a dict lookup of prebuilt responses (ids from ``TRIVIAL_IDS_FILE``)."""

    def __init__(self) -> None:
        ids = Path(os.environ["TRIVIAL_IDS_FILE"]).read_text().split("\n")
        self.table = {
            cid: Decision.model_validate({**EXAMPLE, "customer_id": cid}) for cid in ids if cid
        }

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=Decision)
    async def predict(self, customer_id: str, record_contact: bool = False) -> Decision:
        return self.table[customer_id]

    @bentoml.api(route="/events", input_spec=EventsRequest, output_spec=EventsResult)
    async def events(self, events: list[dict]) -> EventsResult:
        """Baseline for ``benchmarks/events.py``: events validated by the schema, not stored."""
        return EventsResult(
            accepted=len(events), new=len(events), duplicates=0, event_ids=[], head=0
        )


# -- servers -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    target: str, name: str, env: dict, workers: int, log: Path, timeout_s: float = 1200
):
    """``bentoml serve`` in its own process group; returns (process, port) once /readyz is 200."""
    import httpx

    port = free_port()
    env = {
        **env,
        "BENTOML_CONFIG_OPTIONS": f"services.{name}.workers={workers}",
        "BENTOML_DO_NOT_TRACK": "True",
    }
    cmd = [
        str(Path(sys.executable).with_name("bentoml")),
        "serve",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--working-dir",
        str(HERE),
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError(f"{target} did not become ready; see {log}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def cpu_seconds(pid: int) -> float:
    import psutil

    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


# -- load generator ------------------------------------------------------------------------------
async def _request(reader, writer, head: bytes, body: bytes) -> int:
    writer.write(head + body)
    await writer.drain()
    header = await reader.readuntil(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {
        k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
    }
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _load(port: int, bodies: list[bytes], headers: str, concurrency: int, seconds: float):
    latencies, statuses, nxt = [], {}, iter(range(len(bodies)))
    deadline = time.monotonic() + seconds

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in nxt:
                if time.monotonic() > deadline:
                    break
                head = (
                    "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                    f"application/json\r\n{headers}"
                    f"Content-Length: {len(bodies[i])}\r\n\r\n"
                ).encode()
                t0 = time.perf_counter()
                status = await asyncio.wait_for(_request(reader, writer, head, bodies[i]), 30)
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


def run_load(proc, port, ids, headers, args) -> dict:
    bodies = [json.dumps({"customer_id": c}).encode() for c in ids]
    asyncio.run(_load(port, bodies[: args.warmup], headers, args.concurrency, args.seconds))
    cpu0 = cpu_seconds(proc.pid)
    lat, statuses, wall = asyncio.run(
        _load(port, bodies[args.warmup :], headers, args.concurrency, args.seconds)
    )
    cpu = cpu_seconds(proc.pid) - cpu0
    q = statistics.quantiles(lat, n=100)
    return {
        "n": len(lat),
        "rps": len(lat) / wall,
        "p50_ms": q[49] * 1e3,
        "p99_ms": q[98] * 1e3,
        "cpu_ms_per_req": cpu / max(len(lat), 1) * 1e3,
        "statuses": statuses,
    }


# -- in-process cost of one request --------------------------------------------------------------
def model_work(settings, ids: list[str], reps: int = 20_000) -> dict:
    """µs per request: lookup, lookup + JSON response (what /predict does), audit line; and
    on-demand scoring."""
    import pandas as pd

    from nextbest.data.snapshot import read_snapshot as load_snapshot
    from nextbest.scoring import score
    from nextbest.serving.audit import AuditLog
    from nextbest.serving.errors import json_response
    from nextbest.serving.state import build_state

    t0 = time.perf_counter()
    state = build_state(settings)
    load_s = time.perf_counter() - t0
    table = state.table
    sample = [ids[i % len(ids)] for i in range(reps)]

    def per_call(fn) -> float:
        t = time.perf_counter()
        for cid in sample:
            fn(cid)
        return (time.perf_counter() - t) / reps * 1e6

    audit = AuditLog(settings.audit_dir)
    row = table.row(0)
    out = {
        "customers": len(table),
        "load_s": load_s,
        "table_mb": table.nbytes / 1e6,
        "lookup_us": per_call(table.find),
        "lookup_and_response_us": per_call(lambda c: json_response(table.row(table.find(c)))),
        "pydantic_response_us": per_call(
            lambda c: Decision.model_validate(table.row(table.find(c))).model_dump_json()
        ),
        "audit_line_us": per_call(lambda c: audit.write([row], "bench", "predict")),
    }
    audit.close()
    features, meta = load_snapshot(settings.paths)
    one = features[features["consent_profiling"].astype(bool)].head(1)
    t0 = time.perf_counter()
    for _ in range(5):
        score(
            one,
            state.bundle,
            state.horizon_days,
            state.popularity,
            as_of=pd.Timestamp(meta["as_of"]),
        )
    out["score_one_customer_on_demand_ms"] = (time.perf_counter() - t0) / 5 * 1e3
    return out


# -- memory for N customers ----------------------------------------------------------------------
def replicate_snapshot(home: Path, dst: Path, n: int) -> None:
    """A snapshot of ``n`` customers: the trained snapshot's rows repeated under new ids.

    Written in one ``write_table`` call like ``nextbest train`` writes it (one row group
    of up to 1Mi rows), so reading it in chunks is measured as it happens in production.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = home / "snapshots"
    (dst / "snapshots").mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "features.json", dst / "snapshots" / "features.json")
    base = pq.read_table(src / "features.parquet")
    ids = base.column("customer_id").to_pylist()
    id_type = base.schema.field("customer_id").type
    blocks, done, k = [], 0, 0
    while done < n:
        take = min(len(ids), n - done)
        new_ids = pa.array([f"{c}-{k}" for c in ids[:take]], type=id_type)
        blocks.append(base.slice(0, take).set_column(0, "customer_id", new_ids))
        done, k = done + take, k + 1
    pq.write_table(pa.concat_tables(blocks), dst / "snapshots" / "features.parquet")


def memory_child(home: Path) -> None:
    """Run in a fresh process: load the state as the service does, then reload it once; print
    memory."""
    import resource

    import psutil

    from nextbest.config import Paths
    from nextbest.serving.holder import StateHolder
    from nextbest.serving.settings import ServiceSettings

    rss0 = psutil.Process().memory_info().rss
    holder = StateHolder(
        ServiceSettings(paths=Paths(home), api_keys=("bench",), horizon_days=365.0)
    )
    t0 = time.perf_counter()
    _, state = holder.reload(force=True)
    build_s = time.perf_counter() - t0
    rss1 = psutil.Process().memory_info().rss
    peak1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    customers, table_mb = len(state.table), state.table.nbytes / 1e6
    del state  # only the holder keeps it, as in the service
    holder.reload(force=True)  # a reload builds the new state next to the old one
    print(
        json.dumps(
            {
                "customers": customers,
                "build_s": round(build_s, 1),
                "table_mb": round(table_mb, 1),
                "rss_before_mb": round(rss0 / 1e6, 1),
                "rss_loaded_mb": round(rss1 / 1e6, 1),
                "peak_rss_first_load_mb": round(peak1 / 1e6, 1),
                "rss_after_reload_mb": round(psutil.Process().memory_info().rss / 1e6, 1),
                "peak_rss_with_reload_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1
                ),
            }
        )
    )


def measure_memory(home: Path, n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "home"
        replicate_snapshot(home, dst, n)
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(dst)],
            capture_output=True,
            text=True,
            env={**os.environ},
            timeout=3 * 3600,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])


# -- main ----------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--home",
        type=Path,
        default=None,
        help="Trained NEXTBEST_HOME (default: $NEXTBEST_HOME or ./.nextbest)",
    )
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument(
        "--requests", type=int, default=6000, help="Measured requests per server and round."
    )
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--seconds", type=float, default=120, help="Time limit per load run.")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--memory-customers",
        type=int,
        default=0,
        help="Also measure memory for N synthetic customers.",
    )
    p.add_argument("--memory-child", type=Path, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.memory_child is not None:
        return memory_child(args.memory_child)
    home = (args.home or Path(os.environ.get("NEXTBEST_HOME", ".nextbest"))).resolve()
    if not (home / "snapshots" / "features.parquet").exists():
        sys.exit(f"no snapshot under {home}: run `nextbest train --dataset completejourney` first")
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    if args.memory_customers:
        print("memory:", json.dumps(measure_memory(home, args.memory_customers)), flush=True)
    import pyarrow.parquet as pq

    from nextbest.config import Paths
    from nextbest.serving.settings import ServiceSettings

    all_ids = (
        pq.read_table(home / "snapshots" / "features.parquet", columns=["customer_id"])
        .column(0)
        .to_pylist()
    )
    rng = random.Random(args.seed)
    ids = [rng.choice(all_ids) for _ in range(args.warmup + args.requests)]  # warm-up first
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bench_home = tmp / "home"  # audit lines of the benchmark land here, not in the real home
        shutil.copytree(home / "snapshots", bench_home / "snapshots")
        # the champions stay in the trained home's registry (read only)
        registry_uri = os.environ.get("MLFLOW_TRACKING_URI") or Paths(home).tracking_uri
        os.environ["MLFLOW_TRACKING_URI"] = registry_uri
        work = model_work(
            ServiceSettings(
                paths=Paths(bench_home, mlflow_uri=registry_uri),
                api_keys=("bench",),
                horizon_days=365.0,
            ),
            all_ids,
        )
        print(
            "per-request model work:",
            json.dumps({k: round(v, 3) for k, v in work.items()}),
            flush=True,
        )
        (tmp / "ids.txt").write_text("\n".join(all_ids))
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env["BENTOML_HOME"] = str(tmp / "bentoml")
        servers = {
            "trivial": (
                "http_load:Trivial",
                "trivial",
                {**env, "TRIVIAL_IDS_FILE": str(tmp / "ids.txt")},
                "",
            ),
            "nextbest": (
                "nextbest.service:NextBest",
                "nextbest",
                {
                    **env,
                    "NEXTBEST_HOME": str(bench_home),
                    "NEXTBEST_API_KEY": "bench",
                    "NEXTBEST_RELOAD_SECONDS": "0",
                },
                "Authorization: Bearer bench\r\n",
            ),
        }
        results: dict[str, list[dict]] = {name: [] for name in servers}
        for r in range(args.rounds):
            for name in ("trivial", "nextbest") if r % 2 == 0 else ("nextbest", "trivial"):
                target, svc, senv, headers = servers[name]
                proc, port = start_server(target, svc, senv, args.workers, tmp / f"{name}.log")
                try:
                    res = run_load(proc, port, ids, headers, args)
                finally:
                    stop_server(proc)
                results[name].append(res)
                print(
                    f"round {r + 1} {name:8s} "
                    + json.dumps(
                        {k: (round(v, 2) if isinstance(v, float) else v) for k, v in res.items()}
                    ),
                    flush=True,
                )
    med = {
        name: {
            k: statistics.median(r[k] for r in rs)
            for k in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_req")
        }
        for name, rs in results.items()
    }
    print(
        f"\n{'service':10s} {'rps':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'CPU ms/req':>11s}   "
        f"(median of {args.rounds} rounds, {args.concurrency} clients, {args.workers} worker(s))"
    )
    for name, res in med.items():
        print(
            f"{name:10s} {res['rps']:8.0f} {res['p50_ms']:8.1f} {res['p99_ms']:8.1f} "
            f"{res['cpu_ms_per_req']:11.2f}"
        )
    per_round = [a["rps"] / b["rps"] for a, b in zip(results["nextbest"], results["trivial"])]
    ratio = statistics.median(per_round)
    print(
        f"ratio nextbest / trivial: {ratio:.2f}x (median of rounds "
        f"{', '.join(f'{r:.2f}' for r in per_round)}; "
        f"target >= 0.8x) -> {'OK' if ratio >= 0.8 else 'BELOW TARGET'}"
    )
    print(
        f"model work per request: {work['lookup_and_response_us']:.0f} us (lookup "
        f"{work['lookup_us']:.0f} us, "
        f"+{work['audit_line_us']:.0f} us audit line) vs "
        f"{work['score_one_customer_on_demand_ms']:.0f} ms to score "
        "one customer on demand"
    )


if __name__ == "__main__":
    main()
