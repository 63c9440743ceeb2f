"""Real-time events (design docstring to come)."""

from nextbest.events.schema import (
    EVENT_TYPES,
    MAX_BATCH,
    MAX_FUTURE,
    BatchTooLarge,
    Event,
    EventBatch,
    EventError,
    Reject,
)
from nextbest.events.store import (
    AppendResult,
    Changes,
    EventStore,
    ForgetResult,
    default_url,
    open_store,
)
from nextbest.events.validate import ValidationResult, validate_events, validate_table

__all__ = [
    "EVENT_TYPES",
    "MAX_BATCH",
    "MAX_FUTURE",
    "AppendResult",
    "BatchTooLarge",
    "Changes",
    "Event",
    "EventBatch",
    "EventError",
    "EventStore",
    "ForgetResult",
    "Reject",
    "ValidationResult",
    "default_url",
    "open_store",
    "validate_events",
    "validate_table",
]
