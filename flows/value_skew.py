"""Value-skew wiring: served values ⋈ offline feature events → cohort windows → ``skew.value`` findings.

For each model whose ``skew`` detector has ``values:``::

    inference events ─ lookup_<m> ─┐
                                   ├─ key_by_entity_shard_<m> ─ join_offline_<m> ─ key_outcome_by_cohort_<m>
    feature events ─ select_<m> ───┘      ─ summarise_value_skew_<m> (tumbling, like the cohort windows)
                                          ─ detect_value_skew_<m>

The join (:class:`drift.join.JoinState`) is keyed by ``(model, feature_set, entity shard)``:
Bytewax keeps one state per key and one key cannot evict another, so the entities of a
feature set are spread over :data:`JOIN_SHARDS` shards, each an LRU map holding at most
``ceil(max_entities / JOIN_SHARDS)`` entities. The state of the whole job (and so of any
worker) is therefore bounded by about ``max_entities`` entities per model.

Join outcomes are windowed on their inference event's ``ts`` with the model's window size;
they wait ``allowed_lateness + grace`` (a lookup may wait ``grace`` for its offline value).
An outcome later than that is counted in ``drift_join_late_total`` and left out.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Optional, Union, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulLogic
from bytewax.operators.windowing import TumblingWindower, fold_window

from detectors.freshness import FreshnessConfig
from detectors.skew import SkewConfig, SkewDetector, ValuesConfig
from flows.clock import RestartSafeEventClock, engine_deadline
from drift import metrics
from drift.config import Config, ModelConfig
from drift.events import DeadLetter, InferenceEvent, RawMessage
from drift.feature_events import FeatureDecoder, FeatureEvent, is_feature_message
from drift.findings import Cohort, Finding
from drift.windowing import EPOCH, window_at
from flows.plans import ModelPlan
from drift.join import (
    JoinOutcome,
    JoinSnapshot,
    JoinState,
    Lookup,
    ValueSkewSummary,
    add_outcome,
    empty_value_summary,
    merge_value_summaries,
)


JOIN_SHARDS = 32
"""Join keys per model and feature set. Changing it starts the join state afresh."""

JoinInput = Union[Lookup, FeatureEvent]


@dataclass(frozen=True)
class ValueSkewPlan:
    """One model's value-skew join: its config, the skew detector and the compared features."""

    model: ModelConfig
    detector: SkewDetector
    values: ValuesConfig
    features: tuple[str, ...]
    step: str
    """Suffix of the step ids (model name, and the detector's position if several)."""

    @property
    def shard_capacity(self) -> int:
        return max(1, math.ceil(self.values.max_entities / JOIN_SHARDS))


def value_skew_plans(plans: list[ModelPlan]) -> list[ValueSkewPlan]:
    """The value-skew joins the config asks for (none: the flow reads no feature events)."""
    out = []
    for plan in plans:
        found = [d for d in plan.detectors if isinstance(d, SkewDetector) and d.config.values is not None]
        for index, detector in enumerate(found):
            values = detector.config.values
            assert values is not None
            safe = "".join(ch if ch.isalnum() else "_" for ch in plan.config.name)
            out.append(ValueSkewPlan(
                plan.config, detector, values, tuple(detector.value_features(list(plan.config.features))),
                safe if index == 0 else f"{safe}_{index}",
            ))
    return out


def shard_of(entity_id: str) -> int:
    """The join shard of an entity: CRC-32, the same in every process (unlike ``hash``).

    >>> shard_of("cust-42") == shard_of("cust-42") and 0 <= shard_of("cust-42") < JOIN_SHARDS
    True
    """
    return zlib.crc32(entity_id.encode("utf-8")) % JOIN_SHARDS


class JoinLogic(StatefulLogic[JoinInput, JoinOutcome, JoinSnapshot]):
    """A :class:`JoinState` as Bytewax stateful logic; the wall clock is injected."""

    def __init__(self, state: JoinState, now: Callable[[], datetime]) -> None:
        self.state = state
        self.now = now
        # Evictions counted so far (a resumed state's count was reported before the restart).
        self._evicted = (self.state.n_evicted_cap, self.state.n_evicted_ttl)

    def _count_evictions(self) -> None:
        cap, ttl = self.state.n_evicted_cap, self.state.n_evicted_ttl
        if (cap, ttl) != self._evicted:
            if cap > self._evicted[0]:
                metrics.JOIN_EVICTIONS.labels(self.state.label, "cap").inc(cap - self._evicted[0])
            if ttl > self._evicted[1]:
                metrics.JOIN_EVICTIONS.labels(self.state.label, "ttl").inc(ttl - self._evicted[1])
            self._evicted = (cap, ttl)

    def _done(self, out: list[JoinOutcome]) -> tuple[Iterable[JoinOutcome], bool]:
        self._count_evictions()
        empty = not self.state.entities and not self.state.n_pending
        return out, StatefulLogic.DISCARD if empty else StatefulLogic.RETAIN

    def on_item(self, value: JoinInput) -> tuple[Iterable[JoinOutcome], bool]:
        if isinstance(value, Lookup):
            return self._done(self.state.offer_inference(value))
        return self._done(self.state.offer_feature(value.entity_id, value.ts, value.values))

    def on_notify(self) -> tuple[Iterable[JoinOutcome], bool]:
        return self._done(self.state.expire(self.now()))

    def on_eof(self) -> tuple[Iterable[JoinOutcome], bool]:
        # Nothing more arrives in this execution: waiting lookups are resolved with what is known.
        return self._done(self.state.flush())

    def notify_at(self) -> Optional[datetime]:
        return engine_deadline(self.state.next_deadline(), self.now())

    def snapshot(self) -> JoinSnapshot:
        return self.state.snapshot()


def _lookup(plan: ValueSkewPlan, cohort_of: Callable[[InferenceEvent, list[str]], Cohort],
            now: Callable[[], datetime]) -> Callable[[InferenceEvent], Lookup | None]:
    model = plan.model

    def make(event: InferenceEvent) -> Lookup | None:
        if event.model != model.name or not event.entity_id:
            return None
        served = tuple((f, event.features[f]) for f in plan.features if event.features.get(f) is not None)
        if not served:
            return None
        return Lookup(model.name, cohort_of(event, model.cohort), event.ts, event.entity_id, served, now())

    return make


def value_skew_findings(
    plans: list[ValueSkewPlan],
    events: Stream[InferenceEvent],
    features: Stream[FeatureEvent],
    cohort_of: Callable[[InferenceEvent, list[str]], Cohort],
    now: Callable[[], datetime] | None = None,
) -> Stream[Finding]:
    """``skew.value`` findings of every plan, one per compared feature and closed cohort window."""
    clock = now if now is not None else (lambda: datetime.now(timezone.utc))
    out: list[Stream[Finding]] = []
    for plan in plans:
        out.append(_one_model(plan, events, features, cohort_of, clock))
    return out[0] if len(out) == 1 else op.merge("value_skew_findings", *out)


def _one_model(
    plan: ValueSkewPlan, events: Stream[InferenceEvent], features: Stream[FeatureEvent],
    cohort_of: Callable[[InferenceEvent, list[str]], Cohort], now: Callable[[], datetime],
) -> Stream[Finding]:
    name, values, model = plan.step, plan.values, plan.model
    lookups = op.filter_map(f"lookup_{name}", events, _lookup(plan, cohort_of, now))
    offline = op.filter(
        f"select_feature_set_{name}", features,
        lambda e: e.source == "offline" and e.feature_set == values.feature_set,
    )
    inputs = op.merge(f"join_inputs_{name}", cast(Stream[Any], lookups), cast(Stream[Any], offline))
    keyed = op.key_on(f"key_by_entity_shard_{name}", inputs, lambda item: str(shard_of(item.entity_id)))

    def build(resume: JoinSnapshot | None) -> JoinLogic:
        state = JoinState(
            values.max_age, values.grace, plan.shard_capacity, label=values.feature_set, resume=resume,
        )
        return JoinLogic(state, now)

    joined = op.stateful(f"join_offline_{name}", keyed, build)
    by_cohort = op.key_on(
        f"key_outcome_by_cohort_{name}", op.key_rm(f"unkey_outcomes_{name}", joined),
        lambda outcome: outcome.lookup.cohort.key,
    )
    size = model.window.size
    tol = values.tolerance

    def folder(summary: ValueSkewSummary | None, outcome: JoinOutcome) -> ValueSkewSummary:
        if summary is None:
            summary = empty_value_summary(model.name, plan.features, outcome.lookup.cohort)
        return add_outcome(summary, outcome, tol.abs, tol.rel)

    def merger(a: ValueSkewSummary | None, b: ValueSkewSummary | None) -> ValueSkewSummary | None:
        if a is None or b is None:
            return a if b is None else b
        return merge_value_summaries(a, b)

    windows = fold_window(
        f"summarise_value_skew_{name}", by_cohort,
        RestartSafeEventClock(lambda o: o.lookup.ts, wait_for_system_duration=model.window.allowed_lateness + values.grace),
        TumblingWindower(length=size, align_to=EPOCH),
        builder=lambda: None, folder=folder, merger=merger,
    )
    op.inspect(f"count_late_outcomes_{name}", windows.late, lambda _s, _o: metrics.JOIN_LATE.labels(model.name).inc())

    def detect(key_item: tuple[str, tuple[int, ValueSkewSummary | None]]) -> list[Finding]:
        _, (window_id, summary) = key_item
        assert summary is not None  # a window opens on its first outcome
        cohort = summary.cohort if summary.cohort is not None else Cohort(model.name)
        found = plan.detector.score_values(summary, cohort, window_at(window_id, size))
        for finding in found:
            metrics.FINDINGS.labels(model.name, finding.detector, finding.severity.value).inc()
            metrics.record_finding(finding.cohort, finding)
        return found

    return op.flat_map(f"detect_value_skew_{name}", windows.down, detect)


def split_feature_events(
    flow: Dataflow,
    raw: Stream[list[RawMessage]],
    feature_topic: str,
    feature_source: Source[Any] | None,
    as_batch: Callable[[Any], list[RawMessage]],
    max_future: timedelta,
    now: Callable[[], datetime] | None,
) -> tuple[Stream[list[RawMessage]], Stream[FeatureEvent], Stream[DeadLetter]]:
    """(batches of inference messages, decoded feature events, their dead letters).

    ``raw`` carries batches of messages; ``feature_source`` is a second input (Kafka:
    ``kafka.feature_topic``, its items turned into batches by ``as_batch``); files carry
    both kinds in one JSONL, told apart by :func:`drift.feature_events.is_feature_message`.
    """
    if feature_source is not None:
        extra = op.map("as_feature_batch", op.input("read_features", flow, feature_source), as_batch)
        raw = op.merge("merge_inputs", raw, extra)

    def split(batch: list[RawMessage]) -> tuple[list[RawMessage], list[RawMessage]]:
        kinds = [is_feature_message(m, feature_topic) for m in batch]
        return [m for m, k in zip(batch, kinds) if not k], [m for m, k in zip(batch, kinds) if k]

    parts = op.map("split_feature_messages", raw, split)
    inference = op.filter_map("inference_messages", parts, lambda p: p[0] or None)
    messages = op.flat_map("feature_messages", parts, lambda p: p[1])
    decoder = FeatureDecoder(max_future) if now is None else FeatureDecoder(max_future, now)
    decoded = op.map("decode_feature", messages, decoder)
    branch = op.branch("split_decoded_features", decoded, lambda item: isinstance(item, FeatureEvent))
    return (
        inference, cast(Stream[FeatureEvent], branch.trues),
        cast(Stream[DeadLetter], branch.falses),
    )


def count_feature_events(
    features: Stream[FeatureEvent], plans: list[ValueSkewPlan], freshness: list[FreshnessConfig],
) -> None:
    """``drift_events_in_total{step="decode_feature"}``: ``ok`` when value skew or freshness uses the event."""
    wanted = {p.values.feature_set for p in plans}

    def used(e: FeatureEvent) -> bool:
        return (e.source == "offline" and e.feature_set in wanted) or any(
            c.wants(e.feature_set, e.source) for c in freshness
        )

    op.inspect(
        "count_feature_events", features,
        lambda _s, e: metrics.EVENTS_IN.labels("decode_feature", "ok" if used(e) else "ignored").inc(),
    )


def needs_feature_events(config: Config) -> bool:
    """Whether the flow reads feature events: some model has a ``skew`` detector with ``values:``
    or a ``freshness`` detector."""
    return any(
        (isinstance(settings, SkewConfig) and settings.values is not None) or isinstance(settings, FreshnessConfig)
        for model in config.models for _, settings in model.detector_configs()
    )
