"""Inference events in the Confluent wire format: Avro or Protobuf with a schema id.

A message that starts with the magic byte ``0`` is framed as Confluent's serializers
write it::

    0x00 | schema id (4 bytes, big-endian) | Avro binary of the writer's schema
    0x00 | schema id (4 bytes, big-endian) | message indexes | Protobuf binary

The schema comes from the config's ``events.schemas``: files named by schema id, or a
schema registry's REST API (:mod:`connectors.schema_registry`). The Avro record or
Protobuf message is read into the very object a JSON event would be and handed to the
same decoders (:mod:`drift.batch`, :class:`drift.events.Decoder`), so a wire-format event
gives exactly the event or dead letter its JSON twin gives; only the dead letters keep
the original bytes. A schema id without a schema is ``unknown_schema``; a payload that is
not Avro of its schema is ``bad_avro``, not Protobuf of its schema ``bad_protobuf``
(:mod:`drift.wire_protobuf` reads Protobuf).

How Avro values are read:

- ``timestamp-millis``/``timestamp-micros`` (and their ``local-`` forms, which have no
  zone and are therefore ``bad_timestamp`` as ``ts``) are instants, as RFC 3339 text;
- a union with ``null`` is the value or JSON ``null`` (for an optional field the same as
  leaving it out; a ``null`` ``ts`` or ``features`` is ``wrong_type``, as in JSON);
- maps and records are JSON objects, arrays are lists, enums and ``uuid`` are text;
- ``bytes``/``fixed`` are little-endian float32 vectors (an embedding as
  ``{"dtype": "float32", "b64": ...}``), ``decimal`` a number;
- a ``float``/``double`` NaN or infinity anywhere is ``non_finite`` (JSON has no such
  numbers, so this is checked before anything else).
"""

from __future__ import annotations

import base64
import io
import math
import struct
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Protocol, Sequence

import fastavro
import orjson
from google.protobuf import descriptor_pb2

from drift.batch import DecodedBatch
from drift.errors import DriftError
from drift.events import MAX_MESSAGE_BYTES, MAX_NESTING, DeadLetter, DlqReason, InferenceEvent, RawMessage
from drift.wire_protobuf import (
    PayloadError,
    ProtobufSchema,
    ProtobufSchemaError,
    compile_proto,
    descriptor_set,
    read_message_indexes,
)

WireFormat = Literal["avro", "protobuf"]

WIRE_MAGIC = 0
"""The first byte of a Confluent wire-format message (JSON never starts with it, Arrow starts with 0xff)."""

HEADER_BYTES = 5
"""Magic byte and 4-byte schema id."""

_ID = struct.Struct(">I")


class SchemaError(DriftError):
    """A schema named in the config cannot be read, or is not a schema of the wire format."""


class UnknownSchema(Exception):
    """A schema id has no schema; the message is an ``unknown_schema`` dead letter."""


@dataclass(frozen=True, slots=True)
class WireSchema:
    """A writer's schema, parsed: what a schema id stands for (Avro or Protobuf)."""

    schema_id: int
    avro: Any = None
    """The Avro schema as :func:`fastavro.parse_schema` returns it."""
    protobuf: ProtobufSchema | None = None
    """The Protobuf schema: its ``.proto`` file compiled, with its imports."""


class SchemaSource(Protocol):
    """Where schemas come from: files of the config, or a schema registry."""

    def schema(self, schema_id: int) -> WireSchema:
        """The schema of ``schema_id``; raises :class:`UnknownSchema` (its message the detail)."""
        ...


def parse_avro_schema(text: str | bytes, schema_id: int, where: str) -> WireSchema:
    """An Avro schema (JSON text, ``.avsc``) parsed for reading; :class:`SchemaError` if it is not one.

    >>> parse_avro_schema('{"type": "record", "name": "E", "fields": []}', 1, "x.avsc").schema_id
    1
    """
    try:
        document = orjson.loads(text)
        parsed = fastavro.parse_schema(document)
    except (orjson.JSONDecodeError, fastavro.schema.SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise SchemaError(f"{where}: schema id {schema_id} is not an Avro schema: {exc}") from None
    return WireSchema(schema_id, parsed)


def parse_protobuf_schema(
    files: descriptor_pb2.FileDescriptorSet | Sequence[descriptor_pb2.FileDescriptorProto], schema_id: int, where: str,
) -> WireSchema:
    """A Protobuf schema from its compiled files (the schema's own ``.proto`` last); :class:`SchemaError`."""
    try:
        listed = list(files.file if isinstance(files, descriptor_pb2.FileDescriptorSet) else files)
        return WireSchema(schema_id, protobuf=ProtobufSchema(listed))
    except ProtobufSchemaError as exc:
        raise SchemaError(f"{where}: schema id {schema_id} is not a Protobuf schema: {exc}") from None


PROTO_TEXT_SUFFIX = ".proto"
"""A Protobuf schema file with this suffix is ``.proto`` text (compiled at start); any other is a
``FileDescriptorSet`` (``protoc --include_imports --descriptor_set_out``)."""


def read_protobuf_file(path: Path, schema_id: int, where: str) -> WireSchema:
    """A ``.proto`` file (compiled with its imports, found next to it) or a ``FileDescriptorSet`` file."""
    try:
        if path.suffix == PROTO_TEXT_SUFFIX:
            path.stat()
            files = compile_proto(path.name, [path.parent])
        else:
            files = descriptor_set(path.read_bytes())
    except OSError as exc:
        raise SchemaError(f"{where}: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except ProtobufSchemaError as exc:
        raise SchemaError(f"{where} ({path}): schema id {schema_id} is not a Protobuf schema: {exc}") from None
    return parse_protobuf_schema(files, schema_id, f"{where} ({path})")


class FileSchemas:
    """Schemas named by id in the config (``events.schemas.files``), read once at start.

    With ``format="protobuf"`` a file is ``.proto`` text or a ``FileDescriptorSet``
    (:data:`PROTO_TEXT_SUFFIX`); with ``avro`` an Avro schema (``.avsc``).
    """

    def __init__(self, files: Mapping[int, Path], format: WireFormat = "avro") -> None:
        self.files = dict(files)
        self.format = format
        schemas = {}
        for schema_id, path in self.files.items():
            where = f"events.schemas.files.{schema_id}"
            if format == "protobuf":
                schemas[schema_id] = read_protobuf_file(path, schema_id, where)
                continue
            try:
                text = path.read_bytes()
            except OSError as exc:
                raise SchemaError(f"{where}: cannot read {str(path)!r}: {exc.strerror or exc}") from None
            schemas[schema_id] = parse_avro_schema(text, schema_id, f"{where} ({path})")
        self._schemas = schemas

    def schema(self, schema_id: int) -> WireSchema:
        found = self._schemas.get(schema_id)
        if found is None:
            raise UnknownSchema(
                f"schema id {schema_id} is not in events.schemas.files; known: {sorted(self._schemas)[:16]}")
        return found


_Reject = PayloadError


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"dtype": "float32", "b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _has_non_finite(record: Mapping[str, Any]) -> bool:
    """Whether a float anywhere in ``record`` is NaN or infinite (``x - x`` is NaN for those)."""
    stack: list[Any] = [record]
    while stack:
        container = stack.pop()
        for value in container.values() if isinstance(container, dict) else container:
            kind = type(value)
            if kind is float:
                if value - value != 0.0:
                    return True
            elif kind is dict or kind is list:
                stack.append(value)
    return False


def _refuse_non_finite(record: Mapping[str, Any]) -> None:
    """Raise ``non_finite`` naming the first NaN or infinity in ``record`` (JSON cannot carry one)."""
    if not _has_non_finite(record):
        return
    stack: list[tuple[str, Any, int]] = [(str(k), v, 1) for k, v in reversed(list(record.items()))]
    while stack:
        path, value, depth = stack.pop()
        if type(value) is float:
            if not math.isfinite(value):
                raise _Reject(DlqReason.NON_FINITE, f"{path} is not finite; got {value!r}")
        elif isinstance(value, dict):
            if depth > MAX_NESTING + 1:
                continue  # the decoder refuses it (invalid_json); nothing to look for so deep
            stack.extend((f"{path}.{k}", v, depth + 1) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            if depth > MAX_NESTING + 1:
                continue
            stack.extend((f"{path}[{i}]", v, depth + 1) for i, v in reversed(list(enumerate(value))))


def avro_record(payload: bytes, schema: WireSchema) -> Any:
    """The Avro ``payload`` read with its writer's ``schema``; ``bad_avro`` when it is not that."""
    stream = io.BytesIO(payload)
    try:
        record = fastavro.schemaless_reader(stream, schema.avro, None)
    except Exception as exc:  # noqa: BLE001 - any failure of the reader is a bad payload
        raise _Reject(
            DlqReason.BAD_AVRO, f"not Avro of schema id {schema.schema_id}: {type(exc).__name__}: {str(exc)[:200]}",
        ) from None
    left = len(payload) - stream.tell()
    if left:
        raise _Reject(
            DlqReason.BAD_AVRO,
            f"not Avro of schema id {schema.schema_id}: {left} bytes left after the record of {len(payload)}",
        )
    return record


def protobuf_record(value: bytes, at: int, schema: WireSchema) -> Any:
    """The Protobuf message of a wire-format ``value`` whose message indexes start at byte ``at``."""
    protobuf = schema.protobuf
    assert protobuf is not None
    indexes, start = read_message_indexes(value, at)
    return protobuf.record(value[start:], indexes)


def event_json(record: Any) -> bytes:
    """An Avro record or Protobuf message, read as a dict, as the JSON text of the same event."""
    if isinstance(record, dict):
        _refuse_non_finite(record)
    try:
        return orjson.dumps(record, default=_json_default)
    except (orjson.JSONEncodeError, TypeError) as exc:  # nesting beyond orjson's 255 levels
        raise _Reject(DlqReason.INVALID_JSON, f"the record cannot be read as an event: {exc}") from None


class WireDecoder:
    """Decodes the Confluent wire-format messages of a batch, then the batch as JSON.

    Parameters
    ----------
    decode:
        The batch decoder of the flow (:class:`drift.batch.BatchDecoder`).
    schemas:
        Where schema ids are looked up.
    step_id:
        Named in the dead letters of this step.
    format:
        ``events.format``: names the reason of a message too short for its header or
        failing in an unforeseen way (``bad_avro``, ``bad_protobuf``). Each message is
        read as its schema's kind is.

    Messages that do not start with the magic byte ``0`` (JSON, Arrow) pass through as
    they are, so a topic may carry both while producers move over.
    """

    def __init__(
        self, decode: Callable[[Sequence[RawMessage]], DecodedBatch], schemas: SchemaSource,
        step_id: str = "decode_inference", format: WireFormat = "avro",
    ) -> None:
        self.decode = decode
        self.schemas = schemas
        self.step_id = step_id
        self.format = format
        self.bad = DlqReason.BAD_PROTOBUF if format == "protobuf" else DlqReason.BAD_AVRO

    def translate(self, raw: RawMessage) -> bytes | DeadLetter:
        """The JSON text of a wire-format message's event, or its dead letter."""
        try:
            return self._translate(raw.value or b"")
        except _Reject as reject:
            reason, detail = reject.reason, reject.detail
        except UnknownSchema as unknown:
            reason, detail = DlqReason.UNKNOWN_SCHEMA, str(unknown)
        except Exception as exc:  # noqa: BLE001 - the flow must never raise on an event
            reason, detail = self.bad, f"unexpected {type(exc).__name__}: {str(exc)[:200]}"
        return DeadLetter(
            reason=reason, detail=detail, step_id=self.step_id, topic=raw.topic, partition=raw.partition,
            offset=raw.offset, value=raw.value, key=raw.key,
        )

    def _translate(self, value: bytes) -> bytes:
        if len(value) > MAX_MESSAGE_BYTES:
            raise _Reject(DlqReason.TOO_LARGE, f"message is {len(value)} bytes; limit {MAX_MESSAGE_BYTES}")
        if len(value) < HEADER_BYTES:
            raise _Reject(
                self.bad,
                f"a wire-format message starts with {HEADER_BYTES} bytes (magic byte 0, schema id); got {len(value)}",
            )
        (schema_id,) = _ID.unpack_from(value, 1)
        schema = self.schemas.schema(schema_id)
        if schema.protobuf is not None:
            record = protobuf_record(value, HEADER_BYTES, schema)
        else:
            record = avro_record(value[HEADER_BYTES:], schema)
        text = event_json(record)
        if len(text) > MAX_MESSAGE_BYTES:
            raise _Reject(
                DlqReason.TOO_LARGE, f"the event is {len(text)} bytes as JSON; limit {MAX_MESSAGE_BYTES}")
        return text

    def __call__(self, raws: Sequence[RawMessage]) -> DecodedBatch:
        translated: list[RawMessage] = []
        originals: dict[int, RawMessage] = {}
        dead: list[DeadLetter] = []
        for raw in raws:
            value = raw.value
            if raw.error is not None or not value or value[0] != WIRE_MAGIC:
                translated.append(raw)
                continue
            item = self.translate(raw)
            if isinstance(item, DeadLetter):
                dead.append(item)
                continue
            twin = RawMessage(item, raw.topic, raw.partition, raw.offset, raw.key)
            originals[id(twin)] = originals[id(item)] = raw
            translated.append(twin)
        if not originals and not dead:
            return self.decode(raws)
        out = self.decode(translated)
        if originals:
            _restore(out, originals)
        out.dead[:0] = dead
        return out


def _restore(out: DecodedBatch, originals: dict[int, RawMessage]) -> None:
    """Put the original (wire-format) messages back where the decoders kept their JSON twins.

    ``originals`` maps the id of each twin message, and of its JSON bytes, to the original;
    the twins are alive while this runs, so the ids are theirs.
    """
    out.dead = [
        replace(letter, value=originals[id(letter.value)].value) if id(letter.value) in originals else letter
        for letter in out.dead
    ]
    swapped: dict[int, InferenceEvent] = {}

    def event(e: InferenceEvent) -> InferenceEvent:
        done = swapped.get(id(e))
        if done is None:
            original = originals.get(id(e.raw))
            done = swapped[id(e)] = e if original is None else replace(e, raw=original)
        return done

    out.events = [event(e) for e in out.events]
    for piece in out.pieces:
        piece.events = [event(e) for e in piece.events]
        block = piece.block
        if block is not None and type(block.raws) is list:
            raws: list[RawMessage] = block.raws
            block.raws = [originals.get(id(r), r) for r in raws]
    for rows in out.models:
        if type(rows.block.raws) is list:
            model_raws: list[RawMessage] = rows.block.raws
            rows.block.raws = [originals.get(id(r), r) for r in model_raws]
