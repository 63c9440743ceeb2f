"""The one promotion gate: a model is promoted to ``champion`` only if every threshold passes.

Thresholds live in ``models/<model>.yaml`` under ``thresholds``; a key's
prefix gives its direction: ``min_<measure>`` needs the value >= the limit,
``max_<measure>`` needs it <= the limit. A missing or ``null`` limit passes; a
non-finite value fails (an undefined measure is never a pass).
"""

from __future__ import annotations

import math
from typing import Any

from nextbest.errors import ConfigError


def gate(values: dict[str, float], thresholds: dict[str, float | None]) -> dict[str, Any]:
    """Check ``values`` against ``thresholds`` (same keys).

    Returns
    -------
    dict
        ``{"passed": bool, "checks": {key: {"value", "limit", "passed"}}}``,
        logged as ``model/gate.json`` with every run.

    Raises
    ------
    ConfigError
        If a threshold key starts with neither ``min_`` nor ``max_``, or has no value.
    """
    checks = {}
    for key, limit in thresholds.items():
        if not key.startswith(("min_", "max_")):
            raise ConfigError(f"threshold {key!r} must start with min_ or max_")
        if key not in values:
            raise ConfigError(f"threshold {key!r} has no measured value; known: {sorted(values)}")
        value = float(values[key])
        if limit is None:
            passed = True
        elif not math.isfinite(value):
            passed = False
        else:
            passed = value >= limit if key.startswith("min_") else value <= limit
        checks[key] = {"value": value, "limit": limit, "passed": bool(passed)}
    return {"passed": all(c["passed"] for c in checks.values()), "checks": checks}
