"""Cohort windows over decoded batches, all cohorts of a shard in one state.

A model's cohorts are spread over a fixed number of shards (``engine.shards``; a
cohort key's shard is a CRC-32 of the key, the same in every process). Bytewax keys
the state by ``model#shard``, so shards partition across workers and processes and
recover from snapshots; inside a shard every cohort is a row of arrays
(:mod:`drift.cohort_arrays`): a batch is counted for all its cohorts at once, and the
windows of every cohort the watermark passed close together, as one
:class:`~drift.cohort_arrays.ClosedWindows`.

The semantics are those of Bytewax's ``fold_window`` with an ``EventClock`` and a
``TumblingWindower`` aligned to the epoch, per cohort:

* each cohort has its own watermark, ``newest ts - allowed_lateness``, advancing with
  the system time that passed since its newest event; a row is *late*, and becomes a
  dead letter (reason ``late``), only when its window had closed: when its cohort's
  watermark at its arrival (the row itself included) had reached the window's end;
* a window closes when its cohort's watermark reaches its end, or at the end of the input;
* a resumed snapshot does not count the downtime as elapsed time.

A cohort with no open window whose watermark passed ``engine.idle_windows`` windows
beyond its last one frees its row (its watermark and previous schema are forgotten;
``drift_cohort_rows_freed_total``), and a freed row is reused by the next new cohort.
The schema check's memory, each cohort's schema in its previous window, is kept here too.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from bytewax.operators import StatefulBatchLogic

from drift import metrics
from flows.clock import engine_deadline
from drift.batch import DecodedBatch, Labels, ModelRows
from drift.cohort_arrays import ClosedWindows, Layout, WindowArrays
from drift.events import DeadLetter, DlqReason
from drift.findings import Cohort
from drift.rollups import MemberCounts, event_bins, rollup_cohort
from drift.summary import Schema
from drift.windowing import (
    UTC_MAX, UTC_MIN, index_end_us, is_late_us, to_datetime, to_micros, window_at, window_index_us,
)

STEP_ID = "cohort_windows"
NO_WINDOW = np.iinfo(np.int64).min // 4


@dataclass(frozen=True)
class ShardSpec:
    """How one model's cohort windows are built."""

    model: str
    layout: Layout
    size: timedelta
    lateness: timedelta
    idle_windows: int = 12

    @property
    def size_us(self) -> int:
        return self.size // timedelta(microseconds=1)

    @property
    def lateness_us(self) -> int:
        return self.lateness // timedelta(microseconds=1)


Output = tuple[str, Any]
"""``("closed", ClosedWindows)`` or ``("late", DeadLetter)``."""


@dataclass
class ShardState:
    """What one shard of a model keeps between batches (its snapshot)."""

    model: str = ""
    keys: dict[str, int] = field(default_factory=dict)
    """Cohort key -> row."""
    cohorts: list[Cohort | None] = field(default_factory=list)
    """Row -> cohort (None: a free row)."""
    names: list[str | None] = field(default_factory=list)
    """Row -> cohort key (None: a free row)."""
    free: list[int] = field(default_factory=list)
    watermark_base: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    system_time_of_max: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    last_window: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    """The newest window each row had events in."""
    in_use: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_))
    """The row holds a cohort (else it is free)."""
    schema_seen: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_))
    """The row closed a window before (its next window compares with its schema)."""
    schemas: dict[int, Schema] = field(default_factory=dict)
    """Rows whose previous window's schema was not empty."""
    open: dict[int, WindowArrays] = field(default_factory=dict)
    members: dict[int, dict[int, MemberCounts]] = field(default_factory=dict)
    """Window -> rollup row -> its members' bin counts (drift/rollups.py)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("members", {})  # snapshots written before rollups

    @property
    def capacity(self) -> int:
        return int(self.watermark_base.size)

    def copy(self) -> ShardState:
        """An independent copy (a durable run's snapshot)."""
        return ShardState(
            self.model, dict(self.keys), list(self.cohorts), list(self.names), list(self.free), self.watermark_base.copy(),
            self.system_time_of_max.copy(), self.last_window.copy(), self.in_use.copy(), self.schema_seen.copy(),
            dict(self.schemas),
            {w: arrays.copy() for w, arrays in self.open.items()},
            {w: {row: table.copy() for row, table in tables.items()} for w, tables in self.members.items()},
        )


class ShardWindows(StatefulBatchLogic[ModelRows, Output, ShardState]):
    """The windows of every cohort of one shard of one model."""

    def __init__(
        self, specs: dict[str, ShardSpec], state: ShardState | None, now: Callable[[], datetime], copies: bool = True,
    ) -> None:
        self._specs = specs
        self._now = now
        self._copies = copies
        self._system = to_micros(now())
        if state is None:
            state = ShardState()
        else:
            # Resumed: watermarks continue from the snapshot, not across the downtime.
            np.maximum(state.system_time_of_max, self._system, out=state.system_time_of_max)
        self.state = state

    @property
    def spec(self) -> ShardSpec:
        return self._specs[self.state.model]

    # -- clock -----------------------------------------------------------------------------

    def _tick(self) -> None:
        now = to_micros(self._now())
        if now > self._system:  # never backwards (NTP steps)
            self._system = now

    def _watermarks(self) -> npt.NDArray[np.int64]:
        s = self.state
        return s.watermark_base + (self._system - s.system_time_of_max)

    # -- Bytewax hooks ---------------------------------------------------------------------

    def on_batch(self, values: list[ModelRows]) -> tuple[Iterable[Output], bool]:
        self._tick()
        if not self.state.model and values:
            self.state.model = values[0].model
        out: list[Output] = []
        for item in values:
            out.extend(self._add(item))
        out.extend(self._close(self._watermarks()))
        self._forget_idle()
        return out, self._is_empty()

    def on_notify(self) -> tuple[Iterable[Output], bool]:
        self._tick()
        out = self._close(self._watermarks())
        self._forget_idle()
        return out, self._is_empty()

    def on_eof(self) -> tuple[Iterable[Output], bool]:
        out = self._close(np.full(self.state.capacity, UTC_MAX, dtype=np.int64))
        return out, self._is_empty()

    def notify_at(self) -> Optional[datetime]:
        s = self.state
        if not s.open:
            return None
        size = self.spec.size_us
        due = UTC_MAX
        for window_id, arrays in s.open.items():
            rows = np.flatnonzero(arrays.active)
            if rows.size:
                times = s.system_time_of_max[rows] + (index_end_us(window_id, size) - s.watermark_base[rows])
                due = min(due, int(times.min()))
        if due >= UTC_MAX:
            return None
        self._tick()
        return engine_deadline(to_datetime(max(due, UTC_MIN)), to_datetime(self._system))

    def snapshot(self) -> ShardState:
        # Without a recovery store nothing keeps the snapshot past this call.
        return self.state.copy() if self._copies else self.state

    # -- rows ------------------------------------------------------------------------------

    def _is_empty(self) -> bool:
        return not self.state.keys and not self.state.open

    def _rows(self, item: ModelRows) -> npt.NDArray[np.intp]:
        """The row of each event's cohort (new cohorts get rows)."""
        s = self.state
        encoded = item.keys.dictionary_encode()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        lookup = np.empty(len(encoded.dictionary), dtype=np.intp)
        added = 0
        for j, key in enumerate(encoded.dictionary.to_pylist()):
            row = s.keys.get(key)
            if row is None:
                row = self._new_row(key, Cohort(item.model, item.labels[key]))
                added += 1
            lookup[j] = row
        if added:
            metrics.COHORT_ROWS.labels(s.model).inc(added)
        out: npt.NDArray[np.intp] = lookup[codes]
        return out

    def _new_row(self, key: str, cohort: Cohort) -> int:
        s = self.state
        if s.free:
            row = s.free.pop()
            s.cohorts[row] = cohort
            s.names[row] = key
        else:
            row = len(s.cohorts)
            s.cohorts.append(cohort)
            s.names.append(key)
            if row >= s.capacity:
                self._grow(max(16, 2 * s.capacity))
        s.keys[key] = row
        s.watermark_base[row] = UTC_MIN
        s.system_time_of_max[row] = self._system
        s.last_window[row] = NO_WINDOW
        s.in_use[row] = True
        s.schema_seen[row] = False
        s.schemas.pop(row, None)
        return row

    def _grow(self, capacity: int) -> None:
        s = self.state
        extra = capacity - s.capacity
        s.watermark_base = np.concatenate([s.watermark_base, np.full(extra, UTC_MIN, np.int64)])
        s.system_time_of_max = np.concatenate([s.system_time_of_max, np.zeros(extra, np.int64)])
        s.last_window = np.concatenate([s.last_window, np.full(extra, NO_WINDOW, np.int64)])
        s.in_use = np.concatenate([s.in_use, np.zeros(extra, np.bool_)])
        s.schema_seen = np.concatenate([s.schema_seen, np.zeros(extra, np.bool_)])
        for arrays in s.open.values():
            arrays.grow(capacity)

    def _forget_idle(self) -> None:
        """Free the rows of cohorts quiet for ``idle_windows`` windows (no open window)."""
        s = self.state
        if not s.keys:
            return
        alive = s.in_use.copy()
        for arrays in s.open.values():
            alive &= ~arrays.active
        size = self.spec.size_us
        idle = alive & (self._watermarks() >= (s.last_window + self.spec.idle_windows + 1) * size)
        rows = np.flatnonzero(idle)
        if not rows.size:
            return
        for row in rows.tolist():
            cohort = s.cohorts[row]
            assert cohort is not None
            del s.keys[cohort.key]
            s.cohorts[row] = None
            s.names[row] = None
            s.free.append(row)
            s.schemas.pop(row, None)
        s.schema_seen[rows] = False
        s.in_use[rows] = False
        metrics.COHORT_ROWS.labels(s.model).dec(rows.size)
        metrics.COHORT_ROWS_FREED.labels(s.model).inc(rows.size)

    # -- counting --------------------------------------------------------------------------

    def _add(self, item: ModelRows) -> list[Output]:
        s = self.state
        spec = self.spec
        block = item.block
        if not len(block):
            return []
        rows = self._rows(item)
        size = spec.size_us
        prior = s.watermark_base[rows] + (self._system - s.system_time_of_max[rows])
        # The watermark as each row arrives (the row itself included: it never closes its own window).
        running = _running_max(np.maximum(block.ts - spec.lateness_us, prior), rows)
        late = is_late_us(block.ts, running, size)
        unique, inverse = np.unique(rows, return_inverse=True)
        newest = np.full(unique.size, UTC_MIN, dtype=np.int64)
        np.maximum.at(newest, inverse, running)
        before = s.watermark_base[unique] + (self._system - s.system_time_of_max[unique])
        moved = newest > before
        s.watermark_base[unique[moved]] = newest[moved]
        s.system_time_of_max[unique[moved]] = self._system
        out: list[Output] = []
        if late.any():
            if item.members is None:
                out.extend(("late", letter) for letter in self._late(block, np.flatnonzero(late)))
            else:
                # The event counts in its own cohort; only the rollup's sum misses it.
                metrics.ROLLUP_LATE.labels(s.model).inc(int(late.sum()))
        keep = ~late
        windows = window_index_us(block.ts, size)
        kept_windows = windows[keep]
        if kept_windows.size:
            np.maximum.at(s.last_window, rows[keep], kept_windows)
        for window_id in np.unique(kept_windows).tolist():
            chosen = keep & (windows == window_id)
            arrays = s.open.get(window_id)
            if arrays is None:
                arrays = s.open[window_id] = WindowArrays(spec.layout, s.capacity)
            if chosen.all():
                part, part_rows, part_embeddings = block, rows, item.embeddings
            else:
                part, part_rows = block.select(chosen), rows[chosen]
                part_embeddings = None if item.embeddings is None else [
                    e for e, c in zip(item.embeddings, chosen.tolist()) if c]
            arrays.count(part, part_rows, s.cohorts, window_id * size, part_embeddings)
            if item.members is not None:
                self._count_members(window_id, part, part_rows,
                                    item.members if chosen.all() else item.members.filter(pa.array(chosen)))
        return out

    def _count_members(self, window_id: int, block: Any, rows: npt.NDArray[np.intp], members: pa.Array) -> None:
        """Each member cohort's bin counts in the rollup rows ``rows`` (for attribution)."""
        tables = self.state.members.setdefault(window_id, {})
        events, bins = event_bins(self.spec.layout, block)
        encoded = members.dictionary_encode()
        member_of = encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp)
        names = encoded.dictionary.to_pylist()
        by_row = np.argsort(rows, kind="stable")
        row_ids, row_starts = np.unique(rows[by_row], return_index=True)
        of_event = rows[events]
        order = np.argsort(of_event, kind="stable")
        starts = np.searchsorted(of_event[order], row_ids, side="left")
        ends = np.searchsorted(of_event[order], row_ids, side="right")
        row_ends = [*row_starts[1:].tolist(), rows.size]
        for k, row in enumerate(row_ids.tolist()):
            table = tables.get(row)
            if table is None:
                table = tables[row] = MemberCounts(self.spec.layout.n_bins)
            mine = order[starts[k]:ends[k]]
            table.add(names, member_of, by_row[row_starts[k]:row_ends[k]], events[mine], bins[mine])

    def _late(self, block: Any, rows: npt.NDArray[np.intp]) -> list[DeadLetter]:
        spec = self.spec
        letters = []
        for row in rows.tolist():
            raw = block.raws[row]
            ts = int(block.ts[row])
            window = window_at(window_index_us(ts, spec.size_us), spec.size)
            letters.append(DeadLetter(
                reason=DlqReason.LATE,
                detail=f"ts {to_datetime(ts).isoformat()}: its window {window.start.isoformat()} to "
                       f"{window.end.isoformat()} had closed (the cohort's newest ts less "
                       f"the allowed lateness {spec.lateness} had passed its end)",
                step_id=STEP_ID, topic=raw.topic, partition=raw.partition,
                offset=raw.offset, value=raw.value, key=raw.key,
            ))
        return letters

    # -- closing ---------------------------------------------------------------------------

    def _close(self, watermarks: npt.NDArray[np.int64]) -> list[Output]:
        """Close, window by window in time order, the cohort windows their watermark passed."""
        s = self.state
        spec = self.spec
        out: list[Output] = []
        for window_id in sorted(s.open):
            arrays = s.open[window_id]
            rows = np.flatnonzero(arrays.active & (watermarks[: arrays.capacity] >= index_end_us(window_id, spec.size_us)))
            if rows.size:
                cohorts: list[Cohort] = [s.cohorts[r] for r in rows.tolist()]  # type: ignore[misc]
                before: list[Schema | None] = [
                    s.schemas.get(r, Schema()) if seen else None
                    for r, seen in zip(rows.tolist(), s.schema_seen[rows].tolist())
                ]
                keys: list[str] = [s.names[r] for r in rows.tolist()]  # type: ignore[misc]
                closed = arrays.take(rows, cohorts, window_at(window_id, spec.size), s.model, before, keys)
                tables = s.members.get(window_id)
                if tables:
                    for i, row in enumerate(rows.tolist()):
                        table = tables.pop(row, None)
                        if table is not None:
                            closed.members[i] = table
                if s.schemas:
                    for row in rows.tolist():
                        s.schemas.pop(row, None)
                for i, schema in closed.schemas().items():
                    s.schemas[int(rows[i])] = schema
                s.schema_seen[rows] = True
                out.append(("closed", closed))
            if not arrays.active.any():
                del s.open[window_id]
                s.members.pop(window_id, None)
        return out


def _running_max(values: npt.NDArray[np.int64], rows: npt.NDArray[np.intp]) -> npt.NDArray[np.int64]:
    """The running maximum of ``values`` in arrival order within each row's events."""
    if values.size == 0:
        return values
    order = np.argsort(rows, kind="stable")
    ordered = values[order]
    group = rows[order]
    starts = np.concatenate([[True], group[1:] != group[:-1]])
    if starts.sum() == 1:
        result = np.maximum.accumulate(ordered)
    else:
        low = int(ordered.min())
        span = int(ordered.max()) - low + 1
        rank = np.cumsum(starts) - 1
        if span * (int(rank[-1]) + 1) < (1 << 62):
            # Each group lifted above the previous ones, so one running maximum serves all.
            lift = rank.astype(np.int64) * span
            result = np.maximum.accumulate((ordered - low) + lift) - lift + low
        else:
            result = np.empty_like(ordered)
            bounds = [*np.flatnonzero(starts).tolist(), ordered.size]
            for a, b in zip(bounds, bounds[1:]):
                result[a:b] = np.maximum.accumulate(ordered[a:b])
    out = np.empty_like(values)
    out[order] = result
    return out


# -- routing ---------------------------------------------------------------------------------

_SHARD_CACHE_MAX = 1 << 20


def shard_of(key: str, shards: int) -> int:
    """The shard of a cohort key: CRC-32 of its UTF-8 bytes modulo ``shards`` (stable across processes).

    >>> shard_of("m|tenant=a", 8) == shard_of("m|tenant=a", 8) < 8
    True
    """
    return zlib.crc32(key.encode()) % shards


def _shards_of(keys: list[str], shards: int, cache: dict[str, int]) -> npt.NDArray[np.int64]:
    """:func:`shard_of` of each key, remembered in ``cache`` (bounded)."""
    found = list(map(cache.get, keys))
    if None in found:
        if len(cache) >= _SHARD_CACHE_MAX:
            cache.clear()
        for j, key in enumerate(keys):
            if found[j] is None:
                found[j] = cache[key] = shard_of(key, shards)
    return np.asarray(found, dtype=np.int64)


def shard_key(model: str, shard: int, shards: int) -> str:
    """The state key of one shard: ``model#shard/shards`` (the count is part of it, so a
    recovery folder says how many shards it was written with)."""
    return f"{model}#{shard}/{shards}"


def shards_of_key(key: str) -> int | None:
    """The shard count recorded in a state key of :func:`shard_key` (None for another key).

    >>> shards_of_key(shard_key("credit-risk", 3, 8)), shards_of_key("credit-risk|tenant=a")
    (8, None)
    """
    head, sep, count = key.rpartition("/")
    if not sep or "#" not in head or not count.isdigit():
        return None
    return int(count)


class _RollupLabels(Mapping[str, Labels]):
    """A rollup's labels by rollup key, built only for the keys asked for (new rollup cohorts)."""

    def __init__(self, model: str, members: Mapping[str, Labels], first: dict[str, str], kept: tuple[str, ...]) -> None:
        self._model = model
        self._members = members
        self._first = first
        self._kept = kept

    def __getitem__(self, key: str) -> Labels:
        return rollup_cohort(Cohort(self._model, self._members[self._first[key]]), self._kept).labels

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)


def rollup_rows(item: ModelRows, rollups: list[tuple[str, ...]], cache: dict[tuple[str, int], str]) -> list[ModelRows]:
    """``item``'s rows again for each rollup (the labels it keeps), keyed by their rollup
    cohorts, with each row's own cohort key as its member (``cache``: key and rollup -> rollup key)."""
    encoded = item.keys.dictionary_encode()
    names = encoded.dictionary.to_pylist()
    out = []
    for r, kept in enumerate(rollups):
        found = [cache.get((key, r)) for key in names]
        if None in found:
            if len(cache) >= _SHARD_CACHE_MAX:
                cache.clear()
            for j, key in enumerate(names):
                if found[j] is None:
                    found[j] = cache[(key, r)] = rollup_cohort(Cohort(item.model, item.labels[key]), kept).key
        first: dict[str, str] = {}
        for rolled, key in zip(found, names):
            assert rolled is not None
            first.setdefault(rolled, key)
        keys = pa.DictionaryArray.from_arrays(encoded.indices, pa.array(found, type=pa.string()))
        labels = _RollupLabels(item.model, item.labels, first, kept)
        out.append(ModelRows(item.model, item.block, keys, labels, item.embeddings, members=item.keys))
    return out


def as_shards(
    shards: int, rollups: dict[str, list[tuple[str, ...]]] | None = None,
) -> Callable[[DecodedBatch], list[tuple[str, ModelRows]]]:
    """A decoded batch's rows keyed by ``model#shard``, each shard's rows in arrival order;
    ``rollups``: model -> the labels each of its rollups keeps (their rows follow the model's)."""
    cache: dict[str, int] = {}
    rolled: dict[tuple[str, int], str] = {}
    rollups = rollups or {}

    def split(batch: DecodedBatch) -> list[tuple[str, ModelRows]]:
        out: list[tuple[str, ModelRows]] = []
        items = batch.models
        if rollups:
            items = [*items, *(r for item in items if item.model in rollups
                               for r in rollup_rows(item, rollups[item.model], rolled))]
        for item in items:
            if shards == 1:
                out.append((shard_key(item.model, 0, 1), item))
                continue
            encoded = item.keys.dictionary_encode()
            by_key = _shards_of(encoded.dictionary.to_pylist(), shards, cache)
            of_row = by_key[encoded.indices.to_numpy(zero_copy_only=False)]
            present = np.unique(of_row)
            if present.size == 1:
                out.append((shard_key(item.model, int(present[0]), shards), item))
                continue
            for shard in present.tolist():
                rows = np.flatnonzero(of_row == shard)
                embeddings = None if item.embeddings is None else [item.embeddings[i] for i in rows.tolist()]
                members = None if item.members is None else item.members.take(pa.array(rows))
                out.append((shard_key(item.model, shard, shards), ModelRows(
                    item.model, item.block.take(rows), item.keys.take(pa.array(rows)), item.labels, embeddings,
                    members)))
        return out

    return split


def shard_logic(
    specs: dict[str, ShardSpec], now: Callable[[], datetime] | None = None, copies: bool = True,
) -> Callable[[Optional[ShardState]], ShardWindows]:
    """The builder for ``op.stateful_batch`` over rows keyed by ``model#shard``.

    ``copies``: snapshots are independent copies, as a recovery store needs; False hands
    Bytewax the live state, for runs without one.
    """
    clock = now or (lambda: datetime.now(timezone.utc))

    def build(state: Optional[ShardState]) -> ShardWindows:
        return ShardWindows(specs, state, clock, copies)

    return build
