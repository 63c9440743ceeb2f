"""Impact: what the logged actions really changed, measured against their control groups.

Given a validated campaign log with outcomes
(:func:`nextbest.data.campaign_log.validate_campaign_log`, then
:func:`~nextbest.data.campaign_log.derive_outcomes` when the log has none) and
per-customer features, the section reports:

* **treatment vs control** per offer and for all offers: incremental
  conversions and revenue per treated customer and in total, with 95%
  intervals (control group of an offer = control rows naming it plus the
  universal holdout; see :mod:`.impact_estimates`), and a plain warning, with
  the minimum detectable effect, where the groups are too small to conclude;
* **Qini curves** of the uplift model, the response model (P(convert | offer)
  learnt on the offer's rows) and random order, with their Qini coefficients;
* **policy values** of greedy uplift, response-model targeting at the same
  volume, each offer for everyone and no contact, by doubly robust and IPW
  estimators, and the promotion gate's decision
  (:mod:`nextbest.models.uplift_policy`, cross-fitted);
* for an **observational** log (no propensities): a plain statement that the
  effects are observational, the estimated propensities and their overlap,
  covariate balance before and after weighting and, given the outcomes of the
  weeks before contact, a placebo check whose interval should include zero.

Features are one row per customer (``customer_id``), or one row per log row
(``customer_id`` with ``offer_id`` and/or ``contacted_at``) when each campaign
needs covariates measured before it; the uplift model takes the former only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nextbest.config import merge, models_dir
from nextbest.data import Dataset
from nextbest.data.campaign_log import derive_outcomes, validate_campaign_log
from nextbest.data.completejourney import completejourney_campaign_log
from nextbest.data.files import read_table
from nextbest.data.readers import split_flagged
from nextbest.data.schema import opted_out, validate_transactions
from nextbest.decision.catalog import Catalog, load_catalog
from nextbest.errors import InputError, ModelInputError
from nextbest.evaluate import impact_estimates as est
from nextbest.evaluate import impact_report as report
from nextbest.evaluate.data import BacktestData
from nextbest.evaluate.results import Section
from nextbest.features.build import FeatureContext, features_at

NAME = "impact"
TITLE = "Impact: what the actions really changed"
IMPACT_DEFAULTS: dict = {
    "folds": 5,  # cross-fitting folds of the uplift model
    "uplift": {},  # overrides of nextbest.models.uplift.UPLIFT_DEFAULTS
    "margin": 0.0,  # share of incremental revenue counted as value in policy values
    "alpha": 0.05,  # two-sided level of intervals (one-sided for the promotion gate)
    "power": 0.80,  # power of the minimum detectable effect
    "max_propensity": 0.99,  # observational: rows above have no comparable control, trimmed
    "propensity_C": 1.0,  # inverse L2 strength of the propensity logistic regression
    "min_group": 30,  # fewer treated or control rows than this: too small for a conclusion
    "smd_threshold": 0.1,  # |standardized mean difference| above this is imbalance
    "balance_rows": 25,  # features per offer kept in the balance table (most imbalanced)
    "max_panels": 12,  # offers drawn in the per-offer figures (largest first)
}


def impact_config(overrides: dict | None = None) -> dict:
    """:data:`IMPACT_DEFAULTS` with ``overrides`` merged on top (a new dict)."""
    return merge(IMPACT_DEFAULTS, overrides)


def impact_section(
    log: pd.DataFrame,
    features: pd.DataFrame | None,
    catalog,
    config: dict | None = None,
    uplift_model=None,
    seed: int = 0,
    pre_outcomes: pd.DataFrame | None = None,
) -> Section:
    """The Impact section of ``report.html`` and ``metrics.json``.

    Parameters
    ----------
    log : pandas.DataFrame
        A validated campaign log with ``converted`` (and optionally ``revenue``,
        ``propensity``). Rows whose outcome is not known yet are left out (counted).
    features : pandas.DataFrame or None
        Per customer (``customer_id``) or per log row (with ``offer_id`` /
        ``contacted_at``): customer attributes and/or transaction features, all
        measured before contact.
    catalog : Catalog
        Value of a conversion and cost of a contact per offer (policy values).
    config : dict, optional
        Overrides of :data:`IMPACT_DEFAULTS`.
    uplift_model : UpliftModel, optional
        A model fitted before this log: its predictions are evaluated. Default:
        cross-fitted fresh models (``config["folds"]``).
    seed : int
        Seed of the cross-fitting folds.
    pre_outcomes : pandas.DataFrame, optional
        ``converted`` / ``revenue`` of the same rows in an equally long window
        before contact (keys ``customer_id``, ``offer_id``, ``contacted_at``), for
        the placebo check.

    Returns
    -------
    Section
        ``"impact"``; skipped when the log has no treated or no control row with a
        known outcome.
    """
    cfg = impact_config(config)
    try:
        rows, n_unknown = est.known_rows(log)
    except ModelInputError as exc:
        return Section.skipped(NAME, TITLE, str(exc))
    groups = set(rows["group"])
    if not {"treatment", "control"} <= groups:
        return Section.skipped(
            NAME,
            TITLE,
            "the campaign log needs treated and control rows with a known outcome "
            f"(it has {', '.join(sorted(groups)) or 'none'})",
        )
    randomized = est.is_randomized(rows)
    outcomes = ["converted", *(["revenue"] if est.has_revenue(rows) else [])]
    X, names = est.aligned_features(rows, features)
    section = Section(name=NAME, title=TITLE, intro=report.intro(rows, randomized, n_unknown))
    if randomized:
        weights = None
        effects = est.randomized_effects(rows, outcomes, cfg)
    else:
        weights = est.offer_weights(rows, X, names, cfg)
        effects = est.weighted_effects(rows, weights, outcomes, cfg)
    section.tables["effects"] = effects
    section.notes += report.design_notes(rows, randomized, names, effects)
    if weights:
        bare = [o for o, w in weights.items() if w.design.shape[1] == 0]
        if bare:
            section.notes.append(
                f"WARNING: no feature was measured before contact for {', '.join(bare)}: "
                "contacted and held-out customers are compared without any adjustment."
            )
    section.notes += report.small_group_notes(effects, cfg)
    section.displays["Treatment vs control"] = report.effects_display(effects, randomized)
    series = {"effect": report.conversion(effects)}
    pre = est.aligned_pre(rows, pre_outcomes)
    if pre is not None:
        placebo = est.placebo(rows, pre, weights, outcomes, cfg)
        report.add_placebo(section, placebo, cfg)
        if len(placebo):
            series["placebo (weeks before contact)"] = report.conversion(placebo)
    report.add_effect_chart(section, series, cfg, randomized)
    if weights:
        report.add_overlap_and_balance(section, weights, cfg)
    _model_parts(section, rows, features, catalog, cfg, uplift_model, seed)
    return section


def features_before(
    ctx: FeatureContext, at: pd.DataFrame, time_unit_days: float = 7.0
) -> pd.DataFrame:
    """Features of each (customer, offer) as of its own instant, for per-campaign covariates.

    Parameters
    ----------
    ctx : FeatureContext
        Built from validated transactions (and customers, extras).
    at : pandas.DataFrame
        ``customer_id``, ``offer_id`` and ``at`` (datetime): the first instant not
        seen, e.g. the start of a campaign or of its pre-period.
    time_unit_days : float

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``offer_id`` and :func:`nextbest.features.build.features_at`
        columns; customers not seen before their ``at`` are absent (missing features).
    """
    parts = []
    for instant, group in at.groupby("at"):
        try:
            f = features_at(ctx, instant, time_unit_days)
        except InputError:  # no transaction before this instant
            continue
        keys = group[["customer_id", "offer_id"]].astype(str)
        parts.append(keys.merge(f, on="customer_id", how="inner"))
    if not parts:
        return pd.DataFrame(columns=["customer_id", "offer_id"])
    return pd.concat(parts, ignore_index=True)


@dataclass
class CampaignLog:
    """A campaign log for ``nextbest evaluate`` and what the Impact section needs with it.

    ``log``: validated, with outcomes. ``catalog``: the offers the log names
    (default: the evaluation's catalog). ``features``: per customer or per log row
    (default: built from the backtest data, see :func:`backtest_impact`).
    ``pre_outcomes``: outcomes of the weeks before contact, for the placebo check
    (with ``pre_start``, the features are measured before that instead).
    """

    log: pd.DataFrame
    catalog: Catalog | None = None
    features: pd.DataFrame | None = None
    pre_outcomes: pd.DataFrame | None = None


def backtest_impact(
    campaign: CampaignLog | pd.DataFrame,
    data: BacktestData,
    catalog: Catalog,
    configs: dict[str, dict],
    seed: int = 0,
) -> Section:
    """The Impact section of a backtest: the log without opted-out customers, against features
    measured before contact.

    Unless ``campaign.features`` is given, features are the customers' attributes plus the
    transaction features (:func:`nextbest.features.build.features_at`) as of the first
    contact day of the log, so that no feature sees a contact's outcome; with
    ``pre_outcomes`` carrying ``pre_start`` (Complete Journey's campaigns), they are measured
    per row before its pre-period (:func:`features_before`), so that the placebo window
    tests the adjustment rather than being part of it.
    """
    if isinstance(campaign, pd.DataFrame):
        campaign = CampaignLog(campaign)
    log = campaign.log
    drop = opted_out(data.customers)
    if drop:
        log = log[~log["customer_id"].astype(str).isin(drop)]
    unit = float(configs.get("clv", {}).get("time_unit_days", 7.0))
    features, pre = campaign.features, campaign.pre_outcomes
    if features is None and pre is not None and "pre_start" in pre.columns:
        at = pre[["customer_id", "offer_id", "pre_start"]].rename(columns={"pre_start": "at"})
        features = features_before(data.ctx_full, at, unit)
    elif features is None:
        features = _customer_features(data, log["contacted_at"].min(), unit)
    section = impact_section(
        log,
        features,
        campaign.catalog or catalog,
        configs.get("impact"),
        seed=seed,
        pre_outcomes=pre,
    )
    if drop and section.status == "ok":
        section.notes.append(
            "Customers who objected to profiling are left out of the log's measurement."
        )
    return section


def _customer_features(data: BacktestData, first_contact, unit: float) -> pd.DataFrame:
    """Customer attributes, plus transaction features as of the first contact day when there
    are transactions before it."""
    customers = data.customers.assign(customer_id=data.customers["customer_id"].astype(str))
    try:
        day = pd.Timestamp(first_contact).normalize()
        behaviour = features_at(data.ctx_full, day, unit)
    except InputError:
        return customers
    extra = [c for c in behaviour.columns if c not in customers.columns]
    return customers.merge(behaviour[["customer_id", *extra]], on="customer_id", how="outer")


# -- the uplift model ------------------------------------------------------------------------------


def _model_parts(
    section: Section, rows, features, catalog, cfg: dict, uplift_model, seed: int
) -> None:
    if features is None:
        section.notes.append("No customer features: the uplift model is not evaluated.")
        return
    if len(est.feature_keys(features)) > 1:
        section.notes.append(
            "The features are per campaign row (measured before each campaign); the uplift model "
            "takes one feature row per customer, so its Qini curves and policy values are not "
            "shown."
        )
        return
    try:
        parts = est.model_parts(rows, features, catalog, cfg, uplift_model, seed)
    except ModelInputError as exc:
        section.notes.append(f"The uplift model could not be evaluated on this log: {exc}")
        return
    report.add_model_parts(section, parts, cfg)


BUILTIN_LOGS = {"completejourney": "completejourney_campaigns.yaml"}


def campaign_for(
    dataset: Dataset, source: str | Path, catalog_path: str | Path | None = None
) -> CampaignLog:
    """The campaign log ``nextbest evaluate --campaign-log SOURCE`` measures.

    ``source`` is a file (CSV or Parquet, read by the one reader and validated
    against ``catalog_path``, default the evaluation's catalog; outcomes derived
    from the dataset's transactions when the log has none) or
    ``completejourney``: the dataset's own 27 campaigns as an observational log
    (with its catalog and the pre-period outcomes for the placebo check).
    """
    if str(source) in BUILTIN_LOGS:
        if dataset.name != str(source):
            raise InputError(f"--campaign-log {source} needs --dataset {source}")
        log, pre = completejourney_campaign_log(dataset)
        catalog = load_catalog(catalog_path or models_dir() / BUILTIN_LOGS[str(source)])
        checked = validate_campaign_log(log, catalog)
        return CampaignLog(checked.log, catalog=catalog, pre_outcomes=pre)
    catalog = load_catalog(catalog_path) if catalog_path else None
    frame, _ = split_flagged(read_table(source))
    checked = validate_campaign_log(frame, catalog or load_catalog())
    logged = checked.log
    if "converted" not in logged.columns:
        tx = validate_transactions(dataset.transactions).transactions
        logged = derive_outcomes(logged, tx, catalog or load_catalog())
    return CampaignLog(logged, catalog=catalog)
