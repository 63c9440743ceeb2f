"""Leakage-free time splits: the cutoffs that churn and next-best-offer models learn from.

A model trained at cutoff ``c`` sees features from before ``c`` and labels
from ``[c, c + label_days)``; the newest cutoff's label window ends exactly at
``as_of``, so nothing on or after ``as_of`` is ever used.
"""

from __future__ import annotations

import pandas as pd

from nextbest.errors import InputError
from nextbest.features.rfm import as_of_date


def rolling_cutoffs(
    first_day: pd.Timestamp,
    as_of,
    label_days: int,
    step_days: int,
    n_cutoffs: int,
    min_history_days: int,
    min_cutoffs: int = 3,
) -> list[pd.Timestamp]:
    """Cutoffs (oldest first) whose label windows end on or before ``as_of``.

    The newest cutoff is ``as_of - label_days``: its label window ends exactly
    at ``as_of``, so nothing on or after ``as_of`` is ever used. Each cutoff
    has at least ``min_history_days`` of data before it.

    Raises
    ------
    InputError
        If fewer than ``min_cutoffs`` cutoffs fit (three for separate train, calibration and
        test folds; one when the newest cutoff's customers are split instead).
    """
    as_of = as_of_date(as_of)
    earliest = as_of_date(first_day.normalize()) + pd.Timedelta(days=min_history_days)
    cutoffs = []
    for k in range(n_cutoffs):
        c = as_of - pd.Timedelta(days=label_days + k * step_days)
        if c < earliest:
            break
        cutoffs.append(c)
    if len(cutoffs) < min_cutoffs:
        need = "(train, calibrate, test)" if min_cutoffs >= 3 else ""
        raise InputError(
            f"only {len(cutoffs)} cutoff(s) fit between {earliest.date()} and {as_of.date()} with "
            f"{label_days}-day labels every {step_days} days; need {min_cutoffs} {need}: "
            "use more history, shorter windows or a smaller step"
        )
    return sorted(cutoffs)
