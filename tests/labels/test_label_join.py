"""The join state of delayed labels against a direct model of its rules, and its edge cases.

The oracle (:class:`OracleJoin`) is the join rule written plainly: a dict of pending
predictions by id, processed one row at a time. On random streams of predictions and
labels (repeated ids, null ids, labels late or early, a small cap) the array state must
return the same joined rows in the same order and count the same unmatched, duplicate
and evicted rows; a snapshot taken midway must carry on exactly as the original.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.labels.join import Joined, PendingPredictions, SlotIndex, hash_ids

HOUR_US = 3_600_000_000
H = timedelta(hours=1)


def restored(state: PendingPredictions) -> PendingPredictions:
    out: PendingPredictions = pickle.loads(pickle.dumps(state))
    return out


def add(state: PendingPredictions, ids: list[str | None], ts: list[int], rows: list[int] | None = None,
        scores: list[float] | None = None) -> None:
    n = len(ids)
    state.add_predictions(pa.array(ids, type=pa.string()), np.asarray(rows if rows is not None else range(n)),
                          np.asarray(ts) // HOUR_US, np.asarray(scores if scores is not None else [0.5] * n),
                          np.asarray(ts, dtype=np.int64))


def join(state: PendingPredictions, ids: list[str | None], ts: list[int], labels: list[float] | None = None) -> Joined:
    return state.join(pa.array(ids, type=pa.string()), np.asarray(labels if labels is not None else [1.0] * len(ids)),
                      np.asarray(ts, dtype=np.int64))


# -- edge cases ---------------------------------------------------------------------------


@pytest.mark.parametrize(("label_ts", "joins"), [
    (0, True),                       # the same instant
    (HOUR_US, True),                 # exactly the horizon after
    (HOUR_US + 1, False),            # one microsecond past it
    (-5 * HOUR_US, True),            # stamped before the prediction (clock skew): joins
])
def test_a_label_joins_within_the_horizon_only(label_ts: int, joins: bool) -> None:
    state = PendingPredictions("binary", horizon=H)
    add(state, ["a"], [0])
    joined = join(state, ["a"], [label_ts])
    assert len(joined) == int(joins)
    assert (state.n_joined, state.n_unmatched_labels) == ((1, 0) if joins else (0, 1))


def test_predictions_expire_when_the_newest_ts_passes_the_horizon() -> None:
    state = PendingPredictions("binary", horizon=H)
    add(state, ["a", "b"], [0, 10])
    add(state, ["c"], [HOUR_US + 5])  # a: 5 µs past the horizon; b: within it
    assert len(state) == 2 and state.n_evicted == {"expired": 1, "capped": 0}
    assert len(join(state, ["a", "b"], [HOUR_US + 5, HOUR_US + 5])) == 1
    assert state.n_unmatched_labels == 1
    # A label's ts moves the clock too: c expires, and b (labelled) leaves without counting.
    join(state, ["zzz"], [3 * HOUR_US])
    assert len(state) == 0 and state.n_evicted == {"expired": 2, "capped": 0}


def test_the_first_label_wins_and_later_ones_are_duplicates() -> None:
    state = PendingPredictions("binary", horizon=H)
    add(state, ["a", "b"], [0, 0], scores=[0.9, 0.1])
    joined = join(state, ["a", "a", "b"], [1, 2, 3], labels=[1.0, 0.0, 0.0])
    assert joined.labels.tolist() == [1.0, 0.0] and joined.predictions.tolist() == [0.9, 0.1]
    assert joined.label_index.tolist() == [0, 2]
    assert len(join(state, ["b", "c"], [4, 5])) == 0
    assert (state.n_joined, state.n_duplicate_labels, state.n_unmatched_labels) == (2, 2, 1)


def test_a_repeated_prediction_keeps_the_first_and_null_ids_are_skipped() -> None:
    state = PendingPredictions("regression", horizon=H)
    add(state, ["a", None, "a"], [0, 0, 0], rows=[1, 2, 3], scores=[1.0, 2.0, 3.0])
    add(state, ["a"], [1], rows=[4], scores=[4.0])
    assert len(state) == 1 and state.n_duplicate_predictions == 2 and state.n_without_id == 1
    joined = join(state, ["a", None], [2, 2], labels=[5.0, 6.0])
    assert joined.cohort_rows.tolist() == [1] and joined.predictions.tolist() == [1.0]
    assert state.n_without_id == 2 and state.n_unmatched_labels == 0


def test_the_cap_evicts_the_oldest_by_ts_then_by_arrival() -> None:
    state = PendingPredictions("binary", horizon=timedelta(days=30), cap=3)
    add(state, ["t5", "t1", "t3a"], [5, 1, 3])
    add(state, ["t3b", "t9"], [3, 9])  # 5 held: the oldest two are t1, then t3a (arrived before t3b)
    assert state.n_evicted == {"expired": 0, "capped": 2}
    joined = join(state, ["t1", "t3a", "t3b", "t5", "t9"], [10] * 5)
    assert joined.label_index.tolist() == [2, 3, 4]
    add(state, ["new"], [20])  # the cap evicts a labelled prediction: no eviction counted
    assert len(state) == 3 and state.n_evicted == {"expired": 0, "capped": 2}


def test_slots_are_reused_after_eviction() -> None:
    state = PendingPredictions("binary", horizon=timedelta(seconds=1), cap=1_000)
    for step in range(20):
        ts = step * 10_000_000  # each batch expires the previous one
        add(state, [f"{step}-{i}" for i in range(100)], [ts] * 100)
        assert len(state) == 100
    assert state.slots <= 256 and state.used <= 200
    assert state.n_evicted["expired"] == 1_900
    assert len(join(state, ["19-7", "18-7"], [19 * 10_000_000] * 2)) == 1


def test_invalid_values_are_refused_with_their_position() -> None:
    state = PendingPredictions("binary", horizon=H)
    with pytest.raises(ValueError, match=r"predictions\[1\] must be a score in \[0, 1\] .* got 1\.5"):
        add(state, ["a", "b"], [0, 0], scores=[0.5, 1.5])
    with pytest.raises(ValueError, match=r"labels\[0\] must be 0 or 1 for a binary model; got 0\.5"):
        join(state, ["a"], [0], labels=[0.5])
    with pytest.raises(ValueError, match=r"cohort_rows must hold one value per id \(2\)"):
        state.add_predictions(pa.array(["a", "b"]), np.array([1, 2, 3]), 0, np.array([0.1, 0.2]), 0)
    with pytest.raises(ValueError, match="kind must be one of binary, multiclass, regression; got 'ranking'"):
        PendingPredictions("ranking", horizon=H)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ids must be strings or integers"):
        hash_ids(np.array([1.5]))


def test_ids_of_every_supported_form() -> None:
    strings = hash_ids(pa.array(["x", "yy", "", "x"]))[0]
    assert strings[0] == strings[3] and len(set(strings.tolist())) == 3
    assert (hash_ids(np.array(["x", "yy", "", "x"]))[0] == strings).all()
    assert (hash_ids(pa.array(["x", "yy", "", "x"], type=pa.large_string()))[0] == strings).all()
    assert (hash_ids(pa.chunked_array([["x"], ["yy", "", "x"]]))[0] == strings).all()
    assert (hash_ids(pa.array(["q", "x", "yy", "", "x"]).slice(1))[0] == strings).all()
    assert (hash_ids(pa.array(["x", "yy", "", "x"]).dictionary_encode())[0] == strings).all()
    ints = hash_ids(np.array([1, 2, 1], dtype=np.int32))[0]
    assert ints[0] == ints[2] != ints[1] and (hash_ids(pa.array([1, 2, 1]))[0] == ints).all()
    state = PendingPredictions("multiclass", horizon=H)
    state.add_predictions(np.arange(5), np.zeros(5), 0, np.array([0, 1, 2, 3, 4]), 0)
    assert state.join(np.array([3, 9]), np.array([3, 3]), 0).predictions.tolist() == [3.0]


def test_many_keys_hash_apart_and_the_index_finds_them() -> None:
    ids = [f"event-{i:08d}" for i in range(200_000)]
    keys = hash_ids(pa.array(ids))[0]
    assert np.unique(keys).size == keys.size
    index = SlotIndex()
    slots = np.arange(keys.size, dtype=np.int64)
    index.insert(keys[:100_000], slots[:100_000], keys)
    index.insert(keys[100_000:], slots[100_000:], keys)
    assert (index.lookup(keys, keys) == slots).all()
    index.remove(slots[::2])
    found = index.lookup(keys, keys)
    assert (found[::2] == -1).all() and (found[1::2] == slots[1::2]).all()
    assert index.table.size >= 2 * (index.n_live + index.n_tombstones)


def test_a_snapshot_holds_only_the_live_predictions() -> None:
    state = PendingPredictions("binary", horizon=timedelta(seconds=1))
    add(state, [str(i) for i in range(1_000)], [0] * 1_000)
    add(state, ["late"], [10_000_000])
    snapshot = state.__getstate__()
    assert snapshot["keys"].size == 1
    copy = restored(state)
    assert copy.counters() == state.counters() and len(join(copy, ["late"], [10_000_000])) == 1


# -- random streams against the oracle ------------------------------------------------------


@dataclass
class OracleJoin:
    """The join rules, one row at a time."""

    horizon_us: int
    cap: int
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrived: int = 0
    newest: int | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("joined", "unmatched_labels", "duplicate_labels", "duplicate_predictions", "without_id", "evicted_expired",
         "evicted_capped"), 0))

    def _evict(self, ids: list[str], reason: str) -> None:
        for i in ids:
            if not self.pending.pop(i)["labelled"]:
                self.counts[f"evicted_{reason}"] += 1

    def _expire(self) -> None:
        assert self.newest is not None
        self._evict([i for i, p in self.pending.items() if p["ts"] < self.newest - self.horizon_us], "expired")

    def add(self, ids: list[str | None], rows: list[int], scores: list[float], ts: list[int]) -> None:
        for i, row, score, t in zip(ids, rows, scores, ts):
            self.arrived += 1
            if i is None:
                self.counts["without_id"] += 1
            elif i in self.pending:
                self.counts["duplicate_predictions"] += 1
            else:
                self.pending[i] = {"row": row, "score": score, "ts": t, "arrival": self.arrived, "labelled": False}
        self.newest = max(ts) if self.newest is None else max(self.newest, *ts)
        self._expire()
        over = len(self.pending) - self.cap
        if over > 0:
            oldest = sorted(self.pending, key=lambda i: (self.pending[i]["ts"], self.pending[i]["arrival"]))
            self._evict(oldest[:over], "capped")

    def join(self, ids: list[str | None], labels: list[float], ts: list[int]) -> list[tuple[int, int, float, float]]:
        out = []
        for k, (i, label, t) in enumerate(zip(ids, labels, ts)):
            p = self.pending.get(i) if i is not None else None
            if i is None:
                self.counts["without_id"] += 1
            elif p is None or t - p["ts"] > self.horizon_us:
                self.counts["unmatched_labels"] += 1
            elif p["labelled"]:
                self.counts["duplicate_labels"] += 1
            else:
                p["labelled"] = True
                self.counts["joined"] += 1
                out.append((k, p["row"], p["score"], label))
        self.newest = max(ts) if self.newest is None else max(self.newest, *ts)
        self._expire()
        return out


batches = st.lists(
    st.tuples(
        st.booleans(),  # a batch of predictions, or of labels
        st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 40).map(str)), st.integers(0, 200)),
                 min_size=1, max_size=30),
    ),
    min_size=1, max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(batches=batches, cap=st.integers(1, 30), horizon=st.integers(0, 60), snapshot_at=st.integers(0, 12),
       seed=st.integers(0, 2**32 - 1))
def test_random_streams_match_the_oracle(
    batches: list[tuple[bool, list[tuple[str | None, int]]]], cap: int, horizon: int, snapshot_at: int, seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    state = PendingPredictions("binary", horizon=timedelta(microseconds=horizon), cap=cap)
    oracle = OracleJoin(horizon_us=horizon, cap=cap)
    for b, (is_predictions, rows) in enumerate(batches):
        if b == snapshot_at:
            state = restored(state)
        ids = [i for i, _ in rows]
        ts = [t for _, t in rows]
        if is_predictions:
            cohorts = rng.integers(0, 5, len(rows)).tolist()
            scores = rng.random(len(rows)).tolist()
            add(state, ids, ts, rows=cohorts, scores=scores)
            oracle.add(ids, cohorts, scores, ts)
        else:
            labels = rng.integers(0, 2, len(rows)).astype(float).tolist()
            joined = join(state, ids, ts, labels=labels)
            expected = oracle.join(ids, labels, ts)
            got = list(zip(joined.label_index.tolist(), joined.cohort_rows.tolist(), joined.predictions.tolist(),
                           joined.labels.tolist()))
            assert got == expected
        counters = state.counters()
        held = counters.pop("held")
        assert counters == oracle.counts
        assert held == len(oracle.pending)
        assert state.n_waiting == sum(not p["labelled"] for p in oracle.pending.values())


def test_timestamps_of_any_unit_are_read_as_microseconds() -> None:
    state = PendingPredictions("regression", horizon=timedelta(seconds=10))
    stamps = pa.array([0, 1_000], type=pa.timestamp("ms", tz="UTC"))  # 0 s and 1 s
    state.add_predictions(pa.array(["a", "b"]), 0, 0, np.array([1.0, 2.0]), stamps)
    assert state.ts[:2].tolist() == [0, 1_000_000]
    late = np.array(["1970-01-01T00:00:10.5"], dtype="datetime64[ms]")  # 10.5 s: a's horizon has passed
    assert state.join(pa.array(["a"]), np.array([1.0]), late).labels.size == 0
    assert state.join(pa.array(["b"]), np.array([1.0]), late).labels.tolist() == [1.0]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), universe=st.sampled_from([600, 3_000, 50_000]))
def test_the_index_agrees_with_a_dict_through_inserts_removals_and_rebuilds(seed: int, universe: int) -> None:
    """Batches of inserts and removals of keys drawn from a small universe (tombstones pile
    up, the table is rebuilt in place and grown) against a dict."""
    rng = np.random.default_rng(seed)
    all_keys = hash_ids(np.arange(universe))[0]
    slot_keys = np.zeros(universe, dtype=np.uint64)
    index, expected = SlotIndex(), dict[int, int]()
    free = list(range(universe))
    for _ in range(30):
        absent = np.setdiff1d(np.arange(universe), np.fromiter(expected, dtype=np.int64, count=len(expected)))
        new = rng.choice(absent, size=min(absent.size, int(rng.integers(1, 400))), replace=False)
        slots = np.asarray([free.pop() for _ in range(new.size)], dtype=np.int64)
        slot_keys[slots] = all_keys[new]
        index.insert(all_keys[new], slots, slot_keys)
        expected.update(zip(new.tolist(), slots.tolist()))
        held = np.fromiter(expected, dtype=np.int64, count=len(expected))
        gone = rng.choice(held, size=int(rng.integers(0, held.size + 1)), replace=False)
        removed = np.asarray([expected.pop(i) for i in gone.tolist()], dtype=np.int64)
        index.remove(removed)
        free.extend(removed.tolist())
        found = index.lookup(all_keys, slot_keys)
        assert {i: s for i, s in enumerate(found.tolist()) if s >= 0} == expected
        assert index.n_live == len(expected) and 2 * (index.n_live + index.n_tombstones) <= index.table.size
