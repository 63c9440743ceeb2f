"""The one MLflow pyfunc wrapper for every nextbest model.

We log our own model objects (feature order, categorical levels, calibrator,
time unit and library versions travel with them) through
``mlflow.pyfunc.PythonModel`` rather than the ``mlflow.lightgbm`` flavor,
whose pyfunc returns class labels instead of probabilities, or the sklearn
flavor, whose skops format needs trusted types at load time. lifetimes has no
MLflow flavor at all.

The wrapper is parametrised by the model class (``"module:Class"``); the
pickled model is the artifact ``model``. ``predict`` passes MLflow ``params``
on as keyword arguments (the CLV model takes ``horizon_days``). This module
imports MLflow: import it only where a model is logged or loaded.
"""

from __future__ import annotations

import importlib

import mlflow.pyfunc
import pandas as pd

ARTIFACT_KEY = "model"


def class_path(model_class: type) -> str:
    """``"nextbest.models.churn:ChurnModel"`` for :class:`~nextbest.models.churn.ChurnModel`."""
    return f"{model_class.__module__}:{model_class.__qualname__}"


class NextbestPyfunc(mlflow.pyfunc.PythonModel):
    """Serve a pickled nextbest model (``BaseModel.save``) of class ``model_class``.

    Parameters
    ----------
    model_class : str
        ``"module:Class"`` of the model; it must provide ``load(path)`` and
        ``predict(frame, **params) -> DataFrame``.
    """

    def __init__(self, model_class: str) -> None:
        self.model_class = model_class

    def load_context(self, context) -> None:
        module, _, name = self.model_class.partition(":")
        cls = getattr(importlib.import_module(module), name)
        self.model = cls.load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        return self.model.predict(model_input, **(params or {}))
