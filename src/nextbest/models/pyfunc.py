"""MLflow pyfunc wrapper for the pickled LightGBM models (churn, next-best-offer).

We log our own model objects (feature order, categorical levels, calibrator
and library versions travel with them) through ``mlflow.pyfunc.PythonModel``
rather than the ``mlflow.lightgbm`` flavor, whose pyfunc returns class
labels instead of probabilities, or the sklearn flavor, whose skops format
needs trusted types at load time. ``predict`` returns probabilities.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


class ProbaPyfunc(mlflow.pyfunc.PythonModel):
    """Serve a pickled :class:`~nextbest.models.churn.ChurnModel` or
    :class:`~nextbest.models.offers.OfferModel`.

    Artifact key ``model``; ``kind`` is ``"churn"`` or ``"nbo"``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def load_context(self, context) -> None:
        if self.kind == "churn":
            from nextbest.models.churn import ChurnModel as cls
        else:
            from nextbest.models.offers import OfferModel as cls
        self.model = cls.load(context.artifacts["model"])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        return self.model.predict(model_input)
