"""Shared plumbing for nextbest models: not-fitted error, persistence, version stamp."""

from __future__ import annotations

import pickle
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from nextbest.errors import (
    ArtifactMismatchError,
    ModelInputError,
    NotFittedError,
)

TRACKED_PACKAGES = ("nextbest", "lifetimes", "pandas", "numpy", "scipy", "lightgbm", "scikit-learn")


def library_versions() -> dict[str, str]:
    """Installed versions of the packages a model's behaviour depends on."""
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def validate_columns(
    frame: pd.DataFrame,
    required: list[str] | tuple[str, ...],
    must_be_unique: list[str] | tuple[str, ...] = (),
    what: str = "input",
) -> None:
    """Check required columns and uniqueness; messages name the column and the row."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ModelInputError(
            f"{what}: missing required column(s) {missing}; found {list(frame.columns)}"
        )
    for col in must_be_unique:
        dup = frame[col].duplicated()
        if dup.any():
            row = int(dup.to_numpy().nonzero()[0][0])
            raise ModelInputError(
                f"{what}: column {col!r} must be unique; {str(frame[col].iloc[row])!r} repeats at "
                f"row {row}"
            )


class BaseModel:
    """Base class: ``fit(frame) -> self``, ``predict(frame) -> DataFrame``, ``save``/``load``.

    Subclasses set ``FORMAT_VERSION`` and keep fitted state in attributes
    ending in ``_``.
    """

    FORMAT_VERSION = 1

    def __init__(self) -> None:
        self.fitted_: bool = False
        self.metadata_: dict[str, Any] = {}

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    def save(self, path: str | Path) -> Path:
        """Pickle the model with its class name, format version and library versions."""
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "class": type(self).__name__,
            "format_version": self.FORMAT_VERSION,
            "libraries": library_versions(),
            "state": self.__dict__,
        }
        with path.open("wb") as fh:
            pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
        return path

    @classmethod
    def load(cls, path: str | Path):
        """Load a model saved by :meth:`save`; raise on a class or format mismatch."""
        with Path(path).open("rb") as fh:
            payload = pickle.load(fh)
        if (
            payload.get("class") != cls.__name__
            or payload.get("format_version") != cls.FORMAT_VERSION
        ):
            raise ArtifactMismatchError(
                f"{path}: saved as {payload.get('class')} v{payload.get('format_version')}, "
                f"expected {cls.__name__} v{cls.FORMAT_VERSION}"
            )
        obj = cls.__new__(cls)
        obj.__dict__.update(payload["state"])
        obj.metadata_ = {**obj.metadata_, "saved_with": payload["libraries"]}
        return obj
