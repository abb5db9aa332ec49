"""Column-wise counting (``drift.columnar``) against independent oracles.

Bins: ``numpy.searchsorted(side="right")`` + ``bincount``. Everything else a window
keeps (out-of-range counts and examples, unseen categories and their order, sums):
the one-event-at-a-time path, :func:`drift.summary.summarise`. Blocks: pickling and
deep-copying keep every field and cost what the block's own rows cost.
"""

from __future__ import annotations

import copy
import pickle
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.columnar import COMPARE_EDGES, Block, bin_counts, concat_blocks, summarise_columns
from drift.categories import category_text
from drift.events import InferenceEvent, RawMessage
from drift.reference import build_reference
from drift.summary import MAX_UNKNOWN_FIELDS, WindowSummary, summarise

NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)


def state(summary: WindowSummary) -> dict[str, Any]:
    """Everything a summary holds, comparable with ``==`` (floats exactly)."""
    out: dict[str, Any] = {
        name: getattr(summary, name) for name in (
            "n_events", "event_ids", "n_event_id", "n_duplicate_event_id", "event_ids_capped",
            "duplicate_examples", "unknown_fields", "unknown_fields_capped")
    }
    for name, counts in summary.features.items():
        out[name] = (
            counts.counts.tolist(), counts.n_null, counts.n_missing, counts.n_wrong_type, counts.examples,
            counts.n_out_of_range, counts.out_of_range_examples, counts.moments.n, counts.moments.mean.hex(),
            counts.moments.m2.hex(),
            sorted(counts.unseen), counts.unseen_capped, list(counts.pending),
        )
    return out


def by_events(profile: Any, rows: list[dict[str, Any]], bounds: Any = None) -> WindowSummary:
    events = [
        InferenceEvent(None, NOW, "m", None, None, None, None, {}, None, row, None, None, RawMessage(b"", "t", 0, i))
        for i, row in enumerate(rows)
    ]
    return summarise(events, profile, bounds=bounds, track_event_ids=False)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(-5, 5, allow_nan=False).map(lambda v: round(v, 1)), max_size=300),
    st.lists(st.floats(-4, 4, allow_nan=False).map(lambda v: round(v, 1)), max_size=12),
    st.booleans(),
)
def test_bin_counts_equal_searchsorted(values: list[float], edges: list[float], many: bool) -> None:
    """Values on the edges, repeated edges, and the searching branch past ``COMPARE_EDGES``."""
    cut = np.sort(np.asarray(edges, dtype=np.float64))
    if many:
        cut = np.sort(np.concatenate([cut, np.linspace(-6, 6, COMPARE_EDGES + 1)]))
    array = np.asarray(values, dtype=np.float64)
    expected = np.bincount(np.searchsorted(cut, array, side="right"), minlength=cut.size + 1)
    assert bin_counts(array, cut).tolist() == expected.tolist()
    assert bin_counts(array[::-2], cut).tolist() == np.bincount(
        np.searchsorted(cut, array[::-2], side="right"), minlength=cut.size + 1).tolist()


PROFILE = build_reference(
    "m",
    {"x": np.random.default_rng(3).normal(size=3000), "c": [f"k{i % 6}" for i in range(3000)]},
    {"x": "numeric", "c": "categorical"}, {"x": 10}, "test", 3000,
)


@pytest.mark.parametrize("bounds", [None, {"x": (-0.5, None)}, {"x": (None, 0.25)}, {"x": (-1.0, 1.0)}])
def test_out_of_range_and_unseen_match_events(bounds: Any) -> None:
    """Thousands of values outside the bounds and of unseen categories: the counts, the
    first distinct examples in arrival order (``-0.0`` as ``0.0``), the capped unseen set."""
    rng = np.random.default_rng(5)
    n = 5 * 512 + 77
    x = np.round(rng.normal(0, 2.5, n), 2)
    x[7] = -0.0
    x[8] = 0.0
    c = np.array([f"k{i}" if i < 6 else f"new-{i}-" + "w" * (i % 70) for i in rng.integers(0, 40, n)], dtype=object)
    c[::97] = None
    got = summarise_columns(PROFILE, {"x": x, "c": c}, bounds=bounds)
    rows = [{"x": float(x[i]), "c": c[i]} for i in range(n)]
    assert state(got) == state(by_events(PROFILE, rows, bounds))
    assert got.features["x"].n_out_of_range > 0 and len(got.features["c"].unseen) > 5


@pytest.mark.parametrize("column", [
    ["a", None, 3, True, False, 2.5, "k1"] * 20,
    ["k1", b"k2", "k3"] * 30,
    ["k1", float("nan"), None] * 30,
    [None] * 70,
    ["k1", "k2", None] * 30,
])
def test_object_columns_count_by_their_text(column: list[Any]) -> None:
    """A pandas-style object column: strings go through Arrow, anything else by its text."""
    as_array = np.empty(len(column), dtype=object)
    as_array[:] = column
    got = summarise_columns(PROFILE, {"c": as_array})
    rows = [{"c": None if v is None else category_text(v)} for v in column]
    assert state(got) == state(by_events(PROFILE, rows))
    assert state(summarise_columns(PROFILE, {"c": column})) == state(got)


def test_unknown_columns_are_capped_like_events() -> None:
    columns: dict[str, Any] = {f"extra_{i:03d}": np.zeros(3) for i in range(MAX_UNKNOWN_FIELDS + 5)}
    got = summarise_columns(PROFILE, columns)
    assert len(got.unknown_fields) == MAX_UNKNOWN_FIELDS and got.unknown_fields_capped
    assert got.features["x"].n_missing == 3


def big_block(n: int) -> Block:
    rng = np.random.default_rng(9)
    states = np.zeros(n, np.int8)
    states[5::11] = 1
    return Block(
        ts=np.arange(n, dtype=np.int64) * 1000,
        event_ids=pa.array([None if i % 13 == 0 else f"event-{i:08d}" for i in range(n)], type=pa.string()),
        numeric_names=("x", "y"),
        numeric=rng.normal(size=(2, n)),
        categorical={"c": pa.array([f"cat-{i % 29}" for i in range(n)], type=pa.string()),
                     "d": pa.array([f"d{i % 3}" for i in range(n)], type=pa.string()).dictionary_encode().cast(pa.string())},
        raws=[RawMessage(b'{"i": %d}' % i, "t", 0, i) for i in range(n)],
        states={"y": states},
        wrong={"y": [(r, f"'{r}'") for r in range(3, n, 500)]},
        unknown={r: ("zip",) for r in range(0, n, 700)},
    )


def assert_same_block(a: Block, b: Block) -> None:
    assert a.ts.tolist() == b.ts.tolist() and a.ts.dtype == b.ts.dtype
    assert a.event_ids.equals(b.event_ids)
    assert a.numeric_names == b.numeric_names
    assert a.numeric.shape == b.numeric.shape and a.numeric.tobytes() == np.ascontiguousarray(b.numeric).tobytes()
    assert a.categorical.keys() == b.categorical.keys()
    for name in a.categorical:
        assert type(a.categorical[name]) is type(b.categorical[name])
        assert a.categorical[name].equals(b.categorical[name])
    assert list(a.raws) == list(b.raws)
    assert a.states.keys() == b.states.keys()
    assert all(a.states[k].tolist() == b.states[k].tolist() for k in a.states)
    assert a.wrong == b.wrong and a.unknown == b.unknown


@pytest.mark.parametrize("rows", [(1000, 1035), (0, 35), (19_965, 20_000), (4000, 4001), (700, 700)])
def test_a_slice_pickles_as_its_own_rows(rows: tuple[int, int]) -> None:
    whole = big_block(20_000)
    start, stop = rows
    part = whole.slice(start, stop)
    size = len(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
    assert len(pickle.dumps(whole, protocol=pickle.HIGHEST_PROTOCOL)) > 1_000_000
    # Each row: a timestamp, two floats, an id, two categories, a state and a raw message.
    assert size < 3_000 + 200 * (stop - start), size
    for restored in (pickle.loads(pickle.dumps(part)), copy.deepcopy(part)):
        assert_same_block(restored, part)
        for array in (restored.event_ids, *restored.categorical.values()):
            assert array.get_total_buffer_size() < 2_000 + 100 * (stop - start)


def test_taken_and_concatenated_blocks_round_trip() -> None:
    whole = big_block(3000)
    picked = whole.take(np.array([2999, 5, 6, 1400]))
    joined = concat_blocks([whole.slice(10, 20), picked, whole.slice(2990, 3000)])
    for block in (whole, picked, joined):
        assert_same_block(pickle.loads(pickle.dumps(block)), block)
        assert_same_block(copy.deepcopy(block), block)
