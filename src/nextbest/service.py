"""BentoML service: the next best action per customer id over HTTP.

Thin and typed: every answer is a row of :func:`nextbest.scoring.score`, the
same function batch scoring uses. Start it with ``nextbest serve`` (trains
first if a champion is missing) or ``bentoml serve nextbest.service:NextBest``.

* ``POST /predict`` ``{"customer_id": ...}`` -> :class:`~nextbest.serving.schemas.Decision` (404 if
  unknown); ``"record_contact": true`` stores the answer as a contact event;
* ``POST /predict_batch`` ``{"customer_ids": [...]}`` (at most 1,000) -> decisions + ids not found;
* ``POST /predict_features`` - cold start from posted transactions
  (:mod:`nextbest.serving.coldstart`);
* ``POST /events`` ``{"events": [...]}`` (at most 1,000) - purchases, contacts, responses and
  consent into the event store (:mod:`nextbest.events`), all or nothing;
* ``GET /customers/{id}/data`` - everything held about a customer
  (:mod:`nextbest.serving.subject`), with the admin key only;
* ``POST /admin/reload`` - pick up a new champion / snapshot now (a watcher also does it every
  ``NEXTBEST_RELOAD_SECONDS``);
* ``/livez``, ``/readyz`` (503 until every worker has loaded models and snapshot), ``/metrics``,
  ``/docs``.

Models are the MLflow ``champion`` of ``nextbest-clv``, ``nextbest-churn`` and
``nextbest-nbo``, loaded from the registry under ``NEXTBEST_HOME`` at start-up
(not copied into the BentoML model store: a promotion is picked up without a
rebuild). Every snapshot customer's decision is computed at load time
(:mod:`nextbest.serving.state`); a request does a lookup, no model work.
Customers changed by events since the snapshot are re-decided on their next
request (:mod:`nextbest.serving.overlay`). Nothing is loaded at import time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys

import anyio.to_thread
import bentoml
from fastapi import FastAPI
from starlette.responses import Response

from nextbest.errors import InputError, ServiceError, UnknownCustomer
from nextbest.events import BatchTooLarge, EventError, ingest_events, open_store
from nextbest.events.fold import events_url
from nextbest.serving.audit import AuditLog
from nextbest.serving.auth import AuthMiddleware
from nextbest.serving.coldstart import cold_start_decision
from nextbest.serving.decider import DecisionProcess
from nextbest.serving.errors import error_response, handles_errors, json_response
from nextbest.serving.holder import StateHolder
from nextbest.serving.http import (
    BodyLimitMiddleware,
    ErrorEnvelopeMiddleware,
    quiet_client_errors,
    request_id_var,
)
from nextbest.serving.metrics import get_metrics
from nextbest.serving.overlay import DecisionBatcher, Overlay
from nextbest.serving.readiness import WorkerReadiness, exit_with_server
from nextbest.serving.schemas import (
    Decision,
    DecisionBatch,
    EventsRequest,
    EventsResult,
    PredictBatchRequest,
    PredictFeaturesRequest,
    PredictRequest,
    ReloadRequest,
    ReloadResult,
    Transaction,
)
from nextbest.serving.settings import ServiceSettings
from nextbest.serving.state import ServingState, build_state
from nextbest.serving.subject import customer_document

SWITCH_INTERVAL_S = 0.0005
RELOAD_WAIT_SECONDS = 60.0  # below the traffic timeout: a longer reload answers 202 and goes on


# The data-access endpoint (GET, with a path parameter): BentoML's own APIs are POST only.
data_access = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


def _count_auth_failure() -> None:

    get_metrics().auth_failures.inc()


def _event_problems(exc: EventError) -> list[dict[str, str]]:
    """Each rejected event as ``{"field": "events[3].amount", "problem": ...}``."""
    return [
        {"field": f"events[{r.index}]" + (f".{r.field}" if r.field else ""), "problem": r.reason}
        for r in exc.rejects
    ]


@bentoml.service(name="nextbest", workers=1, threads=2, traffic={"timeout": 120})
@bentoml.asgi_app(data_access, path="/customers")
class NextBest:
    """Next best action per customer (see the module docstring)."""

    def __init__(self) -> None:

        self.settings = ServiceSettings.from_env()  # refuses to start without an API key
        # The request loop and the thread that waits on the decision process share the GIL:
        # with the default 5 ms switch interval that thread waited for the busy loop at every
        # step of a re-decision (measured: a purchase's answer p99 1.4 s under 32 readers).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        quiet_client_errors()
        self.metrics = get_metrics()
        self.audit = (
            AuditLog(self.settings.audit_dir, self.metrics.audit_failures.inc)
            if self.settings.audit
            else None
        )
        self.store = open_store(events_url(self.settings.paths))
        self.batcher = DecisionBatcher()
        self.readiness = WorkerReadiness(self.settings.ready_dir)
        self.readiness.clean_stale()
        if self.readiness.index is not None:  # under `bentoml serve`: leave with the server
            exit_with_server(os.getppid())
        self.holder = StateHolder(self.settings, build=self._build, on_reload=self._reloaded)
        self.holder.start()

    def _build(self, settings: ServiceSettings) -> ServingState:
        """The state with its overlay, the events since the snapshot replayed (before ready)."""
        state = build_state(settings)
        overlay = Overlay(state, self.store, settings.overlay_cache)
        overlay.catch_up()
        return dataclasses.replace(state, overlay=overlay)

    async def __is_ready__(self) -> bool:
        return self.holder.ready and self.readiness.all_ready()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """Stop the watcher, withdraw this worker's readiness, close the audit log and store."""
        self.readiness.clear()
        self.holder.stop()
        if self.holder.ready and (overlay := self.holder.current().overlay) is not None:
            overlay.close()  # its decision process
        if self.audit is not None:
            self.audit.close()
        self.store.close()

    def _reloaded(self, outcome: str) -> None:
        self.metrics.reloads.labels(outcome=outcome).inc()
        if outcome == "reloaded" and self.holder.ready:
            state = self.holder.current()
            self.metrics.snapshot_customers.set(len(state.table))
            self.readiness.mark_ready()
            # The decision process (:mod:`nextbest.serving.decider`) starts once the new state
            # is in and the previous one (and its process) is gone: one child at a time, loading
            # while the worker holds one state. Until it is ready the worker decides itself.
            if self.settings.decision_process and state.overlay is not None:
                state.overlay.decider = DecisionProcess(self.settings)

    def _record(self, endpoint: str, decisions: list[dict]) -> None:
        self.metrics.count_decisions(endpoint, [d["action"] for d in decisions])
        if self.audit is not None:
            self.audit.write(decisions, request_id_var.get(), endpoint)

    def _current(self) -> ServingState:
        """The state to answer with, its overlay brought up to the store's head."""
        state = self.holder.current()
        if state.overlay is not None:
            state.overlay.poll()
        return state

    @staticmethod
    def _lookup(state: ServingState, customer_id: str) -> tuple[bool, dict | None]:
        """``(done, decision)`` without model work; ``done`` False: re-decide in a thread."""
        overlay = state.overlay
        if overlay is not None:
            if overlay.is_erased(customer_id):
                return True, None
            if overlay.is_changed(customer_id):
                return overlay.cached(customer_id)
        i = state.table.find(customer_id)
        return True, (state.table.row(i) if i >= 0 else None)

    def _unknown(self, state: ServingState, customer_id: str, endpoint: str) -> UnknownCustomer:
        self.metrics.unknown_ids.labels(endpoint=endpoint).inc()
        return UnknownCustomer(
            detail={
                "customer_id": customer_id,
                "hint": f"not in the snapshot as of {state.as_of.date()} nor known from "
                "events; POST its transactions to /predict_features or its purchases to /events",
            }
        )

    def _record_contact(self, row: dict) -> str | None:
        """Store the decision as a sent contact (``record_contact``); its event id, or None."""
        offer_id = row.get("action_offer_id")
        if not offer_id:
            return None
        catalog = self.holder.current().bundle.catalog
        offers = {o.offer_id: o for o in catalog.offers}
        for extra in (catalog.retention, catalog.default_action):
            if extra is not None:
                offers[extra.offer_id] = extra
        event = {
            "type": "contact",
            "customer_id": row["customer_id"],
            "offer_id": offer_id,
            "contacted_at": dt.datetime.now(dt.UTC).isoformat(),
            "group": "treatment",
        }
        channel = getattr(offers.get(offer_id), "channel", None)
        if isinstance(channel, str) and channel:
            event["channel"] = channel
        result = ingest_events([event], self.store)
        return result.event_ids[0]

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=Decision)
    @handles_errors
    async def predict(self, customer_id: str, record_contact: bool = False) -> Decision | Response:
        """The decision for one customer (404 if neither in the snapshot nor known from events).

        With ``record_contact`` the answer is stored as a contact event (a lookup is not a send).
        """
        state = self._current()
        done, row = self._lookup(state, customer_id)
        if not done:
            row = await self.batcher.decide(state.overlay, customer_id)
        if row is None:
            raise self._unknown(state, customer_id, "predict")
        if record_contact:
            row = dict(row)  # cached decisions are shared: never changed in place
            row["contact_event_id"] = await anyio.to_thread.run_sync(self._record_contact, row)
            if state.overlay is not None:
                state.overlay.poll()  # this worker applies its own contact at once
        self._record("predict", [row])
        return json_response(row)

    @bentoml.api(route="/predict_batch", input_spec=PredictBatchRequest, output_spec=DecisionBatch)
    @handles_errors
    async def predict_batch(self, customer_ids: list[str]) -> DecisionBatch | Response:
        """Decisions for up to 1,000 ids, in request order (each id once); unknown ids listed
        apart."""
        state = self._current()
        ids = list(dict.fromkeys(customer_ids))
        looked = [self._lookup(state, c) for c in ids]
        todo = [c for c, (done, _) in zip(ids, looked) if not done]
        if todo:
            found = await anyio.to_thread.run_sync(state.overlay.decide_many, todo)
            looked = [
                (True, found[c]) if not done else (done, r) for c, (done, r) in zip(ids, looked)
            ]
        decisions = [row for _, row in looked if row is not None]
        not_found = [c for c, (_, row) in zip(ids, looked) if row is None]
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

    @bentoml.api(route="/events", input_spec=EventsRequest, output_spec=EventsResult)
    @handles_errors
    def events(self, events: list[dict]) -> EventsResult | Response:
        """Store up to 1,000 events, all or nothing; every worker sees them at its next request."""
        try:
            result = ingest_events(events, self.store)
        except EventError as exc:
            return error_response(422, "invalid events: nothing stored", _event_problems(exc))
        except BatchTooLarge as exc:
            return error_response(413, "too many events in one request", str(exc))
        except InputError as exc:
            return error_response(400, "invalid request body", str(exc))
        return json_response(
            {
                "accepted": len(result.event_ids),
                "new": result.new,
                "duplicates": result.duplicates,
                "event_ids": result.event_ids,
                "head": result.head,
            }
        )

    @data_access.get("/{customer_id}/data")
    def customer_data(self, customer_id: str) -> Response:
        """Everything held about one customer, as one JSON document (admin key; Art. 15/20)."""
        try:
            state = self._current()
        except ServiceError as exc:
            return error_response(exc.http_status, exc.error, exc.detail)
        overlay = state.overlay
        erased = overlay is not None and overlay.is_erased(customer_id)
        events = [] if erased else self.store.for_customer(customer_id)
        done, decision = (True, None) if erased else self._lookup(state, customer_id)
        if not done:
            decision = overlay.decide(customer_id)
        doc = None
        if not erased:
            doc = customer_document(customer_id, state, events, decision, self.settings.audit_dir)
        if doc is None:
            return error_response(
                404,
                "unknown customer_id",
                {"customer_id": customer_id, "hint": "nothing is held about this customer id"},
            )
        return json_response(doc)

    @bentoml.api(route="/admin/reload", input_spec=ReloadRequest, output_spec=ReloadResult)
    @handles_errors
    async def admin_reload(self, force: bool = False) -> ReloadResult | Response:
        """Load a new champion / snapshot now; 409 (still serving the old state) if that fails.

        With ``force`` every worker rebuilds (the others on their next watcher poll). A
        build that outlasts :data:`RELOAD_WAIT_SECONDS` goes on in the background: 202,
        ``outcome = "in_progress"``, the versions still served.
        """
        import anyio

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
