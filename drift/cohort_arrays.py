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
    """One open window of a shard: the counts of every cohort row (see the module text)."""

    def __init__(self, layout: Layout, capacity: int) -> None:
        self.layout = layout
        self.capacity = 0
        self.counts = np.zeros((0, layout.n_bins), dtype=np.int64)
        self.cells = np.zeros((CELL_PLANES, 0, layout.n_fields), dtype=np.int64)
        self.mom_n = np.zeros((0, layout.n_fields), dtype=np.int64)
        self.mom_mean = np.zeros((0, layout.n_fields), dtype=np.float64)
        self.mom_m2 = np.zeros((0, layout.n_fields), dtype=np.float64)
        self.n_events = np.zeros(0, dtype=np.int64)
        self.first_ts = np.zeros(0, dtype=np.int64)
        self.last_ts = np.zeros(0, dtype=np.int64)
        self.n_event_id = np.zeros(0, dtype=np.int64)
        self.n_duplicate = np.zeros(0, dtype=np.int64)
        self.ids_capped = np.zeros(0, dtype=np.bool_)
        self.active = np.zeros(0, dtype=np.bool_)
        self.extras: dict[int, RowExtras] = {}
        self.ids: dict[int, set[str]] = {}
        self.grow(capacity)

    # -- shape -----------------------------------------------------------------------------

    def grow(self, capacity: int) -> None:
        """Room for ``capacity`` rows (new rows empty)."""
        if capacity <= self.capacity:
            return
        extra = capacity - self.capacity

        def more(a: npt.NDArray[Any], fill: Any = 0, axis: int = 0) -> npt.NDArray[Any]:
            shape = list(a.shape)
            shape[axis] = extra
            return np.concatenate([a, np.full(shape, fill, dtype=a.dtype)], axis=axis)

        self.counts = more(self.counts)
        self.cells = more(self.cells, axis=1)
        self.mom_n, self.mom_mean, self.mom_m2 = more(self.mom_n), more(self.mom_mean), more(self.mom_m2)
        self.n_events = more(self.n_events)
        self.first_ts, self.last_ts = more(self.first_ts, NO_TS_LOW), more(self.last_ts, NO_TS_HIGH)
        self.n_event_id, self.n_duplicate = more(self.n_event_id), more(self.n_duplicate)
        self.ids_capped, self.active = more(self.ids_capped, False), more(self.active, False)
        self.capacity = capacity

    def clear(self, rows: npt.NDArray[np.intp]) -> None:
        """Empty ``rows`` (after they closed, or when they are freed)."""
        self.counts[rows] = 0
        self.cells[:, rows] = 0
        self.mom_n[rows], self.mom_mean[rows], self.mom_m2[rows] = 0, 0.0, 0.0
        self.n_events[rows] = 0
        self.first_ts[rows], self.last_ts[rows] = NO_TS_LOW, NO_TS_HIGH
        self.n_event_id[rows], self.n_duplicate[rows], self.ids_capped[rows] = 0, 0, False
        self.active[rows] = False
        for row in rows.tolist():
            self.extras.pop(row, None)
            self.ids.pop(row, None)

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
        np.add.at(self.n_events, rows, 1)
        np.minimum.at(self.first_ts, rows, block.ts)
        np.maximum.at(self.last_ts, rows, block.ts)
        self.active[rows] = True
        unique, inverse = np.unique(rows, return_inverse=True)
        bins: list[npt.NDArray[np.int64]] = []
        cells: list[npt.NDArray[np.int64]] = []
        numeric_at = {name: j for j, name in enumerate(block.numeric_names)}
        for f, name in enumerate(layout.names):
            states = block.states.get(name)
            ok: npt.NDArray[np.bool_] | None = None
            if states is not None:
                for plane, code in ((NULLS, NULL), (ABSENT, MISSING), (WRONG_TYPE, WRONG)):
                    hit = np.flatnonzero(states == code)
                    if hit.size:
                        cells.append((plane * self.capacity + rows[hit]) * layout.n_fields + f)
                ok = states == OK
                for row, example in block.wrong.get(name, []):
                    _add_example(self._extras(int(rows[row])).examples.setdefault(f, []), example)
            if name in numeric_at:
                values = block.numeric[numeric_at[name]]
                self._count_numeric(f, values if ok is None else values[ok], rows if ok is None else rows[ok],
                                    inverse if ok is None else inverse[ok], unique, bins, cells)
            else:
                column = block.categorical[name]
                self._count_categorical(f, column if ok is None else column.filter(pa.array(ok)),
                                        rows if ok is None else rows[ok], bins)
        if bins:
            np.add.at(self.counts.reshape(-1), np.concatenate(bins), 1)
        if cells:
            np.add.at(self.cells.reshape(-1), np.concatenate(cells), 1)
        if layout.track_event_ids:
            self._count_event_ids(block.event_ids.to_pylist(), rows)
        for row, names in block.unknown.items():
            self._note_unknown(int(rows[row]), names)
        if layout.sampling is not None:
            self._sample(rows, cohorts, window_start_us, embeddings, block)

    def _count_numeric(
        self, f: int, values: npt.NDArray[np.float64], rows: npt.NDArray[np.intp], inverse: npt.NDArray[np.intp],
        unique: npt.NDArray[np.intp], bins: list[npt.NDArray[np.int64]], cells: list[npt.NDArray[np.int64]],
    ) -> None:
        if values.size == 0:
            return
        layout = self.layout
        edges = layout.edges[f]
        assert edges is not None
        index = np.searchsorted(edges, values, side="right")
        bins.append(rows * layout.n_bins + layout.offsets[f] + index)
        bounds = layout.bounds[f]
        if bounds is not None:
            outside = (values < bounds.low) | (values > bounds.high)
            hit = np.flatnonzero(outside)
            if hit.size:
                cells.append((OUT_OF_RANGE * self.capacity + rows[hit]) * layout.n_fields + f)
                for i in hit.tolist():
                    examples = self._extras(int(rows[i])).out_of_range_examples.setdefault(f, [])
                    if len(examples) < MAX_EXAMPLES:
                        _add_example(examples, repr(float(values[i]) + 0.0)[:64])
        # Moments of this batch per cohort row, merged into each row's (Chan et al.).
        n_unique = unique.size
        n_b = np.bincount(inverse, minlength=n_unique)
        total = np.bincount(inverse, weights=values, minlength=n_unique).astype(np.float64)
        present = np.flatnonzero(n_b)
        mean_b = np.zeros(n_unique)
        mean_b[present] = total[present] / n_b[present]
        deviation = values - mean_b[inverse]
        m2_b = np.bincount(inverse, weights=deviation * deviation, minlength=n_unique).astype(np.float64)
        self._merge_moments(f, unique[present], n_b[present], mean_b[present], m2_b[present])

    def _merge_moments(
        self, f: int, rows: npt.NDArray[np.intp], n_b: npt.NDArray[np.int64], mean_b: npt.NDArray[np.float64],
        m2_b: npt.NDArray[np.float64],
    ) -> None:
        n_a = self.mom_n[rows, f]
        mean_a = self.mom_mean[rows, f]
        n = n_a + n_b
        delta = mean_b - mean_a
        self.mom_mean[rows, f] = mean_a + delta * (n_b / n)
        self.mom_m2[rows, f] = self.mom_m2[rows, f] + m2_b + delta * delta * (n_a * n_b / n)
        self.mom_n[rows, f] = n

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

    def _count_event_ids(self, ids: list[str | None], rows: npt.NDArray[np.intp]) -> None:
        seen_sets = self.ids
        for row, event_id in zip(rows.tolist(), ids):
            if event_id is None:
                continue
            self.n_event_id[row] += 1
            seen = seen_sets.get(row)
            if seen is None:
                seen = seen_sets[row] = set()
            if event_id in seen:
                self.n_duplicate[row] += 1
                _add_example(self._extras(row).duplicate_examples, event_id[:64])
            elif len(seen) < MAX_EVENT_IDS:
                seen.add(event_id)
            else:
                self.ids_capped[row] = True

    def _sample(
        self, rows: npt.NDArray[np.intp], cohorts: list[Cohort | None], window_start_us: int,
        embeddings: list[Any] | None, block: Block,
    ) -> None:
        sampling = self.layout.sampling
        assert sampling is not None
        ids = block.event_ids.to_pylist()
        vectors = embeddings if embeddings is not None else [None] * len(block)
        for row, vector, event_id in zip(rows.tolist(), vectors, ids):
            extras = self._extras(row)
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
        schema_before: list[Schema | None],
    ) -> ClosedWindows:
        """The windows of ``rows`` as a :class:`ClosedWindows` (copies); the rows are emptied."""
        closed = ClosedWindows(
            model=model, window=window, layout=self.layout, cohorts=cohorts,
            n_events=self.n_events[rows], first_ts=self.first_ts[rows], last_ts=self.last_ts[rows],
            counts=self.counts[rows], cells=self.cells[:, rows],
            mom_n=self.mom_n[rows], mom_mean=self.mom_mean[rows], mom_m2=self.mom_m2[rows],
            n_event_id=self.n_event_id[rows], n_duplicate=self.n_duplicate[rows], ids_capped=self.ids_capped[rows],
            extras={i: self.extras[row] for i, row in enumerate(rows.tolist()) if row in self.extras},
            ids=({i: self.ids.get(row, set()) for i, row in enumerate(rows.tolist())}
                 if self.layout.track_event_ids else None),
            schema_before=schema_before,
        )
        for extras in closed.extras.values():
            if extras.embedding is not None:
                extras.embedding.flush()
        self.clear(rows)
        return closed

    # -- snapshots -------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The active rows only (a snapshot's size follows the cohorts with events)."""
        rows = np.flatnonzero(self.active)
        return {
            "layout": self.layout, "capacity": self.capacity, "rows": rows,
            "counts": self.counts[rows], "cells": self.cells[:, rows], "mom_n": self.mom_n[rows],
            "mom_mean": self.mom_mean[rows], "mom_m2": self.mom_m2[rows], "n_events": self.n_events[rows],
            "first_ts": self.first_ts[rows], "last_ts": self.last_ts[rows], "n_event_id": self.n_event_id[rows],
            "n_duplicate": self.n_duplicate[rows], "ids_capped": self.ids_capped[rows],
            "extras": self.extras, "ids": self.ids,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["layout"], state["capacity"])  # type: ignore[misc]
        rows = state["rows"]
        for name in ("counts", "mom_n", "mom_mean", "mom_m2", "n_events", "first_ts", "last_ts", "n_event_id",
                     "n_duplicate", "ids_capped"):
            getattr(self, name)[rows] = state[name]
        self.cells[:, rows] = state["cells"]
        self.active[rows] = True
        self.extras, self.ids = state["extras"], state["ids"]

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
    return {**state, "extras": extras, "ids": {row: set(ids) for row, ids in state["ids"].items()}}


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
    counts: npt.NDArray[np.int64]
    """``[k × bins]``: every field's bins side by side (:class:`Layout`)."""
    cells: npt.NDArray[np.int64]
    """``[4 × k × fields]``: nulls, absent fields, wrong types, values out of range."""
    mom_n: npt.NDArray[np.int64]
    mom_mean: npt.NDArray[np.float64]
    mom_m2: npt.NDArray[np.float64]
    n_event_id: npt.NDArray[np.int64]
    n_duplicate: npt.NDArray[np.int64]
    ids_capped: npt.NDArray[np.bool_]
    extras: dict[int, RowExtras]
    ids: dict[int, set[str]] | None
    schema_before: list[Schema | None]
    """Each cohort's schema in its previous window (None: its first window)."""

    def __len__(self) -> int:
        return len(self.cohorts)

    def field_counts(self, f: int) -> npt.NDArray[np.int64]:
        """``[k × bins of field f]``."""
        return self.counts[:, self.layout.offsets[f]:self.layout.offsets[f + 1]]

    def summary(self, i: int) -> WindowSummary:
        """Cohort ``i``'s window as a flushed :class:`WindowSummary`."""
        layout = self.layout
        extras = self.extras.get(i) or RowExtras()
        features: dict[str, FeatureCounts] = {}
        predictions: dict[str, FeatureCounts] = {}
        for f, name in enumerate(layout.names):
            numeric = layout.is_numeric(f)
            n = int(self.mom_n[i, f])
            counts = FeatureCounts(
                counts=self.counts[i, layout.offsets[f]:layout.offsets[f + 1]].copy(),
                n_null=int(self.cells[NULLS, i, f]), n_missing=int(self.cells[ABSENT, i, f]),
                n_wrong_type=int(self.cells[WRONG_TYPE, i, f]), examples=list(extras.examples.get(f, [])),
                bounds=layout.bounds[f], n_out_of_range=int(self.cells[OUT_OF_RANGE, i, f]),
                out_of_range_examples=list(extras.out_of_range_examples.get(f, [])),
                moments=Moments(n, float(self.mom_mean[i, f]), float(self.mom_m2[i, f])) if numeric and n else EMPTY,
                unseen=set(extras.unseen.get(f, ())), unseen_capped=f in extras.unseen_capped,
            )
            (features if f < layout.n_features else predictions)[name] = counts
        ids = None if self.ids is None else self.ids.get(i, set())
        return WindowSummary(
            model=self.model, cohort=self.cohorts[i], n_events=int(self.n_events[i]),
            first_ts=to_datetime(int(self.first_ts[i])), last_ts=to_datetime(int(self.last_ts[i])),
            features=features, event_ids=ids, n_event_id=int(self.n_event_id[i]),
            n_duplicate_event_id=int(self.n_duplicate[i]), event_ids_capped=bool(self.ids_capped[i]),
            duplicate_examples=list(extras.duplicate_examples), predictions=predictions,
            unknown_fields=set(extras.unknown_fields), unknown_fields_capped=extras.unknown_fields_capped,
            schema_before=self.schema_before[i], embedding=extras.embedding,
        )

    def schemas(self) -> list[Schema]:
        """Each cohort's schema in this window (the next window's ``schema_before``)."""
        n_features = self.layout.n_features
        vanished = (self.cells[ABSENT, :, :n_features] == self.n_events[:, None]) & (self.n_events[:, None] > 0)
        out = [Schema() for _ in self.cohorts]
        rows = set(np.flatnonzero(vanished.any(axis=1)).tolist()) | {
            i for i, e in self.extras.items() if e.unknown_fields}
        names = self.layout.names
        for i in rows:
            extras = self.extras.get(i)
            out[i] = Schema(
                frozenset(extras.unknown_fields) if extras is not None else frozenset(),
                frozenset(names[f] for f in np.flatnonzero(vanished[i]).tolist()),
            )
        return out

