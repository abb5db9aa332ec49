"""Window summaries: per-feature bin counts of one cohort in one window.

A summary is built from the reference profile's bins, so it is small and fixed
in size whatever the traffic: numeric values are counted into the reference's
quantile bins, categories into the reference's category bins plus ``unseen``.

Values are buffered and binned in batches with ``numpy.searchsorted`` (one call
per feature per :data:`FLUSH_EVERY` events) so the per-event cost is a list
append. ``merge`` is associative and commutative, and a summary built from
``a + b`` equals ``merge(summary(a), summary(b))``.

Data-quality counts ride along: nulls, missing fields, wrong types, numeric values
outside the feature's :class:`Bounds` (counted in the same batched flush), and
event ids already seen in the window (a set capped at :data:`MAX_EVENT_IDS`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Mapping

import numpy as np
import numpy.typing as npt

from drift.findings import Cohort
from drift.events import FeatureValue, InferenceEvent, category_text
from drift.reference import CategoricalProfile, NumericProfile, ReferenceProfile

FLUSH_EVERY = 512
MAX_EXAMPLES = 5
"""Unseen categories and wrong-typed values kept as evidence, per feature."""
MAX_EVENT_IDS = 100_000
"""Distinct event ids remembered per cohort window for the duplicate check.

About 6 MB of short ids: enough for a 5-minute window at 300 events/s. Past the
cap new ids are no longer remembered, so duplicates among them go uncounted and
the count becomes a lower bound (``event_ids_capped`` says so).
"""

BoundsSource = Literal["config", "reference"]


@dataclass(frozen=True, slots=True)
class Bounds:
    """The allowed closed interval ``[low, high]`` of a numeric feature.

    ``source`` says where it came from: the YAML (``range`` or ``min``/``max``;
    an open side is infinite) or, when the YAML sets none, the reference's
    minimum and maximum.
    """

    low: float
    high: float
    source: BoundsSource


def resolve_bounds(
    profile: ReferenceProfile,
    configured: Mapping[str, tuple[float | None, float | None]] | None = None,
) -> dict[str, Bounds]:
    """Bounds of every numeric feature: configured ones, else the reference's [low, high].

    >>> from drift.reference import numeric_profile
    >>> p = ReferenceProfile("m", {"x": numeric_profile([1.0, 5.0], 2)}, 2, "t", datetime(2026, 1, 1))
    >>> resolve_bounds(p)["x"], resolve_bounds(p, {"x": (0.0, None)})["x"]
    (Bounds(low=1.0, high=5.0, source='reference'), Bounds(low=0.0, high=inf, source='config'))
    """
    configured = configured or {}
    out: dict[str, Bounds] = {}
    for name, feature in profile.features.items():
        if not isinstance(feature, NumericProfile):
            continue
        low, high = configured.get(name, (None, None))
        if low is None and high is None:
            out[name] = Bounds(feature.low, feature.high, "reference")
        else:
            out[name] = Bounds(
                -math.inf if low is None else float(low), math.inf if high is None else float(high), "config",
            )
    return out


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
    bounds: Bounds | None = None
    """Numeric features: the interval ``n_out_of_range`` is counted against."""
    n_out_of_range: int = 0
    """Numeric values outside ``bounds`` (counted when pending values are flushed)."""
    out_of_range_examples: list[str] = field(default_factory=list)

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
    event_ids: set[str] | None = None
    """Distinct event ids seen (at most :data:`MAX_EVENT_IDS`); None when not tracked."""
    n_event_id: int = 0
    """Events that carry an ``event_id``."""
    n_duplicate_event_id: int = 0
    """Events whose ``event_id`` was already seen in this window."""
    event_ids_capped: bool = False
    """The id set hit its cap, so ``n_duplicate_event_id`` is a lower bound."""
    duplicate_examples: list[str] = field(default_factory=list)


def empty_summary(
    profile: ReferenceProfile,
    cohort: Cohort | None = None,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    track_event_ids: bool = True,
) -> WindowSummary:
    """A summary with zero counts on every profiled feature's bins.

    ``bounds`` are the configured (low, high) of numeric features (see
    :func:`resolve_bounds`); ``track_event_ids`` keeps the id set for the
    duplicate check, off when no detector needs it so windows stay small.
    """
    resolved = resolve_bounds(profile, bounds)
    return WindowSummary(
        model=profile.model,
        cohort=cohort,
        features={
            name: FeatureCounts(counts=np.zeros(p.n_bins, dtype=np.int64), bounds=resolved.get(name))
            for name, p in profile.features.items()
        },
        event_ids=set() if track_event_ids else None,
    )


def _add_example(examples: list[str], example: str) -> None:
    if len(examples) < MAX_EXAMPLES and example not in examples:
        examples.append(example)


def _is_number(value: FeatureValue) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def add_event(summary: WindowSummary, event: InferenceEvent, profile: ReferenceProfile) -> WindowSummary:
    """Count one event into ``summary`` (in place) and return it."""
    summary.n_events += 1
    if summary.first_ts is None or event.ts < summary.first_ts:
        summary.first_ts = event.ts
    if summary.last_ts is None or event.ts > summary.last_ts:
        summary.last_ts = event.ts
    if summary.event_ids is not None and event.event_id is not None:
        summary.n_event_id += 1
        if event.event_id in summary.event_ids:
            summary.n_duplicate_event_id += 1
            _add_example(summary.duplicate_examples, event.event_id[:64])
        elif len(summary.event_ids) < MAX_EVENT_IDS:
            summary.event_ids.add(event.event_id)
        else:
            summary.event_ids_capped = True
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
                # distinct, like unseen categories and merge, so summary(a + b) == merge
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
        if counts.bounds is not None:
            _count_out_of_range(counts, values, counts.bounds)
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


def _count_out_of_range(counts: FeatureCounts, values: npt.NDArray[np.float64], bounds: Bounds) -> None:
    outside = values[(values < bounds.low) | (values > bounds.high)]
    if outside.size == 0:
        return
    counts.n_out_of_range += int(outside.size)
    if len(counts.out_of_range_examples) >= MAX_EXAMPLES:
        return
    # The first distinct values in arrival order, as one event at a time would keep them;
    # + 0.0 turns -0.0 into 0.0, which np.unique already treats as equal.
    outside = outside + 0.0
    _, first = np.unique(outside, return_index=True)
    for value in outside[np.sort(first)[: 2 * MAX_EXAMPLES]]:
        _add_example(counts.out_of_range_examples, repr(float(value))[:64])


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
        if counts.bounds != other.bounds:
            raise ValueError(f"cannot merge summaries of {name!r} with different bounds: {counts.bounds} and {other.bounds}")
        counts.n_out_of_range += other.n_out_of_range
        for example in other.out_of_range_examples:
            _add_example(counts.out_of_range_examples, example)
    _merge_event_ids(left, right)
    return left


def _merge_event_ids(left: WindowSummary, right: WindowSummary) -> None:
    """Union the id sets; an id in both counts once more as a duplicate (right came later)."""
    if left.event_ids is None or right.event_ids is None:
        if left.event_ids is not None or right.event_ids is not None:
            raise ValueError("cannot merge a summary that tracks event ids with one that does not")
        return
    common = left.event_ids & right.event_ids
    left.n_event_id += right.n_event_id
    # Each id of the right window that the left one already had repeats once more at
    # its first appearance in the right; its later repeats are in right's own count.
    left.n_duplicate_event_id += right.n_duplicate_event_id + len(common)
    for example in sorted(common):
        _add_example(left.duplicate_examples, example[:64])
    for example in right.duplicate_examples:
        _add_example(left.duplicate_examples, example)
    extra = right.event_ids - left.event_ids
    room = MAX_EVENT_IDS - len(left.event_ids)
    if len(extra) > room:
        extra = set(sorted(extra)[: max(room, 0)])  # sorted: the same ids whatever the hash seed
        left.event_ids_capped = True
    left.event_ids |= extra
    left.event_ids_capped = left.event_ids_capped or right.event_ids_capped


def summarise(
    events: list[InferenceEvent],
    profile: ReferenceProfile,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    track_event_ids: bool = True,
) -> WindowSummary:
    """The flushed summary of a list of events (convenience for tests and backtests)."""
    summary = empty_summary(profile, bounds=bounds, track_event_ids=track_event_ids)
    for event in events:
        add_event(summary, event, profile)
    return flush(summary, profile)


def feature_counts(summary: WindowSummary) -> Mapping[str, npt.NDArray[np.int64]]:
    """Bin counts per feature of a flushed summary."""
    return {name: counts.counts for name, counts in summary.features.items()}
