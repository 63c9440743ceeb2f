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
    ending in ``_``. A subclass whose older files still make sense lists their
    versions in ``OLDER_FORMATS`` and fills what they lack in :meth:`_upgrade`.
    """

    FORMAT_VERSION = 1
    OLDER_FORMATS: tuple[int, ...] = ()

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
        """Load a model saved by :meth:`save`; raise on a class or format mismatch.

        A file of one of ``OLDER_FORMATS`` loads too, upgraded by :meth:`_upgrade`.
        """
        with Path(path).open("rb") as fh:
            payload = pickle.load(fh)
        version = payload.get("format_version")
        if payload.get("class") != cls.__name__ or (
            version != cls.FORMAT_VERSION and version not in cls.OLDER_FORMATS
        ):
            readable = ", ".join(f"v{v}" for v in (*cls.OLDER_FORMATS, cls.FORMAT_VERSION))
            raise ArtifactMismatchError(
                f"{path}: saved as {payload.get('class')} v{version}, "
                f"expected {cls.__name__} {readable}"
            )
        obj = cls.__new__(cls)
        obj.__dict__.update(payload["state"])
        obj._upgrade(version)
        obj.metadata_ = {**obj.metadata_, "saved_with": payload["libraries"]}
        return obj

    def _upgrade(self, format_version: int) -> None:
        """Fill the state a file of an older format lacks (nothing to do by default)."""
