"""A late row reaches the dead letters as the message it came in (a row of an Arrow IPC message, an Avro message)."""

from __future__ import annotations

import io
import struct
from datetime import datetime, timedelta, timezone
from typing import Any

import bytewax.operators as op
import fastavro
import numpy as np
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from drift.batch import BatchDecoder, encode_arrow, model_columns
from drift.events import Decoder, DeadLetter, DlqReason, InferenceEvent, RawMessage
from drift.cohort_arrays import layout_of
from drift.reference import build_reference
from drift.wire import WireDecoder, WireSchema
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


AVRO = {
    "type": "record", "name": "InferenceEvent", "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "model", "type": "string"}, {"name": "tenant", "type": "string"},
        {"name": "features", "type": {"type": "record", "name": "Features", "fields": [
            {"name": "x", "type": "double"}, {"name": "c", "type": "string"}]}},
    ],
}


def test_a_late_avro_event_is_a_dead_letter_of_its_avro_message() -> None:
    parsed = fastavro.parse_schema(AVRO)

    class Schemas:
        def schema(self, schema_id: int) -> WireSchema:
            return WireSchema(schema_id, parsed)

    def framed(i: int, ts: datetime) -> RawMessage:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, {"event_id": f"e-{i}", "ts": ts, "model": "m", "tenant": "a",
                                                 "features": {"x": 0.5, "c": "a"}})
        return RawMessage(b"\x00" + struct.pack(">I", 1) + out.getvalue(), "inference", 0, i)

    raws = [framed(0, T0 + timedelta(hours=1)), framed(1, T0)]  # the second is an hour behind: late
    decoder = BatchDecoder(DECODER, [model_columns("m", ("tenant",), PROFILE, per_event=False, embeddings=False)],
                           min_columnar=1, by_model=True)
    spec = ShardSpec("m", layout_of(PROFILE), timedelta(minutes=10), timedelta(minutes=1))
    out, _ = shard_logic({"m": spec}, lambda: NOW)(None).on_batch(WireDecoder(decoder, Schemas())(raws).models)
    [letter] = [value for kind, value in out if kind == "late"]
    assert (letter.offset, letter.value) == (1, raws[1].value)
