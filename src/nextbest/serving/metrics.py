"""Prometheus metrics of the service, exposed by BentoML's own ``/metrics``.

``prometheus_client`` is imported on first use, never at import time:
BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` in each worker before the service
is created, and counters made after that are summed over all workers.

=========================================  =================================================
metric                                     meaning
=========================================  =================================================
``nextbest_decisions_total``               decisions returned, by ``endpoint`` and ``action``
``nextbest_unknown_customer_ids_total``    requested ids with no snapshot row, by ``endpoint``
``nextbest_consent_suppressions_total``    decisions where consent withheld personalisation
``nextbest_auth_failures_total``           requests refused with 401
``nextbest_reloads_total``                 reload attempts by ``outcome``
(reloaded/unchanged/failed)
``nextbest_audit_write_failures_total``    audit-log writes that failed
``nextbest_snapshot_customers``            customers with a precomputed decision (per worker, max)
=========================================  =================================================
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

_lock = threading.Lock()
_metrics: Metrics | None = None


@dataclass(frozen=True)
class Metrics:
    decisions: object
    unknown_ids: object
    consent_suppressions: object
    auth_failures: object
    reloads: object
    audit_failures: object
    snapshot_customers: object

    def count_decisions(self, endpoint: str, actions: list[str]) -> None:
        """Count decisions by action, and the consent suppressions among them."""
        for action in actions:
            self.decisions.labels(endpoint=endpoint, action=action).inc()
            if action == "non_personalised":
                self.consent_suppressions.labels(endpoint=endpoint).inc()


def get_metrics() -> Metrics:
    """The process-wide metrics (created once; Prometheus forbids registering twice)."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                from prometheus_client import Counter, Gauge

                _metrics = Metrics(
                    decisions=Counter(
                        "nextbest_decisions",
                        "Decisions returned, by endpoint and action.",
                        ["endpoint", "action"],
                    ),
                    unknown_ids=Counter(
                        "nextbest_unknown_customer_ids",
                        "Requested customer ids not in the snapshot.",
                        ["endpoint"],
                    ),
                    consent_suppressions=Counter(
                        "nextbest_consent_suppressions",
                        "Decisions where the customer objected to profiling: non-personalised "
                        "default given.",
                        ["endpoint"],
                    ),
                    auth_failures=Counter("nextbest_auth_failures", "Requests refused with 401."),
                    reloads=Counter(
                        "nextbest_reloads", "Serving-state reload attempts by outcome.", ["outcome"]
                    ),
                    audit_failures=Counter(
                        "nextbest_audit_write_failures", "Audit-log writes that failed."
                    ),
                    snapshot_customers=Gauge(
                        "nextbest_snapshot_customers",
                        "Customers with a precomputed decision.",
                        multiprocess_mode="livemax",
                    ),
                )
    return _metrics
