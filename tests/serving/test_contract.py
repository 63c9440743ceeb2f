"""The published OpenAPI document is the truth: schemathesis against a live ``bentoml serve``.

Every operation (``/admin/reload`` has its own stateful tests in
``test_reload.py``), the data-access ``GET`` with its path parameter
included, all checks, positive and negative data. One documented leniency: a
schema-valid body whose content cannot be used (a transaction on or after
``as_of``, an unknown attribute, an event that breaks a rule of its type) is
a 422, which the document lists for ``/predict_features`` and ``/events``;
schemathesis is told so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from nextbest import __version__
from tests.serving.live import live_server

pytestmark = pytest.mark.slow

KEY = "contract-key"
# Negative data: 413 is the documented answer to more events than one request may hold (the
# schema's maxItems); the rest is schemathesis' default list.
CONFIG = """\
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "404", "409", "422"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
                     "429", "5xx"]
"""


@pytest.fixture(scope="module")
def base(trained_home, tmp_path_factory):
    """One live server for this module's tests, on a private copy of the trained home (fuzzed
    events land in its own store); the API key is also the admin key (data access fuzzed too)."""
    home = tmp_path_factory.mktemp("contract-home") / "home"
    shutil.copytree(
        trained_home.home, home, ignore=shutil.ignore_patterns("audit", "events.db*", "serving")
    )
    tmp = tmp_path_factory.mktemp("contract")
    with live_server(home, tmp, KEY, NEXTBEST_ADMIN_KEY=KEY) as (url, _):
        yield url


def test_live_server_answers_only_what_its_document_says(base, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    schemathesis = Path(sys.executable).with_name("schemathesis")
    doc = httpx.get(f"{base}/docs.json").json()
    run = subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(config),
            "run",
            f"{base}/docs.json",
            "-H",
            f"Authorization: Bearer {KEY}",
            "--checks",
            "all",
            "--mode",
            "all",
            "--exclude-path",
            "/admin/reload",
            "--max-examples",
            "80",
            "--seed",
            "7",
            "--suppress-health-check",
            "all",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
    tested = {p for p in doc["paths"] if p != "/admin/reload"}
    assert f"Tested: {len(tested)}" in run.stdout, run.stdout[-3000:]


def test_document_describes_nextbest_not_the_framework(base):
    doc = httpx.get(f"{base}/docs.json").json()
    assert doc["info"]["title"] == "nextbest"
    assert doc["info"]["version"] == __version__
    text = str(doc)
    assert "BentoML" not in doc["info"]["description"] and "IODescriptor" not in text
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["components"]["securitySchemes"]["adminAuth"]["scheme"] == "bearer"
    for path, item in doc["paths"].items():
        for op in item.values():
            assert "500" not in op["responses"], path
            if path in ("/livez", "/readyz", "/healthz", "/metrics"):
                assert "security" not in op, path
                continue
            if path == "/customers/{customer_id}/data":
                assert op["security"] == [{"adminAuth": []}]
                assert {"401", "403", "404"} <= set(op["responses"])
                assert op["parameters"][0]["schema"]["maxLength"] == 64
                continue
            assert op["security"] == [{"bearerAuth": []}], path
            assert {"400", "401", "413", "415"} <= set(op["responses"]), path
            for status, response in op["responses"].items():
                if status >= "400":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (path, status)
            body = op["requestBody"]
            assert body["required"] is (path != "/admin/reload"), path
            assert "example" in body["content"]["application/json"]["schema"], path
