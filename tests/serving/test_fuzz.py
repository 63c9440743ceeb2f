"""Property-based fuzz of every endpoint: nothing a client sends may give a 5xx.

Complements the schemathesis run of the published OpenAPI
(``test_service_openapi.py``) with input no schema describes. Three families of requests: arbitrary
JSON values, bodies
shaped like each endpoint's schema with hostile values in every field, and
arbitrary bytes under arbitrary content types. Every answer must be < 500;
every error a JSON object with ``error``; every success a valid response
model. Seeds are fixed (derandomized) and no example database is written.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextbest.serving.schemas import Decision, DecisionBatch, ReloadResult

pytestmark = pytest.mark.slow

AUTH = {"Authorization": "Bearer test-key"}
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FEW = settings(FUZZ, max_examples=25)  # /admin/reload: a forced reload rebuilds the whole state
ENDPOINTS = ("/predict", "/predict_batch", "/predict_features", "/admin/reload")
MODELS = {
    "/predict": Decision,
    "/predict_features": Decision,
    "/predict_batch": DecisionBatch,
    "/admin/reload": ReloadResult,
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
hostile_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        ["1", "", " ", "0001", "\x00", "x" * 65, "\u202e", "nan", "2018-01-02", "💥" * 20]
    ),
)
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.sampled_from(["NaN", "Infinity", "1e400", "-0", "12.5"]),
)
timestamps = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-12:00",
            "2017-02-30",
            "yesterday",
            "2017-12-01",
            "1677-09-21T00:00:00",
            "2262-04-12T00:00:00",
        ]
    ),
    numbers,
    st.none(),
)
dates = st.one_of(
    st.dates().map(str),
    st.sampled_from(["2018-01-02", "1900-01-01", "2200-01-01", "02/01/2018"]),
    numbers,
    st.none(),
)
transaction = st.fixed_dictionaries(
    {"timestamp": timestamps, "amount": numbers},
    optional={
        "category": st.one_of(
            st.sampled_from(["PRODUCE", "MEAT", "DELI", "UNKNOWN"]), hostile_text, st.none()
        ),
        "order_id": st.one_of(hostile_text, st.none()),
        "channel": st.one_of(hostile_text, json_values),
        "extra": json_values,
    },
)
shaped = {
    "/predict": st.fixed_dictionaries(
        {"customer_id": st.one_of(hostile_text, json_values)}, optional={"extra": json_values}
    ),
    "/predict_batch": st.fixed_dictionaries(
        {
            "customer_ids": st.one_of(
                st.lists(hostile_text, max_size=30),
                st.lists(st.sampled_from(["1", "2", "10", "nope"]), min_size=990, max_size=1010),
                json_values,
            )
        }
    ),
    "/predict_features": st.fixed_dictionaries(
        {
            "customer_id": hostile_text,
            "transactions": st.one_of(st.lists(transaction, max_size=6), json_values),
        },
        optional={
            "consent_profiling": st.one_of(st.booleans(), json_values),
            "as_of": dates,
            "attributes": st.one_of(
                st.dictionaries(
                    st.one_of(st.sampled_from(["income", "age", "kids_count"]), hostile_text),
                    json_values,
                    max_size=4,
                ),
                json_values,
            ),
        },
    ),
    "/admin/reload": st.fixed_dictionaries(
        {}, optional={"force": st.one_of(st.booleans(), json_values)}
    ),
}
plausible_line = st.fixed_dictionaries(
    {
        "timestamp": st.one_of(
            st.datetimes(dt.datetime(2015, 1, 1), dt.datetime(2018, 3, 1)),
            st.datetimes(
                dt.datetime(2015, 1, 1), dt.datetime(2018, 3, 1), timezones=st.timezones()
            ),
        ).map(lambda d: d.isoformat()),
        "amount": st.one_of(st.floats(-60, 600), st.sampled_from([0.0, -0.0, 1e-9, 1e8])),
    },
    optional={
        "category": st.sampled_from(["PRODUCE", "MEAT", "DELI", "FUEL", "UNKNOWN", "produce"]),
        "order_id": st.sampled_from(["b1", "b2", "b3"]),
    },
)
plausible_features = st.fixed_dictionaries(
    {
        "customer_id": st.text("abc0123-", min_size=1, max_size=12),
        "transactions": st.lists(plausible_line, min_size=1, max_size=12),
    },
    optional={
        "consent_profiling": st.booleans(),
        "as_of": st.one_of(st.none(), st.dates(dt.date(2014, 1, 1), dt.date(2019, 1, 1)).map(str)),
        "attributes": st.dictionaries(
            st.sampled_from(["income", "age", "kids_count", "marital_status"]),
            st.one_of(
                st.none(), st.sampled_from(["50-74K", "25-34", "1", "3+"]), st.integers(0, 5)
            ),
            max_size=3,
        ),
    },
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded",
        "application/vnd.bentoml+pickle",
        "",
        "*/*",
    ]
)


def check(response, path: str) -> None:
    assert response.status_code < 500, (path, response.status_code, response.text[:500])
    body = response.json()
    if response.status_code >= 400:
        assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    else:
        MODELS[path].model_validate(body)


def post(client, path: str, payload) -> None:
    data = json.dumps(payload, allow_nan=True).encode()
    check(
        client.post(path, content=data, headers={**AUTH, "content-type": "application/json"}), path
    )


@pytest.mark.parametrize("path", ENDPOINTS)
def test_arbitrary_json_never_gives_5xx(client, path):
    @(FEW if path == "/admin/reload" else FUZZ)
    @given(payload=json_values)
    def run(payload):
        post(client, path, payload)

    run()


@pytest.mark.parametrize("path", ENDPOINTS)
def test_schema_shaped_hostile_bodies_never_give_5xx(client, path):
    @(FEW if path == "/admin/reload" else FUZZ)
    @given(payload=shaped[path])
    def run(payload):
        post(client, path, payload)

    run()


def test_plausible_cold_start_bodies_never_give_5xx(client):
    """Mostly-valid customers (refunds, zero amounts, future lines, odd as_of) reach features and
    score()."""

    @FUZZ
    @given(payload=plausible_features)
    def run(payload):
        post(client, "/predict_features", payload)

    run()


@pytest.mark.parametrize("path", [*ENDPOINTS, "/", "/docs", "/livez", "/nope"])
def test_arbitrary_bytes_and_content_types_never_give_5xx(client, path):
    @(FEW if path == "/admin/reload" else FUZZ)
    @given(
        body=st.binary(max_size=300),
        ctype=content_types,
        method=st.sampled_from(["POST", "GET", "PUT"]),
        key=st.sampled_from(["test-key", "rotated-key", "wrong", ""]),
    )
    def run(body, ctype, method, key):
        headers = {"Authorization": f"Bearer {key}"}
        if ctype:
            headers["content-type"] = ctype
        r = client.request(method, path, content=body, headers=headers)
        assert r.status_code < 500, (path, method, ctype, body[:80], r.status_code, r.text[:300])
        if r.status_code >= 400 and path != "/livez":
            assert isinstance(r.json(), dict) and "error" in r.json()

    run()
