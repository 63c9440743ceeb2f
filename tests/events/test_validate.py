"""Event validation: every bad input names the event index and the field, in our own words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from nextbest.errors import SchemaError
from nextbest.events import (
    MAX_BATCH,
    BatchTooLarge,
    EventError,
    validate_events,
    validate_table,
)
from nextbest.events.ids import EVENT_ID_PATTERN, new_event_ids

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def purchase(**extra):
    return {
        "type": "purchase",
        "customer_id": "00042",
        "timestamp": "2024-05-01T10:00:00Z",
        "amount": 30.0,
    } | extra


def consent(**extra):
    return {"type": "consent", "customer_id": "1", "at": "2024-05-01T10:00:00Z"} | extra


def contact(**extra):
    return {
        "type": "contact",
        "customer_id": "1",
        "contacted_at": "2024-05-01",
        "group": "treatment",
        "offer_id": "EMAIL-WOMENS",
    } | extra


def response(**extra):
    return {"type": "response", "customer_id": "1", "at": "2024-05-02", "converted": 1} | extra


def only_problem(event, now=NOW, **kwargs):
    """Validate [ok, event] and return the messages about event 1."""
    result = validate_events([purchase(), event], now=now, **kwargs)
    assert len(result.accepted) == 1 and result.accepted.index == [0]
    return [r.message() for r in result.rejects]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"type": "refund", "customer_id": "1"}, "events[1].type: unknown event type 'refund'"),
        ({"customer_id": "1", "amount": 3}, "events[1].type: required"),
        (purchase(amount=None), "events[1].amount: required for a purchase event"),
        ({k: v for k, v in purchase().items() if k != "amount"}, "events[1].amount: required"),
        (consent(), "events[1].consent_profiling: a consent event needs consent_profiling"),
        (purchase(timestamp="2024-06-03T12:00:01Z"), "events[1].timestamp: more than 24 h in"),
        (purchase(timestamp="yesterday"), "events[1].timestamp: not an ISO 8601 time"),
        (purchase(timestamp="1899-12-31"), "events[1].timestamp: before 1900-01-01"),
        (purchase(event_id="has space"), "events[1].event_id: malformed"),
        (purchase(event_id="x" * 65), "events[1].event_id: malformed"),
        (purchase(event_id=""), "events[1].event_id: malformed"),
        (purchase(event_id="ünï"), "events[1].event_id: malformed"),
        (purchase(customer_id=42), "events[1].customer_id: must be a string, got the number 42"),
        (purchase(customer_id=""), "events[1].customer_id: must not be empty"),
        (purchase(customer_id=" 7"), "events[1].customer_id: has leading or trailing spaces"),
        (purchase(customer_id="x" * 257), "events[1].customer_id: longer than 256 characters"),
        (purchase(amount="30"), "events[1].amount: must be a number, got the string '30'"),
        (purchase(amount=True), "events[1].amount: must be a number, got the boolean true"),
        (purchase(amount=float("inf")), "events[1].amount: must be a finite number"),
        (purchase(category=3), "events[1].category: must be a string"),
        (purchase(ammount=3), "events[1].ammount: unknown field; a purchase event takes"),
        (purchase(offer_id="X"), "events[1].offer_id: not a field of a purchase event"),
        (purchase(at="2024-05-01"), "events[1].at: give either timestamp or at, not both"),
        ({"type": "purchase", "customer_id": "1", "amount": 1}, "events[1].timestamp: required"),
        (consent(consent_profiling="no"), "events[1].consent_profiling: must be true or false"),
        (consent(consent_profiling=0), "events[1].consent_profiling: must be true or false"),
        (consent(channel="email"), "events[1].opt_in: required with channel"),
        (consent(opt_in=True), "events[1].channel: required with opt_in"),
        (
            consent(consent_profiling=False, channel="sms", opt_in=False),
            "events[1].consent_profiling: give consent_profiling, or channel and opt_in, not both",
        ),
        (contact(group="holdout"), "events[1].group: must be treatment, control, explore"),
        (contact(group=None), "events[1].group: required for a contact event"),
        (contact(offer_id=""), "events[1].offer_id: required for a treatment contact"),
        (contact(propensity=0), "events[1].propensity: must be in (0, 1]"),
        (contact(propensity=1.5), "events[1].propensity: must be in (0, 1]"),
        ({**contact(), "contacted_at": None}, "events[1].contacted_at: required"),
        (response(converted=2), "events[1].converted: must be 0 or 1"),
        (response(converted=None), "events[1].converted: required for a response event"),
        (response(revenue="5"), "events[1].revenue: must be a number"),
        ("purchase", "events[1]: must be an object with a type, got the string 'purchase'"),
    ],
)
def test_each_bad_event_is_named_by_index_and_field(event, message):
    messages = only_problem(event)
    assert any(m.startswith(message) for m in messages), messages


def test_messages_are_our_own_words():
    bad = [purchase(customer_id=1, amount="x", timestamp=3), consent(), {"type": None}]
    text = " ".join(r.message() for r in validate_events(bad, now=NOW).rejects)
    for foreign in ("pydantic", "errors.pydantic.dev", "ValidationError", "Input should", "dict"):
        assert foreign not in text


def test_a_problem_per_field_and_no_cascade():
    """A wrong type for a field is one reject, not also 'required'."""
    result = validate_events([purchase(amount="30", customer_id=7)], now=NOW)
    assert [(r.index, r.field) for r in result.rejects] == [(0, "customer_id"), (0, "amount")]


def test_good_events_of_every_type_are_accepted_as_given():
    events = [
        purchase(category="PRODUCE", order_id="o-1", channel="store", quantity=2),
        contact(propensity=0.25, channel="email"),
        contact(group="control", offer_id=None),
        contact(group="explore", offer_id=""),
        response(converted=True, revenue=12.5, offer_id="EMAIL-WOMENS"),
        response(converted=0),
        consent(consent_profiling=False),
        consent(channel="sms", opt_in=True),
        {"type": "purchase", "customer_id": "9", "at": "2024-05-01 10:00:00+02:00", "amount": -3},
    ]
    result = validate_events(events, now=NOW)
    assert result.ok, [r.message() for r in result.rejects]
    got = result.events()
    assert got[0].customer_id == "00042" and got[0].quantity == 2.0 and got[0].amount == 30.0
    assert got[1].propensity == 0.25 and got[1].offer_id == "EMAIL-WOMENS"
    assert got[2].offer_id == "" and got[3].offer_id == ""
    assert got[4].converted == 1 and got[4].revenue == 12.5
    assert got[6].consent_profiling is False and got[7].opt_in is True
    assert got[8].at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert all(EVENT_ID_PATTERN.fullmatch(e.event_id) for e in got)


def test_future_tolerance_is_configurable():
    late = purchase(timestamp="2024-06-01T18:00:00Z")
    assert validate_events([late], now=NOW).ok
    strict = validate_events([late], now=NOW, max_future=timedelta(hours=1))
    assert [r.message() for r in strict.rejects] == [
        "events[0].timestamp: more than 1 h in the future (now 2024-06-01T12:00:00Z)"
    ]


def test_client_event_ids_are_kept_and_missing_ones_assigned_in_order():
    result = validate_events([purchase(event_id="pos-7:line.2_a"), purchase(), purchase()], now=NOW)
    ids = result.accepted.columns["event_id"]
    assert ids[0] == "pos-7:line.2_a"
    assert len(ids[1]) == 26 and ids[1] < ids[2]


def test_assigned_ids_are_ulids_increasing_within_the_process():
    first, second = new_event_ids(1000), new_event_ids(3)
    assert first == sorted(first) and first[-1] < second[0]
    assert len(set(first)) == 1000
    assert all(EVENT_ID_PATTERN.fullmatch(i) and len(i) == 26 for i in first + second)


def test_oversize_batch_is_one_error_with_413():
    with pytest.raises(BatchTooLarge, match="1,001 events in one request; at most 1,000") as err:
        validate_events([purchase()] * (MAX_BATCH + 1), now=NOW)
    assert err.value.http_status == 413
    assert len(validate_events([purchase()] * MAX_BATCH, now=NOW).accepted) == MAX_BATCH
    assert len(validate_events([purchase()] * 1500, now=NOW, max_batch=None).accepted) == 1500


def test_raise_for_rejects_lists_every_problem_with_422():
    result = validate_events([purchase(amount=None), consent()], now=NOW)
    with pytest.raises(EventError, match=r"events\[0\]\.amount: required") as err:
        result.raise_for_rejects()
    assert err.value.http_status == 422
    assert [d["field"] for d in err.value.detail] == ["amount", "consent_profiling"]


def test_not_a_list_is_an_input_error():
    with pytest.raises(ValueError, match="events must be a list of objects, got an object"):
        validate_events({"type": "purchase"})


# -- files ---------------------------------------------------------------------------------------


def test_text_columns_are_parsed_and_rows_named_from_first_row():
    frame = pd.DataFrame(
        {
            "type": ["purchase", "purchase", "consent", "consent", None],
            "customer_id": ["00042", "7", "8", "9", "3"],
            "timestamp": ["2024-05-01", "2024-05-01", None, None, None],
            "at": [None, None, "2024-05-02", "2024-05-02", None],
            "amount": ["30.5", "thirty", None, None, None],
            "consent_profiling": [None, None, "FALSE", "maybe", None],
            "store": ["a", "b", "c", "d", "e"],
        }
    )
    result = validate_table(frame, first_row=100, now=NOW)
    assert [r.message("rows") for r in result.rejects] == [
        "rows[101].amount: must be a number",
        "rows[103].consent_profiling: must be true or false (or 1/0, yes/no)",
        "rows[104].type: required: purchase, contact, response or consent",
    ]
    assert result.rejects[0].value == "thirty"
    assert result.ignored_fields == ["store"]
    got = result.events()
    assert [e.customer_id for e in got] == ["00042", "8"]
    assert got[0].amount == 30.5 and got[1].consent_profiling is False
    assert result.accepted.index == [100, 102]


def test_typed_columns_are_used_as_they_are():
    table = pa.table(
        {
            "customer_id": pa.array(["00042", "7"]),
            "timestamp": pa.array(
                [datetime(2024, 5, 1, 10), datetime(2024, 5, 2)], pa.timestamp("ns")
            ),
            "amount": pa.array([30, None], pa.int64()),
        }
    )
    result = validate_table(table, event_type="purchase", now=NOW)
    assert [r.message() for r in result.rejects] == [
        "events[1].amount: required for a purchase event"
    ]
    assert result.events()[0].amount == 30.0


def test_numeric_ids_in_a_typed_file_are_a_schema_error():
    table = pa.table({"type": ["purchase"], "customer_id": [42], "amount": [1.0]})
    with pytest.raises(SchemaError, match="'customer_id' holds int64 values; it must hold text"):
        validate_table(table, now=NOW)


def test_a_frame_mixing_text_and_numbers_in_a_column_is_a_schema_error():
    frame = pd.DataFrame({"type": ["purchase"] * 2, "customer_id": ["1", 2], "amount": [1, 2]})
    with pytest.raises(SchemaError, match="column 'customer_id' mixes kinds of values"):
        validate_table(frame, now=NOW)


def test_a_file_without_type_needs_an_event_type():
    table = pa.table({"customer_id": ["1"], "amount": [1.0]})
    with pytest.raises(SchemaError, match="no 'type' column"):
        validate_table(table, now=NOW)


def _as_csv_text(value):
    if value is None or value != value:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_json_and_file_paths_accept_the_same_events():
    """The same events as JSON objects and as a text table give equal content."""
    events = [
        purchase(category="PRODUCE", quantity=2, event_id="p1"),
        contact(propensity=0.5, channel="email", event_id="c1"),
        response(revenue=4.25, offer_id="EMAIL-WOMENS", event_id="r1"),
        consent(channel="sms", opt_in=False, event_id="s1"),
        consent(consent_profiling=True, event_id="s2"),
    ]
    from_json = validate_events(events, now=NOW).events()
    text = pd.DataFrame(events).astype(object).map(_as_csv_text)
    from_file = validate_table(text, now=NOW).events()
    assert from_json == from_file
