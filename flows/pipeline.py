"""The drift dataflow: source → decode → cohort windows → detectors → policy → sinks.

One builder serves ``drift run`` (Kafka), ``drift replay`` and ``drift demo``
(files): only the source and sinks differ.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import DynamicSink, Sink

from connectors.schema_registry import open_schemas
from connectors.ticket_store import open_store
from drift import metrics
from drift.config import Config
from drift.errors import TicketStoreError
from drift.batch import BatchDecoder, DecodedBatch, model_columns
from drift.events import Decoder, DeadLetter, InferenceEvent, RawMessage
from drift.wire import WireDecoder
from drift.cohort_arrays import ClosedWindows, layout_of
from drift.findings import Cohort, Finding, Severity, Window
from drift.baselines import load_seasonal
from drift.policy import CohortPolicy, Decision, decide_cohort
from drift.reference import ReferenceProfile
from drift.tickets import TicketEvent, TicketStore
from flows.outbox import PendingTicketEvents, PublishedSink
from flows.plans import ModelPlan, cohort_of, plan_models
from flows.scoring import scorer
from flows.shard_windows import STEP_ID, ShardSpec, as_shards, shard_logic
from flows.canary import canary_findings, canary_plans, canary_quality_findings, compares_quality, halts_of
from flows.freshness import freshness_findings, freshness_plans
from flows.labels import (
    attach_label_messages, label_decoder, label_plans, label_streams, with_label_prediction, with_labels,
)
from flows.value_skew import count_feature_events, split_feature_events, value_skew_findings, value_skew_plans

__all__ = ["ModelPlan", "Outputs", "WindowReport", "build_flow", "cohort_of", "plan_models"]

log = logging.getLogger(__name__)

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
    feature_events: Sink[Any] | None = None
    """Decoded feature events (value skew), for the run's accounting; optional."""
    quality: Sink[Any] | None = None
    """Quality of the cohort windows judged on their labels (models with ``labels:``); optional."""
    label_events: Sink[Any] | None = None
    """One item per decoded label event, for the run's accounting; optional."""
    halts: Sink[Finding] | None = None
    """Halt signals of the canary comparisons (``canary.halt`` findings at alert); optional."""


class TicketRecorder:
    """Opens the ticket store lazily in each worker and records decisions.

    Workers of one process are threads sharing this object, and a SQLite
    connection belongs to the thread that opened it: each thread gets its own
    store, and SQLite's lock orders their writes.
    """

    def __init__(self, open_store: Callable[[], TicketStore], config: Config) -> None:
        self._open_store = open_store
        self._models = {model.name: model for model in config.models}
        self._local = threading.local()

    def _store(self) -> TicketStore:
        store: TicketStore | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = self._open_store()
            self.refresh_state(store)  # on start: alerts see the tickets already open
        return store

    def refresh_state(self, store: TicketStore, force: bool = True) -> None:
        """Read the live tickets into the ticket-state gauges (drift/metrics.py), which the
        alert rules page on. ``force=False`` reads only if the last read is older than
        ``metrics.TICKET_STATE_MIN_INTERVAL`` (reviews done with the CLI show up so)."""
        if force or metrics.TICKET_STATE.due():
            try:
                metrics.TICKET_STATE.update(store.live(), self._models)
                metrics.TICKET_TIMINGS.read(store)
            except TicketStoreError as exc:
                # The gauges keep the last read, and its timestamp says how old it is.
                log.warning("cannot read the ticket state for the metrics: %s", exc)

    def traffic(self, items: list[tuple[str, ClosedWindows]]) -> list[tuple[str, ClosedWindows]]:
        """Record the cohort windows' event counts (for traffic shares), one transaction per
        batch of closed windows; pass the items on."""
        store = self._store()
        # A rollup's events are its members' again: the model's traffic counts cohorts only.
        store.record_traffic_many([
            (closed.model, key, closed.window.start, closed.window.end, n)
            for _, closed in items for i, (key, n) in enumerate(zip(closed.cohort_keys(), closed.n_events.tolist()))
            if i not in closed.members
        ])
        self.refresh_state(store, force=False)
        return items

    def record_batch(self, decisions: list[Decision]) -> list[TicketEvent]:
        """:meth:`__call__` for a batch of decisions, then one read of the ticket state."""
        events = [event for decision in decisions for event in self(decision)]
        if decisions:
            self.refresh_state(self._store())
        return events

    def __call__(self, decision: Decision) -> list[TicketEvent]:
        store = self._store()
        model = self._models[decision.finding.cohort.model]
        if decision.action == "alert_only":
            finding = decision.finding
            metrics.TICKET_STATE.alert_only(finding.fingerprint, finding.cohort.model, finding.detector,
                                            finding.severity.value, active=decision.kind != "clear")
        if decision.kind == "clear":
            event = store.clear(decision.finding)
        elif decision.action == "alert_only":
            event = None  # routed to alerts (metrics) only: no ticket
        else:
            event = store.record(
                decision.finding, action=decision.action, approvals=decision.approvals,
                impact=model.impact, cooldown=model.policy.cooldown, drift_started=decision.drift_started,
            )
        if event is None:
            return []
        metrics.TICKETS.labels(decision.finding.cohort.model, event.kind).inc()
        return [event]


def _count_dead_letter(letter: DeadLetter) -> None:
    metrics.DLQ.labels(letter.step_id, letter.reason.value).inc()


def window_reports(closed: ClosedWindows) -> list[WindowReport]:
    """The closed windows' event counts, one report per cohort (files only)."""
    return [WindowReport(c, closed.window, int(n)) for c, n in zip(closed.cohorts, closed.n_events.tolist())]


def shard_specs(plans: list[ModelPlan], config: Config) -> dict[str, ShardSpec]:
    """How each model's cohort arrays are built (flows/shard_windows.py)."""
    return {
        plan.config.name: ShardSpec(
            model=plan.config.name,
            layout=layout_of(plan.profile, plan.config.feature_bounds(), plan.config.embedding_sampling(),
                             plan.config.tracks_event_ids()),
            size=plan.config.window.size, lateness=plan.config.window.allowed_lateness,
            idle_windows=config.engine.idle_windows,
        )
        for plan in plans
    }


def ts_units(config: Config) -> dict[str, str]:
    """``model -> ts_unit`` of the models whose epoch ``ts`` is not in milliseconds (for the decoder)."""
    return {model.name: model.ts_unit for model in config.models if model.ts_unit != "ms"}


def batch_decoder(
    config: Config, plans: list[ModelPlan], decoder: Decoder, per_event: set[str], by_model: bool = False,
) -> Callable[[Sequence[RawMessage]], DecodedBatch]:
    """The column-wise decoder of the flow; ``per_event``: models whose events feed per-event steps.

    With ``events.format: avro`` or ``protobuf`` wire-format messages are read first (drift/wire.py)."""
    columnar = BatchDecoder(decoder, [
        with_label_prediction(model_columns(
            plan.config.name, plan.config.cohort, plan.profile, per_event=plan.config.name in per_event,
            embeddings=plan.config.embedding_sampling() is not None,
        ), plan.config)
        for plan in plans
    ], by_model=by_model)
    schemas = config.events.schemas
    if config.events.format == "json" or schemas is None:
        return columnar
    wire_format = config.events.format
    return WireDecoder(
        columnar, open_schemas(schemas, config.resolve, wire_format), step_id=decoder.step_id, format=wire_format)


def as_batch(to_raw: Callable[[Any], RawMessage] | None) -> Callable[[Any], list[RawMessage]]:
    """Source items as lists of messages: sources yield a batch (a list) or one message."""
    def batch(item: Any) -> list[RawMessage]:
        items = item if isinstance(item, list) else [item]
        return items if to_raw is None else [to_raw(m) for m in items]
    return batch


def _count_batch(batch: DecodedBatch) -> None:
    if batch.n_events:
        metrics.EVENTS_IN.labels("decode_inference", "ok").inc(batch.n_events)


def build_flow(
    config: Config,
    profiles: dict[str, ReferenceProfile],
    source: Source[Any],
    outputs: Outputs,
    to_raw: Callable[[Any], RawMessage] | None = None,
    now: Callable[[], datetime] | None = None,
    flow_id: str = "drift",
    feature_source: Source[Any] | None = None,
    durable: bool = True,
    ok_findings: bool | None = None,
    shards: int | None = None,
    label_source: Source[Any] | None = None,
) -> Dataflow:
    """The dataflow for ``config`` reading ``source`` and writing ``outputs``.

    ``durable``: the run keeps its snapshots (a recovery store). Without one Bytewax
    drops every snapshot at once, so the cohort windows hand over their live state
    instead of copying every touched cohort's summaries at each epoch.

    ``feature_source`` (Kafka: ``kafka.feature_topic``) feeds value skew and freshness;
    it is read only when a ``skew`` detector has ``values:`` or a ``freshness`` detector
    is configured. ``label_source`` (Kafka: ``kafka.labels_topic``) feeds the delayed labels
    of the models with ``labels:`` (flows/labels.py).

    ``ok_findings``: write ok findings too (None: ``engine.ok_findings`` of the config).
    ``shards``: state shards per model (None: ``engine.shards``, 1 for ``auto``; the
    runner resolves ``auto`` for a cluster, :func:`flows.runner.resolve_shards`).
    """
    plans = plan_models(config, profiles)
    by_model = {plan.config.name: plan for plan in plans}
    decoder = Decoder(
        models=frozenset(by_model), max_future=config.events.max_future, embeddings=config.embedding_fields(),
        ts_units=ts_units(config),
    )
    if now is not None:
        decoder = Decoder(
            models=decoder.models, max_future=decoder.max_future, now=now, embeddings=decoder.embeddings,
            ts_units=decoder.ts_units,
        )
    metrics.configure(config)
    flow = Dataflow(flow_id)
    # Items travel as batches of messages: decoding and window counting are column-wise
    # (drift/batch/, drift/cohort_arrays.py, flows/shard_windows.py).
    raw = op.map("as_batch", op.input("read_inference", flow, source), as_batch(to_raw))
    skew_plans = value_skew_plans(plans)
    fresh_plans = freshness_plans(plans)
    # Feature events, for the value-skew join (flows/value_skew.py) and freshness (flows/freshness.py).
    if skew_plans or fresh_plans:
        raw, feature_events, feature_dead = split_feature_events(
            flow, raw, config.kafka.feature_topic, feature_source, as_batch(to_raw), config.events.max_future, now,
        )
    labelled = label_plans(config)
    # Label events (delayed ground truth), for the models with labels: (flows/labels.py).
    if labelled:
        raw = attach_label_messages(flow, raw, config.kafka.labels_topic, label_source, as_batch(to_raw))
    per_event = {p.model.name for p in skew_plans} | {p.model.name for p in fresh_plans}
    decode = batch_decoder(config, plans, decoder, per_event, by_model=True)
    if labelled:  # label messages set aside in a batch are decoded with it (flows/labels.py)
        decode = with_labels(decode, label_decoder(config, now))
    decoded = op.map("decode_inference", raw, decode)
    op.inspect("count_events", decoded, lambda _s, batch: _count_batch(batch))
    dead = [op.flat_map("dead_inference", decoded, lambda batch: batch.dead)]
    events = cast(Stream[InferenceEvent], op.flat_map("per_event_inference", decoded, lambda batch: batch.events))

    if shards is None:
        shards = config.engine.shards if isinstance(config.engine.shards, int) else 1
    rollups = {model.name: [tuple(model.rollup_labels(r)) for r in model.rollups]
               for model in config.models if model.rollups}
    keyed_rows = op.flat_map("key_rows_by_shard", decoded, as_shards(shards, rollups))
    summarised = op.stateful_batch(
        STEP_ID, keyed_rows, shard_logic(shard_specs(plans, config), now, copies=durable),
    )
    closed = op.filter_map_value("closed_windows", summarised, lambda o: o[1] if o[0] == "closed" else None)
    dead.append(op.filter_map("late_inference", op.key_rm("unkey_windows", summarised),
                              lambda o: o[1] if o[0] == "late" else None))

    # Each cohort window's event count reaches the ticket store before its
    # findings are scored, so a ticket always knows its cohort's traffic; the
    # model's total (for the share) is summed from the store when read.
    recorder = TicketRecorder(lambda: open_store(config), config)
    closed = op.flat_map_batch("record_traffic", closed, recorder.traffic)

    seeded = {
        plan.config.name: load_seasonal(
            config.resolve(config.baselines.dir), plan.config.name, plan.profile, plan.config.baseline,
        )
        for plan in plans if plan.config.baseline.seasonality != "none"
    }
    # Scored per shard: healthy cohorts are found by array expressions and only the others
    # become Finding objects; the policy state of a cohort lives with its shard (flows/scoring.py).
    ok = config.engine.ok_findings if ok_findings is None else ok_findings
    scored = op.key_rm("unkey_scores", op.stateful_map(
        "score_windows", closed, scorer(config, by_model, seeded, ok, shards)))
    findings = op.flat_map("window_findings", scored, lambda s: s.findings)
    decisions = op.flat_map("window_decisions", scored, lambda s: s.decisions)
    extra: list[Stream[Finding]] = []
    if skew_plans or fresh_plans:
        dead.append(feature_dead)
        count_feature_events(feature_events, skew_plans, [p.detector.config for p in fresh_plans])
        if outputs.feature_events is not None:
            op.output("write_feature_events", feature_events, outputs.feature_events)
    if skew_plans:
        extra.append(value_skew_findings(skew_plans, events, feature_events, cohort_of, now))
    if fresh_plans:
        extra.append(freshness_findings(fresh_plans, events, feature_events, now))
    canaries = canary_plans(plans)
    verdicts: list[Stream[Finding]] = []
    if canaries:
        # Routes of one cohort compared window by window (flows/canary.py); halts also go to their own sink.
        verdicts.append(canary_findings(canaries, closed))
    if labelled:
        judged = label_streams(labelled, decoded, now, copies=durable)
        extra.append(judged.findings)
        if outputs.quality is not None:
            op.output("write_quality", judged.quality, outputs.quality)
        if outputs.label_events is not None:
            op.output("write_label_events", judged.events, outputs.label_events)
        if compares_quality(canaries):
            # The routes' accuracy compared once their windows are judged on the labels.
            verdicts.append(canary_quality_findings(canaries, judged.quality))
    extra.extend(verdicts)
    if verdicts and outputs.halts is not None:
        compared = op.merge("merge_canary_verdicts", *verdicts) if len(verdicts) > 1 else verdicts[0]
        op.output("write_halts", halts_of(compared), outputs.halts)
    if extra:
        singles = op.merge("merge_stream_findings", *extra) if len(extra) > 1 else extra[0]

        def apply_policy(state: CohortPolicy | None, found: Finding) -> tuple[CohortPolicy | None, list[Decision]]:
            model = by_model[found.cohort.model].config
            return decide_cohort(state, [found], model, list(config.routing))

        keyed_singles = op.key_on("key_stream_findings_by_cohort", singles, lambda f: f.cohort.key)
        stream_decisions = op.key_rm("unkey_stream_decisions", op.stateful_flat_map(
            "apply_stream_policy", keyed_singles, apply_policy))
        decisions = op.merge("merge_decisions", decisions, stream_decisions)
        if not ok:
            singles = op.filter("stream_problems", singles, lambda f: f.severity is not Severity.OK)
        findings = op.merge("merge_findings", findings, singles)
    op.output("write_findings", findings, outputs.findings)
    if outputs.windows is not None:
        reports = op.flat_map("report_window", op.key_rm("unkey_reports", closed), window_reports)
        op.output("write_windows", reports, outputs.windows)

    tickets = op.flat_map_batch("open_tickets", decisions, recorder.record_batch)
    # Ticket events are published from the store's outbox: marked once every sink has them,
    # and those a crash left unmarked are published again at the start (flows/outbox.py).
    pending = op.input("read_unpublished_ticket_events", flow, PendingTicketEvents(lambda: open_store(config)))
    sink = outputs.tickets
    if isinstance(sink, DynamicSink):
        sink = PublishedSink(sink, lambda: open_store(config))
    op.output("write_tickets", op.merge("merge_unpublished_ticket_events", tickets, pending), sink)

    dead_letters = op.merge("dead_letters", *dead)
    op.inspect("count_dead_letters", dead_letters, lambda _s, letter: _count_dead_letter(letter))
    op.output("write_dlq", dead_letters, outputs.dlq)
    return flow
