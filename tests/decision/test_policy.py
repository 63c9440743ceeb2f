"""Decision layer: eligibility, contact policy, consent and arbitration on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nextbest.decision.catalog import parse_catalog
from nextbest.decision.policy import decide
from nextbest.decision.reasons import build_reasons
from nextbest.errors import CatalogError

RAW = {
    "policy": {
        "top_k": 2,
        "min_expected_value": 0.5,
        "max_contacts_30d": 3,
        "retention_churn_threshold": 0.5,
        "retention_min_clv": 100,
    },
    "default_action": {"offer_id": "DEFAULT", "name": "Newsletter"},
    "retention": {
        "offer_id": "RET",
        "name": "Win-back",
        "cost": 2.0,
        "uplift": 0.1,
        "cooldown_days": 30,
    },
    "offers": [
        {
            "offer_id": "A",
            "name": "A",
            "category": "DELI",
            "value": 10,
            "cost": 1,
            "eligibility": {"not_bought_category_days": 30},
            "cooldown_days": 14,
        },
        {
            "offer_id": "B",
            "name": "B",
            "category": "MEAT",
            "value": 5,
            "cost": 1,
            "eligibility": {"min_clv": 50},
        },
        {
            "offer_id": "C",
            "name": "C",
            "category": "FLORAL",
            "value": 2,
            "cost": 0.5,
            "eligibility": {"max_churn": 0.6},
        },
    ],
}
CATALOG = parse_catalog(RAW)
AS_OF = pd.Timestamp("2024-06-01")


def frame(n, days_since_deli=None):
    f = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)]})
    f["days_since_deli"] = days_since_deli if days_since_deli is not None else np.nan
    f["share_deli"] = 0.1
    f["ipt_mean_days"] = 7.0
    return f


def run(f, p, clv, churn, p_alive=None, consent=None, history=None):
    n = len(f)
    return decide(
        f,
        CATALOG,
        np.asarray(p, dtype=float),
        np.asarray(clv, dtype=float),
        np.asarray(churn, dtype=float),
        np.ones(n) if p_alive is None else np.asarray(p_alive),
        np.ones(n, dtype=bool) if consent is None else np.asarray(consent),
        history,
        AS_OF,
    )


def test_best_expected_value_wins_and_offers_are_ranked():
    d = run(frame(1), [[0.3, 0.9, 0.5]], [200], [0.1])
    # EV: A = 0.3*10-1 = 2.0, B = 0.9*5-1 = 3.5, C = 0.5*2-0.5 = 0.5
    assert d.action[0] == "cross_sell" and d.action_offer_id[0] == "B"
    assert d.top_index[0].tolist() == [1, 0]
    np.testing.assert_allclose(d.top_ev[0], [3.5, 2.0])


def test_category_bought_recently_makes_cross_sell_ineligible():
    d = run(frame(2, days_since_deli=[10.0, 45.0]), [[0.9, 0.0, 0.0]] * 2, [200, 200], [0.1, 0.1])
    assert 0 not in d.top_index[0]  # bought DELI 10 days ago
    assert d.action_offer_id[1] == "A"


def test_eligibility_ranges_apply():
    d = run(frame(1), [[0.0, 0.9, 0.9]], [10], [0.9])  # B needs clv >= 50, C needs churn <= 0.6
    assert d.action[0] == "no_action" and (d.top_index[0] == -1).all()


def test_retention_for_high_risk_high_value():
    d = run(frame(1), [[0.3, 0.0, 0.0]], [1240], [0.82])
    # retention EV = 0.82 * 0.1 * 1240 - 2 = 99.7 > cross-sell 2.0
    assert d.action[0] == "retention" and d.action_offer_id[0] == "RET"
    reasons = build_reasons(
        frame(1), CATALOG, d, np.array([1240.0]), np.array([0.82]), np.ones(1), np.ones(1, bool)
    )
    assert reasons[0][0]["text"] == "churn risk 0.82 and predicted CLV $1,240 -> retention offer"


def test_low_value_at_risk_customer_gets_no_retention():
    d = run(frame(1), [[0.0, 0.0, 0.0]], [80], [0.9])
    assert d.action[0] == "no_action"
    reasons = build_reasons(
        frame(1), CATALOG, d, np.array([80.0]), np.array([0.9]), np.ones(1), np.ones(1, bool)
    )
    assert reasons[0][0]["code"] == "NO_OFFER_CLEARS_THRESHOLD"


def test_cooldown_and_contact_cap_from_history():
    history = pd.DataFrame(
        {
            "customer_id": ["c0", "c1", "c1", "c1"],
            "offer_id": ["A", "C", "C", "C"],
            "timestamp": ["2024-05-25", "2024-05-20", "2024-05-21", "2024-05-22"],
        }
    )
    d = run(frame(3), [[0.9, 0.0, 0.0]] * 3, [200] * 3, [0.1] * 3, history=history)
    assert 0 not in d.top_index[0]  # A sent 7 days ago, cooldown 14
    assert d.action[1] == "no_action"  # 3 contacts in 30 days = cap
    assert d.action_offer_id[2] == "A"  # untouched customer


def test_contacts_on_or_after_as_of_are_ignored():
    history = pd.DataFrame({"customer_id": ["c0"], "offer_id": ["A"], "timestamp": ["2024-06-01"]})
    d = run(frame(1), [[0.9, 0.0, 0.0]], [200], [0.1], history=history)
    assert d.action_offer_id[0] == "A"


@given(
    n=st.integers(1, 12),
    data=st.data(),
)
def test_consent_property_opted_out_get_only_the_default(n, data):
    p = data.draw(hnp.arrays(float, (n, 3), elements=st.floats(0, 1)))
    clv = data.draw(hnp.arrays(float, n, elements=st.floats(0, 5000)))
    churn = data.draw(hnp.arrays(float, n, elements=st.floats(0, 1)))
    consent = data.draw(hnp.arrays(bool, n))
    days = data.draw(hnp.arrays(float, n, elements=st.one_of(st.just(np.nan), st.floats(0, 400))))
    f = frame(n, days_since_deli=days)
    d = run(f, p, clv, churn, consent=consent)
    reasons = build_reasons(f, CATALOG, d, clv, churn, np.ones(n), consent)
    for i in range(n):
        if not consent[i]:
            assert d.action[i] == "non_personalised" and d.action_offer_id[i] == "DEFAULT"
            assert (d.top_index[i] == -1).all()
            assert [r["code"] for r in reasons[i]] == ["CONSENT_OBJECTED"]
        else:
            assert d.action[i] != "non_personalised"


@given(n=st.integers(1, 12), data=st.data())
def test_eligibility_property_chosen_offer_is_always_eligible(n, data):
    p = data.draw(hnp.arrays(float, (n, 3), elements=st.floats(0, 1)))
    clv = data.draw(hnp.arrays(float, n, elements=st.floats(0, 5000)))
    churn = data.draw(hnp.arrays(float, n, elements=st.floats(0, 1)))
    days = data.draw(hnp.arrays(float, n, elements=st.one_of(st.just(np.nan), st.floats(0, 400))))
    d = run(frame(n, days_since_deli=days), p, clv, churn)
    ev = p * np.array([10, 5, 2]) - np.array([1, 1, 0.5])
    for i in range(n):
        listed = [j for j in d.top_index[i] if j >= 0]
        if 0 in listed:
            assert np.isnan(days[i]) or days[i] > 30
        if 1 in listed:
            assert clv[i] >= 50
        if 2 in listed:
            assert churn[i] <= 0.6
        assert listed == sorted(listed, key=lambda j: -ev[i, j])
        assert all(ev[i, j] > 0 for j in listed)
        if d.action[i] == "cross_sell":
            assert (
                d.action_offer_id[i] == CATALOG.offers[listed[0]].offer_id
                and ev[i, listed[0]] >= 0.5
            )
        if d.action[i] == "retention":
            assert churn[i] >= 0.5 and clv[i] >= 100
            assert churn[i] * 0.1 * clv[i] - 2 >= max(0.5, ev[i, listed[0]] if listed else -np.inf)
        if d.action[i] == "no_action":
            assert not listed or ev[i, listed[0]] < 0.5


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r["offers"][0].pop("value"), r"offers\[0\] is missing \['value'\]"),
        (lambda r: r["offers"][1].update(offer_id="A"), "offer_id 'A' appears twice"),
        (
            lambda r: r["offers"][0].update(eligibility={"min_age": 3}),
            r"unknown rule\(s\) \['min_age'\]",
        ),
        (lambda r: r["offers"][0].update(cost=-1), "value and cost must be >= 0"),
        (lambda r: r.pop("default_action"), "default_action is missing"),
        (lambda r: r["policy"].update(top_n=3), "policy has unknown key"),
        (lambda r: r.update(offers=[]), "no offers"),
    ],
)
def test_catalog_errors_name_the_problem(mutate, message):
    import copy

    raw = copy.deepcopy(RAW)
    mutate(raw)
    with pytest.raises(CatalogError, match=message):
        parse_catalog(raw)


def test_default_catalog_has_ten_offers_over_distinct_categories():
    from nextbest.decision.catalog import load_catalog

    catalog = load_catalog()
    assert len(catalog.offers) >= 10
    assert len({o.category for o in catalog.offers}) == len(catalog.offers)
    assert catalog.default_action.offer_id and catalog.retention is not None


@pytest.mark.parametrize("top_k", [0, 1, 2, 3, 10])
def test_top_k_limits_the_list_but_not_the_choice(top_k):
    catalog = parse_catalog({**RAW, "policy": {**RAW["policy"], "top_k": top_k}})
    f = frame(2)
    p = np.array([[0.3, 0.9, 0.5], [0.0, 0.0, 0.0]])
    d = decide(
        f,
        catalog,
        p,
        np.array([200.0, 200.0]),
        np.array([0.1, 0.1]),
        np.ones(2),
        np.ones(2, bool),
        None,
        AS_OF,
    )
    assert d.top_index.shape == (2, min(top_k, 3))
    assert d.top_index[0].tolist() == [1, 0, 2][:top_k]  # EV 3.5, 2.0, 0.5
    assert d.action.tolist() == ["cross_sell", "no_action"] and d.action_offer_id[0] == "B"
    assert (d.top_index[1] == -1).all()
    reasons = build_reasons(
        f, catalog, d, np.array([200.0, 200.0]), np.array([0.1, 0.1]), np.ones(2), np.ones(2, bool)
    )
    assert "never bought MEAT" in reasons[0][0]["text"]  # the chosen offer B, listed or not
    assert "expected value $3.50" in reasons[0][1]["text"]


@pytest.mark.parametrize(
    "bad",
    [
        {"top_k": -1},
        {"top_k": 1.5},
        {"top_k": "3"},
        {"min_expected_value": None},
        {"max_contacts_30d": True},
    ],
)
def test_catalog_policy_values_are_checked(bad):
    key = next(iter(bad))
    with pytest.raises(CatalogError, match=f"policy.{key}"):
        parse_catalog({**RAW, "policy": {**RAW["policy"], **bad}})


def test_gate_given_to_decide_equals_gate_computed_inside():
    from nextbest.decision.policy import gate_offers

    f = frame(3, days_since_deli=[10.0, 45.0, np.nan])
    history = pd.DataFrame({"customer_id": ["c1"], "offer_id": ["A"], "timestamp": ["2024-05-25"]})
    args = (
        np.array([200.0, 20.0, 500.0]),
        np.array([0.1, 0.7, 0.9]),
        np.ones(3),
        np.array([True, True, False]),
    )
    p = np.full((3, 3), 0.6)
    gate = gate_offers(f, CATALOG, *args, history, AS_OF)
    assert (
        not gate.ok[0, 0] and not gate.ok[1, 0] and not gate.ok[2].any()
    )  # recent DELI; cooldown; consent
    inside = decide(f, CATALOG, p, *args, history, AS_OF)
    given_gate = decide(
        f, CATALOG, np.where(gate.ok, p, np.nan), *args, gate=gate
    )  # ruled-out p never read
    for name in (
        "action",
        "action_offer_id",
        "top_index",
        "top_ev",
        "top_p",
        "retention_ev",
        "best_ev",
    ):
        np.testing.assert_array_equal(
            getattr(inside, name), getattr(given_gate, name), err_msg=name
        )


@pytest.mark.parametrize(
    "ipt, words",
    [
        (np.nan, "once so far"),
        (np.inf, "once so far"),
        (7.0, "weekly"),
        (9.0, "weekly"),
        (9.5, "every two weeks"),
        (18.0, "every two weeks"),
        (30.0, "monthly"),
        (40.0, "monthly"),
        (41.0, "occasionally"),
    ],
)
def test_cadence_words(ipt, words):
    from nextbest.decision.reasons import cadence

    assert cadence(ipt) == words
