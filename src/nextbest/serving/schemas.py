"""Typed request and response bodies of the HTTP service, with the limits they enforce.

Every limit a client can hit is a constant here and is named in the 400
answer (``"must have at most 1000 items"``, ``"must have at most 64
characters"``). Unknown fields are rejected (``extra="forbid"``) so that a
typo never passes silently, and types are strict (``strict=True``): a
number where a string is documented is a 400, never silently converted
(a timestamp is an ISO 8601 string, not seconds since 1970).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

MAX_ID_LENGTH = 64
MAX_BATCH_IDS = 1_000
MAX_TRANSACTIONS = 10_000
MAX_TEXT_LENGTH = 128
MAX_ATTRIBUTES = 32
MAX_ABS_AMOUNT = 1e9
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2200, 1, 1)


def _strip_spaces(value: str) -> str:
    """Surrounding ASCII spaces are not part of an id or a label (as in files); nothing else is
    trimmed, so the document's pattern and the service agree exactly."""
    return value.strip(" ")


# At least one character that is neither a space nor a control character; no control characters.
_VISIBLE = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"
CustomerId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=_VISIBLE),
    AfterValidator(_strip_spaces),
    Field(
        description=f"The one customer id (1 to {MAX_ID_LENGTH} characters, no control "
        "characters; kept exactly as given - leading zeros, case, inner spaces - except "
        "surrounding spaces).",
        examples=["1234"],
    ),
]
ShortText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TEXT_LENGTH, pattern=_VISIBLE),
    AfterValidator(_strip_spaces),
]


def _iso_text(value):
    """Dates and times come as ISO 8601 text: a JSON number (seconds since 1970?) is refused."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string, e.g. 2017-03-01T10:00:00Z")
    return value


# Years the service accepts, as a pattern the published document carries (JSON Schema has no
# range for date strings): 1900 to 2199.
_YEARS = r"^(19|20|21)[0-9]{2}-"
# Parsed from text leniently (a date alone is midnight), but only from text.
IsoDateTime = Annotated[
    dt.datetime,
    Field(strict=False, json_schema_extra={"pattern": _YEARS}),
    BeforeValidator(_iso_text),
]
IsoDate = Annotated[
    dt.date,
    Field(strict=False, json_schema_extra={"pattern": _YEARS}),
    BeforeValidator(_iso_text),
]
Group = Literal["treatment", "control", "explore"]
Action = Literal["retention", "cross_sell", "no_action", "non_personalised"]


def _openapi_30(example: dict | None = None):
    """``json_schema_extra`` that keeps optional fields nullable in BentoML's OpenAPI 3.0 document.

    BentoML flattens a field's ``anyOf`` to its first member when it builds
    the OpenAPI paths, so ``float | None`` would be published as a plain
    number and a client (or schemathesis) would believe null is never sent.
    OpenAPI 3.0 spells "or null" as ``nullable: true``; it is added next to
    the ``anyOf`` and survives the flattening.
    """

    def extra(schema: dict, _model) -> None:
        for prop in schema.get("properties", {}).values():
            if {"type": "null"} in prop.get("anyOf", []):
                prop["nullable"] = True
        if example is not None:
            schema["example"] = example

    return extra


_STRICT = ConfigDict(extra="forbid", strict=True, json_schema_extra=_openapi_30())


# -- requests ------------------------------------------------------------------------------------
class PredictRequest(BaseModel):
    """One customer id; ``record_contact`` when the decision is sent to the customer."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra=_openapi_30({"customer_id": "1234"})
    )

    customer_id: CustomerId
    record_contact: bool = Field(
        default=False,
        description="True when the app sends the chosen action now: a contact event is "
        "stored (cooldowns and caps apply at once). A lookup is not a send.",
    )


class PredictBatchRequest(BaseModel):
    """Up to :data:`MAX_BATCH_IDS` customer ids (duplicates are answered once)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra=_openapi_30({"customer_ids": ["1234", "2001", "no-such-customer"]}),
    )

    customer_ids: list[CustomerId] = Field(
        min_length=1, max_length=MAX_BATCH_IDS, description=f"1 to {MAX_BATCH_IDS} customer ids."
    )


class Transaction(BaseModel):
    """One transaction line, in the nextbest transactions schema."""

    model_config = _STRICT

    timestamp: IsoDateTime = Field(
        description=f"ISO 8601, from {EARLIEST_DATE} to before {LATEST_DATE}; time "
        "zones are converted to UTC, naive values are UTC."
    )
    amount: float = Field(
        ge=-MAX_ABS_AMOUNT,
        le=MAX_ABS_AMOUNT,
        allow_inf_nan=False,
        description="Money for the line; negative = refund (netted against the same day).",
    )
    order_id: ShortText | None = None
    category: ShortText | None = Field(
        default=None, description="Product category / department, e.g. PRODUCE."
    )
    channel: ShortText | None = None

    @field_validator("timestamp")
    @classmethod
    def _in_range(cls, value: dt.datetime) -> dt.datetime:
        try:
            utc = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
        except OverflowError:
            utc = None
        if utc is None or not (
            dt.datetime.combine(EARLIEST_DATE, dt.time())
            <= utc
            < dt.datetime.combine(LATEST_DATE, dt.time())
        ):
            raise ValueError(
                f"timestamp must be from {EARLIEST_DATE} to before {LATEST_DATE} (UTC)"
            )
        return value


AttributeValue = (
    Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)] | float | int | bool | None
)


class PredictFeaturesRequest(BaseModel):
    """A customer who is not in the snapshot: their transactions, consent and attributes (cold
    start)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra=_openapi_30(
            {
                "customer_id": "new-0001",
                "consent_profiling": True,
                "as_of": "2018-01-01",
                "transactions": [
                    {
                        "timestamp": "2017-10-02T10:15:00",
                        "amount": 42.5,
                        "category": "PRODUCE",
                        "order_id": "b1",
                    },
                    {
                        "timestamp": "2017-11-20T17:40:00",
                        "amount": 18.0,
                        "category": "MEAT",
                        "order_id": "b2",
                    },
                    {
                        "timestamp": "2017-12-18T09:05:00",
                        "amount": 61.2,
                        "category": "GROCERY",
                        "order_id": "b3",
                    },
                ],
                "attributes": {"income": "50-74K"},
            }
        ),
    )

    customer_id: CustomerId
    transactions: list[Transaction] = Field(
        min_length=1,
        max_length=MAX_TRANSACTIONS,
        description=f"1 to {MAX_TRANSACTIONS:,} lines before as_of.",
    )
    consent_profiling: bool = Field(
        default=True,
        description="False: the customer objected to profiling; "
        "non-personalised action, no scores.",
    )
    as_of: IsoDate | None = Field(
        default=None,
        description="First day NOT observed; default: the snapshot's as_of.",
    )
    attributes: dict[str, AttributeValue] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description="Customer attributes the models know (e.g. demographics); unknown names are "
        "rejected.",
    )

    @field_validator("as_of")
    @classmethod
    def _as_of_in_range(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and not EARLIEST_DATE <= value < LATEST_DATE:
            raise ValueError(f"as_of must be from {EARLIEST_DATE} to before {LATEST_DATE}")
        return value


MAX_EVENTS = 1_000
_TEXT_256 = {"type": "string", "maxLength": 256, "nullable": True}
_NUMBER = {"type": "number", "nullable": True}
_TIME = {
    "type": "string",
    "nullable": True,
    "description": "ISO 8601, e.g. 2024-05-01T10:00:00Z (no offset: UTC); at most a day ahead.",
}
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Event",
    "description": "One event. Which fields a type takes (* required): purchase: timestamp*, "
    "amount*, category, order_id, channel, quantity; contact: contacted_at*, group* "
    "(treatment, control, explore), offer_id (* for treatment), propensity, channel; "
    "response: at*, converted* (0/1), offer_id, revenue; consent: at*, and "
    "consent_profiling (false = objection to profiling), or channel and opt_in. Every type "
    "takes `at` in place of its time field, and an optional event_id (a repeat with equal "
    "content is a no-op).",
    "required": ["type", "customer_id"],
    "additionalProperties": False,
    "properties": {
        "type": {"type": "string", "enum": ["purchase", "contact", "response", "consent"]},
        "customer_id": {"type": "string", "minLength": 1, "maxLength": 256},
        "event_id": {
            "type": "string",
            "pattern": "^[A-Za-z0-9._:-]{1,64}$",
            "nullable": True,
            "description": "Client-given id (assigned by the store when absent).",
        },
        "at": _TIME,
        "timestamp": _TIME,
        "contacted_at": _TIME,
        "amount": _NUMBER,
        "quantity": _NUMBER,
        "category": _TEXT_256,
        "order_id": _TEXT_256,
        "channel": _TEXT_256,
        "offer_id": _TEXT_256,
        "group": {
            "type": "string",
            "enum": ["treatment", "control", "explore"],
            "nullable": True,
        },
        "propensity": {
            "type": "number",
            "minimum": 0,
            "exclusiveMinimum": True,
            "maximum": 1,
            "nullable": True,
        },
        "converted": {"description": "0 or 1 (or false/true)."},
        "revenue": _NUMBER,
        "consent_profiling": {"type": "boolean", "nullable": True},
        "opt_in": {"type": "boolean", "nullable": True},
    },
}
EventIn = Annotated[dict[str, Any], WithJsonSchema(EVENT_SCHEMA)]


class EventsRequest(BaseModel):
    """Up to :data:`MAX_EVENTS` events, stored all or nothing."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra=_openapi_30(
            {
                "events": [
                    {
                        "type": "purchase",
                        "event_id": "pos-7781-1",
                        "customer_id": "1234",
                        "timestamp": "2018-01-02T10:00:00Z",
                        "amount": 30.0,
                        "category": "PRODUCE",
                    },
                    {
                        "type": "consent",
                        "customer_id": "2001",
                        "at": "2018-01-02T11:00:00Z",
                        "consent_profiling": False,
                    },
                ]
            }
        ),
    )

    events: list[EventIn] = Field(
        min_length=1,
        json_schema_extra={"maxItems": MAX_EVENTS},
        description=f"1 to {MAX_EVENTS:,} events; more is a 413. All are validated first: one "
        "problem and nothing is stored (422 lists each event index and field).",
    )


class ReloadRequest(BaseModel):
    """Reload models and snapshot now."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra=_openapi_30({"force": False})
    )

    force: bool = Field(
        default=False, description="Rebuild even if no champion or snapshot changed."
    )


# -- responses -----------------------------------------------------------------------------------
class OfferOut(BaseModel):
    offer_id: str
    category: str | None = Field(description="Product category; null for an offer without one.")
    p_convert: float = Field(
        description="P(customer buys the offer's category in the next window)."
    )
    expected_value: float = Field(
        description="Expected value in $ on the offer's channel: p_convert x the customer's "
        "channel preference x value - cost (with an uplift model, the incremental value)."
    )
    channel: str | None = Field(
        default=None,
        description="The permitted channel with the best expected value for this customer.",
    )


class ReasonOut(BaseModel):
    code: str = Field(description="Stable reason code, e.g. HIGH_RISK_HIGH_VALUE.")
    text: str = Field(description="Plain-language explanation.")


class Decision(BaseModel):
    """The ``nextbest.scoring.score`` row of one customer (scores are null for opted-out
    customers)."""

    model_config = ConfigDict(
        json_schema_extra=_openapi_30(
            {
                "customer_id": "1234",
                "p_alive": 0.97,
                "expected_purchases": 41.3,
                "expected_spend": 38.2,
                "predicted_clv": 1478.5,
                "churn_probability": 0.06,
                "action": "cross_sell",
                "action_offer_id": "XS-DELI",
                "offers": [
                    {
                        "offer_id": "XS-DELI",
                        "category": "DELI",
                        "p_convert": 0.31,
                        "expected_value": 0.94,
                        "channel": "email",
                    }
                ],
                "reasons": [
                    {
                        "code": "CROSS_SELL_PROPENSITY",
                        "text": "buys PRODUCE weekly, no DELI in 45 days",
                    }
                ],
                "model_versions": {"nextbest-churn": "1", "nextbest-clv": "1", "nextbest-nbo": "1"},
                "consent_profiling": True,
                "as_of": "2018-01-01",
                "horizon_days": 365.0,
                "channel": "email",
                "group": "treatment",
                "propensity": 1.0,
            }
        )
    )

    customer_id: str
    p_alive: float | None = Field(description="P(still active at as_of).")
    expected_purchases: float | None = Field(description="Expected purchases over horizon_days.")
    expected_spend: float | None = Field(description="Expected spend per purchase ($).")
    predicted_clv: float | None = Field(
        description="Discounted value over horizon_days ($, times margin)."
    )
    churn_probability: float | None
    action: Action
    action_offer_id: str | None
    offers: list[OfferOut] = Field(description="Top-k eligible offers, best first.")
    reasons: list[ReasonOut]
    model_versions: dict[str, str] = Field(
        description="Registry version of each model that decided."
    )
    consent_profiling: bool
    as_of: dt.date | None
    horizon_days: float
    channel: str | None = Field(
        default=None,
        description="Where the action goes out (a channel the customer has not refused); "
        "null: nothing is sent.",
    )
    group: Group = Field(
        description="treatment: the chosen action; control: in the randomized holdout, nothing "
        "is sent; explore: a random eligible action (to learn what works)."
    )
    propensity: float = Field(
        ge=0.0, le=1.0, description="Probability with which the policy chose this arm."
    )
    contact_event_id: str | None = Field(
        default=None,
        description="With record_contact: the id of the contact event stored for this answer "
        "(null when the action sends nothing).",
    )


class DecisionBatch(BaseModel):
    """Decisions for the known ids (request order) and the ids not in the snapshot."""

    model_config = ConfigDict(json_schema_extra=_openapi_30())

    decisions: list[Decision]
    not_found: list[str] = Field(
        description="Requested ids with no snapshot row (answer them with /predict_features)."
    )


class ReloadResult(BaseModel):
    model_config = ConfigDict(json_schema_extra=_openapi_30())

    outcome: Literal["reloaded", "unchanged", "in_progress"] = Field(
        description="in_progress (HTTP 202): still building; the versions shown are the ones still "
        "served."
    )
    model_versions: dict[str, str]
    as_of: dt.date | None
    n_customers: int
    build_seconds: float


class EventsResult(BaseModel):
    """What ``POST /events`` stored."""

    model_config = ConfigDict(json_schema_extra=_openapi_30())

    accepted: int = Field(description="Events in the request, all valid.")
    new: int = Field(description="Events stored now.")
    duplicates: int = Field(description="Repeats of stored events (same event_id and content).")
    event_ids: list[str] = Field(description="Each event's id, in request order.")
    head: int = Field(description="The store's highest sequence number after the append.")
