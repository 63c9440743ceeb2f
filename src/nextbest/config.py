"""Where state lives, the one settings object, and how run configuration is built.

Nothing here touches the file system or the environment at import time.
:func:`settings` reads the environment into one :class:`Settings` object
(built once per environment and passed down); the service's
:class:`~nextbest.serving.settings.ServiceSettings` extends it. No other
module reads ``os.environ``.

==================================  ==============================================================
variable                            meaning (default)
==================================  ==============================================================
``NEXTBEST_HOME``                   all local state: MLflow store and artifacts, snapshots,
                                    rejects, logs, caches (``./.nextbest``)
``MLFLOW_TRACKING_URI``             another MLflow store (default: SQLite under the home)
``NEXTBEST_MODELS_DIR``             model configs and offer catalogs (the repository's ``models/``)
``NEXTBEST_COMPILED_TREES``         ``0`` to score LightGBM models without compiled trees (on)
``NEXTBEST_SPARK_MASTER``           Spark master URL for ``--engine spark`` (``local[*]``)
``NEXTBEST_SPARK_DRIVER_MEMORY``    Spark driver memory (``2g``)
``NEXTBEST_SPARK_LOG_LEVEL``        Spark's log level (``ERROR``)
``NEXTBEST_KEEP_WORK``              ``1`` keeps a finished batch job's work directory (off)
``NEXTBEST_EVENTS_URL``             event store: ``postgresql://...`` for several replicas
                                    (default: SQLite under the home)
==================================  ==============================================================

Run configuration follows *defaults in code, overrides merged onto them*:
:func:`load_config` reads ``models/<name>.yaml`` and merges CLI flags on top,
returning a new dict (the parsed file is never edited in place).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nextbest.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 floats: ``1e9`` and ``1.0e9`` are numbers, not strings."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(path: Path):
    """Parse a YAML file (configs, catalogs) with :class:`_YamlLoader`."""
    return yaml.load(path.read_text(), Loader=_YamlLoader)


def home() -> Path:
    """The state directory: ``$NEXTBEST_HOME`` or ``./.nextbest`` (not created)."""
    return settings().paths.root


@dataclass(frozen=True)
class Paths:
    """Locations under ``NEXTBEST_HOME``; :meth:`ensure` creates them.

    ``mlflow_uri`` replaces the SQLite store under the home (``MLFLOW_TRACKING_URI``).
    """

    root: Path
    mlflow_uri: str | None = None

    @classmethod
    def from_env(cls) -> Paths:
        return settings().paths

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def batch_work(self) -> Path:
        return self.root / "batch-work"

    def ensure(self) -> Paths:
        for p in (self.root, self.mlflow_artifacts, self.snapshots, self.rejects, self.logs):
            p.mkdir(parents=True, exist_ok=True)
        return self

    def tracking_uri(self) -> str:
        """``mlflow_uri`` if given, else the SQLite store under the home."""
        return self.mlflow_uri or f"sqlite:///{self.mlflow_db}"


ENV_VARS = (
    "NEXTBEST_HOME",
    "MLFLOW_TRACKING_URI",
    "NEXTBEST_MODELS_DIR",
    "NEXTBEST_COMPILED_TREES",
    "NEXTBEST_SPARK_MASTER",
    "NEXTBEST_SPARK_DRIVER_MEMORY",
    "NEXTBEST_SPARK_LOG_LEVEL",
    "NEXTBEST_KEEP_WORK",
    "NEXTBEST_EVENTS_URL",
)
_OFF = ("0", "false", "no", "off")


def _text(env, name: str) -> str | None:
    value = env.get(name, "")
    return value.strip() or None


@dataclass(frozen=True)
class Settings:
    """Everything nextbest reads from the environment, read once (see the module docstring)."""

    paths: Paths
    models_dir: Path = PROJECT_ROOT / "models"
    compiled_trees: bool = True
    spark_master: str | None = None
    spark_driver_memory: str = "2g"
    spark_log_level: str = "ERROR"
    keep_work: bool = False
    events_url: str | None = None

    @classmethod
    def from_env(cls, env=None) -> Settings:
        """Read the variables of the module docstring from ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env
        return cls(**settings_fields(env))


def settings_fields(env) -> dict[str, Any]:
    """The :class:`Settings` fields from ``env`` (shared with the service settings)."""
    return {
        "paths": Paths(
            Path(env.get("NEXTBEST_HOME") or ".nextbest").resolve(),
            _text(env, "MLFLOW_TRACKING_URI"),
        ),
        "models_dir": Path(env.get("NEXTBEST_MODELS_DIR") or PROJECT_ROOT / "models"),
        "compiled_trees": env.get("NEXTBEST_COMPILED_TREES", "1").strip().lower() not in _OFF,
        "spark_master": _text(env, "NEXTBEST_SPARK_MASTER"),
        "spark_driver_memory": _text(env, "NEXTBEST_SPARK_DRIVER_MEMORY") or "2g",
        "spark_log_level": _text(env, "NEXTBEST_SPARK_LOG_LEVEL") or "ERROR",
        "keep_work": env.get("NEXTBEST_KEEP_WORK", "").strip().lower() not in ("", *_OFF),
        "events_url": _text(env, "NEXTBEST_EVENTS_URL"),
    }


_cached: tuple[tuple, Settings] | None = None


def settings() -> Settings:
    """The process's :class:`Settings`, built once per environment.

    Rebuilt only when one of :data:`ENV_VARS` changed (tests point
    ``NEXTBEST_HOME`` elsewhere between tests).
    """
    global _cached
    key = tuple(os.environ.get(name) for name in ENV_VARS)
    if _cached is None or _cached[0] != key:
        _cached = (key, Settings.from_env())
    return _cached[1]


def models_dir() -> Path:
    """Directory of model configs: ``$NEXTBEST_MODELS_DIR`` or the repo's ``models/``."""
    return settings().models_dir


CLV_DEFAULTS: dict[str, Any] = {
    "time_unit_days": 7.0,
    "horizon_days": 365,
    "discount_rate_annual": 0.10,
    "margin": 1.0,
    "count_models": ["bgnbd", "pareto", "mbgnbd"],
    "penalizers": [0.0, 0.001, 0.01, 0.1],
    "selection_holdout_days": 84,
    "selection_aggregate_weight": 1.0,
    "seed": 42,
    "thresholds": {
        "max_abs_aggregate_error": 0.30,
        "max_holdout_mae_ratio_vs_baseline": 1.0,
    },
    "value_model": {
        "enabled": True,
        "horizon_days": 84,
        "cutoff_step_days": 14,
        "n_cutoffs": 10,
        "min_history_days": 30,
        "holdout_share": 0.25,
        "lightgbm": {
            "objective": "tweedie",
            "n_estimators": 100,
            "learning_rate": 0.1,
            "num_leaves": 15,
            "min_child_samples": 40,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.5,
            "reg_lambda": 1.0,
            "random_state": 42,
            "n_jobs": 2,
            "fit_threads": 1,
            "verbose": -1,
        },
    },
}


_LGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 80,
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "random_state": 42,
    "n_jobs": 2,
    "fit_threads": 1,
    "verbose": -1,
}

CHURN_DEFAULTS: dict[str, Any] = {
    "horizon_days": 30,
    "cutoff_step_days": 30,
    "n_cutoffs": 7,
    "min_history_days": 90,
    "lightgbm": dict(_LGBM_DEFAULTS),
    "thresholds": {
        "min_auc_gain_vs_baselines": 0.0,
        "min_auc_gain_low_vs_baselines": None,
        "max_brier": 0.25,
    },
}

NBO_DEFAULTS: dict[str, Any] = {
    "label_window_days": 30,
    "prior_window_days": 30,
    "cutoff_step_days": 30,
    "n_cutoffs": 6,
    "min_history_days": 90,
    "k": 3,
    "category_affinity": True,
    "lightgbm": dict(_LGBM_DEFAULTS),
    "thresholds": {"min_hit_gain_vs_baselines": 0.0, "min_hit_gain_low_vs_baselines": None},
}

# Uplift training (models/uplift.yaml): cross-fitting folds and seed; ``model`` is merged onto
# nextbest.models.uplift.UPLIFT_DEFAULTS (learner, trees, propensity model, trimming).
UPLIFT_TRAIN_DEFAULTS: dict[str, Any] = {
    "folds": 5,
    "seed": 0,
    "model": {"learner": "x"},
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "clv": CLV_DEFAULTS,
    "churn": CHURN_DEFAULTS,
    "nbo": NBO_DEFAULTS,
    "uplift": UPLIFT_TRAIN_DEFAULTS,
}


def merge(defaults: dict, overrides: dict | None) -> dict:
    """Recursively merge ``overrides`` onto ``defaults``; returns a new dict.

    ``None`` values in ``overrides`` mean "not given" and are skipped.
    """
    out = copy.deepcopy(defaults)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(name: str, overrides: dict | None = None, path: Path | None = None) -> dict:
    """Code defaults, then ``models/<name>.yaml``, then ``overrides`` (CLI flags)."""
    defaults = DEFAULTS.get(name, {})
    path = path or models_dir() / f"{name}.yaml"
    from_file: dict = {}
    if path.exists():
        from_file = read_yaml(path) or {}
        if not isinstance(from_file, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        unknown = sorted(set(from_file) - set(defaults)) if defaults else []
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {unknown}; known: {sorted(defaults)}")
        _check_numbers(defaults, from_file, path)
    return merge(merge(defaults, from_file), overrides)


MODEL_CONFIGS = ("clv", "churn", "nbo", "uplift")


def load_configs(
    overrides: dict[str, dict] | None = None, config_dir: Path | None = None
) -> dict[str, dict]:
    """The merged config of every model (``clv``, ``churn``, ``nbo``) for one run.

    Parameters
    ----------
    overrides : dict, optional
        Per model, the values given on the command line (``None`` = not given).
    config_dir : Path, optional
        A directory with the YAML files instead of :func:`models_dir`.
    """
    return {
        name: load_config(
            name,
            (overrides or {}).get(name),
            path=(config_dir / f"{name}.yaml") if config_dir else None,
        )
        for name in MODEL_CONFIGS
    }


def _check_numbers(defaults: dict, given: dict, path: Path, prefix: str = "") -> None:
    """A setting whose default is a number must be a number in the file too (named if not)."""
    for key, value in given.items():
        default = defaults.get(key)
        if isinstance(default, dict) and isinstance(value, dict):
            _check_numbers(default, value, path, f"{prefix}{key}.")
        elif (
            isinstance(default, (int, float))
            and not isinstance(default, bool)
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, (int, float)))
        ):
            raise ConfigError(f"{path}: {prefix}{key} must be a number, got {value!r}")


def config_hash(config: dict) -> str:
    """Stable short hash of a JSON-serialisable config."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
