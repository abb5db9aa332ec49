"""The column-wise decoder and window counting against the one-event-at-a-time path.

The oracle is the per-event path the flow has always had: :class:`drift.events.Decoder`
then :func:`drift.summary.add_event`. Whatever mix of clean and broken messages a batch
holds, decoding it column-wise must give the same events (the same summaries, bit for
bit) and the same dead letters.
"""

from __future__ import annotations

import base64
import json
import math
import pickle
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drift.batch import BatchDecoder, DecodedBatch, encode_arrow, model_columns
from drift.columnar import add_block, bin_matrix, concat_blocks, summarise_columns
from drift.events import Decoder, DeadLetter, DlqReason, InferenceEvent, RawMessage
from drift.findings import Cohort
from drift.reference import PredictionColumn, build_reference
from drift.summary import FLUSH_EVERY, WindowSummary, add_event, empty_summary, flush, summarise

NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
RNG = np.random.default_rng(7)
PROFILE = build_reference(
    "m",
    {"x": RNG.normal(size=2000), "y": RNG.normal(5, 2, size=2000),
     "c": [["a", "b", "c"][i % 3] for i in range(2000)], "score": RNG.uniform(size=2000)},
    {"x": "numeric", "y": "numeric", "c": "categorical"}, {"x": 8, "y": 8}, "test", 2000,
)
OTHER = build_reference("other", {"z": RNG.normal(size=500)}, {"z": "numeric"}, {"z": 4}, "test", 500)
COHORT = ("tenant", "segment.channel")
SCORED = build_reference(
    "p",
    {"x": RNG.normal(size=500), "k": [i % 4 for i in range(500)], "flag": [i % 2 == 0 for i in range(500)],
     "score": RNG.uniform(size=500), "label": [["yes", "no"][i % 2] for i in range(500)]},
    {"x": "numeric", "k": "categorical", "flag": "categorical"}, {"x": 6}, "test", 500,
    predictions={"prediction.score": PredictionColumn("score", "numeric", 5),
                 "prediction.label": PredictionColumn("label", "categorical", 5)},
)
"""A model with integer and boolean categories and profiled prediction fields."""
COHORTS = {"m": COHORT, "p": ("region",)}
DECODER = Decoder(models=frozenset({"m", "other"}), now=lambda: NOW)


def batch_decoder(**kwargs: Any) -> BatchDecoder:
    """Column-wise from the first message, so that small test batches take that path."""
    return BatchDecoder(DECODER, [
        model_columns("m", COHORT, PROFILE, per_event=False, embeddings=False, **kwargs),
        model_columns("other", (), OTHER, per_event=False, embeddings=False),
    ], min_columnar=1)


def profile_of(model: str) -> Any:
    return {"m": PROFILE, "p": SCORED}.get(model, OTHER)


def state(summary: WindowSummary) -> dict[str, Any]:
    """Everything a summary holds, comparable with ``==`` (floats exactly)."""
    out: dict[str, Any] = {
        name: getattr(summary, name) for name in (
            "n_events", "first_ts", "last_ts", "event_ids", "n_event_id", "n_duplicate_event_id",
            "event_ids_capped", "duplicate_examples", "unknown_fields", "unknown_fields_capped")
    }
    for group in ("features", "predictions"):
        for name, counts in getattr(summary, group).items():
            out[f"{group}.{name}"] = (
                counts.counts.tolist(), counts.n_null, counts.n_missing, counts.n_wrong_type, counts.examples,
                counts.n_out_of_range, counts.out_of_range_examples, counts.moments.n, counts.moments.mean.hex(),
                counts.moments.m2.hex(),
                sorted(counts.unseen), counts.unseen_capped, list(counts.pending),
            )
    return out


def one_by_one(
    raws: list[RawMessage], decoder: Decoder = DECODER,
) -> tuple[dict[str, dict[str, Any]], list[tuple[int, str, str]]]:
    summaries: dict[str, WindowSummary] = {}
    dead = []
    for raw in raws:
        item = decoder(raw)
        if isinstance(item, DeadLetter):
            dead.append((item.offset, item.reason.value, item.detail))
            continue
        labels = COHORTS.get(item.model, ())
        key = Cohort(item.model, tuple((label, item.label(label) or "-") for label in labels)).key
        summary = summaries.setdefault(key, empty_summary(profile_of(item.model)))
        add_event(summary, item, profile_of(item.model))
    return {k: state(flush(s, profile_of(k.split("|")[0]))) for k, s in summaries.items()}, sorted(dead)


def columnwise(batches: list[DecodedBatch]) -> tuple[dict[str, dict[str, Any]], list[tuple[int, str, str]]]:
    summaries: dict[str, WindowSummary] = {}
    dead: list[tuple[int, str, str]] = []
    for batch in batches:
        dead.extend((d.offset, d.reason.value, d.detail) for d in batch.dead)
        for piece in batch.pieces:
            profile = profile_of(piece.cohort.model)
            summary = summaries.setdefault(piece.cohort.key, empty_summary(profile))
            block_row = event_row = 0
            kinds = piece.columnar
            runs = np.split(np.arange(kinds.size), np.flatnonzero(np.diff(kinds.astype(np.int8))) + 1)
            for run in runs:
                if run.size == 0:
                    continue
                if kinds[run[0]]:
                    assert piece.block is not None
                    add_block(summary, piece.block.take(np.arange(block_row, block_row + run.size)), profile)
                    block_row += run.size
                else:
                    for _ in run:
                        add_event(summary, piece.events[event_row], profile)
                        event_row += 1
            assert piece.ts.size == kinds.size
    return {k: state(flush(s, profile_of(k.split("|")[0]))) for k, s in summaries.items()}, sorted(dead)


def message(i: int, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"e-{i % 40}", "ts": (NOW - timedelta(minutes=30, seconds=i)).isoformat().replace("+00:00", "Z"),
        "model": "m", "model_version": "v1", "tenant": ["acme", "globex"][i % 2],
        "segment": {"channel": ["web", "app"][i % 2]},
        "features": {"x": round(float(RNG.normal()), 6), "y": float(RNG.normal(5, 2)), "c": ["a", "b", "z"][i % 3]},
    }
    event.update(overrides)
    return event


# Each entry turns a clean event into one that some rule must catch (or not).
VARIANTS: list[Any] = [
    lambda e: e,
    lambda e: e,
    lambda e: e,
    lambda e: {**e, "features": {**e["features"], "x": None}},
    lambda e: {**e, "features": {k: v for k, v in e["features"].items() if k != "y"}},
    lambda e: {**e, "features": {**e["features"], "y": "12"}},
    lambda e: {**e, "features": {**e["features"], "y": True}},
    lambda e: {**e, "features": {**e["features"], "c": 3}},
    lambda e: {**e, "features": {**e["features"], "c": False}},
    lambda e: {**e, "features": {**e["features"], "zip": "10115"}},
    lambda e: {**e, "features": {**e["features"], "x": 2.0**60}},
    lambda e: {**e, "features": {**e["features"], "x": 1e300}},
    lambda e: {**e, "features": {**e["features"], "y": 1e6}},
    lambda e: {**e, "ts": int((NOW - timedelta(hours=1)).timestamp() * 1000)},
    lambda e: {**e, "ts": "2026-11-27T10:00:00"},
    lambda e: {**e, "ts": "2026-02-30T10:00:00Z"},
    lambda e: {**e, "ts": "2026-11-27T09:15:00.5+05:30"},
    lambda e: {**e, "ts": "0001-01-01T00:30:00+01:00"},
    lambda e: {**e, "ts": (NOW + timedelta(hours=2)).isoformat()},
    lambda e: {k: v for k, v in e.items() if k != "ts"},
    lambda e: {**e, "model": "unknown"},
    lambda e: {**e, "model": 7},
    lambda e: {**e, "tenant": 42},
    lambda e: {**e, "tenant": None},
    lambda e: {k: v for k, v in e.items() if k != "segment"},
    lambda e: {**e, "segment": {"channel": None}},
    lambda e: {**e, "segment": {"channel": 5}},
    lambda e: {**e, "segment": {}},
    lambda e: {**e, "event_id": None},
    lambda e: {**e, "prediction": {"score": 0.3, "label": "yes"}},
    lambda e: {**e, "prediction": 5},
    lambda e: {**e, "embedding": [[[[1]]]]},
    lambda e: {**e, "features": None},
    lambda e: {k: v for k, v in e.items() if k != "features"},
    lambda e: {"model": "other", "ts": e["ts"], "features": {"z": 0.5}},
    lambda e: {"model": "other", "ts": e["ts"], "features": {"z": 0.5, "x": None}},
    lambda e: {"model": "other", "ts": e["ts"], "features": {"z": 0.5, "x": 1.0}},
    lambda e: {**e, "features": {**e["features"], "z": None}},
    lambda e: {**e, "features": {k: v for k, v in e["features"].items() if k != "x"}, "prediction": {"x": None}},
    lambda e: {**e, "features": {**e["features"], "x": None}, "tenant": "x"},
    lambda e: {**e, "features": {k: v for k, v in e["features"].items() if k != "x"}, "prediction": {'a"x': None}},
    lambda e: {**e, "features": {**e["features"], "x": None}, "prediction": {"probs": [{"x": 1}]}},
]
RAW_VARIANTS = [
    b"", b"not json", b"[1, 2]", b'{"model": "m", "ts": NaN}', b'{"model": "m"}\n{"model": "m"}',
    b'{"model":"m","features":{"x":1,"x":2},"ts":"2026-11-27T10:00:00Z"}', b"\xff\xfe", b'"text"',
    b'{"model":"m","ts":"2026-11-27T10:00:00Z","features":{"x":NaN,"y":1,"c":"a"}}',
    b'{"model": "m", "ts": "2026-11-27T10:00:00Z", "features": {"x": null, "y": 1.5, "c": "a"}}',
    b'{"model": "m", "ts": "2026-11-27T10:00:00Z", "features": {"y": 1.5, "c": "a"}, "note": "x"}',
]


@st.composite
def batches(draw: st.DrawFn) -> list[RawMessage]:
    n = draw(st.integers(1, 60))
    raws = []
    for i in range(n):
        choice = draw(st.integers(0, len(VARIANTS) + len(RAW_VARIANTS) - 1))
        if choice < len(VARIANTS):
            value = orjson.dumps(VARIANTS[choice](message(i)))
        else:
            value = RAW_VARIANTS[choice - len(VARIANTS)]
        raws.append(RawMessage(value, "t", 0, i))
    return raws


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.integers(1, 4))
def test_columnwise_equals_one_by_one(raws: list[RawMessage], parts: int) -> None:
    decoder = batch_decoder()
    size = max(1, math.ceil(len(raws) / parts))
    decoded = [decoder(raws[i:i + size]) for i in range(0, len(raws), size)]
    assert columnwise(decoded) == one_by_one(raws)
    assert sum(b.n_events for b in decoded) + sum(len(b.dead) for b in decoded) == len(raws)


def test_clean_batches_are_decoded_column_wise() -> None:
    raws = [RawMessage(orjson.dumps(message(i)), "t", 0, i) for i in range(500)]
    batch = batch_decoder()(raws)
    assert batch.n_columnar == batch.n_events == 500
    assert {p.cohort.key for p in batch.pieces} == {"m|tenant=acme|segment.channel=web", "m|tenant=globex|segment.channel=app"}
    assert columnwise([batch]) == one_by_one(raws)


def test_a_few_bad_messages_keep_the_rest_column_wise() -> None:
    raws = [RawMessage(orjson.dumps(message(i)), "t", 0, i) for i in range(1000)]
    raws[100] = RawMessage(orjson.dumps(message(100, features={"x": "oops", "y": 1.0, "c": "a"})), "t", 0, 100)
    raws[700] = RawMessage(b"{broken", "t", 0, 700)
    batch = batch_decoder()(raws)
    assert batch.n_events == 999 and [d.reason for d in batch.dead] == [DlqReason.INVALID_JSON]
    assert batch.n_columnar >= 960
    assert columnwise([batch]) == one_by_one(raws)


def test_epoch_millisecond_timestamps_are_read_column_wise() -> None:
    stamp = int((NOW - timedelta(hours=1)).timestamp() * 1000)
    raws = [RawMessage(orjson.dumps(message(i, ts=stamp + i)), "t", 0, i) for i in range(200)]
    batch = batch_decoder()(raws)
    assert batch.n_columnar == 200
    assert columnwise([batch]) == one_by_one(raws)


_LATEST_US = int((NOW + timedelta(minutes=10)).timestamp()) * 10**6  # now + the default max_future
_Y2000_US = 946_684_800 * 10**6
_PER_US = {"s": 10**6, "ms": 1000, "us": 1}


def _edges(unit: str) -> list[int]:
    """Epoch values in ``unit`` at and around the accepted range [2000, now + max_future]."""
    if unit == "ns":
        low, high = _Y2000_US * 1000, _LATEST_US * 1000 + 999
    else:
        low, high = -(-_Y2000_US // _PER_US[unit]), _LATEST_US // _PER_US[unit]
    return [low - 1, low, high, high + 1]


TS_UNIT_CASES = [
    *(_edges(unit) for unit in ("s", "ms", "us", "ns")),
    [0, -1, 2**63 - 1, -(2**63), 2**62, -(2**62), 9_223_372_036_854_775, 10**16],
    [int((NOW - timedelta(hours=1)).timestamp()) * m for m in (1, 1000, 10**6, 10**9)],
]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_ts_unit_is_applied_alike_column_wise_and_one_by_one(unit: str) -> None:
    """Every value, in or out of range for the unit, near int64's ends too: the same event or
    dead letter column-wise (JSON lines and Arrow record batches) as one by one, never a
    value scaled past int64 (which would wrap into an accepted time)."""
    decoder = Decoder(models=frozenset({"m", "other"}), now=lambda: NOW, ts_units={"m": unit})
    columns = BatchDecoder(decoder, [
        model_columns("m", COHORT, PROFILE, per_event=False, embeddings=False),
        model_columns("other", (), OTHER, per_event=False, embeddings=False),
    ], min_columnar=1)
    stamps = [ts for case in TS_UNIT_CASES for ts in case]
    records = [message(i, ts=ts) for i, ts in enumerate(stamps)]
    records += [message(len(stamps) + i, ts=ts, model="other", features={"z": 1.0}) for i, ts in enumerate(stamps)]
    raws = [RawMessage(orjson.dumps(r), "t", 0, i) for i, r in enumerate(records)]
    expected = one_by_one(raws, decoder)
    batch = columns(raws)
    assert batch.n_columnar > 0
    assert columnwise([batch]) == expected
    accepted = sum(len(p) for p in batch.pieces)
    assert accepted == len(records) - len(expected[1])
    # The same rows in one Arrow record batch (ts an int64 column).
    arrow = columns([RawMessage(encode_arrow(records), "t", 0, 0)])
    assert columnwise([arrow])[0] == expected[0]
    assert sorted(d.reason for d in arrow.dead) == sorted(DlqReason(r) for _, r, _ in expected[1])


def test_epoch_seconds_in_a_millisecond_model_are_bad_timestamps_in_both_paths() -> None:
    seconds = int((NOW - timedelta(hours=1)).timestamp())
    raws = [RawMessage(orjson.dumps(message(i, ts=seconds + i)), "t", 0, i) for i in range(100)]
    batch = batch_decoder()(raws)
    assert batch.n_events == 0 and len(batch.dead) == 100
    assert {d.reason for d in batch.dead} == {DlqReason.BAD_TIMESTAMP}
    assert "as epoch seconds it would be" in batch.dead[0].detail
    assert columnwise([batch]) == one_by_one(raws)


def test_models_with_per_event_consumers_are_decoded_one_by_one() -> None:
    decoder = BatchDecoder(DECODER, [model_columns("m", COHORT, PROFILE, per_event=True, embeddings=False)],
                           min_columnar=1)
    raws = [RawMessage(orjson.dumps(message(i)), "t", 0, i) for i in range(50)]
    batch = decoder(raws)
    assert batch.n_columnar == 0 and len(batch.events) == 50
    assert [e.raw.offset for e in batch.events] == list(range(50))


def test_arrow_record_batches_decode_like_their_json_rows() -> None:
    records = [message(i) for i in range(300)]
    records[5] = message(5, features={"x": None, "y": 1.0, "c": "a"})
    records[9] = message(9, ts="not a time")
    ipc = RawMessage(encode_arrow(records), "t", 3, 77, key=b"k")
    batch = batch_decoder()([ipc])
    assert batch.n_events == 299 and batch.n_columnar == 299  # the null row too, as a row with a null cell
    [letter] = batch.dead
    assert letter.reason == DlqReason.BAD_TIMESTAMP and letter.offset == 77 and letter.detail.startswith("row 9 ")
    assert orjson.loads(letter.value)["ts"] == "not a time"  # type: ignore[arg-type]
    json_rows = [RawMessage(orjson.dumps(r), "t", 3, 77) for r in records]
    expected, _ = one_by_one(json_rows)
    assert columnwise([batch])[0] == expected


def test_one_arrow_message_alone_is_read_column_wise() -> None:
    records = [message(i) for i in range(100)]
    decoder = BatchDecoder(DECODER, [model_columns("m", COHORT, PROFILE, per_event=False, embeddings=False)])
    batch = decoder([RawMessage(encode_arrow(records), "t", 0, 9)])
    assert batch.n_events == batch.n_columnar == 100 and not batch.dead
    per_event = BatchDecoder(DECODER, [model_columns("m", COHORT, PROFILE, per_event=True, embeddings=False)])
    batch = per_event([RawMessage(encode_arrow(records), "t", 0, 9)])
    assert batch.n_events == len(batch.events) == 100 and batch.n_columnar == 0
    assert columnwise([batch])[0] == one_by_one([RawMessage(orjson.dumps(r), "t", 0, 9) for r in records])[0]


def test_arrow_typed_timestamps_and_numbers() -> None:
    table = pa.table({
        "model": ["m"] * 3, "tenant": ["acme"] * 3, "event_id": ["a", "b", "c"],
        "ts": pa.array([NOW - timedelta(minutes=m) for m in (3, 2, 1)], pa.timestamp("ms", tz="UTC")),
        "features": pa.array([{"x": 1, "y": 2.5, "c": "a"}] * 3,
                             pa.struct([("x", pa.int32()), ("y", pa.float32()), ("c", pa.string())])),
    })
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    batch = batch_decoder()([RawMessage(sink.getvalue().to_pybytes(), "t", 0, 0)])
    assert batch.n_columnar == 3
    [piece] = batch.pieces
    assert piece.block is not None and piece.block.column("x").tolist() == [1.0, 1.0, 1.0]
    assert piece.ts.tolist() == [int((NOW - timedelta(minutes=m)).timestamp() * 1_000_000) for m in (3, 2, 1)]


def test_a_broken_arrow_stream_is_a_dead_letter() -> None:
    value = b"\xff\xff\xff\xff" + b"garbage" * 10
    batch = batch_decoder()([RawMessage(value, "t", 0, 5)])
    [letter] = batch.dead
    assert letter.reason == DlqReason.BAD_ARROW and letter.value == value and letter.offset == 5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=3 * FLUSH_EVERY), st.lists(st.integers(0, 3 * FLUSH_EVERY), max_size=4))
def test_block_sums_do_not_depend_on_batch_boundaries(values: list[float], cuts: list[int]) -> None:
    """``moments`` are taken over the same slices, merged in the same order, as event by event."""
    raws = [RawMessage(orjson.dumps(message(i, features={"x": v, "y": v, "c": "a"})), "t", 0, i)
            for i, v in enumerate(values)]
    bounds = sorted({0, len(raws), *(min(c, len(raws)) for c in cuts)})
    decoder = batch_decoder()
    decoded = [decoder(raws[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]
    assert columnwise(decoded) == one_by_one(raws)


def test_summarise_columns_matches_events() -> None:
    x = RNG.normal(size=1500)
    x[::50] = np.nan
    c = [["a", "b", "q", None][i % 4] for i in range(1500)]
    summary = summarise_columns(PROFILE, {"x": x, "c": c, "extra": np.zeros(1500)})
    events = [
        InferenceEvent(None, NOW, "m", None, None, None, None, {}, None,
                       {k: v for k, v in (("x", None if np.isnan(x[i]) else float(x[i])), ("c", c[i]), ("extra", 0.0))},
                       None, None, RawMessage(b"", "t", 0, i))
        for i in range(1500)
    ]
    expected = summarise(events, PROFILE, track_event_ids=False)
    got, want = state(summary), state(expected)
    for key in ("first_ts", "last_ts"):
        got.pop(key), want.pop(key)
    assert got == want


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_bin_matrix_equals_searchsorted_per_feature(rows: int, features: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, features)).round(1)
    edges = [np.unique(rng.normal(size=rng.integers(0, 6)).round(1)).tolist() for _ in range(features)]
    counts = bin_matrix(values, edges)
    for j in range(features):
        expected = np.bincount(np.searchsorted(edges[j], values[:, j], side="right"), minlength=len(edges[j]) + 1)
        assert counts[j, : len(edges[j]) + 1].tolist() == expected.tolist()
        assert counts[j, len(edges[j]) + 1:].sum() == 0


def test_embedding_bytes_never_reach_the_column_path() -> None:
    vector = base64.b64encode(np.ones(4, "<f4").tobytes()).decode()
    decoder = BatchDecoder(DECODER, [model_columns("m", COHORT, PROFILE, per_event=False, embeddings=True)],
                           min_columnar=1)
    raws = [RawMessage(orjson.dumps(message(i, embedding={"dtype": "float32", "b64": vector})), "t", 0, i)
            for i in range(10)]
    batch = decoder(raws)
    assert batch.n_columnar == 0 and batch.n_events == 10


def test_small_batches_are_counted_one_event_at_a_time() -> None:
    raws = [RawMessage(orjson.dumps(message(i)), "t", 0, i) for i in range(5)]
    small = BatchDecoder(DECODER, [model_columns("m", COHORT, PROFILE, per_event=False, embeddings=False)])
    batch = small(raws)
    assert batch.n_columnar == 0 and batch.n_events == 5
    assert columnwise([batch]) == one_by_one(raws)


@pytest.mark.parametrize("bad", [b"x" * 10, b'{"model": "m", "features": {}}'])
def test_the_decoder_never_raises(bad: bytes) -> None:
    batch = batch_decoder()([RawMessage(bad, "t", 0, 0), RawMessage(None, "t", 0, 1),
                             RawMessage(b"{}", "t", 0, 2, error="broker down")])
    assert len(batch.dead) + batch.n_events == 3


MUTATION_BYTES = b'{}[]":,0123456789.eE-+ntrufalsNI\\ \x00\xff\n'


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 2), st.sampled_from(list(MUTATION_BYTES))),
                         max_size=4), min_size=1, max_size=25))
def test_mutated_messages_decode_as_one_by_one(mutations: list[list[tuple[int, int, int]]]) -> None:
    """Random byte edits (replace, delete, insert) of clean events: same events and dead letters."""
    raws = []
    for i, edits in enumerate(mutations):
        data = bytearray(orjson.dumps(message(i)))
        for position, kind, byte in edits:
            at = position % len(data) if data else 0
            if kind == 0 and data:
                data[at] = byte
            elif kind == 1 and data:
                del data[at]
            else:
                data.insert(at, byte)
        raws.append(RawMessage(bytes(data), "t", 0, i))
    assert columnwise([batch_decoder()(raws)]) == one_by_one(raws)


def test_deeply_nested_messages_are_refused_not_parsed() -> None:
    deep = b'{"model":"m","ts":"2026-11-27T10:00:00Z","features":{"x":1,"y":1,"c":"a"},"prediction":' + (
        b"[" * 100_000 + b"]" * 100_000 + b"}")
    raws = [RawMessage(orjson.dumps(message(0)), "t", 0, 0), RawMessage(deep, "t", 0, 1)]
    batch = batch_decoder()(raws)
    assert batch.n_events == 1 and [d.reason for d in batch.dead] == [DlqReason.INVALID_JSON]


def test_arrow_messages_of_a_poll_are_screened_together() -> None:
    """Several Arrow messages (two schemas, one broken) decode as each would alone."""
    first = [message(i) for i in range(120)]
    second = [message(i, ts=int((NOW - timedelta(minutes=40, seconds=i)).timestamp() * 1000)) for i in range(50)]
    third = [message(1000 + i) for i in range(80)]
    third[7] = message(1007, ts="not a time")
    broken = b"\xff\xff\xff\xff" + b"garbage" * 10
    raws = [RawMessage(encode_arrow(first), "t", 0, 1), RawMessage(broken, "t", 0, 2),
            RawMessage(encode_arrow(second), "t", 0, 3), RawMessage(encode_arrow(third), "t", 0, 4)]
    together = batch_decoder()(raws)
    alone = [batch_decoder()([raw]) for raw in raws]
    assert columnwise([together]) == columnwise(alone)
    assert [(d.offset, d.reason, d.detail) for d in together.dead] == [
        (d.offset, d.reason, d.detail) for batch in alone for d in batch.dead]
    assert [d.offset for d in together.dead] == [2, 4] and together.dead[1].detail.startswith("row 7 ")
    json_rows = [RawMessage(orjson.dumps(r), "t", 0, 0) for r in first + second + third if r["ts"] != "not a time"]
    assert columnwise([together])[0] == one_by_one(json_rows)[0]
    # Arrival order within each cohort: the first message's rows, then the third's.
    ts = np.concatenate([p.ts for p in together.pieces if p.cohort.key.endswith("channel=web")])
    assert together.n_events == 249 and ts.size == 125


def test_an_arrow_rows_message_is_that_row_as_json() -> None:
    """``block.raws[i]`` of an Arrow row: the Arrow message's position, the row's own event."""
    records = [message(i) for i in range(64)]
    records[0] = message(0, prediction={"score": 0.5})  # first: encode_arrow takes its schema from it
    records[3] = message(3, features={"x": None, "y": 2.0, "c": "b"})
    raw = RawMessage(encode_arrow(records), "t", 4, 321, key=b"k-9")
    batch = batch_decoder()([raw])
    assert not batch.dead and batch.n_columnar == 64
    seen = 0
    for piece in batch.pieces:
        block = piece.block
        assert block is not None
        ids = block.event_ids.to_pylist()
        for i in range(len(block)):
            row = block.raws[i]
            assert isinstance(row, RawMessage)
            assert (row.topic, row.partition, row.offset, row.key, row.error) == ("t", 4, 321, b"k-9", None)
            value = row.value
            assert value is not None and len(value) < 1000  # one event, not the whole batch
            event = DECODER(row)
            assert isinstance(event, InferenceEvent) and event.event_id == ids[i]
            original = next(r for r in records if orjson.loads(value)["ts"] == r["ts"])
            assert event == DECODER(RawMessage(orjson.dumps(original), "t", 4, 321, key=b"k-9"))
            seen += 1
        # Slices and takes keep rows, picklable and never copied deeply
        tail = block.raws[1:]
        assert tail[0].value == block.raws[1].value
        assert pickle.loads(pickle.dumps(block.raws))[2].value == block.raws[2].value
        # Iterating gives the rows, as indexing does; takes and concatenations keep them.
        assert [r.value for r in block.raws] == [block.raws[i].value for i in range(len(block))]
        order = np.arange(len(block))[::-1].copy()
        joined = concat_blocks([block.take(order), block.slice(0, 1)])
        assert [r.value for r in joined.raws] == [block.raws[int(i)].value for i in [*order, 0]]
        assert type(joined.raws) is type(block.raws)  # still arrays, no object per row
    assert seen == 64


def test_absent_values_and_source_errors_in_a_column_wise_batch_are_dead_letters() -> None:
    raws = [RawMessage(orjson.dumps(message(i)), "t", 0, i) for i in range(40)]
    raws.insert(7, RawMessage(None, "t", 0, 100))
    raws.insert(20, RawMessage(b"{}", "t", 0, 101, error="broker transport failure"))
    batch = batch_decoder()(raws)
    assert batch.n_events == 40
    assert sorted((d.offset, d.reason) for d in batch.dead) == [(100, DlqReason.EMPTY), (101, DlqReason.KAFKA_ERROR)]


def _escaped(name: str, mask: list[bool]) -> str:
    """A JSON key with some of its characters written as ``\\uXXXX``."""
    return "".join(f"\\u{ord(ch):04x}" if escape else ch for ch, escape in zip(name, mask))


EXTREME_NUMBERS = [
    "0", "-0", "-0.0", "1e308", "-1e308", "1e-320", "2e-308", "9007199254740993", "9007199254740992.0",
    "18446744073709551616", "9223372036854775807", "-9223372036854775808", "1E2", "1.5e+3", "0.1", "1e400",
]
ODD_TIMESTAMPS = [
    "18448537681001548", "9223372036854775807", "-9223372036854775808", "18446744073709551615", "-1", "0",
    "1764237600000", "1764237600", "1764237600000.5", "1.7642376e12", "true", "null", '"1764237600000"',
    '"2026-11-27T10:00:00+14:00"', '"2026-11-27T10:00:00-12:00"', '"2026-11-27t10:00:00z"',
    '"2026-11-27T10:00:00.123456789Z"', '"2026-11-27 10:00:00Z"', '"2026-11-27T24:00:00Z"', '"+2026-11-27T10:00:00Z"',
]


@st.composite
def hostile_messages(draw: st.DrawFn) -> list[RawMessage]:
    """Events written as text: escaped keys, extreme numbers, odd timestamps."""
    raws = []
    for i in range(draw(st.integers(1, 30))):
        parts = []
        for name in ("x", "y", "c"):
            if draw(st.integers(0, 5)) == 0:
                continue  # absent
            key = _escaped(name, [draw(st.booleans())])
            value = draw(st.one_of(st.sampled_from(["null", '"a"', '"b"', "true"]), st.sampled_from(EXTREME_NUMBERS)))
            parts.append(f'"{key}": {value}')
        ts = draw(st.one_of(st.just('"2026-11-27T11:00:00Z"'), st.sampled_from(ODD_TIMESTAMPS)))
        ts_key = _escaped("ts", [draw(st.booleans()) for _ in "ts"])
        tenant = draw(st.sampled_from(['"acme"', '"gl\\u006fbex"', "null"]))
        text = (f'{{"event_id": "e{i}", "{ts_key}": {ts}, "model": "m", "tenant": {tenant}, '
                f'"features": {{{", ".join(parts)}}}}}')
        raws.append(RawMessage(text.encode(), "t", 0, i))
    return raws


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_messages(), st.integers(1, 3))
def test_hostile_events_decode_alike_column_wise_and_one_by_one(raws: list[RawMessage], parts: int) -> None:
    decoder = batch_decoder()
    size = max(1, math.ceil(len(raws) / parts))
    decoded = [decoder(raws[i:i + size]) for i in range(0, len(raws), size)]
    assert columnwise(decoded) == one_by_one(raws)


def test_an_escaped_key_with_a_null_value_is_a_null_not_a_missing_feature() -> None:
    clean = [orjson.dumps(message(i)) for i in range(5)]
    escaped = b'{"event_id":"q","ts":"2026-11-27T11:00:00Z","model":"m","tenant":"acme",' \
              b'"features":{"\\u0078":null,"y":1.0,"c":"a"}}'
    raws = [RawMessage(v, "t", 0, i) for i, v in enumerate([*clean, escaped])]
    assert columnwise([batch_decoder()(raws)]) == one_by_one(raws)
    summaries, _ = one_by_one(raws)
    assert sum(state["features.x"][1] for state in summaries.values()) == 1  # one null, no missing


SCORED_DECODER = Decoder(models=frozenset({"m", "other", "p"}), now=lambda: NOW)
VALUES = [None, 0.5, -3, 2, 7.0, 2.5, 2**53, -(2**60), 2**70, 10**20 + 1, 1e300, True, False, "yes", "no", "12", [1], {"a": 1}]
"""Values of every JSON type and the numbers at the edges of the column-wise rules."""
ABSENT = object()


@st.composite
def typed_events(draw: st.DrawFn) -> list[RawMessage]:
    """Events of every model with random values: the strict typed (msgspec) road and all the others."""
    raws = []
    for i in range(draw(st.integers(1, 40))):
        model = draw(st.sampled_from(["p", "p", "p", "m", "other", "nope"]))
        event: dict[str, Any] = {
            "event_id": draw(st.sampled_from([f"e{i}", None, 5, ABSENT])),
            "ts": draw(st.sampled_from([
                "2026-11-27T11:00:00Z", "2026-11-27T11:00:00.25+01:00", int((NOW - timedelta(hours=1)).timestamp() * 1000),
                "2026-11-27", 2**64, True, None, ABSENT, (NOW + timedelta(days=1)).isoformat()])),
            "model": model,
            "region": draw(st.sampled_from(["eu", "us", None, 3, ABSENT])),
            "segment": draw(st.sampled_from([{"channel": "web"}, {}, None, {"channel": 1}, ABSENT])),
        }
        names = {"p": ["x", "k", "flag"], "m": ["x", "y", "c"], "other": ["z"], "nope": ["x"]}[model]
        features = {}
        for name in [*names, *draw(st.lists(st.sampled_from(["x", "z", "k", "new"]), max_size=2))]:
            value = draw(st.sampled_from([*VALUES, ABSENT, ABSENT]))
            if value is not ABSENT:
                features[name] = value
        event["features"] = draw(st.sampled_from([features, features, features, None, ABSENT]))
        prediction = {name: draw(st.sampled_from([*VALUES, ABSENT]))
                      for name in draw(st.lists(st.sampled_from(["score", "label", "other"]), max_size=3, unique=True))}
        event["prediction"] = draw(st.sampled_from([
            {k: v for k, v in prediction.items() if v is not ABSENT}, None, ABSENT, 5]))
        if draw(st.integers(0, 7)) == 0:
            event["note"] = draw(st.sampled_from(["x", [[1]], None]))
        text = json.dumps({k: v for k, v in event.items() if v is not ABSENT}).encode()  # orjson: 64-bit integers
        if draw(st.integers(0, 9)) == 0:  # a repeated key: the last one counts
            text = text[:-1] + b', "model": ' + orjson.dumps(draw(st.sampled_from(["p", "m", None]))) + b"}"
        raws.append(RawMessage(text, "t", 0, i))
    return raws


def scored_decoder() -> BatchDecoder:
    return BatchDecoder(SCORED_DECODER, [
        model_columns("m", COHORT, PROFILE, per_event=False, embeddings=False),
        model_columns("other", (), OTHER, per_event=False, embeddings=False),
        model_columns("p", COHORTS["p"], SCORED, per_event=False, embeddings=False),
    ], min_columnar=1)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(typed_events(), st.integers(1, 3))
def test_typed_json_decodes_alike_column_wise_and_one_by_one(raws: list[RawMessage], parts: int) -> None:
    decoder = scored_decoder()
    size = max(1, math.ceil(len(raws) / parts))
    decoded = [decoder(raws[i:i + size]) for i in range(0, len(raws), size)]
    assert columnwise(decoded) == one_by_one(raws, SCORED_DECODER)


def test_clean_events_with_predictions_and_number_categories_are_read_typed() -> None:
    events = [
        {"event_id": f"e{i}", "ts": "2026-11-27T11:00:00Z", "model": "p", "region": ["eu", None][i % 2],
         "features": {"x": [0.5, None, 3][i % 3], "k": [1, 2.0, "3"][i % 3], **({"flag": i % 2 == 0} if i % 4 else {})},
         **({"prediction": {"score": [0.25, None][i % 2], "label": "yes"}} if i % 5 else {})}
        for i in range(40)
    ]
    raws = [RawMessage(orjson.dumps(e), "t", 0, i) for i, e in enumerate(events)]
    decoder = scored_decoder()
    read = decoder._typed.read([r.value for r in raws])
    assert read.parsed.tolist() == list(range(40))  # every message on the typed road
    batch = decoder(raws)
    assert batch.n_columnar == 40 and not batch.dead
    assert all(piece.block is not None and not piece.events for piece in batch.pieces)  # none one by one
    assert columnwise([batch]) == one_by_one(raws, SCORED_DECODER)


def test_the_typed_road_refuses_what_orjson_refuses() -> None:
    decoder = scored_decoder()
    values = [
        b'{"model":"p","ts":"2026-11-27T11:00:00Z","region":"\xff","features":{"x":1}}',
        b'{"model":"p","ts":"2026-11-27T11:00:00Z","region":"\\ud800","features":{"x":1}}',
        b'{"model":"p","ts":"2026-11-27T11:00:00Z","features":{"x":1e400}}',
        b'{"model":"p","ts":"2026-11-27T11:00:00Z","features":{"x":1}} x',
        b'{"model":"p","ts":"2026-11-27T11:00:00Z","features":{"x":1},"extra":"\xff"}',
        b"\xef\xbb\xbf{}",
    ]
    assert decoder._typed.read(values).parsed.size == 0
    raws = [RawMessage(v, "t", 0, i) for i, v in enumerate(values)]
    assert columnwise([decoder(raws)]) == one_by_one(raws, SCORED_DECODER)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_typed_read_leaves_the_garbage_collector_as_it_was(enabled: bool) -> None:
    import gc

    values = [orjson.dumps(message(i)) for i in range(3)] + [b"not json"]
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        assert batch_decoder()._typed.read(values).parsed.tolist() == [0, 1, 2]
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_overlapping_typed_reads_of_worker_threads_restore_the_collector_once() -> None:
    """Workers of a process are threads: the collector stays off until the last overlapping
    read is done, then is back on (never left off by a read that began while another held it)."""
    import gc
    import threading

    from drift.batch.typed_json import _gc_paused

    was = gc.isenabled()
    gc.enable()
    try:
        first, second = _gc_paused(), _gc_paused()
        first.__enter__()
        second.__enter__()
        assert not gc.isenabled()
        first.__exit__(None, None, None)
        assert not gc.isenabled()  # the second read is still running
        second.__exit__(None, None, None)
        assert gc.isenabled()

        decoder = batch_decoder()
        values = [orjson.dumps(message(i)) for i in range(200)]

        def read() -> None:
            for _ in range(50):
                assert decoder._typed.read(values).parsed.size == 200

        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert gc.isenabled()
    finally:
        gc.enable() if was else gc.disable()


def test_a_batch_that_starts_with_other_shapes_decodes_alike() -> None:
    """Past 64 refused messages the typed road is not tried; the other roads give the same."""
    refused = [{**message(i), "note": "x"} for i in range(70)]
    clean = [message(i) for i in range(70, 100)]
    raws = [RawMessage(orjson.dumps(e), "t", 0, i) for i, e in enumerate([*refused, *clean])]
    decoder = batch_decoder()
    assert decoder._typed.read([r.value for r in raws]).parsed.size == 0
    assert decoder._typed.read([r.value for r in raws[70:]]).parsed.size == 30
    batch = decoder(raws)
    assert batch.n_events == 100 and batch.n_columnar > 0
    assert columnwise([batch]) == one_by_one(raws)


def _model_rows(batch: DecodedBatch) -> list[Any]:
    """Everything the rows of a by-model batch hold, comparable with ``==`` (NaN as text)."""
    out: list[Any] = [sorted((d.offset, d.reason.value, d.detail) for d in batch.dead), batch.n_events, batch.n_columnar]
    for rows in batch.models:
        block = rows.block
        out.append((
            rows.model, rows.keys.to_pylist(), dict(rows.labels), rows.embeddings, block.ts.tolist(),
            block.event_ids.to_pylist(), block.numeric_names, repr(block.numeric.tolist()),
            {k: v.to_pylist() for k, v in block.categorical.items()}, [r.offset for r in block.raws],
            {k: v.tolist() for k, v in block.states.items()}, block.wrong, block.unknown,
        ))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(typed_events(), st.integers(1, 12), st.lists(st.integers(0, 39), max_size=6))
def test_the_typed_road_reads_alike_chunk_by_chunk(raws: list[RawMessage], chunk: int, bad: list[int]) -> None:
    """A batch read by the typed road a few messages at a time (refused ones, source errors and
    garbage among them) gives the same rows and dead letters as read at once, and as one by one."""
    from unittest import mock

    import drift.batch.typed_json as typed_json

    for i in sorted(set(bad)):
        if i < len(raws):
            raw = raws[i]
            raws[i] = (RawMessage(b"{not json", raw.topic, raw.partition, raw.offset) if i % 2
                       else RawMessage(raw.value, raw.topic, raw.partition, raw.offset, error="broker says no"))
    whole = BatchDecoder(SCORED_DECODER, scored_decoder().models.values(), min_columnar=1, by_model=True)(raws)
    with mock.patch.object(typed_json, "CHUNK", chunk):
        chunked = BatchDecoder(SCORED_DECODER, scored_decoder().models.values(), min_columnar=1, by_model=True)(raws)
        assert columnwise([scored_decoder()(raws)]) == one_by_one(raws, SCORED_DECODER)
    assert _model_rows(chunked) == _model_rows(whole)


def test_the_typed_road_gives_up_only_when_the_first_messages_of_a_batch_are_all_refused() -> None:
    from unittest import mock

    import drift.batch.typed_json as typed_json

    refused = [orjson.dumps({**message(i), "note": "x"}) for i in range(70)]
    clean = [orjson.dumps(message(i)) for i in range(70, 100)]
    decoder = batch_decoder()
    with mock.patch.object(typed_json, "CHUNK", 16):
        assert decoder._typed.read([*refused, *clean]).parsed.size == 0  # 64 refused in a row, over chunks
        assert decoder._typed.read([*clean[:1], *refused, *clean[1:]]).parsed.tolist() == [0, *range(71, 100)]
        assert decoder._typed.read([*refused[:63], *clean]).parsed.tolist() == list(range(63, 93))
