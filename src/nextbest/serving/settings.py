"""Service configuration, read from the environment once at start-up.

:class:`ServiceSettings` extends the common :class:`~nextbest.config.Settings`
(``NEXTBEST_HOME``, ``MLFLOW_TRACKING_URI``, ``NEXTBEST_MODELS_DIR``, ...) with:

==============================  ==============================================================
variable                        meaning (default)
==============================  ==============================================================
``NEXTBEST_API_KEY``            bearer key(s) clients must send; comma-separated to rotate
``NEXTBEST_ALLOW_NO_AUTH``      ``1`` to run without a key (development only; logged loudly)
``NEXTBEST_HORIZON_DAYS``       horizon of ``expected_purchases`` / ``predicted_clv``
                                (``models/clv.yaml``)
``NEXTBEST_RELOAD_SECONDS``     how often the watcher looks for a new champion or snapshot
                                (30; 0 = off)
``NEXTBEST_SCORE_CHUNK``        customers scored per ``score()`` call when loading (20,000)
``NEXTBEST_MAX_BODY_BYTES``     largest request body accepted (2 MiB)
``NEXTBEST_AUDIT``              ``0`` to switch the audit log off (on)
``NEXTBEST_CONTACT_HISTORY``    CSV/Parquet of past contacts (``customer_id, offer_id,
                                timestamp``) for cooldowns and caps, as ``nextbest score
                                --contact-history`` (none)
``NEXTBEST_ADMIN_KEY``          bearer key(s) for ``GET /customers/{id}/data`` (data access);
                                comma-separated; without it that endpoint answers 403 (none)
``NEXTBEST_EVENTS_URL``         the event store (``postgresql://...`` for several hosts;
                                default SQLite ``NEXTBEST_HOME/events.db``)
``NEXTBEST_OVERLAY_CACHE``      re-decided changed customers kept per worker (10,000)
``NEXTBEST_DECISION_PROCESS``   ``0`` to re-decide changed customers in the worker itself instead
                                of its child process (:mod:`nextbest.serving.decider`)
==============================  ==============================================================
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from nextbest.config import Settings, load_config, settings_fields
from nextbest.errors import ConfigurationError

log = logging.getLogger(__name__)

API_KEY_ENV = "NEXTBEST_API_KEY"
ADMIN_KEY_ENV = "NEXTBEST_ADMIN_KEY"
ALLOW_NO_AUTH_ENV = "NEXTBEST_ALLOW_NO_AUTH"
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


def _number(env: dict, name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigurationError(f"{name}={raw!r} must be >= {minimum}")
    return value


def max_body_bytes_from_env(env: dict | None = None) -> int:
    """``NEXTBEST_MAX_BODY_BYTES`` (default 2 MiB, at least 1 KiB)."""
    env = os.environ if env is None else env
    return int(_number(env, "NEXTBEST_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1024.0))


def api_keys_from_env(env: dict | None = None) -> tuple[str, ...]:
    """The accepted bearer keys, or ``()`` when auth is explicitly disabled.

    Raises
    ------
    ConfigurationError
        If ``NEXTBEST_API_KEY`` is unset or blank and ``NEXTBEST_ALLOW_NO_AUTH``
        is not ``1``: the service refuses to start rather than run open.
    """
    env = os.environ if env is None else env
    keys = tuple(k.strip() for k in env.get(API_KEY_ENV, "").split(",") if k.strip())
    if keys:
        return keys
    if env.get(ALLOW_NO_AUTH_ENV, "") == "1":
        log.warning("!" * 72)
        log.warning(
            "%s is not set and %s=1: the nextbest API is OPEN to anyone who can reach it",
            API_KEY_ENV,
            ALLOW_NO_AUTH_ENV,
        )
        log.warning("!" * 72)
        return ()
    message = (
        f"{API_KEY_ENV} is not set: refusing to start an unauthenticated service. Set "
        f"{API_KEY_ENV}=<secret> (clients send 'Authorization: Bearer <secret>'), or "
        f"{ALLOW_NO_AUTH_ENV}=1 for local development only."
    )
    log.critical(message)
    raise ConfigurationError(message)


def admin_keys_from_env(env: dict | None = None) -> tuple[str, ...]:
    """The bearer keys of the data-access endpoint (``NEXTBEST_ADMIN_KEY``); ``()`` = off."""
    env = os.environ if env is None else env
    return tuple(k.strip() for k in env.get(ADMIN_KEY_ENV, "").split(",") if k.strip())


@dataclass(frozen=True)
class ServiceSettings(Settings):
    """The common :class:`~nextbest.config.Settings` plus what only the service reads."""

    api_keys: tuple[str, ...] = ()
    horizon_days: float = 365.0
    reload_seconds: float = 30.0
    score_chunk: int = 20_000
    audit: bool = True
    catalog_path: Path | None = field(default=None)
    contact_history: Path | None = None
    overlay_cache: int = 10_000
    decision_process: bool = True

    @property
    def audit_dir(self) -> Path:
        return self.paths.root / "audit"

    @property
    def reload_marker(self) -> Path:
        """Touched by ``POST /admin/reload`` so that every worker's watcher reloads too."""
        return self.paths.root / "serving" / "reload-requested"

    @property
    def ready_dir(self) -> Path:
        """Where each worker says it is ready (:mod:`nextbest.serving.readiness`)."""
        return self.paths.root / "serving" / "ready"

    @classmethod
    def from_env(cls, env: dict | None = None, require_key: bool = True) -> ServiceSettings:
        """Read and check the environment (see the module docstring).

        ``require_key=False`` is for commands that read the serving state
        without serving it (``nextbest customer export``).

        Raises
        ------
        ConfigurationError
            On a missing API key (unless explicitly allowed) or a malformed number.
        """
        env = os.environ if env is None else env
        common = settings_fields(env)
        keys = api_keys_from_env(env) if require_key else ()
        clv = load_config("clv", path=common["models_dir"] / "clv.yaml")
        horizon = _number(env, "NEXTBEST_HORIZON_DAYS", float(clv["horizon_days"]), 1.0)
        history = env.get("NEXTBEST_CONTACT_HISTORY", "").strip()
        return cls(
            **common,
            api_keys=keys,
            horizon_days=horizon,
            reload_seconds=_number(env, "NEXTBEST_RELOAD_SECONDS", 30.0, 0.0),
            score_chunk=int(_number(env, "NEXTBEST_SCORE_CHUNK", 20_000, 1.0)),
            audit=env.get("NEXTBEST_AUDIT", "1") != "0",
            catalog_path=common["models_dir"] / "offers.yaml",
            contact_history=Path(history).resolve() if history else None,
            overlay_cache=int(_number(env, "NEXTBEST_OVERLAY_CACHE", 10_000, 0.0)),
            decision_process=env.get("NEXTBEST_DECISION_PROCESS", "1").strip() != "0",
        )
