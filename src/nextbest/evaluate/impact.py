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

import numpy as np
import pandas as pd
from scipy import stats

from nextbest.config import merge
from nextbest.data.schema import opted_out
from nextbest.decision.catalog import Catalog
from nextbest.errors import InputError, ModelInputError
from nextbest.evaluate import impact_estimates as est
from nextbest.evaluate.data import BacktestData
from nextbest.evaluate.results import HIGHER, Chart, Score, Section
from nextbest.features.build import FeatureContext, features_at
from nextbest.plots import png
from nextbest.plots import uplift as figures

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
    section = Section(name=NAME, title=TITLE, intro=_intro(rows, randomized, n_unknown))
    if randomized:
        weights = None
        effects = est.randomized_effects(rows, outcomes, cfg)
    else:
        weights = est.offer_weights(rows, X, names, cfg)
        effects = est.weighted_effects(rows, weights, outcomes, cfg)
    section.tables["effects"] = effects
    if weights:
        bare = [o for o, w in weights.items() if w.design.shape[1] == 0]
        if bare:
            section.notes.append(
                f"WARNING: no feature was measured before contact for {', '.join(bare)}: "
                "contacted and held-out customers are compared without any adjustment."
            )
    section.notes += _design_notes(rows, randomized, names, effects)
    section.notes += _small_group_notes(effects, cfg)
    section.displays["Treatment vs control"] = _effects_display(effects, randomized)
    series = {"effect": _conversion(effects)}
    pre = est.aligned_pre(rows, pre_outcomes)
    if pre is not None:
        placebo = est.placebo(rows, pre, weights, outcomes, cfg)
        _add_placebo(section, placebo, cfg)
        if len(placebo):
            series["placebo (weeks before contact)"] = _conversion(placebo)
    _add_effect_chart(section, series, cfg, randomized)
    if weights:
        _add_overlap_and_balance(section, weights, cfg)
    _add_model_parts(section, rows, features, catalog, cfg, uplift_model, seed)
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


# -- text ------------------------------------------------------------------------------------------


def _intro(rows: pd.DataFrame, randomized: bool, n_unknown: int) -> str:
    treated = rows["group"] == "treatment"
    first, last = rows["contacted_at"].min(), rows["contacted_at"].max()
    design = (
        "The log records the probability of every decision (a randomized test): treated and "
        "control customers differ only by chance, so their difference is the effect."
        if randomized
        else "The log has no decision probabilities: who was contacted was not decided at "
        "random, so treated and control customers are made comparable by weighting (below)."
    )
    unknown = (
        f" {n_unknown:,} rows whose outcome is not known yet are left out." if n_unknown else ""
    )
    return (
        f"{len(rows):,} logged decisions with a known outcome ({int(treated.sum()):,} contacted, "
        f"{int((~treated).sum()):,} held out) for {rows['customer_id'].nunique():,} customers and "
        f"{len(est.offers_of(rows))} offer(s), contacted from {pd.Timestamp(first).date()} to "
        f"{pd.Timestamp(last).date()}.{unknown} {design}"
    )


def _design_notes(
    rows: pd.DataFrame, randomized: bool, names: list[str], effects: pd.DataFrame
) -> list[str]:
    notes = []
    if not randomized:
        notes.append(
            "WARNING: these effects are observational. Contacts were not assigned at random, so "
            "each offer's treated customers are compared with control customers weighted to "
            f"resemble them on {len(names)} feature(s) (the effect on the treated). That is a "
            "causal effect only if those features capture everything that drove both who was "
            "contacted and who bought; the balance table shows what weighting achieved and the "
            "placebo check, when given, tests it on the weeks before contact."
        )
    notes.append(
        "Control group of an offer: customers held out from that offer plus the universal "
        "holdout. '(all offers)' "
        + (
            "compares every contacted customer with every held-out one."
            if randomized
            else "adds up the offers' incremental totals (offers share control customers, so "
            "its interval is approximate)."
        )
    )
    if randomized and rows.groupby(["group", "offer_id"])["propensity"].nunique().max() > 1:
        notes.append(
            "The logged probabilities vary within an arm: the difference in means assumes equal "
            "chances within each arm; the policy values below weight by the logged probabilities."
        )
    conv = effects[(effects["outcome"] == "converted") & (effects["offer_id"] != est.ALL)]
    no_control = conv.loc[conv["effect"].isna(), "offer_id"] if "effect" in conv else []
    for offer in no_control:
        notes.append(f"{offer}: no control customers, so its effect cannot be estimated.")
    return notes


def _small_group_notes(effects: pd.DataFrame, cfg: dict) -> list[str]:
    """One plain warning for the offers whose groups are too small for a conclusion."""
    conv = effects[(effects["outcome"] == "converted") & effects["effect"].notna()]
    unsure = []
    for r in conv.itertuples(index=False):
        n_c = getattr(r, "ess_control", r.n_control)
        n_c = r.n_control if not np.isfinite(n_c) else n_c
        too_few = min(r.n_treated, n_c) < cfg["min_group"]
        if too_few or r.ci_low <= 0 <= r.ci_high:
            mde = "" if not np.isfinite(r.mde) else f", detectable effect {100 * r.mde:.1f} pts"
            unsure.append(f"{r.offer_id} ({r.n_treated:,} vs {n_c:,.0f}{mde})")
    if not unsure:
        return []
    return [
        f"WARNING: no conclusion on conversion for {len(unsure)} of {len(conv)} comparison(s): "
        "the interval includes zero or a group has fewer than "
        f"{cfg['min_group']} customers. The groups are too small to tell such an effect from "
        "chance; the smallest effect they would detect (80% power, 5% level) is given as "
        "'detectable effect' (treated vs control customers): " + "; ".join(unsure) + "."
    ]


# -- tables shown in the report --------------------------------------------------------------------


def _pts(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{100 * v:+.2f} pts"


def _money(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{'-' if v < 0 else '+'}${abs(v):,.2f}"


def _count(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:+,.1f}"


def _pair(a: float, b: float, fmt: str) -> str:
    if not (np.isfinite(a) and np.isfinite(b)):
        return "n/a"
    return f"{fmt.format(a)} / {fmt.format(b)}"


def _ci(fmt, v: float, low: float, high: float) -> str:
    if not np.isfinite(v):
        return "n/a"
    return f"{fmt(v)} [{fmt(low)}, {fmt(high)}]"


def _effects_display(effects: pd.DataFrame, randomized: bool) -> pd.DataFrame:
    out = []
    conv = effects[effects["outcome"] == "converted"].set_index("offer_id")
    rev = effects[effects["outcome"] == "revenue"].set_index("offer_id")
    for offer, r in conv.iterrows():
        if not np.isfinite(r.get("effect", np.nan)):
            continue
        row = {
            "Offer": offer,
            "Contacted": f"{int(r['n_treated']):,}",
            "Held out": f"{int(r['n_control']):,}"
            + ("" if randomized or offer == est.ALL else f" (effective {r['ess_control']:,.0f})"),
            "Converted: contacted vs held out": (
                f"{r['mean_treated']:.2%} vs {r['mean_control']:.2%}"
            ),
            "Extra conversions per contacted customer [95% CI]": _ci(
                _pts, r["effect"], r["ci_low"], r["ci_high"]
            ),
            "Extra conversions in total [95% CI]": _ci(
                _count, r["incremental"], r["incremental_low"], r["incremental_high"]
            ),
        }
        if offer in rev.index:
            v = rev.loc[offer]
            row["Extra revenue per contacted customer [95% CI]"] = _ci(
                _money, v["effect"], v["ci_low"], v["ci_high"]
            )
            row["Extra revenue in total [95% CI]"] = _ci(
                _money, v["incremental"], v["incremental_low"], v["incremental_high"]
            )
        row["Detectable effect"] = "" if not np.isfinite(r["mde"]) else f"{100 * r['mde']:.2f} pts"
        out.append(row)
    return pd.DataFrame(out)


def _conversion(table: pd.DataFrame) -> pd.DataFrame:
    t = table[(table["outcome"] == "converted") & table["effect"].notna()]
    return t.rename(columns={"offer_id": "label"})[["label", "effect", "ci_low", "ci_high"]]


def _add_effect_chart(section: Section, series: dict, cfg: dict, randomized: bool) -> None:
    first = series["effect"]
    if not len(first):
        return
    keep = first["label"].iloc[: cfg["max_panels"] * 3].tolist()
    if est.ALL in first["label"].tolist() and est.ALL not in keep:
        keep.append(est.ALL)
    shown = {k: v[v["label"].isin(keep)] for k, v in series.items()}
    shown["effect"] = first[first["label"].isin(keep)]
    fig = figures.effect_plot(
        shown,
        "Extra conversions per contacted customer, 95% intervals",
        "percentage points (contacted minus held out)",
        scale=100,
    )
    kind = "randomized comparison" if randomized else "weighted (observational) comparison"
    explain = (
        f"Each dot is an offer's effect ({kind}); the bar is its 95% interval. A bar that "
        "crosses 0 means no conclusion."
    )
    if len(series) > 1:
        explain += (
            " The placebo is the same comparison on the weeks before contact, when the offer "
            "could not have acted yet: its bar should cross 0."
        )
    section.charts.append(Chart("impact_effects", "What each offer changed", explain, png(fig)))


def _add_placebo(section: Section, placebo: pd.DataFrame, cfg: dict) -> None:
    section.tables["placebo"] = placebo
    conv = placebo[placebo["outcome"] == "converted"] if len(placebo) else placebo
    if not len(conv):
        section.notes.append("Placebo check: no offer has a known outcome before contact.")
        return
    failed = conv.loc[~conv["includes_zero"], "offer_id"].tolist()
    small = conv["n_treated"] < cfg["min_group"]
    note = (
        "Placebo check (the same comparison on conversion in the weeks before contact, when the "
        f"offer could not act yet): the interval includes zero for {len(conv) - len(failed)} of "
        f"{len(conv)} offer(s)"
    )
    if failed:
        note += (
            f". For {', '.join(failed)} contacted and held-out customers already differed before "
            "contact after weighting, so their effects are not credible"
        )
    if small.any():
        note += (
            f". Intervals of groups under {cfg['min_group']} contacted customers "
            f"({', '.join(conv.loc[small, 'offer_id'])}) rest on a normal approximation that is "
            "poor at that size"
        )
    section.notes.append(note + ".")
    rev = placebo[placebo["outcome"] == "revenue"].set_index("offer_id")
    table = {
        "Offer": conv["offer_id"],
        "Contacted": conv["n_treated"].map("{:,}".format),
        "Held out": conv["n_control"].map("{:,}".format),
        "Conversion difference before contact [95% CI]": [
            _ci(_pts, r.effect, r.ci_low, r.ci_high) for r in conv.itertuples()
        ],
        "Includes 0 (pass)": conv["includes_zero"].map({True: "yes", False: "NO"}),
    }
    if len(rev):
        r = rev.reindex(conv["offer_id"])
        table["Revenue difference before contact [95% CI]"] = [
            _ci(_money, v.effect, v.ci_low, v.ci_high) for v in r.itertuples()
        ]
        table["Revenue includes 0"] = r["includes_zero"].map({True: "yes", False: "NO"}).fillna("")
    section.displays["Placebo: the same comparison in the weeks before contact"] = pd.DataFrame(
        {k: list(v) for k, v in table.items()}
    )


def _add_overlap_and_balance(section: Section, weights: dict, cfg: dict) -> None:
    overlap = est.overlap_table(weights, cfg)
    full, summary = est.balance_tables(weights, cfg)
    section.tables.update({"overlap": overlap, "balance": full, "balance_summary": summary})
    trimmed = int(overlap["n_trimmed"].sum())
    compared = int((overlap["n_treated"] + overlap["n_control"]).sum())
    section.notes.append(
        f"Overlap: {trimmed:,} of {compared:,} compared rows ({trimmed / max(1, compared):.1%}) "
        f"had an estimated propensity above {cfg['max_propensity']}: no comparable control "
        "customer, so they are trimmed."
    )
    if len(summary):
        section.notes.append(
            f"Balance: the largest |standardized mean difference| of a feature between treated and "
            f"control customers is {summary['max_abs_smd_before'].median():.2f} before weighting "
            f"and {summary['max_abs_smd_after'].median():.2f} after (median over offers; below "
            f"{cfg['smd_threshold']} is balanced)."
        )
    section.displays["Overlap of estimated propensities"] = pd.DataFrame(
        {
            "Offer": overlap["offer_id"],
            "Contacted": overlap["n_treated"].map("{:,}".format),
            "Held out": overlap["n_control"].map("{:,}".format),
            "P(contacted), contacted: min / median / max": [
                f"{r.propensity_treated_min:.3f} / {r.propensity_treated_median:.3f} / "
                f"{r.propensity_treated_max:.3f}"
                for r in overlap.itertuples()
            ],
            "P(contacted), held out: median / max": [
                f"{r.propensity_control_median:.3f} / {r.propensity_control_max:.3f}"
                for r in overlap.itertuples()
            ],
            "Trimmed": [f"{r.n_trimmed:,} ({r.share_trimmed:.1%})" for r in overlap.itertuples()],
            "Effective held-out size": overlap["ess_control"].map("{:,.0f}".format),
        }
    )
    bar = cfg["smd_threshold"]
    section.displays["Balance: standardized mean differences before and after weighting"] = (
        pd.DataFrame(
            {
                "Offer": summary["offer_id"],
                "Features": summary["n_features"],
                "Largest |SMD| before / after": [
                    _pair(r.max_abs_smd_before, r.max_abs_smd_after, "{:.2f}")
                    for r in summary.itertuples()
                ],
                "Mean |SMD| before / after": [
                    _pair(r.mean_abs_smd_before, r.mean_abs_smd_after, "{:.3f}")
                    for r in summary.itertuples()
                ],
                f"Features over {bar} before / after": [
                    f"{r.n_over_threshold_before} / {r.n_over_threshold_after}"
                    for r in summary.itertuples()
                ],
            }
        )
    )
    largest = overlap.sort_values("n_treated", ascending=False)["offer_id"].iloc[
        : cfg["max_panels"]
    ]
    panels = {
        o: (weights[o].e[weights[o].treated], weights[o].e[~weights[o].treated]) for o in largest
    }
    section.charts.append(
        Chart(
            "impact_overlap",
            "Estimated probability of being contacted",
            "Per offer, how likely each customer was to be contacted given their features. Where "
            "contacted customers (orange) sit far from held-out ones (blue) there is no "
            "comparable control; those above the dashed line are trimmed.",
            png(figures.overlap_plot(panels, cfg["max_propensity"])),
        )
    )
    top = largest.iloc[0]
    if len(full[full["offer_id"] == top]):
        section.charts.append(
            Chart(
                "impact_balance",
                f"Covariate balance, {top}",
                "How different contacted and held-out customers are on each feature, in standard "
                f"deviations, before (dots) and after (crosses) weighting; below {bar} "
                "(dashed) counts as balanced.",
                png(figures.balance_plot(full[full["offer_id"] == top], bar)),
            )
        )


# -- the uplift model ------------------------------------------------------------------------------


def _add_model_parts(
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
    ev = parts.evaluation
    section.tables.update(
        {
            "qini": parts.qini,
            "policies": ev.policies,
            "policy_comparisons": ev.comparisons,
            "gate": pd.DataFrame(
                [{"promote": ev.promote, "chosen": ev.chosen, "reason": ev.reason}]
            ),
        }
    )
    cf = parts.crossfit
    observational = cf.propensity_source != "logged"
    section.notes.append(
        f"Uplift model measured by {parts.source}, on {len(cf):,} rows"
        + (f" ({cf.n_trimmed:,} trimmed for lack of overlap)" if cf.n_trimmed else "")
        + ". Policy values are the gain over contacting no one, per customer, in currency units: "
        "conversions x the catalog's value minus the contact cost"
        + (" (propensities estimated: observational)." if observational else ".")
    )
    section.notes.append(
        "Promotion gate: "
        + ("PROMOTE the uplift model - " if ev.promote else "FALL BACK - ")
        + ev.reason
        + "."
    )
    if observational:
        section.notes.append(
            "The Qini curves compare treated and control rows without weights: on an "
            "observational log they mix targeting with effect; read them with care."
        )
    for r in parts.qini.itertuples(index=False):
        section.scores.append(
            Score(
                f"qini_{r.offer_id}",
                f"Qini coefficient, {r.offer_id} (targeting by uplift)",
                float(r.qini_uplift),
                {"response model": float(r.qini_response), "random order": 0.0},
                HIGHER,
                False,
            )
        )
    pol = ev.policies.set_index("policy")
    for col, label, headline in (
        ("dr_value", "Value of the uplift policy per customer (doubly robust)", True),
        ("ipw_value", "Value of the uplift policy per customer (IPW)", False),
    ):
        section.scores.append(
            Score(
                f"policy_{col}",
                label,
                float(pol.loc["uplift", col]),
                {p: float(pol.loc[p, col]) for p in pol.index if p != "uplift"},
                HIGHER,
                headline,
                "{:+.4f}",
            )
        )
    comp = ev.comparisons.set_index("baseline")
    closest = comp["lower"].idxmin()
    section.scores.append(
        Score(
            "policy_gain_lower_bound",
            "Uplift policy minus the closest other policy, one-sided 95% lower bound (doubly "
            "robust, paired; above 0 = a real gain)",
            float(comp.loc[closest, "lower"]),
            {"no gain": 0.0},
            HIGHER,
            True,
            "{:+.4f}",
        )
    )
    z = float(stats.norm.ppf(1 - cfg["alpha"] / 2))
    section.displays["Policy values (gain over contacting no one, per customer)"] = pd.DataFrame(
        {
            "Policy": pol.index,
            "Contacted": pol["contact_share"].map("{:.1%}".format).to_numpy(),
            "Doubly robust [95% CI]": [
                f"{r.dr_value:+.4f} [{r.dr_low:+.4f}, {r.dr_high:+.4f}]" for r in pol.itertuples()
            ],
            "IPW [95% CI]": [
                f"{r.ipw_value:+.4f} [{r.ipw_value - z * r.ipw_se:+.4f}, "
                f"{r.ipw_value + z * r.ipw_se:+.4f}]"
                for r in pol.itertuples()
            ],
            "Uplift minus this (one-sided 95% lower bound)": [
                ""
                if p not in comp.index
                else f"{comp.loc[p, 'difference']:+.4f} ({comp.loc[p, 'lower']:+.4f})"
                for p in pol.index
            ],
        }
    )
    curves = dict(list(parts.curves.items())[: cfg["max_panels"]])
    if curves:
        section.charts.append(
            Chart(
                "impact_qini",
                "Qini curves: who to contact first",
                "Extra conversions gained (per customer of the log) when contacting the top share "
                "of customers, ranked by the uplift model, by the response model, or at random "
                "(dotted). A curve above the dotted line finds the customers the offer moves.",
                png(figures.qini_plot(curves, "extra conversions per customer")),
            )
        )
