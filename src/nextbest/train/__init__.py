"""Training: CLV (:mod:`.clv`), churn (:mod:`.churn`), next-best-offer (:mod:`.nbo`) and the
pipeline
that runs all three (:mod:`.pipeline`). Every run is logged to MLflow, registered, and promoted to
``champion`` only past the thresholds of ``models/*.yaml``."""

from nextbest.train.clv import (
    TrainResult,
    default_as_of,
    historic_rate_baseline,
    holdout_metrics,
    prepare_transactions,
    select_count_model,
    train_clv,
)

__all__ = [
    "TrainResult",
    "default_as_of",
    "historic_rate_baseline",
    "holdout_metrics",
    "prepare_transactions",
    "select_count_model",
    "train_clv",
]
