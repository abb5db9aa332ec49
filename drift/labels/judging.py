"""One model's delayed labels in the stream: predictions wait, labels join, cohort windows are judged.

:class:`LabelState` is the state of the dataflow's labels step for one model (pure: no
dataflow, the clock passed in). It holds

- the predictions waiting for their labels (:class:`~drift.labels.join.PendingPredictions`,
  bounded by the model's ``labels.horizon`` and ``labels.cap``),
- the outcomes per cohort window of the prediction's time
  (:class:`~drift.labels.metrics.WindowOutcomes`),
- the cohorts, as rows (a cohort key's row is given on its first prediction and kept),
- the prediction-time watermark, as the cohort windows keep it: the newest prediction
  ``ts`` less the window's allowed lateness, plus the system time since that prediction
  arrived;
- the labels read ahead of their predictions (below).

Labels wait for the predictions
    Predictions and labels come on two streams (two topics, or two paths of one file's
    batches), and either may be read ahead of the other. A label joins once the predictions
    have been read up to its ``ts``: when its prediction is held and a prediction at or
    after its ``ts`` has been read, or else when the watermark has passed its ``ts`` (a
    prediction comes before its label), so that a label read before its prediction is not
    lost as unmatched, and a label does not move the join state's clock ahead of the
    predictions still to come. At most ``max_waiting_labels`` labels wait (the oldest are joined first
    past it), and at the end of the input (:meth:`LabelState.flush`) every waiting label
    is joined with the predictions there are.

Judging rule
    A cohort window is judged once, at the first of:

    - it has closed (the watermark reached its end) and its label coverage (labels
      joined / predictions made) has reached the gate (``gate``: the SLOs'
      ``label_coverage >= x before judging``, :data:`DEFAULT_GATE` without one). It is
      then judged with the labels joined so far (``judged_by = "coverage"``);
    - its last predictions have left the join state at the horizon (the newest ``ts``
      seen, of predictions and labels, is ``horizon`` past the window's end): no label can
      join it any more, and it is judged with what it has (``judged_by = "horizon"``),
      whatever its coverage. Below the gate its SLOs are not judged: their findings are
      skipped, with the coverage as the reason.

    A judged window's counts are taken out of the state (:meth:`WindowOutcomes.pop`), so
    the state holds only windows still waiting. A prediction for a window that has already
    closed is not counted (its window may already be judged; the cohort windows send
    such an event to the dead letters as ``late``); a label whose prediction's window was
    already judged is counted as ``after_judging`` and left out.

Snapshots: the state pickles as its arrays (the join state and the outcomes keep only
their live rows), the cohorts, the watermark and the counters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from drift.findings import Cohort, Window
from drift.labels.join import Joined, Kind, PendingPredictions, hash_ids
from drift.labels.metrics import OutcomeCounts, WindowOutcomes, WindowQuality, group_keys, label_coverage, window_quality
from drift.windowing import to_datetime

DEFAULT_GATE = 0.5
"""Label coverage a closed window needs before it is judged, when the SLOs give no gate."""

JudgedBy = Literal["coverage", "horizon"]

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PredictionRows:
    """The predictions of one model in one source batch (cohort rows only), as arrays."""

    model: str
    ids: pa.Array
    """Join key values (strings; null where a row has none)."""
    cohort_codes: npt.NDArray[np.int64]
    """Each row's cohort, as an index into ``cohorts``."""
    cohorts: Sequence[Cohort]
    ts: npt.NDArray[np.int64]
    """Prediction time, microseconds since the epoch."""
    predictions: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]
    """Rows whose prediction is present and suits the model's kind (the others are counted, not kept)."""

    def __len__(self) -> int:
        return int(self.ts.size)


def usable_predictions(kind: Kind, values: npt.NDArray[np.float64], n_classes: int | None) -> npt.NDArray[np.bool_]:
    """Which prediction values suit ``kind`` (as :func:`drift.labels.join.check_values`, without raising)."""
    finite = np.isfinite(values)
    if kind == "binary":
        out: npt.NDArray[np.bool_] = finite & (values >= 0.0) & (values <= 1.0)
    elif kind == "multiclass":
        out = finite & (values >= 0) & (values == np.floor(values)) & (values < (n_classes or 0))
    else:
        out = finite
    return out


@dataclass(frozen=True)
class JudgedWindows:
    """Cohort windows judged now: entry ``i`` is ``cohorts[i]`` in ``windows[i]``."""

    cohorts: list[Cohort]
    windows: list[Window]
    counts: OutcomeCounts
    judged_by: list[JudgedBy]
    gate: float

    def __len__(self) -> int:
        return len(self.cohorts)

    def below_gate(self) -> npt.NDArray[np.bool_]:
        """Entries whose label coverage is below the gate (judged at the horizon)."""
        coverage = label_coverage(self.counts.n_labelled, self.counts.n_predictions)
        out: npt.NDArray[np.bool_] = ~(np.nan_to_num(coverage, nan=0.0) >= self.gate)
        return out


def _nan_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


_METRICS: Mapping[str, tuple[str, ...]] = {
    "binary": ("precision", "recall", "f1", "accuracy", "log_loss", "brier", "ece"),
    "multiclass": ("precision", "recall", "f1", "accuracy"),
    "regression": ("mae", "rmse"),
}


@dataclass(frozen=True)
class QualityReport:
    """The quality of one cohort window, as the run's output shows it.

    ``judged_by`` is ``coverage`` or ``horizon`` for a judged window, None for one still
    waiting when the input ended (its values are those so far).
    """

    cohort: Cohort
    window: Window
    kind: Kind
    judged_by: JudgedBy | None
    n_predictions: int
    n_labelled: int
    label_coverage: float | None
    metrics: Mapping[str, float | None]
    reliability: list[dict[str, float | int | None]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.cohort.model, "cohort": self.cohort.to_dict(), "cohort_key": self.cohort.key,
            "window_start": self.window.start.isoformat(), "window_end": self.window.end.isoformat(),
            "kind": self.kind, "judged": self.judged_by is not None, "judged_by": self.judged_by,
            "n_predictions": self.n_predictions, "n_labelled": self.n_labelled,
            "label_coverage": self.label_coverage, **dict(self.metrics),
            **({"reliability": self.reliability} if self.reliability is not None else {}),
        }


def quality_reports(
    cohorts: Sequence[Cohort], windows: Sequence[Window], counts: OutcomeCounts,
    judged_by: Sequence[JudgedBy | None],
) -> list[QualityReport]:
    """One :class:`QualityReport` per entry of ``counts`` (undefined metrics are None)."""
    quality: WindowQuality = window_quality(counts)
    names = _METRICS[counts.kind]
    out = []
    for i, (cohort, window) in enumerate(zip(cohorts, windows)):
        table = None
        if quality.reliability is not None:
            r = quality.reliability
            table = [
                {"lower": float(r.edges[b]), "upper": float(r.edges[b + 1]), "count": int(r.count[i, b]),
                 "mean_score": _nan_none(float(r.mean_score[i, b])), "mean_label": _nan_none(float(r.mean_label[i, b]))}
                for b in range(r.count.shape[1])
            ]
        out.append(QualityReport(
            cohort=cohort, window=window, kind=counts.kind, judged_by=judged_by[i],
            n_predictions=int(quality.n_predictions[i]), n_labelled=int(quality.n_labelled[i]),
            label_coverage=_nan_none(float(quality.label_coverage[i])),
            metrics={name: _nan_none(float(getattr(quality, name)[i])) for name in names},
            reliability=table,
        ))
    return out


@dataclass
class LabelCounters:
    """What became of the predictions and labels of one model (cumulative)."""

    predictions: dict[str, int] = field(default_factory=dict)
    """``kept``, ``missing`` (no usable prediction value), ``late`` (window already closed)."""
    labels: dict[str, int] = field(default_factory=dict)
    """``after_judging`` (joined, but the window was already judged)."""

    def add(self, which: dict[str, int], outcome: str, n: int) -> None:
        if n:
            which[outcome] = which.get(outcome, 0) + n


class LabelState:
    """One model's join state, window outcomes, cohorts and watermark (see the module text).

    Parameters
    ----------
    model, kind
        The model and its kind.
    size, lateness
        The model's window size and allowed lateness.
    horizon, cap
        Bounds of the join state.
    gate
        Label coverage a closed window needs to be judged before the horizon.
    max_waiting_labels
        Labels held at most while the predictions are read up to their ``ts`` (``cap`` by default).
    threshold, n_classes, n_bins
        As :class:`~drift.labels.metrics.WindowOutcomes`.
    """

    def __init__(
        self, model: str, kind: Kind, size: timedelta, lateness: timedelta, horizon: timedelta, cap: int,
        gate: float = DEFAULT_GATE, threshold: float = 0.5, n_classes: int | None = None, n_bins: int = 10,
        max_waiting_labels: int | None = None,
    ) -> None:
        if size <= timedelta(0):
            raise ValueError(f"size must be a positive duration; got {size!r}")
        self.model = model
        self.kind: Kind = kind
        self.size_us = size // timedelta(microseconds=1)
        self.lateness_us = lateness // timedelta(microseconds=1)
        self.gate = gate
        self.n_classes = n_classes
        self.pending = PendingPredictions(kind, horizon, cap)
        self.outcomes = WindowOutcomes(kind, n_classes=n_classes, threshold=threshold, n_bins=n_bins)
        self.cohorts: list[Cohort] = []
        self.rows: dict[str, int] = {}
        """Cohort key -> row."""
        self.max_ts: int | None = None
        """Newest prediction ``ts`` (µs)."""
        self.system_time_of_max: datetime | None = None
        self.closed_below = np.iinfo(np.int64).min
        """Window ids below this had closed at the last check."""
        self.counters = LabelCounters()
        self.n_judged: dict[JudgedBy, int] = {"coverage": 0, "horizon": 0}
        self.max_waiting_labels = cap if max_waiting_labels is None else max_waiting_labels
        self.waiting_keys: pa.Array = pa.array([], type=pa.string())
        self.waiting_hashes = np.zeros(0, dtype=np.uint64)
        """The 64-bit keys of ``waiting_keys`` (:func:`~drift.labels.join.hash_ids`; 0 for a null)."""
        """Labels waiting for the predictions to be read up to their ``ts``, in arrival order."""
        self.waiting_labels = np.zeros(0, dtype=np.float64)
        self.waiting_ts = np.zeros(0, dtype=np.int64)

    # -- clocks -----------------------------------------------------------------------------

    def watermark(self, now: datetime) -> int | None:
        """The prediction-time watermark (µs): windows ending at or before it have closed."""
        if self.max_ts is None or self.system_time_of_max is None:
            return None
        idle = max(timedelta(0), now - self.system_time_of_max) // timedelta(microseconds=1)
        return self.max_ts - self.lateness_us + idle

    def resumed(self, now: datetime) -> None:
        """After a restart: the downtime is not elapsed event time (as the cohort windows' clock)."""
        if self.system_time_of_max is not None:
            self.system_time_of_max = max(self.system_time_of_max, now)

    def _closed_below(self, now: datetime) -> int:
        mark = self.watermark(now)
        return np.iinfo(np.int64).min if mark is None else mark // self.size_us

    def _final_below(self) -> int:
        """Window ids below this have no prediction left in the join state (the horizon passed them)."""
        if self.pending.newest_ts == np.iinfo(np.int64).min:
            return np.iinfo(np.int64).min
        return (self.pending.newest_ts - self.pending.horizon_us) // self.size_us

    def next_deadline(self, now: datetime) -> datetime | None:
        """System time at which, without new predictions, the next held window closes or the
        next waiting label is joined."""
        if self.max_ts is None or self.system_time_of_max is None:
            return None
        marks = []
        if len(self.outcomes):
            _, windows = self.outcomes.keys()
            open_ = windows[windows >= self._closed_below(now)]
            if open_.size:
                marks.append((int(open_.min()) + 1) * self.size_us)
        if self.waiting_ts.size:
            marks.append(int(self.waiting_ts.min()))
        if not marks:
            return None
        return self.system_time_of_max + timedelta(microseconds=max(0, min(marks) + self.lateness_us - self.max_ts))

    # -- input ------------------------------------------------------------------------------

    def _rows_of(self, cohorts: Sequence[Cohort]) -> npt.NDArray[np.int64]:
        out = np.empty(len(cohorts), dtype=np.int64)
        for i, cohort in enumerate(cohorts):
            row = self.rows.get(cohort.key)
            if row is None:
                row = self.rows[cohort.key] = len(self.cohorts)
                self.cohorts.append(cohort)
            out[i] = row
        return out

    def add_predictions(self, batch: PredictionRows, now: datetime) -> list[JudgedWindows]:
        """Count and keep a batch of predictions; returns the windows that became due.

        While labels wait, the batch is added in ``ts`` order, in parts cut at the window
        boundaries it spans and where a waiting label needs it (:meth:`_cuts`), each after the
        waiting labels that come before it have joined: the windows are judged as the
        predictions cross each window's end (not once for a batch that spans hours), and a
        batch that spans a gap in the traffic does not move the join state's clock (and so
        its horizon) past the predictions of labels read before it.
        """
        n = len(batch)
        if n == 0:
            return self.advance(now)
        windows = batch.ts // self.size_us
        late = windows < self._closed_below(now)
        keep = batch.valid & ~late
        self.counters.add(self.counters.predictions, "missing", int(np.count_nonzero(~batch.valid)))
        self.counters.add(self.counters.predictions, "late", int(np.count_nonzero(batch.valid & late)))
        self.counters.add(self.counters.predictions, "kept", int(np.count_nonzero(keep)))
        rows = self._rows_of(batch.cohorts)[batch.cohort_codes]
        cuts = self._cuts(batch, keep)
        if cuts.size:
            order = np.argsort(batch.ts, kind="stable")
            chunks = np.split(order, np.unique(np.searchsorted(batch.ts[order], cuts, side="right")))
            chunks = [c for c in chunks if c.size]
        else:
            chunks = [np.arange(n)]
        out: list[JudgedWindows] = []
        for chunk in chunks:
            # Windows are judged as the labels join, chunk by chunk (at the coverage they reach).
            # Labels join before the chunk moves the clock: those read up to its start, and those
            # whose prediction came in an earlier chunk.
            first = int(batch.ts[chunk].min())
            joined = self._join_waiting(first - self.lateness_us, first)
            if joined is not None:
                out.extend(self._due(now, joined))
            mine = chunk[keep[chunk]]
            if mine.size:
                ids = batch.ids if mine.size == n else batch.ids.take(pa.array(mine))
                self.pending.add_predictions(ids, rows[mine], windows[mine], batch.predictions[mine], batch.ts[mine])
                self.outcomes.add_predictions(rows[mine], windows[mine])
            newest = int(batch.ts[chunk].max())
            if self.max_ts is None or newest > self.max_ts:
                self.max_ts, self.system_time_of_max = newest, now
        out.extend(self._due(now, self._join_waiting(self.watermark(now), self.max_ts)))
        return out

    def _cuts(self, batch: PredictionRows, keep: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        """Where to cut a batch of predictions while labels wait (``ts`` values: a part ends
        with the predictions at or before a cut): before each window end the batch spans, and
        where a waiting label would otherwise lose its prediction to the clock.

        A waiting label at ``L`` whose prediction at ``p`` is held or in the batch, with ``L −
        p ≤ horizon``, is lost if the clock passes ``p + horizon`` before it joins; it joins
        before the part that starts after a cut in ``[L, p + horizon]``. The fewest cuts that
        meet every such interval ending inside the batch are the interval ends, taken greedily
        in order (interval stabbing).
        """
        none = np.zeros(0, dtype=np.int64)
        m = self.waiting_ts.size
        if m == 0:
            return none
        first, last = int(batch.ts.min()), int(batch.ts.max())
        # Window ends within the batch (a part ends just before each).
        ends = np.arange(first // self.size_us + 1, last // self.size_us + 1, dtype=np.int64) * self.size_us - 1
        h = self.pending.horizon_us
        if min(first, int(self.pending.oldest_ts)) + h >= last:
            return ends  # the batch moves the clock past no prediction's horizon
        p = np.full(m, np.iinfo(np.int64).max, dtype=np.int64)
        slots = self.pending.index.lookup(self.waiting_hashes, self.pending.keys)
        held = slots >= 0
        p[held] = self.pending.ts[slots[held]]
        mine = np.flatnonzero(keep)
        if mine.size:
            hashed = hash_ids(batch.ids.take(pa.array(mine)) if mine.size < len(batch) else batch.ids)[0]
            order = np.argsort(hashed, kind="stable")
            at = np.minimum(np.searchsorted(hashed[order], self.waiting_hashes), mine.size - 1)
            found = ~held & (hashed[order][at] == self.waiting_hashes)
            p[found] = batch.ts[mine[order[at[found]]]]
        right = p + h
        risk = (p != np.iinfo(np.int64).max) & (self.waiting_ts - p <= h) & (right < last)
        if not risk.any():
            return ends
        left, right = self.waiting_ts[risk], right[risk]
        cuts: list[int] = []
        for i in np.argsort(right, kind="stable").tolist():
            if not cuts or left[i] > cuts[-1]:
                cuts.append(int(right[i]))
        return np.union1d(ends, np.asarray(cuts, dtype=np.int64))

    def add_labels(self, keys: pa.Array, labels: npt.NDArray[np.float64], ts: npt.NDArray[np.int64],
                   now: datetime) -> list[JudgedWindows]:
        """Take a batch of labels (checked by the decoder): they join once the predictions are
        read up to their ``ts``. Returns the windows due now."""
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        if len(keys):
            keys = keys.cast(pa.string())
            self.waiting_keys = pa.concat_arrays([self.waiting_keys, keys])
            self.waiting_hashes = np.concatenate([self.waiting_hashes, hash_ids(keys)[0]])
            self.waiting_labels = np.concatenate([self.waiting_labels, np.asarray(labels, dtype=np.float64)])
            self.waiting_ts = np.concatenate([self.waiting_ts, np.asarray(ts, dtype=np.int64)])
        return self.advance(now)

    def advance(self, now: datetime) -> list[JudgedWindows]:
        """Join the labels whose ``ts`` the watermark has passed; returns the windows due now."""
        return self._due(now, self._join_waiting(self.watermark(now), self.max_ts))

    def flush(self, now: datetime) -> list[JudgedWindows]:
        """At the end of the input: join every waiting label; returns the windows due now."""
        return self._due(now, self._join_waiting(None, flush=True))

    def _due(self, now: datetime, touched: npt.NDArray[np.uint64] | None) -> list[JudgedWindows]:
        judged = self.due(now, touched)
        return [] if judged is None else [judged]

    @property
    def n_waiting_labels(self) -> int:
        return int(self.waiting_ts.size)

    def _join_waiting(self, mark: int | None, upto: int | None = None,
                      flush: bool = False) -> npt.NDArray[np.uint64] | None:
        """Join the waiting labels whose ``ts`` is at or before ``mark``, and those whose
        prediction is held with ``ts`` at or before ``upto`` (every one with ``flush``); the
        group keys of the cohort windows they joined."""
        n = self.waiting_ts.size
        if n == 0:
            return None
        if flush:
            ready = np.ones(n, dtype=np.bool_)
        else:
            ready = np.zeros(n, dtype=np.bool_) if mark is None else self.waiting_ts <= mark
            if upto is not None:
                # A label whose prediction is held need not wait for the watermark once the
                # predictions reach its ts (and must not: the clock moving on past the horizon
                # would expire its prediction). Labels further ahead wait: joining them would move
                # the clock past predictions still to come.
                reached = self.waiting_ts <= upto
                if reached.any():
                    held = self.pending.index.lookup(self.waiting_hashes[reached], self.pending.keys) >= 0
                    ready[np.flatnonzero(reached)[held]] = True
            over = n - int(np.count_nonzero(ready)) - self.max_waiting_labels
            if over > 0:  # too many waiting: the oldest go now
                rest = np.flatnonzero(~ready)
                ready[rest[np.argsort(self.waiting_ts[rest], kind="stable")[:over]]] = True
        if not ready.any():
            return None
        index = np.flatnonzero(ready)
        keys = self.waiting_keys if index.size == n else self.waiting_keys.take(pa.array(index))
        labels, ts = self.waiting_labels[index], self.waiting_ts[index]
        if index.size == n:
            self.waiting_keys = pa.array([], type=pa.string())
            self.waiting_hashes = np.zeros(0, dtype=np.uint64)
            self.waiting_labels, self.waiting_ts = np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
        else:
            rest = pa.array(np.flatnonzero(~ready))
            self.waiting_keys = self.waiting_keys.take(rest)
            self.waiting_hashes = self.waiting_hashes[~ready]
            self.waiting_labels, self.waiting_ts = self.waiting_labels[~ready], self.waiting_ts[~ready]
        return self._join(keys, labels, ts)

    def _join(self, keys: pa.Array, labels: npt.NDArray[np.float64],
              ts: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
        joined = self.pending.join(keys, labels, ts)
        touched = np.zeros(0, dtype=np.uint64)
        if len(joined):
            held = self._held(joined.cohort_rows, joined.window_ids)
            if not held.all():
                self.counters.add(self.counters.labels, "after_judging", int(np.count_nonzero(~held)))
                joined = _take(joined, np.flatnonzero(held))
            self.outcomes.add(joined)
            touched = np.unique(group_keys(joined.cohort_rows, joined.window_ids))
        return touched

    def _held(self, rows: npt.NDArray[np.int64], windows: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Which (cohort row, window) pairs have outcomes held (not judged yet)."""
        slots = self.outcomes.index.lookup(group_keys(rows, windows), self.outcomes.group_keys)
        out: npt.NDArray[np.bool_] = slots >= 0
        return out

    # -- judging ----------------------------------------------------------------------------

    def due(self, now: datetime, touched: npt.NDArray[np.uint64] | None = None) -> JudgedWindows | None:
        """Take out the windows due for judging now (see the module text), or None.

        Candidates are the windows that closed since the last check, those whose labels
        just joined (``touched``: their group keys) and those the horizon has passed.
        """
        if len(self.outcomes) == 0:
            return None
        closed_below = self._closed_below(now)
        final_below = self._final_below()
        rows, windows = self.outcomes.keys()
        candidate = windows < final_below
        candidate |= (windows >= self.closed_below) & (windows < closed_below)
        if touched is not None and touched.size:
            candidate |= np.isin(group_keys(rows, windows), touched) & (windows < closed_below)
        self.closed_below = max(self.closed_below, closed_below)
        if not candidate.any():
            return None
        rows, windows = rows[candidate], windows[candidate]
        counts = self.outcomes.counts(rows, windows)
        coverage = np.nan_to_num(label_coverage(counts.n_labelled, counts.n_predictions), nan=0.0)
        final = windows < final_below
        reached = coverage >= self.gate
        judge = final | reached
        if not judge.any():
            return None
        rows, windows, reached = rows[judge], windows[judge], reached[judge]
        # Oldest windows first, then cohorts in row order: a stable order for findings and tickets.
        order = np.lexsort((rows, windows))
        rows, windows, reached = rows[order], windows[order], reached[order]
        popped = self.outcomes.pop(rows, windows)
        by: list[JudgedBy] = ["coverage" if r else "horizon" for r in reached.tolist()]
        for reason in by:
            self.n_judged[reason] += 1
        return JudgedWindows(
            cohorts=[self.cohorts[r] for r in rows.tolist()],
            windows=[self.window(w) for w in windows.tolist()],
            counts=popped, judged_by=by, gate=self.gate,
        )

    def window(self, window_id: int) -> Window:
        start = to_datetime(window_id * self.size_us)
        return Window(start, to_datetime((window_id + 1) * self.size_us))

    def waiting(self) -> tuple[list[Cohort], list[Window], OutcomeCounts]:
        """The windows held (not judged), oldest first, with their counts so far (kept held)."""
        rows, windows = self.outcomes.keys()
        order = np.lexsort((rows, windows))
        rows, windows = rows[order], windows[order]
        return ([self.cohorts[r] for r in rows.tolist()], [self.window(w) for w in windows.tolist()],
                self.outcomes.counts(rows, windows))


def _take(joined: Joined, index: npt.NDArray[np.int64]) -> Joined:
    return Joined(
        cohort_rows=joined.cohort_rows[index], window_ids=joined.window_ids[index],
        predictions=joined.predictions[index], labels=joined.labels[index],
        prediction_ts=joined.prediction_ts[index], label_index=joined.label_index[index],
    )
