"""MLflow pyfunc wrapper for :class:`~nextbest.models.clv.ClvModel`.

lifetimes has no MLflow flavor, so the fitted model is pickled as an
artifact and served through ``mlflow.pyfunc.PythonModel``. Input: one row
per customer with ``customer_id`` (string) and ``frequency``, ``recency``,
``T``, ``monetary`` as doubles (integers are cast to float before logging,
or MLflow's schema check rejects float input later). Param:
``horizon_days`` (double, default 365).
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from nextbest.models.clv import ClvModel

INPUT_COLUMNS = ("customer_id", "frequency", "recency", "T", "monetary")


def as_model_input(rfm: pd.DataFrame) -> pd.DataFrame:
    """The pyfunc input frame: ids as str, numbers as float64."""
    out = pd.DataFrame({"customer_id": rfm["customer_id"].astype(str).to_numpy()})
    for col in INPUT_COLUMNS[1:]:
        out[col] = rfm[col].to_numpy(dtype=np.float64) if col in rfm.columns else 0.0
    return out


class ClvPyfunc(mlflow.pyfunc.PythonModel):
    """Serve a pickled :class:`ClvModel` (artifact key ``clv_model``)."""

    def load_context(self, context) -> None:
        self.model = ClvModel.load(context.artifacts["clv_model"])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        horizon = float((params or {}).get("horizon_days", 365.0))
        frame = model_input.copy()
        frame["frequency"] = frame["frequency"].round().astype("int64")
        return self.model.predict(frame, horizon_days=horizon)
