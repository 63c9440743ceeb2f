"""The offer catalog (``models/offers.yaml``): offers, the retention offer, the default action,
policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nextbest.config import models_dir, read_yaml
from nextbest.errors import CatalogError

ELIGIBILITY_KEYS = {
    "not_bought_category_days",
    "min_clv",
    "max_clv",
    "min_churn",
    "max_churn",
    "min_p_alive",
}
POLICY_DEFAULTS: dict[str, Any] = {
    "top_k": 3,
    "min_expected_value": 0.25,
    "max_contacts_30d": 4,
    "retention_churn_threshold": 0.4,
    "retention_min_clv": 150.0,
    # Randomized control group and exploration (nextbest.decision.experiment); 0 = greedy.
    "control_share": 0.0,
    "explore_share": 0.0,
    "experiment_salt": "nextbest",
    # Share of an offer's incremental revenue counted as value, when the uplift model
    # learned revenue too (0: count conversions x value only, no double counting).
    "revenue_margin": 0.0,
    # Prior strength of the learned channel preference (nextbest.decision.channels), in
    # purchase-days and in contacts: more = a customer's own record moves it less.
    "channel_prior_strength": 4.0,
}
TEXT_POLICY_KEYS = {"experiment_salt"}


DEFAULT_RESPONSE_WINDOW_DAYS = 14


@dataclass(frozen=True)
class Offer:
    """One personalised offer.

    ``category`` is the product category a conversion is a purchase in; ``None`` for an offer
    on no particular category (an e-mail campaign, a discount on anything), whose effect then
    comes only from an uplift model. ``response_window_days``: a conversion counts when it
    happens within this many days after the contact.
    """

    offer_id: str
    name: str
    category: str | None
    value: float
    cost: float
    channel: str = "email"
    cooldown_days: int = 0
    max_contacts_30d: int | None = None
    eligibility: dict[str, float] = field(default_factory=dict)
    response_window_days: int = DEFAULT_RESPONSE_WINDOW_DAYS
    outcome: str = "buy"  # what a conversion is, in words ("visit", "buy"): for reasons
    # Channel -> cost of one contact there; ``channel``/``cost`` are the cheapest.
    costs: dict[str, float] = field(default_factory=dict)

    def cost_on(self, channel: str) -> float:
        """Cost of one contact on ``channel`` (inf if the offer is not sent there)."""
        return float(self.costs.get(channel, self.cost if channel == self.channel else np.inf))


@dataclass(frozen=True)
class RetentionOffer:
    offer_id: str
    name: str
    cost: float
    uplift: float
    channel: str = "email"
    cooldown_days: int = 0
    eligibility: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DefaultAction:
    offer_id: str
    name: str
    channel: str = "email"


@dataclass(frozen=True)
class Channel:
    """A contact channel and what consent it needs when a customer said nothing.

    ``opt_in``: contact only customers who opted in (e-mail and SMS marketing
    in the EU); ``opt_out``: contact unless the customer opted out.
    """

    name: str
    consent_default: str = "opt_out"

    @property
    def needs_opt_in(self) -> bool:
        return self.consent_default == "opt_in"


@dataclass(frozen=True)
class Catalog:
    offers: tuple[Offer, ...]
    retention: RetentionOffer | None
    default_action: DefaultAction
    policy: dict[str, Any]
    channels: tuple[Channel, ...] = ()

    def __post_init__(self) -> None:
        if not self.channels:  # built in code without channels: every used one, opt-out
            used = [c for o in self.offers for c in (o.costs or {o.channel: o.cost})]
            used.append(self.default_action.channel)
            if self.retention is not None:
                used.append(self.retention.channel)
            object.__setattr__(self, "channels", _channels(None, used))

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @property
    def has_category(self) -> np.ndarray:
        """Per offer: whether it has a product category (a response model can value it)."""
        return np.array([o.category is not None for o in self.offers], dtype=bool)

    @property
    def categories(self) -> tuple[str, ...]:
        """Distinct categories of the offers, in catalog order (offers without one skipped)."""
        return tuple(dict.fromkeys(o.category for o in self.offers if o.category is not None))

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _require(entry: dict, keys: list[str], where: str) -> None:
    missing = [k for k in keys if k not in entry]
    if missing:
        raise CatalogError(f"offer catalog: {where} is missing {missing}")


def _eligibility(raw: Any, where: str) -> dict[str, float]:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise CatalogError(f"offer catalog: {where}.eligibility must be a mapping")
    unknown = set(raw) - ELIGIBILITY_KEYS
    if unknown:
        raise CatalogError(
            f"offer catalog: {where}.eligibility has unknown rule(s) {sorted(unknown)}; "
            f"known: {sorted(ELIGIBILITY_KEYS)}"
        )
    return {k: float(v) for k, v in raw.items()}


CONSENT_DEFAULTS = ("opt_in", "opt_out")


def _channel_costs(entry: dict, where: str) -> dict[str, float]:
    """``channels: {email: 0.05, sms: 0.10}``, or one ``channel`` (default email) and ``cost``."""
    raw = entry.get("channels")
    if raw is None:
        if "cost" not in entry:
            raise CatalogError(f"offer catalog: {where} is missing ['cost'] (or channels)")
        return {str(entry.get("channel", "email")): entry["cost"]}
    if not isinstance(raw, dict) or not raw:
        raise CatalogError(f"offer catalog: {where}.channels must map channel -> cost")
    out = {}
    for name, cost in raw.items():
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0:
            raise CatalogError(
                f"offer catalog: {where}.channels.{name} must be a cost >= 0, got {cost!r}"
            )
        out[str(name)] = float(cost)
    return out


def _channels(raw: Any, used: list[str]) -> tuple[Channel, ...]:
    """The catalog's ``channels`` (name -> ``consent_default``), every used one declared.

    Without a ``channels`` section every channel an offer uses is ``opt_out``
    (contact unless the customer objected), as before channels existed.
    """
    if raw is None:
        return tuple(Channel(name) for name in dict.fromkeys(used))
    if not isinstance(raw, dict):
        raise CatalogError("offer catalog: channels must map name -> {consent_default: ...}")
    out = []
    for name, spec in raw.items():
        default = (spec or {}).get("consent_default", "opt_out") if isinstance(spec, dict) else spec
        if default not in CONSENT_DEFAULTS:
            raise CatalogError(
                f"offer catalog: channels.{name}.consent_default must be one of "
                f"{list(CONSENT_DEFAULTS)}, got {default!r}"
            )
        out.append(Channel(str(name), str(default)))
    undeclared = sorted(set(used) - {c.name for c in out})
    if undeclared:
        raise CatalogError(f"offer catalog: channel(s) {undeclared} are used but not declared")
    return tuple(out)


def parse_catalog(raw: dict) -> Catalog:
    """Validate a parsed catalog mapping; errors name the offer and the field."""
    if not isinstance(raw, dict):
        raise CatalogError("offer catalog: expected a mapping at the top level")
    offers = []
    seen: set[str] = set()
    for i, entry in enumerate(raw.get("offers") or []):
        where = f"offers[{i}]"
        _require(entry, ["offer_id", "name", "value"], where)
        costs = _channel_costs(entry, where)
        entry = {**entry, "cost": min(costs.values())}
        oid = str(entry["offer_id"])
        if oid in seen:
            raise CatalogError(f"offer catalog: offer_id {oid!r} appears twice")
        seen.add(oid)
        value, cost = float(entry["value"]), float(entry["cost"])
        if value < 0 or cost < 0:
            raise CatalogError(f"offer catalog: {oid}: value and cost must be >= 0")
        category = entry.get("category")
        window = entry.get("response_window_days", DEFAULT_RESPONSE_WINDOW_DAYS)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise CatalogError(
                f"offer catalog: {oid}: response_window_days must be a whole number >= 1, "
                f"got {window!r}"
            )
        rules = _eligibility(entry.get("eligibility"), oid)
        if category is None and "not_bought_category_days" in rules:
            raise CatalogError(
                f"offer catalog: {oid}: eligibility.not_bought_category_days needs a category"
            )
        offers.append(
            Offer(
                offer_id=oid,
                name=str(entry["name"]),
                category=None if category is None else str(category),
                value=value,
                cost=cost,
                channel=min(costs, key=lambda c: (costs[c], c)),
                cooldown_days=int(entry.get("cooldown_days", 0)),
                max_contacts_30d=entry.get("max_contacts_30d"),
                eligibility=rules,
                response_window_days=window,
                outcome=str(entry.get("outcome", "buy")),
                costs=costs,
            )
        )
    if not offers:
        raise CatalogError("offer catalog: no offers")
    ret = raw.get("retention")
    retention = None
    if ret:
        _require(ret, ["offer_id", "name", "cost", "uplift"], "retention")
        retention = RetentionOffer(
            offer_id=str(ret["offer_id"]),
            name=str(ret["name"]),
            cost=float(ret["cost"]),
            uplift=float(ret["uplift"]),
            channel=str(ret.get("channel", "email")),
            cooldown_days=int(ret.get("cooldown_days", 0)),
            eligibility=_eligibility(ret.get("eligibility"), "retention"),
        )
        if retention.offer_id in seen:
            raise CatalogError(f"offer catalog: offer_id {retention.offer_id!r} appears twice")
    default = raw.get("default_action") or {}
    _require(default, ["offer_id", "name"], "default_action")
    policy = {**POLICY_DEFAULTS, **(raw.get("policy") or {})}
    unknown = set(policy) - set(POLICY_DEFAULTS)
    if unknown:
        raise CatalogError(f"offer catalog: policy has unknown key(s) {sorted(unknown)}")
    for key, value in policy.items():
        if key in TEXT_POLICY_KEYS:
            if not isinstance(value, str) or not value:
                raise CatalogError(f"offer catalog: policy.{key} must be text, got {value!r}")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise CatalogError(f"offer catalog: policy.{key} must be a number, got {value!r}")
    for key in ("control_share", "explore_share"):
        if not 0.0 <= policy[key] < 1.0:
            raise CatalogError(
                f"offer catalog: policy.{key} must be in [0, 1), got {policy[key]!r}"
            )
    if not policy["channel_prior_strength"] > 0:
        raise CatalogError(
            "offer catalog: policy.channel_prior_strength must be > 0, "
            f"got {policy['channel_prior_strength']!r}"
        )
    if int(policy["top_k"]) != policy["top_k"] or policy["top_k"] < 0:
        raise CatalogError(
            f"offer catalog: policy.top_k must be a whole number >= 0, got {policy['top_k']!r}"
        )
    policy["top_k"] = int(policy["top_k"])
    default_action = DefaultAction(
        str(default["offer_id"]), str(default["name"]), str(default.get("channel", "email"))
    )
    used = [c for o in offers for c in o.costs] + [default_action.channel]
    if retention is not None:
        used.append(retention.channel)
    return Catalog(
        offers=tuple(offers),
        retention=retention,
        default_action=default_action,
        policy=policy,
        channels=_channels(raw.get("channels"), used),
    )


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate ``models/offers.yaml`` (or ``path``)."""
    path = Path(path) if path else models_dir() / "offers.yaml"
    if not path.exists():
        raise CatalogError(f"offer catalog not found: {path}")
    return parse_catalog(read_yaml(path))
