"""Train only the next-best-offer model: a thin script for data scientists to read and edit.

Usage::

    python training/train_nbo.py --dataset completejourney [--catalog models/offers.yaml] [--as-of
    2018-01-02]

Builds cross-sell pairs at rolling cutoffs, evaluates hit@k / MAP@k on the
newest against popularity and last-bought baselines, logs to MLflow,
registers ``nextbest-nbo`` and promotes it past ``models/nbo.yaml``. When it
fails that gate, the best baseline policy (with its own conversion rates) is
registered and promoted instead, unless a learned champion is in place.
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
from nextbest.train.pipeline import run_nbo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=["cdnow", "cdnow-full", "completejourney"])
    src.add_argument("--transactions")
    parser.add_argument("--customers")
    parser.add_argument("--catalog")
    parser.add_argument("--as-of")
    args = parser.parse_args()

    configs = {"clv": load_config("clv"), "nbo": load_config("nbo")}
    catalog = load_catalog(args.catalog)
    dataset = load_dataset(args.dataset, args.transactions, args.customers)
    as_of = args.as_of or default_as_of(dataset.transactions)
    tx = prepare_transactions(dataset, as_of)[0]
    registry.setup()
    ctx = build_context(
        tx, dataset.customers, catalog.categories, dataset.extras, catalog.channel_names
    )
    result, version, promoted = run_nbo(ctx, dataset.name, as_of, configs, catalog)
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
