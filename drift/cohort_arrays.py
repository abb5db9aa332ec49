"""Cohort windows as arrays: every cohort of a shard counted and closed together.

One model's open window keeps, for every cohort row of a shard, the counts detectors
need in dense arrays (:class:`WindowArrays`): bin counts ``[rows × bins]`` (every
feature's and profiled prediction field's bins side by side, :class:`Layout`), the
quality counters ``[rows × fields]`` (nulls, absent fields, wrong types, values out of
range), the running moments of numeric values, the event count and the first and
last ``ts``. A batch of rows of many cohorts is counted with one scatter-add
(``np.add.at`` over a combined ``row · bins + bin`` index) per batch, not a Python
loop per cohort. Rows grow by doubling.

What is rare stays per row, in :class:`RowExtras`, created only for a row that has
any: examples of wrong-typed, unseen or out-of-range values, the distinct unseen
categories (the cardinality check), feature names outside the reference (the schema
check), duplicate event-id examples and the embedding sample. The event ids of a
window (the duplicate check) are one set per row, kept only when the check is on.

Closing takes the rows that close together out as a :class:`ClosedWindows` (arrays
of ``k`` cohorts); :meth:`ClosedWindows.summary` turns one of them into the
:class:`~drift.summary.WindowSummary` the per-window detectors score. Counts are
exactly those :func:`drift.summary.add_event` gives for the same events; the moments
are merged per batch (Chan et al.) rather than per slice of values, so a mean or a
variance may differ from that path in the last bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from drift.columnar import MISSING, NULL, OK, WRONG, Block
from drift.findings import Cohort, Window
from drift.moments import EMPTY, Moments
from drift.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from drift.summary import (
    FLUSH_EVERY, MAX_EVENT_IDS, MAX_EXAMPLES, MAX_UNKNOWN_FIELDS, MAX_UNSEEN_DISTINCT, Bounds, EmbeddingSample,
    EmbeddingSampling, FeatureCounts, Schema, WindowSummary, embedding_sample, resolve_bounds,
)
from drift.windowing import to_datetime

NULLS, ABSENT, WRONG_TYPE, OUT_OF_RANGE = 0, 1, 2, 3
"""Planes of :attr:`WindowArrays.cells`: the quality counters of each (row, field)."""
CELL_PLANES = 4
COMPACT_FROM = 1024
"""Windows with more slots than this are compacted when three quarters of them closed."""
NARROW_MAX = np.iinfo(np.int32).max
"""Events a cohort window may hold before its counts widen from 32 to 64 bits."""
NO_TS_LOW = np.iinfo(np.int64).max
NO_TS_HIGH = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Layout:
    """Where each field of a model lives in its window arrays.

    Fields are the profile's features, then its prediction fields (by path); field
    ``f`` owns bins ``offsets[f]:offsets[f + 1]`` of a row.
    """

    names: tuple[str, ...]
    n_features: int
    """The first ``n_features`` fields are features, the rest prediction fields."""
    profiles: tuple[NumericProfile | CategoricalProfile, ...]
    offsets: npt.NDArray[np.int64]
    bounds: tuple[Bounds | None, ...]
    edges: tuple[npt.NDArray[np.float64] | None, ...]
    categories: tuple[pa.Array | None, ...]
    sampling: EmbeddingSampling | None = None
    track_event_ids: bool = True

    @property
    def n_fields(self) -> int:
        return len(self.names)

    @property
    def n_bins(self) -> int:
        return int(self.offsets[-1])

    def index(self, name: str) -> int:
        return self._index[name]

    @property
    def _index(self) -> dict[str, int]:
        cached: dict[str, int] | None = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {name: f for f, name in enumerate(self.names)}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def is_numeric(self, f: int) -> bool:
        return isinstance(self.profiles[f], NumericProfile)


def layout_of(
    profile: ReferenceProfile, bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    sampling: EmbeddingSampling | None = None, track_event_ids: bool = True,
) -> Layout:
    """The layout of ``profile``'s fields (``bounds``: the configured ranges, as for a summary)."""
    resolved = resolve_bounds(profile, bounds)
    names = [*profile.features, *profile.predictions]
    profiles = [*profile.features.values(), *profile.predictions.values()]
    sizes = [p.n_bins for p in profiles]
    return Layout(
        names=tuple(names), n_features=len(profile.features), profiles=tuple(profiles),
        offsets=np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64),
        bounds=tuple(resolved.get(n) if f < len(profile.features) else None for f, n in enumerate(names)),
        edges=tuple(np.asarray(p.edges, dtype=np.float64) if isinstance(p, NumericProfile) else None for p in profiles),
        categories=tuple(
            pa.array(p.categories, type=pa.string()) if isinstance(p, CategoricalProfile) else None for p in profiles),
        sampling=sampling, track_event_ids=track_event_ids,
    )


@dataclass(slots=True)
class RowExtras:
    """The rare, variable-size parts of one cohort row's window."""

    examples: dict[int, list[str]] = field(default_factory=dict)
    """Wrong-typed (numeric) or unseen (categorical) examples, by field."""
    out_of_range_examples: dict[int, list[str]] = field(default_factory=dict)
    unseen: dict[int, set[str]] = field(default_factory=dict)
    unseen_capped: set[int] = field(default_factory=set)
    unknown_fields: set[str] = field(default_factory=set)
    unknown_fields_capped: bool = False
    duplicate_examples: list[str] = field(default_factory=list)
    embedding: EmbeddingSample | None = None


def _add_example(examples: list[str], example: str) -> None:
    if len(examples) < MAX_EXAMPLES and example not in examples:
        examples.append(example)


class WindowArrays:
    """One open window of a shard: the counts of its cohorts with events (see the module text).

    The arrays are indexed by *slot*: a cohort row gets a slot with its first event in the
    window and gives it back when its window closes; a window left with few cohorts (the
    others closed) is compacted, so a window that lingers for a few late cohorts holds
    little. ``capacity`` is the shard's row count; ``active`` the rows with events.
    """

    def __init__(self, layout: Layout, capacity: int) -> None:
        self.layout = layout
        self.capacity = 0
        self.slot_of = np.zeros(0, dtype=np.int64)
        """Row -> slot (-1: the row has no events in this window)."""
        self.slots = 0
        self.row_of = np.zeros(0, dtype=np.int64)
        """Slot -> row (-1: a free slot)."""
        self.used = 0
        """Slots handed out so far (free ones below it are in ``free_slots``)."""
        self.free_slots: list[int] = []
        # Bin counts and quality counters in 32 bits (half the memory of a window); a window
        # whose cohort nears 2**31 events widens them to 64 bits (:meth:`_widen`).
        self.counts = np.zeros((0, layout.n_bins), dtype=np.int32)
        self.cells = np.zeros((CELL_PLANES, 0, layout.n_fields), dtype=np.int32)
        # Moments field-major ([fields × slots]): a batch merges one field's slots at a time.
        self.mom_n = np.zeros((layout.n_fields, 0), dtype=np.int64)
        self.mom_mean = np.zeros((layout.n_fields, 0), dtype=np.float64)
        self.mom_m2 = np.zeros((layout.n_fields, 0), dtype=np.float64)
        self.n_events = np.zeros(0, dtype=np.int64)
        self.first_ts = np.zeros(0, dtype=np.int64)
        self.last_ts = np.zeros(0, dtype=np.int64)
        self.n_event_id = np.zeros(0, dtype=np.int64)
        self.n_duplicate = np.zeros(0, dtype=np.int64)
        self.ids_capped = np.zeros(0, dtype=np.bool_)
        self.live = np.zeros(0, dtype=np.bool_)
        """Slots holding a cohort's events."""
        self.extras: dict[int, RowExtras] = {}
        """By slot."""
        self._matrices: dict[tuple[str, ...], Any] = {}
        self.ids: dict[str, int] = {}
        """Event id -> the slot and generation (``slot | generation << 32``) it was first seen in
        (the duplicate check); a slot's generation moves on when it is emptied, so the ids of
        its closed window never match."""
        self.more_ids: set[tuple[int, str]] = set()
        """``(slot and generation, event id)`` of ids also seen in another cohort (rare)."""
        self.generation = np.zeros(0, dtype=np.int64)
        self.n_ids = np.zeros(0, dtype=np.int64)
        """Ids remembered per slot (at most :data:`MAX_EVENT_IDS`)."""
        self.grow(capacity)

    # -- shape -----------------------------------------------------------------------------

    def grow(self, capacity: int) -> None:
        """Room for ``capacity`` rows of the shard."""
        if capacity > self.capacity:
            self.slot_of = np.concatenate([self.slot_of, np.full(capacity - self.capacity, -1, dtype=np.int64)])
            self.capacity = capacity

    @property
    def active(self) -> npt.NDArray[np.bool_]:
        """``[capacity]``: the rows with events in this window."""
        out: npt.NDArray[np.bool_] = self.slot_of >= 0
        return out

    def active_rows(self) -> npt.NDArray[np.int64]:
        """The rows with events in this window, in row order."""
        return np.flatnonzero(self.slot_of >= 0)

    def empty(self) -> bool:
        return not self.live.any()

    def _grow_slots(self, slots: int) -> None:
        """Room for ``slots`` slots (new ones empty)."""
        if slots <= self.slots:
            return
        extra = slots - self.slots

        def more(a: npt.NDArray[Any], fill: Any = 0, axis: int = 0) -> npt.NDArray[Any]:
            # Zeroed memory is mapped lazily: only the old slots are written, new ones cost
            # nothing until a cohort uses them.
            shape = list(a.shape)
            shape[axis] += extra
            grown = np.zeros(shape, dtype=a.dtype)
            index = [slice(None)] * a.ndim
            index[axis] = slice(0, a.shape[axis])
            grown[tuple(index)] = a
            if fill:
                index[axis] = slice(a.shape[axis], None)
                grown[tuple(index)] = fill
            return grown

        self.counts = more(self.counts)
        self.cells = more(self.cells, axis=1)
        self.mom_n, self.mom_mean, self.mom_m2 = (
            more(self.mom_n, axis=1), more(self.mom_mean, axis=1), more(self.mom_m2, axis=1))
        self.n_events = more(self.n_events)
        self.first_ts, self.last_ts = more(self.first_ts, NO_TS_LOW), more(self.last_ts, NO_TS_HIGH)
        self.n_event_id, self.n_duplicate = more(self.n_event_id), more(self.n_duplicate)
        self.ids_capped, self.live = more(self.ids_capped, False), more(self.live, False)
        self.generation, self.n_ids = more(self.generation), more(self.n_ids)
        self.row_of = more(self.row_of, -1)
        self.slots = slots

    def _slots(self, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.int64]:
        """The slot of each row, rows without one given one (in order of first appearance)."""
        slots = self.slot_of[rows]
        if (slots >= 0).all():
            return slots
        new_rows = rows[slots < 0]
        _, first = np.unique(new_rows, return_index=True)
        new_rows = new_rows[np.sort(first)]
        n_new = new_rows.size
        reused = self.free_slots[-n_new:] if self.free_slots else []
        if reused:
            del self.free_slots[-len(reused):]
        fresh = n_new - len(reused)
        if self.used + fresh > self.slots:
            self._grow_slots(max(16, 2 * self.slots, self.used + fresh))
        given = np.asarray([*reversed(reused), *range(self.used, self.used + fresh)], dtype=np.int64)
        self.used += fresh
        self.slot_of[new_rows] = given
        self.row_of[given] = new_rows
        out: npt.NDArray[np.int64] = self.slot_of[rows]
        return out

    def _widen(self) -> None:
        """Counts and counters in 64 bits (a cohort window with close to 2**31 events)."""
        self.counts = self.counts.astype(np.int64)
        self.cells = self.cells.astype(np.int64)

    def _release(self, slots: npt.NDArray[np.int64]) -> None:
        """Empty ``slots`` and give them back (their rows closed)."""
        self.counts[slots] = 0
        self.cells[:, slots] = 0
        self.mom_n[:, slots], self.mom_mean[:, slots], self.mom_m2[:, slots] = 0, 0.0, 0.0
        self.n_events[slots] = 0
        self.first_ts[slots], self.last_ts[slots] = NO_TS_LOW, NO_TS_HIGH
        self.n_event_id[slots], self.n_duplicate[slots], self.ids_capped[slots] = 0, 0, False
        self.live[slots] = False
        self.generation[slots] += 1
        self.n_ids[slots] = 0
        self.slot_of[self.row_of[slots]] = -1
        self.row_of[slots] = -1
        self.free_slots.extend(slots.tolist())
        for slot in slots.tolist():
            self.extras.pop(slot, None)
        if not self.live.any():
            self.ids, self.more_ids = {}, set()

    def _extras(self, row: int) -> RowExtras:
        extras = self.extras.get(row)
        if extras is None:
            extras = self.extras[row] = RowExtras()
        return extras

    # -- counting --------------------------------------------------------------------------

    def count(
        self, block: Block, rows: npt.NDArray[np.intp], cohorts: list[Cohort | None], window_start_us: int,
        embeddings: list[Any] | None = None,
    ) -> None:
        """Count every row of ``block`` into cohort row ``rows[i]`` (in place)."""
        n = len(block)
        if n == 0:
            return
        layout = self.layout
        if self.counts.dtype == np.int32 and int(self.n_events.max(initial=0)) + n > NARROW_MAX:
            self._widen()
        cohort_rows = rows
        rows = self._slots(rows)  # from here on, "rows" are the slots of the cohorts' rows
        np.add.at(self.n_events, rows, 1)
        np.minimum.at(self.first_ts, rows, block.ts)
        np.maximum.at(self.last_ts, rows, block.ts)
        self.live[rows] = True
        unique, inverse = np.unique(rows, return_inverse=True)
        bins: list[npt.NDArray[np.int64]] = []
        cells: list[npt.NDArray[np.int64]] = []
        numeric_at = {name: j for j, name in enumerate(block.numeric_names)}
        numeric = [name for name in block.numeric_names if name in layout._index]
        if numeric:
            # Every numeric field binned and its moments taken in one pass over the matrix.
            has_value = None
            if any(name in block.states for name in numeric):
                has_value = np.ones((len(numeric), n), dtype=np.bool_)
                for j, name in enumerate(numeric):
                    states = block.states.get(name)
                    if states is not None:
                        has_value[j] = states == OK
            self._count_matrix(numeric, block.numeric[[numeric_at[name] for name in numeric]], has_value, rows,
                               inverse, unique, bins, cells)
        for f, name in enumerate(layout.names):
            states = block.states.get(name)
            if name in numeric_at:
                if states is not None:
                    self._count_states(f, name, states, rows, block, cells)
                continue
            ok: npt.NDArray[np.bool_] | None = None
            if states is not None:
                self._count_states(f, name, states, rows, block, cells)
                ok = states == OK
            column = block.categorical[name]
            self._count_categorical(f, column if ok is None else column.filter(pa.array(ok)),
                                    rows if ok is None else rows[ok], bins)
        if bins:
            np.add.at(self.counts.reshape(-1), np.concatenate(bins), self.counts.dtype.type(1))  # same-type one: numpy's fast path
        if cells:
            np.add.at(self.cells.reshape(-1), np.concatenate(cells), self.cells.dtype.type(1))
        if layout.track_event_ids:
            self._count_event_ids(block.event_ids, rows)
        for row, names in block.unknown.items():
            self._note_unknown(int(rows[row]), names)
        if layout.sampling is not None:
            self._sample(rows, cohort_rows, cohorts, window_start_us, embeddings, block)

    def _count_states(
        self, f: int, name: str, states: npt.NDArray[np.int8], rows: npt.NDArray[np.intp], block: Block,
        cells: list[npt.NDArray[np.int64]],
    ) -> None:
        """Nulls, absent and wrong-typed cells of field ``f`` (with the wrong values' examples)."""
        for plane, code in ((NULLS, NULL), (ABSENT, MISSING), (WRONG_TYPE, WRONG)):
            hit = np.flatnonzero(states == code)
            if hit.size:
                cells.append((plane * self.slots + rows[hit]) * self.layout.n_fields + f)
        for row, example in block.wrong.get(name, []):
            _add_example(self._extras(int(rows[row])).examples.setdefault(f, []), example)

    def _matrix_layout(self, names: list[str]) -> tuple[
            npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(field indices, edges padded with +inf ``[fields × most edges]``, low and high bounds) of ``names``."""
        key = tuple(names)
        cached = self._matrices.get(key)
        if cached is None:
            layout = self.layout
            fields_ = np.asarray([layout.index(n) for n in names], dtype=np.intp)
            edges = [layout.edges[f] for f in fields_.tolist()]
            width = max((e.size for e in edges if e is not None), default=0)
            padded = np.full((len(names), width), np.inf)
            for j, e in enumerate(edges):
                if e is not None:
                    padded[j, : e.size] = e
            low = np.asarray([b.low if b is not None else -np.inf for b in (layout.bounds[f] for f in fields_.tolist())])
            high = np.asarray([b.high if b is not None else np.inf for b in (layout.bounds[f] for f in fields_.tolist())])
            cached = self._matrices[key] = (fields_, padded, low, high)
        return cached

    def _count_matrix(
        self, names: list[str], values: npt.NDArray[np.float64], ok: npt.NDArray[np.bool_] | None,
        rows: npt.NDArray[np.intp], inverse: npt.NDArray[np.intp], unique: npt.NDArray[np.intp],
        bins: list[npt.NDArray[np.int64]], cells: list[npt.NDArray[np.int64]],
    ) -> None:
        """Bins, out-of-range counts and moments of numeric fields (``values``: ``[fields × rows]``;
        ``ok``: the cells that hold a value, None when all do)."""
        layout = self.layout
        fields_, edges, low, high = self._matrix_layout(names)
        if ok is not None:
            values = np.where(ok, values, 0.0)  # cells without a value: not binned, not in the moments
        index = np.zeros(values.shape, dtype=np.int64)
        for k in range(edges.shape[1]):  # a value's bin: the edges at or below it (one pass per edge)
            index += values >= edges[:, k:k + 1]
        index += (rows * layout.n_bins)[None, :] + layout.offsets[fields_][:, None]
        bins.append(index.reshape(-1) if ok is None else index[ok])
        outside = (values < low[:, None]) | (values > high[:, None])
        if ok is not None:
            outside &= ok
        if outside.any():
            for j, i in zip(*np.nonzero(outside)):
                f, row = int(fields_[j]), int(rows[i])
                cells.append(np.asarray([(OUT_OF_RANGE * self.slots + row) * layout.n_fields + f]))
                examples = self._extras(row).out_of_range_examples.setdefault(f, [])
                if len(examples) < MAX_EXAMPLES:
                    _add_example(examples, repr(float(values[j, i]) + 0.0)[:64])
        n_unique = unique.size
        n_fields = len(names)
        size = n_fields * n_unique
        group = (np.arange(n_fields)[:, None] * n_unique + inverse[None, :]).reshape(-1)
        if ok is None:
            n_b = np.broadcast_to(np.bincount(inverse, minlength=n_unique)[None, :], (n_fields, n_unique))
        else:
            n_b = np.bincount(group, weights=ok.reshape(-1), minlength=size).reshape(n_fields, n_unique).astype(np.int64)
        total = np.bincount(group, weights=values.reshape(-1), minlength=size).reshape(n_fields, n_unique)
        mean_b = total / np.maximum(n_b, 1)
        deviation = values - mean_b[:, inverse]
        if ok is not None:
            deviation[~ok] = 0.0
        m2_b = np.bincount(group, weights=(deviation * deviation).reshape(-1), minlength=size).reshape(n_fields, n_unique)
        at = np.ix_(fields_, unique)
        n_a = self.mom_n[at]
        mean_a = self.mom_mean[at]
        n = n_a + n_b
        delta = mean_b - mean_a
        share = np.divide(n_b, n, out=np.zeros(n.shape), where=n > 0)
        self.mom_mean[at] = np.where(n_b > 0, mean_a + delta * share, mean_a)
        self.mom_m2[at] = np.where(n_b > 0, self.mom_m2[at] + m2_b + delta * delta * (n_a * share), self.mom_m2[at])
        self.mom_n[at] = n

    def _count_categorical(
        self, f: int, strings: pa.Array, rows: npt.NDArray[np.intp], bins: list[npt.NDArray[np.int64]],
    ) -> None:
        if len(strings) == 0:
            return
        layout = self.layout
        categories = layout.categories[f]
        assert categories is not None
        unseen_bin = len(categories)
        positions = pc.index_in(strings, value_set=categories)
        index = positions.fill_null(unseen_bin).to_numpy(zero_copy_only=False).astype(np.int64)
        bins.append(rows * layout.n_bins + layout.offsets[f] + index)
        if positions.null_count:
            unseen = np.flatnonzero(index == unseen_bin)
            values = strings.take(pa.array(unseen)).to_pylist()
            for i, value in zip(unseen.tolist(), values):
                self._note_unseen(int(rows[i]), f, value)

    def _note_unseen(self, row: int, f: int, value: str) -> None:
        extras = self._extras(row)
        seen = extras.unseen.setdefault(f, set())
        if value not in seen:
            if len(seen) < MAX_UNSEEN_DISTINCT:
                seen.add(value)
            else:
                extras.unseen_capped.add(f)
        examples = extras.examples.setdefault(f, [])
        if len(examples) < MAX_EXAMPLES:
            _add_example(examples, value[:64])

    def _note_unknown(self, row: int, names: tuple[str, ...]) -> None:
        extras = self._extras(row)
        known = self.layout._index
        for name in names:
            if name in known:
                continue
            name = name[:64]
            if name in extras.unknown_fields:
                continue
            if len(extras.unknown_fields) < MAX_UNKNOWN_FIELDS:
                extras.unknown_fields.add(name)
            else:
                extras.unknown_fields_capped = True

    def _count_event_ids(self, event_ids: pa.Array, rows: npt.NDArray[np.intp]) -> None:
        if event_ids.null_count:
            valid = event_ids.is_valid().to_numpy(zero_copy_only=False)
            rows, event_ids = rows[valid], event_ids.filter(pa.array(valid))
        if not len(event_ids):
            return
        np.add.at(self.n_event_id, rows, 1)
        ids = event_ids.to_pylist()
        tags = (rows.astype(np.int64) | (self.generation[rows] << 32)).tolist()
        unique, counts = np.unique(rows, return_counts=True)
        known = self.ids
        if (len(set(ids)) == len(ids) and known.keys().isdisjoint(ids)
                and not (self.n_ids[unique] + counts > MAX_EVENT_IDS).any()):
            # The common batch: no id seen twice, no slot at its cap (dict and set operations only).
            known.update(zip(ids, tags))
            self.n_ids[unique] += counts
            return
        more = self.more_ids
        for event_id, tag in zip(ids, tags):
            slot = tag & 0xFFFFFFFF
            first = known.get(event_id)
            if first == tag or (first is not None and (tag, event_id) in more):
                self.n_duplicate[slot] += 1
                _add_example(self._extras(slot).duplicate_examples, event_id[:64])
            elif self.n_ids[slot] < MAX_EVENT_IDS:
                if first is None:
                    known[event_id] = tag
                else:
                    more.add((tag, event_id))
                self.n_ids[slot] += 1
            else:
                self.ids_capped[slot] = True

    def _sample(
        self, slots: npt.NDArray[np.int64], rows: npt.NDArray[np.intp], cohorts: list[Cohort | None],
        window_start_us: int, embeddings: list[Any] | None, block: Block,
    ) -> None:
        sampling = self.layout.sampling
        assert sampling is not None
        ids = block.event_ids.to_pylist()
        vectors = embeddings if embeddings is not None else [None] * len(block)
        for slot, row, vector, event_id in zip(slots.tolist(), rows.tolist(), vectors, ids):
            extras = self._extras(slot)
            sample = extras.embedding
            if sample is None:
                cohort = cohorts[row]
                assert cohort is not None
                sample = extras.embedding = embedding_sample(sampling, cohort.key, to_datetime(window_start_us))
            if not isinstance(vector, np.ndarray) or vector.shape != (sample.reservoir.dim,):
                sample.n_missing += 1
                continue
            sample.pending.append(vector)
            sample.pending_ids.append(event_id)
            if len(sample.pending) >= FLUSH_EVERY:
                sample.flush()

    # -- closing ---------------------------------------------------------------------------

    def take(
        self, rows: npt.NDArray[np.intp], cohorts: list[Cohort], window: Window, model: str,
        schema_before: list[Schema | None], keys: list[str] | None = None,
    ) -> ClosedWindows:
        """The windows of ``rows`` (rows with events) as a :class:`ClosedWindows`; their slots are emptied.

        When ``rows`` are every row with events, the window is done: its arrays are handed
        over (views when the slots are ``0..k-1`` in order, no copy) and it is left empty
        for the caller to drop; otherwise the slots are copied out and given back, and a
        window left with a quarter of its slots or fewer is compacted."""
        slots = self.slot_of[rows]
        everything = rows.size == int(np.count_nonzero(self.live))
        in_order = rows.size == 0 or (int(slots[0]) == 0 and bool((np.diff(slots) == 1).all()))
        taken: Any = slice(0, rows.size) if everything and in_order else slots
        closed = ClosedWindows(
            model=model, window=window, layout=self.layout, cohorts=cohorts,
            n_events=self.n_events[taken], first_ts=self.first_ts[taken], last_ts=self.last_ts[taken],
            counts=self.counts[taken], cells=self.cells[:, taken],
            mom_n=self.mom_n[:, taken].T, mom_mean=self.mom_mean[:, taken].T, mom_m2=self.mom_m2[:, taken].T,
            n_event_id=self.n_event_id[taken], n_duplicate=self.n_duplicate[taken],
            ids_capped=self.ids_capped[taken],
            extras={i: self.extras[slot] for i, slot in enumerate(slots.tolist()) if slot in self.extras},
            tracks_ids=self.layout.track_event_ids,
            schema_before=schema_before, keys=keys,
        )
        for extras in closed.extras.values():
            if extras.embedding is not None:
                extras.embedding.flush()
        if everything:
            # Done: the caller drops the window (its arrays are the closed ones).
            self.live[:] = False
            self.slot_of[rows] = -1
            self.extras, self.ids, self.more_ids = {}, {}, set()
        else:
            self._release(slots)
            if self.slots > COMPACT_FROM and np.count_nonzero(self.live) <= self.slots // 4:
                self._compact()
        return closed

    def _compact(self) -> None:
        """Move the live slots to a window of their own size (the memory of the closed ones goes)."""
        state = self.__getstate__()
        self.__setstate__({**state, "slots": np.arange(state["rows"].size), "slot_count": max(16, 2 * state["rows"].size)})

    # -- snapshots -------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The live slots only (a snapshot's size follows the cohorts with events), by row."""
        rows = self.active_rows()
        slots = self.slot_of[rows]
        def current(tag: int) -> bool:
            slot = tag & 0xFFFFFFFF
            return bool(self.live[slot]) and int(self.generation[slot]) == tag >> 32

        live_ids = {(int(self.row_of[tag & 0xFFFFFFFF]), event_id) for event_id, tag in self.ids.items() if current(tag)}
        live_ids |= {(int(self.row_of[tag & 0xFFFFFFFF]), event_id) for tag, event_id in self.more_ids if current(tag)}
        return {
            "layout": self.layout, "capacity": self.capacity, "rows": rows, "slots": slots,
            "slot_count": self.slots,
            "counts": self.counts[slots], "cells": self.cells[:, slots], "mom_n": self.mom_n[:, slots],
            "mom_mean": self.mom_mean[:, slots], "mom_m2": self.mom_m2[:, slots], "n_events": self.n_events[slots],
            "first_ts": self.first_ts[slots], "last_ts": self.last_ts[slots], "n_event_id": self.n_event_id[slots],
            "n_duplicate": self.n_duplicate[slots], "ids_capped": self.ids_capped[slots], "n_ids": self.n_ids[slots],
            "extras": {int(self.row_of[slot]): e for slot, e in self.extras.items() if self.live[slot]},
            "ids": live_ids,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["layout"], state["capacity"])  # type: ignore[misc]
        if state["counts"].dtype != self.counts.dtype:
            self._widen()
        rows, slots = state["rows"], state["slots"]
        self._grow_slots(max(int(state["slot_count"]), int(slots.max(initial=-1)) + 1))
        for name in ("counts", "n_events", "first_ts", "last_ts", "n_event_id", "n_duplicate", "ids_capped", "n_ids"):
            getattr(self, name)[slots] = state[name]
        for name in ("cells", "mom_n", "mom_mean", "mom_m2"):
            getattr(self, name)[:, slots] = state[name]
        self.live[slots] = True
        self.slot_of[rows] = slots
        self.row_of[slots] = rows
        self.used = int(slots.max(initial=-1)) + 1
        taken = set(slots.tolist())
        self.free_slots = [slot for slot in range(self.used - 1, -1, -1) if slot not in taken]
        slot_of = dict(zip(rows.tolist(), slots.tolist()))
        self.extras = {slot_of[row]: e for row, e in state["extras"].items()}
        self.ids, self.more_ids = {}, set()
        for row, event_id in sorted(state["ids"]):
            if event_id in self.ids:
                self.more_ids.add((slot_of[row], event_id))
            else:
                self.ids[event_id] = slot_of[row]

    def copy(self) -> WindowArrays:
        """An independent copy (the snapshot of a durable run)."""
        out = WindowArrays.__new__(WindowArrays)
        out.__setstate__(_copy_state(self.__getstate__()))
        return out


def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with its containers copied (arrays were copied by fancy indexing already)."""
    extras = {}
    for row, e in state["extras"].items():
        embedding = e.embedding
        if embedding is not None:
            import copy as _copy

            embedding = _copy.deepcopy(embedding)
        extras[row] = RowExtras(
            {f: list(v) for f, v in e.examples.items()}, {f: list(v) for f, v in e.out_of_range_examples.items()},
            {f: set(v) for f, v in e.unseen.items()}, set(e.unseen_capped), set(e.unknown_fields),
            e.unknown_fields_capped, list(e.duplicate_examples), embedding,
        )
    return {**state, "extras": extras, "ids": set(state["ids"])}


@dataclass
class ClosedWindows:
    """The windows of ``k`` cohorts of one model that closed together (arrays by cohort row)."""

    model: str
    window: Window
    layout: Layout
    cohorts: list[Cohort]
    n_events: npt.NDArray[np.int64]
    first_ts: npt.NDArray[np.int64]
    last_ts: npt.NDArray[np.int64]
    counts: npt.NDArray[np.integer[Any]]
    """``[k × bins]``: every field's bins side by side (:class:`Layout`); 32 or 64 bits."""
    cells: npt.NDArray[np.integer[Any]]
    """``[4 × k × fields]``: nulls, absent fields, wrong types, values out of range."""
    mom_n: npt.NDArray[np.int64]
    mom_mean: npt.NDArray[np.float64]
    mom_m2: npt.NDArray[np.float64]
    n_event_id: npt.NDArray[np.int64]
    n_duplicate: npt.NDArray[np.int64]
    ids_capped: npt.NDArray[np.bool_]
    extras: dict[int, RowExtras]
    tracks_ids: bool
    """The duplicate check is on (the ids themselves stay with the shard)."""
    schema_before: list[Schema | None]
    """Each cohort's schema in its previous window (None: its first window)."""
    keys: list[str] | None = None
    """Each cohort's key (``Cohort.key``), when the caller knows them already."""
    members: dict[int, Any] = field(default_factory=dict)
    """Row -> :class:`drift.rollups.MemberCounts` of the rollup cohorts (their attribution)."""

    def __len__(self) -> int:
        return len(self.cohorts)

    def cohort_keys(self) -> list[str]:
        """Each cohort's key, in row order."""
        if self.keys is None:
            self.keys = [cohort.key for cohort in self.cohorts]
        return self.keys

    def field_counts(self, f: int) -> npt.NDArray[np.integer[Any]]:
        """``[k × bins of field f]``."""
        return self.counts[:, self.layout.offsets[f]:self.layout.offsets[f + 1]]

    def summary(self, i: int) -> WindowSummary:
        """Cohort ``i``'s window as a flushed :class:`WindowSummary`.

        Its ``event_ids`` is an empty set when the duplicate check is on (the counts are
        kept; the ids themselves stay with the shard), None when it is off."""
        layout = self.layout
        extras = self.extras.get(i) or RowExtras()
        features: dict[str, FeatureCounts] = {}
        predictions: dict[str, FeatureCounts] = {}
        for f, name in enumerate(layout.names):
            numeric = layout.is_numeric(f)
            n = int(self.mom_n[i, f])
            counts = FeatureCounts(
                counts=self.counts[i, layout.offsets[f]:layout.offsets[f + 1]].astype(np.int64),
                n_null=int(self.cells[NULLS, i, f]), n_missing=int(self.cells[ABSENT, i, f]),
                n_wrong_type=int(self.cells[WRONG_TYPE, i, f]), examples=list(extras.examples.get(f, [])),
                bounds=layout.bounds[f], n_out_of_range=int(self.cells[OUT_OF_RANGE, i, f]),
                out_of_range_examples=list(extras.out_of_range_examples.get(f, [])),
                moments=Moments(n, float(self.mom_mean[i, f]), float(self.mom_m2[i, f])) if numeric and n else EMPTY,
                unseen=set(extras.unseen.get(f, ())), unseen_capped=f in extras.unseen_capped,
            )
            (features if f < layout.n_features else predictions)[name] = counts
        ids: set[str] | None = set() if self.tracks_ids else None
        return WindowSummary(
            model=self.model, cohort=self.cohorts[i], n_events=int(self.n_events[i]),
            first_ts=to_datetime(int(self.first_ts[i])), last_ts=to_datetime(int(self.last_ts[i])),
            features=features, event_ids=ids, n_event_id=int(self.n_event_id[i]),
            n_duplicate_event_id=int(self.n_duplicate[i]), event_ids_capped=bool(self.ids_capped[i]),
            duplicate_examples=list(extras.duplicate_examples), predictions=predictions,
            unknown_fields=set(extras.unknown_fields), unknown_fields_capped=extras.unknown_fields_capped,
            schema_before=self.schema_before[i], embedding=extras.embedding,
        )

    def schemas(self) -> dict[int, Schema]:
        """The schema of each cohort whose window had unknown or vanished fields (the next
        window's ``schema_before``); every other cohort's is empty, ``Schema()``."""
        cached: dict[int, Schema] | None = self.__dict__.get("_schemas")
        if cached is not None:
            return cached
        n_features = self.layout.n_features
        vanished = (self.cells[ABSENT, :, :n_features] == self.n_events[:, None]) & (self.n_events[:, None] > 0)
        rows = set(np.flatnonzero(vanished.any(axis=1)).tolist()) | {
            i for i, e in self.extras.items() if e.unknown_fields}
        names = self.layout.names
        out: dict[int, Schema] = {}
        for i in sorted(rows):
            extras = self.extras.get(i)
            out[i] = Schema(
                frozenset(extras.unknown_fields) if extras is not None else frozenset(),
                frozenset(names[f] for f in np.flatnonzero(vanished[i]).tolist()),
            )
        self.__dict__["_schemas"] = out
        return out

