"""Campaign log: every bad row becomes a reject with a reason; outcomes derived from purchases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.data.campaign_log import (
    derive_outcomes,
    treatment_contacts,
    validate_campaign_log,
)
from nextbest.decision.catalog import parse_catalog
from nextbest.errors import SchemaError

CATALOG = parse_catalog(
    {
        "default_action": {"offer_id": "NEWS", "name": "Newsletter"},
        "retention": {"offer_id": "RET", "name": "Win-back", "cost": 2.0, "uplift": 0.1},
        "offers": [
            {"offer_id": "DELI-10", "name": "Deli", "category": "DELI", "value": 5, "cost": 0.5},
            {
                "offer_id": "MAIL",
                "name": "Any purchase e-mail",
                "value": 1,
                "cost": 0.05,
                "response_window_days": 7,
            },
        ],
    }
)

GOOD = {
    "customer_id": "c1",
    "offer_id": "DELI-10",
    "contacted_at": "2024-03-01",
    "group": "treatment",
    "propensity": "0.5",
    "converted": "1",
    "revenue": "12.5",
}


def _log(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{**GOOD, **row} for row in rows])


def _reasons(result) -> dict[int, str]:
    return dict(zip(result.rejects["row"], result.rejects["reason"]))


def test_clean_rows_are_typed_and_kept():
    result = validate_campaign_log(
        _log({}, {"customer_id": " c2 ", "group": "Control", "offer_id": ""}), CATALOG
    )
    assert result.report.n_rejected == 0
    log = result.log
    assert log["customer_id"].tolist() == ["c1", "c2"]
    assert log["offer_id"].tolist() == ["DELI-10", ""]
    assert log["group"].tolist() == ["treatment", "control"]
    assert log["contacted_at"].dtype == "datetime64[ns]"
    assert log["propensity"].tolist() == [0.5, 0.5]
    assert log["converted"].tolist() == [1.0, 1.0]
    assert log["revenue"].tolist() == [12.5, 12.5]


@pytest.mark.parametrize(
    "row, column, reason",
    [
        ({"offer_id": "NOPE"}, "offer_id", "unknown offer_id"),
        ({"offer_id": ""}, "offer_id", "treatment row names no offer"),
        ({"group": "sent"}, "group", "group must be treatment or control"),
        ({"group": "control", "sent": "true"}, "sent", "control row says something was sent"),
        ({"propensity": "0"}, "propensity", r"propensity outside \(0, 1\]"),
        ({"propensity": "1.2"}, "propensity", r"propensity outside \(0, 1\]"),
        ({"propensity": "high"}, "propensity", r"propensity outside \(0, 1\]"),
        ({"converted": "2"}, "converted", "converted is not 0/1"),
        ({"converted": "maybe"}, "converted", "converted is not 0/1"),
        ({"revenue": "-3"}, "revenue", "revenue is not a number >= 0"),
        ({"contacted_at": "2024-04-01"}, "contacted_at", "contacted_at on or after as_of"),
        ({"contacted_at": "not a date"}, "contacted_at", "missing or unparsable contacted_at"),
        ({"customer_id": " "}, "customer_id", "missing customer_id"),
    ],
)
def test_each_bad_row_is_a_reject_with_its_reason(row, column, reason):
    frame = _log({"customer_id": "ok"}, {"sent": "false", **row})
    result = validate_campaign_log(frame, CATALOG, as_of="2024-04-01")
    assert result.log["customer_id"].tolist() == ["ok"]
    assert len(result.rejects) == 1
    reject = result.rejects.iloc[0]
    assert reject["row"] == 1 and reject["column"] == column
    assert pd.Series([reject["reason"]]).str.contains(reason).all()
    assert result.report.n_input == 2 and result.report.n_valid == 1


def test_control_held_out_from_a_named_offer_and_retention_offer_are_known():
    frame = _log(
        {"group": "control", "offer_id": "DELI-10"},
        {"offer_id": "RET"},
        {"group": "control", "offer_id": "GONE"},
    )
    result = validate_campaign_log(frame, CATALOG)
    assert result.log["offer_id"].tolist() == ["DELI-10", "RET"]
    assert _reasons(result) == {2: "unknown offer_id (not in the offer catalog)"}


def test_blank_outcome_and_propensity_mean_not_known_and_are_kept():
    frame = _log({"propensity": "", "converted": None, "revenue": ""})
    log = validate_campaign_log(frame, CATALOG).log
    assert np.isnan(log["propensity"].iloc[0])
    assert np.isnan(log["converted"].iloc[0]) and np.isnan(log["revenue"].iloc[0])


def test_numeric_and_boolean_outcomes_are_read():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "offer_id": ["MAIL"] * 3,
            "contacted_at": pd.to_datetime(["2024-01-01"] * 3),
            "group": ["treatment"] * 3,
            "converted": [1, 0, 3],
        }
    )
    result = validate_campaign_log(frame, CATALOG)
    assert result.log["converted"].tolist() == [1.0, 0.0]
    assert _reasons(result) == {2: "converted is not 0/1"}
    as_bool = frame.iloc[:2].assign(converted=["true", "False"])
    assert validate_campaign_log(as_bool, CATALOG).log["converted"].tolist() == [1.0, 0.0]


def test_explore_rows_read_as_treatment_or_no_contact():
    frame = _log({"group": "explore"}, {"group": "explore", "offer_id": ""})
    assert validate_campaign_log(frame, CATALOG).log["group"].tolist() == ["treatment", "control"]


def test_exact_duplicates_rejected_but_repeat_contacts_kept():
    frame = _log({}, {}, {"contacted_at": "2024-03-02"})
    result = validate_campaign_log(frame, CATALOG)
    assert len(result.log) == 2
    assert _reasons(result) == {1: "exact duplicate row"}


def test_rejects_carry_the_original_row():
    result = validate_campaign_log(_log({"offer_id": "NOPE", "customer_id": "zz"}), CATALOG)
    assert result.rejects["customer_id"].tolist() == ["zz"]
    assert result.rejects["value"].tolist() == ["NOPE"]


def test_missing_required_column_is_fatal():
    with pytest.raises(SchemaError, match=r"campaign log is missing required column.*'group'"):
        validate_campaign_log(_log({}).drop(columns="group"), CATALOG)


def test_input_frame_is_not_modified():
    frame = _log({}, {"offer_id": "NOPE"})
    before = frame.copy()
    validate_campaign_log(frame, CATALOG)
    pd.testing.assert_frame_equal(frame, before)


def _tx() -> pd.DataFrame:
    rows = [
        ("c1", "2024-03-03", 4.0, "DELI"),  # within 14 days of c1's deli offer
        ("c1", "2024-03-04", 6.0, "DELI"),
        ("c1", "2024-03-05", 9.0, "MEAT"),  # not the offer's category
        ("c2", "2024-03-20", 5.0, "DELI"),  # after the 14-day window
        ("c3", "2024-03-07", 3.0, "MEAT"),  # any purchase counts for MAIL (7 days)
        ("c4", "2024-03-09", 3.0, "MEAT"),  # day 8: outside MAIL's 7-day window
        ("c5", "2024-02-28", 8.0, "DELI"),  # before the contact
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount", "category"])
    return frame.assign(timestamp=pd.to_datetime(frame["timestamp"]))


def test_derive_outcomes_counts_the_offers_category_within_its_window():
    raw = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4", "c5", "c1"],
            "offer_id": ["DELI-10", "DELI-10", "MAIL", "MAIL", "DELI-10", ""],
            "contacted_at": ["2024-03-01"] * 6,
            "group": ["treatment"] * 5 + ["control"],
        }
    )
    log = validate_campaign_log(raw, CATALOG).log
    out = derive_outcomes(log, _tx(), CATALOG)
    assert out["converted"].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    # the universal holdout (last row) counts any purchase in the longest window (14 days)
    assert out["revenue"].tolist() == [10.0, 0.0, 3.0, 0.0, 0.0, 19.0]
    assert "converted" not in log.columns  # the input log is not modified


def test_derive_outcomes_leaves_windows_open_at_as_of_unknown():
    log = validate_campaign_log(_log({}).drop(columns=["converted", "revenue"]), CATALOG).log
    out = derive_outcomes(log, _tx(), CATALOG, as_of="2024-03-10")
    assert np.isnan(out["converted"].iloc[0]) and np.isnan(out["revenue"].iloc[0])


def test_treatment_contacts_are_the_contact_history():
    frame = _log({}, {"group": "control", "offer_id": "", "customer_id": "c9"})
    contacts = treatment_contacts(validate_campaign_log(frame, CATALOG).log)
    # the outcome comes along (the channel preference reads it), and the channel where given
    assert contacts.columns.tolist() == ["customer_id", "offer_id", "timestamp", "converted"]
    assert contacts["customer_id"].tolist() == ["c1"]
    assert contacts["timestamp"].tolist() == [pd.Timestamp("2024-03-01")]
    with_channel = treatment_contacts(
        validate_campaign_log(frame.assign(channel="email"), CATALOG).log
    )
    assert with_channel[["channel", "converted"]].values.tolist() == [["email", 1.0]]
