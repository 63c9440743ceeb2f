"""Randomized control groups and exploration in every decision.

Catalog policy keys (``models/offers.yaml``):

* ``control_share`` (e.g. 0.05) - a **universal holdout**: a customer whose
  salted hash of ``customer_id`` falls below it gets nothing, in every run
  (the hash does not depend on the run), and the same answer from batch and
  HTTP. It is what the effect of every action is measured against.
* ``explore_share`` - this share of the other decisions picks uniformly among
  the customer's eligible actions, "no contact" included, instead of the
  greedy choice, so that the effect of every action keeps being learned. The
  draw depends on the customer and the run (``as_of``), so exploration
  moves around the base from run to run, reproducibly.
* ``experiment_salt`` - the salt of both hashes (change it to draw a new
  holdout).

Both shares 0 (the default) is the greedy policy, as backtests want.

Every decision then carries ``group`` (``treatment``: the greedy choice,
``control``: held out, ``explore``: a random eligible action) and
``propensity``: the probability with which the policy chose the arm that was
chosen (this offer, retention, no contact, or the holdout), which is what
inverse-propensity weighting of the campaign log needs:

* control: ``control_share``;
* any other arm ``a`` of ``k`` eligible arms:
  ``(1 - control_share) * ((1 - explore_share) * [a is greedy] + explore_share / k)``.

Customers who objected to profiling are in no experiment: the
non-personalised default, group ``treatment``, propensity 1.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.decision.catalog import Catalog
from nextbest.decision.policy import Decisions

GROUPS = ("treatment", "control", "explore")
NO_CONTACT = -1  # arm code of "no contact"
RETENTION = -2  # arm code of the retention offer; offers are 0..m-1


def unit_hash(ids: np.ndarray, salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per id, the same for the same (id, salt) everywhere.

    SipHash-2-4 of the UTF-8 id keyed by the salt (pandas' ``hash_array``,
    vectorised: a million ids in a few milliseconds).
    """
    key = hashlib.blake2b(salt.encode(), digest_size=8).hexdigest()  # 16 characters
    values = np.asarray(ids, dtype=object).astype(str).astype(object)
    hashed = pd.util.hash_array(values, hash_key=key, categorize=False)
    return (hashed >> np.uint64(11)).astype(np.float64) / 2.0**53


@dataclass
class Assignment:
    """The arm each customer gets under the policy, and why."""

    arm: np.ndarray  # offer index, RETENTION, NO_CONTACT (control customers: NO_CONTACT)
    group: np.ndarray  # one of GROUPS
    propensity: np.ndarray  # P(chosen arm | policy)


def assign(
    customer_ids: np.ndarray,
    greedy: np.ndarray,
    eligible: np.ndarray,
    retention_eligible: np.ndarray,
    consent: np.ndarray,
    policy: dict,
    run_key: str,
) -> Assignment:
    """Control group, exploration and the propensity of the chosen arm, per customer.

    Parameters
    ----------
    customer_ids : array of str
    greedy : int array
        The greedy arm (offer index, :data:`RETENTION` or :data:`NO_CONTACT`).
    eligible : bool array (n x m)
        Offers each customer may receive (consent, rules, cooldowns, caps).
    retention_eligible : bool array
        Whether the retention offer may be sent.
    consent : bool array
        ``False``: objected to profiling - no experiment at all.
    policy : dict
        The catalog policy (``control_share``, ``explore_share``, ``experiment_salt``).
    run_key : str
        What makes exploration draws differ between runs (the ``as_of`` date).
    """
    n = len(customer_ids)
    control = float(policy.get("control_share", 0.0))
    explore = float(policy.get("explore_share", 0.0))
    salt = str(policy.get("experiment_salt", "nextbest"))
    arm = greedy.astype(np.int64).copy()
    group = np.full(n, "treatment", dtype=object)
    propensity = np.ones(n)
    if n == 0:
        return Assignment(arm, group, propensity)
    ids = np.asarray(customer_ids).astype(str)
    # Arms per customer: no contact, retention (if eligible), each eligible offer.
    k = 1 + retention_eligible.astype(np.int64) + eligible.sum(axis=1)
    in_control = np.zeros(n, dtype=bool)
    if control > 0:
        in_control = consent & (unit_hash(ids, f"{salt}:control") < control)
    if explore > 0:
        u = unit_hash(ids, f"{salt}:explore:{run_key}")
        exploring = consent & ~in_control & (u < explore)
        if exploring.any():
            pick = unit_hash(ids[exploring], f"{salt}:arm:{run_key}")
            arm[exploring] = _nth_arm(
                np.floor(pick * k[exploring]).astype(np.int64),
                eligible[exploring],
                retention_eligible[exploring],
            )
            group[exploring] = "explore"
    if control > 0 or explore > 0:
        is_greedy = arm == greedy
        propensity = (1.0 - control) * ((1.0 - explore) * is_greedy + explore / k)
        propensity[in_control] = control
        arm[in_control] = NO_CONTACT
        group[in_control] = "control"
    propensity[~consent] = 1.0
    group[~consent] = "treatment"
    return Assignment(arm, group, propensity)


def _nth_arm(j: np.ndarray, eligible: np.ndarray, retention: np.ndarray) -> np.ndarray:
    """The ``j``-th arm of each row in the order: no contact, retention, eligible offers."""
    out = np.full(len(j), NO_CONTACT, dtype=np.int64)
    ret = retention.astype(np.int64)
    out[(j == 1) & (ret == 1)] = RETENTION
    offer_rank = j - 1 - ret  # 0-based rank among the eligible offers
    rows = np.flatnonzero(offer_rank >= 0)
    if rows.size:
        cum = np.cumsum(eligible[rows], axis=1)
        col = (cum <= offer_rank[rows, None]).sum(axis=1)
        out[rows] = col
    return out


CONTROL_CODE = "RANDOMIZED_CONTROL_GROUP"
EXPLORE_CODE = "EXPLORATION"


def run_experiment(
    d: Decisions,
    customer_ids: np.ndarray,
    catalog: Catalog,
    ok: np.ndarray,
    consent: np.ndarray,
    run_key: str,
) -> tuple[Decisions, Assignment]:
    """Apply the catalog's control group and exploration to the greedy decisions ``d``.

    ``ok`` is the offer gate (n x m): the offers each customer may receive.
    Returns the decisions as sent (control customers get nothing; explored
    ones the randomly chosen eligible arm) and the assignment.
    """
    n = len(customer_ids)
    ret_id = catalog.retention.offer_id if catalog.retention else None
    greedy = np.full(n, NO_CONTACT, dtype=np.int64)
    greedy[d.action == "retention"] = RETENTION
    xs = d.action == "cross_sell"
    greedy[xs] = d.best_index[xs]
    a = assign(
        customer_ids, greedy, ok, np.isfinite(d.retention_ev), consent, catalog.policy, run_key
    )
    changed = a.arm != greedy
    if not changed.any():
        return d, a
    action, offer = d.action.copy(), d.action_offer_id.copy()
    channel = d.channel.copy() if d.channel is not None else np.full(n, None, dtype=object)
    names = np.array([*catalog.channel_names, None], dtype=object)
    offer_ids = np.asarray([o.offer_id for o in catalog.offers], dtype=object)
    to_offer = changed & (a.arm >= 0)
    action[to_offer] = "cross_sell"
    offer[to_offer] = offer_ids[a.arm[to_offer]]
    if d.offer_channel is not None:
        rows = np.flatnonzero(to_offer)
        channel[rows] = names[d.offer_channel[rows, a.arm[rows]]]
    to_ret = changed & (a.arm == RETENTION)
    action[to_ret] = "retention"
    offer[to_ret] = ret_id
    channel[to_ret] = catalog.retention.channel if catalog.retention else None
    to_none = changed & (a.arm == NO_CONTACT)
    action[to_none] = "no_action"
    offer[to_none] = None
    channel[to_none] = None
    return dataclasses.replace(d, action=action, action_offer_id=offer, channel=channel), a


def experiment_reasons(a: Assignment, policy: dict) -> list[dict | None]:
    """The first reason of control and explored customers (``None`` for the others)."""
    control = float(policy.get("control_share", 0.0))
    explore = float(policy.get("explore_share", 0.0))
    held = {
        "code": CONTROL_CODE,
        "text": f"held out in the randomized control group ({control:.0%} of customers): "
        "nothing is sent, to measure what the actions add",
    }
    tried = {
        "code": EXPLORE_CODE,
        "text": f"chosen at random among the eligible actions ({explore:.0%} of decisions "
        "explore) to keep learning what works",
    }
    return [held if g == "control" else tried if g == "explore" else None for g in a.group]
