"""Cohort windows (the cohort arrays) against a one-event-at-a-time statement of their rules.

The oracle (:func:`oracle`) reads the events one by one in arrival order, per cohort:
the watermark is the newest ``ts`` less the lateness (the system clock is frozen); an
event is late when the watermark at its arrival had reached its window's end; every other
event is added to its window, in arrival order. Whatever the batch cuts and the lateness,
the operator must close the same windows with the same summaries and send the same events
to ``late``; moments are merged per batch, so means and variances are compared within a
relative 1e-12. On streams where nothing arrives behind the watermark in an open window,
Bytewax's own ``fold_window`` gives the same answer (:func:`fold_window_oracle`).
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
from bytewax.testing import TestingSink, TestingSource, run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drift.batch import BatchDecoder, model_columns
from drift.cohort_arrays import RowExtras, layout_of
from drift.events import Decoder, DeadLetter, InferenceEvent, RawMessage
from drift.findings import Cohort
from drift.reference import build_reference
from drift.summary import WindowSummary, add_event, empty_summary, flush
from flows.shard_windows import STEP_ID, ShardSpec, ShardState, as_shards, shard_logic

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
T0 = datetime(2026, 11, 27, 9, tzinfo=timezone.utc)
SIZE = timedelta(minutes=10)
RNG = np.random.default_rng(3)
PROFILE = build_reference(
    "m", {"x": RNG.normal(size=1000), "c": [["a", "b"][i % 2] for i in range(1000)]},
    {"x": "numeric", "c": "categorical"}, {"x": 6}, "test", 1000,
)
DECODER = Decoder(models=frozenset({"m"}), now=lambda: NOW)


class Near(float):
    """A mean or ``m2`` that equals another within a relative 1e-12 (moments merged per batch)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and math.isclose(self, other, rel_tol=1e-12, abs_tol=1e-12)

    __hash__ = float.__hash__


def _state(summary: WindowSummary) -> tuple[Any, ...]:
    x, c = summary.features["x"], summary.features["c"]
    return (
        summary.n_events, summary.first_ts, summary.last_ts, summary.n_duplicate_event_id,
        x.counts.tolist(), x.moments.n, Near(x.moments.mean), Near(x.moments.m2), x.n_null, x.n_wrong_type, x.examples,
        c.counts.tolist(), c.examples, sorted(c.unseen), summary.duplicate_examples,
    )


def spec(lateness: timedelta, size: timedelta = SIZE) -> dict[str, ShardSpec]:
    return {"m": ShardSpec("m", layout_of(PROFILE, {}, None, True), size, lateness)}


def _messages(draw: st.DrawFn) -> list[RawMessage]:
    n = draw(st.integers(1, 120))
    raws = []
    newest = T0
    for i in range(n):
        # Mostly forward in time, sometimes far back (late) or slightly back (reordered).
        step = draw(st.sampled_from([0, 5, 20, 60, 200, -30, -400, -1500]))
        ts = newest + timedelta(seconds=step)
        newest = max(newest, ts)
        x: Any = round(draw(st.floats(-3, 3)), 3)
        if draw(st.integers(0, 9)) == 0:
            x = draw(st.sampled_from([None, "bad"]))
        event = {
            "event_id": f"e{draw(st.integers(0, 30))}", "ts": ts.isoformat(), "model": "m",
            "tenant": draw(st.sampled_from(["a", "b"])),
            "features": {"x": x, "c": draw(st.sampled_from(["a", "b", "zz", "q"]))},
        }
        raws.append(RawMessage(orjson.dumps(event), "t", 0, i))
    return raws


messages = st.composite(_messages)


def oracle(raws: list[RawMessage], lateness: timedelta) -> tuple[dict[Any, Any], list[int]]:
    events = [e for e in map(DECODER, raws) if isinstance(e, InferenceEvent)]
    by_cohort: dict[str, list[InferenceEvent]] = {}
    for event in events:
        by_cohort.setdefault(Cohort("m", (("tenant", event.tenant or "-"),)).key, []).append(event)
    result: dict[Any, Any] = {}
    late: list[int] = []
    for key, stream in by_cohort.items():
        watermarks = []
        watermark: datetime | None = None
        for event in stream:
            candidate = event.ts - lateness
            watermark = candidate if watermark is None else max(watermark, candidate)
            watermarks.append(watermark)
        windows: dict[datetime, WindowSummary] = {}
        for i, event in enumerate(stream):
            start = EPOCH + ((event.ts - EPOCH) // SIZE) * SIZE
            if start + SIZE <= watermarks[i]:
                late.append(event.raw.offset)
                continue
            summary = windows.setdefault(start, empty_summary(PROFILE, Cohort("m", (("tenant", event.tenant or "-"),))))
            add_event(summary, event, PROFILE)
        for start, summary in windows.items():
            result[(key, start)] = _state(flush(summary, PROFILE))
    return result, sorted(late)


def fold_window_oracle(raws: list[RawMessage], lateness: timedelta) -> tuple[dict[Any, Any], list[int]]:
    events = [e for e in map(DECODER, raws) if isinstance(e, InferenceEvent)]
    flow = Dataflow("oracle")
    stream = op.input("in", flow, TestingSource(events))
    keyed = op.key_on("key", stream, lambda e: Cohort("m", (("tenant", e.tenant or "-"),)).key)

    def folder(summary: WindowSummary | None, event: InferenceEvent) -> WindowSummary:
        if summary is None:
            summary = empty_summary(PROFILE, Cohort("m", (("tenant", event.tenant or "-"),)))
        return add_event(summary, event, PROFILE)

    windows = fold_window(
        "w", keyed, EventClock(lambda e: e.ts, lateness, now_getter=lambda: NOW),
        TumblingWindower(length=SIZE, align_to=EPOCH), builder=lambda: None, folder=folder,
        merger=lambda a, b: a,
    )
    closed: list[Any] = []
    late: list[Any] = []
    op.output("down", windows.down, TestingSink(closed))
    op.output("late", windows.late, TestingSink(late))
    run_main(flow)
    result = {(key, EPOCH + wid * SIZE): _state(flush(s, PROFILE)) for key, (wid, s) in closed}
    return result, sorted(e.raw.offset for _, (_, e) in late)


def _decoder(labels: tuple[str, ...] = ("tenant",)) -> BatchDecoder:
    return BatchDecoder(DECODER, [model_columns("m", labels, PROFILE, per_event=False, embeddings=False)],
                        min_columnar=1, by_model=True)


def batched(raws: list[RawMessage], cuts: list[int], lateness: timedelta) -> tuple[dict[Any, Any], list[int]]:
    bounds = sorted({0, len(raws), *(min(c, len(raws)) for c in cuts)})
    batches = [raws[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
    flow = Dataflow("batched")
    decoded = op.map("decode", op.input("in", flow, TestingSource(batches)), _decoder())
    shards = op.flat_map("shards", decoded, as_shards(2))
    out = op.stateful_batch(STEP_ID, shards, shard_logic(spec(lateness), lambda: NOW))
    items: list[Any] = []
    op.output("out", out, TestingSink(items))
    run_main(flow)
    result = {}
    late = []
    for _, (kind, value) in items:
        if kind == "closed":
            assert value.window.end - value.window.start == SIZE
            for i in range(len(value)):
                result[(value.cohorts[i].key, value.window.start)] = _state(value.summary(i))
        else:
            assert isinstance(value, DeadLetter) and value.reason.value == "late"
            late.append(value.offset)
    return result, sorted(late)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.lists(st.integers(0, 120), max_size=5), st.sampled_from([0, 30, 300]))
def test_batch_windows_equal_the_one_by_one_rules(raws: list[RawMessage], cuts: list[int], lateness_s: int) -> None:
    lateness = timedelta(seconds=lateness_s)
    assert batched(raws, cuts, lateness) == oracle(raws, lateness)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([0, 5, 20, 60, 200, -30, -400, -1500]), min_size=1, max_size=80))
def test_in_order_streams_equal_bytewax_fold_window(steps: list[int]) -> None:
    """Nothing behind the watermark in an open window: the rules are Bytewax's event clock."""
    lateness = timedelta(seconds=30)
    raws, newest = [], T0
    for i, step in enumerate(steps):
        ts = newest + timedelta(seconds=step)
        if step < 0:  # far behind: its window has closed, or back within the lateness
            start = EPOCH + ((ts - EPOCH) // SIZE) * SIZE
            if not (start + SIZE <= newest - lateness or ts >= newest - lateness):
                continue
        newest = max(newest, ts)
        event = {"event_id": f"e{i}", "ts": ts.isoformat(), "model": "m", "tenant": "a",
                 "features": {"x": (i % 7) / 3, "c": "ab"[i % 2]}}
        raws.append(RawMessage(orjson.dumps(event), "t", 0, i))
    assert batched(raws, [], lateness) == fold_window_oracle(raws, lateness) == oracle(raws, lateness)


def test_an_event_stamped_ahead_does_not_make_its_cohort_late() -> None:
    """One event 20 minutes ahead (hour windows): the next events' window is open, they count."""
    stamps = [T0 + timedelta(minutes=5), T0 + timedelta(minutes=25)] + [
        T0 + timedelta(minutes=6, seconds=k) for k in range(50)]
    raws = [RawMessage(orjson.dumps({"ts": t.isoformat(), "model": "m", "tenant": "a",
                                      "features": {"x": 0.1, "c": "a"}}), "t", 0, i) for i, t in enumerate(stamps)]
    logic = shard_logic(spec(timedelta(minutes=1), timedelta(hours=1)), lambda: NOW)(None)
    out, _ = logic.on_batch(_decoder()(raws).models)
    more, _ = logic.on_eof()
    kinds = [kind for kind, _ in [*out, *more]]
    assert kinds == ["closed"]
    (_, closed), = [*out, *more]
    assert closed.summary(0).n_events == len(stamps)


def test_late_rows_are_dead_letters_with_their_bytes() -> None:
    stamps = [T0 + timedelta(minutes=30), T0, T0 + timedelta(minutes=31)]  # T0's window ended at 9:10
    raws = [RawMessage(orjson.dumps({"ts": t.isoformat(), "model": "m", "tenant": "a",
                                      "features": {"x": 0.1, "c": "a"}}), "t", 2, i) for i, t in enumerate(stamps)]
    windows, late = batched(raws, [], timedelta(minutes=1))
    assert late == [1]
    assert sorted(start for _, start in windows) == [T0 + timedelta(minutes=30)]


def _outputs(logic: Any, batches: list[list[Any]]) -> list[Any]:
    """What a shard's windows logic emits for the rest of a stream, then at its end."""
    out: list[Any] = []
    for rows in batches:
        emitted, _ = logic.on_batch(rows)
        out.extend(emitted)
    emitted, _ = logic.on_eof()
    out.extend(emitted)
    return [
        (kind, [(value.cohorts[i].key, value.window.start, _state(value.summary(i))) for i in range(len(value))]
         if kind == "closed" else value.offset)
        for kind, value in out
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.lists(st.integers(0, 120), max_size=5), st.integers(0, 5))
def test_snapshot_is_a_copy_later_batches_do_not_change(raws: list[RawMessage], cuts: list[int], at: int) -> None:
    """Resuming from ``snapshot()`` taken mid-stream gives what resuming from a pickled copy gives,
    although the snapshotted logic went on counting rows into the same windows."""
    decoder = _decoder(())
    bounds = sorted({0, len(raws), *(min(c, len(raws)) for c in cuts)})
    batches = [decoder(raws[a:b]).models for a, b in zip(bounds, bounds[1:]) if b > a]
    at = min(at, len(batches))
    build = shard_logic(spec(timedelta(seconds=300)), lambda: NOW)
    logic = build(None)
    for rows in batches[:at]:
        logic.on_batch(rows)
    snapshot, pickled = logic.snapshot(), pickle.dumps(logic.state)
    rest = batches[at:]
    expected = _outputs(build(pickle.loads(pickled)), rest)
    assert _outputs(logic, rest) == expected  # the original goes on...
    assert _outputs(build(snapshot), rest) == expected  # ...and its snapshot did not move


def test_snapshot_copies_every_field_of_the_state() -> None:
    """``ShardState.copy`` and the copy of a row's extras name the fields: a new field must be added there too."""
    assert [f.name for f in dataclasses.fields(ShardState)] == [
        "model", "keys", "cohorts", "names", "free", "watermark_base", "system_time_of_max", "last_window", "in_use",
        "schema_seen", "schemas", "open", "members",
    ]
    assert [f.name for f in dataclasses.fields(RowExtras)] == [
        "examples", "out_of_range_examples", "unseen", "unseen_capped", "unknown_fields", "unknown_fields_capped",
        "duplicate_examples", "embedding",
    ]


def test_snapshot_without_copies_is_the_live_state() -> None:
    """Without a recovery store the logic hands over its state itself; with one, a copy."""
    live = shard_logic(spec(timedelta(seconds=300)), lambda: NOW, copies=False)(None)
    durable = shard_logic(spec(timedelta(seconds=300)), lambda: NOW)(None)
    assert live.snapshot() is live.state
    assert durable.snapshot() is not durable.state
