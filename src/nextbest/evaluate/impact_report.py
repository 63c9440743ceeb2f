"""How the Impact section reads: its intro, notes, tables shown in the report and figures.

The numbers come from :mod:`nextbest.evaluate.impact_estimates`; the section is
assembled by :func:`nextbest.evaluate.impact.impact_section`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from nextbest.evaluate import impact_estimates as est
from nextbest.evaluate.results import HIGHER, Chart, Score, Section
from nextbest.plots import png
from nextbest.plots import uplift as figures

# -- text ------------------------------------------------------------------------------------------


def intro(rows: pd.DataFrame, randomized: bool, n_unknown: int) -> str:
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


def design_notes(
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
    weighted_log = randomized and est.propensities_vary(rows)
    if weighted_log:
        notes.append(
            "The logged probabilities vary within an arm (a policy with exploration, not an A/B "
            "test): each offer's contacted customers and its control group are weighted by 1 / "
            "their logged probability (IPW), which gives the offer's effect over all customers."
        )
    pooled = (
        "compares every contacted customer with every held-out one."
        if randomized and not weighted_log
        else "adds up the offers' incremental totals (offers share control customers, so its "
        "interval is approximate)."
    )
    notes.append(
        "Control group of an offer: customers held out from that offer plus the universal "
        f"holdout. With several offers, '(all offers)' {pooled}"
    )
    conv = effects[(effects["outcome"] == "converted") & (effects["offer_id"] != est.ALL)]
    no_control = conv.loc[conv["effect"].isna(), "offer_id"] if "effect" in conv else []
    for offer in no_control:
        notes.append(f"{offer}: no control customers, so its effect cannot be estimated.")
    return notes


def small_group_notes(effects: pd.DataFrame, cfg: dict) -> list[str]:
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


def effects_display(effects: pd.DataFrame, randomized: bool) -> pd.DataFrame:
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
            + (
                f" (effective {r['ess_control']:,.0f})"
                if np.isfinite(r.get("ess_control", np.nan))
                and r["ess_control"] < r["n_control"] - 0.5
                else ""
            ),
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


def conversion(table: pd.DataFrame) -> pd.DataFrame:
    t = table[(table["outcome"] == "converted") & table["effect"].notna()]
    return t.rename(columns={"offer_id": "label"})[["label", "effect", "ci_low", "ci_high"]]


def add_effect_chart(section: Section, series: dict, cfg: dict, randomized: bool) -> None:
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


def add_placebo(section: Section, placebo: pd.DataFrame, cfg: dict) -> None:
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


def add_overlap_and_balance(section: Section, weights: dict, cfg: dict) -> None:
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
        worse = summary[summary["mean_abs_smd_after"] >= summary["mean_abs_smd_before"]]
        if len(worse):
            section.notes.append(
                f"WARNING: weighting did not improve balance for {', '.join(worse['offer_id'])} "
                "(mean |standardized mean difference| not lower after weighting): the features "
                "do not explain who was contacted there, so treat those effects as unadjusted."
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


def add_model_parts(section: Section, parts: est.ModelParts, cfg: dict) -> None:
    """Qini, policy values and the promotion gate of the uplift model."""
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
        # Not a headline: the verdict compares point values; whether the gain is beyond noise is
        # the paired lower bound below.
        ("dr_value", "Value of the uplift policy per customer (doubly robust)", False),
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
            f"Gain of the uplift policy over the closest other policy ({closest}) beyond noise: "
            "one-sided 95% lower bound per customer (doubly robust, paired; above 0 = a real "
            "gain)",
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
