"""MLflow runs, the model registry, aliases and the one pyfunc wrapper.

* :mod:`.runs` - the tracking store under ``NEXTBEST_HOME``, the experiment,
  data fingerprints, flattened configs;
* :mod:`.models` - one logging path for every model, ``champion``
  promotion, loading by alias or version into a
  :class:`~nextbest.scoring.ModelSet`;
* :mod:`.pyfunc` - the one ``mlflow.pyfunc.PythonModel`` wrapper,
  parametrised by model class (imports MLflow; loaded only when needed).
"""

from nextbest.registry.models import (
    CHAMPION,
    CHURN_MODEL_NAME,
    CLV_MODEL_NAME,
    MODEL_NAMES,
    NBO_MODEL_NAME,
    REQUIRED_MODELS,
    UPLIFT_MODEL_NAME,
    champion_version,
    load_model,
    load_models,
    load_pyfunc,
    log_model,
    missing_champions,
    promote,
    pyfunc_input,
)
from nextbest.registry.runs import EXPERIMENT, data_fingerprint, flatten, setup

__all__ = [
    "CHAMPION",
    "CHURN_MODEL_NAME",
    "CLV_MODEL_NAME",
    "EXPERIMENT",
    "MODEL_NAMES",
    "NBO_MODEL_NAME",
    "REQUIRED_MODELS",
    "UPLIFT_MODEL_NAME",
    "champion_version",
    "data_fingerprint",
    "flatten",
    "load_model",
    "load_models",
    "load_pyfunc",
    "log_model",
    "missing_champions",
    "promote",
    "pyfunc_input",
    "setup",
]
