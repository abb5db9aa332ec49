"""Protobuf events in the Confluent wire format against their JSON twins.

The oracle is the JSON path, as for Avro (tests/drift/test_wire.py): a Protobuf message
and the JSON text of the same content must give the same events (the same window
summaries, bit for bit) and the same dead letters; a dead letter keeps the Protobuf bytes.
The message-index framing is checked against a direct transcription of Confluent's writer
(zigzag LEB128 varints, ``[0]`` as one zero byte) and its index walk over nested types.
"""

from __future__ import annotations

import base64
import io
import math
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drift.batch import BatchDecoder, DecodedBatch, model_columns
from drift.events import DeadLetter, Decoder, DlqReason, RawMessage
from drift.wire import FileSchemas, SchemaError, UnknownSchema, WireDecoder, WireSchema, parse_protobuf_schema
from drift.wire_protobuf import (
    MAX_INDEXES,
    _varint,
    PayloadError,
    ProtobufSchema,
    compile_proto_texts,
    encode_message_indexes,
    read_message_indexes,
)
from test_batch import NOW, PROFILE, VARIANTS, batch_decoder, columnwise, message, one_by_one

PROTO = """
syntax = "proto3";
package drift.test;

import "google/protobuf/timestamp.proto";

// A value of one of several types: read as the member that is set.
message Scalar {
  oneof kind { bool flag = 1; int64 integer = 2; double number = 3; string text = 4; }
}
message Text {
  oneof kind { string text = 1; int64 integer = 2; double number = 3; }
}
message Ts {
  oneof kind { int64 epoch = 1; string text = 2; google.protobuf.Timestamp instant = 3; }
}
message InferenceEvent {
  Text event_id = 1;
  Ts ts = 2;
  Text model = 3;
  Text model_version = 4;
  Text tenant = 5;
  Text region = 6;
  map<string, Text> segment = 7;
  map<string, Scalar> features = 8;
  map<string, Scalar> prediction = 9;
  repeated float embedding = 10;
}
"""
TYPED = """
syntax = "proto3";
package drift.typed;

import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Channel { CHANNEL_UNSPECIFIED = 0; WEB = 1; APP = 2; }
message Other { string x = 1; }
message Event {
  message Features {
    double x = 1;
    optional double y = 2;
    Channel c = 3;
    google.protobuf.DoubleValue z = 4;
    float f = 5;
    int32 n = 6;
    bool b = 7;
  }
  optional string event_id = 1;
  google.protobuf.Timestamp ts = 2;
  string model = 3;
  string tenant = 4;
  Features features = 5;
  google.protobuf.Struct prediction = 6;
  repeated float embedding = 7;
  bytes packed = 8;
  int64 ts_ms = 9;
}
"""
FILES = compile_proto_texts({"event.proto": PROTO}, "event.proto")
SCHEMA = ProtobufSchema(list(FILES.file))
EVENT_CLASS, _ = SCHEMA.message_type((3,))
TYPED_FILES = compile_proto_texts({"typed.proto": TYPED}, "typed.proto")
TYPED_SCHEMA = ProtobufSchema(list(TYPED_FILES.file))


class Schemas:
    """Schema id 1 is :data:`PROTO`, 2 :data:`TYPED`; others are unknown."""

    def __init__(self) -> None:
        self.known = {1: WireSchema(1, protobuf=SCHEMA), 2: WireSchema(2, protobuf=TYPED_SCHEMA)}

    def schema(self, schema_id: int) -> WireSchema:
        if schema_id not in self.known:
            raise UnknownSchema(f"schema id {schema_id} is not known")
        return self.known[schema_id]


def framed(message: Message, indexes: list[int], schema_id: int = 1) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + encode_message_indexes(indexes) + message.SerializeToString()


def wire(decoder: BatchDecoder | None = None) -> WireDecoder:
    return WireDecoder(decoder or batch_decoder(), Schemas(), format="protobuf")


# ------------------------------------------------------------------------- message indexes


def confluent_indexes(indexes: list[int]) -> bytes:
    """Confluent's ``_encode_varints``: the count, then each index, as zigzag LEB128 varints."""
    if indexes == [0]:
        return b"\x00"
    out = io.BytesIO()
    for value in [len(indexes), *indexes]:
        unsigned = 2 * value if value >= 0 else -2 * value - 1
        while True:
            low, unsigned = unsigned % 128, unsigned // 128
            out.write(bytes([low + 128 if unsigned else low]))
            if not unsigned:
                break
    return out.getvalue()


def confluent_index_array(descriptor: Any) -> tuple[int, ...]:
    """Confluent's ``_create_index_array``: positions among nested types up to the file's messages."""
    path: list[int] = []
    while descriptor.containing_type is not None:
        parent = descriptor.containing_type
        path.insert(0, [d.full_name for d in parent.nested_types].index(descriptor.full_name))
        descriptor = parent
    path.insert(0, list(descriptor.file.message_types_by_name).index(descriptor.name))
    return tuple(path)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=MAX_INDEXES), st.binary(max_size=8))
def test_message_indexes_round_trip_as_confluent_writes_them(indexes: list[int], after: bytes) -> None:
    encoded = encode_message_indexes(indexes)
    assert encoded == confluent_indexes(indexes)
    data = b"\x00\x00\x00\x00\x07" + encoded + after
    assert read_message_indexes(data, 5) == (tuple(indexes), 5 + len(encoded))


def test_the_first_message_type_is_one_zero_byte() -> None:
    assert encode_message_indexes([0]) == b"\x00" == confluent_indexes([0])
    assert read_message_indexes(b"\x00", 0) == ((0,), 1)
    assert read_message_indexes(b"\x02\x00", 0) == ((0,), 2)  # [0] written out in full


@pytest.mark.parametrize(("data", "detail"), [
    (b"", "the message indexes end at byte 0, within a varint"),
    (b"\x04\x02", "end at byte 2, within a varint"),
    (b"\x80\x80", "end at byte 2, within a varint"),
    (b"\xff" * 11, "a varint longer than 10 bytes"),
    (b"\x01", "the message-index array has -1 entries; expected 1 to 64"),
    (b"\xfe\xff\xff\xff\x0f", "has 2147483647 entries; expected 1 to 64"),
    (encode_message_indexes(list(range(65))), "has 65 entries"),
    (b"\x02\x01", "a message index is negative; got -1"),
])
def test_hostile_message_indexes_are_refused(data: bytes, detail: str) -> None:
    with pytest.raises(PayloadError) as error:
        read_message_indexes(data, 0)
    assert error.value.reason is DlqReason.BAD_PROTOBUF and detail in error.value.detail


def test_message_indexes_name_nested_types_as_confluent_counts_them() -> None:
    for indexes in [(0,), (1,), (3,), (3, 0), (3, 1), (3, 2)]:
        _, descriptor = SCHEMA.message_type(indexes)
        assert confluent_index_array(descriptor) == indexes
    _, typed = TYPED_SCHEMA.message_type((1, 0))
    assert typed.full_name == "drift.typed.Event.Features"


# ------------------------------------------------------------------------------ JSON twins


def _text(message: Message, value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return value is None
    if isinstance(value, str):
        message.text = value  # type: ignore[attr-defined]
    elif isinstance(value, int) and -2**63 <= value < 2**63:
        message.integer = value  # type: ignore[attr-defined]
    elif isinstance(value, float):
        message.number = value  # type: ignore[attr-defined]
    else:
        return False
    return True


def _scalar(message: Message, value: Any) -> bool:
    if isinstance(value, bool):
        message.flag = value  # type: ignore[attr-defined]
        return True
    return _text(message, value)


def _rfc3339(ts: datetime) -> str:
    """What a google.protobuf.Timestamp reads as: RFC 3339 in UTC, nanoseconds when not zero."""
    utc = ts.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{utc.microsecond * 1000:09d}Z" if utc.microsecond else f"{text}Z"


def proto_twin(event: dict[str, Any], timestamps: bool) -> tuple[bytes, dict[str, Any]] | None:
    """The Protobuf message of an event and the JSON object of its content, or None where the
    schema cannot hold it. Unset fields, empty maps and lists are absent (null is absent too)."""
    if not set(event) <= set(EVENT_CLASS.DESCRIPTOR.fields_by_name):
        return None
    out = EVENT_CLASS()
    twin: dict[str, Any] = {}
    for name, value in event.items():
        if value is None:
            continue
        if name == "ts":
            ts = getattr(out, "ts")
            parsed = None
            if timestamps and isinstance(value, str):
                try:
                    parsed = datetime.fromisoformat(value)
                except ValueError:
                    parsed = None
            if parsed is not None and parsed.tzinfo is not None and parsed.year > 1:
                ts.instant.FromDatetime(parsed.astimezone(timezone.utc))
                twin[name] = _rfc3339(parsed)
                continue
            if isinstance(value, bool):
                return None
            if isinstance(value, int):
                ts.epoch = value
            elif isinstance(value, str):
                ts.text = value
            else:
                return None
        elif name in ("segment", "features", "prediction"):
            if not isinstance(value, dict):
                return None
            target = getattr(out, name)
            for key, item in value.items():
                if not (_text if name == "segment" else _scalar)(target[key], item):
                    return None
            if not value:
                continue
        elif name == "embedding":
            if not isinstance(value, list) or not all(isinstance(v, float) for v in value):
                return None
            out.embedding.extend(value)  # type: ignore[attr-defined]
            if not value:
                continue
        elif not _text(getattr(out, name), value):
            return None
        twin[name] = value
    return framed(out, [3]), twin


def twins(n: int, choices: list[int], timestamps: bool) -> tuple[list[RawMessage], list[RawMessage], set[int]]:
    """Protobuf messages (JSON where the schema cannot hold the variant) and their JSON twins."""
    proto, plain, framed_at = [], [], set()
    for i in range(n):
        event = VARIANTS[choices[i % len(choices)]](message(i))
        made = proto_twin(event, timestamps)
        if made is None:
            value = text = orjson.dumps(event)
        else:
            value, twin = made
            text = orjson.dumps(twin)
            framed_at.add(i)
        proto.append(RawMessage(value, "t", 0, i, b"k"))
        plain.append(RawMessage(text, "t", 0, i, b"k"))
    return proto, plain, framed_at


def test_every_variant_is_framed_where_the_schema_holds_it() -> None:
    proto, _, framed_at = twins(len(VARIANTS), list(range(len(VARIANTS))), timestamps=True)
    assert len(framed_at) >= len(VARIANTS) - 6  # booleans as labels, nested predictions and embeddings stay JSON
    assert all(proto[i].value[:1] == b"\x00" for i in framed_at)  # type: ignore[index]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(VARIANTS) - 1), min_size=1, max_size=50), st.booleans(), st.integers(1, 3))
def test_protobuf_events_decode_like_their_json_twins(choices: list[int], timestamps: bool, parts: int) -> None:
    proto, plain, _ = twins(len(choices), choices, timestamps)
    decoder = wire()
    size = max(1, math.ceil(len(proto) / parts))
    batches = [decoder(proto[k:k + size]) for k in range(0, len(proto), size)]
    expected = columnwise([batch_decoder()(plain[k:k + size]) for k in range(0, len(plain), size)])
    assert columnwise(batches) == expected
    assert columnwise(batches) == one_by_one(plain)
    originals = {raw.offset: raw.value for raw in proto}
    for batch in batches:
        for letter in batch.dead:
            assert letter.value == originals[letter.offset]
        for piece in batch.pieces:
            for event in piece.events:
                assert event.raw.value == originals[event.raw.offset]
            if piece.block is not None:
                assert [r.value for r in piece.block.raws] == [originals[r.offset] for r in piece.block.raws]


def test_a_large_protobuf_batch_is_decoded_column_wise() -> None:
    proto, _, framed_at = twins(400, [0], timestamps=True)
    assert len(framed_at) == 400
    batch = WireDecoder(BatchDecoder(Decoder(models=frozenset({"m", "other"}), now=lambda: NOW), [
        model_columns("m", ("tenant", "segment.channel"), PROFILE, per_event=False, embeddings=False)]),
        Schemas(), format="protobuf")(proto)
    assert batch.n_events == 400 and batch.n_columnar == 400 and not batch.dead
    raws = [r for piece in batch.pieces if piece.block is not None for r in piece.block.raws]
    assert len(raws) == 400 and all(r.value[:1] == b"\x00" for r in raws)  # type: ignore[index]


# ---------------------------------------------------------------------------- typed fields


def typed(**fields: Any) -> Message:
    cls, _ = TYPED_SCHEMA.message_type((1,))
    return cls(**fields)


TS = datetime(2026, 11, 27, 11, 30, 0, 123456, tzinfo=timezone.utc)


def test_typed_fields_read_as_json_reads_them() -> None:
    event = typed(model="m", tenant="acme", ts_ms=5)
    event.ts.FromDatetime(TS)  # type: ignore[attr-defined]
    features = event.features  # type: ignore[attr-defined]
    features.x, features.c, features.f, features.n = 0.0, 2, 0.1, -3
    features.z.value = 2.5
    event.prediction.update({"score": 0.75, "label": "yes", "probs": [0.25, None]})  # type: ignore[attr-defined]
    event.embedding.extend([0.5, -0.25])  # type: ignore[attr-defined]
    event.packed = np.asarray([1.0, 2.0], "<f4").tobytes()  # type: ignore[attr-defined]
    record = TYPED_SCHEMA.record(event.SerializeToString(), (1,))
    assert record == {
        "ts": "2026-11-27T11:30:00.123456000Z", "model": "m", "tenant": "acme",
        # Zero and false are values; y (optional, unset) is absent; an enum is its name; a float its float32.
        "features": {"x": 0.0, "c": "APP", "z": 2.5, "f": float(np.float32(0.1)), "n": -3, "b": False},
        "prediction": {"score": 0.75, "label": "yes", "probs": [0.25, None]},
        "embedding": [0.5, -0.25],
        "packed": {"dtype": "float32", "b64": base64.b64encode(np.asarray([1.0, 2.0], "<f4").tobytes()).decode()},
        "ts_ms": 5,
    }
    # An empty string without presence, an unset message and empty lists are absent; event_id is optional.
    assert TYPED_SCHEMA.record(typed(event_id="").SerializeToString(), (1,)) == {"event_id": "", "ts_ms": 0}


def test_a_timestamp_and_an_epoch_give_the_same_event() -> None:
    decoder = Decoder(models=frozenset({"m"}), now=lambda: NOW, max_future=timedelta(days=1))
    wired = WireDecoder(BatchDecoder(decoder, [
        model_columns("m", (), PROFILE, per_event=False, embeddings=False)]), Schemas(), format="protobuf")
    stamped = typed(model="m")
    stamped.ts.FromDatetime(TS)  # type: ignore[attr-defined]
    stamped.features.x = 1.5  # type: ignore[attr-defined]
    batch = wired([RawMessage(framed(stamped, [1], 2), "t", 0, 0)])
    assert not batch.dead
    (event,) = [e for piece in batch.pieces for e in piece.events]
    assert event.ts == TS and event.features["x"] == 1.5


def dead_letter(value: bytes, decoder: WireDecoder | None = None) -> DeadLetter:
    batch = (decoder or wire())([RawMessage(value, "t", 3, 9, b"k")])
    assert len(batch.dead) == 1 and batch.n_events == 0, batch
    letter = batch.dead[0]
    assert (letter.value, letter.topic, letter.partition, letter.offset, letter.key) == (value, "t", 3, 9, b"k")
    assert letter.step_id == "decode_inference"
    return letter


GOOD = proto_twin(message(1), timestamps=True)
assert GOOD is not None
GOOD_BYTES = GOOD[0]
GOOD_PAYLOAD = GOOD_BYTES[7:]  # after the header and the index array [3]


@pytest.mark.parametrize(("value", "reason", "detail"), [
    (b"\x00" + struct.pack(">I", 7) + GOOD_BYTES[5:], DlqReason.UNKNOWN_SCHEMA, "schema id 7 is not known"),
    (b"\x00\x00\x00", DlqReason.BAD_PROTOBUF, "starts with 5 bytes (magic byte 0, schema id); got 3"),
    (b"\x00\x00\x00\x00\x01", DlqReason.BAD_PROTOBUF, "the message indexes end at byte 5, within a varint"),
    (b"\x00\x00\x00\x00\x01\x02\x0e" + GOOD_BYTES[7:], DlqReason.BAD_PROTOBUF,
     "message indexes [7] name no message type: event.proto has 4 top-level message types"),
    (b"\x00\x00\x00\x00\x01\x04\x06\x0a" + GOOD_BYTES[7:], DlqReason.BAD_PROTOBUF,
     "message indexes [3, 5] name no message type: InferenceEvent has 3 nested message types"),
    (b"\x00\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", DlqReason.BAD_PROTOBUF,
     "longer than 10 bytes"),
    (GOOD_BYTES[:-3], DlqReason.BAD_PROTOBUF, "not a drift.test.InferenceEvent: Error parsing message"),
    (GOOD_BYTES[:7] + b"\x12\xff\xff\xff\xff\x07" + GOOD_BYTES[7:], DlqReason.BAD_PROTOBUF,
     "not a drift.test.InferenceEvent"),
    (GOOD_BYTES + b"\xf8\x01\x05", DlqReason.BAD_PROTOBUF,
     "not a drift.test.InferenceEvent: field number 31 (wire type 0) is not one of its fields"),
    (GOOD_BYTES[:7] + b"\x12\x03\x98\x01\x01" + GOOD_BYTES[7:], DlqReason.BAD_PROTOBUF,
     "not a drift.test.Ts: field number 19 (wire type 0) in ts is not one of its fields"),
])
def test_wire_messages_that_cannot_be_read_are_dead_letters(value: bytes, reason: DlqReason, detail: str) -> None:
    letter = dead_letter(value)
    assert letter.reason is reason and detail in letter.detail, letter.detail
    assert letter.field is None


@pytest.mark.parametrize("magic", [b"\x01", b"\x7f", b"\x7b", b"\xff"])
def test_a_wrong_magic_byte_is_not_the_wire_format(magic: bytes) -> None:
    """Only the byte 0 starts a wire-format message; others go to the JSON (or Arrow) decoder."""
    letter = dead_letter(magic + GOOD_BYTES[1:])
    assert letter.reason in (DlqReason.NOT_UTF8, DlqReason.INVALID_JSON, DlqReason.BAD_ARROW), letter


def test_the_good_message_is_an_event() -> None:
    assert GOOD_BYTES[5:7] == b"\x02\x06"  # [3]: count 1, index 3, zigzag
    batch = wire()([RawMessage(GOOD_BYTES, "t", 0, 0)])
    assert batch.n_events == 1 and not batch.dead


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_double_is_non_finite_with_its_field(bad: float) -> None:
    event = EVENT_CLASS.FromString(GOOD_PAYLOAD)
    event.features["y"].number = bad  # type: ignore[attr-defined]
    letter = dead_letter(framed(event, [3]))
    assert letter.reason is DlqReason.NON_FINITE
    assert letter.field == "features.y" and letter.detail == f"features.y is not finite; got {bad!r}"


@pytest.mark.parametrize(("seconds", "nanos"), [(-62135596801, 0), (253402300800, 0), (0, -1), (0, 10**9)])
def test_a_timestamp_out_of_range_is_a_bad_timestamp(seconds: int, nanos: int) -> None:
    event = typed(model="m")
    event.ts.seconds, event.ts.nanos = seconds, nanos  # type: ignore[attr-defined]
    letter = dead_letter(framed(event, [1], 2))
    assert letter.reason is DlqReason.BAD_TIMESTAMP and letter.field == "ts"
    assert f"ts is not a valid google.protobuf.Timestamp; got seconds={seconds} nanos={nanos}" == letter.detail


def _length_delimited(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _varint(len(body)) + body


@pytest.mark.parametrize(("depth", "reason"), [
    (30, None), (200, DlqReason.BAD_PROTOBUF), (5000, DlqReason.BAD_PROTOBUF)])
def test_values_nested_deeper_than_the_parser_allows_are_bad_protobuf(depth: int, reason: DlqReason | None) -> None:
    """A prediction of ``depth`` nested lists (google.protobuf.Value): the parser stops at 100 messages."""
    value = b"\x11" + struct.pack("<d", 1.0)  # Value.number_value
    for _ in range(depth):
        value = _length_delimited(0x32, _length_delimited(0x0A, value))  # Value.list_value.values[0]
    prediction = _length_delimited(0x0A, _length_delimited(0x0A, b"deep") + _length_delimited(0x12, value))
    event = typed(model="m")
    event.ts.FromDatetime(TS)  # type: ignore[attr-defined]
    event.features.x = 1.0  # type: ignore[attr-defined]
    data = framed(event, [1], 2) + _length_delimited(0x32, prediction)  # Event.prediction
    batch = wire(BatchDecoder(Decoder(models=frozenset({"m"}), now=lambda: NOW), [
        model_columns("m", (), PROFILE, per_event=False, embeddings=False)]))([RawMessage(data, "t", 0, 0)])
    assert [d.reason for d in batch.dead] == ([] if reason is None else [reason])
    if reason is not None:
        assert "Exceeded" in batch.dead[0].detail and "MaxDepth" in batch.dead[0].detail


def test_the_decoder_never_raises_on_framed_bytes() -> None:
    rng = np.random.default_rng(5)
    decoder = wire()
    for _ in range(500):
        value = bytearray(GOOD_BYTES)
        for _ in range(int(rng.integers(1, 4))):
            value[int(rng.integers(5, len(value)))] = int(rng.integers(0, 256))
        cut = int(rng.integers(5, len(value) + 1))
        batch: DecodedBatch = decoder([RawMessage(bytes(value[:cut]), "t", 0, 0)])
        assert batch.n_events + len(batch.dead) == 1
        for letter in batch.dead:
            assert not letter.detail.startswith("unexpected"), letter.detail


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64))
def test_any_payload_is_an_event_or_a_dead_letter(payload: bytes) -> None:
    batch = wire()([RawMessage(b"\x00\x00\x00\x00\x01" + payload, "t", 0, 0)])
    assert batch.n_events + len(batch.dead) == 1
    for letter in batch.dead:
        assert not letter.detail.startswith("unexpected"), letter.detail


# -------------------------------------------------------------------------------- schemas


def test_schema_files_proto_text_or_descriptor_set(tmp_path: Path) -> None:
    (tmp_path / "event.proto").write_text(PROTO)
    (tmp_path / "event.desc").write_bytes(FILES.SerializeToString())
    schemas = FileSchemas({1: tmp_path / "event.proto", 2: tmp_path / "event.desc"}, "protobuf")
    for schema_id in (1, 2):
        protobuf = schemas.schema(schema_id).protobuf
        assert protobuf is not None
        assert protobuf.record(GOOD_PAYLOAD, (3,)) == SCHEMA.record(GOOD_PAYLOAD, (3,))
    letter = dead_letter(GOOD_BYTES[:1] + struct.pack(">I", 6) + GOOD_BYTES[5:],
                         WireDecoder(batch_decoder(), schemas, format="protobuf"))
    assert letter.reason is DlqReason.UNKNOWN_SCHEMA
    assert letter.detail == "schema id 6 is not in events.schemas.files; known: [1, 2]"


def test_a_proto_file_imports_its_neighbours(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "scalar.proto").write_text(
        'syntax = "proto3"; package common; message Scalar { oneof kind { double number = 1; string text = 2; } }')
    (tmp_path / "event.proto").write_text(
        'syntax = "proto3"; import "common/scalar.proto"; '
        "message E { string model = 1; map<string, common.Scalar> features = 2; }")
    protobuf = FileSchemas({1: tmp_path / "event.proto"}, "protobuf").schema(1).protobuf
    assert protobuf is not None
    cls: Any = protobuf.message_type((0,))[0]
    event = cls(model="m")
    event.features["x"].number = 2.0
    event.features["c"].text = "a"
    assert protobuf.record(event.SerializeToString(), (0,)) == {"model": "m", "features": {"x": 2.0, "c": "a"}}


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.proto", None, "events.schemas.files.1: cannot read"),
    ("missing.desc", None, "events.schemas.files.1: cannot read"),
    ("bad.proto", 'syntax = "proto3"; message E { strin x = 1; }', "bad.proto:1:32: \"strin\" is not defined"),
    ("bad.desc", b"\xff\xff", "schema id 1 is not a Protobuf schema: not a FileDescriptorSet"),
    ("empty.proto", 'syntax = "proto3";', "empty.proto has no message type"),
])
def test_schema_files_that_cannot_be_used(tmp_path: Path, name: str, content: str | bytes | None, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(SchemaError) as error:
        FileSchemas({1: path}, "protobuf")
    assert message in str(error.value)


def test_a_descriptor_set_without_its_imports_falls_back_to_the_well_known_types_only() -> None:
    own = FILES.file[-1]
    assert list(own.dependency) == ["google/protobuf/timestamp.proto"]
    assert parse_protobuf_schema([own], 1, "x").protobuf is not None
    lonely = type(own)()
    lonely.CopyFrom(own)
    lonely.dependency.append("elsewhere.proto")
    with pytest.raises(SchemaError, match="event.proto imports elsewhere.proto, which the schema does not include"):
        parse_protobuf_schema([lonely], 1, "x")


def test_json_and_arrow_messages_pass_through_untouched() -> None:
    raws = [RawMessage(orjson.dumps(message(i)), "t", 0, i) for i in range(40)]
    assert columnwise([wire()(raws)]) == columnwise([batch_decoder()(raws)])


def test_the_documented_schema_reads_as_documented() -> None:
    """docs/events.md's example .proto: InferenceEvent is message indexes [1], and its events decode."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text(encoding="utf-8")
    (text,) = re.findall(r"```proto\n(.*?)```", doc, flags=re.S)
    schema = ProtobufSchema(list(compile_proto_texts({"inference.proto": text}, "inference.proto").file))
    cls: Any = schema.message_type((1,))[0]
    event = cls(model="m", tenant="acme", features={"x": {"number": 0.5}, "c": {"text": "a"}})
    event.ts.FromDatetime(TS)
    record = schema.record(event.SerializeToString(), (1,))
    assert record == {"ts": "2026-11-27T11:30:00.123456000Z", "model": "m", "tenant": "acme",
                      "features": {"x": 0.5, "c": "a"}}


@pytest.mark.parametrize(("events", "message"), [
    ("events:\n  format: protobuf\n", "events: format protobuf needs schemas"),
    ('events:\n  format: protobuf\n  schemas: {files: {"1": missing.proto}}\n', "events.schemas.files.1: cannot read"),
    ('events:\n  format: protobuf\n  schemas: {files: {"1": bad.proto}}\n',
     "events.schemas.files.1: schema id 1 is not a Protobuf schema: protoc cannot compile it"),
    ('events:\n  format: protobuf\n  schemas: {files: {"1": e.avsc}}\n',
     "events.schemas.files.1: schema id 1 is not a Protobuf schema: not a FileDescriptorSet"),
])
def test_the_config_names_what_is_wrong(tmp_path: Path, events: str, message: str) -> None:
    from drift import demo
    from drift.config import load_config
    from drift.errors import ConfigError

    (tmp_path / "bad.proto").write_text('syntax = "proto3"; message E { strin x = 1; }')
    (tmp_path / "e.avsc").write_text('{"type": "record", "name": "E", "fields": []}')
    (tmp_path / "drift.yaml").write_text(demo.config_text() + events, encoding="utf-8")
    demo.write_references(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "drift.yaml", check_references=True)
    assert any(message in line for line in error.value.messages), error.value.messages


def test_a_valid_protobuf_config(tmp_path: Path) -> None:
    from drift import demo
    from drift.config import load_config
    from flows.pipeline import batch_decoder as flow_decoder

    (tmp_path / "event.proto").write_text(PROTO)
    (tmp_path / "event.desc").write_bytes(FILES.SerializeToString())
    text = demo.config_text() + (
        'events:\n  format: protobuf\n  schemas: {files: {"1": event.proto, "2": event.desc}}\n')
    (tmp_path / "drift.yaml").write_text(text, encoding="utf-8")
    demo.write_references(tmp_path)
    config = load_config(tmp_path / "drift.yaml", check_references=True)
    assert config.events.format == "protobuf" and config.events.schemas is not None
    assert config.events.schemas.schema_files() == {1: "event.proto", 2: "event.desc"}
    decoder = flow_decoder(config, [], Decoder(models=frozenset(), now=lambda: NOW), set())
    assert isinstance(decoder, WireDecoder) and decoder.format == "protobuf"
    assert decoder([RawMessage(b"\x00\x00\x00\x00\x02", "t", 0, 0)]).dead[0].reason is DlqReason.BAD_PROTOBUF
