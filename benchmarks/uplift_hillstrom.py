"""Uplift policies on Hillstrom (issue 11, section 7): do they beat the baselines, split by split?

Outcome: a visit, worth $1. For each seed, a random half of the customers:

* ``women``: women's e-mail vs no e-mail at $0.045 an e-mail (close to its
  average effect, so targeting matters). Cross-fitted (k folds within the half)
  uplift policy against e-mail everyone, e-mail no one and the response model
  at the same volume, by paired doubly robust differences. Then the section 7
  protocol: train on the half, value the policies by IPW on the other half.
* ``three``: no e-mail, men's, women's at $0.05 each. The men's e-mail works for
  almost everyone, so the promotion gate should fall back to it.

Prints one line per seed and scenario, then mean and spread.

    python benchmarks/uplift_hillstrom.py [--seeds 6] [--k 5] [--learner x]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from nextbest.data.hillstrom import load_hillstrom
from nextbest.models.uplift import UpliftModel
from nextbest.models.uplift_policy import (
    crossfit_predictions,
    holdout_predictions,
    policy_evaluation,
)

VALUE = 1.0


def women_scenario(log, customers, seed: int, k: int, config: dict) -> dict:
    # the two-arm log: propensity 1/2 within women's e-mail and no e-mail, not the design's 1/3
    rows, customers = load_hillstrom("visit", offers=("EMAIL-WOMENS",))
    in_half = np.random.default_rng(seed).random(len(rows)) < 0.5
    half, other = rows[in_half], rows[~in_half]
    values, costs = {"EMAIL-WOMENS": VALUE}, {"EMAIL-WOMENS": 0.045}
    cf = crossfit_predictions(customers, half, config=config, k=k, seed=seed)
    ev = policy_evaluation(cf, values, costs)
    comp = ev.comparisons.set_index("baseline")
    out = {"scenario": "women $0.045", "seed": seed, "n": len(cf), "promote": ev.promote}
    out["contact_share"] = float(ev.policies.set_index("policy").loc["uplift", "contact_share"])
    out["qini"] = float(ev.qini["qini_coefficient"].iloc[0])
    for name, short in (
        ("everyone: EMAIL-WOMENS", "all"),
        ("no contact", "none"),
        ("response model", "resp"),
    ):
        out[f"dr_gain_vs_{short}"] = float(comp.loc[name, "difference"])
        out[f"z_vs_{short}"] = float(comp.loc[name, "z"])
    # Section 7 protocol: fit on the half, IPW on the held-out half.
    model = UpliftModel(config).fit(customers, half)
    held = policy_evaluation(holdout_predictions(model, customers, other), values, costs)
    ipw = held.policies.set_index("policy")["ipw_value"]
    for name, short in (
        ("everyone: EMAIL-WOMENS", "all"),
        ("no contact", "none"),
        ("response model", "resp"),
    ):
        out[f"ipw_holdout_gain_vs_{short}"] = float(ipw["uplift"] - ipw[name])
    return out


def three_scenario(log, customers, seed: int, k: int, config: dict) -> dict:
    half = log[np.random.default_rng(seed).random(len(log)) < 0.5]
    costs = {"EMAIL-MENS": 0.05, "EMAIL-WOMENS": 0.05}
    values = {"EMAIL-MENS": VALUE, "EMAIL-WOMENS": VALUE}
    ev = policy_evaluation(
        crossfit_predictions(customers, half, config=config, k=k, seed=seed), values, costs
    )
    comp = ev.comparisons.set_index("baseline")
    pol = ev.policies.set_index("policy")
    return {
        "scenario": "three $0.05",
        "seed": seed,
        "n": int(len(half)),
        "promote": ev.promote,
        "chosen": ev.chosen,
        "contact_share": float(pol.loc["uplift", "contact_share"]),
        "dr_gain_vs_all_mens": float(comp.loc["everyone: EMAIL-MENS", "difference"]),
        "z_vs_all_mens": float(comp.loc["everyone: EMAIL-MENS", "z"]),
        "lower_vs_all_mens": float(comp.loc["everyone: EMAIL-MENS", "lower"]),
        "reason": ev.reason,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--learner", default="x")
    parser.add_argument("--n-jobs", type=int, default=None, help="LightGBM threads (model default)")
    args = parser.parse_args()
    config = {"learner": args.learner, "lightgbm": {"n_jobs": args.n_jobs}}
    log, customers = load_hillstrom("visit")
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    for scenario in (women_scenario, three_scenario):
        rows = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            row = scenario(log, customers, seed, args.k, config)
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
        table = pd.DataFrame(rows)
        numeric = table.select_dtypes("number").drop(columns=["seed"])
        print(f"\n{rows[0]['scenario']} (learner {args.learner}, {args.k} folds, visit = ${VALUE})")
        print(
            pd.DataFrame(
                {
                    "mean": numeric.mean(),
                    "sd": numeric.std(),
                    "min": numeric.min(),
                    "max": numeric.max(),
                }
            )
            .round(4)
            .to_string()
        )
        print(f"promoted on {int(table['promote'].sum())} of {len(table)} splits\n")


if __name__ == "__main__":
    main()
