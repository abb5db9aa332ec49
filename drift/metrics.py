"""Prometheus metrics.

Most label values come from config and enums. Per-cohort metrics are the
exception: their label values come from event data (tenant, region, ...), so
their number grows with the traffic. They carry one Prometheus label per cohort
label of the config (``segment.channel`` becomes ``segment_channel``), and
:class:`CohortMetrics` caps them: past ``metrics.max_cohorts`` distinct cohorts
of a model, a cohort's labels read ``_other`` and
``drift_cohort_overflow_total`` counts each value recorded that way.

prometheus_client fixes a metric's label names when it is created, and the
names depend on the config, so :func:`configure` (called when the flow is built)
creates the per-cohort gauges once per process and replaces them only when a
config with other cohort labels is built in the same process (tests do).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from drift.errors import ConfigError
from drift.findings import Cohort, Finding

if TYPE_CHECKING:
    from drift.config import Config
    from drift.tickets import Ticket, TicketTimeline

OTHER = "_other"
"""The value of every cohort label of a cohort past the cap."""
ABSENT = "-"
"""The value of a cohort label the model does not split by (or the event lacks)."""
BASE_LABELS = ("model", "model_version")
"""Labels every per-cohort metric has, whatever the config."""
DEFAULT_MAX_COHORTS = 1000

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
COHORT_ROWS = Gauge(
    "drift_cohort_rows", "Cohorts with window state in this process (rows of the cohort arrays).", ["model"],
)
COHORT_ROWS_FREED = Counter(
    "drift_cohort_rows_freed_total",
    "Cohort rows freed after engine.idle_windows windows without events.", ["model"],
)
ROLLUP_LATE = Counter(
    "drift_rollup_late_total",
    "Events counted in their cohort but too late for a rollup's window (its watermark follows all its members).",
    ["model"],
)
WINDOWS_SCREENED = Counter(
    "drift_windows_screened_total",
    "Cohort windows found healthy by the array screen and not scored finding by finding.", ["model"],
)
FINDINGS = Counter(
    "drift_findings_total", "Detector findings, by severity.", ["model", "detector", "severity"],
)
TICKETS = Counter(
    "drift_tickets_total", "Ticket events, by kind (opened, updated, reopened).", ["model", "kind"],
)
KAFKA_DELIVERY_ERRORS = Counter(
    "drift_kafka_delivery_errors_total",
    "Attempts to write an output message that the producer or the broker refused, by topic and "
    "Kafka error name (MSG_SIZE_TOO_LARGE, _MSG_TIMED_OUT, ...); each is retried or spilled.",
    ["topic", "error"],
)
KAFKA_SPILLED = Counter(
    "drift_kafka_spilled_total",
    "Output messages written to the local spill file (kafka.spill_dir) instead of their topic, "
    "by topic and the Kafka error of the last attempt ('stopped': not delivered when the job stopped).",
    ["topic", "error"],
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
LABELS = Counter(
    "drift_labels_total",
    "Label events of models with labels:, by outcome: joined (to a prediction waiting for it), unmatched (no "
    "prediction held with its key within labels.horizon), duplicate (the prediction already had a label), "
    "without_id, after_judging (joined, but the prediction's window was already judged).",
    ["model", "outcome"],
)
LABEL_PREDICTIONS = Counter(
    "drift_label_predictions_total",
    "Predictions of models with labels:, by outcome: kept (waiting for a label), missing (no usable prediction "
    "value), late (their window had closed), duplicate (a prediction with the same join key is held).",
    ["model", "outcome"],
)
LABEL_EVICTIONS = Counter(
    "drift_label_evictions_total",
    "Predictions that left the label join state without a label, by reason: expired (past labels.horizon) or "
    "capped (the oldest past labels.cap).",
    ["model", "reason"],
)
LABEL_PREDICTIONS_HELD = Gauge(
    "drift_label_predictions_held",
    "Predictions held in the label join state (waiting for a label, or labelled and not yet expired).",
    ["model"],
)
LABEL_WINDOWS_JUDGED = Counter(
    "drift_label_windows_judged_total",
    "Cohort windows judged on their labels, by what judged them: coverage (closed, the coverage gate reached) "
    "or horizon (their predictions left the join state).",
    ["model", "judged_by"],
)
WEBHOOK_DELIVERED = Counter(
    "drift_webhook_delivered_total", "Ticket events the webhook receiver accepted (2xx).",
)
WEBHOOK_FAILURES = Counter(
    "drift_webhook_failures_total",
    "Webhook POSTs that failed and are retried later, by reason: connection, timeout, 408, 425, 429, 5xx.",
    ["reason"],
)
WEBHOOK_REJECTED = Counter(
    "drift_webhook_rejected_total",
    "Ticket events set aside in the spool's rejected/ folder, by the receiver's status (3xx, 4xx) "
    "or 'unreadable'; never retried.",
    ["status"],
)
WEBHOOK_SPOOL_EVENTS = Gauge(
    "drift_webhook_spool_events", "Ticket events waiting in the webhook spool (as seen by this process).",
)
WEBHOOK_SPOOL_OLDEST_AGE = Gauge(
    "drift_webhook_spool_oldest_age_seconds",
    "Age of the oldest ticket event waiting in the webhook spool; 0 when it is empty.",
)


def _overflow_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "drift_cohort_overflow_total",
        "Per-cohort metric values recorded with cohort labels '_other' because the model already has "
        "metrics.max_cohorts labelled cohorts in this process.",
        ["model"], registry=registry,
    )


def _labelled_gauge(registry: CollectorRegistry) -> Gauge:
    return Gauge(
        "drift_cohorts_labelled",
        "Cohorts of a model with their own label values in the per-cohort metrics of this process "
        "(at most metrics.max_cohorts).",
        ["model"], registry=registry,
    )


# Their label names never change, so they live as long as the process, across configure().
COHORT_OVERFLOW = _overflow_counter(REGISTRY)
COHORTS_LABELLED = _labelled_gauge(REGISTRY)

_PROMETHEUS_INVALID = re.compile(r"[^A-Za-z0-9_]")


def prometheus_label(label: str) -> str:
    """The Prometheus label name of a cohort label: characters other than ``[A-Za-z0-9_]`` become ``_``.

    >>> prometheus_label("segment.channel"), prometheus_label("tenant")
    ('segment_channel', 'tenant')
    """
    return _PROMETHEUS_INVALID.sub("_", label)


def cohort_label_names(cohorts: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The Prometheus cohort labels for models' cohort labels (model name -> ``cohort:`` list).

    ``model`` and ``model_version`` come first, always; then the union of every
    model's other labels, sanitised, in sorted order (so the same config gives the
    same names whatever the order of its models).

    >>> cohort_label_names({"a": ["tenant", "segment.channel"], "b": ["model_version", "region"]})
    ('model', 'model_version', 'region', 'segment_channel', 'tenant')

    Raises
    ------
    ConfigError
        When two cohort labels of one model become the same Prometheus label
        (``segment.a-b`` and ``segment.a_b``).
    """
    problems: list[str] = []
    names: set[str] = set()
    for index, labels in enumerate(cohorts.values()):
        seen: dict[str, str] = {}
        for label in labels:
            name = prometheus_label(label)
            if name in seen:
                problems.append(
                    f"models[{index}].cohort: {seen[name]!r} and {label!r} both become the Prometheus "
                    f"label {name!r}; rename one of the segments"
                )
            seen[name] = label
            names.add(name)
    if problems:
        raise ConfigError(problems)
    return BASE_LABELS + tuple(sorted(names - set(BASE_LABELS)))


class CohortMetrics:
    """The per-cohort gauges for one set of cohort labels, with the cap on cohorts.

    ``drift_psi{<cohort labels>, feature}`` holds the PSI of a feature and
    ``drift_detector_value{<cohort labels>, detector, feature}`` the value of every
    other detector's finding (quality, skew, score, embedding), each from the last
    closed window of the cohort in which the value was measured (skipped findings
    leave the gauge as it was). ``<cohort labels>`` are :func:`cohort_label_names`.

    The first ``max_cohorts`` cohorts of each model keep their label values; a
    later cohort's values are all ``_other`` (``model`` stays), the gauges then
    hold the last value of any such cohort, and ``overflow`` counts each value
    recorded so. The cap bounds the series of a model to
    ``(max_cohorts + 1) x (values per window)`` and the memory of the cap to
    ``max_cohorts`` keys per model.

    >>> gauges = CohortMetrics({"m": ["tenant"]}, max_cohorts=1, registry=CollectorRegistry())
    >>> gauges.names
    ('model', 'model_version', 'tenant')
    >>> gauges.label_values(Cohort("m", (("tenant", "acme"),)))
    ('m', '-', 'acme')
    >>> gauges.label_values(Cohort("m", (("tenant", "globex"),)))
    ('m', '-', '_other')
    """

    def __init__(
        self,
        cohorts: Mapping[str, Sequence[str]],
        max_cohorts: int = DEFAULT_MAX_COHORTS,
        registry: CollectorRegistry | None = None,
        overflow: Counter | None = None,
        labelled: Gauge | None = None,
    ) -> None:
        self.names = cohort_label_names(cohorts)
        self._lock = threading.Lock()
        # Per model, the config label behind each cohort label after ``model`` ("" if it has none).
        self._columns: dict[str, tuple[str, ...]] = {}
        self._admitted: dict[str, set[str]] = {}
        self.max_cohorts = max_cohorts
        registry = registry if registry is not None else CollectorRegistry()
        self.registry = registry
        self.overflow = overflow if overflow is not None else _overflow_counter(registry)
        self.labelled = labelled if labelled is not None else _labelled_gauge(registry)
        self.psi = Gauge(
            "drift_psi", "PSI of a feature in the last closed window of a cohort in which it was measured.",
            [*self.names, "feature"], registry=registry,
        )
        self.detector_value = Gauge(
            "drift_detector_value",
            "Value of a detector's finding other than psi (quality, skew, score, embedding) in the last "
            "closed window of a cohort in which it was measured; feature '-' when it has none.",
            [*self.names, "detector", "feature"], registry=registry,
        )
        self.slo_value = Gauge(
            "drift_slo_value",
            "Value of a quality SLO's metric (its SLI) over its period, as of the last judged window of a cohort.",
            [*self.names, "slo"], registry=registry,
        )
        self.slo_budget = Gauge(
            "drift_slo_error_budget_remaining",
            "Share of a quality SLO's error budget left over its period: 1 - error / allowed error "
            "(0: the objective is met exactly; negative: violated).",
            [*self.names, "slo"], registry=registry,
        )
        self.slo_burn_rate = Gauge(
            "drift_slo_burn_rate",
            "Error of a quality SLO's metric in the last judged window of a cohort over the allowed error "
            "(1: spending the budget exactly at the allowed rate).",
            [*self.names, "slo"], registry=registry,
        )
        self._slo_children: dict[tuple[str, ...], tuple[Gauge, Gauge, Gauge]] = {}
        self.update(cohorts, max_cohorts)

    def update(self, cohorts: Mapping[str, Sequence[str]], max_cohorts: int) -> None:
        """Take another config with the same label names; admitted cohorts stay admitted."""
        if cohort_label_names(cohorts) != self.names:
            raise ValueError(f"the cohort labels {cohort_label_names(cohorts)} differ from {self.names}")
        with self._lock:
            self.max_cohorts = max_cohorts
            for model, labels in cohorts.items():
                by_name = {prometheus_label(label): label for label in labels}
                self._columns[model] = tuple(by_name.get(name, "") for name in self.names[1:])
                admitted = self._admitted.setdefault(model, set())
                # Series at 0 from the start, so increase() sees the first overflow.
                self.overflow.labels(model)
                self.labelled.labels(model).set(len(admitted))

    def collectors(self) -> tuple[Gauge, ...]:
        """The gauges whose label names depend on the config (the counters outlive them)."""
        return (self.psi, self.detector_value, self.slo_value, self.slo_budget, self.slo_burn_rate)

    def label_values(self, cohort: Cohort, n_values: int = 1) -> tuple[str, ...]:
        """The values of :attr:`names` for a cohort, ``_other`` past the cap (``n_values`` counted)."""
        model = cohort.model
        columns = self._columns.get(model)
        if columns is None:  # a model of another config built in this process
            columns = ("",) * (len(self.names) - 1)
        admitted = self._admitted.get(model)
        if admitted is None or cohort.key not in admitted:
            with self._lock:
                admitted = self._admitted.setdefault(model, set())
                if cohort.key not in admitted:
                    if len(admitted) >= self.max_cohorts:
                        self.overflow.labels(model).inc(n_values)
                        return (model, *(OTHER if label else ABSENT for label in columns))
                    admitted.add(cohort.key)
                    self.labelled.labels(model).set(len(admitted))
        values = dict(cohort.labels)
        return (model, *((values.get(label) or ABSENT) if label else ABSENT for label in columns))

    def record(self, cohort: Cohort, finding: Finding) -> None:
        """Set the gauge of a measured finding (skipped findings are not values)."""
        self.record_all(cohort, [finding])

    def record_all(self, cohort: Cohort, findings: list[Finding]) -> None:
        """:meth:`record` for each of one cohort's findings (its labels looked up once)."""
        measured = [finding for finding in findings if finding.skipped is None]
        if not measured:
            return
        values = self.label_values(cohort, len(measured))
        for finding in measured:
            feature = finding.feature or ABSENT
            if finding.detector == "psi":
                self.psi.labels(*values, feature).set(finding.value)
            else:
                self.detector_value.labels(*values, finding.detector, feature).set(finding.value)

    def record_slo(self, cohort: Cohort, slo: str, value: float, budget_remaining: float, burn_rate: float) -> None:
        """Set the SLO gauges of one cohort's SLO (one value counted past the cap)."""
        values = (*self.label_values(cohort), slo)
        children = self._slo_children.get(values)
        if children is None:
            # Bounded like the series: (max_cohorts + 1) x SLOs per model.
            children = self._slo_children[values] = (
                self.slo_value.labels(*values), self.slo_budget.labels(*values), self.slo_burn_rate.labels(*values),
            )
        for gauge, number in zip(children, (value, budget_remaining, burn_rate)):
            gauge.set(number)

    def unregister(self) -> None:
        for collector in self.collectors():
            self.registry.unregister(collector)


_configure_lock = threading.Lock()
_current = CohortMetrics({}, registry=REGISTRY, overflow=COHORT_OVERFLOW, labelled=COHORTS_LABELLED)


def _cohorts(config: Config) -> dict[str, list[str]]:
    return {model.name: list(model.cohort) for model in config.models}


def configure(config: Config) -> CohortMetrics:
    """Set up the per-cohort metrics of this process for ``config`` (called when a flow is built).

    A second call with the same cohort label names keeps the gauges, their values
    and the admitted cohorts, and takes the new models and ``max_cohorts``;
    other label names replace the gauges in the default registry.
    """
    global _current
    cohorts = _cohorts(config)
    names = cohort_label_names(cohorts)
    with _configure_lock:
        if names == _current.names:
            _current.update(cohorts, config.metrics.max_cohorts)
        else:
            _current.unregister()
            _current = CohortMetrics(
                cohorts, config.metrics.max_cohorts, registry=REGISTRY,
                overflow=COHORT_OVERFLOW, labelled=COHORTS_LABELLED,
            )
        return _current


def cohort_metrics() -> CohortMetrics:
    """The per-cohort metrics of this process, as last configured."""
    return _current


def record_finding(cohort: Cohort, finding: Finding) -> None:
    """Record a finding in the per-cohort gauges of this process."""
    _current.record(cohort, finding)


def record_findings(cohort: Cohort, findings: list[Finding]) -> None:
    """Record one cohort's findings in the per-cohort gauges of this process."""
    _current.record_all(cohort, findings)


MAX_TICKET_INFO = 100
"""Active tickets a process lists in ``drift_ticket_info`` (oldest first); the rest are counted
in ``drift_ticket_info_omitted``. It bounds that gauge's series whatever the number of cohorts."""
TICKET_STATE_MIN_INTERVAL = 10.0
"""Seconds between two reads of the ticket store when no ticket event asks for one."""


@dataclass(frozen=True, slots=True)
class TicketSnapshot:
    """The ticket store as one process last read it (see :class:`TicketState`)."""

    read_at: float
    open: Mapping[tuple[str, str, str, str], int] = field(default_factory=dict)
    review_queue: Mapping[str, int] = field(default_factory=dict)
    listed: tuple[tuple[str, str, str, str, str, str, str], ...] = ()
    omitted: Mapping[str, int] = field(default_factory=dict)


def _cohort_text(ticket: Ticket) -> str:
    # The cohort key without the model ("region=eu|tenant=acme"); "-" for a model-wide ticket.
    return "|".join(f"{k}={v}" for k, v in sorted(ticket.cohort.items()) if k != "model") or ABSENT


class TicketState(Collector):
    """Ticket-state gauges, read from the ticket store (the alert rules page on them).

    ``drift_tickets_open{model, detector, severity, routing}`` counts the live
    (not resolved) tickets whose problem is active: opened after the policy's
    ``consecutive_windows``, not yet cleared by its hysteresis. ``routing`` is the
    ticket's action (``ticket`` or ``human_review``), ``severity`` the ticket's.
    ``drift_review_queue{model}`` counts tickets pending review.
    ``drift_ticket_info{ticket, model, detector, severity, routing, feature, cohort}``
    is 1 for each of the first :data:`MAX_TICKET_INFO` active tickets (oldest id
    first) and ``drift_ticket_info_omitted{model}`` counts the others.
    ``drift_ticket_state_timestamp_seconds`` says when this process read the
    store: every process of a cluster reads the same store, and the rules use the
    freshest read.

    ``drift_alert_only_active{model, detector, severity}`` counts problems routed
    ``alert_only`` (no ticket) that are active in this process; their policy state
    lives in the flow, so these add up across processes.

    The values are swapped whole, so a scrape never sees half a read.

    >>> from prometheus_client import generate_latest
    >>> registry = CollectorRegistry()
    >>> state = TicketState(registry=registry)
    >>> state.update([], models=["m"], now=1.0)
    >>> print(generate_latest(registry).decode().count('drift_review_queue{model="m"} 0.0'))
    1
    """

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self._snapshot: TicketSnapshot | None = None
        self._lock = threading.Lock()
        self._alert_only: dict[str, tuple[str, str, str]] = {}
        self._last_read = float("-inf")
        if registry is not None:
            registry.register(self)

    @property
    def snapshot(self) -> TicketSnapshot | None:
        return self._snapshot

    def due(self, interval: float = TICKET_STATE_MIN_INTERVAL) -> bool:
        """Whether the last read is older than ``interval`` seconds (monotonic clock)."""
        return time.monotonic() - self._last_read >= interval

    def update(self, live: Iterable[Ticket], models: Iterable[str] = (), now: float | None = None) -> None:
        """Take a read of the live tickets (:meth:`drift.tickets.TicketStore.live`)."""
        open_: Tally[tuple[str, str, str, str]] = Tally()
        queue: Tally[str] = Tally({model: 0 for model in models})
        omitted: Tally[str] = Tally({model: 0 for model in models})
        listed: list[tuple[str, str, str, str, str, str, str]] = []
        for ticket in live:
            if ticket.status == "pending_review":
                queue[ticket.model] += 1
            if not ticket.active:
                continue
            open_[(ticket.model, ticket.detector, ticket.severity.value, ticket.action)] += 1
            omitted.setdefault(ticket.model, 0)
            if len(listed) < MAX_TICKET_INFO:
                listed.append((ticket.id, ticket.model, ticket.detector, ticket.severity.value, ticket.action,
                               ticket.feature or ABSENT, _cohort_text(ticket)))
            else:
                omitted[ticket.model] += 1
        snapshot = TicketSnapshot(time.time() if now is None else now, dict(open_), dict(queue),
                                  tuple(listed), dict(omitted))
        with self._lock:
            self._snapshot = snapshot
            self._last_read = time.monotonic()

    def alert_only(self, fingerprint: str, model: str, detector: str, severity: str, active: bool) -> None:
        """Record that an ``alert_only`` problem alerted (``active``) or cleared."""
        with self._lock:
            if active:
                self._alert_only[fingerprint] = (model, detector, severity)
            else:
                self._alert_only.pop(fingerprint, None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = self._snapshot
            alert_only = Tally(self._alert_only.values())
        tickets_open = GaugeMetricFamily(
            "drift_tickets_open",
            "Live tickets whose problem is active (the policy opened them and has not cleared them), by the "
            "ticket's model, detector, severity and routing (ticket, human_review); read from the ticket store.",
            labels=["model", "detector", "severity", "routing"],
        )
        review_queue = GaugeMetricFamily(
            "drift_review_queue", "Tickets pending review, read from the ticket store.", labels=["model"],
        )
        info = GaugeMetricFamily(
            "drift_ticket_info",
            f"1 for each active ticket (the first {MAX_TICKET_INFO} by id): its id, cohort (labels without the "
            "model) and feature ('-' when none).",
            labels=["ticket", "model", "detector", "severity", "routing", "feature", "cohort"],
        )
        omitted = GaugeMetricFamily(
            "drift_ticket_info_omitted",
            f"Active tickets not listed in drift_ticket_info (past {MAX_TICKET_INFO}).", labels=["model"],
        )
        read_at = GaugeMetricFamily(
            "drift_ticket_state_timestamp_seconds",
            "When this process last read the ticket store for the ticket-state gauges (Unix time).",
        )
        only = GaugeMetricFamily(
            "drift_alert_only_active",
            "Problems routed alert_only (no ticket) that are active in this process, by model, detector and "
            "severity.",
            labels=["model", "detector", "severity"],
        )
        if snapshot is not None:
            for key, n in sorted(snapshot.open.items()):
                tickets_open.add_metric(list(key), n)
            for model, n in sorted(snapshot.review_queue.items()):
                review_queue.add_metric([model], n)
            for row in snapshot.listed:
                info.add_metric(list(row), 1)
            for model, n in sorted(snapshot.omitted.items()):
                omitted.add_metric([model], n)
            read_at.add_metric([], snapshot.read_at)
        for (model, detector, severity), n in sorted(alert_only.items()):
            only.add_metric([model, detector, severity], n)
        yield from (tickets_open, review_queue, info, omitted, read_at, only)

    def describe(self) -> Iterator[Metric]:
        # Names only (prometheus_client checks duplicates with them): collect() reads no store.
        return self.collect()


TICKET_STATE = TicketState()
"""The ticket-state gauges of this process (updated by the flow's ticket step)."""


TIMING_BUCKETS: Final[tuple[float, ...]] = (
    60.0, 300.0, 900.0, 1800.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0,
    86400.0, 2 * 86400.0, 4 * 86400.0, 7 * 86400.0, 14 * 86400.0, 28 * 86400.0,
)
"""Upper bounds (seconds) of the ticket timing histograms: a minute to four weeks (then ``+Inf``)."""

TIMINGS: Final[tuple[tuple[str, str, str], ...]] = (
    ("drift_ticket_time_to_detect_seconds", "time_to_detect",
     "Event time from the start of a ticket's problem (the first of the consecutive alerting windows) to the "
     "end of the window that opened the ticket."),
    ("drift_ticket_time_to_acknowledge_seconds", "time_to_acknowledge",
     "Wall-clock time from a ticket's opening to the first thing a person did on it (review verdict, review "
     "request or status move)."),
    ("drift_ticket_time_to_recover_seconds", "time_to_recover",
     "Event time from the start of a ticket's problem to the end of the window at which it first cleared."),
    ("drift_ticket_time_to_resolve_seconds", "time_to_resolve",
     "Wall-clock time from a ticket's opening to its resolution."),
)
"""Each timing histogram: its name, the :class:`drift.tickets.TicketTimeline` duration it counts, its help."""


class TimelineSource(Protocol):
    """What :meth:`TicketTimings.read` needs of a ticket store (:class:`drift.tickets.TicketStore`)."""

    @property
    def location(self) -> str: ...

    def timelines(self, after: int = 0) -> tuple[int, list[TicketTimeline]]: ...


class TicketTimings(Collector):
    """Ticket timing histograms, read from the ticket store: time to detect, acknowledge, recover, resolve.

    ``drift_ticket_time_to_{detect,acknowledge,recover,resolve}_seconds{model, detector}``
    (:data:`TIMINGS`, buckets :data:`TIMING_BUCKETS`). People review and resolve tickets
    with the CLI, in other processes, so the job reads the durations from the store
    (:meth:`drift.tickets.TicketStore.timelines`, only the tickets changed since its last
    read) with the ticket-state gauges, and counts each ticket once per histogram: the
    first read that finds the duration known. A process that starts again counts every
    ticket of the store again, so the histograms carry on where they were instead of
    falling to zero; every process of a cluster counts the same store, so combine them
    with ``max``, not ``sum``.

    >>> from datetime import UTC, datetime, timedelta
    >>> from drift.tickets import TicketTimeline
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> line = TicketTimeline("DRIFT-1", "m", "psi", t, t + timedelta(minutes=10), t, None, None, None)
    >>> timings = TicketTimings(registry=None)
    >>> timings.observe("t.db", [line, line])
    >>> [(s.name, s.value) for m in timings.collect() for s in m.samples if "le" not in s.labels]
    [('drift_ticket_time_to_detect_seconds_count', 1.0), ('drift_ticket_time_to_detect_seconds_sum', 600.0)]
    """

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self._lock = threading.Lock()
        self._after: dict[str, int] = {}
        self._seen: dict[tuple[str, str], int] = {}
        """(store location, ticket id) -> a bit per histogram of :data:`TIMINGS` that counted it."""
        self._counts: dict[tuple[int, str, str], list[float]] = {}
        """(histogram, model, detector) -> a count per bucket (the last is ``+Inf``), then the sum."""
        if registry is not None:
            registry.register(self)

    def read(self, store: TimelineSource) -> None:
        """Count the durations that became known since the last read of ``store``."""
        location = store.location
        with self._lock:
            after = self._after.get(location, 0)
        newest, lines = store.timelines(after)
        self.observe(location, lines)
        with self._lock:
            self._after[location] = max(newest, self._after.get(location, 0))

    def observe(self, location: str, lines: Iterable[TicketTimeline]) -> None:
        """Count each known duration of ``lines`` (tickets of the store at ``location``) not counted yet."""
        with self._lock:
            for line in lines:
                key = (location, line.id)
                seen = self._seen.get(key, 0)
                for i, (_, attribute, _) in enumerate(TIMINGS):
                    duration = getattr(line, attribute)
                    if duration is None or seen & (1 << i):
                        continue
                    seen |= 1 << i
                    seconds = max(0.0, duration.total_seconds())  # clocks of two machines may disagree
                    counts = self._counts.setdefault((i, line.model, line.detector),
                                                     [0.0] * (len(TIMING_BUCKETS) + 2))
                    bucket = next((b for b, bound in enumerate(TIMING_BUCKETS) if seconds <= bound),
                                  len(TIMING_BUCKETS))
                    counts[bucket] += 1
                    counts[-1] += seconds
                self._seen[key] = seen

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = {key: list(values) for key, values in self._counts.items()}
        families = [HistogramMetricFamily(name, doc, labels=["model", "detector"]) for name, _, doc in TIMINGS]
        bounds = [str(floatToGoString(b)) for b in TIMING_BUCKETS] + ["+Inf"]  # type: ignore[no-untyped-call]
        for (i, model, detector), values in sorted(counts.items()):
            cumulative, total = [], 0.0
            for bound, n in zip(bounds, values[:-1]):
                total += n
                cumulative.append((bound, total))
            families[i].add_metric([model, detector], cumulative, values[-1])
        yield from families

    def describe(self) -> Iterator[Metric]:
        return self.collect()


TICKET_TIMINGS = TicketTimings()
"""The ticket timing histograms of this process (read by the flow's ticket step with the ticket state)."""
