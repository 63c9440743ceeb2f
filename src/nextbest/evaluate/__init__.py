"""Backtest evaluation: ``nextbest evaluate`` and its report.

Models are trained on data before ``as_of`` (or taken from the registry),
predict the horizon after it, and are measured against what customers really
did - every measure beside a simple baseline:

* :mod:`.clv` - purchases and revenue per customer (aggregate error, MAE,
  Spearman, normalised Gini, decile MAPE), tracking, conditional
  expectations and P(alive) plots;
* :mod:`.churn` - AUC, PR-AUC, Brier, calibration, lift and gain;
* :mod:`.offers` - hit@k and MAP@k of cross-sell rankings, coupon redemption
  by predicted propensity (Complete Journey);
* :mod:`.decision` - expected and realised value of the chosen actions
  against random-offer and rule policies;
* :mod:`.impact` - given a campaign log: what the actions really changed
  against their control groups, Qini curves and policy values of the uplift
  model, and for observational logs overlap, balance and a placebo check.

:func:`evaluate_to_dir` writes ``metrics.json`` and a self-contained
``report.html`` (:mod:`.report`) and logs everything to one MLflow run;
:func:`evaluate_periods_to_dir` does it at several cut-offs and puts their
headline measures side by side (:mod:`.periods`).
The metric functions are those of :mod:`nextbest.models.evaluation`, which
the promotion gates of ``nextbest train`` use too.
"""

from nextbest.evaluate.run import (
    Evaluation,
    evaluate,
    evaluate_periods_to_dir,
    evaluate_to_dir,
    write_outputs,
)

__all__ = ["Evaluation", "evaluate", "evaluate_periods_to_dir", "evaluate_to_dir", "write_outputs"]
