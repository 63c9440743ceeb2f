"""BentoML service: the next best action per customer id over HTTP.

Thin and typed: every answer is a row of :func:`nextbest.scoring.score`, the
same function batch scoring uses. Start it with ``nextbest serve`` (trains
first if a champion is missing) or ``bentoml serve nextbest.service:NextBest``.

* ``POST /predict`` ``{"customer_id": ...}`` -> :class:`~nextbest.serving.schemas.Decision` (404 if
unknown);
* ``POST /predict_batch`` ``{"customer_ids": [...]}`` (at most 1,000) -> decisions + ids not found;
* ``POST /predict_features`` - cold start from posted transactions
(:mod:`nextbest.serving.coldstart`);
* ``POST /admin/reload`` - pick up a new champion / snapshot now (a watcher also does it every
  ``NEXTBEST_RELOAD_SECONDS``);
* ``/livez``, ``/readyz`` (503 until models and snapshot are loaded), ``/metrics``, ``/docs``.

Models are the MLflow ``champion`` of ``nextbest-clv``, ``nextbest-churn`` and
``nextbest-nbo``, loaded from the registry under ``NEXTBEST_HOME`` at start-up
(not copied into the BentoML model store: a promotion is picked up without a
rebuild). Every snapshot customer's decision is computed at load time
(:mod:`nextbest.serving.state`); a request does a lookup, no model work.
Nothing is loaded at import time.
"""

from __future__ import annotations

import datetime as dt

import bentoml
from starlette.responses import Response

from nextbest.errors import UnknownCustomer
from nextbest.serving.audit import AuditLog
from nextbest.serving.auth import AuthMiddleware
from nextbest.serving.coldstart import cold_start_decision
from nextbest.serving.errors import handles_errors, json_response
from nextbest.serving.holder import StateHolder
from nextbest.serving.http import (
    BodyLimitMiddleware,
    ErrorEnvelopeMiddleware,
    quiet_client_errors,
    request_id_var,
)
from nextbest.serving.metrics import get_metrics
from nextbest.serving.schemas import (
    Decision,
    DecisionBatch,
    PredictBatchRequest,
    PredictFeaturesRequest,
    PredictRequest,
    ReloadRequest,
    ReloadResult,
    Transaction,
)
from nextbest.serving.settings import ServiceSettings

RELOAD_WAIT_SECONDS = 60.0  # below the traffic timeout: a longer reload answers 202 and goes on


def _count_auth_failure() -> None:

    get_metrics().auth_failures.inc()


@bentoml.service(name="nextbest", workers=1, threads=2, traffic={"timeout": 120})
class NextBest:
    """Next best action per customer (see the module docstring)."""

    def __init__(self) -> None:

        self.settings = ServiceSettings.from_env()  # refuses to start without an API key
        quiet_client_errors()
        self.metrics = get_metrics()
        self.audit = (
            AuditLog(self.settings.audit_dir, self.metrics.audit_failures.inc)
            if self.settings.audit
            else None
        )
        self.holder = StateHolder(self.settings, on_reload=self._reloaded)
        self.holder.start()

    async def __is_ready__(self) -> bool:
        return self.holder.ready

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """Stop the watcher and close the audit log."""
        self.holder.stop()
        if self.audit is not None:
            self.audit.close()

    def _reloaded(self, outcome: str) -> None:
        self.metrics.reloads.labels(outcome=outcome).inc()
        if outcome == "reloaded" and self.holder.ready:
            self.metrics.snapshot_customers.set(len(self.holder.current().table))

    def _record(self, endpoint: str, decisions: list[dict]) -> None:
        self.metrics.count_decisions(endpoint, [d["action"] for d in decisions])
        if self.audit is not None:
            self.audit.write(decisions, request_id_var.get(), endpoint)

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=Decision)
    @handles_errors
    async def predict(self, customer_id: str) -> Decision | Response:
        """The decision for one customer of the snapshot (404 if the id is not in it)."""
        state = self.holder.current()
        i = state.table.find(customer_id)
        if i < 0:
            self.metrics.unknown_ids.labels(endpoint="predict").inc()
            raise UnknownCustomer(
                detail={
                    "customer_id": customer_id,
                    "hint": f"not in the snapshot as of {state.as_of.date()}; "
                    "POST its transactions to /predict_features",
                }
            )
        row = state.table.row(i)
        self._record("predict", [row])
        return json_response(row)

    @bentoml.api(route="/predict_batch", input_spec=PredictBatchRequest, output_spec=DecisionBatch)
    @handles_errors
    async def predict_batch(self, customer_ids: list[str]) -> DecisionBatch | Response:
        """Decisions for up to 1,000 ids, in request order (each id once); unknown ids listed
        apart."""
        state = self.holder.current()
        ids = list(dict.fromkeys(customer_ids))
        rows = state.table.find_many(ids)
        decisions = [state.table.row(int(i)) for i in rows if i >= 0]
        not_found = [c for c, i in zip(ids, rows.tolist()) if i < 0]
        if not_found:
            self.metrics.unknown_ids.labels(endpoint="predict_batch").inc(len(not_found))
        self._record("predict_batch", decisions)
        return json_response({"decisions": decisions, "not_found": not_found})

    @bentoml.api(route="/predict_features", input_spec=PredictFeaturesRequest, output_spec=Decision)
    @handles_errors
    def predict_features(
        self,
        customer_id: str,
        transactions: list[Transaction],
        consent_profiling: bool = True,
        as_of: dt.date | None = None,
        attributes: dict | None = None,
    ) -> Decision | Response:
        """Cold start: score a customer who is not in the snapshot from their posted
        transactions."""

        request = PredictFeaturesRequest.model_construct(
            customer_id=customer_id,
            transactions=transactions,
            consent_profiling=consent_profiling,
            as_of=as_of,
            attributes=attributes or {},
        )
        row = cold_start_decision(request, self.holder.current())
        self._record("predict_features", [row])
        return json_response(row)

    @bentoml.api(route="/admin/reload", input_spec=ReloadRequest, output_spec=ReloadResult)
    @handles_errors
    async def admin_reload(self, force: bool = False) -> ReloadResult | Response:
        """Load a new champion / snapshot now; 409 (still serving the old state) if that fails.

        With ``force`` every worker rebuilds (the others on their next watcher poll). A
        build that outlasts :data:`RELOAD_WAIT_SECONDS` goes on in the background: 202,
        ``outcome = "in_progress"``, the versions still served.
        """
        import anyio
        import anyio.to_thread

        if force:
            self.holder.request_reload_everywhere()
        result = None
        with anyio.move_on_after(RELOAD_WAIT_SECONDS):
            result = await anyio.to_thread.run_sync(
                self.holder.reload, force, abandon_on_cancel=True
            )
        if result is None:
            outcome, state, status = "in_progress", self.holder.current(), 202
        else:
            (outcome, state), status = result, 200
        return json_response(
            ReloadResult(
                outcome=outcome,
                model_versions=state.versions,
                as_of=state.table.as_of,
                n_customers=len(state.table),
                build_seconds=round(state.build_seconds, 3),
            ).model_dump(mode="json"),
            status,
        )


NextBest.add_asgi_middleware(ErrorEnvelopeMiddleware)
NextBest.add_asgi_middleware(AuthMiddleware, on_failure=_count_auth_failure)
NextBest.add_asgi_middleware(BodyLimitMiddleware)
