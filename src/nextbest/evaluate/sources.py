"""Where the evaluated models come from: trained now on data before ``as_of``, or the registry.

A *model spec* names one set of models (CLV, churn, next best offer):

* ``train`` - fit all three now, on the rows before ``as_of`` only, with the
  same functions and configs as ``nextbest train`` (nothing is registered);
* ``champion`` (or any alias) / ``3`` (a version number) - the registered
  ``nextbest-clv``, ``nextbest-churn`` and ``nextbest-nbo`` under that alias
  or version;
* ``clv=3,churn=champion,nbo=train`` - one reference per model (models not
  named use ``champion``).

A registered model trained on data up to a day after ``as_of`` has seen part
of the backtest horizon: that is reported as a leakage warning, not hidden.
"""

from __future__ import annotations

import dataclasses
import logging

import pandas as pd

from nextbest import registry
from nextbest.decision.catalog import Catalog
from nextbest.errors import InputError
from nextbest.evaluate.data import BacktestData
from nextbest.features.rfm import rfm_summary
from nextbest.models.clv import COUNT_MODEL_NAMES, ClvModel, make_clv_model
from nextbest.models.value import BoostedClvModel
from nextbest.scoring import ModelSet
from nextbest.train.churn import train_churn
from nextbest.train.clv import select_count_model, selection_order, selection_reason
from nextbest.train.nbo import train_nbo
from nextbest.train.value import train_value

log = logging.getLogger(__name__)

TRAIN = "train"
KINDS = {
    "clv": registry.CLV_MODEL_NAME,
    "churn": registry.CHURN_MODEL_NAME,
    "nbo": registry.NBO_MODEL_NAME,
}
# Errors a model can raise on data it cannot handle; anything else is a bug and propagates.
MODEL_ERRORS = (ValueError, RuntimeError, LookupError)


def parse_spec(spec: str) -> dict[str, str]:
    """``"champion"`` -> the same reference for every model; ``"clv=3,nbo=train"`` -> per model.

    Raises
    ------
    ValueError
        On an unknown model kind or an empty reference.
    """
    spec = spec.strip()
    if "=" not in spec:
        if not spec:
            raise InputError(
                "empty model spec; use 'train', an alias such as 'champion', or a version number"
            )
        return dict.fromkeys(KINDS, spec)
    refs = dict.fromkeys(KINDS, registry.CHAMPION)
    for part in spec.split(","):
        kind, _, ref = part.partition("=")
        kind, ref = kind.strip(), ref.strip()
        if kind not in KINDS or not ref:
            raise InputError(
                f"bad model spec part {part!r}: use kind=ref with kind in {sorted(KINDS)}"
            )
        refs[kind] = ref
    return refs


def obtain(spec: str, data: BacktestData, configs: dict[str, dict]) -> ModelSet:
    """Train or load the models named by ``spec`` (see the module docstring)."""
    refs = parse_spec(spec)
    notes: list[str] = []
    versions: dict[str, str] = {}
    if refs["clv"] == TRAIN:
        clv, note = train_clv_model(data, configs["clv"])
        notes.append(note)
        versions[KINDS["clv"]] = "trained now"
    else:
        clv, versions[KINDS["clv"]] = load_registered("clv", refs["clv"], data, notes)
    models = ModelSet(label=spec, clv=clv, catalog=data.catalog, versions=versions, notes=notes)
    for kind in ("churn", "nbo"):
        try:
            if refs[kind] == TRAIN:
                model, reason, trained_notes = _train_classifier(kind, data, configs, clv)
                notes.extend(trained_notes)
                versions[KINDS[kind]] = "trained now" if model is not None else "not trained"
            else:
                model, versions[KINDS[kind]] = load_registered(kind, refs[kind], data, notes)
                reason = None
        except MODEL_ERRORS as exc:
            log.warning("%s (%s) unavailable", KINDS[kind], refs[kind], exc_info=True)
            model, reason = None, f"{KINDS[kind]} ({refs[kind]}) unavailable: {exc}"
            versions.setdefault(KINDS[kind], "unavailable")
        if model is None:
            models.skipped[kind] = reason or f"no {KINDS[kind]} model"
        setattr(models, kind, model)
    if models.nbo is not None:
        models.catalog = _catalog_for(models.nbo, data.catalog, notes)
        if not models.catalog.offers:
            models.nbo = None
            models.skipped["nbo"] = "the offer model knows none of the catalog's offers"
    return models


def train_clv_model(data: BacktestData, config: dict) -> tuple[ClvModel | BoostedClvModel, str]:
    """Choose the count model on an inner split, fit it on rows before ``as_of`` and boost it if
    the boosted model passes its rule (as ``nextbest train``)."""

    unit = float(config["time_unit_days"])
    candidates = list(config["count_models"])
    unknown = [c for c in candidates if c not in COUNT_MODEL_NAMES]
    if unknown or not candidates:
        raise InputError(
            f"unknown count model(s) {unknown}; choose from {sorted(COUNT_MODEL_NAMES)}"
        )
    best, reason = candidates[0], f"CLV: {COUNT_MODEL_NAMES[candidates[0]]} (the only candidate)"
    order = None
    if len(candidates) > 1:
        try:
            best, table, _ = select_count_model(data.train, data.as_of, config)
            reason = "CLV: " + selection_reason(best, table, config)
            order = selection_order(table)
        except (ValueError, RuntimeError) as exc:
            reason = f"CLV: inner model choice impossible ({exc}); using {COUNT_MODEL_NAMES[best]}"
    model = make_clv_model(config, best, fallbacks=order)
    model.fit(rfm_summary(data.train, data.as_of, unit))
    if model.count_model_used_ != best:
        reason += (
            f"; {best} did not converge on all the data, {model.count_model_used_} used instead"
            + (" (the next by the same rule)" if order else "")
        )
    if not config["value_model"]["enabled"]:
        return model, reason
    value = train_value(data.ctx_train, data.as_of, config, model)
    reason += f". CLV: {value.reason}"
    return (value.model if value.model is not None else model), reason


def _train_classifier(kind: str, data: BacktestData, configs: dict, clv):
    """Fit the churn or offer model on rows before ``as_of``.

    Returns ``(model, reason, notes)``: ``model`` is ``None`` with the reason when the data
    cannot support it; ``notes`` say how it was validated (e.g. the short-history scheme).
    """
    if kind == "nbo" and not data.has_categories:
        return (
            None,
            (
                "no product categories of the offer catalog in this dataset: next best offer, "
                "campaigns and decisions are not evaluated"
            ),
            [],
        )
    cfg_clv = {**configs["clv"], "time_unit_days": clv.time_unit_days}
    if kind == "churn":
        result = train_churn(
            data.ctx_train, data.as_of, configs["churn"], cfg_clv, clv.count_model_used_
        )
        return result.model, None, result.notes

    result = train_nbo(data.ctx_train, data.as_of, configs["nbo"], data.catalog, clv.time_unit_days)
    return result.model, None, result.notes


def load_registered(kind: str, ref: str, data: BacktestData, notes: list[str]):
    """Load ``nextbest-<kind>`` by alias or version; warn when it was trained past ``as_of``.

    Returns ``(model, version)``; raises :class:`~nextbest.errors.NoChampionError` (a
    ``LookupError``) when the registry has no such version.
    """
    from mlflow import MlflowClient

    name = KINDS[kind]
    model, mv = registry.load_model(name, ref)
    trained_as_of, trained_on = _training_tags(MlflowClient(), mv.run_id)
    if trained_as_of is not None and trained_as_of > data.as_of:
        notes.append(
            f"WARNING: {name} v{mv.version} was trained on data up to {trained_as_of.date()}, "
            "after "
            f"the backtest as_of {data.as_of.date()}: it has seen part of the horizon, so its "
            "scores here are optimistic (leakage)."
        )
    if trained_on and trained_on != data.name:
        notes.append(
            f"{name} v{mv.version} was trained on dataset {trained_on!r}, evaluated on "
            f"{data.name!r}."
        )
    return model, str(mv.version)


def _training_tags(client, run_id: str | None) -> tuple[pd.Timestamp | None, str | None]:
    """``as_of`` and ``dataset`` tags of the training run (or its parent pipeline run)."""
    if not run_id:
        return None, None
    tags = client.get_run(run_id).data.tags
    parent = tags.get("mlflow.parentRunId")
    if "as_of" not in tags and parent:
        tags = {**client.get_run(parent).data.tags, **tags}
    as_of = pd.Timestamp(tags["as_of"]) if tags.get("as_of") else None
    return as_of, tags.get("dataset")


def _catalog_for(nbo, catalog: Catalog, notes: list[str]) -> Catalog:
    """The catalog restricted to offers the offer model knows (it cannot score the others)."""
    known = set(getattr(nbo, "levels_", {}).get("offer_id", []))
    if not known:
        return catalog
    offers = tuple(o for o in catalog.offers if o.offer_id in known)
    dropped = [o.offer_id for o in catalog.offers if o.offer_id not in known]
    if dropped:
        notes.append(
            f"offers {dropped} are not known to the offer model and are left out of the evaluation."
        )
    return dataclasses.replace(catalog, offers=offers)
