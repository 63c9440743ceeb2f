"""Probabilistic customer lifetime value: a count model + Gamma-Gamma spend.

Count models (from ``lifetimes``), all fitted on the RFM summary in
``time_unit_days`` units:

* ``bgnbd``  - BG/NBD, Fader, Hardie & Lee (2005a), "Counting your customers the easy way";
* ``pareto`` - Pareto/NBD, Schmittlein, Morrison & Colombo (1987);
* ``mbgnbd`` - MBG/NBD, Batislam, Denizel & Filiztekin (2007).

Spend per purchase: Gamma-Gamma, Fader, Hardie & Lee (2005b), "RFM and CLV:
using iso-value curves", fitted on customers with ``frequency > 0`` and
``monetary > 0``.

Speed: fits run on the *compressed* RFM table - one row per distinct
(frequency, recency, T) with a weight (Fader & Hardie's own trick, supported
by lifetimes' ``weights``). On 1M synthetic customers that is ~150k rows.
BG/NBD is maximised by :mod:`nextbest.models.fast` (the same objective
as lifetimes, analytic gradient), and so is Gamma-Gamma; Pareto/NBD and MBG/NBD by
lifetimes itself.

Robustness: a fit that raises ``ConvergenceError`` (or returns non-finite or
degenerate parameters) is retried with the next penalizer of
``penalizers``; if none works the next count model is tried. Every attempt is
recorded in ``fit_log_``.
"""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from lifetimes.utils import ConvergenceError

from nextbest.data.schema import SchemaError
from nextbest.models.base import BaseModel, validate_columns
from nextbest.models.fast import fit_bgnbd, fit_gamma_gamma

COUNT_MODELS: dict[str, type] = {
    "bgnbd": BetaGeoFitter,
    "pareto": ParetoNBDFitter,
    "mbgnbd": ModifiedBetaGeoFitter,
}
COUNT_MODEL_NAMES = {"bgnbd": "BG/NBD", "pareto": "Pareto/NBD", "mbgnbd": "MBG/NBD"}
RFM_COLUMNS = ("customer_id", "frequency", "recency", "T")
OUTPUT_COLUMNS = ("customer_id", "p_alive", "expected_purchases", "expected_spend", "predicted_clv")


def validate_rfm(frame: pd.DataFrame, what: str = "RFM summary") -> None:
    """Check an RFM frame: columns, unique ids, and the rules of the BTYD models.

    Rules: ``frequency`` is an integer >= 0; ``recency`` and ``T`` are finite
    and >= 0; ``recency <= T``; ``recency == 0`` when ``frequency == 0``.
    The first broken rule raises :class:`SchemaError` naming column, row and rule.
    """
    validate_columns(frame, RFM_COLUMNS, must_be_unique=["customer_id"], what=what)

    def fail(mask: np.ndarray, column: str, rule: str) -> None:
        if mask.any():
            row = int(np.flatnonzero(mask)[0])
            value = frame[column].iloc[row]
            value = value.item() if hasattr(value, "item") else value
            raise SchemaError(
                f"{what}: column {column!r} row {row} (customer_id "
                f"{frame['customer_id'].iloc[row]!r}) has {value!r}; rule: {rule}"
            )

    f = pd.to_numeric(frame["frequency"], errors="coerce").to_numpy(dtype="float64")
    r = pd.to_numeric(frame["recency"], errors="coerce").to_numpy(dtype="float64")
    t = pd.to_numeric(frame["T"], errors="coerce").to_numpy(dtype="float64")
    fail(~np.isfinite(f) | (f < 0) | (f != np.round(f)), "frequency", "frequency must be an integer >= 0")
    fail(~np.isfinite(r) | (r < 0), "recency", "recency must be a finite number >= 0")
    fail(~np.isfinite(t) | (t < 0), "T", "T must be a finite number >= 0")
    fail(r > t + 1e-9, "recency", "recency <= T")
    fail((f == 0) & (r != 0), "recency", "recency must be 0 when frequency is 0")


def validate_spend_input(frame: pd.DataFrame, what: str = "Gamma-Gamma input") -> None:
    """Gamma-Gamma needs ``frequency > 0`` and ``monetary > 0`` on every row it fits."""
    validate_columns(frame, ("customer_id", "frequency", "monetary"), what=what)
    for column, rule in (("frequency", "Gamma-Gamma needs frequency > 0"),
                         ("monetary", "Gamma-Gamma needs spend (monetary) > 0")):
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64")
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SchemaError(
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
        raise ValueError(f"unknown count model {name!r}; choose from {sorted(COUNT_MODELS)}")
    packed = compress(rfm, ["frequency", "recency", "T"])
    attempts: list[dict] = []
    for pen in penalizers:
        fitter = COUNT_MODELS[name](penalizer_coef=float(pen))
        start = time.perf_counter()
        outcome = "ok"
        args = (packed["frequency"].to_numpy(), packed["recency"].to_numpy(),
                packed["T"].to_numpy(), packed["weight"].to_numpy())
        try:
            with _quiet(), np.errstate(all="ignore"):
                if name == "bgnbd":
                    fitter = fit_bgnbd(*args, penalizer_coef=float(pen))
                else:
                    fitter.fit(*args[:3], weights=args[3])
            if not _params_ok(fitter):
                outcome = f"degenerate parameters {dict(fitter.params_.round(6))}"
            elif not _predictions_finite(fitter, packed):
                outcome = "non-finite predictions on the training data"
        except ConvergenceError:
            outcome = "ConvergenceError"
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        attempts.append({"model": name, "penalizer": float(pen), "outcome": outcome,
                         "seconds": round(time.perf_counter() - start, 3), "rows": len(packed)})
        if outcome == "ok":
            return params_only(fitter), attempts
    return None, attempts


def fit_spend_model(rfm: pd.DataFrame, penalizers: list[float]) -> tuple[GammaGammaFitter, list[dict], int]:
    """Fit Gamma-Gamma on customers with ``frequency > 0`` and ``monetary > 0``.

    Returns the fitter, the attempts and the number of customers used.
    """
    use = rfm.loc[(rfm["frequency"] > 0) & (rfm["monetary"] > 0), ["customer_id", "frequency", "monetary"]]
    if len(use) < 10:
        raise SchemaError(
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
                fitter = fit_gamma_gamma(packed["frequency"].to_numpy(), packed["monetary"].to_numpy(),
                                         packed["weight"].to_numpy(), penalizer_coef=float(pen))
            if not _params_ok(fitter) or fitter.params_["q"] <= 1:
                outcome = f"degenerate parameters {dict(fitter.params_.round(6))}"
        except ConvergenceError:
            outcome = "ConvergenceError"
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        attempts.append({"model": "gammagamma", "penalizer": float(pen), "outcome": outcome,
                         "seconds": round(time.perf_counter() - start, 3), "rows": len(packed)})
        if outcome == "ok":
            return params_only(fitter), attempts, len(use)
    raise RuntimeError(f"Gamma-Gamma did not converge with any penalizer: {attempts}")


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


def discount_factor_per_unit(discount_rate_annual: float, time_unit_days: float) -> float:
    """Per-unit discount rate equivalent to an annual rate: (1 + d)^(unit/365) - 1."""
    return (1.0 + discount_rate_annual) ** (time_unit_days / 365.0) - 1.0


class ClvModel(BaseModel):
    """Count model + Gamma-Gamma behind one ``fit``/``predict`` interface.

    Parameters
    ----------
    count_model : {"bgnbd", "pareto", "mbgnbd"}
        Preferred count model; on failure the others in ``fallbacks`` are tried.
    time_unit_days : float
        Length of the model's time unit in days; the RFM frame must use it.
    penalizers : list of float
        Penalizer coefficients tried in order until a fit converges.
    discount_rate_annual : float
        Annual discount rate for CLV.
    margin : float
        Share of spend that is value (1.0 = revenue).
    fallbacks : list of str, optional
        Count models to try, in order, if ``count_model`` fails.
    """

    FORMAT_VERSION = 1

    def __init__(
        self,
        count_model: str = "bgnbd",
        time_unit_days: float = 7.0,
        penalizers: list[float] | tuple[float, ...] = (0.0, 0.001, 0.01, 0.1),
        discount_rate_annual: float = 0.10,
        margin: float = 1.0,
        fallbacks: list[str] | tuple[str, ...] = ("bgnbd", "mbgnbd", "pareto"),
    ) -> None:
        super().__init__()
        if count_model not in COUNT_MODELS:
            raise ValueError(f"unknown count model {count_model!r}; choose from {sorted(COUNT_MODELS)}")
        if time_unit_days <= 0:
            raise ValueError(f"time_unit_days must be > 0, got {time_unit_days}")
        if not 0 < margin <= 1:
            raise ValueError(f"margin must be in (0, 1], got {margin}")
        self.count_model = count_model
        self.time_unit_days = float(time_unit_days)
        self.penalizers = [float(p) for p in penalizers]
        self.discount_rate_annual = float(discount_rate_annual)
        self.margin = float(margin)
        self.fallbacks = [m for m in fallbacks if m != count_model]

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, rfm: pd.DataFrame) -> "ClvModel":
        """Fit on an RFM summary (see :func:`nextbest.features.rfm.rfm_summary`).

        Needs ``customer_id``, ``frequency``, ``recency``, ``T`` (in
        ``time_unit_days`` units) and ``monetary``.
        """
        validate_rfm(rfm)
        validate_columns(rfm, ["monetary"], what="RFM summary")
        start = time.perf_counter()
        self.fit_log_: list[dict] = []
        fitter = None
        for name in [self.count_model, *self.fallbacks]:
            fitter, attempts = fit_count_model(name, rfm, self.penalizers)
            self.fit_log_.extend(attempts)
            if fitter is not None:
                self.count_model_used_ = name
                break
        if fitter is None:
            raise RuntimeError(f"no count model converged: {self.fit_log_}")
        self.count_fitter_ = fitter
        self.spend_fitter_, spend_attempts, self.n_spend_customers_ = fit_spend_model(rfm, self.penalizers)
        self.fit_log_.extend(spend_attempts)
        self.n_customers_ = len(rfm)
        self.log_likelihood_ = count_log_likelihood(
            self.count_model_used_, fitter, rfm["frequency"], rfm["recency"], rfm["T"])
        rep = rfm[(rfm["frequency"] > 0) & (rfm["monetary"] > 0)]
        self.spend_log_likelihood_ = spend_log_likelihood(self.spend_fitter_, rep["frequency"], rep["monetary"])
        self.frequency_monetary_corr_ = float(rep[["frequency", "monetary"]].corr().iloc[0, 1]) if len(rep) > 2 else float("nan")
        self.fit_seconds_ = round(time.perf_counter() - start, 3)
        self.fitted_ = True
        return self

    @property
    def params_(self) -> dict[str, float]:
        """Fitted parameters, rates per ``time_unit_days`` days."""
        self._check_fitted()
        out = {f"{self.count_model_used_}_{k}": float(v) for k, v in self.count_fitter_.params_.items()}
        out.update({f"gammagamma_{k}": float(v) for k, v in self.spend_fitter_.params_.items()})
        return out

    @property
    def penalizer_used_(self) -> float:
        return float(self.count_fitter_.penalizer_coef)

    # -- prediction --------------------------------------------------------------------------
    def expected_purchases(self, horizon_days: float, rfm: pd.DataFrame) -> np.ndarray:
        """Expected repeat purchases in the next ``horizon_days`` days."""
        self._check_fitted()
        t = horizon_days / self.time_unit_days
        with np.errstate(all="ignore"):
            out = self.count_fitter_.conditional_expected_number_of_purchases_up_to_time(
                t, rfm["frequency"].to_numpy(dtype="float64"), rfm["recency"].to_numpy(dtype="float64"),
                rfm["T"].to_numpy(dtype="float64"))
        return np.asarray(out, dtype="float64")

    def p_alive(self, rfm: pd.DataFrame) -> np.ndarray:
        """Probability each customer is still active at the end of the observation."""
        self._check_fitted()
        with np.errstate(all="ignore"):
            out = self.count_fitter_.conditional_probability_alive(
                rfm["frequency"].to_numpy(dtype="float64"), rfm["recency"].to_numpy(dtype="float64"),
                rfm["T"].to_numpy(dtype="float64"))
        return np.clip(np.asarray(out, dtype="float64"), 0.0, 1.0)

    def predict(self, rfm: pd.DataFrame, horizon_days: float = 365) -> pd.DataFrame:
        """Per-customer ``p_alive``, ``expected_purchases``, ``expected_spend``, ``predicted_clv``.

        Parameters
        ----------
        rfm : pandas.DataFrame
            RFM summary at the scoring date, in the model's time unit.
        horizon_days : float
            Horizon for expected purchases and CLV, in days.

        Notes
        -----
        ``predicted_clv`` = sum over steps k of
        ``margin * expected_spend * (E[N(t_k)] - E[N(t_{k-1})]) / (1 + d)^k``,
        with steps of one time unit (at most 52 steps over the horizon) and
        ``d`` the per-step rate equivalent to ``discount_rate_annual``: the
        discounted-cash-flow form of Fader, Hardie & Lee (2005b), eq. 2.
        """
        self._check_fitted()
        validate_rfm(rfm)
        if horizon_days <= 0:
            raise ValueError(f"horizon_days must be > 0, got {horizon_days}")
        f = rfm["frequency"].to_numpy(dtype="float64")
        r = rfm["recency"].to_numpy(dtype="float64")
        T = rfm["T"].to_numpy(dtype="float64")
        m = (rfm["monetary"].to_numpy(dtype="float64") if "monetary" in rfm.columns
             else np.zeros_like(f))
        cf = self.count_fitter_
        with np.errstate(all="ignore"):
            p_alive = np.asarray(cf.conditional_probability_alive(f, r, T), dtype="float64")
            spend = self._expected_spend(f, m)
            horizon_units = horizon_days / self.time_unit_days
            n_steps = int(min(52, max(1, np.ceil(horizon_units))))
            step = horizon_units / n_steps
            d = discount_factor_per_unit(self.discount_rate_annual, step * self.time_unit_days)
            prev = np.zeros_like(f)
            clv = np.zeros_like(f)
            for k in range(1, n_steps + 1):
                cur = np.asarray(cf.conditional_expected_number_of_purchases_up_to_time(k * step, f, r, T))
                clv += (cur - prev) / (1.0 + d) ** k
                prev = cur
        return pd.DataFrame(
            {
                "customer_id": rfm["customer_id"].astype(str).to_numpy(),
                "p_alive": np.clip(p_alive, 0.0, 1.0),
                "expected_purchases": prev,
                "expected_spend": spend,
                "predicted_clv": self.margin * spend * clv,
            }
        )

    def _expected_spend(self, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
        """Gamma-Gamma conditional mean spend per purchase (population mean if no repeat spend).

        Fader, Hardie & Lee (2005b), eq. 5: ``(p (nu + m x)) / (p x + q - 1)``.
        """
        p, q, v = (float(self.spend_fitter_.params_[k]) for k in ("p", "q", "v"))
        x = np.where(monetary > 0, frequency, 0.0)
        mx = np.where(monetary > 0, monetary * frequency, 0.0)
        return p * (v + mx) / (p * x + q - 1.0)

    def summary(self) -> dict[str, Any]:
        """What was fitted and how: model, penalizer, parameters, log-likelihoods, fit log."""
        self._check_fitted()
        return {
            "count_model": self.count_model_used_,
            "count_model_requested": self.count_model,
            "penalizer": self.penalizer_used_,
            "time_unit_days": self.time_unit_days,
            "params": self.params_,
            "log_likelihood": self.log_likelihood_,
            "spend_log_likelihood": self.spend_log_likelihood_,
            "n_customers": self.n_customers_,
            "n_spend_customers": self.n_spend_customers_,
            "frequency_monetary_corr": self.frequency_monetary_corr_,
            "fit_seconds": self.fit_seconds_,
            "fit_log": self.fit_log_,
        }
