"""WindowArrays: counts widen from 32 to 64 bits before they could overflow, and snapshots keep them."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest

import drift.cohort_arrays as cohort_arrays
from drift.cohort_arrays import NULLS, WindowArrays, layout_of
from drift.columnar import NULL, Block
from drift.findings import Cohort, Window
from drift.reference import build_reference
from drift.windowing import to_datetime

RNG = np.random.default_rng(11)
PROFILE = build_reference(
    "m", {"x": RNG.normal(size=500), "c": [["a", "b"][i % 2] for i in range(500)]},
    {"x": "numeric", "c": "categorical"}, {"x": 4}, "test", 500,
)
LAYOUT = layout_of(PROFILE, track_event_ids=False)


def block(n: int, null_every: int = 0) -> Block:
    x = RNG.normal(size=n)
    states = {}
    if null_every:
        s = np.zeros(n, np.int8)
        s[::null_every] = NULL
        states["x"] = s
    return Block(
        ts=np.arange(n, dtype=np.int64), event_ids=pa.nulls(n, pa.string()), numeric_names=("x",),
        numeric=x[None, :], categorical={"c": pa.array(["a", "b", "z"] * (n // 3) + ["a"] * (n % 3))},
        raws=[None] * n, states=states,  # type: ignore[list-item]
    )


def test_counts_widen_before_they_could_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cohort_arrays, "NARROW_MAX", 100)
    arrays = WindowArrays(LAYOUT, 4)
    cohorts: list[Cohort | None] = [Cohort("m", (("t", str(i)),)) for i in range(4)]
    arrays.count(block(60, null_every=5), np.zeros(60, np.intp), cohorts, 0)
    assert arrays.counts.dtype == np.int32
    arrays.count(block(60, null_every=5), np.zeros(60, np.intp), cohorts, 0)  # 120 > 100: widened first
    assert arrays.counts.dtype == np.int64 and arrays.cells.dtype == np.int64
    assert int(arrays.n_events[0]) == 120 and int(arrays.counts[0].sum()) == 2 * 48 + 120  # x's values + c's
    assert int(arrays.cells[NULLS, 0, LAYOUT.index("x")]) == 24
    restored = pickle.loads(pickle.dumps(arrays))
    assert restored.counts.dtype == np.int64 and np.array_equal(restored.counts, arrays.counts)
    window = Window(to_datetime(0), to_datetime(300_000_000))
    summary = restored.take(np.array([0]), [Cohort("m", (("t", "0"),))], window, "m", [None]).summary(0)
    assert summary.n_events == 120 and summary.features["x"].n_null == 24
    assert summary.features["x"].counts.dtype == np.int64 and summary.features["c"].counts.sum() == 120


def test_a_window_left_with_few_cohorts_is_compacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cohort_arrays, "COMPACT_FROM", 16)
    arrays = WindowArrays(LAYOUT, 64)
    cohorts: list[Cohort | None] = [Cohort("m", (("t", str(i)),)) for i in range(64)]
    rows = np.repeat(np.arange(64), 3)
    arrays.count(block(rows.size), rows, cohorts, 0)
    assert arrays.slots == 64 and int(arrays.active.sum()) == 64
    before = {r: arrays.counts[arrays.slot_of[r]].copy() for r in (5, 40, 63)}
    window = Window(to_datetime(0), to_datetime(300_000_000))
    closing = np.asarray([r for r in range(64) if r not in before])
    closed = arrays.take(closing, [c for c in cohorts if c is not None][:closing.size], window, "m",
                         [None] * closing.size)
    assert len(closed) == 61 and int(closed.n_events.sum()) == 183
    assert arrays.slots == 16 and arrays.active_rows().tolist() == [5, 40, 63]  # 3 live slots of 64: compacted
    for r, counts in before.items():
        assert np.array_equal(arrays.counts[arrays.slot_of[r]], counts)
    arrays.count(block(3), np.asarray([5, 7, 63]), cohorts, 0)  # a closed row comes back: a fresh slot
    assert int(arrays.n_events[arrays.slot_of[5]]) == 4 and int(arrays.n_events[arrays.slot_of[7]]) == 1
    rest = arrays.take(arrays.active_rows(), [c for c in cohorts if c is not None][:4], window, "m", [None] * 4)
    assert rest.n_events.tolist() == [4, 1, 3, 4] and arrays.empty()


def test_duplicate_ids_are_counted_per_cohort_window() -> None:
    layout = layout_of(PROFILE, track_event_ids=True)
    arrays = WindowArrays(layout, 8)
    cohorts: list[Cohort | None] = [Cohort("m", (("t", str(i)),)) for i in range(8)]

    def ids_block(ids: list[str | None]) -> Block:
        b = block(len(ids))
        b.event_ids = pa.array(ids, type=pa.string())
        return b

    arrays.count(ids_block(["a", "b", "c"]), np.asarray([0, 0, 1]), cohorts, 0)  # the fast path
    # "a" again in cohort 0 (a duplicate), "a" in cohort 2 (another cohort's event), "c" twice in 1.
    arrays.count(ids_block(["a", "a", "c", None]), np.asarray([0, 2, 1, 3]), cohorts, 0)
    arrays.count(ids_block(["a", "a"]), np.asarray([2, 0]), cohorts, 0)  # both now repeats
    dup = {r: int(arrays.n_duplicate[arrays.slot_of[r]]) for r in range(4)}
    ids = {r: int(arrays.n_event_id[arrays.slot_of[r]]) for r in range(4)}
    assert dup == {0: 2, 1: 1, 2: 1, 3: 0} and ids == {0: 4, 1: 2, 2: 2, 3: 0}
    restored = pickle.loads(pickle.dumps(arrays))
    restored.count(ids_block(["a", "b", "a"]), np.asarray([2, 0, 1]), cohorts, 0)
    assert [int(restored.n_duplicate[restored.slot_of[r]]) for r in range(3)] == [3, 1, 2]
    window = Window(to_datetime(0), to_datetime(300_000_000))
    # Cohort 0's window closes; a new window of the same row starts clean (its ids are new again).
    restored.take(np.asarray([0]), [Cohort("m", (("t", "0"),))], window, "m", [None])
    restored.count(ids_block(["a"]), np.asarray([0]), cohorts, 0)
    assert int(restored.n_duplicate[restored.slot_of[0]]) == 0
