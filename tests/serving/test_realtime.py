"""Events change decisions at once: ``POST /events``, ``record_contact``, data access, erasure.

In-process through BentoML's ASGI app on a private copy of the trained home
(its own event store), with an admin key for ``GET /customers/{id}/data``.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.serving.service_helpers import API_KEY, service_env, start_client, wait_ready

pytestmark = pytest.mark.slow

ADMIN_KEY = "admin-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
DAY_BEFORE_AS_OF = "2018-01-01T12:00:00Z"


@pytest.fixture(scope="module")
def home(trained_home, tmp_path_factory):
    dst = tmp_path_factory.mktemp("realtime") / "home"
    shutil.copytree(
        trained_home.home, dst, ignore=shutil.ignore_patterns("audit", "events.db*", "serving")
    )
    return dst


@pytest.fixture(scope="module")
def rt(home):
    env = service_env(home, NEXTBEST_ADMIN_KEY=ADMIN_KEY)
    with pytest.MonkeyPatch.context() as mp, start_client(mp, env) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="module")
def snapshot_decisions(rt, trained_home):
    """Precomputed decisions of the first 200 snapshot customers (none of them touched yet)."""
    ids = sorted(trained_home.dataset.customers["customer_id"])[:200]
    r = rt.post("/predict_batch", json={"customer_ids": ids}, headers=AUTH)
    assert r.status_code == 200
    return {d["customer_id"]: d for d in r.json()["decisions"]}


def pick(decisions: dict, used: set, **want) -> dict:
    for cid, d in decisions.items():
        if cid not in used and all(d[k] == v for k, v in want.items()) and d["offers"]:
            used.add(cid)
            return d
    pytest.fail(f"no snapshot customer with {want}")


@pytest.fixture(scope="module")
def used():
    return set()


def post_events(client, *events, status: int = 200):
    r = client.post("/events", json={"events": list(events)}, headers=AUTH)
    assert r.status_code == status, r.text
    return r.json()


def predict(client, cid: str, **extra) -> dict:
    r = client.post("/predict", json={"customer_id": cid, **extra}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def test_an_event_that_changes_nothing_gives_the_precomputed_decision(rt, snapshot_decisions, used):
    before = pick(snapshot_decisions, used, action="cross_sell")
    cid = before["customer_id"]
    post_events(
        rt,
        {"type": "consent", "customer_id": cid, "at": DAY_BEFORE_AS_OF, "consent_profiling": True},
    )
    # Re-decided from the snapshot row and its events with the champions: the same decision,
    # numbers equal to rounding (one row is scored alone, the table was scored in bulk).
    after = predict(rt, cid)
    assert after.keys() == before.keys()
    for key, value in before.items():
        if isinstance(value, float):
            assert after[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert after[key] == value, key


def test_a_purchase_makes_the_offer_for_its_category_ineligible(rt, snapshot_decisions, used):
    before = pick(snapshot_decisions, used, action="cross_sell")
    cid, offer = before["customer_id"], before["offers"][0]
    post_events(
        rt,
        {
            "type": "purchase",
            "customer_id": cid,
            "timestamp": DAY_BEFORE_AS_OF,
            "amount": 25.0,
            "category": offer["category"],
            "order_id": "rt-order-1",
        },
    )
    after = predict(rt, cid)
    assert offer["offer_id"] not in [o["offer_id"] for o in after["offers"]]
    assert after["action_offer_id"] != offer["offer_id"]
    assert after["as_of"] == before["as_of"]  # bought before as_of: the snapshot's as_of


def test_an_objection_is_honoured_at_the_next_request_and_audited_without_scores(
    rt, home, snapshot_decisions, used
):
    cid = pick(snapshot_decisions, used, consent_profiling=True)["customer_id"]
    post_events(
        rt,
        {"type": "consent", "customer_id": cid, "at": DAY_BEFORE_AS_OF, "consent_profiling": False},
    )
    r = rt.post(
        "/predict", json={"customer_id": cid}, headers={**AUTH, "X-Request-ID": "rt-objection"}
    )
    d = r.json()
    assert d["action"] == "non_personalised" and d["consent_profiling"] is False
    assert all(d[k] is None for k in ("p_alive", "predicted_clv", "churn_probability"))
    assert d["offers"] == []
    lines = [json.loads(x) for f in (home / "audit").glob("*.jsonl") for x in f.open()]
    mine = [x for x in lines if x["request_id"] == "rt-objection"]
    assert len(mine) == 1 and "scores" not in mine[0]
    batch = rt.post("/predict_batch", json={"customer_ids": [cid]}, headers=AUTH).json()
    assert batch["decisions"][0]["action"] == "non_personalised"


def test_a_lookup_is_not_a_send_but_record_contact_is(rt, snapshot_decisions, used):
    before = pick(snapshot_decisions, used, action="cross_sell")
    cid, offer_id = before["customer_id"], before["action_offer_id"]
    assert "contact_event_id" not in predict(rt, cid)
    events = lambda: rt.get(f"/customers/{cid}/data", headers=ADMIN).json()["events"]  # noqa: E731
    r = rt.get(f"/customers/{cid}/data", headers=ADMIN)
    assert r.status_code == 404 or r.json()["events"] == []
    sent = predict(rt, cid, record_contact=True)
    assert sent["action_offer_id"] == offer_id and sent["contact_event_id"]
    stored = events()
    assert [(e["type"], e["offer_id"], e["group"]) for e in stored] == [
        ("contact", offer_id, "treatment")
    ]
    assert stored[0]["event_id"] == sent["contact_event_id"]
    after = predict(rt, cid)  # the offer's cooldown applies at once
    assert after["action_offer_id"] != offer_id
    assert offer_id not in [o["offer_id"] for o in after["offers"]]


def test_a_customer_known_only_from_events_gets_a_decision(rt):
    assert rt.post("/predict", json={"customer_id": "rt-new-1"}, headers=AUTH).status_code == 404
    post_events(
        rt,
        {
            "type": "purchase",
            "customer_id": "rt-new-1",
            "timestamp": "2017-11-02T10:00:00Z",
            "amount": 20.0,
            "category": "MEAT",
        },
        {
            "type": "purchase",
            "customer_id": "rt-new-1",
            "timestamp": "2017-12-20T10:00:00Z",
            "amount": 35.0,
            "category": "PRODUCE",
        },
        {
            "type": "consent",
            "customer_id": "rt-new-2",
            "at": "2017-12-20T10:00:00Z",
            "consent_profiling": False,
        },
    )
    d = predict(rt, "rt-new-1")
    assert d["consent_profiling"] is True and d["p_alive"] is not None
    assert "XS-PRODUCE" not in [o["offer_id"] for o in d["offers"]]
    assert predict(rt, "rt-new-2")["action"] == "non_personalised"
    r = rt.post("/predict_batch", json={"customer_ids": ["rt-new-1", "rt-nobody"]}, headers=AUTH)
    assert r.json()["decisions"][0] == d and r.json()["not_found"] == ["rt-nobody"]


@pytest.mark.parametrize(
    ("event", "field", "problem"),
    [
        ({"type": "refund", "customer_id": "1"}, "events[1].type", "unknown event type"),
        (
            {"type": "purchase", "customer_id": "1", "timestamp": "2018-01-01"},
            "events[1].amount",
            "required for a purchase event",
        ),
        (
            {"type": "consent", "customer_id": "1", "at": "2018-01-01"},
            "events[1].consent_profiling",
            "a consent event needs",
        ),
        (
            {"type": "purchase", "customer_id": "1", "timestamp": "2999-01-01", "amount": 1.0},
            "events[1].timestamp",
            "in the future",
        ),
        (
            {
                "type": "purchase",
                "event_id": "no spaces",
                "customer_id": "1",
                "timestamp": "2018-01-01",
                "amount": 1.0,
            },
            "events[1].event_id",
            "malformed",
        ),
        (
            {"type": "purchase", "customer_id": 42, "timestamp": "2018-01-01", "amount": 1.0},
            "events[1].customer_id",
            "must be a string",
        ),
    ],
)
def test_bad_events_are_422_naming_index_and_field_and_nothing_is_stored(rt, event, field, problem):
    good = {"type": "purchase", "customer_id": "rt-bad", "timestamp": "2018-01-01", "amount": 1.0}
    r = rt.post("/events", json={"events": [good, event]}, headers=AUTH)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"].startswith("invalid events")
    assert any(p["field"] == field and problem in p["problem"] for p in body["detail"]), body
    assert set(body["detail"][0]) == {"field", "problem"}
    assert rt.get("/customers/rt-bad/data", headers=ADMIN).status_code == 404  # nothing stored


def test_oversize_and_malformed_bodies(rt):
    event = {"type": "consent", "customer_id": "x", "at": "2018-01-01", "consent_profiling": True}
    r = rt.post("/events", json={"events": [event] * 1001}, headers=AUTH)
    assert r.status_code == 413 and "at most 1,000" in r.json()["detail"]
    for body in ({"events": []}, {"events": "x"}, {"events": [1]}, {}, {"events": [], "x": 1}):
        r = rt.post("/events", json=body, headers=AUTH)
        assert r.status_code == 400 and isinstance(r.json()["detail"], list), (body, r.text)
    assert rt.post("/events", json={"events": [event]}).status_code == 401


def test_repeated_event_ids_are_idempotent(rt):
    event = {
        "type": "purchase",
        "event_id": "rt-dup-1",
        "customer_id": "rt-dup",
        "timestamp": "2017-12-01",
        "amount": 5.0,
    }
    first = post_events(rt, event)
    again = post_events(rt, event)
    assert first["new"] == 1 and again["new"] == 0 and again["duplicates"] == 1
    assert again["event_ids"] == ["rt-dup-1"]
    post_events(rt, {**event, "amount": 6.0}, status=422)


def test_data_access_needs_the_admin_key_and_holds_everything(rt, snapshot_decisions, used):
    cid = pick(snapshot_decisions, used, consent_profiling=True)["customer_id"]
    post_events(
        rt,
        {
            "type": "consent",
            "customer_id": cid,
            "at": DAY_BEFORE_AS_OF,
            "channel": "sms",
            "opt_in": False,
        },
    )
    predict(rt, cid)
    assert rt.get(f"/customers/{cid}/data").status_code == 401
    assert rt.get(f"/customers/{cid}/data", headers=AUTH).status_code == 403
    r = rt.get(f"/customers/{cid}/data", headers=ADMIN)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["customer_id"] == cid and doc["snapshot"]["features"]["customer_id"] == cid
    assert doc["transactions"] and all("customer_id" not in t for t in doc["transactions"])
    assert [e["type"] for e in doc["events"]] == ["consent"]
    assert doc["consent"]["profiling"] == {"granted": True, "source": "snapshot"}
    assert doc["consent"]["channels"]["sms"]["opt_in"] is False
    assert doc["decision"] == predict(rt, cid)
    assert doc["audit"] and all(a["customer_id"] == cid for a in doc["audit"])
    r = rt.get("/customers/rt-nobody/data", headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"] == "unknown customer_id"


def test_a_forgotten_customer_is_unknown_at_the_next_request(rt, home, snapshot_decisions, used):
    from nextbest.events import open_store

    cid = pick(snapshot_decisions, used, consent_profiling=True)["customer_id"]
    predict(rt, cid)
    store = open_store(f"sqlite:///{home / 'events.db'}")
    store.forget(cid)
    store.close()
    assert rt.post("/predict", json={"customer_id": cid}, headers=AUTH).status_code == 404
    assert rt.get(f"/customers/{cid}/data", headers=ADMIN).status_code == 404
    r = rt.post(
        "/events",
        json={
            "events": [
                {"type": "purchase", "customer_id": cid, "timestamp": "2018-01-01", "amount": 1.0}
            ]
        },
        headers=AUTH,
    )
    assert r.status_code == 422 and "erased" in r.json()["detail"][0]["problem"]


def test_a_restarted_service_replays_the_events(rt, home, snapshot_decisions):
    now = rt.post(
        "/predict_batch", json={"customer_ids": list(snapshot_decisions)}, headers=AUTH
    ).json()["decisions"]
    objected = [
        d["customer_id"]
        for d in now
        if d["action"] == "non_personalised"
        and snapshot_decisions[d["customer_id"]]["action"] != "non_personalised"
    ]
    assert objected
    env = service_env(home, NEXTBEST_ADMIN_KEY=ADMIN_KEY)
    with pytest.MonkeyPatch.context() as mp, start_client(mp, env) as again:
        wait_ready(again)
        for cid in objected:
            d = again.post("/predict", json={"customer_id": cid}, headers=AUTH).json()
            assert d["action"] == "non_personalised"
        d = again.post("/predict", json={"customer_id": "rt-new-1"}, headers=AUTH).json()
        assert d["p_alive"] is not None
