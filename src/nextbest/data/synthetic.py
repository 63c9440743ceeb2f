"""Seeded synthetic transactions from a BG/NBD purchase process and Gamma-Gamma spend.

The generator is vectorised with numpy: one million customers take seconds.
Because the true parameters are known, it is used for parameter-recovery
tests and for scale benchmarks.

The purchase process follows Fader, Hardie & Lee (2005), "Counting your
customers the easy way", section 3:

* each customer's first purchase happens at their birth time (time 0);
* repeat purchases follow a Poisson process with rate ``lambda ~ Gamma(r, alpha)``
  (rate per ``time_unit_days`` days);
* after each repeat purchase the customer drops out with probability
  ``p ~ Beta(a, b)``.

Spend per purchase follows Fader, Hardie & Lee (2005), "RFM and CLV: using
iso-value curves": ``z ~ Gamma(p, nu)`` with ``nu ~ Gamma(q, gamma)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nextbest.errors import InputError

DEFAULT_CATEGORIES: tuple[str, ...] = (
    "GROCERY",
    "PRODUCE",
    "DRUG GM",
    "MEAT",
    "DELI",
    "MEAT-PCKGD",
    "PASTRY",
    "NUTRITION",
    "SEAFOOD-PCKGD",
    "FLORAL",
    "KIOSK-GAS",
    "SALAD BAR",
)


@dataclass(frozen=True)
class SyntheticParams:
    """True parameters of the generating process.

    Rates (``alpha``) are per ``time_unit_days`` days; the defaults are the
    CDNOW estimates of Fader, Hardie & Lee (2005), in weeks.
    """

    r: float = 0.243
    alpha: float = 4.414
    a: float = 0.793
    b: float = 2.426
    p: float = 6.25
    q: float = 3.74
    gamma: float = 15.44
    time_unit_days: float = 7.0
    birth_window_days: int = 84
    observation_days: int = 364
    start: str = "2024-01-01"

    def as_dict(self) -> dict:
        return asdict(self)


def generate_transactions(
    n_customers: int,
    seed: int = 0,
    params: SyntheticParams | None = None,
    categories: tuple[str, ...] = DEFAULT_CATEGORIES,
) -> pd.DataFrame:
    """Generate seeded synthetic transactions.

    Parameters
    ----------
    n_customers : int
        Number of customers (each has at least one purchase, at birth).
    seed : int
        Seed of the numpy ``Generator``; the same seed gives the same frame.
    params : SyntheticParams, optional
        True parameters; defaults to the CDNOW estimates, in weeks.
    categories : tuple of str
        Category labels. Each customer has a favourite category that gets
        60% of their purchases; the rest are spread uniformly.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` (str), ``timestamp`` (datetime64), ``amount``
        (float, > 0), ``order_id`` (str), ``category`` (str), sorted by
        customer and time. The observation window is
        ``[start, start + observation_days)``; use
        ``as_of = start + observation_days`` when fitting.
    """
    if n_customers < 1:
        raise InputError(f"n_customers must be >= 1, got {n_customers}")
    params = params or SyntheticParams()
    rng = np.random.default_rng(seed)
    unit = params.time_unit_days

    # Birth on a whole day, observed until the end of the window (in units).
    birth_day = rng.integers(0, params.birth_window_days, size=n_customers)
    t_obs = (params.observation_days - birth_day) / unit
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=n_customers)
    p_drop = rng.beta(params.a, params.b, size=n_customers)
    # Repeat purchases before dropout: geometric on {1, 2, ...}.
    k_max = rng.geometric(np.clip(p_drop, 1e-12, 1.0))
    n_events = rng.poisson(lam * t_obs)
    n_repeat = np.minimum(k_max, n_events)

    # Event times given N events in [0, T] are sorted uniforms; keep the first k.
    owner = np.repeat(np.arange(n_customers), n_events)
    u = rng.random(owner.size)
    order = np.lexsort((u, owner))
    owner, u = owner[order], u[order]
    starts = np.repeat(np.cumsum(n_events) - n_events, n_events)
    rank = np.arange(owner.size) - starts
    keep = rank < n_repeat[owner]
    rep_owner = owner[keep]
    rep_offset_days = u[keep] * t_obs[rep_owner] * unit

    all_owner = np.concatenate([np.arange(n_customers), rep_owner])
    offset_days = np.concatenate([np.zeros(n_customers), rep_offset_days])
    day_float = birth_day[all_owner] + offset_days
    order = np.lexsort((day_float, all_owner))
    all_owner, day_float = all_owner[order], day_float[order]

    nu = rng.gamma(params.q, 1.0 / params.gamma, size=n_customers)
    amount = rng.gamma(params.p, 1.0 / nu[all_owner])

    n_cat = len(categories)
    favourite = rng.integers(0, n_cat, size=n_customers)
    use_fav = rng.random(all_owner.size) < 0.6
    cat_idx = np.where(use_fav, favourite[all_owner], rng.integers(0, n_cat, size=all_owner.size))

    start = np.datetime64(pd.Timestamp(params.start).to_datetime64(), "s")
    seconds = np.floor(day_float * 86400.0).astype("int64")
    timestamp = start + seconds.astype("timedelta64[s]")
    width = len(str(n_customers))
    ids = _labels("S", np.arange(n_customers), width)
    str_dtype = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default "str"
    return pd.DataFrame(
        {
            "customer_id": pd.Series(pc.take(ids, pa.array(all_owner)), dtype=str_dtype),
            "timestamp": timestamp.astype("datetime64[ns]"),
            "amount": np.round(amount, 2).clip(min=0.01),
            "order_id": pd.Series(_labels("O", np.arange(all_owner.size), 0), dtype=str_dtype),
            "category": pd.Series(
                pc.take(pa.array(list(categories)), pa.array(cat_idx)), dtype=str_dtype
            ),
        }
    )


def _labels(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded numbers, built in Arrow (fast for millions of rows)."""
    text = pc.cast(pa.array(numbers), pa.string())
    if width:
        text = pc.utf8_lpad(text, width, padding="0")
    return pc.binary_join_element_wise(prefix, text, "")


def synthetic_as_of(params: SyntheticParams | None = None) -> pd.Timestamp:
    """The first day after the synthetic observation window."""
    params = params or SyntheticParams()
    return pd.Timestamp(params.start) + pd.Timedelta(days=params.observation_days)


def write_synthetic(n_customers: int, seed: int, output: str | Path) -> str:
    """Write :func:`generate_transactions` to ``output`` (.csv or .parquet); say what it wrote."""
    output = Path(output)
    frame = generate_transactions(n_customers, seed=seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".csv":
        frame.to_csv(output, index=False)
    else:
        frame.to_parquet(output, index=False)
    return (
        f"wrote {len(frame):,} transactions of {n_customers:,} customers to {output} "
        f"(as_of {synthetic_as_of().date()}, true parameters {SyntheticParams().as_dict()})"
    )


@dataclass(frozen=True)
class SyntheticCampaign:
    """A synthetic campaign log with its true conversion probabilities.

    ``true_p`` (n x 1+K): P(convert | action, x) per customer, action 0 = no
    contact, action k = ``offers[k - 1]``; ``true_uplift`` = ``true_p[:, 1:] -
    true_p[:, [0]]``; ``true_propensity`` (n x 1+K) the assignment probabilities.
    """

    log: pd.DataFrame
    customers: pd.DataFrame
    offers: tuple[str, ...]
    true_p: np.ndarray
    true_propensity: np.ndarray

    @property
    def true_uplift(self) -> np.ndarray:
        return self.true_p[:, 1:] - self.true_p[:, [0]]


def generate_campaign_log(
    n_customers: int,
    seed: int = 0,
    n_offers: int = 2,
    observational: bool = False,
    contacted_at: str = "2024-06-01",
) -> SyntheticCampaign:
    """A seeded campaign log (one row per customer) with a known heterogeneous effect.

    Customers have numeric attributes ``x1``..``x4`` (standard normal) and a
    categorical ``segment`` (A, B, C). With ``b(x) = -2 + 0.6 x1 - 0.4 x2 +
    0.3 [segment = C]`` and ``s`` the logistic function:

    * no contact: ``P(y) = s(b(x))``;
    * offer k (``OFFER-1``, ``OFFER-2``, ...): ``P(y) = s(b(x) + d_k(x))`` with
      ``d_1 = 1.2 [x3 > 0] - 0.3`` (helps half the customers, hurts the others a
      little), ``d_2 = 0.9 [segment = B] + 0.3 x4``, and for k > 2
      ``d_k = 0.4 sin(k x3) + 0.2``.

    Assignment is uniform over the 1 + K actions (a randomized test, propensity
    ``1 / (1 + K)`` in the log), or, with ``observational``, a softmax of
    ``0.8 x1 k / K`` over actions (customers with high ``x1`` are contacted more),
    with no ``propensity`` column in the log. Revenue is a Gamma(2, 15) spend
    (currency units) on conversion.

    Returns
    -------
    SyntheticCampaign
        ``log`` in the campaign-log schema (``customer_id``, ``offer_id`` with
        ``""`` for no contact, ``contacted_at``, ``group``, ``propensity``,
        ``converted``, ``revenue``) and ``customers`` (``customer_id``, ``x1``..``x4``,
        ``segment``, ``consent_profiling``).
    """
    if n_customers < 1 or n_offers < 1:
        raise ValueError("n_customers and n_offers must be >= 1")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_customers, 4))
    segment = rng.choice(np.array(["A", "B", "C"]), size=n_customers, p=[0.5, 0.3, 0.2])
    base = -2.0 + 0.6 * x[:, 0] - 0.4 * x[:, 1] + 0.3 * (segment == "C")
    shifts = [np.zeros(n_customers)]
    for k in range(1, n_offers + 1):
        if k == 1:
            shifts.append(1.2 * (x[:, 2] > 0) - 0.3)
        elif k == 2:
            shifts.append(0.9 * (segment == "B") + 0.3 * x[:, 3])
        else:
            shifts.append(0.4 * np.sin(k * x[:, 2]) + 0.2)
    true_p = 1.0 / (1.0 + np.exp(-(base[:, None] + np.column_stack(shifts))))
    n_actions = n_offers + 1
    if observational:
        logits = 0.8 * x[:, [0]] * np.arange(n_actions)[None, :] / n_offers
        prop = np.exp(logits - logits.max(axis=1, keepdims=True))
        prop /= prop.sum(axis=1, keepdims=True)
    else:
        prop = np.full((n_customers, n_actions), 1.0 / n_actions)
    action = (rng.random(n_customers)[:, None] > np.cumsum(prop, axis=1)).sum(axis=1)
    action = np.minimum(action, n_offers)
    rows = np.arange(n_customers)
    converted = (rng.random(n_customers) < true_p[rows, action]).astype("float64")
    revenue = np.round(converted * rng.gamma(2.0, 15.0, size=n_customers), 2)
    offers = tuple(f"OFFER-{k}" for k in range(1, n_offers + 1))
    width = len(str(n_customers))
    ids = np.char.add("U", np.char.zfill(np.arange(n_customers).astype(str), width))
    offer_id = np.array(("", *offers), dtype=object)[action]
    log = pd.DataFrame(
        {
            "customer_id": ids.astype(object),
            "offer_id": offer_id,
            "contacted_at": np.full(n_customers, np.datetime64(contacted_at, "ns")),
            "group": np.where(action == 0, "control", "treatment"),
            "propensity": prop[rows, action],
            "converted": converted,
            "revenue": revenue,
        }
    )
    if observational:
        log = log.drop(columns="propensity")
    customers = pd.DataFrame(
        {
            "customer_id": ids.astype(object),
            "x1": x[:, 0],
            "x2": x[:, 1],
            "x3": x[:, 2],
            "x4": x[:, 3],
            "segment": segment.astype(object),
            "consent_profiling": True,
        }
    )
    return SyntheticCampaign(log, customers, offers, true_p, prop)
