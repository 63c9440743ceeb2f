"""Benchmark: training the uplift model on 1M logged contacts (target: at most 2 minutes, 2 cores).

The log is synthetic (:func:`nextbest.data.synthetic.generate_campaign_log`):
one row per customer, two offers and a control arm assigned at random,
conversions and revenue. Timed: ``UpliftModel.fit`` with the default learner
(X-learner: per action a conversion and a revenue model, then two effect
regressors per offer and outcome), from the log and the customers frame.
Baseline, in the same process on the same rows: one LightGBM response
classifier with the same settings (features plus the offer as a categorical),
the single model today's next-best-offer ranking trains. Median of
``--repeats`` runs of each.

    python benchmarks/uplift.py [--n 1000000] [--repeats 3] [--learner x] [--n-jobs 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier

from nextbest.data.synthetic import generate_campaign_log
from nextbest.models.uplift import UpliftModel, uplift_config

TARGET_SECONDS = 120.0


def response_baseline(customers, log, params: dict) -> float:
    """Seconds to fit one LightGBM P(convert | x, offer) classifier on the same rows."""
    start = time.perf_counter()
    X = customers.set_index("customer_id").loc[log["customer_id"]]
    X = X.drop(columns="consent_profiling").reset_index(drop=True)
    X["segment"] = X["segment"].astype("category")
    X["offer"] = pd.Categorical(log["offer_id"].to_numpy())
    LGBMClassifier(**params).fit(X, log["converted"].to_numpy())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--learner", default="x")
    parser.add_argument("--n-jobs", type=int, default=None, help="LightGBM threads (model default)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    start = time.perf_counter()
    campaign = generate_campaign_log(args.n, seed=args.seed)
    print(f"logged contacts {len(campaign.log):,}  generate {time.perf_counter() - start:.1f}s")
    config = {"learner": args.learner, "lightgbm": {"n_jobs": args.n_jobs}}
    full = uplift_config(config)
    threads = full["lightgbm"]["n_jobs"]
    params = {  # the same trees; leaves as large a share of the rows as the uplift fits use
        **full["lightgbm"],
        "min_child_samples": int(full["min_child_share"] * args.n),
    }

    ours, base = [], []
    for run in range(args.repeats):
        start = time.perf_counter()
        model = UpliftModel(config).fit(campaign.customers, campaign.log)
        ours.append(time.perf_counter() - start)
        base.append(response_baseline(campaign.customers, campaign.log, params))
        print(
            f"run {run + 1}: uplift fit {ours[-1]:.1f}s  response model {base[-1]:.1f}s  "
            f"(1-minute load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: other "
            "processes slow LightGBM's threads a lot)"
        )

    uplift = model.predict_arrays(campaign.customers.iloc[:100_000])["uplift"]
    corr = [
        float(np.corrcoef(uplift[:, j], campaign.true_uplift[:100_000, j])[0, 1])
        for j in range(uplift.shape[1])
    ]
    med, med_base = statistics.median(ours), statistics.median(base)
    verdict = "meets" if med <= TARGET_SECONDS else "MISSES"
    print(
        f"\nuplift model ({args.learner}-learner, {threads} thread(s)) on {args.n:,} contacts: "
        f"median {med:.1f}s over {args.repeats} run(s); target <= {TARGET_SECONDS:.0f}s: {verdict}"
    )
    print(
        f"baseline, one LightGBM response model on the same rows: median {med_base:.1f}s "
        f"(uplift / baseline = {med / med_base:.1f}x)"
    )
    print(f"correlation of predicted with true uplift per offer: {np.round(corr, 3).tolist()}")


if __name__ == "__main__":
    main()
