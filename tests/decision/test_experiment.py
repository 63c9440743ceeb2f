"""Randomized control groups and exploration: shares, stability and the logged propensities."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.decision.experiment import NO_CONTACT, RETENTION, assign, unit_hash

N = 20_000


def _setup(n=N, m=4, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.array([f"{i:05d}" for i in range(n)], dtype=object)
    eligible = rng.random((n, m)) < 0.6
    retention = rng.random(n) < 0.3
    greedy = np.where(eligible.any(axis=1), eligible.argmax(axis=1), NO_CONTACT)
    consent = rng.random(n) > 0.05
    return ids, greedy, eligible, retention, consent


def test_greedy_policy_by_default():
    ids, greedy, eligible, retention, consent = _setup()
    a = assign(ids, greedy, eligible, retention, consent, {}, "2018-01-01")
    assert (a.arm == greedy).all() and (a.group == "treatment").all()
    assert (a.propensity == 1.0).all()


def test_control_group_is_the_share_and_the_same_in_every_run():
    ids, greedy, eligible, retention, consent = _setup()
    policy = {"control_share": 0.05, "explore_share": 0.10}
    a = assign(ids, greedy, eligible, retention, consent, policy, "2018-01-01")
    b = assign(ids, greedy, eligible, retention, consent, policy, "2018-02-01")
    control = a.group == "control"
    share = control[consent].mean()
    se = np.sqrt(0.05 * 0.95 / consent.sum())
    assert abs(share - 0.05) < 4 * se
    assert (control == (b.group == "control")).all()  # a universal holdout stays put
    assert (a.arm[control] == NO_CONTACT).all() and np.allclose(a.propensity[control], 0.05)
    # ... and a customer's group does not depend on who else is scored (batch = HTTP)
    one = assign(ids[:1], greedy[:1], eligible[:1], retention[:1], consent[:1], policy, "x")
    assert one.group[0] == a.group[0] or (a.group[0] == "explore")


def test_exploration_is_uniform_over_eligible_arms_and_moves_between_runs():
    ids, greedy, eligible, retention, consent = _setup()
    policy = {"control_share": 0.0, "explore_share": 0.2}
    a = assign(ids, greedy, eligible, retention, consent, policy, "run-1")
    b = assign(ids, greedy, eligible, retention, consent, policy, "run-2")
    explore = a.group == "explore"
    assert abs(explore[consent].mean() - 0.2) < 4 * np.sqrt(0.2 * 0.8 / consent.sum())
    assert (explore != (b.group == "explore")).mean() > 0.2
    rows = np.flatnonzero(explore)
    for i in rows:  # every explored arm is eligible
        arm = a.arm[i]
        assert arm == NO_CONTACT or (arm == RETENTION and retention[i]) or eligible[i, arm]
    # the explored arm is uniform among the k arms: no contact is chosen 1/k of the time
    k = 1 + retention[rows] + eligible[rows].sum(axis=1)
    expected = (1.0 / k).sum()
    observed = (a.arm[rows] == NO_CONTACT).sum()
    assert abs(observed - expected) < 4 * np.sqrt(((1 / k) * (1 - 1 / k)).sum())


def test_logged_propensity_is_the_frequency_of_the_arm():
    """Over many runs of one customer, each arm comes up with the logged probability."""
    ids, greedy, eligible, retention, consent = _setup(n=1)
    eligible[:] = [True, False, True, True]
    retention[:] = True
    consent[:] = True
    greedy[:] = 2
    policy = {"control_share": 0.1, "explore_share": 0.3, "experiment_salt": "t"}
    runs = 4000
    arms, props = [], {}
    for r in range(runs):
        # a different salt each run also redraws the holdout: frequencies of the policy itself
        p = {**policy, "experiment_salt": f"t{r}"}
        a = assign(ids, greedy, eligible, retention, consent, p, f"run-{r}")
        key = ("control",) if a.group[0] == "control" else ("arm", int(a.arm[0]))
        arms.append(key)
        props[key] = float(a.propensity[0])
    assert sum(props.values()) == pytest.approx(1.0)  # control + the 5 arms
    for key, p in props.items():
        freq = sum(1 for x in arms if x == key) / runs
        assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / runs), (key, freq, p)


def test_objectors_are_in_no_experiment():
    ids, greedy, eligible, retention, consent = _setup()
    policy = {"control_share": 0.5, "explore_share": 0.5}
    a = assign(ids, greedy, eligible, retention, consent, policy, "r")
    assert (a.group[~consent] == "treatment").all() and (a.propensity[~consent] == 1).all()


def test_unit_hash_is_uniform_and_stable():
    u = unit_hash(np.array([f"c{i}" for i in range(50_000)], dtype=object), "salt")
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert (
        unit_hash(np.array(["00042"]), "salt")[0] == unit_hash(np.array(["00042", "x"]), "salt")[0]
    )
    assert unit_hash(np.array(["00042"]), "salt")[0] != unit_hash(np.array(["42"]), "salt")[0]
