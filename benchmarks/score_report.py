"""Benchmark: the scoring report for a large base (target: at most 5 s for 1M customers).

Builds a scores file of N customers with the shape ``nextbest score`` writes
(seeded random values: every action, offers, reasons, some opted-out
customers), then times :func:`nextbest.batch.report.write_score_report` and,
in the same run, the baseline of only reading and flattening the file (what
any report must do). Medians of ``--runs`` runs; the second and later runs
also compare with the previous run (the "what changed" section).

    .venv/bin/python benchmarks/score_report.py --customers 1000000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nextbest.batch.audiences import flatten_scores, read_scores
from nextbest.batch.chunks import SCORES_SCHEMA
from nextbest.batch.report import write_score_report
from nextbest.decision.catalog import load_catalog

TARGET_S = 5.0


def scores_file(n: int, path: Path, seed: int = 0) -> Path:
    """A scores file of ``n`` customers in :data:`SCORES_SCHEMA`."""
    rng = np.random.default_rng(seed)
    catalog = load_catalog()
    offers = [o.offer_id for o in catalog.offers]
    cats = [o.category for o in catalog.offers]
    consent = rng.random(n) > 0.01
    clv = np.where(consent, rng.lognormal(6, 1.2, n), np.nan)
    churn = np.where(consent, rng.beta(1, 5, n), np.nan)
    alive = np.where(consent, rng.beta(5, 1, n), np.nan)
    action = rng.choice(["cross_sell", "retention", "no_action"], n, p=[0.8, 0.08, 0.12])
    action = np.where(consent, action, "non_personalised")
    k = rng.integers(0, len(offers), n)
    offer_id = np.where(
        action == "cross_sell",
        np.array(offers, dtype=object)[k],
        np.where(action == "retention", "RET-WINBACK", np.where(consent, None, "NEWSLETTER")),
    )
    # one listed offer per personalised customer (the chosen one), none otherwise
    listed = action == "cross_sell"
    lengths = listed.astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    idx = np.flatnonzero(listed)
    offer_struct = pa.StructArray.from_arrays(
        [
            pa.array(np.array(offers, dtype=object)[k[idx]], pa.string()),
            pa.array(np.array(cats, dtype=object)[k[idx]], pa.string()),
            pa.array(rng.random(idx.size)),
            pa.array(rng.random(idx.size) * 3),
        ],
        names=["offer_id", "category", "p_convert", "expected_value"],
    )
    reason_struct = pa.StructArray.from_arrays(
        [pa.array(["CROSS_SELL"] * idx.size), pa.array(["buys PRODUCE weekly"] * idx.size)],
        names=["code", "text"],
    )
    table = pa.table(
        {
            "customer_id": pa.array([f"c{i:07d}" for i in range(n)]),
            "p_alive": alive,
            "expected_purchases": np.where(consent, rng.gamma(2, 5, n), np.nan),
            "expected_spend": np.where(consent, rng.gamma(3, 10, n), np.nan),
            "predicted_clv": clv,
            "churn_probability": churn,
            "action": pa.array(action.astype(object)),
            "action_offer_id": pa.array(offer_id, pa.string()),
            "offers": pa.ListArray.from_arrays(pa.array(offsets), offer_struct),
            "reasons": pa.ListArray.from_arrays(pa.array(offsets), reason_struct),
            "model_versions": pa.array([json.dumps({"nextbest-clv": "1"})] * n),
            "consent_profiling": consent,
            "as_of": pa.array(np.full(n, np.datetime64("2018-01-01", "us"))),
            "horizon_days": np.full(n, 365.0),
        }
    )
    pq.write_table(table.cast(SCORES_SCHEMA), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    catalog = load_catalog()
    with tempfile.TemporaryDirectory() as tmp:
        path = scores_file(args.customers, Path(tmp) / "scores.parquet")
        base, report = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            flatten_scores(read_scores(path))
            base.append(time.perf_counter() - t)
            t = time.perf_counter()
            write_score_report(path, catalog)
            report.append(time.perf_counter() - t)
        size = (Path(tmp) / "scores.report.html").stat().st_size
    rep, bas = statistics.median(report), statistics.median(base)
    verdict = "MET" if rep <= TARGET_S else "MISSED"
    print(f"customers {args.customers:,}, runs {args.runs}")
    print(f"report built in {rep:.2f} s (median; runs {', '.join(f'{x:.2f}' for x in report)})")
    print(f"  target <= {TARGET_S:.1f} s: {verdict}; page {size / 1e3:.0f} kB")
    print(f"baseline: read and flatten the scores file {bas:.2f} s (median)")


if __name__ == "__main__":
    main()
