"""The drift dataflow: source → decode → cohort windows → detectors → policy → sinks.

One builder serves ``drift run`` (Kafka), ``drift replay`` and ``drift demo``
(files): only the source and sinks differ.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
from bytewax.outputs import Sink

from detectors.base import Detector
from detectors.registry import build as build_detector
from drift import metrics
from drift.config import Config, ModelConfig
from drift.events import Decoder, DeadLetter, DlqReason, InferenceEvent, RawMessage
from drift.findings import Cohort, Finding, Window
from drift.policy import Decision, PolicyState, route, step
from drift.reference import ReferenceProfile
from drift.summary import WindowSummary, add_event, empty_summary, flush, merge
from drift.tickets import TicketEvent, TicketStore

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class WindowReport:
    """A closed cohort window, as counted in the run's output."""

    cohort: Cohort
    window: Window
    n_events: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "cohort": self.cohort.to_dict(), "cohort_key": self.cohort.key,
            "window_start": self.window.start.isoformat(), "window_end": self.window.end.isoformat(),
            "n_events": self.n_events,
        }


@dataclass
class Outputs:
    """Where the flow writes; ``windows`` is optional (files only)."""

    findings: Sink[Finding]
    tickets: Sink[TicketEvent]
    dlq: Sink[DeadLetter]
    windows: Sink[WindowReport] | None = None


@dataclass
class ModelPlan:
    """What the flow needs for one model: its config, reference and detectors."""

    config: ModelConfig
    profile: ReferenceProfile
    detectors: list[Detector] = field(default_factory=list)


def plan_models(config: Config, profiles: dict[str, ReferenceProfile]) -> list[ModelPlan]:
    plans = []
    for model in config.models:
        detectors = [build_detector(name, settings) for name, settings in model.detector_configs()]
        plans.append(ModelPlan(model, profiles[model.name], detectors))
    return plans


def cohort_of(event: InferenceEvent, labels: list[str]) -> Cohort:
    return Cohort(event.model, tuple((label, event.label(label) or "-") for label in labels))


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


class TicketRecorder:
    """Opens the ticket store lazily in each worker and records decisions.

    Workers of one process are threads sharing this object, and a SQLite
    connection belongs to the thread that opened it: each thread gets its own
    store, and SQLite's lock orders their writes.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()

    def __call__(self, decision: Decision) -> list[TicketEvent]:
        store: TicketStore | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = TicketStore.open(self._path)
        event = store.record(decision.finding, action=decision.action)
        if event is None:
            return []
        metrics.TICKETS.labels(decision.finding.cohort.model, event.kind).inc()
        return [event]


def _count_dead_letter(letter: DeadLetter) -> None:
    metrics.DLQ.labels(letter.step_id, letter.reason.value).inc()


def _window_stream(plan: ModelPlan, events: Stream[InferenceEvent]) -> tuple[Stream[Any], Stream[DeadLetter]]:
    """Windows of one model: (cohort window summaries, late events as dead letters)."""
    model = plan.config
    name = _safe(model.name)
    profile = plan.profile
    size = model.window.size
    bounds = model.feature_bounds()
    track_event_ids = model.tracks_event_ids()
    mine = op.filter(f"select_{name}", events, lambda e: e.model == model.name)
    keyed = op.key_on(f"key_by_cohort_{name}", mine, lambda e: cohort_of(e, model.cohort).key)

    def folder(summary: WindowSummary | None, event: InferenceEvent) -> WindowSummary:
        if summary is None:
            summary = empty_summary(
                profile, cohort_of(event, model.cohort), bounds=bounds, track_event_ids=track_event_ids,
            )
        return add_event(summary, event, profile)

    def merger(a: WindowSummary | None, b: WindowSummary | None) -> WindowSummary | None:
        if a is None or b is None:
            return a if b is None else b
        return merge(a, b, profile)

    windows = fold_window(
        f"summarise_window_{name}", keyed,
        EventClock(lambda e: e.ts, wait_for_system_duration=model.window.allowed_lateness),
        TumblingWindower(length=size, align_to=EPOCH),
        builder=lambda: None, folder=folder, merger=merger,
    )

    def closed(key_item: tuple[str, tuple[int, WindowSummary | None]]) -> tuple[Cohort, Window, WindowSummary]:
        _, (window_id, summary) = key_item
        # A window opens on its first event, so its summary always exists.
        assert summary is not None
        start = EPOCH + window_id * size
        cohort = summary.cohort if summary.cohort is not None else Cohort(model.name)
        return cohort, Window(start, start + size), flush(summary, profile)

    down = op.map(f"close_window_{name}", windows.down, closed)

    def late(key_item: tuple[str, tuple[int, InferenceEvent]]) -> DeadLetter:
        _, (window_id, event) = key_item
        raw = event.raw
        start = EPOCH + window_id * size
        return DeadLetter(
            reason=DlqReason.LATE,
            detail=f"ts {event.ts.isoformat()} is later than the allowed lateness "
                   f"{model.window.allowed_lateness} for window starting {start.isoformat()}",
            step_id=f"summarise_window_{name}", topic=raw.topic, partition=raw.partition,
            offset=raw.offset, value=raw.value, key=raw.key,
        )

    return down, op.map(f"late_{name}", windows.late, late)


def build_flow(
    config: Config,
    profiles: dict[str, ReferenceProfile],
    source: Source[Any],
    outputs: Outputs,
    to_raw: Callable[[Any], RawMessage] | None = None,
    now: Callable[[], datetime] | None = None,
    flow_id: str = "drift",
) -> Dataflow:
    """The dataflow for ``config`` reading ``source`` and writing ``outputs``."""
    plans = plan_models(config, profiles)
    by_model = {plan.config.name: plan for plan in plans}
    decoder = Decoder(models=frozenset(by_model), max_future=config.events.max_future)
    if now is not None:
        decoder = Decoder(models=decoder.models, max_future=decoder.max_future, now=now)
    flow = Dataflow(flow_id)
    raw = op.input("read_inference", flow, source)
    if to_raw is not None:
        raw = op.map("to_raw_message", raw, to_raw)
    decoded = op.map("decode_inference", raw, decoder)
    branch = op.branch("split_decoded", decoded, lambda item: isinstance(item, InferenceEvent))
    events = cast(Stream[InferenceEvent], branch.trues)
    dead = [cast(Stream[DeadLetter], branch.falses)]
    op.inspect("count_events", events, lambda _s, _e: metrics.EVENTS_IN.labels("decode_inference", "ok").inc())

    closed: list[Stream[Any]] = []
    for plan in plans:
        down, late = _window_stream(plan, events)
        closed.append(down)
        dead.append(late)
    windows = op.merge("closed_windows", *closed)

    def detect(item: tuple[Cohort, Window, WindowSummary]) -> list[Finding]:
        cohort, window, summary = item
        plan = by_model[cohort.model]
        metrics.WINDOWS_CLOSED.labels(cohort.model).inc()
        found: list[Finding] = []
        for detector in plan.detectors:
            found.extend(detector.score(summary, plan.profile, cohort, window))
        for finding in found:
            metrics.FINDINGS.labels(cohort.model, finding.detector, finding.severity.value).inc()
            if finding.detector == "psi" and finding.skipped is None:
                metrics.PSI.labels(
                    cohort.model, dict(cohort.labels).get("model_version", "-"), finding.feature or "-",
                    metrics.COHORT_LABELS(cohort.key),
                ).set(finding.value)
        return found

    findings = op.flat_map("detect_drift", windows, detect)
    op.output("write_findings", findings, outputs.findings)
    if outputs.windows is not None:
        reports = op.map(
            "report_window", windows,
            lambda item: WindowReport(item[0], item[1], item[2].n_events),
        )
        op.output("write_windows", reports, outputs.windows)

    keyed_findings = op.key_on("key_by_fingerprint", findings, lambda f: f.fingerprint)

    def apply_policy(state: PolicyState | None, finding: Finding) -> tuple[PolicyState, Decision | None]:
        model = by_model[finding.cohort.model].config
        new_state, ticket = step(state, finding, model)
        return new_state, route(finding, model, list(config.routing)) if ticket else None

    decisions = op.filter_map_value("apply_policy_filter", op.stateful_map("apply_policy", keyed_findings, apply_policy), lambda d: d)
    store_path = config.ticket_store_path()
    if store_path is None:
        raise NotImplementedError("only sqlite:/// ticket stores are supported by this version")
    tickets = op.flat_map("open_tickets", op.key_rm("unkey_decisions", decisions), TicketRecorder(store_path))
    op.output("write_tickets", tickets, outputs.tickets)

    dead_letters = op.merge("dead_letters", *dead)
    op.inspect("count_dead_letters", dead_letters, lambda _s, letter: _count_dead_letter(letter))
    op.output("write_dlq", dead_letters, outputs.dlq)
    return flow
