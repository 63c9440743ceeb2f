"""Everything held about one customer, as one JSON document (GDPR Art. 15 and 20).

``GET /customers/{id}/data`` (admin key) and ``nextbest customer export ID``
return the same document:

==================  ==========================================================================
key                 what
==================  ==========================================================================
``customer_id``     the id as given
``generated_at``    when the document was made (UTC)
``snapshot``        ``as_of`` and the customer's feature row of the serving snapshot (or null)
``transactions``    the customer's transaction lines the snapshot was trained on
                    (``snapshots/history.parquet``)
``events``          every stored event (purchases, contacts, responses, consent), oldest first
``consent``         the consent state: profiling (``granted``, ``source``: event, snapshot or
                    default, ``at``) and each channel's opt-in or opt-out
``decision``        the current decision, as ``/predict`` would answer it now (or null)
``audit``           every audit-log line about the customer, oldest first
==================  ==========================================================================

Models and MLflow runs hold no customer id (see the README, "Real-time
events and consent"); scores files and reports written outside
``NEXTBEST_HOME`` are the operator's own exports and are not searched.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pydantic_core

from nextbest.errors import NoChampionError, NoSnapshotError
from nextbest.events.fold import store_for
from nextbest.events.schema import Event, iso
from nextbest.serving.rebuild import channel_consent, customer_decision, newest_consent
from nextbest.serving.settings import ServiceSettings
from nextbest.serving.state import ServingState, load_state


def audit_entries(audit_dir: Path, customer_id: str) -> list[dict]:
    """Every audit-log line about ``customer_id``, oldest file first (lines in file order)."""
    needle = b'"customer_id":' + pydantic_core.to_json(customer_id)
    out: list[dict] = []
    for path in sorted(Path(audit_dir).glob("decisions-*.jsonl")):
        with path.open("rb") as fh:
            for line in fh:
                if needle in line:
                    record = json.loads(line)
                    if record.get("customer_id") == customer_id:
                        out.append(record)
    return out


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (NaN -> null, times as ISO 8601)."""
    if frame is None or frame.empty:
        return []
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="us"))


def _consent(events: list[Event], features: list[dict]) -> dict:
    deciding = newest_consent(events)
    if deciding is not None:
        profiling = {
            "granted": bool(deciding.consent_profiling),
            "source": "event",
            "at": iso(deciding.at_us),
            "event_id": deciding.event_id,
        }
    elif features:
        granted = features[0].get("consent_profiling")
        profiling = {"granted": True if granted is None else bool(granted), "source": "snapshot"}
    else:
        profiling = {"granted": True, "source": "default"}
    channels = {
        name: {"opt_in": bool(e.opt_in), "at": iso(e.at_us), "event_id": e.event_id}
        for name, e in sorted(channel_consent(events).items())
    }
    return {"profiling": profiling, "channels": channels}


def customer_document(
    customer_id: str,
    state: ServingState | None,
    events: list[Event],
    decision: dict | None,
    audit_dir: Path,
) -> dict | None:
    """The data-access document of ``customer_id`` (see the module docstring); None if nothing
    is held about them. Without a state (no snapshot or champion yet) the snapshot part is
    empty and there is no decision."""
    snapshot_rows = state.snapshot_rows if state is not None else None
    history = state.history if state is not None else None
    features = _records(snapshot_rows.rows(customer_id)) if snapshot_rows is not None else []
    transactions = _records(history.rows(customer_id)) if history is not None else []
    audit = audit_entries(audit_dir, customer_id)
    if not (features or transactions or events or audit or decision):
        return None
    for line in transactions:
        line.pop("customer_id", None)
    return {
        "customer_id": customer_id,
        "generated_at": dt.datetime.now(dt.UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "snapshot": {
            "as_of": str(state.as_of.date()) if state is not None else None,
            "features": features[0] if features else None,
        },
        "transactions": transactions,
        "events": [e.to_dict() for e in events],
        "consent": _consent(events, features),
        "decision": json.loads(pydantic_core.to_json(decision, inf_nan_mode="null"))
        if decision is not None
        else None,
        "audit": audit,
    }


def export_customer(customer_id: str, settings: ServiceSettings) -> dict | None:
    """The document of ``customer_id`` without a running service (``nextbest customer export``).

    The decision is the one ``/predict`` gives: the snapshot row re-decided
    with the champions and every event of the customer. Without a snapshot or
    a champion the document still lists events and audit lines.
    """
    try:
        state = load_state(settings)
    except (NoSnapshotError, NoChampionError):
        state = None
    store = store_for(settings.paths)
    try:
        erased = store is not None and store.is_erased(customer_id)
        events = store.for_customer(customer_id) if store is not None and not erased else []
    finally:
        if store is not None:
            store.close()
    if erased:
        return None
    decision = customer_decision(state, customer_id, events) if state is not None else None
    return customer_document(customer_id, state, events, decision, settings.audit_dir)
