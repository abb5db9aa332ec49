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
