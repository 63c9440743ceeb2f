"""Train the CLV model: a thin script for data scientists to read and edit.

Usage::

    python training/train_clv.py --dataset completejourney
    python training/train_clv.py --transactions my_orders.csv --as-of 2024-01-01 --horizon-days 180

It builds the run config from ``models/clv.yaml`` plus the flags below, then
calls :func:`nextbest.train.train_clv`, which fits, evaluates on an inner
holdout, logs everything to MLflow and promotes to ``champion`` only if the
thresholds pass. Edit the config dict here to experiment (for example try
only ``count_models: [pareto]`` or a different ``selection_holdout_days``).
"""

from __future__ import annotations

import argparse
import json

from nextbest.config import load_config
from nextbest.data import load_dataset
from nextbest.train import train_clv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=["cdnow", "cdnow-full", "completejourney"])
    src.add_argument("--transactions", help="CSV or Parquet in the nextbest transactions schema")
    parser.add_argument("--customers", help="customers file (customer_id, consent_profiling)")
    parser.add_argument("--as-of", help="first day not used (YYYY-MM-DD)")
    parser.add_argument("--horizon-days", type=int)
    parser.add_argument("--time-unit-days", type=float)
    args = parser.parse_args()

    config = load_config(
        "clv", {"horizon_days": args.horizon_days, "time_unit_days": args.time_unit_days}
    )
    dataset = load_dataset(args.dataset, args.transactions, args.customers)
    result = train_clv(dataset, config, as_of=args.as_of)
    print(
        json.dumps(
            {
                "run_id": result.run_id,
                "count_model": result.model.count_model_used_,
                "model": getattr(result.model, "display_name", type(result.model).__name__),
                "params": result.model.params_,
                "metrics": result.metrics,
                "promoted": result.promoted,
                "version": result.version,
                "why": result.notes,
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
