"""A late row of an Arrow IPC message reaches the dead letters as that one row, in the real flow."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import bytewax.operators as op
import numpy as np
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from drift.batch import BatchDecoder, encode_arrow, model_columns
from drift.events import Decoder, DeadLetter, DlqReason, InferenceEvent, RawMessage
from drift.cohort_arrays import layout_of
from drift.reference import build_reference
from flows.shard_windows import STEP_ID, ShardSpec, as_shards, shard_logic

NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
T0 = datetime(2026, 11, 27, 9, tzinfo=timezone.utc)
RNG = np.random.default_rng(5)
PROFILE = build_reference(
    "m", {"x": RNG.normal(size=1000), "c": [["a", "b"][i % 2] for i in range(1000)]},
    {"x": "numeric", "c": "categorical"}, {"x": 6}, "test", 1000,
)
DECODER = Decoder(models=frozenset({"m"}), now=lambda: NOW)


def record(i: int, ts: datetime) -> dict[str, Any]:
    return {"event_id": f"e-{i}", "ts": ts.isoformat().replace("+00:00", "Z"), "model": "m", "tenant": "a",
            "features": {"x": round(float(RNG.normal()), 4), "c": ["a", "b"][i % 2]}}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_late_arrow_row_is_a_dead_letter_of_its_own_row(workers: int) -> None:
    # 200 rows an hour later, then 3 rows an hour earlier (beyond the minute allowed): late.
    records = [record(i, T0 + timedelta(hours=1, seconds=i)) for i in range(200)]
    records += [record(200 + i, T0 + timedelta(seconds=i)) for i in range(3)]
    ipc = RawMessage(encode_arrow(records), "inference", 3, 41, key=b"batch-7")
    decoder = BatchDecoder(DECODER, [model_columns("m", ("tenant",), PROFILE, per_event=False, embeddings=False)],
                           by_model=True)
    flow = Dataflow("late_arrow")
    decoded = op.map("decode", op.input("in", flow, TestingSource([[ipc]])), decoder)
    spec = ShardSpec("m", layout_of(PROFILE), timedelta(minutes=10), timedelta(minutes=1))
    out = op.stateful_batch(STEP_ID, op.flat_map("shards", decoded, as_shards(workers)),
                            shard_logic({"m": spec}, lambda: NOW))
    items: list[Any] = []
    op.output("out", out, TestingSink(items))
    if workers == 1:
        run_main(flow)
    else:
        from bytewax.testing import cluster_main
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    letters = [value for _, (kind, value) in items if kind == "late"]
    assert len(letters) == 3
    assert sum(int(value.n_events.sum()) for _, (kind, value) in items if kind == "closed") == 200
    for letter, expected in zip(sorted(letters, key=lambda d: d.value), records[200:]):
        assert isinstance(letter, DeadLetter) and letter.reason == DlqReason.LATE
        assert (letter.topic, letter.partition, letter.offset, letter.key) == ("inference", 3, 41, b"batch-7")
        assert letter.value is not None and len(letter.value) < 300  # the row, not the 200-row batch
        event = DECODER(RawMessage(letter.value, letter.topic, letter.partition, letter.offset, letter.key))
        assert isinstance(event, InferenceEvent)
        assert event == DECODER(RawMessage(orjson.dumps(expected), "inference", 3, 41, key=b"batch-7"))
        assert letter.to_dict()["value_encoding"] == "utf-8"
