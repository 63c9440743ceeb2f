"""Shared plumbing for the LightGBM models: feature frames and categorical encoding."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from nextbest.errors import ModelInputError


def encode_categoricals(frame: pd.DataFrame, levels: dict[str, list[str]]) -> pd.DataFrame:
    """Return a copy with ``levels`` columns as pandas Categoricals with fixed categories.

    Unseen values become missing, so training and scoring encode identically.
    """
    out = frame.copy()
    for col, cats in levels.items():
        values = (
            out[col].astype("string") if col in out.columns else pd.Series(pd.NA, index=out.index)
        )
        out[col] = pd.Categorical(
            values.astype(object).where(values.notna(), None), categories=cats
        )
    return out


def learn_levels(frame: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """Sorted distinct non-missing values of each column, as strings."""
    return {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in columns}


def check_features(frame: pd.DataFrame, feature_names: list[str], what: str) -> None:
    """Raise :class:`ModelInputError` naming the feature columns a frame lacks."""
    missing = [c for c in feature_names if c not in frame.columns]
    if missing:
        raise ModelInputError(
            f"{what}: missing feature column(s) {missing[:10]}{' ...' if len(missing) > 10 else ''}"
        )


def as_matrix(
    frame: pd.DataFrame, feature_names: list[str], levels: dict[str, list[str]]
) -> pd.DataFrame:
    """Feature frame in the model's column order with categoricals encoded; numbers as float.

    Built column by column into one new frame (no per-column assignment into a copy): on a
    one-customer request most of the time was pandas bookkeeping, not the model.
    """
    cat_levels = {k: v for k, v in levels.items() if k in feature_names}
    cats = encode_categoricals(frame[list(cat_levels)], cat_levels) if cat_levels else None
    columns = {}
    for col in feature_names:
        if col in cat_levels:
            columns[col] = cats[col]
            continue
        values = frame[col]
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            columns[col] = values.to_numpy(dtype="float64", na_value=np.nan)
        else:
            columns[col] = pd.to_numeric(values, errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan
            )
    return pd.DataFrame(columns, index=frame.index, columns=feature_names)


def model_matrix(
    frame: pd.DataFrame, feature_names: list[str], levels: dict[str, list[str]]
) -> np.ndarray:
    """The model matrix (float64; :func:`as_matrix`'s columns, categoricals as codes) as LightGBM
    encodes a pandas frame, built without that frame.

    Categoricals become their level's position (unseen or missing -> NaN) by
    one index lookup, and every numeric column is converted in one call: a
    re-decided customer is one row, where the per-column Categorical
    constructions cost more than the model.
    """
    n = len(frame)
    X = np.empty((n, len(feature_names)), dtype="float64")
    dtypes = frame.dtypes.to_dict()
    numeric: list[str] = []
    at: list[int] = []
    for j, col in enumerate(feature_names):
        if col in levels:
            if col not in dtypes:
                X[:, j] = np.nan
                continue
            values = frame[col]
            if not isinstance(values.dtype, pd.StringDtype):
                values = values.astype("string")
            X[:, j] = _level_codes(tuple(levels[col]), values.to_numpy(dtype=object, na_value=None))
            continue
        if pd.api.types.is_numeric_dtype(dtypes[col]) or pd.api.types.is_bool_dtype(dtypes[col]):
            numeric.append(col)
            at.append(j)
        else:
            X[:, j] = pd.to_numeric(frame[col], errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan
            )
    if numeric:
        X[:, at] = frame[numeric].to_numpy(dtype="float64", na_value=np.nan)
    return X


SMALL_FRAME = 64
"""Rows up to which categoricals are coded by a dict lookup (a re-decided customer, a request)
rather than by a pandas index (a batch): the same codes, without the index's fixed cost."""


def _level_codes(levels: tuple[str, ...], values: np.ndarray) -> np.ndarray:
    """Each value's position in ``levels`` as float (NaN: missing or unseen)."""
    if len(values) <= SMALL_FRAME:
        where = _level_positions(levels)
        return np.array([where.get(v, np.nan) for v in values], dtype="float64")
    codes = _level_index(levels).get_indexer(values)
    return np.where(codes >= 0, codes, np.nan)


@functools.lru_cache(maxsize=256)
def _level_positions(levels: tuple[str, ...]) -> dict:
    return {level: float(k) for k, level in enumerate(levels)}


@functools.lru_cache(maxsize=256)
def _level_index(levels: tuple[str, ...]) -> pd.Index:
    """The index of a categorical's levels, kept (with its hash table) between calls."""
    return pd.Index(list(levels), dtype=object)


def fit_estimator(estimator_cls, params: dict, X, y, **fit_kwargs):
    """Fit a LightGBM estimator with ``params["fit_threads"]`` threads, predict with ``n_jobs``.

    On a busy machine LightGBM's OpenMP threads spin against each other: measured on the
    shared 2-core CI box (load ~5), fitting 100 trees on 22k rows took 1.0 s with one thread
    and 6.5-12 s with two. ``fit_threads`` (default 1) is used for fitting only; ``n_jobs`` is
    kept on the fitted estimator for prediction (compiled trees use it as their thread count).
    """
    params = dict(params)
    threads = params.pop("fit_threads", 1)
    predict_jobs = params.get("n_jobs")
    estimator = estimator_cls(**{**params, "n_jobs": int(threads)})
    estimator.fit(X, y, **fit_kwargs)
    if predict_jobs is not None:
        estimator.set_params(n_jobs=predict_jobs)
    return estimator
