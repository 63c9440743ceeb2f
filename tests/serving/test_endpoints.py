"""Every endpoint and every error, in-process through BentoML's ASGI app, on a real trained home."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

SCORES = ("p_alive", "expected_purchases", "expected_spend", "predicted_clv", "churn_probability")


@pytest.fixture(scope="module")
def batch_scores(trained_home):
    """What batch scoring gives for the snapshot: score() on load_snapshot() with the champions."""
    from nextbest import registry
    from nextbest.config import Paths
    from nextbest.data.snapshot import read_snapshot as load_snapshot
    from nextbest.scoring import score

    paths = Paths(trained_home.home)
    registry.setup(paths)
    features, meta = load_snapshot(paths)
    scores = score(features, registry.load_models(), 365.0, meta["popularity"], as_of=meta["as_of"])
    return scores.set_index("customer_id", drop=False), features


def assert_same_decision(got: dict, expected: pd.Series, exact: bool = True) -> None:
    for col in SCORES:
        value = expected[col]
        if np.isnan(value):
            assert got[col] is None, col
        else:
            assert got[col] == (value if exact else pytest.approx(value, rel=1e-9)), col
    offer_id = expected["action_offer_id"] if isinstance(expected["action_offer_id"], str) else None
    assert got["action"] == expected["action"] and got["action_offer_id"] == offer_id
    assert [o["offer_id"] for o in got["offers"]] == [o["offer_id"] for o in expected["offers"]]
    for g, e in zip(got["offers"], expected["offers"]):
        assert g["p_convert"] == pytest.approx(e["p_convert"], abs=0 if exact else 2e-6)
    assert (
        got["reasons"] == expected["reasons"]
        if exact
        else [r["code"] for r in got["reasons"]] == [r["code"] for r in expected["reasons"]]
    )
    assert got["model_versions"] == json.loads(expected["model_versions"])
    assert got["consent_profiling"] is bool(expected["consent_profiling"])
    assert (
        got["as_of"] == str(expected["as_of"].date())
        and got["horizon_days"] == expected["horizon_days"]
    )


# -- health, docs, metrics -----------------------------------------------------------------------
def test_probes_and_docs_are_public(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get("/docs.json").json()
    assert {"/predict", "/predict_batch", "/predict_features", "/admin/reload"} <= set(
        spec["paths"]
    )
    body = spec["paths"]["/predict_features"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert (
        body["example"]["transactions"] and body["properties"]["transactions"]["maxItems"] == 10_000
    )
    assert spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]["example"]


def metric(client, name: str, **labels) -> float:
    text = client.get("/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == (f"{name}{{{want}}}" if labels else name):
            return float(value)
    return 0.0


# -- /predict --------------------------------------------------------------------------------------
def test_predict_is_the_batch_score_row(client, auth, batch_scores):
    scores, _ = batch_scores
    for cid in scores.index[:25]:
        r = client.post("/predict", json={"customer_id": cid}, headers=auth)
        assert r.status_code == 200, r.text
        assert_same_decision(r.json(), scores.loc[cid])


def test_opted_out_customer_gets_the_default_and_no_scores(
    client, auth, trained_home, batch_scores
):
    scores, _ = batch_scores
    before = metric(client, "nextbest_consent_suppressions_total", endpoint="predict")
    for cid in trained_home.opted_out:
        got = client.post("/predict", json={"customer_id": cid}, headers=auth).json()
        assert got["action"] == "non_personalised" and got["offers"] == []
        assert (
            all(got[c] is None for c in SCORES) and got["reasons"][0]["code"] == "CONSENT_OBJECTED"
        )
        assert_same_decision(got, scores.loc[cid])
    after = metric(client, "nextbest_consent_suppressions_total", endpoint="predict")
    assert after - before == len(trained_home.opted_out)


def test_unknown_id_is_404_with_a_json_object(client, auth):
    before = metric(client, "nextbest_unknown_customer_ids_total", endpoint="predict")
    r = client.post("/predict", json={"customer_id": "no-such-customer"}, headers=auth)
    assert r.status_code == 404
    assert (
        r.json()["error"] == "unknown customer_id"
        and r.json()["detail"]["customer_id"] == "no-such-customer"
    )
    assert metric(client, "nextbest_unknown_customer_ids_total", endpoint="predict") == before + 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"customer_id": 1}',
        b'{"customer_id": null}',
        b"{}",
        b'{"customer_id": ""}',
        b'{"customer_id": "   "}',
        json.dumps({"customer_id": "x" * 65}).encode(),
        b'{"customer_id": "a\\u0000b"}',
        b'{"customer_id": "1", "extra": true}',
        b"[]",
        b'"1"',
        b"not json",
        b'{"customer_id": "1"',
        b"",
    ],
)
def test_invalid_bodies_are_4xx_json_objects(client, auth, body):
    r = client.post("/predict", content=body, headers={**auth, "content-type": "application/json"})
    assert 400 <= r.status_code < 500, (body, r.status_code)
    assert isinstance(r.json(), dict) and r.json()["error"]


def test_oversized_id_error_names_the_limit(client, auth):
    r = client.post("/predict", json={"customer_id": "x" * 65}, headers=auth)
    assert r.status_code == 400 and "at most 64 characters" in json.dumps(r.json())


# -- /predict_batch --------------------------------------------------------------------------------
def test_predict_batch_keeps_order_dedupes_and_lists_unknown(
    client, auth, batch_scores, trained_home
):
    scores, _ = batch_scores
    ids = [
        scores.index[5],
        "nope-1",
        scores.index[0],
        scores.index[5],
        trained_home.opted_out[0],
        "nope-2",
    ]
    r = client.post("/predict_batch", json={"customer_ids": ids}, headers=auth)
    assert r.status_code == 200
    out = r.json()
    expected_ids = [scores.index[5], scores.index[0], trained_home.opted_out[0]]
    assert [d["customer_id"] for d in out["decisions"]] == expected_ids
    assert out["not_found"] == ["nope-1", "nope-2"]
    for d in out["decisions"]:
        assert_same_decision(d, scores.loc[d["customer_id"]])


def test_predict_batch_limit_is_named(client, auth, batch_scores):
    scores, _ = batch_scores
    ok = list(scores.index[:1000])
    assert (
        len(
            client.post("/predict_batch", json={"customer_ids": ok}, headers=auth).json()[
                "decisions"
            ]
        )
        == 1000
    )
    r = client.post("/predict_batch", json={"customer_ids": ok + ["one-too-many"]}, headers=auth)
    assert r.status_code == 400 and "at most 1000" in json.dumps(r.json())
    assert client.post("/predict_batch", json={"customer_ids": []}, headers=auth).status_code == 400
    assert (
        client.post("/predict_batch", json={"customer_ids": "1"}, headers=auth).status_code == 400
    )


def test_decisions_are_counted_by_action(client, auth, batch_scores):
    scores, _ = batch_scores
    ids = list(scores.index[:200])
    expected = scores.loc[ids, "action"].value_counts()
    before = {
        a: metric(client, "nextbest_decisions_total", endpoint="predict_batch", action=a)
        for a in expected.index
    }
    client.post("/predict_batch", json={"customer_ids": ids}, headers=auth)
    for action, n in expected.items():
        after = metric(client, "nextbest_decisions_total", endpoint="predict_batch", action=action)
        assert after - before[action] == n


# -- auth, media type, size, routing ---------------------------------------------------------------
def test_auth_is_required_on_every_api(client):
    before = metric(client, "nextbest_auth_failures_total")
    for path in ("/predict", "/predict_batch", "/predict_features", "/admin/reload"):
        r = client.post(path, json={})
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert client.post(
        "/predict", json={"customer_id": "1"}, headers={"Authorization": "Bearer rotated-key"}
    ).status_code in (200, 404)
    assert metric(client, "nextbest_auth_failures_total") == before + 4


def test_media_type_size_and_routes_give_json_errors(client, auth):
    form = {**auth, "content-type": "application/x-www-form-urlencoded"}
    r = client.post("/predict", content=b"customer_id=1", headers=form)
    assert r.status_code == 415
    big = json.dumps({"customer_ids": ["x" * 60] * 40_000}).encode()  # > 2 MiB
    r = client.post(
        "/predict_batch", content=big, headers={**auth, "content-type": "application/json"}
    )
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    r = client.get("/no/such/route", headers=auth)
    assert r.status_code == 404 and r.json() == {"error": "Not Found", "detail": None}
    r = client.get("/predict", headers=auth)
    assert r.status_code == 405 and r.json()["error"] == "Method Not Allowed"


# -- audit -----------------------------------------------------------------------------------------
def test_audit_log_has_one_line_per_decision_and_no_features_for_opted_out(
    client, auth, trained_home, batch_scores
):
    scores, features = batch_scores
    ids = [scores.index[1], trained_home.opted_out[1]]
    r = client.post(
        "/predict_batch",
        json={"customer_ids": ids},
        headers={**auth, "X-Request-ID": "audit-test-1"},
    )
    assert r.headers["x-request-id"] == "audit-test-1"
    lines = [
        json.loads(x)
        for f in sorted((trained_home.home / "audit").glob("decisions-*.jsonl"))
        for x in f.read_text().splitlines()
    ]
    mine = [x for x in lines if x["request_id"] == "audit-test-1"]
    assert [x["customer_id"] for x in mine] == ids
    assert all(x["endpoint"] == "predict_batch" and x["model_versions"] for x in mine)
    consented, opted = mine
    assert consented["action"] == scores.loc[ids[0], "action"] and "scores" in consented
    assert "scores" not in opted and opted["action"] == "non_personalised"
    feature_names = set(features.columns) - {"customer_id", "consent_profiling"}
    assert not feature_names & set(opted) and not feature_names & set(consented)


# -- /predict_features (cold start) ----------------------------------------------------------------
def cold_start_candidate(trained_home, features: pd.DataFrame):
    """A snapshot customer whose features come from transactions alone, with posted lines built from
    them."""
    from nextbest.data.schema import validate_transactions

    demo = [
        c
        for c in features.columns
        if features[c].dtype != "float64"
        and c not in ("customer_id", "consent_profiling", "frequency")
    ]
    f = features[
        features["consent_profiling"]
        & (features["n_campaigns_received"] == 0)
        & (features["n_redemptions"] == 0)
        & features[demo].isna().all(axis=1)
    ]
    tx = trained_home.dataset.transactions
    as_of = pd.Timestamp("2018-01-02")
    for cid in f["customer_id"]:
        mine = validate_transactions(tx[tx["customer_id"] == cid], as_of=as_of).transactions
        if (mine["amount"] < 0).any():
            continue
        lines = mine.groupby(["timestamp", "order_id", "category"], as_index=False)["amount"].sum()
        if len(lines) <= 10_000:
            return cid, [
                {"timestamp": t.isoformat(), "order_id": o, "category": c, "amount": float(a)}
                for t, o, c, a in lines.itertuples(index=False)
            ]
    pytest.fail("no cold-start candidate in the snapshot")


def test_cold_start_gives_the_same_decision_as_the_snapshot(
    client, auth, trained_home, batch_scores
):
    scores, features = batch_scores
    cid, lines = cold_start_candidate(trained_home, features)
    body = {"customer_id": cid, "transactions": lines, "as_of": "2018-01-02"}
    r = client.post("/predict_features", json=body, headers=auth)
    assert r.status_code == 200, r.text
    assert_same_decision(r.json(), scores.loc[cid], exact=False)


def test_cold_start_opted_out_is_non_personalised_like_batch(client, auth):
    body = {
        "customer_id": "new-1",
        "consent_profiling": False,
        "transactions": [
            {"timestamp": "2017-12-01T10:00:00", "amount": 10.0, "category": "PRODUCE"}
        ],
    }
    got = client.post("/predict_features", json=body, headers=auth).json()
    assert (
        got["action"] == "non_personalised"
        and got["offers"] == []
        and got["consent_profiling"] is False
    )
    assert all(got[c] is None for c in SCORES) and got["reasons"][0]["code"] == "CONSENT_OBJECTED"
    assert got["as_of"] == "2018-01-02"  # the snapshot's as_of by default


def test_cold_start_with_attributes_and_time_zones(client, auth):
    body = {
        "customer_id": "new-2",
        "attributes": {"income": "50-74K", "kids_count": 1},
        "transactions": [
            {"timestamp": "2017-10-02T10:00:00+02:00", "amount": 25.0, "category": "MEAT"},
            {"timestamp": "2017-12-20T09:00:00Z", "amount": 40.0, "category": "PRODUCE"},
            {"timestamp": "2017-12-20T18:00:00Z", "amount": -5.0, "category": "PRODUCE"},
        ],
    }
    r = client.post("/predict_features", json=body, headers=auth)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (
        got["customer_id"] == "new-2"
        and got["p_alive"] is not None
        and got["action"] in ("retention", "cross_sell", "no_action")
    )


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ({"transactions": [{"timestamp": "2018-03-01", "amount": 5.0}]}, 422, "on or after as_of"),
        (
            {"transactions": [{"timestamp": "2017-03-01", "amount": -5.0}]},
            422,
            "refund with no purchase",
        ),
        (
            {"transactions": [{"timestamp": "0001-01-01T00:00:00", "amount": 5.0}]},
            400,
            "from 1900-01-01",
        ),
        (
            {"transactions": [{"timestamp": "2199-12-31T23:00:00-05:00", "amount": 5.0}]},
            400,
            "before 2200-01-01",
        ),
        (
            {"transactions": [{"timestamp": "2017-03-01", "amount": 5.0}] * 2},
            422,
            "exact duplicate",
        ),
        ({"attributes": {"shoe_size": "44"}}, 422, "unknown customer attribute"),
        ({"transactions": []}, 400, "at least 1 item"),
        ({"transactions": [{"timestamp": "2017-03-01", "amount": "NaN"}]}, 400, "finite"),
        (
            {"transactions": [{"timestamp": "2017-03-01", "amount": 1e12}]},
            400,
            "less than or equal",
        ),
        ({"transactions": [{"timestamp": "yesterday", "amount": 1}]}, 400, "datetime"),
        ({"as_of": "3000-01-01"}, 400, "2200-01-01"),
        (
            {"transactions": [{"timestamp": "2017-03-01", "amount": 1}] * 10_001},
            400,
            "at most 10000",
        ),
    ],
)
def test_cold_start_rejections_name_row_and_rule(client, auth, change, status, text):
    body = {
        "customer_id": "new-3",
        "transactions": [{"timestamp": "2017-03-01", "amount": 5.0}],
        **change,
    }
    r = client.post("/predict_features", json=body, headers=auth)
    assert r.status_code == status, r.text
    assert text in json.dumps(r.json())


# -- /admin/reload ---------------------------------------------------------------------------------
def test_admin_reload_unchanged_then_forced(client, auth):
    r = client.post("/admin/reload", json={}, headers=auth)
    assert r.status_code == 200 and r.json()["outcome"] == "unchanged"
    r = client.post("/admin/reload", json={"force": True}, headers=auth)
    assert r.status_code == 200 and r.json()["outcome"] == "reloaded"
    assert r.json()["n_customers"] > 2000 and r.json()["as_of"] == "2018-01-02"
    assert client.post("/predict", json={"customer_id": "1"}, headers=auth).status_code in (
        200,
        404,
    )
