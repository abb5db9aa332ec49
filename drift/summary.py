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
event ids already seen in the window (a set capped at :data:`MAX_EVENT_IDS`), feature
names the reference never had (capped at :data:`MAX_UNKNOWN_FIELDS`), and the distinct
unseen categories of each categorical feature (capped at :data:`MAX_UNSEEN_DISTINCT`).

Prediction fields that a ``score`` detector monitors (``prediction.score``,
``prediction.label``) are counted like features, into the bins of their reference
profile (``ReferenceProfile.predictions``), with the sum and sum of squares of the
numbers for the mean.

A model with an ``embedding`` detector also keeps, per cohort window, a bounded
uniform sample of the decoded embedding vectors (:class:`EmbeddingSample`, a
:class:`drift.backend.Reservoir` of at most ``sample`` rows with their event ids),
fed in batches like the features and merged with ``Reservoir.merge``.
"""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Mapping

import numpy as np
import numpy.typing as npt

from drift.backend import Reservoir
from drift.findings import Cohort
from drift.categories import category_text
from drift.events import FeatureValue, InferenceEvent
from drift.moments import EMPTY, Moments
from drift.moments import merge as merge_moments
from drift.moments import of as moments_of
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

MAX_UNKNOWN_FIELDS = 100
"""Feature names outside the reference remembered per cohort window (schema check)."""
MAX_UNSEEN_DISTINCT = 10_000
"""Distinct unseen categories remembered per feature and window (cardinality check).

Past the cap the distinct count is a lower bound (``unseen_capped`` says so).
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
    moments: Moments = EMPTY
    """Numeric: count, mean and squared deviations of the binned values (:mod:`drift.moments`),
    merged slice by slice so a mean and a variance hold at any magnitude."""
    unseen: set[str] = field(default_factory=set)
    """Categorical: distinct values in the ``unseen`` bin, at most :data:`MAX_UNSEEN_DISTINCT`."""
    unseen_capped: bool = False
    """``unseen`` hit its cap: more distinct unseen values came than it holds."""

    def __getstate__(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]

    def __setstate__(self, state: list[Any]) -> None:
        names = [f.name for f in fields(self)]
        if len(state) == len(names) + 1:
            # A recovery snapshot of the previous version: a sum and a sum of squares
            # where ``moments`` is now (the variance of large values may have cancelled).
            *head, total, total_sq, unseen, capped = state
            n = int(np.asarray(head[0]).sum())
            moments = EMPTY if n == 0 else Moments(n, total / n, max(total_sq - total * total / n, 0.0))
            state = [*head, moments, unseen, capped]
        for name, value in zip(names, state):
            object.__setattr__(self, name, value)

    @property
    def n_values(self) -> int:
        return int(self.counts.sum()) + len(self.pending)


@dataclass(frozen=True, slots=True)
class EmbeddingSampling:
    """How a model samples embeddings per cohort window (from its ``embedding`` detectors).

    ``capacity`` is the largest ``sample`` of the model's embedding detectors (each
    detector subsamples to its own), ``seed`` the first detector's.
    """

    field: str
    dim: int
    capacity: int
    seed: int


def reservoir_rng(seed: int, cohort_key: str, window_start: datetime) -> np.random.Generator:
    """The generator of one cohort window's reservoir: seeded, stable across processes.

    The cohort key and window start are hashed with SHA-256 (not ``hash()``, which is
    salted per process), so a restarted or rescaled flow samples the same rows.
    """
    digest = hashlib.sha256(f"reservoir\x1f{cohort_key}\x1f{window_start.isoformat()}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


@dataclass(slots=True)
class EmbeddingSample:
    """A cohort window's embeddings: a reservoir plus rows waiting to be added in one batch.

    Picklable (numpy arrays, a list, a numpy ``Generator``), so it snapshots with the summary.
    """

    field_name: str
    """The event field sampled."""
    reservoir: Reservoir
    pending: list[npt.NDArray[np.float32]] = field(default_factory=list)
    pending_ids: list[str | None] = field(default_factory=list)
    n_missing: int = 0
    """Events of the window without an embedding (not sampled)."""

    @property
    def n_seen(self) -> int:
        """Embeddings offered to the sample (the reservoir keeps at most its capacity)."""
        return self.reservoir.n_seen + len(self.pending)

    def flush(self) -> None:
        if self.pending:
            self.reservoir.add(np.stack(self.pending), self.pending_ids)
            self.pending.clear()
            self.pending_ids.clear()


def embedding_sample(sampling: EmbeddingSampling, cohort_key: str, window_start: datetime) -> EmbeddingSample:
    """An empty sample for one cohort window, its reservoir seeded by :func:`reservoir_rng`."""
    rng = reservoir_rng(sampling.seed, cohort_key, window_start)
    return EmbeddingSample(sampling.field, Reservoir(sampling.capacity, sampling.dim, rng))


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
    predictions: dict[str, FeatureCounts] = field(default_factory=dict)
    """Counts of each profiled prediction field, keyed by its path (``prediction.score``)."""
    unknown_fields: set[str] = field(default_factory=set)
    """Feature names in events that the reference does not profile (at most :data:`MAX_UNKNOWN_FIELDS`)."""
    unknown_fields_capped: bool = False
    schema_before: Schema | None = None
    """The cohort's schema in its previous window, set by the flow's ``track_schema`` step;
    None for a cohort's first window (or outside the flow): compared with the reference then."""
    embedding: EmbeddingSample | None = None
    """The window's embedding sample; None for a model without an ``embedding`` detector."""


@dataclass(frozen=True, slots=True)
class Schema:
    """Which fields a cohort window had, as far as the schema check cares.

    ``unknown``: feature names the reference does not have (bounded like
    ``WindowSummary.unknown_fields``); ``vanished``: reference features missing
    from every event of the window.
    """

    unknown: frozenset[str] = frozenset()
    vanished: frozenset[str] = frozenset()


def schema_of(summary: WindowSummary) -> Schema:
    """The schema of a window; a window without events keeps no fields vanished.

    >>> s = WindowSummary("m", n_events=2, unknown_fields={"zip"},
    ...                   features={"age": FeatureCounts(np.zeros(2, np.int64), n_missing=2)})
    >>> schema_of(s)
    Schema(unknown=frozenset({'zip'}), vanished=frozenset({'age'}))
    """
    vanished = frozenset(
        name for name, counts in summary.features.items()
        if summary.n_events > 0 and counts.n_missing == summary.n_events
    )
    return Schema(frozenset(summary.unknown_fields), vanished)


@dataclass(frozen=True, slots=True)
class SchemaState:
    """The last schema seen of one cohort: the flow keeps one per cohort, keyed (snapshot-safe)."""

    window_start: datetime
    schema: Schema


def track_schema(state: SchemaState | None, window_start: datetime, summary: WindowSummary) -> SchemaState:
    """Give ``summary`` the cohort's previous schema (``schema_before``); return the new state.

    The state moves only forward in time: a window closing out of order is compared
    with the latest schema seen but does not replace it. The state is at most
    :data:`MAX_UNKNOWN_FIELDS` names plus the reference's features.
    """
    summary.schema_before = None if state is None else state.schema
    if state is not None and window_start < state.window_start:
        return state
    return SchemaState(window_start, schema_of(summary))


def empty_summary(
    profile: ReferenceProfile,
    cohort: Cohort | None = None,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    track_event_ids: bool = True,
    embedding: EmbeddingSample | None = None,
) -> WindowSummary:
    """A summary with zero counts on every profiled feature's bins.

    ``bounds`` are the configured (low, high) of numeric features (see
    :func:`resolve_bounds`); ``track_event_ids`` keeps the id set for the
    duplicate check, off when no detector needs it so windows stay small;
    ``embedding`` is the window's empty embedding sample (:func:`embedding_sample`).
    """
    resolved = resolve_bounds(profile, bounds)
    return WindowSummary(
        embedding=embedding,
        model=profile.model,
        cohort=cohort,
        features={
            name: FeatureCounts(counts=np.zeros(p.n_bins, dtype=np.int64), bounds=resolved.get(name))
            for name, p in profile.features.items()
        },
        event_ids=set() if track_event_ids else None,
        predictions={
            path: FeatureCounts(counts=np.zeros(p.n_bins, dtype=np.int64)) for path, p in profile.predictions.items()
        },
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
    n_known = 0
    for name, counts in summary.features.items():
        if name not in features:
            counts.n_missing += 1
            continue
        n_known += 1
        _add_value(counts, features[name], profile.features[name])
    if len(features) > n_known:  # the common event has only profiled fields: no scan
        _note_unknown_fields(summary, features)
    for path, counts in summary.predictions.items():
        value = _field_at(event.prediction, path)
        if value is _ABSENT:
            counts.n_missing += 1
        else:
            _add_value(counts, value, profile.predictions[path])
    if summary.embedding is not None:
        _add_embedding(summary.embedding, event)
    return summary


def _add_embedding(sample: EmbeddingSample, event: InferenceEvent) -> None:
    vector = event.embedding
    # The decoder checked dtype and length; anything else (None, or a raw value from
    # an event decoded without the model's embedding spec) counts as missing.
    if not isinstance(vector, np.ndarray) or vector.shape != (sample.reservoir.dim,):
        sample.n_missing += 1
        return
    sample.pending.append(vector)
    sample.pending_ids.append(event.event_id)
    if len(sample.pending) >= FLUSH_EVERY:
        sample.flush()


def _note_unknown_fields(summary: WindowSummary, features: Mapping[str, object]) -> None:
    for name in features:
        if name in summary.features:
            continue
        name = name[:64]
        if name in summary.unknown_fields:
            continue
        if len(summary.unknown_fields) < MAX_UNKNOWN_FIELDS:
            summary.unknown_fields.add(name)
        else:
            summary.unknown_fields_capped = True


_ABSENT = object()


def _field_at(prediction: Mapping[str, object] | None, path: str) -> object:
    """The value at ``prediction.<a>.<b>`` of an event, or ``_ABSENT``."""
    value: object = {"prediction": prediction} if prediction is not None else {}
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


def _add_value(counts: FeatureCounts, value: object, profile: NumericProfile | CategoricalProfile) -> None:
    """Count one present value of a feature or prediction field."""
    if value is None:
        counts.n_null += 1
    elif isinstance(profile, NumericProfile):
        if _is_number(value) and math.isfinite(value):  # type: ignore[arg-type]
            counts.pending.append(float(value))  # type: ignore[arg-type]
        else:
            _wrong_type(counts, value)
    elif isinstance(value, (str, int, float, bool)):
        counts.pending.append(category_text(value))
    else:
        # Only prediction fields get here: the decoder already refuses containers in features.
        _wrong_type(counts, value)
    if len(counts.pending) >= FLUSH_EVERY:
        _flush_feature(counts, profile)


def _wrong_type(counts: FeatureCounts, value: object) -> None:
    counts.n_wrong_type += 1
    # distinct, like unseen categories and merge, so summary(a + b) == merge
    _add_example(counts.examples, repr(value)[:64])


def _flush_feature(counts: FeatureCounts, profile: NumericProfile | CategoricalProfile) -> None:
    if not counts.pending:
        return
    if isinstance(profile, NumericProfile):
        values = np.asarray(counts.pending, dtype=np.float64)
        index = np.searchsorted(np.asarray(profile.edges, dtype=np.float64), values, side="right")
        if counts.bounds is not None:
            _count_out_of_range(counts, values, counts.bounds)
        counts.moments = merge_moments(counts.moments, moments_of(values))
    else:
        lookup = _category_index(profile)
        unseen = len(profile.categories)
        index_list = []
        for value in counts.pending:
            position = lookup.get(value, unseen)  # type: ignore[arg-type]
            if position == unseen:
                _note_unseen(counts, str(value))
                if len(counts.examples) < MAX_EXAMPLES:
                    example = str(value)[:64]  # compared truncated, as stored, so a long value is kept once
                    if example not in counts.examples:
                        counts.examples.append(example)
            index_list.append(position)
        index = np.asarray(index_list, dtype=np.int64)
    counts.counts += np.bincount(index, minlength=counts.counts.size)
    counts.pending.clear()


def _note_unseen(counts: FeatureCounts, value: str) -> None:
    if value in counts.unseen:
        return
    if len(counts.unseen) < MAX_UNSEEN_DISTINCT:
        counts.unseen.add(value)
    else:
        counts.unseen_capped = True


def _count_out_of_range(counts: FeatureCounts, values: npt.NDArray[np.float64], bounds: Bounds) -> None:
    outside = values[(values < bounds.low) | (values > bounds.high)]
    if outside.size == 0:
        return
    counts.n_out_of_range += int(outside.size)
    if len(counts.out_of_range_examples) >= MAX_EXAMPLES:
        return
    # The first distinct values in arrival order, as one event at a time would keep them;
    # + 0.0 turns -0.0 into 0.0, which np.unique already treats as equal.
    for value in _first_distinct(outside + 0.0, 2 * MAX_EXAMPLES).tolist():
        _add_example(counts.out_of_range_examples, repr(value)[:64])


def _first_distinct(values: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.float64]:
    """The first ``k`` distinct values in order of first appearance (fewer if there are fewer).

    Found in a growing prefix: the first ``k`` distinct values of a prefix that has at
    least ``k`` are those of the whole array, so a long array is rarely sorted whole.
    """
    size = 8 * k
    while True:
        prefix = values[:size]
        _, first = np.unique(prefix, return_index=True)
        if first.size >= k or size >= values.size:
            return prefix[np.sort(first)[:k]]
        size *= 16


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
    for path, counts in summary.predictions.items():
        _flush_feature(counts, profile.predictions[path])
    if summary.embedding is not None:
        summary.embedding.flush()
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
        _merge_counts(name, counts, right.features[name])
    if set(left.predictions) != set(right.predictions):
        raise ValueError(
            f"cannot merge summaries of different prediction fields: {sorted(left.predictions)} and {sorted(right.predictions)}"
        )
    for path, counts in left.predictions.items():
        _merge_counts(path, counts, right.predictions[path])
    _merge_event_ids(left, right)
    _merge_embeddings(left, right)
    _merge_capped(left.unknown_fields, right.unknown_fields, MAX_UNKNOWN_FIELDS)
    left.unknown_fields_capped = (
        left.unknown_fields_capped or right.unknown_fields_capped
        or len(left.unknown_fields | right.unknown_fields) > MAX_UNKNOWN_FIELDS
    )
    return left


def _merge_embeddings(left: WindowSummary, right: WindowSummary) -> None:
    """Merge the (flushed) embedding samples into a uniform sample of both windows' embeddings."""
    a, b = left.embedding, right.embedding
    if a is None or b is None:
        if a is not None or b is not None:
            raise ValueError("cannot merge a summary that samples embeddings with one that does not")
        return
    if a.field_name != b.field_name:
        raise ValueError(
            f"cannot merge embedding samples of different fields: {a.field_name!r} and {b.field_name!r}")
    # left is a private copy: its generator continues into the merged reservoir.
    a.reservoir = a.reservoir.merge(b.reservoir, a.reservoir.rng)
    a.n_missing += b.n_missing


def _merge_capped(left: set[str], right: set[str], cap: int) -> None:
    """Union ``right`` into ``left`` up to ``cap`` elements (the smallest extra ones, whatever the hash seed)."""
    extra = right - left
    room = cap - len(left)
    left |= extra if len(extra) <= room else set(sorted(extra)[: max(room, 0)])


def _merge_counts(name: str, counts: FeatureCounts, other: FeatureCounts) -> None:
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
    counts.moments = merge_moments(counts.moments, other.moments)
    capped = counts.unseen_capped or other.unseen_capped or len(counts.unseen | other.unseen) > MAX_UNSEEN_DISTINCT
    _merge_capped(counts.unseen, other.unseen, MAX_UNSEEN_DISTINCT)
    counts.unseen_capped = capped


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
    embedding: EmbeddingSample | None = None,
) -> WindowSummary:
    """The flushed summary of a list of events (convenience for tests and backtests)."""
    summary = empty_summary(profile, bounds=bounds, track_event_ids=track_event_ids, embedding=embedding)
    for event in events:
        add_event(summary, event, profile)
    return flush(summary, profile)


def feature_counts(summary: WindowSummary) -> Mapping[str, npt.NDArray[np.int64]]:
    """Bin counts per feature of a flushed summary."""
    return {name: counts.counts for name, counts in summary.features.items()}
