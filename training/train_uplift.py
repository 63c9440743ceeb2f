"""Train only the uplift model from a campaign log: a thin script for data scientists.

Usage::

    python training/train_uplift.py --dataset hillstrom
    python training/train_uplift.py --campaign-log log.csv --customers customers.csv \
        --catalog my_offers.yaml --as-of 2024-06-01 [--transactions orders.csv] [--learner dr]

Validates the log (randomized control rows, propensities), cross-fits the
learner of ``models/uplift.yaml`` over customers, compares the learned
targeting policy with contacting nobody, everybody (each offer) and response
targeting by paired doubly robust differences, logs all of it to MLflow and
registers ``nextbest-uplift`` as ``champion``: the learned model when it beats
every baseline with a one-sided 95% lower bound above zero, otherwise each
offer's average effect (the best single action for everyone). Edit the config
here to try another learner, fold count or tree size.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from nextbest import registry
from nextbest.config import load_config
from nextbest.data import load_dataset
from nextbest.decision.catalog import load_catalog
from nextbest.train import prepare_transactions
from nextbest.train.uplift import prepare_campaign_log, run_uplift, uplift_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=["hillstrom"], help="a bundled randomized experiment")
    src.add_argument("--campaign-log", help="CSV or Parquet: who got which offer (or control)")
    parser.add_argument("--customers", help="customer attributes (customer_id, ...)")
    parser.add_argument("--transactions", help="purchase history, for behaviour features")
    parser.add_argument("--catalog", help="offer catalog with each offer's value and cost")
    parser.add_argument("--as-of", help="first day not observed (YYYY-MM-DD)")
    parser.add_argument("--learner", choices=["t", "x", "dr"])
    args = parser.parse_args()

    config = load_config("uplift")
    if args.learner:
        config["model"] = {**config["model"], "learner": args.learner}
    clv = load_config("clv")
    dataset = load_dataset(
        args.dataset, args.transactions, args.customers, campaign_log=args.campaign_log
    )
    if dataset.campaign_log is None:
        parser.error("no campaign log: give --campaign-log or --dataset hillstrom")
    catalog = load_catalog(args.catalog or dataset.catalog_path)
    as_of = pd.Timestamp(args.as_of or dataset.default_as_of)
    tx = prepare_transactions(dataset, as_of)[0] if dataset.has_transactions else None
    registry.setup()
    campaign = prepare_campaign_log(dataset.campaign_log, catalog, as_of, tx)
    features = uplift_features(
        dataset.customers, tx, as_of, float(clv["time_unit_days"]), catalog, dataset.extras
    )
    result, version = run_uplift(dataset.name, campaign, features, catalog, config)
    ev = result.evaluation
    print(
        json.dumps(
            {
                "version": version,
                "champion": result.kind,
                "chosen": ev.chosen,
                "why": ev.reason,
                "policies": ev.policies.to_dict(orient="records"),
                "rejected_log_rows": len(campaign.rejects),
                "notes": result.notes,
                "seconds": round(result.seconds, 1),
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
