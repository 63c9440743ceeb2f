"""Fitting buy-till-you-die models: validation, compression, penalizer search, log-likelihoods.

Count models (from ``lifetimes``), fitted on the RFM summary in the frame's
time unit: ``bgnbd`` (BG/NBD, Fader, Hardie & Lee 2005a), ``pareto``
(Pareto/NBD, Schmittlein, Morrison & Colombo 1987), ``mbgnbd`` (MBG/NBD,
Batislam, Denizel & Filiztekin 2007). Spend: Gamma-Gamma (Fader, Hardie &
Lee 2005b) on customers with ``frequency > 0`` and ``monetary > 0``.

Fits run on the *compressed* RFM table - one row per distinct (frequency,
recency, T) with a weight, Fader & Hardie's own trick. BG/NBD and Gamma-Gamma
are maximised by :mod:`nextbest.models.fast` (lifetimes' exact objectives,
analytic gradients); Pareto/NBD and MBG/NBD by lifetimes. A fit that raises
``ConvergenceError`` or returns non-finite or degenerate parameters (or
non-finite predictions) is retried with the next penalizer; every attempt is
recorded.

Every fit starts from a fixed point, so the same data gives the same model.
lifetimes starts Pareto/NBD from a random draw around 1 of numpy's unseeded
global generator; on Complete Journey its likelihood is flat along the
dropout parameters (s, beta), Nelder-Mead stops anywhere on that ridge, and
whether the fit even gave finite predictions changed from run to run. It
starts at 1 instead, the centre of lifetimes' draw (:data:`PARETO_START`).
"""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from lifetimes.utils import ConvergenceError as LifetimesConvergenceError

from nextbest.errors import ConfigError, ConvergenceError, ModelInputError
from nextbest.models.base import validate_columns
from nextbest.models.fast import fit_bgnbd, fit_gamma_gamma

COUNT_MODELS: dict[str, type] = {
    "bgnbd": BetaGeoFitter,
    "pareto": ParetoNBDFitter,
    "mbgnbd": ModifiedBetaGeoFitter,
}
PARETO_START = np.ones(4)
"""Pareto/NBD's starting (r, alpha, s, beta): the centre of lifetimes' random start."""
COUNT_MODEL_NAMES = {"bgnbd": "BG/NBD", "pareto": "Pareto/NBD", "mbgnbd": "MBG/NBD"}
RFM_COLUMNS = ("customer_id", "frequency", "recency", "T")
# What a CLV model is fed in production (and its pyfunc signature declares).
RFM_INPUT_COLUMNS = (*RFM_COLUMNS, "monetary")
OUTPUT_COLUMNS = ("customer_id", "p_alive", "expected_purchases", "expected_spend", "predicted_clv")


def validate_rfm(frame: pd.DataFrame, what: str = "RFM summary") -> None:
    """Check an RFM frame: columns, unique ids, and the rules of the BTYD models.

    Rules: ``frequency`` is an integer >= 0; ``recency`` and ``T`` are finite
    and >= 0; ``recency <= T``; ``recency == 0`` when ``frequency == 0``.
    The first broken rule raises :class:`ModelInputError` naming column, row and rule.
    """
    validate_columns(frame, RFM_COLUMNS, must_be_unique=["customer_id"], what=what)

    def fail(mask: np.ndarray, column: str, rule: str) -> None:
        if mask.any():
            row = int(np.flatnonzero(mask)[0])
            value = frame[column].iloc[row]
            value = value.item() if hasattr(value, "item") else value
            raise ModelInputError(
                f"{what}: column {column!r} row {row} (customer_id "
                f"{frame['customer_id'].iloc[row]!r}) has {value!r}; rule: {rule}"
            )

    f = pd.to_numeric(frame["frequency"], errors="coerce").to_numpy(dtype="float64")
    r = pd.to_numeric(frame["recency"], errors="coerce").to_numpy(dtype="float64")
    t = pd.to_numeric(frame["T"], errors="coerce").to_numpy(dtype="float64")
    fail(
        ~np.isfinite(f) | (f < 0) | (f != np.round(f)),
        "frequency",
        "frequency must be an integer >= 0",
    )
    fail(~np.isfinite(r) | (r < 0), "recency", "recency must be a finite number >= 0")
    fail(~np.isfinite(t) | (t < 0), "T", "T must be a finite number >= 0")
    fail(r > t + 1e-9, "recency", "recency <= T")
    fail((f == 0) & (r != 0), "recency", "recency must be 0 when frequency is 0")


def validate_spend_input(frame: pd.DataFrame, what: str = "Gamma-Gamma input") -> None:
    """Gamma-Gamma needs ``frequency > 0`` and ``monetary > 0`` on every row it fits."""
    validate_columns(frame, ("customer_id", "frequency", "monetary"), what=what)
    for column, rule in (
        ("frequency", "Gamma-Gamma needs frequency > 0"),
        ("monetary", "Gamma-Gamma needs spend (monetary) > 0"),
    ):
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64")
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ModelInputError(
                f"{what}: column {column!r} row {row} (customer_id "
                f"{frame['customer_id'].iloc[row]!r}) has {values[row]!r}; rule: {rule}"
            )


def compress(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Distinct rows of ``columns`` with a ``weight`` column counting customers."""
    return frame.groupby(columns, sort=False, observed=True).size().rename("weight").reset_index()


@contextlib.contextmanager
def _quiet():
    # lifetimes prints the optimizer output on failure; keep it out of the user's terminal.
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def params_only(fitter):
    """A fresh fitter of the same class holding only ``params_`` and ``penalizer_coef``.

    lifetimes' fitted objects keep the training data and lambdas (not
    picklable); predictions need only the parameters.
    """
    clean = type(fitter)(penalizer_coef=fitter.penalizer_coef)
    clean.params_ = fitter.params_.astype("float64").copy()
    return clean


def _predictions_finite(fitter, packed: pd.DataFrame) -> bool:
    """P(alive) and expected purchases must be finite for every training pattern.

    Pareto/NBD's hypergeometric terms overflow for very frequent buyers
    (seen on Complete Journey); such a fit is useless for scoring.
    """
    f, r, T = (packed[c].to_numpy(dtype="float64") for c in ("frequency", "recency", "T"))
    with np.errstate(all="ignore"):
        e = np.asarray(fitter.conditional_expected_number_of_purchases_up_to_time(1.0, f, r, T))
        p = np.asarray(fitter.conditional_probability_alive(f, r, T))
    return bool(np.all(np.isfinite(e)) and np.all(np.isfinite(p)))


def _params_ok(fitter) -> bool:
    p = np.asarray(fitter.params_, dtype="float64")
    return bool(np.all(np.isfinite(p)) and np.all(p > 0) and np.all(p < 1e6))


def fit_count_model(
    name: str, rfm: pd.DataFrame, penalizers: list[float]
) -> tuple[Any, list[dict]]:
    """Fit count model ``name`` on compressed RFM, searching ``penalizers`` in order.

    Returns
    -------
    fitter, attempts
        The fitted lifetimes fitter (``None`` if every penalizer failed) and
        one record per attempt: model, penalizer, outcome, seconds.
    """
    if name not in COUNT_MODELS:
        raise ConfigError(f"unknown count model {name!r}; choose from {sorted(COUNT_MODELS)}")
    packed = compress(rfm, ["frequency", "recency", "T"])
    attempts: list[dict] = []
    for pen in penalizers:
        fitter = COUNT_MODELS[name](penalizer_coef=float(pen))
        start = time.perf_counter()
        outcome = "ok"
        args = (
            packed["frequency"].to_numpy(),
            packed["recency"].to_numpy(),
            packed["T"].to_numpy(),
            packed["weight"].to_numpy(),
        )
        try:
            with _quiet(), np.errstate(all="ignore"):
                if name == "bgnbd":
                    fitter = fit_bgnbd(*args, penalizer_coef=float(pen))
                elif name == "pareto":
                    fitter.fit(*args[:3], weights=args[3], initial_params=PARETO_START.copy())
                else:
                    fitter.fit(*args[:3], weights=args[3])
            if not _params_ok(fitter):
                outcome = f"degenerate parameters {dict(fitter.params_.round(6))}"
            elif not _predictions_finite(fitter, packed):
                outcome = "non-finite predictions on the training data"
        except LifetimesConvergenceError:
            outcome = "ConvergenceError"
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        attempts.append(
            {
                "model": name,
                "penalizer": float(pen),
                "outcome": outcome,
                "seconds": round(time.perf_counter() - start, 3),
                "rows": len(packed),
            }
        )
        if outcome == "ok":
            return params_only(fitter), attempts
    return None, attempts


def fit_spend_model(
    rfm: pd.DataFrame, penalizers: list[float]
) -> tuple[GammaGammaFitter, list[dict], int]:
    """Fit Gamma-Gamma on customers with ``frequency > 0`` and ``monetary > 0``.

    Returns the fitter, the attempts and the number of customers used.
    """
    use = rfm.loc[
        (rfm["frequency"] > 0) & (rfm["monetary"] > 0), ["customer_id", "frequency", "monetary"]
    ]
    if len(use) < 10:
        raise ModelInputError(
            f"Gamma-Gamma needs customers with frequency > 0 and spend > 0; only {len(use)} found"
        )
    validate_spend_input(use)
    packed = compress(use, ["frequency", "monetary"])
    attempts: list[dict] = []
    for pen in penalizers:
        fitter = GammaGammaFitter(penalizer_coef=float(pen))
        start = time.perf_counter()
        outcome = "ok"
        try:
            with _quiet(), np.errstate(all="ignore"):
                fitter = fit_gamma_gamma(
                    packed["frequency"].to_numpy(),
                    packed["monetary"].to_numpy(),
                    packed["weight"].to_numpy(),
                    penalizer_coef=float(pen),
                )
            if not _params_ok(fitter) or fitter.params_["q"] <= 1:
                outcome = f"degenerate parameters {dict(fitter.params_.round(6))}"
        except LifetimesConvergenceError:
            outcome = "ConvergenceError"
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        attempts.append(
            {
                "model": "gammagamma",
                "penalizer": float(pen),
                "outcome": outcome,
                "seconds": round(time.perf_counter() - start, 3),
                "rows": len(packed),
            }
        )
        if outcome == "ok":
            return params_only(fitter), attempts, len(use)
    raise ConvergenceError(f"Gamma-Gamma did not converge with any penalizer: {attempts}")


def count_log_likelihood(name: str, fitter, frequency, recency, T) -> float:
    """Total log-likelihood of a fitted count model in the data's own time units.

    Comparable to the values reported by Fader, Hardie & Lee (2005a).
    """
    f = np.asarray(frequency, dtype="float64")
    r = np.asarray(recency, dtype="float64")
    t = np.asarray(T, dtype="float64")
    params = np.asarray(fitter.params_, dtype="float64")
    if name == "pareto":
        return float(np.sum(ParetoNBDFitter._conditional_log_likelihood(params, f, r, t)))
    w = np.ones_like(f)
    cls = COUNT_MODELS[name]
    return float(-cls._negative_log_likelihood(np.log(params), f, r, t, w, 0.0) * w.sum())


def spend_log_likelihood(fitter: GammaGammaFitter, frequency, monetary) -> float:
    """Total Gamma-Gamma log-likelihood (customers with frequency > 0)."""
    f = np.asarray(frequency, dtype="float64")
    m = np.asarray(monetary, dtype="float64")
    w = np.ones_like(f)
    params = np.asarray(fitter.params_, dtype="float64")
    return float(-GammaGammaFitter._negative_log_likelihood(np.log(params), f, m, w, 0.0) * w.sum())
