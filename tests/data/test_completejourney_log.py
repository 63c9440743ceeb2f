"""Complete Journey's campaigns as an observational campaign log: a hand-made dataset whose every
row is known, then the real 27 campaigns (slow) through the Impact section's placebo check."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from nextbest.data import load_dataset
from nextbest.data.campaign_log import validate_campaign_log
from nextbest.data.completejourney import campaign_offer_id, completejourney_campaign_log
from nextbest.data.schema import validate_transactions
from nextbest.decision.catalog import load_catalog, parse_catalog
from nextbest.evaluate.impact import features_before, impact_section
from nextbest.features.build import build_context

T = pd.Timestamp


def _tiny():
    """Four households, four campaigns, data from 2017-01-01 to 2017-03-01 (as_of)."""
    lines = [
        ("h1", "2017-01-10", "GROCERY", 1.0),
        ("h1", "2017-02-03", "GROCERY", 5.0),
        ("h1", "2017-02-03", "PRODUCE", 2.0),
        ("h2", "2017-01-10", "PRODUCE", 1.0),
        ("h2", "2017-02-05", "DRUG GM", 3.0),
        ("h3", "2017-02-15", "GROCERY", 2.0),
        ("h3", "2017-02-26", "GROCERY", 6.0),
        ("h4", "2017-01-05", "PRODUCE", 1.0),
        ("h4", "2017-01-25", "GROCERY", 4.0),
    ]
    tx = pd.DataFrame(lines, columns=["customer_id", "timestamp", "category", "amount"])
    tx["timestamp"] = pd.to_datetime(tx["timestamp"]) + pd.Timedelta(hours=10)
    extras = {
        "campaign_descriptions": pd.DataFrame(
            {
                "campaign_id": [1, 2, 3, 4],
                "campaign_type": ["Type A", "Type B", "Type C", "Type B"],
                "start_date": pd.to_datetime(
                    ["2017-02-01", "2016-12-20", "2017-02-25", "2017-03-05"]
                ),
                "end_date": pd.to_datetime(
                    ["2017-02-10", "2017-01-05", "2017-03-20", "2017-03-30"]
                ),
            }
        ),
        "campaigns": pd.DataFrame(
            {"campaign_id": [1, 2, 3, 4], "customer_id": ["h1", "h2", "h3", "h1"]}
        ),
        "coupons": pd.DataFrame(
            {
                "coupon_upc": [10, 11, 12, 13],
                "product_id": [100, 200, 100, 100],
                "campaign_id": [1, 1, 3, 4],
            }
        ),
        "products": pd.DataFrame({"product_id": [100, 200], "department": ["GROCERY", "DRUG GM"]}),
        "coupon_redemptions": pd.DataFrame(
            {
                "coupon_upc": [10],
                "campaign_id": [1],
                "redemption_date": [T("2017-02-03")],
                "customer_id": ["h1"],
            }
        ),
    }
    return SimpleNamespace(transactions=tx, extras=extras, default_as_of=T("2017-03-01"))


def _by_key(frame):
    return frame.set_index(["offer_id", "customer_id"])


def test_tiny_dataset_every_row_known():
    log, pre = completejourney_campaign_log(_tiny())
    assert list(log.columns[:6]) == [
        "customer_id",
        "offer_id",
        "contacted_at",
        "group",
        "converted",
        "revenue",
    ]
    # Campaign 4 starts after as_of: left out.
    assert sorted(log["offer_id"].unique()) == ["CJ-CAMPAIGN-1", "CJ-CAMPAIGN-2", "CJ-CAMPAIGN-3"]
    got = _by_key(log)
    # Campaign 1: h1 received it; h2 and h4 were active before 2017-02-01; h3 was not (first seen
    # 2017-02-15). Outcome: GROCERY or DRUG GM in [02-01, 02-11).
    c1 = got.loc["CJ-CAMPAIGN-1"]
    assert c1["group"].to_dict() == {"h1": "treatment", "h2": "control", "h4": "control"}
    assert c1["converted"].to_dict() == {"h1": 1.0, "h2": 1.0, "h4": 0.0}
    assert c1["revenue"].to_dict() == {"h1": 5.0, "h2": 3.0, "h4": 0.0}  # PRODUCE not counted
    assert c1["redeemed"].to_dict() == {"h1": 1.0, "h2": 0.0, "h4": 0.0}
    assert (c1["window_days"] == 10).all() and (c1["campaign_type"] == "A").all()
    assert (c1["contacted_at"] == T("2017-02-01")).all()
    # Campaign 2 started before the data: its household is listed, nothing is observed.
    c2 = got.loc["CJ-CAMPAIGN-2"]
    assert c2["group"].tolist() == ["treatment"] and c2["converted"].isna().all()
    # Campaign 3 runs past as_of: the window is its observed part, [02-25, 03-01).
    c3 = got.loc["CJ-CAMPAIGN-3"]
    assert c3["group"].to_dict() == {
        "h3": "treatment",
        "h1": "control",
        "h2": "control",
        "h4": "control",
    }
    assert c3["revenue"].to_dict() == {"h3": 6.0, "h1": 0.0, "h2": 0.0, "h4": 0.0}
    assert (c3["window_days"] == 4).all()
    # Pre-period: the same measure in the 10 days before campaign 1, [01-22, 02-01).
    p = _by_key(pre)
    assert p.loc["CJ-CAMPAIGN-1", "revenue"].to_dict() == {"h1": 0.0, "h2": 0.0, "h4": 4.0}
    assert p.loc[("CJ-CAMPAIGN-1", "h4"), "pre_start"] == T("2017-01-22")
    assert p.loc["CJ-CAMPAIGN-2", "converted"].isna().all()
    assert len(pre) == len(log)


def test_tiny_log_passes_the_validator_with_one_offer_per_campaign():
    log, _ = completejourney_campaign_log(_tiny())
    catalog = parse_catalog(
        {
            "offers": [
                {"offer_id": campaign_offer_id(c), "name": f"c{c}", "value": 5, "cost": 0.5}
                for c in (1, 2, 3)
            ],
            "default_action": {"offer_id": "NONE", "name": "none"},
        }
    )
    result = validate_campaign_log(log, catalog, as_of="2017-03-01")
    assert result.report.n_rejected == 0 and len(result.log) == len(log)
    assert "propensity" not in result.log.columns  # observational: no assignment probability


@pytest.fixture(scope="module")
def cj():
    ds = load_dataset("completejourney")
    log, pre = completejourney_campaign_log(ds)
    return ds, log, pre


@pytest.mark.slow
def test_real_log_has_the_27_campaigns_and_their_households(cj):
    ds, log, pre = cj
    received = ds.extras["campaigns"].groupby("campaign_id").size()
    treated = log[log["group"] == "treatment"].groupby("offer_id").size()
    assert len(treated) == 27
    assert treated.to_dict() == {campaign_offer_id(c): n for c, n in received.items()}
    assert not log.duplicated(["offer_id", "customer_id"]).any()
    catalog = load_catalog("models/completejourney_campaigns.yaml")
    assert [o.offer_id for o in catalog.offers] == [campaign_offer_id(c) for c in range(1, 28)]
    result = validate_campaign_log(log, catalog, as_of=ds.default_as_of)
    assert result.report.n_rejected == 0
    # Campaigns 24-26 started in late 2016, before the data: no outcome, no control.
    early = log["offer_id"].isin([campaign_offer_id(c) for c in (24, 25, 26)])
    assert (
        log.loc[early, "converted"].isna().all() and (log.loc[early, "group"] == "treatment").all()
    )
    assert log.loc[~early, "converted"].notna().all()
    # Control households were active before the campaign: about 2,100-2,400 per campaign.
    control = log[log["group"] == "control"].groupby("offer_id").size()
    assert len(control) == 24 and control.between(1_200, 2_469).all()
    assert (log.loc[log["group"] == "control", "redeemed"] == 0).all()
    pairs = ds.extras["coupon_redemptions"][["campaign_id", "customer_id"]].drop_duplicates()
    assert log["redeemed"].sum() == len(pairs) == 792
    # The pre-period of campaigns 24-27 starts before the data.
    unknown = pre.groupby("offer_id")["converted"].apply(lambda s: s.isna().all())
    assert sorted(unknown[unknown].index) == sorted(campaign_offer_id(c) for c in (24, 25, 26, 27))


@pytest.mark.slow
def test_real_log_placebo_includes_zero_for_most_campaigns(cj):
    """Covariates are measured before each campaign's pre-period, so the pre-period is a real
    test. Measured: the revenue placebo passes for 22 of 23 campaigns, the conversion placebo
    for 16 of 23 (conversion is 90-100% in most windows, where normal intervals are poor)."""
    ds, log, pre = cj
    catalog = load_catalog("models/completejourney_campaigns.yaml")
    tx = validate_transactions(ds.transactions).transactions
    ctx = build_context(tx, ds.customers, load_catalog().categories, ds.extras)
    at = pre[["customer_id", "offer_id", "pre_start"]].rename(columns={"pre_start": "at"})
    features = features_before(ctx, at)
    section = impact_section(log, features, catalog, pre_outcomes=pre)
    assert section.notes[0].startswith("WARNING: these effects are observational")
    bare = next(n for n in section.notes if n.startswith("WARNING: no feature was measured"))
    assert "CJ-CAMPAIGN-27" in bare  # its covariates would predate the data
    placebo = section.tables["placebo"]
    revenue = placebo[placebo["outcome"] == "revenue"]
    conversion = placebo[placebo["outcome"] == "converted"]
    assert len(revenue) == len(conversion) == 23
    assert revenue["includes_zero"].mean() >= 0.9
    assert conversion["includes_zero"].mean() >= 0.6
    summary = section.tables["balance_summary"].dropna()
    improved = summary["mean_abs_smd_after"] < summary["mean_abs_smd_before"]
    assert improved.mean() >= 0.9
    # where weighting did not help, the report says so by name
    worse = summary.loc[~improved, "offer_id"]
    warning = [n for n in section.notes if n.startswith("WARNING: weighting did not improve")]
    assert bool(warning) == bool(len(worse)) and all(o in warning[0] for o in worse)
    assert np.median(summary["mean_abs_smd_after"]) < 0.1
