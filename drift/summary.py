"""Window summaries: per-feature bin counts of one cohort in one window.

A summary is built from the reference profile's bins, so it is small and fixed
in size whatever the traffic: numeric values are counted into the reference's
quantile bins, categories into the reference's category bins plus ``unseen``.

Values are buffered and binned in batches with ``numpy.searchsorted`` (one call
per feature per :data:`FLUSH_EVERY` events) so the per-event cost is a list
append. ``merge`` is associative and commutative, and a summary built from
``a + b`` equals ``merge(summary(a), summary(b))``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

import numpy as np
import numpy.typing as npt

from drift.findings import Cohort
from drift.events import FeatureValue, InferenceEvent, category_text
from drift.reference import CategoricalProfile, NumericProfile, ReferenceProfile

FLUSH_EVERY = 512
MAX_EXAMPLES = 5
"""Unseen categories and wrong-typed values kept as evidence, per feature."""


@dataclass(slots=True)
class FeatureCounts:
    """Counts of one feature in one window."""

    counts: npt.NDArray[np.int64]
    n_null: int = 0
    """Explicit ``null`` values."""
    n_missing: int = 0
    """Events without the field at all."""
    n_wrong_type: int = 0
    """A string where a number is expected, or a container."""
    examples: list[str] = field(default_factory=list)
    pending: list[float | str] = field(default_factory=list)

    @property
    def n_values(self) -> int:
        return int(self.counts.sum()) + len(self.pending)


@dataclass(slots=True)
class WindowSummary:
    """Everything detectors need from one cohort window."""

    model: str
    cohort: Cohort | None = None
    n_events: int = 0
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    features: dict[str, FeatureCounts] = field(default_factory=dict)


def empty_summary(profile: ReferenceProfile, cohort: Cohort | None = None) -> WindowSummary:
    """A summary with zero counts on every profiled feature's bins."""
    return WindowSummary(
        model=profile.model,
        cohort=cohort,
        features={
            name: FeatureCounts(counts=np.zeros(p.n_bins, dtype=np.int64))
            for name, p in profile.features.items()
        },
    )


def _is_number(value: FeatureValue) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def add_event(summary: WindowSummary, event: InferenceEvent, profile: ReferenceProfile) -> WindowSummary:
    """Count one event into ``summary`` (in place) and return it."""
    summary.n_events += 1
    if summary.first_ts is None or event.ts < summary.first_ts:
        summary.first_ts = event.ts
    if summary.last_ts is None or event.ts > summary.last_ts:
        summary.last_ts = event.ts
    features = event.features
    for name, counts in summary.features.items():
        if name not in features:
            counts.n_missing += 1
            continue
        value = features[name]
        if value is None:
            counts.n_null += 1
        elif isinstance(profile.features[name], NumericProfile):
            if _is_number(value) and math.isfinite(value):  # type: ignore[arg-type]
                counts.pending.append(float(value))
            else:
                counts.n_wrong_type += 1
                example = repr(value)[:64]
                if len(counts.examples) < MAX_EXAMPLES and example not in counts.examples:
                    counts.examples.append(example)
        else:
            counts.pending.append(category_text(value))
        if len(counts.pending) >= FLUSH_EVERY:
            _flush_feature(counts, profile.features[name])
    return summary


def _flush_feature(counts: FeatureCounts, profile: NumericProfile | CategoricalProfile) -> None:
    if not counts.pending:
        return
    if isinstance(profile, NumericProfile):
        values = np.asarray(counts.pending, dtype=np.float64)
        index = np.searchsorted(np.asarray(profile.edges, dtype=np.float64), values, side="right")
    else:
        lookup = _category_index(profile)
        unseen = len(profile.categories)
        index_list = []
        for value in counts.pending:
            position = lookup.get(value, unseen)  # type: ignore[arg-type]
            if position == unseen and len(counts.examples) < MAX_EXAMPLES:
                example = str(value)[:64]  # compared truncated, as stored, so a long value is kept once
                if example not in counts.examples:
                    counts.examples.append(example)
            index_list.append(position)
        index = np.asarray(index_list, dtype=np.int64)
    counts.counts += np.bincount(index, minlength=counts.counts.size)
    counts.pending.clear()


_INDEX_CACHE: dict[int, tuple[CategoricalProfile, dict[str, int]]] = {}


def _category_index(profile: CategoricalProfile) -> dict[str, int]:
    cached = _INDEX_CACHE.get(id(profile))
    if cached is None or cached[0] is not profile:
        cached = (profile, {c: i for i, c in enumerate(profile.categories)})
        _INDEX_CACHE[id(profile)] = cached
    return cached[1]


def flush(summary: WindowSummary, profile: ReferenceProfile) -> WindowSummary:
    """Bin every buffered value; afterwards ``pending`` is empty everywhere."""
    for name, counts in summary.features.items():
        _flush_feature(counts, profile.features[name])
    return summary


def merge(a: WindowSummary, b: WindowSummary, profile: ReferenceProfile) -> WindowSummary:
    """A new summary of both windows' events (neither input is changed)."""
    left = flush(copy.deepcopy(a), profile)
    right = flush(copy.deepcopy(b), profile)
    left.n_events += right.n_events
    stamps = [t for t in (left.first_ts, right.first_ts) if t is not None]
    left.first_ts = min(stamps) if stamps else None
    stamps = [t for t in (left.last_ts, right.last_ts) if t is not None]
    left.last_ts = max(stamps) if stamps else None
    for name, counts in left.features.items():
        other = right.features[name]
        counts.counts = counts.counts + other.counts
        counts.n_null += other.n_null
        counts.n_missing += other.n_missing
        counts.n_wrong_type += other.n_wrong_type
        for example in other.examples:
            if len(counts.examples) < MAX_EXAMPLES and example not in counts.examples:
                counts.examples.append(example)
    return left


def summarise(events: list[InferenceEvent], profile: ReferenceProfile) -> WindowSummary:
    """The flushed summary of a list of events (convenience for tests and backtests)."""
    summary = empty_summary(profile)
    for event in events:
        add_event(summary, event, profile)
    return flush(summary, profile)


def feature_counts(summary: WindowSummary) -> Mapping[str, npt.NDArray[np.int64]]:
    """Bin counts per feature of a flushed summary."""
    return {name: counts.counts for name, counts in summary.features.items()}
