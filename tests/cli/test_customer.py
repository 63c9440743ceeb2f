"""Data-subject commands end to end: a customer written everywhere, exported, then forgotten.

The customer (a distinctive id, so that a byte search means something) is in
the training file with a bad line (training rejects), is scored into a file
under NEXTBEST_HOME with rejects and a report, is served (audit log), posts
events and is ingested from a file. After ``nextbest customer forget`` not one
file under NEXTBEST_HOME holds the id's bytes - SQLite files and MLflow's
store and artifacts included - and a later import rejects the id as erased.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.data.synthetic import generate_transactions
from tests.serving.service_helpers import API_KEY, service_env, start_client, wait_ready

pytestmark = pytest.mark.slow

GONE = "forget-me-7f3a9c41"
runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result


def files_holding(root, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture()
def inputs(tmp_path):
    frame = generate_transactions(600, seed=11)
    first = frame["customer_id"].iat[0]
    frame["customer_id"] = frame["customer_id"].replace({first: GONE})
    bad = pd.DataFrame({"customer_id": [GONE], "timestamp": ["not a date"], "amount": [1.0]})
    csv = tmp_path / "orders.csv"
    pd.concat([frame, bad], ignore_index=True).to_csv(csv, index=False)
    customers = tmp_path / "customers.csv"
    pd.DataFrame({"customer_id": sorted(frame["customer_id"].unique())}).to_csv(
        customers, index=False
    )
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "churn.yaml").write_text(
        "thresholds: {min_auc_gain_vs_baselines: -1.0, max_brier: 1.0}\n"
        "lightgbm: {n_estimators: 30}\n"
    )
    (configs / "nbo.yaml").write_text(
        "thresholds: {min_hit_gain_vs_baselines: -1.0}\nlightgbm: {n_estimators: 30}\n"
    )
    (configs / "clv.yaml").write_text("count_models: [bgnbd]\npenalizers: [0.001]\n")
    return csv, customers, configs, sorted(set(frame["customer_id"]) - {GONE})


def test_a_customer_written_everywhere_is_exported_then_forgotten(nb_home, inputs, tmp_path):
    csv, customers, configs, others = inputs
    common = ("--transactions", csv, "--customers", customers, "--as-of", "2024-12-01")
    events = tmp_path / "events.jsonl"
    events.write_text(
        json.dumps(
            {
                "type": "purchase",
                "customer_id": GONE,
                "timestamp": "2024-11-20",
                "amount": 9.5,
                "category": "MEAT",
                "event_id": "file-1",
            }
        )
        + "\n"
        + json.dumps({"type": "purchase", "customer_id": GONE, "amount": 1.0})
        + "\n"
    )
    result = invoke("events", "ingest", events)
    assert result.exit_code == 0 and "rejected 1 rows" in result.output, result.output
    result = invoke("train", *common, "--config-dir", configs)
    assert result.exit_code == 0, result.output
    assert "rejected rows written to" in result.output
    scores = nb_home / "scores" / "mine.parquet"
    result = invoke("score", *common, "--output", scores)
    assert result.exit_code == 0, result.output
    assert "unparsable timestamp 1" in result.output  # the customer's bad line

    env = service_env(nb_home, NEXTBEST_ADMIN_KEY="admin")
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with pytest.MonkeyPatch.context() as mp, start_client(mp, env) as client:
        wait_ready(client)
        r = client.post(
            "/events",
            headers=auth,
            json={
                "events": [
                    {
                        "type": "consent",
                        "customer_id": GONE,
                        "at": "2024-11-30",
                        "channel": "email",
                        "opt_in": True,
                    }
                ]
            },
        )
        assert r.status_code == 200, r.text
        assert client.post("/predict", json={"customer_id": GONE}, headers=auth).status_code == 200
        r = client.post("/predict_batch", json={"customer_ids": [GONE, others[0]]}, headers=auth)
        assert len(r.json()["decisions"]) == 2
        served = client.get(f"/customers/{GONE}/data", headers={"Authorization": "Bearer admin"})
        assert served.status_code == 200

    result = invoke("customer", "export", GONE, "--output", tmp_path / "doc.json")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "doc.json").read_text())
    assert doc["snapshot"]["features"]["customer_id"] == GONE and doc["transactions"]
    assert [e["event_id"] for e in doc["events"]][0] == "file-1"
    assert len(doc["audit"]) == 2
    assert doc["decision"] == served.json()["decision"]  # the same document as the endpoint
    for key in ("snapshot", "transactions", "events", "consent", "audit"):
        assert doc[key] == served.json()[key], key

    held = files_holding(nb_home, GONE.encode())
    assert any("rejects" in p for p in held) and any("audit" in p for p in held)
    result = invoke("customer", "forget", GONE)
    assert result.exit_code == 0, result.output
    assert "event store: removed events (consent 1, purchase 1)" in result.output
    assert "snapshots/features.parquet: removed 1 row(s)" in result.output
    assert files_holding(nb_home, GONE.encode()) == []

    # MLflow holds no customer id at all: input examples use synthetic ids.
    examples = list((nb_home / "mlartifacts").rglob("input_example.json"))
    assert examples
    for path in examples:
        text = path.read_text()
        assert "example-0" in text and not any(f'"{c}"' in text for c in others[:50]), path
    # A later import of the old files does not bring the customer back.
    result = invoke("customer", "export", GONE)
    assert result.exit_code == 2 and "nothing is held" in result.output
    result = invoke("events", "ingest", events)
    assert "rejected 2 rows" in result.output
    from nextbest.data.erased import ERASED_REASON
    from nextbest.data.schema import validate_transactions

    checked = validate_transactions(pd.read_csv(csv, dtype={"customer_id": str}))
    assert (
        checked.report.rejected[ERASED_REASON]
        == (pd.read_csv(csv, dtype={"customer_id": str})["customer_id"] == GONE).sum()
    )
    assert files_holding(nb_home, GONE.encode()) == []
