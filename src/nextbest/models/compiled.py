"""LightGBM predictions through compiled trees (lleaves), with LightGBM itself as the fallback.

Scoring evaluates the offer model on about a million (customer, offer) pairs
per 100k customers, and there the cost is LightGBM walking its trees. lleaves
compiles a LightGBM model to native code with LLVM: the same predictions
(equal to ~1e-15, tested), about 10x faster on these machines.

* Models are compiled lazily, on the first prediction in a process, and only
  for batches of at least :data:`MIN_ROWS` rows (a one-customer request is
  not worth a compile).
* The compiled library is cached on disk under ``NEXTBEST_HOME/cache/lleaves``
  keyed by a hash of the model text, so a service reload, a batch worker or
  the next run loads it instead of compiling again; in memory it is kept per
  process, keyed the same way. If the home is not writable a temporary
  directory is used.
* Anything that goes wrong (lleaves or llvmlite missing, a compile error, a
  model lleaves does not support) logs one warning and falls back to
  ``Booster.predict``. ``NEXTBEST_COMPILED_TREES=0`` turns compilation off.

Nothing here is pickled: models keep their LightGBM booster, and the compiled
form lives only in this module's per-process cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from nextbest.config import settings

log = logging.getLogger(__name__)

MIN_ROWS = 2_000
_compiled: dict[str, object] = {}  # model hash -> lleaves.Model, or None if it cannot be compiled
_lock = threading.Lock()


def enabled() -> bool:
    """Whether compiled trees are on (``NEXTBEST_COMPILED_TREES``, see :mod:`nextbest.config`)."""
    return settings().compiled_trees


def predict(booster, X: np.ndarray, num_threads: int | None = None) -> np.ndarray:
    """``booster.predict(X)`` (probabilities for a binary model), compiled when worthwhile.

    ``X`` is a float matrix in the model's feature order with categoricals as codes
    (missing = NaN), exactly what ``Booster.predict`` takes.
    """
    X = np.ascontiguousarray(X, dtype="float64")
    if len(X) >= MIN_ROWS and enabled():
        model = _compiled_model(booster)
        if model is not None:
            return np.asarray(model.predict(X, n_jobs=num_threads or os.cpu_count() or 1))
    kwargs = {"num_threads": int(num_threads)} if num_threads else {}
    return booster.predict(X, **kwargs)


def predict_estimator(estimator, X: np.ndarray) -> np.ndarray:
    """A fitted LightGBM estimator's predictions on a float matrix (P(class 1) for a binary
    classifier), with the estimator's ``n_jobs`` as the thread count."""
    n_jobs = estimator.get_params().get("n_jobs")
    return predict(
        estimator.booster_, X, int(n_jobs) if isinstance(n_jobs, int) and n_jobs > 0 else None
    )


def single_threaded(*models, _depth: int = 3) -> None:
    """Let every estimator inside ``models`` predict with one thread (``n_jobs=1``).

    For a model that predicts a few rows at a time while something else keeps
    the cores busy (a re-decided customer in the service; one of several batch
    processes or Spark tasks): an OpenMP team of two threads on a busy 2-core
    host waits a scheduler time slice per call for its second thread. Measured
    on a re-decision with the Complete Journey champions under load: 47 ms
    with the boosted CLV's two threads, 35 ms with one. Predictions do not
    depend on the thread count. Estimators are found among the models'
    attributes (and in their dicts, lists and sub-models, ``_depth`` deep).
    """
    for model in models:
        if model is None or _depth < 0:
            continue
        params = model.get_params(deep=False) if hasattr(model, "get_params") else {}
        if "n_jobs" in params and hasattr(model, "set_params"):
            model.set_params(n_jobs=1)
            continue
        if isinstance(model, dict):
            single_threaded(*model.values(), _depth=_depth - 1)
        elif isinstance(model, list | tuple):
            single_threaded(*model, _depth=_depth - 1)
        elif hasattr(model, "__dict__") and not isinstance(model, type):
            single_threaded(*vars(model).values(), _depth=_depth - 1)


def _compiled_model(booster):
    key = getattr(booster, "_nextbest_tree_key", None)
    text = None
    if key is None:  # hash the model text once per booster object, not per call
        text = booster.model_to_string()
        key = hashlib.sha256(text.encode()).hexdigest()[:24]
        booster._nextbest_tree_key = key
    with _lock:
        if key in _compiled:
            return _compiled[key]
        try:
            import lleaves

            directory = _cache_dir()
            model_file = directory / f"{key}.txt"
            library = directory / f"{key}.so"
            if not model_file.exists():
                text = text or booster.model_to_string()
                tmp = model_file.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(text)
                tmp.replace(model_file)
            model = lleaves.Model(model_file=str(model_file))
            if library.exists():
                model.compile(cache=str(library))  # loads the cached library
            else:  # compile next to it and rename: a concurrent reader never sees half a file
                partial = directory / f"{key}.{os.getpid()}.so.tmp"
                model.compile(cache=str(partial))
                partial.replace(library)
            _compiled[key] = model
        except Exception as exc:
            log.warning(
                "compiled trees unavailable (%s: %s); scoring with LightGBM",
                type(exc).__name__,
                exc,
            )
            _compiled[key] = None
        return _compiled[key]


def _cache_dir() -> Path:
    for candidate in (
        settings().paths.cache / "lleaves",
        Path(tempfile.gettempdir()) / "nextbest-lleaves",
    ):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            probe = candidate / f".probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
            return candidate
        except OSError:
            continue
    raise OSError("no writable directory for compiled trees")
