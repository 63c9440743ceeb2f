"""Benchmark: BG/NBD + Gamma-Gamma fit on the same synthetic customers, lifetimes vs nextbest.

Baseline: lifetimes' ``BetaGeoFitter.fit`` / ``GammaGammaFitter.fit`` on one
row per customer. nextbest: ``ClvModel``'s path - compress to distinct
(frequency, recency, T) patterns (compression time included) and fit with the
analytic-gradient BG/NBD; Gamma-Gamma on distinct (frequency, monetary).
Both run in this process on the same RFM frame; the script prints seconds,
the speed ratio and the largest relative parameter difference.

    python benchmarks/clv_fit.py [--n-customers 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nextbest.data.synthetic import generate_transactions, synthetic_as_of
from nextbest.features.rfm import rfm_summary
from nextbest.models.btyd import fit_count_model, fit_spend_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from lifetimes import BetaGeoFitter, GammaGammaFitter

    t0 = time.perf_counter()
    tx = generate_transactions(args.n_customers, seed=args.seed)
    t1 = time.perf_counter()
    rfm = rfm_summary(tx, synthetic_as_of(), time_unit_days=7)
    t2 = time.perf_counter()
    print(
        f"customers {len(rfm):,}  transactions {len(tx):,}  generate {t1 - t0:.2f}s  rfm "
        f"{t2 - t1:.2f}s"
    )

    rows = []
    start = time.perf_counter()
    base = BetaGeoFitter().fit(rfm["frequency"], rfm["recency"], rfm["T"])
    base_s = time.perf_counter() - start
    start = time.perf_counter()
    ours, attempts = fit_count_model("bgnbd", rfm, [0.0])
    ours_s = time.perf_counter() - start
    rows.append(
        (
            "BG/NBD",
            base_s,
            ours_s,
            base.params_.to_numpy(),
            ours.params_.to_numpy(),
            attempts[-1]["rows"],
        )
    )

    rep = rfm[(rfm["frequency"] > 0) & (rfm["monetary"] > 0)]
    start = time.perf_counter()
    gg_base = GammaGammaFitter().fit(rep["frequency"], rep["monetary"])
    gg_base_s = time.perf_counter() - start
    start = time.perf_counter()
    gg, gg_attempts, _ = fit_spend_model(rfm, [0.0])
    gg_s = time.perf_counter() - start
    rows.append(
        (
            "Gamma-Gamma",
            gg_base_s,
            gg_s,
            gg_base.params_.to_numpy(),
            gg.params_.to_numpy(),
            gg_attempts[-1]["rows"],
        )
    )

    print(
        f"{'model':<12} {'rows fitted':>12} {'lifetimes s':>12} {'nextbest s':>11} {'speed-up':>9} "
        f"{'max rel param diff':>19}"
    )
    for name, b, o, pb, po, n_rows in rows:
        diff = float(np.max(np.abs(po / pb - 1)))
        print(f"{name:<12} {n_rows:>12,} {b:>12.2f} {o:>11.3f} {b / o:>8.1f}x {diff:>19.2e}")
    total_b = sum(r[1] for r in rows)
    total_o = sum(r[2] for r in rows)
    print(f"{'total':<12} {'':>12} {total_b:>12.2f} {total_o:>11.3f} {total_b / total_o:>8.1f}x")


if __name__ == "__main__":
    main()
