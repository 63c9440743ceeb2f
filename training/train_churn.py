"""Train only the churn model: a thin script for data scientists to read and edit.

Usage::

    python training/train_churn.py --dataset completejourney [--as-of 2018-01-02] [--horizon-days
    30]

Uses the count model of the current CLV champion for the P(alive) features,
builds examples at rolling cutoffs, evaluates on the newest against the
recency-only and P(alive) baselines, logs to MLflow, registers
``nextbest-churn`` and promotes it past the thresholds of ``models/churn.yaml``.
"""

from __future__ import annotations

import argparse
import json

from nextbest import registry
from nextbest.config import load_config
from nextbest.data import load_dataset
from nextbest.decision.catalog import load_catalog
from nextbest.features.build import build_context
from nextbest.train import default_as_of, prepare_transactions
from nextbest.train.pipeline import run_churn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=["cdnow", "cdnow-full", "completejourney"])
    src.add_argument("--transactions")
    parser.add_argument("--customers")
    parser.add_argument("--as-of")
    parser.add_argument("--horizon-days", type=int, help="churn label window (days)")
    args = parser.parse_args()

    configs = {
        "clv": load_config("clv"),
        "churn": load_config("churn", {"horizon_days": args.horizon_days}),
    }
    dataset = load_dataset(args.dataset, args.transactions, args.customers)
    as_of = args.as_of or default_as_of(dataset.transactions)
    tx = prepare_transactions(dataset, as_of)[0]
    registry.setup()
    champion = registry.champion_version(registry.CLV_MODEL_NAME)
    count_model = "bgnbd"
    if champion is not None:
        count_model = registry.load_model(registry.CLV_MODEL_NAME)[0].count_model_used_
    catalog = load_catalog()
    ctx = build_context(
        tx, dataset.customers, catalog.categories, dataset.extras, catalog.channel_names
    )
    result, version, promoted = run_churn(ctx, dataset.name, as_of, configs, count_model)
    print(
        json.dumps(
            {
                "version": version,
                "promoted": promoted,
                "metrics": result.metrics,
                "gate": result.gate,
                "notes": result.notes,
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
