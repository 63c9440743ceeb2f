"""Uplift training: learn what each offer changes from a campaign log, gate it, register it.

The flow of :func:`train_uplift`:

1. the campaign log is validated against the catalog (bad rows are rejects
   with reasons) and, when it has no ``converted`` column, its outcomes are
   derived from transactions (a purchase of the offer's category inside its
   ``response_window_days``);
2. features per customer: transaction features where the customer has
   history, customer attributes (the customers file's extra columns) where
   not (:func:`uplift_features`);
3. **cross-fitting**: ``folds`` models, each blind to one fold of customers,
   give every logged row an out-of-sample effect;
4. the greedy uplift policy (the action with the highest incremental value,
   "no contact" worth 0) is valued against each single action for everyone,
   no contact at all and targeting by a response model at the same volume, as
   paired doubly robust differences on the same customers. It is
   **promoted** only if it beats every one of them with a one-sided 95%
   lower bound above zero;
5. the model registered as ``nextbest-uplift`` is then the learned one, or -
   when targeting did not pay - the **average effect** of each offer
   (:class:`~nextbest.models.uplift.AverageEffectModel`), with which the
   decision falls back to the best single action for everyone. The run notes
   and tags say which and why.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.config import config_hash
from nextbest.data.campaign_log import derive_outcomes, validate_campaign_log
from nextbest.data.schema import ValidationReport
from nextbest.decision.catalog import Catalog
from nextbest.errors import InputError
from nextbest.features.build import build_context, features_at
from nextbest.models.uplift import AverageEffectModel, UpliftModel
from nextbest.models.uplift_policy import PolicyEvaluation, crossfit_predictions, policy_evaluation
from nextbest.registry import UPLIFT_MODEL_NAME, flatten, log_model

log = logging.getLogger(__name__)


@dataclass
class CampaignLog:
    """A validated campaign log with outcomes, its rejects and what validation did."""

    log: pd.DataFrame
    rejects: pd.DataFrame
    report: ValidationReport


@dataclass
class UpliftResult:
    """What an uplift training run produced."""

    model: UpliftModel | AverageEffectModel
    evaluation: PolicyEvaluation
    promoted_learned: bool  # True: the targeted policy won; False: the average-effect fallback
    seconds: float
    notes: list[str] = field(default_factory=list)
    example: pd.DataFrame | None = None

    @property
    def kind(self) -> str:
        return "learned" if self.promoted_learned else "average effect (fallback)"


def prepare_campaign_log(
    raw: pd.DataFrame, catalog: Catalog, as_of=None, transactions: pd.DataFrame | None = None
) -> CampaignLog:
    """Validate a raw campaign log and give it outcomes.

    Raises
    ------
    InputError
        If the log has no outcome columns and no transactions are given to
        derive them from.
    """
    checked = validate_campaign_log(raw, catalog, as_of)
    logged = checked.log
    if "converted" not in logged.columns:
        if transactions is None or transactions.empty:
            raise InputError(
                "the campaign log has no 'converted' column and there are no transactions to "
                "derive outcomes from (a purchase of the offer's category in its response window)"
            )
        logged = derive_outcomes(logged, transactions, catalog, as_of)
    return CampaignLog(logged, checked.rejects, checked.report)


def uplift_features(
    customers: pd.DataFrame,
    transactions: pd.DataFrame | None,
    as_of,
    time_unit_days: float,
    catalog: Catalog,
    extras: dict | None = None,
) -> pd.DataFrame:
    """One row per customer: transaction features where there is history, attributes otherwise.

    Customers who objected to profiling are left out (no model learns from
    them). ``customers`` carries the attributes (its columns other than
    ``customer_id`` and ``consent_profiling``).
    """
    consenting = customers[customers["consent_profiling"].fillna(True).astype(bool)]
    attributes = consenting.drop(columns=["consent_profiling"])
    if transactions is None or transactions.empty:
        return attributes.reset_index(drop=True)
    ctx = build_context(
        transactions, customers, catalog.categories, extras or {}, catalog.channel_names
    )
    behaviour = features_at(ctx, as_of, time_unit_days)
    behaviour = behaviour[behaviour["consent_profiling"]].drop(columns=["consent_profiling"])
    known = set(behaviour["customer_id"])
    only_attributes = attributes[~attributes["customer_id"].isin(known)]
    return pd.concat([behaviour, only_attributes], ignore_index=True)


def train_uplift(
    campaign: CampaignLog, features: pd.DataFrame, catalog: Catalog, config: dict
) -> UpliftResult:
    """Cross-fit, evaluate against the baselines, and fit the model to register (no MLflow)."""
    started = time.perf_counter()
    logged = campaign.log
    if logged["converted"].notna().sum() == 0:
        raise InputError("the campaign log has no row with a known outcome: nothing to learn")
    values = {o.offer_id: o.value for o in catalog.offers}
    costs = {o.offer_id: o.cost for o in catalog.offers}
    if catalog.retention is not None:
        values.setdefault(catalog.retention.offer_id, 0.0)
        costs.setdefault(catalog.retention.offer_id, catalog.retention.cost)
    cf = crossfit_predictions(
        features, logged, config["model"], k=int(config["folds"]), seed=int(config["seed"])
    )
    evaluation = policy_evaluation(
        cf, values, costs, margin=float(catalog.policy.get("revenue_margin", 0.0))
    )
    if evaluation.promote:
        model = UpliftModel(config["model"]).fit(features, logged)
    else:
        model = AverageEffectModel().fit(features, logged)
    notes = [
        f"uplift: {evaluation.reason}",
        "uplift: the targeted policy is used"
        if evaluation.promote
        else "uplift: decisions fall back to the best single action for everyone (average effects)",
    ]
    # The logged input example carries no real customer id.
    head = features.head(5)
    example = head.assign(customer_id=[f"example-{i}" for i in range(len(head))])
    return UpliftResult(
        model, evaluation, evaluation.promote, time.perf_counter() - started, notes, example
    )


def run_uplift(
    dataset_name: str,
    campaign: CampaignLog,
    features: pd.DataFrame,
    catalog: Catalog,
    config: dict,
    register: bool = True,
) -> tuple[UpliftResult, str | None]:
    """:func:`train_uplift` in a (nested) MLflow run; log, register and promote.

    The registered model (``nextbest-uplift``) becomes ``champion``: the
    learned model when its gate passed, the average-effect fallback otherwise
    (the decision then is the best single action for everyone). Returns the
    result and the registered version.
    """
    import mlflow

    with mlflow.start_run(
        run_name=f"uplift-{dataset_name}", nested=mlflow.active_run() is not None
    ):
        mlflow.set_tags({"dataset": dataset_name, "stage": "uplift"})
        mlflow.log_params(flatten("config", config))
        mlflow.log_dict(campaign.report.as_dict(), "data/campaign_log_report.json")
        result = train_uplift(campaign, features, catalog, config)
        ev = result.evaluation
        mlflow.log_dict(ev.as_dict(), "uplift/policy_evaluation.json")
        mlflow.log_text(ev.policies.to_csv(index=False), "uplift/policies.csv")
        mlflow.log_text(ev.comparisons.to_csv(index=False), "uplift/comparisons.csv")
        mlflow.log_text(ev.qini.to_csv(index=False), "uplift/qini.csv")
        metrics = {"train_seconds": result.seconds, "promoted_learned": float(ev.promote)}
        for row in ev.policies.itertuples():
            metrics[f"policy_dr_value.{row.policy}"] = float(row.dr_value)
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.set_tags({"uplift.kind": result.kind, "uplift.reason": ev.reason[:5000]})
        version, _ = log_model(
            result.model,
            result.example,
            UPLIFT_MODEL_NAME,
            promote_if=True,
            register=register,
            metadata={
                "kind": result.kind,
                "reason": ev.reason,
                "config_hash": config_hash(config),
                "arms": json.dumps(list(result.model.arms_)),
            },
        )
    return result, version
