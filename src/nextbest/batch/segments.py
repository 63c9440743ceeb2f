"""Micro-segments of a scored base: value tier x churn risk x activity, one definition.

The same definitions feed the scoring report and ``nextbest segments`` (the
CRM export), so a segment name means the same thing everywhere:

* **value tier** by predicted CLV among profiled customers of this run:
  ``high`` (top 20%), ``medium`` (next 30%), ``low`` (bottom 50%);
* **churn risk** by churn probability: ``low`` (< 0.2), ``medium``
  (0.2 to < 0.5), ``high`` (>= 0.5);
* **activity** by P(alive): ``active`` (>= 0.5) or ``lapsing``.

A customer who objected to profiling has no scores and is in the segment
``not profiled`` only. The label reads "high value, low risk, active".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.batch.audiences import flatten_scores, read_scores
from nextbest.errors import SchemaError

ALIVE_THRESHOLD = 0.5
NOT_PROFILED = "not profiled"
SEGMENT_COLUMNS = ("customer_id", "segment", "value_tier", "churn_risk", "activity")


TIERS = ("high", "medium", "low")
RISKS = ("low", "medium", "high", "unknown")
ACTIVITY = ("active", "lapsing")


def _tier_codes(clv: np.ndarray) -> np.ndarray:
    """0 high (top 20% by rank), 1 medium (next 30%), 2 low; -1 without a CLV."""
    out = np.full(clv.shape, -1, dtype=np.int8)
    ok = np.isfinite(clv)
    if ok.any():
        order = np.argsort(-clv[ok], kind="stable")  # rank 0 = highest CLV; ties by position
        rank = np.empty(order.size, dtype=np.int64)
        rank[order] = np.arange(order.size)
        share = (rank + 0.5) / order.size
        out[ok] = np.where(share < 0.2, 0, np.where(share < 0.5, 1, 2))
    return out


def _risk_codes(churn: np.ndarray) -> np.ndarray:
    """0 low (< 0.2), 1 medium (< 0.5), 2 high; 3 unknown (no churn score)."""
    with np.errstate(invalid="ignore"):
        codes = np.where(churn < 0.2, 0, np.where(churn < 0.5, 1, 2))
    return np.where(np.isfinite(churn), codes, 3).astype(np.int8)


def value_tiers(clv: np.ndarray) -> np.ndarray:
    """``high`` / ``medium`` / ``low`` by rank of predicted CLV (NaN -> ``""``)."""
    return np.array([*TIERS, ""], dtype=object)[_tier_codes(clv)]


def churn_bands(churn: np.ndarray) -> np.ndarray:
    """``low`` / ``medium`` / ``high`` churn risk (NaN -> ``""``)."""
    names = np.array([*RISKS[:3], ""], dtype=object)
    return names[_risk_codes(churn)]


def _categorical(codes: np.ndarray, names: tuple[str, ...]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int16), categories=list(names))


def segment_frame(flat: pd.DataFrame) -> pd.DataFrame:
    """``customer_id, segment, value_tier, churn_risk, activity`` for a flat scores frame.

    The label columns are pandas categoricals (a few distinct values over
    millions of rows); a customer who is not profiled has ``segment`` =
    ``not profiled`` and missing parts.
    """
    clv = flat["predicted_clv"].to_numpy(dtype=float)
    churn = flat["churn_probability"].to_numpy(dtype=float)
    alive = flat["p_alive"].to_numpy(dtype=float)
    consent = flat["consent_profiling"].fillna(True).astype(bool).to_numpy()
    profiled = consent & np.isfinite(clv)
    tier = _tier_codes(np.where(profiled, clv, np.nan))
    risk = _risk_codes(churn)
    act = np.where(alive >= ALIVE_THRESHOLD, 0, 1).astype(np.int8)
    labels = [f"{t} value, {r} risk, {a}" for t in TIERS for r in RISKS for a in ACTIVITY] + [
        NOT_PROFILED
    ]
    code = (tier.astype(np.int16) * len(RISKS) + risk) * len(ACTIVITY) + act
    code = np.where(profiled, code, len(labels) - 1)
    missing = ~profiled
    return pd.DataFrame(
        {
            "customer_id": flat["customer_id"].array,
            "segment": _categorical(code, tuple(labels)),
            "value_tier": _categorical(np.where(missing, -1, tier), TIERS),
            "churn_risk": _categorical(np.where(missing, -1, risk), RISKS),
            "activity": _categorical(np.where(missing, -1, act), ACTIVITY),
        }
    )


def export_segments(scores: str | Path, output: str | Path) -> tuple[Path, pd.Series]:
    """Write each customer's segment (``.csv`` or ``.parquet``) for a CRM.

    Returns the file and the number of customers per segment.
    """
    output = Path(output)
    if output.suffix.lower() not in (".csv", ".parquet"):
        raise SchemaError(f"--output must end in .csv or .parquet, got {output.name!r}")
    seg = segment_frame(flatten_scores(read_scores(scores)))
    counts = seg["segment"].value_counts()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    if output.suffix.lower() == ".csv":
        seg.to_csv(tmp, index=False)
    else:
        seg.to_parquet(tmp, index=False)
    tmp.replace(output)
    return output, counts[counts > 0]
