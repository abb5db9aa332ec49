"""Window summaries against a plain-Python oracle, and the merge laws."""

from __future__ import annotations

import copy
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.events import InferenceEvent, RawMessage
from drift.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from drift.summary import (
    FLUSH_EVERY,
    MAX_EXAMPLES,
    WindowSummary,
    add_event,
    empty_summary,
    feature_counts,
    flush,
    merge,
    summarise,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
EDGES = (-1.0, 0.0, 1.0)
CATEGORIES = ("a", "b", "true", "3")
PROFILE = ReferenceProfile(
    model="m",
    features={
        "x": NumericProfile(edges=EDGES, shares=(0.25, 0.25, 0.25, 0.25), n=100, low=-2.0, high=2.0),
        "c": CategoricalProfile(categories=CATEGORIES, shares=(0.4, 0.3, 0.2, 0.1, 0.0), n=100),
    },
    n_rows=100,
    source="test",
    built_at=T0,
)
MISSING = object()
"""Marks a feature left out of an event altogether."""


def event(i: int, ts: datetime | None = None, **features: Any) -> InferenceEvent:
    return InferenceEvent(
        event_id=str(i), ts=ts if ts is not None else T0 + timedelta(seconds=i), model="m",
        model_version=None, tenant=None, region=None, route=None, segment={}, entity_id=None,
        features={k: v for k, v in features.items() if v is not MISSING},
        prediction=None, embedding=None, raw=RawMessage(value=b"", topic="t", partition=0, offset=i),
    )


def oracle(events: list[InferenceEvent]) -> dict[str, Any]:
    """What a summary of ``events`` must hold, counted one value at a time."""
    features: dict[str, Any] = {}
    for name, profile in PROFILE.features.items():
        counts = [0] * profile.n_bins
        n_null = n_missing = n_wrong_type = 0
        examples: list[str] = []
        for e in events:
            if name not in e.features:
                n_missing += 1
                continue
            value = e.features[name]
            example = None
            if value is None:
                n_null += 1
            elif isinstance(profile, NumericProfile):
                if type(value) in (int, float) and math.isfinite(value):
                    counts[sum(1 for edge in profile.edges if edge <= value)] += 1
                else:
                    n_wrong_type += 1
                    example = repr(value)[:64]
            else:
                if type(value) is bool:
                    text = "true" if value else "false"
                elif type(value) is float and value == int(value):  # integral: the integer's digits
                    text = str(int(value))
                else:
                    text = str(value)
                if text in profile.categories:
                    counts[profile.categories.index(text)] += 1
                else:
                    counts[-1] += 1
                    example = text[:64]
            if example is not None and example not in examples and len(examples) < MAX_EXAMPLES:
                examples.append(example)
        features[name] = {
            "counts": counts, "n_null": n_null, "n_missing": n_missing,
            "n_wrong_type": n_wrong_type, "examples": examples,
        }
    stamps = [e.ts for e in events]
    return {
        "n_events": len(events),
        "first_ts": min(stamps, default=None),
        "last_ts": max(stamps, default=None),
        "features": features,
    }


def observed(summary: WindowSummary) -> dict[str, Any]:
    """The summary in the oracle's shape; it must be flushed."""
    features = {}
    for name, counts in summary.features.items():
        assert counts.pending == [], f"{name} has unflushed values"
        features[name] = {
            "counts": counts.counts.tolist(), "n_null": counts.n_null, "n_missing": counts.n_missing,
            "n_wrong_type": counts.n_wrong_type, "examples": list(counts.examples),
        }
    return {
        "n_events": summary.n_events, "first_ts": summary.first_ts, "last_ts": summary.last_ts,
        "features": features,
    }


def without_examples(state: dict[str, Any]) -> dict[str, Any]:
    state = copy.deepcopy(state)
    for feature in state["features"].values():
        del feature["examples"]
    return state


x_values = st.one_of(
    st.sampled_from(EDGES),  # values on an edge belong to the bin above it
    st.floats(min_value=-3, max_value=3, allow_nan=False),
    st.integers(-3, 3),
    st.booleans(),
    st.sampled_from(["1.0", "", "oops", "y" * 80, math.nan]),
    st.none(),
    st.just(MISSING),
)
c_values = st.one_of(
    st.sampled_from(["a", "b", "3", "true", "zz", "yy", "w" * 80]),
    st.booleans(),
    st.integers(0, 4),
    st.floats(min_value=-2, max_value=2, allow_nan=False),
    st.none(),
    st.just(MISSING),
)


@st.composite
def event_lists(draw: st.DrawFn, max_size: int = 40) -> list[InferenceEvent]:
    n = draw(st.integers(0, max_size))
    return [
        event(
            i, ts=T0 + timedelta(seconds=draw(st.integers(0, 10**6))),
            x=draw(x_values), c=draw(c_values),
        )
        for i in range(n)
    ]


def unflushed(events: list[InferenceEvent]) -> WindowSummary:
    summary = empty_summary(PROFILE)
    for e in events:
        add_event(summary, e, PROFILE)
    return summary


# --------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------


def test_empty_summary() -> None:
    summary = empty_summary(PROFILE)
    assert observed(summary) == oracle([])
    assert {name: c.size for name, c in feature_counts(summary).items()} == {"x": 4, "c": 5}


@settings(max_examples=150, deadline=None)
@given(event_lists())
def test_summarise_matches_oracle(events: list[InferenceEvent]) -> None:
    assert observed(summarise(events, PROFILE)) == oracle(events)


def test_numeric_counts_match_searchsorted_on_random_values() -> None:
    rng = np.random.default_rng(11)
    values = rng.normal(scale=1.5, size=2_000)
    values[::50] = rng.choice(EDGES, size=values[::50].size)
    summary = summarise([event(i, x=float(v), c="a") for i, v in enumerate(values)], PROFILE)
    expected = np.bincount(np.searchsorted(EDGES, values, side="right"), minlength=4)
    np.testing.assert_array_equal(summary.features["x"].counts, expected)


@pytest.mark.parametrize(
    ("x", "field", "bin_index"),
    [
        pytest.param(None, "n_null", None, id="null"),
        pytest.param(MISSING, "n_missing", None, id="missing"),
        pytest.param("1.5", "n_wrong_type", None, id="numeric-text"),
        pytest.param(True, "n_wrong_type", None, id="boolean"),
        pytest.param(math.nan, "n_wrong_type", None, id="nan"),
        pytest.param(math.inf, "n_wrong_type", None, id="inf"),
        pytest.param(-5, "counts", 0, id="below-first-edge"),
        pytest.param(-1.0, "counts", 1, id="on-first-edge"),
        pytest.param(0.5, "counts", 2, id="inside"),
        pytest.param(1, "counts", 3, id="int-on-last-edge"),
    ],
)
def test_numeric_value_kinds(x: Any, field: str, bin_index: int | None) -> None:
    counts = summarise([event(0, x=x, c="a")], PROFILE).features["x"]
    tallies = {"n_null": counts.n_null, "n_missing": counts.n_missing, "n_wrong_type": counts.n_wrong_type}
    if field == "counts":
        assert counts.counts.tolist() == [int(i == bin_index) for i in range(4)]
        assert tallies == {"n_null": 0, "n_missing": 0, "n_wrong_type": 0}
    else:
        assert counts.counts.tolist() == [0, 0, 0, 0]
        assert tallies == {k: int(k == field) for k in tallies}
    assert counts.examples == ([repr(x)] if field == "n_wrong_type" else [])


@pytest.mark.parametrize(
    ("c", "bin_index", "field"),
    [
        pytest.param("a", 0, None, id="known"),
        pytest.param(True, 2, None, id="boolean-is-true"),
        pytest.param(3, 3, None, id="int-is-its-text"),
        pytest.param(False, 4, None, id="false-unseen"),
        pytest.param(3.0, 3, None, id="integral-float-is-the-integer"),
        pytest.param(-0.0, 4, None, id="negative-zero-is-0-unseen"),
        pytest.param(2.5, 4, None, id="float-text-unseen"),
        pytest.param("A", 4, None, id="case-sensitive"),
        pytest.param(None, None, "n_null", id="null"),
        pytest.param(MISSING, None, "n_missing", id="missing"),
    ],
)
def test_categorical_value_kinds(c: Any, bin_index: int | None, field: str | None) -> None:
    counts = summarise([event(0, x=0.5, c=c)], PROFILE).features["c"]
    assert counts.counts.tolist() == [int(i == bin_index) for i in range(5)]
    assert counts.n_null == int(field == "n_null")
    assert counts.n_missing == int(field == "n_missing")
    assert counts.n_wrong_type == 0  # any scalar is a category


def test_unseen_categories_go_to_last_bin_with_capped_examples() -> None:
    unseen = [f"new-{k}" for k in range(3 * MAX_EXAMPLES)]
    events = [event(i, x=0.0, c=unseen[i % len(unseen)]) for i in range(100)] + [event(100, x=0.0, c="b")]
    counts = summarise(events, PROFILE).features["c"]
    assert counts.counts.tolist() == [0, 1, 0, 0, 100]
    assert counts.examples == unseen[:MAX_EXAMPLES]


def test_long_unseen_category_is_one_truncated_example() -> None:
    long = "v" * 100
    counts = summarise([event(i, x=0.0, c=long) for i in range(10)] + [event(10, x=0.0, c="zz")], PROFILE).features["c"]
    assert counts.examples == [long[:64], "zz"]


def test_wrong_type_examples_are_distinct_and_capped() -> None:
    texts = ["oops"] * 3 + [f"bad-{k}" for k in range(2 * MAX_EXAMPLES)] + ["z" * 100]
    counts = summarise([event(i, x=t, c="a") for i, t in enumerate(texts)], PROFILE).features["x"]
    assert counts.n_wrong_type == len(texts)
    assert counts.examples == [repr(t) for t in ["oops", *(f"bad-{k}" for k in range(MAX_EXAMPLES - 1))]]
    long = summarise([event(0, x="z" * 100, c="a")], PROFILE).features["x"]
    assert long.examples == [repr("z" * 100)[:64]]


def test_timestamps_are_min_and_max_not_first_and_last_seen() -> None:
    stamps = [T0 + timedelta(minutes=m) for m in (5, 1, 9, 3)]
    summary = summarise([event(i, ts=ts, x=0.0, c="a") for i, ts in enumerate(stamps)], PROFILE)
    assert (summary.first_ts, summary.last_ts) == (min(stamps), max(stamps))


def test_incremental_counts_equal_batch_across_flushes() -> None:
    """After every event the flushed counts equal the oracle's; flushes happen on the way."""
    rng = np.random.default_rng(5)
    n = 3 * FLUSH_EVERY + 7
    xs = rng.normal(size=n).tolist()
    cs = rng.choice(["a", "b", "true", "new"], size=n).tolist()
    events = [event(i, x=x if i % 97 else None, c=c if i % 89 else MISSING) for i, (x, c) in enumerate(zip(xs, cs))]
    summary = empty_summary(PROFILE)
    expected_x, expected_c = [0] * 4, [0] * 5
    for i, e in enumerate(events):
        add_event(summary, e, PROFILE)
        x, c = e.features.get("x"), e.features.get("c")
        if x is not None:
            expected_x[sum(1 for edge in EDGES if edge <= x)] += 1
        if c is not None:
            expected_c[CATEGORIES.index(c) if c in CATEGORIES else 4] += 1
        assert len(summary.features["x"].pending) < FLUSH_EVERY
        assert summary.features["x"].n_values == sum(expected_x)
        if i % 50 == 0 or i >= n - 3:
            flushed = flush(copy.deepcopy(summary), PROFILE)
            assert flushed.features["x"].counts.tolist() == expected_x
            assert flushed.features["c"].counts.tolist() == expected_c
    # the buffer was binned along the way, not only at the end
    assert summary.features["x"].counts.sum() >= FLUSH_EVERY
    assert observed(flush(summary, PROFILE)) == oracle(events)


# --------------------------------------------------------------------------
# Merge laws
# --------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(event_lists(), st.data())
def test_merge_of_parts_equals_summary_of_whole(events: list[InferenceEvent], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(events)))
    a, b = events[:cut], events[cut:]
    whole = observed(summarise(events, PROFILE))
    assert observed(merge(summarise(a, PROFILE), summarise(b, PROFILE), PROFILE)) == whole
    # unflushed inputs are flushed by merge itself
    assert observed(merge(unflushed(a), unflushed(b), PROFILE)) == whole


@settings(max_examples=100, deadline=None)
@given(event_lists(), event_lists(), event_lists())
def test_merge_is_commutative_and_associative(
    a: list[InferenceEvent], b: list[InferenceEvent], c: list[InferenceEvent]
) -> None:
    sa, sb, sc = (summarise(part, PROFILE) for part in (a, b, c))
    ab = observed(merge(sa, sb, PROFILE))
    # example lists keep first-seen order, so only they may differ
    assert without_examples(observed(merge(sb, sa, PROFILE))) == without_examples(ab)
    left = observed(merge(merge(sa, sb, PROFILE), sc, PROFILE))
    right = observed(merge(sa, merge(sb, sc, PROFILE), PROFILE))
    assert without_examples(left) == without_examples(right) == without_examples(oracle(a + b + c))


@settings(max_examples=100, deadline=None)
@given(event_lists(), st.randoms(use_true_random=False))
def test_event_order_does_not_change_counts(events: list[InferenceEvent], random: Any) -> None:
    shuffled = list(events)
    random.shuffle(shuffled)
    assert without_examples(observed(summarise(shuffled, PROFILE))) == without_examples(
        observed(summarise(events, PROFILE))
    )


def test_merge_with_empty_is_identity() -> None:
    events = [event(i, x=float(i) - 2, c=["a", "zz", None][i % 3]) for i in range(10)]
    summary = summarise(events, PROFILE)
    assert observed(merge(summary, empty_summary(PROFILE), PROFILE)) == observed(summary)
    assert observed(merge(empty_summary(PROFILE), summary, PROFILE)) == observed(summary)


def test_merge_does_not_mutate_inputs() -> None:
    a = unflushed([event(i, x=0.5, c="new") for i in range(5)])
    b = unflushed([event(10 + i, x="bad", c=True) for i in range(3)])
    before = [copy.deepcopy(a), copy.deepcopy(b)]
    merged = merge(a, b, PROFILE)
    for now, then in zip((a, b), before):
        assert (now.n_events, now.first_ts, now.last_ts) == (then.n_events, then.first_ts, then.last_ts)
        for name, counts in now.features.items():
            old = then.features[name]
            assert counts.counts.tolist() == old.counts.tolist()
            assert counts.pending == old.pending
            assert counts.examples == old.examples
            assert (counts.n_null, counts.n_missing, counts.n_wrong_type) == (old.n_null, old.n_missing, old.n_wrong_type)
    assert a.features["x"].pending == [0.5] * 5  # still unflushed
    assert merged.features["x"].counts is not a.features["x"].counts
    assert merged.features["x"].counts.tolist() == [0, 0, 5, 0]


# ------------------------------------------------------------------ embedding samples

from drift.summary import EmbeddingSampling, embedding_sample, reservoir_rng  # noqa: E402

SAMPLING = EmbeddingSampling(field="embedding", dim=3, capacity=50, seed=11)


def embedded(i: int, vector: Any) -> InferenceEvent:
    base = event(i, x=0.5, c="a")
    return InferenceEvent(
        event_id=f"e-{i}", ts=base.ts, model="m", model_version=None, tenant=None, region=None, route=None,
        segment={}, entity_id=None, features=base.features, prediction=None,
        embedding=None if vector is None else np.asarray(vector, dtype=np.float32), raw=base.raw,
    )


def _rows(n: int, start: int = 0) -> list[InferenceEvent]:
    return [embedded(start + i, [start + i, 2.0 * (start + i), -1.0]) for i in range(n)]


def test_window_embedding_sample_is_bounded_and_names_its_events() -> None:
    sample = embedding_sample(SAMPLING, "m|tenant=a", T0)
    events = _rows(FLUSH_EVERY + 300) + [embedded(10_000, None), embedded(10_001, None)]
    summary = summarise(events, PROFILE, embedding=sample)
    reservoir = summary.embedding.reservoir  # type: ignore[union-attr]
    assert reservoir.n_seen == FLUSH_EVERY + 300 and len(reservoir) == SAMPLING.capacity
    assert summary.embedding.n_missing == 2 and not summary.embedding.pending  # type: ignore[union-attr]
    # Each kept row is still next to its own event id.
    for row, event_id in zip(reservoir.rows, reservoir.ids):
        i = int(event_id.removeprefix("e-"))  # type: ignore[union-attr]
        assert row.tolist() == [i, 2.0 * i, -1.0]
    # The features are counted as without embeddings.
    assert summary.n_events == len(events) and feature_counts(summary)["x"].sum() == len(events)


def test_reservoir_seed_depends_on_cohort_and_window_only() -> None:
    def kept(key: str, start: datetime) -> list[str | None]:
        sample = embedding_sample(SAMPLING, key, start)
        return summarise(_rows(400), PROFILE, embedding=sample).embedding.reservoir.ids  # type: ignore[union-attr]

    assert kept("m|t=a", T0) == kept("m|t=a", T0)
    assert kept("m|t=a", T0) != kept("m|t=b", T0)
    assert kept("m|t=a", T0) != kept("m|t=a", T0 + timedelta(minutes=5))
    a, b = reservoir_rng(1, "k", T0), reservoir_rng(1, "k", T0)
    assert a.integers(0, 2**62) == b.integers(0, 2**62)


def test_merge_combines_embedding_samples_uniformly_and_leaves_inputs_alone() -> None:
    left = summarise(_rows(30), PROFILE, embedding=embedding_sample(SAMPLING, "k", T0))
    right = summarise(_rows(40, start=100) + [embedded(999, None)], PROFILE,
                      embedding=embedding_sample(SAMPLING, "k", T0))
    before = (left.embedding.reservoir.ids, right.embedding.reservoir.ids)  # type: ignore[union-attr]
    merged = merge(left, right, PROFILE)
    reservoir = merged.embedding.reservoir  # type: ignore[union-attr]
    assert reservoir.n_seen == 70 and len(reservoir) == SAMPLING.capacity
    assert merged.embedding.n_missing == 1  # type: ignore[union-attr]
    assert set(reservoir.ids) <= {f"e-{i}" for i in [*range(30), *range(100, 140)]}
    assert (left.embedding.reservoir.ids, right.embedding.reservoir.ids) == before  # type: ignore[union-attr]
    # Under capacity nothing is dropped.
    small = merge(summarise(_rows(10), PROFILE, embedding=embedding_sample(SAMPLING, "k", T0)),
                  summarise(_rows(5, start=50), PROFILE, embedding=embedding_sample(SAMPLING, "k", T0)), PROFILE)
    assert sorted(small.embedding.reservoir.ids) == sorted(  # type: ignore[union-attr]
        [f"e-{i}" for i in [*range(10), *range(50, 55)]])
    # The share of each side in a merged sample follows their sizes (hypergeometric).
    shares = []
    for seed in range(200):
        sampling = EmbeddingSampling("embedding", 3, 20, seed)
        a = summarise(_rows(60), PROFILE, embedding=embedding_sample(sampling, "k", T0))
        b = summarise(_rows(20, start=1000), PROFILE, embedding=embedding_sample(sampling, "k", T0))
        ids = merge(a, b, PROFILE).embedding.reservoir.ids  # type: ignore[union-attr]
        shares.append(sum(int(str(i)[2:]) < 1000 for i in ids) / len(ids))
    assert abs(float(np.mean(shares)) - 0.75) < 0.02


def test_merge_refuses_mixing_sampled_and_unsampled_windows() -> None:
    sampled = summarise(_rows(3), PROFILE, embedding=embedding_sample(SAMPLING, "k", T0))
    with pytest.raises(ValueError, match="samples embeddings"):
        merge(sampled, summarise(_rows(3), PROFILE), PROFILE)


def test_summary_with_embeddings_pickles_mid_window() -> None:
    import pickle

    summary = empty_summary(PROFILE, embedding=embedding_sample(SAMPLING, "k", T0))
    for e in _rows(FLUSH_EVERY + 7):
        add_event(summary, e, PROFILE)
    again = pickle.loads(pickle.dumps(summary))
    for e in _rows(100, start=FLUSH_EVERY + 7):
        add_event(summary, e, PROFILE)
        add_event(again, e, PROFILE)
    one, two = flush(summary, PROFILE).embedding, flush(again, PROFILE).embedding
    # The generator travels with the state: a resumed window samples exactly as an uninterrupted one.
    assert one.reservoir.ids == two.reservoir.ids  # type: ignore[union-attr]
    assert np.array_equal(one.reservoir.rows, two.reservoir.rows)  # type: ignore[union-attr]
