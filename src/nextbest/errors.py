"""Every error nextbest raises on purpose, under one root.

The command line catches :class:`NextbestError` once and prints one ``error:``
line (exit code 2); the HTTP service maps each class to one status through
``http_status``. Anything else is a bug and keeps its traceback.

Builtin bases (``ValueError``, ``LookupError``, ``RuntimeError``) are kept
where callers reasonably catch them.
"""

from __future__ import annotations

from typing import Any


class NextbestError(Exception):
    """Root of every error nextbest raises on purpose.

    ``http_status`` is the status the service answers with; ``error`` a short,
    stable message for clients, ``detail`` what exactly was wrong.
    """

    http_status = 500
    error = "internal error"

    def __init__(self, detail: Any = None, error: str | None = None) -> None:
        message = error or (detail if isinstance(detail, str) else None) or self.error
        super().__init__(message)
        self.detail = detail
        if error is not None:
            self.error = error

    @property
    def status(self) -> int:
        """Alias of ``http_status``."""
        return self.http_status


# -- input: files, frames, catalogs, configs ---------------------------------------------------


class InputError(NextbestError, ValueError):
    """Input that cannot be used as given (the message names what and where)."""

    http_status = 400
    error = "invalid input"

    def __init__(self, message: str = "", detail: Any = None) -> None:
        super().__init__(detail if detail is not None else message, error=message or None)


class SchemaError(InputError):
    """A table cannot be used at all (a required column is missing, the file is unreadable)."""


class CatalogError(InputError):
    """The offer catalog is invalid (a missing key, a bad value, a duplicate offer)."""


class ConfigError(InputError):
    """A model config file or a setting is invalid."""


class ConfigurationError(ConfigError, RuntimeError):
    """The service cannot start with these settings (e.g. no API key)."""


# -- models -------------------------------------------------------------------------------------


class ModelError(NextbestError):
    """A model cannot be trained, loaded or applied."""


class NotFittedError(ModelError, RuntimeError):
    """A model was used before ``fit``."""


class NotApplicableError(ModelError, RuntimeError):
    """A model cannot be trained on this data (e.g. no product categories for offers)."""


class ArtifactMismatchError(ModelError, RuntimeError):
    """A saved model was made for another model class or format version."""


class ModelInputError(ModelError, ValueError):
    """A frame given to a model lacks a column or breaks a rule (the message names them)."""

    http_status = 422


class ConvergenceError(ModelError, RuntimeError):
    """A model fit did not converge with any setting tried (the message lists the attempts)."""


class GateFailedError(ModelError):
    """A freshly trained model did not pass its promotion gate, so nothing can be served."""


class NoChampionError(ModelError, LookupError):
    """No registered version carries the ``champion`` alias yet."""

    http_status = 503

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else self.error


class NoSnapshotError(NextbestError, LookupError):
    """No feature snapshot has been written yet (run ``nextbest train``)."""

    http_status = 503

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else "no feature snapshot"


# -- batch ---------------------------------------------------------------------------------------


class BatchError(NextbestError, ValueError):
    """A batch job cannot run as asked (output, engine, work directory)."""


class EmptyInput(BatchError):
    """The input holds no usable row at all."""


class ResumeError(BatchError):
    """``--resume`` was asked for a job whose inputs or models changed."""


# -- service -------------------------------------------------------------------------------------


class ServiceError(NextbestError):
    """An HTTP error answer: ``http_status`` is the status, ``error`` a short stable message."""

    def __init__(self, detail: Any = None, error: str | None = None) -> None:
        super().__init__(detail, error=error or self.error)


class Unauthorized(ServiceError):
    http_status = 401
    error = "missing or invalid API key"


class UnknownCustomer(ServiceError):
    http_status = 404
    error = "unknown customer_id"


class ReloadFailed(ServiceError):
    """A reload could not build a new state; the previous state keeps serving."""

    http_status = 409
    error = "reload failed; still serving the previous models and snapshot"


class InvalidInput(ServiceError):
    http_status = 422
    error = "invalid input"


class NotReady(ServiceError):
    http_status = 503
    error = "service not ready: models and snapshot are still loading"
