"""Schemathesis fuzz of the service's own OpenAPI document: zero server errors.

The schema is the one the running service publishes (``/docs.json``, the
document behind ``/docs``), so a change to an endpoint's request model
changes what is generated here. Every operation is exercised in both of
schemathesis' generation modes:

* positive - bodies valid under the schema (hostile strings, huge lists, odd
  dates, refunds ...): the answer is < 500, a 2xx conforms to the documented
  response schema, an error is a JSON object naming the problem;
* negative - requests that violate the schema (the body, or the documented
  bearer auth): the answer is a 4xx JSON object, never a 5xx and never a
  silent 2xx for a body the schema forbids.

Requests go through the in-process ASGI app with the shared session client
(lifespan run, models loaded). Hypothesis is derandomized and keeps no
example database, so the run is reproducible.
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.generation.meta import ParameterLocation
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.serving.service_helpers import API_KEY, service_env, start_client, wait_ready

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {API_KEY}"}
OPERATIONS = (
    ("/predict", "POST"),
    ("/predict_batch", "POST"),
    ("/predict_features", "POST"),
    ("/events", "POST"),
    ("/customers/{customer_id}/data", "GET"),
    ("/admin/reload", "POST"),
)
EXAMPLES = {"/admin/reload": 15}  # a forced reload rebuilds the whole state: keep it short
FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def client(trained_home, tmp_path_factory):
    """The service on a private copy of the trained home (fuzzed events land in its own store);
    the API key is also the admin key, so data access is fuzzed past the key check."""
    home = tmp_path_factory.mktemp("fuzz") / "home"
    shutil.copytree(
        trained_home.home, home, ignore=shutil.ignore_patterns("audit", "events.db*", "serving")
    )
    env = service_env(home, NEXTBEST_ADMIN_KEY=API_KEY)
    with pytest.MonkeyPatch.context() as mp, start_client(mp, env) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="module")
def api_schema(client):
    """The OpenAPI document as served, loaded by schemathesis."""
    response = client.get("/docs.json")
    assert response.status_code == 200, response.text[:300]
    return schemathesis.openapi.from_dict(response.json())


def test_published_schema_documents_every_endpoint(api_schema):
    paths = set(api_schema.raw_schema["paths"])
    assert {path for path, _ in OPERATIONS} <= paths, paths
    for path, method in OPERATIONS:
        op = api_schema.raw_schema["paths"][path][method.lower()]
        if method == "GET":
            assert op["parameters"][0]["in"] == "path", path
            continue
        body = op["requestBody"]["content"]["application/json"]
        assert body.get("schema"), path


def _send(client, case):
    """Send a case (serialized by schemathesis for ``requests``) through the in-process client."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=AUTH)
    body = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif isinstance(kwargs.get("data"), (bytes, str)):
        body["content"] = kwargs["data"]
    elif kwargs.get("data") is not None:
        body["data"] = kwargs["data"]
    return client.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        **body,
    )


def _negative(case, location) -> bool:
    """Whether schemathesis generated this part of the case to violate the schema."""
    info = case.meta.components.get(location) if case.meta is not None else None
    return info is not None and info.mode is GenerationMode.NEGATIVE


def _error_is_json_object(response, where):
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], (
        where,
        body,
    )


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_openapi_fuzz_gives_no_server_error(client, api_schema, path, method, mode):
    operation = api_schema[path][method]
    statuses = Counter()

    @settings(FUZZ, max_examples=EXAMPLES.get(path, FUZZ.max_examples))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        response = _send(client, case)
        statuses[response.status_code] += 1
        where = (path, str(mode), case.body, response.status_code, response.text[:300])
        assert response.status_code < 500, where
        if response.status_code >= 400:
            _error_is_json_object(response, where)
        else:
            # The one deliberate leniency: ``POST /admin/reload`` with no body at all means {}.
            no_body_reload = path == "/admin/reload" and isinstance(case.body, NotSet)
            assert not _negative(case, ParameterLocation.BODY) or no_body_reload, (
                f"schema-violating body accepted: {where}"
            )
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )

    run()
    print(path, mode, dict(statuses))
    if mode is GenerationMode.POSITIVE:
        assert 401 not in statuses, statuses  # every case reached the endpoint, authenticated
