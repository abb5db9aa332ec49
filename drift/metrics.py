"""Prometheus metrics.

Most label values come from config and enums. Cohort keys come from event data
(tenant, region, ...), so they pass through :class:`LabelCap`, which keeps the
first ``limit`` distinct values and folds the rest into ``other``.
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge

OTHER = "other"
DEFAULT_COHORT_LABEL_LIMIT = 1000


class LabelCap:
    """Bounds the distinct values a label takes; values past the limit become ``other``.

    >>> cap = LabelCap(limit=2)
    >>> [cap("a"), cap("b"), cap("c"), cap("a")]
    ['a', 'b', 'other', 'a']
    """

    def __init__(self, limit: int = DEFAULT_COHORT_LABEL_LIMIT) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OTHER


COHORT_LABELS = LabelCap()

EVENTS_IN = Counter(
    "drift_events_total", "Messages read from the inference source, by outcome.",
    ["step_id", "outcome"],
)
DLQ = Counter(
    "drift_dlq_total", "Messages sent to the dead-letter topic, by reason.",
    ["step_id", "reason"],
)
WINDOWS_CLOSED = Counter(
    "drift_windows_closed_total", "Cohort windows closed and scored.", ["model"],
)
FINDINGS = Counter(
    "drift_findings_total", "Detector findings, by severity.", ["model", "detector", "severity"],
)
PSI = Gauge(
    "drift_psi", "PSI of a feature in the last closed window of a cohort.",
    ["model", "model_version", "feature", "cohort"],
)
TICKETS = Counter(
    "drift_tickets_total", "Ticket events, by kind (opened, updated, reopened).", ["model", "kind"],
)
JOIN_EVICTIONS = Counter(
    "drift_join_evictions_total",
    "Entities dropped from the offline-value join state (value skew), by reason: ttl (older than "
    "max_age) or cap (least recently used past max_entities).",
    ["feature_set", "reason"],
)
JOIN_LATE = Counter(
    "drift_join_late_total",
    "Join outcomes that reached their cohort window after it closed; not counted in value skew.",
    ["model"],
)


def serve(host: str, port: int) -> int:
    """Serve ``/metrics`` over HTTP in a background thread; returns the bound port.

    Port 0 picks a free port (useful in tests); the job's config sets a fixed one.
    """
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)
