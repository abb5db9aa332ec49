"""Seasonal baselines built from historical events with the online code (``drift baseline build --history``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Sequence


from drift.events import InferenceEvent
from drift.findings import Cohort
from drift.reference import ReferenceProfile
from drift.summary import WindowSummary, add_event, embedding_sample, empty_summary, flush
from drift.windowing import EventClock, window_at, window_index
from drift.baselines.calendar import _utc
from drift.baselines.scoring import score_window
from drift.baselines.slots import is_healthy
from drift.baselines.state import SeasonalBaseline

if TYPE_CHECKING:
    from detectors.base import Detector
    from drift.config import ModelConfig


@dataclass(slots=True)
class BuildStats:
    """What :func:`build_from_history` went through."""

    n_events: int = 0
    n_other_model: int = 0
    n_late: int = 0
    """Events for a window already closed (later than ``allowed_lateness``): skipped, as online."""
    n_windows: int = 0
    n_unhealthy: int = 0
    """Windows with at least one unhealthy feature (its other features still fed)."""


def seasonal_detectors(model_config: ModelConfig, reference: ReferenceProfile) -> list[Detector]:
    """The model's detectors that learn from and compare with the seasonal baseline: ``psi``,
    ``score``, ``quality`` and ``embedding`` (bound to ``reference.embeddings``; left out
    when the reference has none of its field, as a profile without embeddings loaded)."""
    from detectors.embedding import EmbeddingDetector  # detectors import drift: import late
    from detectors.registry import build as build_detector

    out: list[Detector] = []
    for name, settings in model_config.detector_configs():
        if name not in ("psi", "score", "quality", "embedding"):
            continue
        detector = build_detector(name, settings)
        if isinstance(detector, EmbeddingDetector):
            rows = reference.embeddings.get(detector.config.field)
            if rows is None:
                continue
            detector = detector.bind(rows)
        out.append(detector)
    return out


def build_from_history(
    events: Iterable[InferenceEvent],
    reference: ReferenceProfile,
    model_config: ModelConfig,
    cohort_fn: Callable[[InferenceEvent], Cohort],
    *,
    detectors: Sequence[Detector] | None = None,
    stats: BuildStats | None = None,
) -> dict[str, SeasonalBaseline]:
    """Seasonal baselines per cohort key from historical events, with the online code.

    Events are cut into the model's tumbling windows (aligned to the epoch, as the flow
    does), summarised with :mod:`drift.summary`, and each window is passed through
    :func:`score_window` in time order, so the healthy rule applies as it would have
    live. Windows close and events are late by the flow's rules (:mod:`drift.windowing`,
    per cohort, event time only); feed events in (roughly) time order, e.g. a history
    file sorted by ``ts``. ``detectors`` defaults to :func:`seasonal_detectors`.
    """
    if detectors is None:
        detectors = seasonal_detectors(model_config, reference)
    sampling = model_config.embedding_sampling() if any(d.name == "embedding" for d in detectors) else None
    stats = stats if stats is not None else BuildStats()
    size, lateness = model_config.window.size, model_config.window.allowed_lateness
    bounds = model_config.feature_bounds()
    open_windows: dict[str, dict[int, WindowSummary]] = {}
    clocks: dict[str, EventClock] = {}
    baselines: dict[str, SeasonalBaseline] = {}

    def close(key: str, index: int) -> None:
        summary = flush(open_windows[key].pop(index), reference)
        cohort = summary.cohort if summary.cohort is not None else Cohort(model_config.name)
        baseline = baselines.get(key)
        if baseline is None:
            baseline = baselines[key] = SeasonalBaseline.create(reference, model_config.baseline)
        findings = score_window(baseline, reference, detectors, cohort, window_at(index, size), summary)
        stats.n_windows += 1
        stats.n_unhealthy += not is_healthy(findings)

    for event in events:
        if event.model != model_config.name:
            stats.n_other_model += 1
            continue
        ts = _utc(event.ts)
        cohort = cohort_fn(event)
        clock = clocks.get(cohort.key)
        if clock is None:
            clock = clocks[cohort.key] = EventClock(size, lateness)
        closed_before = clock.closed_below
        if clock.observe(ts):
            stats.n_late += 1
            continue
        stats.n_events += 1
        windows = open_windows.setdefault(cohort.key, {})
        index = window_index(ts, size)
        summary = windows.get(index)
        if summary is None:
            summary = windows[index] = empty_summary(
                reference, cohort, bounds=bounds, track_event_ids=False,
                embedding=None if sampling is None else embedding_sample(sampling, cohort.key, window_at(index, size).start),
            )
        add_event(summary, event, reference)
        if clock.closed_below > closed_before:
            # The cohort's watermark passed the end of these windows: they are complete.
            for done in sorted(i for i in windows if i < clock.closed_below):
                close(cohort.key, done)
    for key in sorted(open_windows):
        for index in sorted(open_windows[key]):
            close(key, index)
    return baselines
