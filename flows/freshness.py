"""Freshness wiring: feature events + the model's inference times → (model, feature set) windows → ``freshness``.

For each model's ``freshness`` detector::

    feature events ─ select_freshness_<m> ──┐
                                            ├─ key_freshness_<m> ─ freshness_windows_<m> (stateful)
    inference events ─ freshness_ticks_<m> ─┘

One key per (model, feature set) holds a :class:`FreshnessState`: the open windows'
:class:`~detectors.freshness.FreshnessWindow` and the newest availability time of the
closed ones, so a window without feature events still reports the time since the last
one. A window exists when the model served traffic in it or feature events of the set
arrived in it; a stretch with neither (the model idle) is not reported.

Windows close like the cohort windows (Bytewax ``EventClock``), on the model's traffic:
once ``newest inference ts - allowed_lateness + system time since it`` passes their end,
and all at once at the end of the input. Feature events do not move this clock (their
topic may be read ahead of or behind the inference topic, and a stale set is precisely
one whose events stop), so a feature event ahead of the traffic waits in its window. A
feature event for a window already closed still counts as seen for later windows and is
counted in ``n_late_feature_events``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Optional, Union, cast

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulLogic

from detectors.freshness import FreshnessConfig, FreshnessDetector, FreshnessWindow
from drift import metrics
from flows.clock import engine_deadline
from drift.config import ModelConfig
from drift.events import InferenceEvent
from drift.feature_events import FeatureEvent
from drift.findings import Cohort, Finding, Window
from drift.windowing import closed_below, window_at, window_index
from flows.plans import ModelPlan



@dataclass(frozen=True)
class FreshnessPlan:
    """One model's freshness detector."""

    model: ModelConfig
    detector: FreshnessDetector
    step: str

    @property
    def key(self) -> str:
        return f"{self.model.name}\x1f{self.detector.config.feature_set}"


def freshness_plans(plans: list[ModelPlan]) -> list[FreshnessPlan]:
    """The freshness detectors of every model plan."""
    out = []
    for plan in plans:
        found = plan.freshness
        safe = "".join(ch if ch.isalnum() else "_" for ch in plan.config.name)
        for index, detector in enumerate(found):
            out.append(FreshnessPlan(plan.config, detector, safe if index == 0 else f"{safe}_{index}"))
    return out


Closed = tuple[int, FreshnessWindow, Optional[datetime]]
"""(window id, its stats, newest availability time before it)."""


@dataclass
class FreshnessState:
    """Event-time windows of one (model, feature set); pure, so tests drive it directly."""

    size: timedelta
    lateness: timedelta
    windows: dict[int, FreshnessWindow] = field(default_factory=dict)
    last_seen: datetime | None = None
    """Newest availability time of events in closed windows (and of late events)."""
    first_start: datetime | None = None
    closed_below: int | None = None
    """Every window id below this is closed."""
    max_time: datetime | None = None
    system_time_of_max: datetime | None = None
    n_late: int = 0

    def window_of(self, t: datetime) -> int:
        return window_index(t, self.size)

    def start_of(self, window_id: int) -> datetime:
        return window_at(window_id, self.size).start

    def _open(self, window_id: int) -> FreshnessWindow:
        stats = self.windows.get(window_id)
        if stats is None:
            stats = self.windows[window_id] = FreshnessWindow()
            start = self.start_of(window_id)
            if self.first_start is None or start < self.first_start:
                self.first_start = start
        return stats

    def _advance(self, t: datetime, now: datetime) -> None:
        if self.max_time is None or t > self.max_time:
            self.max_time, self.system_time_of_max = t, now

    def offer_feature(self, ts: datetime, available: datetime, now: datetime) -> list[Closed]:
        window_id = self.window_of(available)
        if self.closed_below is not None and window_id < self.closed_below:
            self.n_late += 1
            self.last_seen = available if self.last_seen is None else max(self.last_seen, available)
        else:
            self._open(window_id).add_feature(ts, available)
        # The model's traffic alone moves event time: feature events may be read ahead of it
        # (another topic, another batch), and a stale set is one whose events stop coming.
        return self.expire(now)

    def offer_inference(self, ts: datetime, now: datetime) -> list[Closed]:
        window_id = self.window_of(ts)
        if self.closed_below is None or window_id >= self.closed_below:
            self._open(window_id).n_inference_events += 1
        self._advance(ts, now)
        return self.expire(now)

    def watermark(self, now: datetime) -> datetime | None:
        if self.max_time is None or self.system_time_of_max is None:
            return None
        return self.max_time - self.lateness + max(timedelta(0), now - self.system_time_of_max)

    def expire(self, now: datetime) -> list[Closed]:
        mark = self.watermark(now)
        if mark is None:
            return []
        return self._close_below(closed_below(mark, self.size))

    def flush(self) -> list[Closed]:
        if not self.windows:
            return []
        return self._close_below(max(self.windows) + 1)

    def _close_below(self, below: int) -> list[Closed]:
        out: list[Closed] = []
        for window_id in sorted(w for w in self.windows if w < below):
            stats = self.windows.pop(window_id)
            out.append((window_id, stats, self.last_seen))
            if stats.newest is not None:
                self.last_seen = stats.newest if self.last_seen is None else max(self.last_seen, stats.newest)
        if self.closed_below is None or below > self.closed_below:
            self.closed_below = below
        return out

    def next_deadline(self) -> datetime | None:
        """System time at which the oldest open window closes without new events."""
        if not self.windows or self.max_time is None or self.system_time_of_max is None:
            return None
        end = self.start_of(min(self.windows)) + self.size
        return self.system_time_of_max + max(timedelta(0), end + self.lateness - self.max_time)


FreshnessInput = Union[FeatureEvent, datetime]


class FreshnessLogic(StatefulLogic[FreshnessInput, Finding, FreshnessState]):
    """A :class:`FreshnessState` as Bytewax stateful logic; the wall clock is injected."""

    def __init__(self, plan: FreshnessPlan, now: Callable[[], datetime], resume: FreshnessState | None) -> None:
        model = plan.model
        if resume is not None and resume.system_time_of_max is not None:
            # As RestartSafeEventClock: the downtime before a resume is not elapsed event time.
            resume.system_time_of_max = max(resume.system_time_of_max, now())
        self.state = resume if resume is not None else FreshnessState(model.window.size, model.window.allowed_lateness)
        self.plan = plan
        self.now = now

    def _emit(self, closed: list[Closed]) -> tuple[Iterable[Finding], bool]:
        out = []
        state, plan = self.state, self.plan
        for window_id, stats, before in closed:
            start = state.start_of(window_id)
            assert state.first_start is not None
            finding = plan.detector.score_window(
                stats, before, state.first_start, Cohort(plan.model.name), Window(start, start + state.size),
                n_late=state.n_late,
            )
            metrics.FINDINGS.labels(plan.model.name, finding.detector, finding.severity.value).inc()
            metrics.record_finding(finding.cohort, finding)
            out.append(finding)
        return out, StatefulLogic.RETAIN

    def on_item(self, value: FreshnessInput) -> tuple[Iterable[Finding], bool]:
        if isinstance(value, datetime):
            return self._emit(self.state.offer_inference(value, self.now()))
        available = value.materialized_at if value.materialized_at is not None else value.ts
        return self._emit(self.state.offer_feature(value.ts, available, self.now()))

    def on_notify(self) -> tuple[Iterable[Finding], bool]:
        return self._emit(self.state.expire(self.now()))

    def on_eof(self) -> tuple[Iterable[Finding], bool]:
        return self._emit(self.state.flush())

    def notify_at(self) -> Optional[datetime]:
        return engine_deadline(self.state.next_deadline(), self.now())

    def snapshot(self) -> FreshnessState:
        return copy.deepcopy(self.state)


def freshness_findings(
    plans: list[FreshnessPlan],
    events: Stream[InferenceEvent],
    features: Stream[FeatureEvent],
    now: Callable[[], datetime] | None = None,
) -> Stream[Finding]:
    """``freshness`` findings of every plan, one per closed (model, feature set) window."""
    clock = now if now is not None else (lambda: datetime.now(timezone.utc))
    out: list[Stream[Finding]] = []
    for plan in plans:
        out.append(_one_plan(plan, events, features, clock))
    return out[0] if len(out) == 1 else op.merge("freshness_findings", *out)


def _one_plan(
    plan: FreshnessPlan, events: Stream[InferenceEvent], features: Stream[FeatureEvent], now: Callable[[], datetime],
) -> Stream[Finding]:
    config: FreshnessConfig = plan.detector.config
    name, model_name, key = plan.step, plan.model.name, plan.key

    def tick(event: InferenceEvent) -> datetime | None:
        return event.ts if event.model == model_name else None

    mine = op.filter(f"select_freshness_{name}", features, lambda e: config.wants(e.feature_set, e.source))
    ticks = op.filter_map(f"freshness_ticks_{name}", events, tick)
    inputs = op.merge(f"freshness_inputs_{name}", cast(Stream[Any], mine), cast(Stream[Any], ticks))
    keyed = op.key_on(f"key_freshness_{name}", inputs, lambda _item: key)
    found = op.stateful(f"freshness_windows_{name}", keyed, lambda resume: FreshnessLogic(plan, now, resume))
    return op.key_rm(f"unkey_freshness_{name}", found)
