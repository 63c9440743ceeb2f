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


def value_tiers(clv: np.ndarray) -> np.ndarray:
    """``high`` / ``medium`` / ``low`` by rank of predicted CLV (NaN -> ``""``)."""
    out = np.full(clv.shape, "", dtype=object)
    ok = np.isfinite(clv)
    if not ok.any():
        return out
    # rank 0 = highest CLV; ties broken by position, so shares are exact
    order = np.argsort(-clv[ok], kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    share = (rank + 0.5) / order.size
    tiers = np.where(share < 0.2, "high", np.where(share < 0.5, "medium", "low"))
    out[ok] = tiers
    return out


def churn_bands(churn: np.ndarray) -> np.ndarray:
    """``low`` / ``medium`` / ``high`` churn risk (NaN -> ``""``)."""
    out = np.full(churn.shape, "", dtype=object)
    ok = np.isfinite(churn)
    out[ok] = np.where(churn[ok] < 0.2, "low", np.where(churn[ok] < 0.5, "medium", "high"))
    return out


def segment_frame(flat: pd.DataFrame) -> pd.DataFrame:
    """``customer_id, segment, value_tier, churn_risk, activity`` for a flat scores frame."""
    clv = flat["predicted_clv"].to_numpy(dtype=float)
    churn = flat["churn_probability"].to_numpy(dtype=float)
    alive = flat["p_alive"].to_numpy(dtype=float)
    consent = flat["consent_profiling"].fillna(True).astype(bool).to_numpy()
    profiled = consent & np.isfinite(clv)
    tier = value_tiers(np.where(profiled, clv, np.nan))
    risk = churn_bands(np.where(profiled, churn, np.nan))
    risk[profiled & (risk == "")] = "unknown"  # no churn model: risk not assessed
    activity = np.where(alive >= ALIVE_THRESHOLD, "active", "lapsing").astype(object)
    activity[~profiled] = ""
    label = (
        pd.Series(tier, dtype=object)
        + " value, "
        + pd.Series(risk, dtype=object)
        + " risk, "
        + pd.Series(activity, dtype=object)
    ).to_numpy(dtype=object, copy=True)
    label[~profiled] = NOT_PROFILED
    return pd.DataFrame(
        {
            "customer_id": flat["customer_id"].astype(str).to_numpy(),
            "segment": label,
            "value_tier": tier,
            "churn_risk": risk,
            "activity": activity,
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
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    if output.suffix.lower() == ".csv":
        seg.to_csv(tmp, index=False)
    else:
        seg.to_parquet(tmp, index=False)
    tmp.replace(output)
    return output, seg["segment"].value_counts()
