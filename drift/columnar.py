"""Column-at-a-time window counting: many events of one cohort added in one step.

A :class:`Block` holds clean rows decoded column by column (``drift.batch``): one numpy
array per numeric feature, one Arrow string array per categorical feature. The flow counts
blocks of many cohorts at once (:mod:`drift.cohort_arrays`); :func:`add_block` counts a
block into one summary with one ``searchsorted`` + ``bincount`` per feature.

A block gives exactly the summary that :func:`drift.summary.add_event` gives for the
same events in the same order, bit for bit: numeric values still pass through the
feature's ``pending`` buffer in slices of :data:`drift.summary.FLUSH_EVERY`, so the
floating-point moments (``moments``) are taken over the same slices whatever
the batch sizes were. The tests check this equality property-based.

:func:`summarise_columns` counts a whole column set (a data frame's columns) at once,
and :func:`bin_matrix` bins many numeric features in one pass on numpy or cupy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from drift.events import RawMessage
from drift.moments import merge as merge_moments
from drift.moments import of as moments_of
from drift.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from drift.windowing import to_datetime
from drift.summary import (
    FLUSH_EVERY, MAX_EVENT_IDS, MAX_EXAMPLES, Bounds, FeatureCounts, WindowSummary, _add_example,
    _count_out_of_range, _flush_feature, _note_unknown_fields, _note_unseen, empty_summary, flush,
)

Column = Any
"""A numeric column (``float64`` numpy array) or a categorical one (``pyarrow`` string array)."""

OK, NULL, MISSING, WRONG = 0, 1, 2, 3
"""Cell states of :attr:`Block.states`: a value, ``null``, an absent field, a wrong type."""


@dataclass(slots=True)
class Block:
    """Clean rows of one model, column by column, in arrival order.

    Every profiled feature and prediction field is present and of the right type in
    every row: numeric columns are finite ``float64`` (one row of ``numeric`` each, in
    the order of ``numeric_names``), categorical ones Arrow strings without nulls.
    Prediction fields are named by their path (``prediction.score``). ``raws`` keeps
    each row's message so a late row still reaches the dead letters whole.
    """

    ts: npt.NDArray[np.int64]
    """Event time, microseconds since the epoch."""
    event_ids: pa.Array
    """``event_id`` of each row (strings, null where the event had none)."""
    numeric_names: tuple[str, ...]
    numeric: npt.NDArray[np.float64]
    """``(len(numeric_names), rows)``."""
    categorical: dict[str, pa.Array]
    raws: Sequence[RawMessage]
    states: dict[str, npt.NDArray[np.int8]] = field(default_factory=dict)
    """Columns with cells that are not plain values: :data:`OK`, :data:`NULL`, :data:`MISSING`
    or :data:`WRONG` per row (absent: every cell is a value)."""
    wrong: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    """``(row, example text)`` of each wrong-typed numeric cell, by column."""
    unknown: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """Feature names outside the profile, by row (rows decoded one by one only)."""

    def __len__(self) -> int:
        return int(self.ts.size)

    def __getstate__(self) -> dict[str, Any]:
        """The block's fields, its Arrow columns cut down to its own rows.

        A slice shares the buffers of the whole batch it was cut from, and Arrow pickles
        an array with its buffers whole: without this a 35-row block in a snapshot would
        carry the batch's megabytes. numpy already pickles (and deep-copies) a view as
        its own elements only; ``raws`` pickles as whatever sequence it is.
        """
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["event_ids"] = _compact(self.event_ids)
        state["categorical"] = {k: _compact(v) for k, v in self.categorical.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def column(self, name: str) -> Column:
        if name in self.categorical:
            return self.categorical[name]
        return self.numeric[self.numeric_names.index(name)]

    def take(self, index: npt.NDArray[np.intp]) -> Block:
        """The rows at ``index``, in that order."""
        arrow_index = pa.array(index, type=pa.int64())
        return Block(
            ts=self.ts[index], event_ids=self.event_ids.take(arrow_index), numeric_names=self.numeric_names,
            numeric=self.numeric[:, index], categorical={k: v.take(arrow_index) for k, v in self.categorical.items()},
            raws=_take_raws(self.raws, index),
            **self._rows_of(index),
        )

    def _rows_of(self, index: npt.NDArray[np.intp]) -> dict[str, Any]:
        """Cell states, wrong cells and unknown names of the (distinct) rows at ``index``, renumbered."""
        out: dict[str, Any] = {}
        if self.states:
            out["states"] = {k: v[index] for k, v in self.states.items()}
        if self.wrong or self.unknown:  # few rows have them
            new = np.full(len(self), -1, dtype=np.intp)
            new[index] = np.arange(index.size)
            out["wrong"] = {k: sorted((int(new[r]), t) for r, t in v if new[r] >= 0) for k, v in self.wrong.items()}
            out["unknown"] = dict(sorted((int(new[r]), names) for r, names in self.unknown.items() if new[r] >= 0))
        return out

    def slice(self, start: int, stop: int) -> Block:
        """Rows ``start:stop`` (views, no copy)."""
        if start == 0 and stop >= len(self):
            return self
        return Block(
            ts=self.ts[start:stop], event_ids=self.event_ids.slice(start, stop - start),
            numeric_names=self.numeric_names, numeric=self.numeric[:, start:stop],
            categorical={k: v.slice(start, stop - start) for k, v in self.categorical.items()},
            raws=self.raws[start:stop],
            **self._rows_of(np.arange(start, min(stop, len(self)))),
        )

    def select(self, mask: npt.NDArray[np.bool_]) -> Block:
        """The rows where ``mask`` is true, in order (a slice when they are contiguous)."""
        rows = np.flatnonzero(mask)
        if rows.size and rows[-1] - rows[0] + 1 == rows.size:
            return self.slice(int(rows[0]), int(rows[-1]) + 1)
        return self.take(rows)


def _compact(array: pa.Array) -> pa.Array:
    """``array`` in buffers of its own size: a copy when it views a larger array."""
    if array.offset == 0 and array.nbytes == array.get_total_buffer_size():
        return array
    return pa.concat_arrays([array])


def concat_blocks(blocks: Sequence[Block]) -> Block:
    """One block of all rows of ``blocks``, in order (they share their columns)."""
    if len(blocks) == 1:
        return blocks[0]
    first = blocks[0]
    raws = _concat_raws([block.raws for block in blocks])
    states: dict[str, npt.NDArray[np.int8]] = {}
    wrong: dict[str, list[tuple[int, str]]] = {}
    unknown: dict[int, tuple[str, ...]] = {}
    if any(b.states or b.unknown for b in blocks):
        names = {k for b in blocks for k in b.states}
        states = {k: np.concatenate([b.states.get(k, np.zeros(len(b), np.int8)) for b in blocks]) for k in names}
        offset = 0
        for b in blocks:
            for k, cells in b.wrong.items():
                wrong.setdefault(k, []).extend((r + offset, t) for r, t in cells)
            unknown.update({r + offset: names_ for r, names_ in b.unknown.items()})
            offset += len(b)
    return Block(
        ts=np.concatenate([b.ts for b in blocks]),
        event_ids=pa.concat_arrays([b.event_ids for b in blocks]),
        numeric_names=first.numeric_names,
        numeric=np.concatenate([b.numeric for b in blocks], axis=1),
        categorical={k: pa.concat_arrays([b.categorical[k] for b in blocks]) for k in first.categorical},
        raws=raws, states=states, wrong=wrong, unknown=unknown,
    )


def _take_raws(raws: Sequence[RawMessage], index: npt.NDArray[np.intp]) -> Sequence[RawMessage]:
    """The messages of the rows at ``index``; a sequence with its own ``take`` keeps its form
    (``drift.batch.ArrowRowMessages``: arrays, no object per row)."""
    take = getattr(raws, "take", None)
    return take(index) if take is not None else [raws[i] for i in index.tolist()]


def _concat_raws(parts: Sequence[Sequence[RawMessage]]) -> Sequence[RawMessage]:
    """The messages of ``parts`` end to end; parts of one type with a ``concat`` keep their form."""
    kind = type(parts[0])
    concat = getattr(kind, "concat", None)
    if concat is not None and all(type(p) is kind for p in parts):
        return concat(parts)  # type: ignore[no-any-return]
    return [raw for part in parts for raw in part]


def add_block(summary: WindowSummary, block: Block, profile: ReferenceProfile) -> WindowSummary:
    """Count every row of ``block`` into ``summary`` (in place) and return it.

    The same summary as :func:`drift.summary.add_event` over the block's events in
    order; ``summary`` may already hold events added either way.
    """
    n = len(block)
    if n == 0:
        return summary
    summary.n_events += n
    first, last = to_datetime(int(block.ts.min())), to_datetime(int(block.ts.max()))
    if summary.first_ts is None or first < summary.first_ts:
        summary.first_ts = first
    if summary.last_ts is None or last > summary.last_ts:
        summary.last_ts = last
    if summary.event_ids is not None:
        _add_event_ids(summary, block.event_ids.to_pylist())
    if n < SMALL:
        _add_small(summary, block, profile)
    else:
        for name, counts in summary.features.items():
            _add_cells(counts, block, name, profile.features[name])
        for path, counts in summary.predictions.items():
            _add_cells(counts, block, path, profile.predictions[path])
    for row, names in block.unknown.items():
        _note_unknown_fields(summary, {n: None for n in names})
    return summary


def _add_small(summary: WindowSummary, block: Block, profile: ReferenceProfile) -> None:
    """:func:`add_block`'s cells for a few rows (many cohorts: a row or two per batch).

    A column whose cells are all plain values goes to its pending buffer as
    :func:`add_column` would send it, the numeric matrix read out in one call; a column
    with nulls, absent or wrong-typed cells goes through :func:`_add_cells`.
    """
    rows = dict(zip(block.numeric_names, block.numeric.tolist()))
    for features, profiles in ((summary.features, profile.features), (summary.predictions, profile.predictions)):
        for name, counts in features.items():
            states = block.states.get(name)
            if states is not None and states.any():
                _add_cells(counts, block, name, profiles[name])
                continue
            values = rows.get(name)
            _add_pending(counts, values if values is not None else block.categorical[name].to_pylist(), profiles[name])


def _add_cells(
    counts: FeatureCounts, block: Block, name: str, profile: NumericProfile | CategoricalProfile,
) -> None:
    column = block.column(name)
    states = block.states.get(name)
    if states is None:
        add_column(counts, column, profile)
        return
    counts.n_null += int(np.count_nonzero(states == NULL))
    counts.n_missing += int(np.count_nonzero(states == MISSING))
    wrong = block.wrong.get(name, [])
    counts.n_wrong_type += len(wrong)
    for _, example in wrong:  # in row order, as one event at a time would add them
        _add_example(counts.examples, example)
    ok = states == OK
    if isinstance(column, np.ndarray):
        add_column(counts, column[ok], profile)
    else:
        add_column(counts, column.filter(pa.array(ok)), profile)


def _add_event_ids(summary: WindowSummary, ids: list[str | None]) -> None:
    seen = summary.event_ids
    assert seen is not None
    for event_id in ids:
        if event_id is None:
            continue
        summary.n_event_id += 1
        if event_id in seen:
            summary.n_duplicate_event_id += 1
            _add_example(summary.duplicate_examples, event_id[:64])
        elif len(seen) < MAX_EVENT_IDS:
            seen.add(event_id)
        else:
            summary.event_ids_capped = True


SMALL = 64
"""Columns shorter than this go through the summary's pending buffer value by value (as one
event at a time would): for a few values that is cheaper than the array calls, and a window
that gets a few rows per batch (many cohorts) keeps no pending blocks."""


def add_column(counts: FeatureCounts, column: Column, profile: NumericProfile | CategoricalProfile) -> None:
    """Count present, well-typed values of one feature (no nulls) into ``counts``."""
    if len(column) < SMALL:
        values = column.tolist() if isinstance(column, np.ndarray) else (
            column.to_pylist() if isinstance(column, (pa.Array, pa.ChunkedArray)) else list(column))
        _add_pending(counts, values, profile)
    elif isinstance(profile, NumericProfile):
        _add_numeric(counts, np.asarray(column, dtype=np.float64), profile)
    else:
        _add_categorical(counts, column, profile)


def _add_pending(counts: FeatureCounts, values: list[Any], profile: NumericProfile | CategoricalProfile) -> None:
    """Append to the pending buffer, flushing at every :data:`FLUSH_EVERY` values as ``add_event`` does."""
    while values:
        room = FLUSH_EVERY - len(counts.pending)
        counts.pending.extend(values[:room])
        values = values[room:]
        if len(counts.pending) >= FLUSH_EVERY:
            _flush_feature(counts, profile)


def _add_numeric(counts: FeatureCounts, values: npt.NDArray[np.float64], profile: NumericProfile) -> None:
    if counts.pending:
        values = np.concatenate([np.asarray(counts.pending, dtype=np.float64), values])
        counts.pending.clear()
    whole = (values.size // FLUSH_EVERY) * FLUSH_EVERY
    if whole:
        head = values[:whole]
        counts.counts += bin_counts(head, _edges(profile))
        if counts.bounds is not None:
            _count_outside(counts, head, counts.bounds)
        # Moments slice by slice, as the pending buffer would flush them, merged in order.
        for start in range(0, whole, FLUSH_EVERY):
            counts.moments = merge_moments(counts.moments, moments_of(head[start:start + FLUSH_EVERY]))
    if whole < values.size:
        counts.pending.extend(values[whole:].tolist())


COMPARE_EDGES = 48
"""Up to this many edges, :func:`bin_counts` compares the values with each edge instead
of searching: one vectorised pass per edge costs about 0.3 ns a value, a binary search
about 20 ns a value (a branch mispredicted at every level), whatever the edges."""


def bin_counts(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Counts of ``values`` (not NaN) in the ``len(edges) + 1`` bins of increasing ``edges``.

    A value's bin is the number of edges ``<=`` it, as ``searchsorted(edges, values,
    side="right")`` gives. With few edges the count of values ``>=`` each edge is taken
    (one comparison pass per edge, no index array): bin ``i`` holds the values at or above
    edge ``i-1`` less those at or above edge ``i``, exactly.

    >>> bin_counts(np.array([0.5, 1.0, 1.5, 2.5, 7.0]), np.array([1.0, 2.0])).tolist()
    [1, 2, 2]
    """
    n_bins = edges.size + 1
    if edges.size > COMPARE_EDGES:
        return np.bincount(np.searchsorted(edges, values, side="right"), minlength=n_bins)
    at_least = np.empty(n_bins + 1, dtype=np.int64)
    at_least[0], at_least[-1] = values.size, 0
    above = np.empty(values.shape, dtype=np.bool_)
    for k, edge in enumerate(edges.tolist(), start=1):
        np.greater_equal(values, edge, out=above)
        at_least[k] = np.count_nonzero(above)
    return at_least[:-1] - at_least[1:]


def _count_outside(counts: FeatureCounts, values: npt.NDArray[np.float64], bounds: Bounds) -> None:
    """Count values outside ``bounds``: two comparison passes, the examples only when there are any."""
    n_outside = 0
    if bounds.low > -math.inf:
        n_outside += int(np.count_nonzero(values < bounds.low))
    if bounds.high < math.inf:
        n_outside += int(np.count_nonzero(values > bounds.high))
    if n_outside == 0:
        return
    if len(counts.out_of_range_examples) >= MAX_EXAMPLES:
        counts.n_out_of_range += n_outside
    else:
        _count_out_of_range(counts, values, bounds)


def _add_categorical(counts: FeatureCounts, column: Column, profile: CategoricalProfile) -> None:
    if counts.pending:
        _flush_feature(counts, profile)  # earlier values first: examples keep arrival order
    strings = column if isinstance(column, (pa.Array, pa.ChunkedArray)) else pa.array(column, type=pa.string())
    unseen = len(profile.categories)
    positions = pc.index_in(strings, value_set=_categories(profile))
    index = positions.fill_null(unseen).to_numpy(zero_copy_only=False)
    before = int(counts.counts[unseen])
    counts.counts += np.bincount(index, minlength=counts.counts.size)
    if counts.counts[unseen] == before:
        return
    # Each distinct unseen value once, in order of first appearance (Arrow's ``unique``
    # keeps it): the set and the examples come out as row by row.
    for value in pc.unique(strings.filter(positions.is_null())).to_pylist():
        _note_unseen(counts, value)
        if len(counts.examples) < MAX_EXAMPLES:
            example = value[:64]
            if example not in counts.examples:
                counts.examples.append(example)


_EDGES: dict[int, tuple[NumericProfile, npt.NDArray[np.float64]]] = {}
_CATEGORIES: dict[int, tuple[CategoricalProfile, pa.Array]] = {}


def _edges(profile: NumericProfile) -> npt.NDArray[np.float64]:
    cached = _EDGES.get(id(profile))
    if cached is None or cached[0] is not profile:
        cached = (profile, np.asarray(profile.edges, dtype=np.float64))
        _EDGES[id(profile)] = cached
    return cached[1]


def _categories(profile: CategoricalProfile) -> pa.Array:
    cached = _CATEGORIES.get(id(profile))
    if cached is None or cached[0] is not profile:
        cached = (profile, pa.array(profile.categories, type=pa.string()))
        _CATEGORIES[id(profile)] = cached
    return cached[1]


def summarise_columns(
    profile: ReferenceProfile,
    columns: Mapping[str, Any],
    *,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
) -> WindowSummary:
    """The flushed summary of a window given as columns (one per feature, equal lengths).

    Numeric columns: anything ``numpy.asarray`` turns into floats; NaN counts as null,
    an infinity as a wrong type. Categorical columns: Arrow arrays or sequences of
    strings, ``None`` for null (other scalars count by their text, as in events). A
    profiled feature without a column counts as missing in every row; a column the
    profile does not know is noted as an unknown field.

    >>> from drift.reference import build_reference
    >>> p = build_reference("m", {"x": [0.0, 1, 2, 3]}, {"x": "numeric"}, {"x": 2}, "t", 4)
    >>> s = summarise_columns(p, {"x": [0.5, 2.5, float("nan")]})
    >>> s.features["x"].counts.tolist(), s.features["x"].n_null, s.n_events
    ([1, 1], 1, 3)
    """
    lengths = {len(column) for column in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns must have equal lengths; got {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    summary = empty_summary(profile, bounds=bounds, track_event_ids=False)
    summary.n_events = n
    _note_unknown_fields(summary, columns)
    for name, counts in summary.features.items():
        if name in columns:
            _summarise_column(counts, columns[name], profile.features[name])
        else:
            counts.n_missing = n
    return flush(summary, profile)


def _summarise_column(counts: FeatureCounts, column: Any, feature: NumericProfile | CategoricalProfile) -> None:
    if isinstance(feature, NumericProfile):
        values = np.asarray(column, dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            null = np.isnan(values)
            wrong = ~(finite | null)
            counts.n_null = int(null.sum())
            counts.n_wrong_type = int(wrong.sum())
            for value in values[wrong][:MAX_EXAMPLES].tolist():
                _add_example(counts.examples, repr(value)[:64])
            values = values[finite]
        _add_numeric(counts, values, feature)
    else:
        strings = _as_strings(column)
        counts.n_null = strings.null_count
        _add_categorical(counts, strings.drop_null(), feature)


def _as_strings(column: Any) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column, pa.Array):
        return column if pa.types.is_string(column.type) else column.cast(pa.string())
    if isinstance(column, np.ndarray) and column.dtype == object:
        # Strings and None only (a pandas object column): Arrow reads them without a
        # Python loop. Its inferred type says whether that is all there is (bytes make it
        # binary, a number or NaN another type or a refusal); else the loop below gives
        # each value its category text.
        try:
            strings = pa.array(column)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            strings = None
        if strings is not None and (pa.types.is_string(strings.type) or pa.types.is_null(strings.type)):
            return strings.cast(pa.string())
    from drift.categories import category_text

    return pa.array([None if v is None else category_text(v) for v in column], type=pa.string())


def bin_matrix(values: Any, edges: Sequence[Sequence[float]], xp: Any = np) -> Any:
    """Bin counts of many numeric features at once: ``(features, max bins)`` int64.

    ``values`` is ``(rows, features)`` (numpy or cupy, finite), ``edges[j]`` feature
    ``j``'s increasing interior edges. A value's bin is the number of edges ``<=`` it
    (``searchsorted(side="right")``); features with fewer edges are padded with
    ``+inf``, which no finite value reaches, and their extra bins stay empty. One
    comparison pass per edge and one ``bincount`` over all features: on a GPU the
    whole matrix is binned in a few kernels.

    >>> bin_matrix(np.array([[0.5, 5.0], [1.5, 6.0], [2.5, 7.0]]), [[1.0, 2.0], [6.0]]).tolist()
    [[1, 1, 1], [1, 2, 0]]
    """
    n_rows, n_features = values.shape
    width = max((len(e) for e in edges), default=0)
    padded = np.full((n_features, width), np.inf)
    for j, feature_edges in enumerate(edges):
        padded[j, : len(feature_edges)] = feature_edges
    device_edges = xp.asarray(padded, dtype=values.dtype)
    index = xp.zeros(values.shape, dtype=xp.int64)
    for k in range(width):
        index += values >= device_edges[:, k][None, :]
    index += xp.arange(n_features, dtype=xp.int64)[None, :] * (width + 1)
    counts = xp.bincount(index.ravel(), minlength=n_features * (width + 1))
    return counts.reshape(n_features, width + 1)
