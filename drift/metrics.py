"""Prometheus metrics. Label values come from config and enums, so cardinality is bounded."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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


def serve(host: str, port: int) -> int:
    """Serve ``/metrics`` over HTTP in a background thread; returns the bound port.

    Port 0 picks a free port (useful in tests); the job's config sets a fixed one.
    """
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)
