"""The per-cohort reference implementation the array engine is checked against.

:mod:`flows.shard_windows` keeps every cohort of a shard as a row of arrays
(:mod:`drift.cohort_arrays`). This module is the earlier engine it replaced, kept for
the tests only: one state per cohort key, holding its event-time clock, the rows not yet
due and its open tumbling windows as :class:`~drift.summary.WindowSummary` objects. It
is fed by :class:`drift.batch.BatchDecoder` with ``by_model=False`` (one
:class:`drift.batch.Piece` per cohort) and emits ``("window", (cohort, window,
summary))`` and ``("late", DeadLetter)``.

The semantics are those of Bytewax's ``fold_window`` with an ``EventClock`` (ordered) and
a ``TumblingWindower`` aligned to the epoch, applied to the rows of a piece at once:

* the watermark is ``newest ts - allowed_lateness``, advancing with the system time
  that passed since the newest event; a row is *late*, and becomes a dead letter
  (reason ``late``), only when its window has closed: when the watermark at its
  arrival had reached the window's end;
* a row is added to its window once the watermark passes its ``ts`` (at once, for a
  row that arrives behind it); rows that become due at the same point of the stream
  are added in ``ts`` order (ties in arrival order);
* a window closes when the watermark reaches its end, or at the end of the input;
* a resumed snapshot does not count the downtime as elapsed time.

Two differences from the array engine are intended: the array engine counts a window's
rows in arrival order (so example lists may list values in another order, and moments
differ in the last bits), and it keeps a cohort's watermark after all its windows
closed, where this engine forgets the cohort.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Optional

import numpy as np
import numpy.typing as npt
from bytewax.operators import StatefulBatchLogic

from drift.batch import Piece
from drift.columnar import SMALL, Block, add_block, concat_blocks
from drift.events import DeadLetter, DlqReason
from drift.findings import Cohort, Window
from drift.summary import (
    EmbeddingSampling, FeatureCounts, WindowSummary, add_event, embedding_sample, empty_summary, flush,
)
from drift.reference import ReferenceProfile
from drift.windowing import (
    UTC_MAX, UTC_MIN, index_end_us, is_closed_us, is_late_us, to_datetime, to_micros, window_at, window_index_us,
)
from flows.plans import ModelPlan

STEP_ID = "summarise_windows"
PENDING_ROWS = 16_384
"""Due column-wise rows a window collects before counting them in one step."""


@dataclass(frozen=True)
class WindowSpec:
    """How one model's cohort windows are built."""

    profile: ReferenceProfile
    size: timedelta
    lateness: timedelta
    bounds: dict[str, tuple[float | None, float | None]]
    track_event_ids: bool
    sampling: EmbeddingSampling | None

    @property
    def size_us(self) -> int:
        return self.size // timedelta(microseconds=1)

    @property
    def lateness_us(self) -> int:
        return self.lateness // timedelta(microseconds=1)

    @functools.cached_property
    def blank(self) -> WindowSummary:
        """An empty summary of this model (no cohort, no embedding sample): new windows copy it."""
        return empty_summary(self.profile, bounds=self.bounds, track_event_ids=self.track_event_ids)


Closed = tuple[Cohort, Window, WindowSummary]
Output = tuple[str, Any]
"""``("window", (cohort, window, summary))`` or ``("late", DeadLetter)``."""


@dataclass
class CohortState:
    """What one cohort key keeps between batches (its snapshot)."""

    model: str = ""
    watermark_base: int = UTC_MIN
    system_time_of_max: int = 0
    queue: list[Piece] = field(default_factory=list)
    open: dict[int, WindowSummary] = field(default_factory=dict)
    pending: dict[int, list[Block]] = field(default_factory=dict)
    """Column-wise rows already due for a window, counted together once there are enough."""


def _system_now(now: Callable[[], datetime]) -> int:
    return to_micros(now())


class CohortWindows(StatefulBatchLogic[Piece, Output, CohortState]):
    """The windows of one cohort key."""

    def __init__(
        self, specs: dict[str, WindowSpec], state: CohortState | None, now: Callable[[], datetime],
        copies: bool = True,
    ) -> None:
        self._specs = specs
        self._now = now
        self._copies = copies
        self._system = _system_now(now)
        if state is None:
            state = CohortState(system_time_of_max=self._system)
        elif self._system > state.system_time_of_max:
            # Resumed: the watermark continues from the snapshot, not across the downtime.
            state.system_time_of_max = self._system
        self.state = state

    @property
    def spec(self) -> WindowSpec:
        return self._specs[self.state.model]

    # -- clock ---------------------------------------------------------------------------

    def _tick(self) -> None:
        now = _system_now(self._now)
        if now > self._system:  # never backwards (NTP steps)
            self._system = now

    def _watermark(self) -> int:
        return self.state.watermark_base + (self._system - self.state.system_time_of_max)

    # -- Bytewax hooks -------------------------------------------------------------------

    def on_batch(self, values: list[Piece]) -> tuple[Iterable[Output], bool]:
        self._tick()
        if not self.state.model and values:
            self.state.model = values[0].cohort.model
        out: list[Output] = []
        watermark = self._watermark()
        if not values:
            out.extend(self._flush(watermark))
            return out, self._is_empty()
        size, lateness = self.spec.size_us, self.spec.lateness_us
        arrivals = np.concatenate([piece.ts for piece in values])
        # The watermark as each row arrives (the row itself included: it never closes its own window).
        running = np.maximum.accumulate(np.maximum(arrivals - lateness, watermark))
        late_rows = is_late_us(arrivals, running, size)
        newest = int(running[-1])
        if newest > watermark:
            self.state.watermark_base = newest
            self.state.system_time_of_max = self._system
            watermark = newest
        fresh: list[tuple[Piece, npt.NDArray[np.intp]]] = []
        offset = 0
        for piece in values:
            rows = np.arange(offset, offset + piece.ts.size)
            offset += piece.ts.size
            late = late_rows[rows]
            if late.any():
                out.extend(("late", letter) for letter in self._late(piece, late))
                piece, rows = _select(piece, ~late), rows[~late]
            if len(piece):
                fresh.append((piece, rows))
        out.extend(self._flush(watermark, running, fresh))
        return out, self._is_empty()

    def on_notify(self) -> tuple[Iterable[Output], bool]:
        self._tick()
        out = self._flush(self._watermark())
        return out, self._is_empty()

    def on_eof(self) -> tuple[Iterable[Output], bool]:
        out = self._flush(UTC_MAX)
        return out, self._is_empty()

    def notify_at(self) -> Optional[datetime]:
        times = [index_end_us(window_id, self.spec.size_us) for window_id in self.state.open]
        times.extend(int(piece.ts.min()) for piece in self.state.queue)
        if not times:
            return None
        # The system time at which the watermark reaches the earliest of them.
        due = self.state.system_time_of_max + (min(times) - self.state.watermark_base)
        return to_datetime(max(min(due, UTC_MAX), UTC_MIN))

    def snapshot(self) -> CohortState:
        # Without a recovery store nothing keeps the snapshot past this call.
        return snapshot_state(self.state) if self._copies else self.state

    # -- internals -----------------------------------------------------------------------

    def _is_empty(self) -> bool:
        return not self.state.queue and not self.state.open

    def _late(self, piece: Piece, late: npt.NDArray[np.bool_]) -> list[DeadLetter]:
        size = self.spec.size_us
        letters = []
        block_rows = np.cumsum(piece.columnar) - 1
        event_rows = np.cumsum(~piece.columnar) - 1
        for row in np.flatnonzero(late).tolist():
            if piece.columnar[row]:
                assert piece.block is not None
                raw = piece.block.raws[int(block_rows[row])]
            else:
                raw = piece.events[int(event_rows[row])].raw
            ts = int(piece.ts[row])
            window = window_at(window_index_us(ts, size), self.spec.size)
            letters.append(DeadLetter(
                reason=DlqReason.LATE,
                detail=f"ts {to_datetime(ts).isoformat()}: its window {window.start.isoformat()} to "
                       f"{window.end.isoformat()} had closed (the cohort's newest ts less "
                       f"the allowed lateness {self.spec.lateness} had passed its end)",
                step_id=STEP_ID, topic=raw.topic, partition=raw.partition,
                offset=raw.offset, value=raw.value, key=raw.key,
            ))
        return letters

    def _flush(
        self, watermark: int, running: npt.NDArray[np.int64] | None = None,
        fresh: list[tuple[Piece, npt.NDArray[np.intp]]] = (),  # type: ignore[assignment]
    ) -> list[Output]:
        """Add the due rows, then close the windows the watermark passed.

        ``running`` is the watermark as each row of this batch arrived and ``fresh`` this
        batch's rows with their arrival positions: a row is due from the first arrival at
        which the watermark reached its ``ts`` (its own, when it arrived behind it), and
        rows are added in the order of that point, then ``ts``. Without ``running`` (system
        time, end of input) every due row is due at the same point.
        """
        due: list[Piece] = []
        steps: list[npt.NDArray[np.int64]] = []
        kept: list[Piece] = []
        queued = [(piece, None) for piece in self.state.queue]
        for piece, rows in [*queued, *fresh]:
            mask = piece.ts <= watermark
            if not mask.any():
                kept.append(piece)
                continue
            part = piece if mask.all() else _select(piece, mask)
            if not mask.all():
                kept.append(_select(piece, ~mask))
            step = np.zeros(part.ts.size, dtype=np.int64)
            if running is not None:
                step = np.searchsorted(running, part.ts, side="left").astype(np.int64)
                if rows is not None:
                    step = np.maximum(step, rows[mask])
            due.append(part)
            steps.append(step)
        self.state.queue = kept
        if due:
            self._insert(due, np.concatenate(steps))
        out: list[Output] = []
        size = self.spec.size_us
        for window_id in sorted(w for w in self.state.open if is_closed_us(w, watermark, size)):
            self._count_pending(window_id)
            summary = self.state.open.pop(window_id)
            cohort = summary.cohort if summary.cohort is not None else Cohort(self.spec.profile.model)
            out.append(("window", (cohort, window_at(window_id, self.spec.size), flush(summary, self.spec.profile))))
        return out

    def _insert(self, pieces: list[Piece], steps: npt.NDArray[np.int64]) -> None:
        """Add due rows to their windows by the point they became due, then ``ts`` (ties in arrival order)."""
        cohort = pieces[0].cohort
        size = self.spec.size_us
        ts = np.concatenate([p.ts for p in pieces])
        kinds = np.concatenate([p.columnar for p in pieces])
        blocks = [p.block for p in pieces if p.block is not None and len(p.block)]
        block = concat_blocks(blocks) if blocks else None
        if block is not None and kinds.all():
            # The common case: column-wise rows only, usually already in order.
            if not _in_order(steps, ts):
                order = np.lexsort((ts, steps))
                ts, block = ts[order], block.take(order)
            windows = window_index_us(ts, size)
            starts = [0, *(np.flatnonzero(np.diff(windows)) + 1).tolist(), ts.size]
            for a, b in zip(starts, starts[1:]):
                self._add_rows(int(windows[a]), cohort, block.slice(a, b))
            return
        events = [e for p in pieces for e in p.events]
        position = np.where(kinds, np.cumsum(kinds) - 1, np.cumsum(~kinds) - 1)
        order = np.lexsort((ts, steps))
        windows = window_index_us(ts[order], size)
        sorted_kinds = kinds[order]
        # Runs of rows of one window and one kind, in ts order.
        change = np.flatnonzero((np.diff(windows) != 0) | (np.diff(sorted_kinds.astype(np.int8)) != 0)) + 1
        for run in np.split(np.arange(order.size), change):
            rows = order[run]
            window_id = int(windows[run[0]])
            if sorted_kinds[run[0]]:
                assert block is not None
                self._add_rows(window_id, cohort, block.take(position[rows]))
            else:
                summary = self._summary(window_id, cohort)
                self._count_pending(window_id)  # earlier rows first
                for row in position[rows].tolist():
                    add_event(summary, events[row], self.spec.profile)

    def _add_rows(self, window_id: int, cohort: Cohort, block: Block) -> None:
        summary = self._summary(window_id, cohort)
        if len(block) < SMALL and window_id not in self.state.pending:
            add_block(summary, block, self.spec.profile)  # a few rows: counted now, value by value
            return
        waiting = self.state.pending.setdefault(window_id, [])
        waiting.append(block)
        if sum(len(b) for b in waiting) >= PENDING_ROWS:
            self._count_pending(window_id)

    def _count_pending(self, window_id: int) -> None:
        waiting = self.state.pending.pop(window_id, None)
        if waiting:
            add_block(self.state.open[window_id], concat_blocks(waiting), self.spec.profile)

    def _summary(self, window_id: int, cohort: Cohort) -> WindowSummary:
        summary = self.state.open.get(window_id)
        if summary is None:
            sample = None
            if self.spec.sampling is not None:
                sample = embedding_sample(self.spec.sampling, cohort.key, to_datetime(window_id * self.spec.size_us))
            summary = self.state.open[window_id] = copy_summary(self.spec.blank)
            summary.cohort = cohort
            summary.embedding = sample
        return summary


def snapshot_state(state: CohortState) -> CohortState:
    """A copy of ``state`` that later batches do not change, made without ``copy.deepcopy``.

    Bytewax snapshots every key a batch touched at the end of each epoch, so this runs
    for every active cohort every few seconds. Queued pieces, their blocks and the
    pending blocks are never changed once built (the operator replaces them), so they are
    shared; the open summaries are changed in place, so they are copied field by field:
    counts arrays copied, lists and sets of strings and numbers copied one level, the
    embedding sample (rare, and holding a random generator) deep-copied.
    """
    return CohortState(
        model=state.model, watermark_base=state.watermark_base, system_time_of_max=state.system_time_of_max,
        queue=list(state.queue), open={w: copy_summary(s) for w, s in state.open.items()},
        pending={w: list(blocks) for w, blocks in state.pending.items()},
    )


def copy_summary(s: WindowSummary) -> WindowSummary:
    """An independent copy of a window summary (see :func:`snapshot_state`)."""
    return WindowSummary(
        s.model, s.cohort, s.n_events, s.first_ts, s.last_ts,
        {name: _copy_counts(c) for name, c in s.features.items()},
        None if s.event_ids is None else set(s.event_ids), s.n_event_id, s.n_duplicate_event_id,
        s.event_ids_capped, list(s.duplicate_examples),
        {name: _copy_counts(c) for name, c in s.predictions.items()},
        set(s.unknown_fields), s.unknown_fields_capped, s.schema_before, copy.deepcopy(s.embedding),
    )


def _copy_counts(c: FeatureCounts) -> FeatureCounts:
    return FeatureCounts(
        c.counts.copy(), c.n_null, c.n_missing, c.n_wrong_type, list(c.examples), list(c.pending), c.bounds,
        c.n_out_of_range, list(c.out_of_range_examples), c.moments, set(c.unseen), c.unseen_capped,
    )


def _in_order(steps: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]) -> bool:
    """Whether rows are already sorted by (due point, ts)."""
    if ts.size < 2:
        return True
    same = steps[1:] == steps[:-1]
    return bool(np.all((steps[1:] > steps[:-1]) | (same & (ts[1:] >= ts[:-1]))))


def _select(piece: Piece, mask: npt.NDArray[np.bool_]) -> Piece:
    """The rows of ``piece`` where ``mask`` is true, in order."""
    block = piece.block
    if block is not None:
        block_mask = mask[piece.columnar]
        block = None if not block_mask.any() else (block if block_mask.all() else block.select(block_mask))
    events = piece.events
    if events:
        event_mask = mask[~piece.columnar]
        events = [e for e, keep in zip(events, event_mask.tolist()) if keep]
    return Piece(piece.cohort, piece.ts[mask], piece.columnar[mask], block, events)


def window_logic(
    specs: dict[str, WindowSpec], now: Callable[[], datetime] | None = None, copies: bool = True,
) -> Callable[[Optional[CohortState]], CohortWindows]:
    """The builder for ``op.stateful_batch`` over pieces keyed by cohort key.

    ``copies``: snapshots are independent copies (:func:`snapshot_state`), as a recovery
    store needs; False hands Bytewax the live state, for runs without one.
    """
    clock = now or (lambda: datetime.now(timezone.utc))

    def build(state: Optional[CohortState]) -> CohortWindows:
        return CohortWindows(specs, state, clock, copies)

    return build


def window_specs(plans: list[ModelPlan]) -> dict[str, WindowSpec]:
    """How each model's cohort windows are built, from the flow's plans."""
    return {
        plan.config.name: WindowSpec(
            profile=plan.profile, size=plan.config.window.size, lateness=plan.config.window.allowed_lateness,
            bounds=plan.config.feature_bounds(), track_event_ids=plan.config.tracks_event_ids(),
            sampling=plan.config.embedding_sampling(),
        )
        for plan in plans
    }


def as_pieces(item: Any) -> list[tuple[str, Piece]]:
    """A decoded batch's pieces keyed by cohort key."""
    return [(piece.cohort.key, piece) for piece in item.pieces]
