"""Avro events in the Confluent wire format against their JSON twins.

The oracle is the JSON path: an Avro record and the JSON text of the same content must
give the same events (the same window summaries, bit for bit) and the same dead letters;
only a dead letter's bytes differ: the original Avro message is kept.
"""

from __future__ import annotations

import base64
import io
import math
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drift.batch import BatchDecoder, DecodedBatch, model_columns
from drift.events import DeadLetter, Decoder, DlqReason, RawMessage
from drift.wire import FileSchemas, SchemaError, WireDecoder, WireSchema, parse_avro_schema
from test_batch import NOW, PROFILE, VARIANTS, batch_decoder, columnwise, message, one_by_one

SCALAR = ["null", "boolean", "long", "double", "string"]
TEXT = ["null", "string", "long"]
SCHEMA: dict[str, Any] = {
    "type": "record", "name": "InferenceEvent", "namespace": "drift.test",
    "fields": [
        {"name": "event_id", "type": TEXT, "default": None},
        {"name": "ts", "type": ["null", "long", "string", {"type": "long", "logicalType": "timestamp-micros"}],
         "default": None},
        {"name": "model", "type": TEXT, "default": None},
        *({"name": n, "type": [*TEXT, "double"], "default": None} for n in ("model_version", "tenant", "region")),
        {"name": "segment", "type": ["null", {"type": "map", "values": TEXT}], "default": None},
        {"name": "features", "type": ["null", {"type": "map", "values": SCALAR}], "default": None},
        {"name": "prediction", "type": ["null", "long", {"type": "map", "values": SCALAR}], "default": None},
    ],
}
FIELDS = [f["name"] for f in SCHEMA["fields"]]
PARSED = fastavro.parse_schema(SCHEMA)


class Schemas:
    """Schema id 1 is :data:`SCHEMA`; others are unknown."""

    def __init__(self, extra: dict[int, Any] | None = None) -> None:
        self.known = {1: WireSchema(1, PARSED)}
        for schema_id, schema in (extra or {}).items():
            self.known[schema_id] = WireSchema(schema_id, fastavro.parse_schema(schema))

    def schema(self, schema_id: int) -> WireSchema:
        from drift.wire import UnknownSchema

        if schema_id not in self.known:
            raise UnknownSchema(f"schema id {schema_id} is not known")
        return self.known[schema_id]


def framed(record: Any, schema: Any = PARSED, schema_id: int = 1) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return b"\x00" + struct.pack(">I", schema_id) + out.getvalue()


def record_of(event: dict[str, Any], timestamps: bool) -> dict[str, Any]:
    """The Avro record of an event: every schema field, absent ones null (the JSON twin says the same)."""
    record = {name: event.get(name) for name in FIELDS}
    ts = record["ts"]
    if timestamps and isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None and parsed.year > 1:
            record["ts"] = parsed.astimezone(timezone.utc)
    return record


def json_twin(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def twins(n: int, choices: list[int], timestamps: bool) -> tuple[list[RawMessage], list[RawMessage], set[int]]:
    """Avro messages (JSON where the schema cannot hold the variant) and their JSON twins."""
    avro, plain, framed_at = [], [], set()
    for i in range(n):
        record = record_of(VARIANTS[choices[i % len(choices)]](message(i)), timestamps)
        text = json_twin(record)
        try:
            value = framed(record)
            framed_at.add(i)
        except (ValueError, TypeError, fastavro.validation.ValidationError):
            value = text
        avro.append(RawMessage(value, "t", 0, i, b"k"))
        plain.append(RawMessage(text, "t", 0, i, b"k"))
    return avro, plain, framed_at


def wire(decoder: BatchDecoder | None = None) -> WireDecoder:
    return WireDecoder(decoder or batch_decoder(), Schemas())


def test_every_variant_is_framed_where_the_schema_holds_it() -> None:
    avro, _, framed_at = twins(len(VARIANTS), list(range(len(VARIANTS))), timestamps=True)
    assert len(framed_at) >= len(VARIANTS) - 4  # nested predictions and embeddings stay JSON
    assert all(avro[i].value[:1] == b"\x00" for i in framed_at)  # type: ignore[index]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(VARIANTS) - 1), min_size=1, max_size=50), st.booleans(), st.integers(1, 3))
def test_avro_events_decode_like_their_json_twins(choices: list[int], timestamps: bool, parts: int) -> None:
    avro, plain, framed_at = twins(len(choices), choices, timestamps)
    decoder = wire()
    size = max(1, math.ceil(len(avro) / parts))
    batches = [decoder(avro[k:k + size]) for k in range(0, len(avro), size)]
    expected = columnwise([batch_decoder()(plain[k:k + size]) for k in range(0, len(plain), size)])
    assert columnwise(batches) == expected
    assert columnwise(batches) == one_by_one(plain)
    # Everything that was Avro is kept as Avro: dead letters, events and block rows.
    originals = {raw.offset: raw.value for raw in avro}
    for batch in batches:
        for letter in batch.dead:
            assert letter.value == originals[letter.offset]
        for piece in batch.pieces:
            for event in piece.events:
                assert event.raw.value == originals[event.raw.offset]
            if piece.block is not None:
                assert [r.value for r in piece.block.raws] == [originals[r.offset] for r in piece.block.raws]


def test_a_large_avro_batch_is_decoded_column_wise() -> None:
    avro, plain, framed_at = twins(400, [0], timestamps=True)
    assert len(framed_at) == 400
    batch = WireDecoder(BatchDecoder(Decoder(models=frozenset({"m", "other"}), now=lambda: NOW), [
        model_columns("m", ("tenant", "segment.channel"), PROFILE, per_event=False, embeddings=False)]), Schemas())(avro)
    assert batch.n_events == 400 and batch.n_columnar == 400 and not batch.dead


def dead_letter(value: bytes, decoder: WireDecoder | None = None) -> DeadLetter:
    batch = (decoder or wire())([RawMessage(value, "t", 3, 9, b"k")])
    assert len(batch.dead) == 1 and batch.n_events == 0, batch
    letter = batch.dead[0]
    assert (letter.value, letter.topic, letter.partition, letter.offset, letter.key) == (value, "t", 3, 9, b"k")
    assert letter.step_id == "decode_inference"
    return letter


GOOD = record_of(message(1), timestamps=True)


@pytest.mark.parametrize(("value", "reason", "detail"), [
    (b"\x00" + struct.pack(">I", 7) + framed(GOOD)[5:], DlqReason.UNKNOWN_SCHEMA, "schema id 7 is not known"),
    (b"\x00\x00\x00", DlqReason.BAD_AVRO, "starts with 5 bytes (magic byte 0, schema id); got 3"),
    (b"\x00\x00\x00\x00\x01", DlqReason.BAD_AVRO, "not Avro of schema id 1: EOFError"),
    (framed(GOOD)[:-3], DlqReason.BAD_AVRO, "not Avro of schema id 1"),
    (framed(GOOD) + b"\x00\x00", DlqReason.BAD_AVRO, "2 bytes left after the record"),
    (b"\x00\x00\x00\x00\x01" + b"\x7f" * 40, DlqReason.BAD_AVRO, "not Avro of schema id 1"),
])
def test_wire_messages_that_cannot_be_read_are_dead_letters(value: bytes, reason: DlqReason, detail: str) -> None:
    letter = dead_letter(value)
    assert letter.reason is reason and detail in letter.detail, letter.detail
    assert letter.field is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_avro_double_is_non_finite_with_its_field(bad: float) -> None:
    letter = dead_letter(framed({**GOOD, "features": {**GOOD["features"], "y": bad}}))
    assert letter.reason is DlqReason.NON_FINITE
    assert letter.field == "features.y" and letter.detail == f"features.y is not finite; got {bad!r}"


def test_a_non_finite_prediction_names_its_path() -> None:
    letter = dead_letter(framed({**GOOD, "prediction": {"score": math.nan}}))
    assert letter.reason is DlqReason.NON_FINITE and letter.field == "prediction.score"


TIMESTAMPS = {
    "type": "record", "name": "E", "fields": [
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "ts2", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "model", "type": "string"},
        {"name": "features", "type": {"type": "record", "name": "F", "fields": [
            {"name": "x", "type": ["null", "double"]}, {"name": "c", "type": {
                "type": "enum", "name": "C", "symbols": ["a", "b", "c"]}}]}},
        {"name": "embedding", "type": ["null", "bytes", {"type": "array", "items": "float"}]},
    ],
}


@pytest.mark.parametrize("logical", ["timestamp-millis", "timestamp-micros"])
def test_timestamps_records_enums_and_float_arrays(logical: str) -> None:
    ts = datetime(2026, 11, 27, 11, 30, 0, 123000, tzinfo=timezone.utc)
    schema = {**TIMESTAMPS, "fields": [{"name": "ts", "type": {"type": "long", "logicalType": logical}},
                                       *TIMESTAMPS["fields"][2:]]}
    parsed = fastavro.parse_schema(schema)
    vector = [0.5, -0.25, 1.0]
    decoder = Decoder(models=frozenset({"m"}), now=lambda: NOW, embeddings={"m": ("embedding", 3)})
    wired = WireDecoder(BatchDecoder(decoder, [
        model_columns("m", (), PROFILE, per_event=False, embeddings=True)]), Schemas({2: schema}))
    packed = np.asarray(vector, "<f4").tobytes()
    records = [
        {"ts": ts, "model": "m", "features": {"x": 1.5, "c": "b"}, "embedding": vector},
        {"ts": ts, "model": "m", "features": {"x": None, "c": "a"}, "embedding": packed},
    ]
    batch = wired([RawMessage(framed(r, parsed, 2), "t", 0, i) for i, r in enumerate(records)])
    assert not batch.dead
    events = [e for piece in batch.pieces for e in piece.events]
    assert [e.ts for e in events] == [ts, ts]
    assert [dict(e.features) for e in events] == [{"x": 1.5, "c": "b"}, {"x": None, "c": "a"}]
    assert [e.embedding.tolist() for e in events] == [vector, vector]
    # The same as the JSON events with an RFC 3339 ts and the embedding as a list / as base64.
    json_events = [decoder(RawMessage(orjson.dumps({**r, "ts": ts.isoformat(), "embedding": e}), "t", 0, i))
                   for i, (r, e) in enumerate(zip(records, [vector, {
                       "dtype": "float32", "b64": base64.b64encode(packed).decode()}]))]
    assert [(e.ts, dict(e.features), e.embedding.tolist()) for e in json_events] == [  # type: ignore[union-attr]
        (e.ts, dict(e.features), e.embedding.tolist()) for e in events]


def test_a_local_timestamp_has_no_zone_and_is_a_bad_timestamp() -> None:
    schema = {"type": "record", "name": "E", "fields": [
        {"name": "ts", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "model", "type": "string"}, {"name": "features", "type": {"type": "map", "values": "double"}}]}
    value = framed({"ts": datetime(2026, 11, 27, 10), "model": "m", "features": {"x": 1.0}},
                   fastavro.parse_schema(schema), 3)
    letter = dead_letter(value, WireDecoder(batch_decoder(), Schemas({3: schema})))
    assert letter.reason is DlqReason.BAD_TIMESTAMP and "no UTC offset" in letter.detail


def test_json_and_arrow_messages_pass_through_untouched() -> None:
    raws = [RawMessage(json_twin(record_of(message(i), False)), "t", 0, i) for i in range(40)]
    assert columnwise([wire()(raws)]) == columnwise([batch_decoder()(raws)])


def test_schema_files_are_read_at_start(tmp_path: Path) -> None:
    path = tmp_path / "event.avsc"
    path.write_bytes(orjson.dumps(SCHEMA))
    schemas = FileSchemas({5: path})
    assert schemas.schema(5).schema_id == 5
    letter = dead_letter(framed(GOOD, schema_id=6), WireDecoder(batch_decoder(), schemas))
    assert letter.reason is DlqReason.UNKNOWN_SCHEMA
    assert letter.detail == "schema id 6 is not in events.schemas.files; known: [5]"
    with pytest.raises(SchemaError, match=r"events.schemas.files.5: cannot read '.*missing.avsc'"):
        FileSchemas({5: tmp_path / "missing.avsc"})
    (tmp_path / "bad.avsc").write_text('{"type": "record", "name": "E", "fields": [{"name": "x", "type": "nope"}]}')
    with pytest.raises(SchemaError, match="schema id 5 is not an Avro schema"):
        FileSchemas({5: tmp_path / "bad.avsc"})
    with pytest.raises(SchemaError, match="is not an Avro schema"):
        parse_avro_schema("not json", 1, "x")


def test_the_decoder_never_raises_on_framed_bytes() -> None:
    rng = np.random.default_rng(3)
    good = framed(GOOD)
    decoder = wire()
    for _ in range(300):
        value = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            value[int(rng.integers(5, len(value)))] = int(rng.integers(0, 256))
        batch: DecodedBatch = decoder([RawMessage(bytes(value), "t", 0, 0)])
        assert batch.n_events + len(batch.dead) == 1


def test_a_late_avro_event_reaches_the_dead_letters_as_avro() -> None:
    """Late rows are cut from the block's raws: those must be the Avro messages."""
    avro, _, _ = twins(64, [0], timestamps=True)
    batch = wire()(avro)
    raws = [r for piece in batch.pieces if piece.block is not None for r in piece.block.raws]
    assert len(raws) == 64 and all(r.value[:1] == b"\x00" for r in raws)  # type: ignore[index]
    assert not batch.dead and batch.n_columnar == 64


@pytest.mark.parametrize(("events", "message"), [
    ("events:\n  format: avro\n", "events: format avro needs schemas"),
    ('events:\n  schemas: {files: {"1": e.avsc}}\n', "events: schemas are read only with format: avro or protobuf"),
    ("events:\n  format: avro\n  schemas: {files: {x: e.avsc}}\n", "events.schemas.files: keys must be schema ids"),
    ("events:\n  format: avro\n  schemas: {registry: ftp://host}\n", "events.schemas.registry: must be an http"),
    ("events:\n  format: avro\n  schemas: {}\n", "events.schemas: needs registry (a URL) or files"),
    ('events:\n  format: avro\n  schemas: {files: {"1": missing.avsc}}\n',
     "events.schemas.files.1: cannot read"),
    ('events:\n  format: avro\n  schemas: {files: {"1": bad.avsc}}\n',
     "events.schemas.files.1: schema id 1 is not an Avro schema"),
    ("events:\n  format: xml\n  schemas: {registry: http://r}\n", "events.format"),
])
def test_the_config_names_what_is_wrong(tmp_path: Path, events: str, message: str) -> None:
    from drift import demo
    from drift.config import load_config
    from drift.errors import ConfigError

    (tmp_path / "bad.avsc").write_text('{"type": "record"}')
    (tmp_path / "drift.yaml").write_text(demo.config_text() + events, encoding="utf-8")
    demo.write_references(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "drift.yaml", check_references=True)
    assert any(message in line for line in error.value.messages), error.value.messages


def test_a_valid_avro_config(tmp_path: Path) -> None:
    from drift import demo
    from drift.config import load_config

    (tmp_path / "e.avsc").write_bytes(orjson.dumps(SCHEMA))
    text = demo.config_text() + 'events:\n  format: avro\n  schemas: {files: {"1": e.avsc}, registry: "http://r:8081"}\n'
    (tmp_path / "drift.yaml").write_text(text, encoding="utf-8")
    demo.write_references(tmp_path)
    config = load_config(tmp_path / "drift.yaml", check_references=True)
    assert config.events.format == "avro" and config.events.schemas is not None
    assert config.events.schemas.schema_files() == {1: "e.avsc"}
