"""Protobuf in the Confluent wire format: schemas, message indexes, and messages read as events.

Confluent's Protobuf serializers frame a message as::

    0x00 | schema id (4 bytes, big-endian) | message indexes | Protobuf binary

The message indexes say which message type of the schema's ``.proto`` file the payload
is: a count, then that many indexes, all zigzag varints; the first index picks a
top-level message type in declaration order, each next one a type nested in it. The
single byte ``0`` stands for ``[0]``, the first message type of the file.

A schema is a set of ``FileDescriptorProto`` (the compiled ``.proto`` file and its
imports), read from a ``FileDescriptorSet`` file, compiled from ``.proto`` text with
``protoc`` (:func:`compile_proto`, from the ``grpcio-tools`` package), or served by a
schema registry. A message becomes the JSON object of the same content (:mod:`drift.wire`
decodes that object as a JSON event); how each Protobuf type is read is in
:meth:`ProtobufSchema.record` and docs/events.md.
"""

from __future__ import annotations

import base64
import importlib.util
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    unknown_fields,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from drift.events import DlqReason

MAX_INDEXES = 64
"""At most this many message indexes (types nested this deep): more is not a real schema."""

_WELL_KNOWN = {
    module.DESCRIPTOR.name: module.DESCRIPTOR
    for module in (any_pb2, duration_pb2, empty_pb2, field_mask_pb2, struct_pb2, timestamp_pb2, wrappers_pb2)
}
"""The well-known types' files, there for a schema that imports them without shipping them."""

_EPOCH = datetime(1970, 1, 1)  # naive: Timestamp seconds count from the epoch in UTC
_MIN_SECONDS, _MAX_SECONDS = -62135596800, 253402300799  # 0001-01-01 and 9999-12-31T23:59:59, as Timestamp allows


class ProtobufSchemaError(ValueError):
    """A schema that is not a Protobuf schema drift can read (the message says why)."""


class PayloadError(Exception):
    """A message that cannot be read; ``reason`` and ``detail`` make its dead letter."""

    def __init__(self, reason: DlqReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# ------------------------------------------------------------------------- message indexes


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_message_indexes(indexes: Sequence[int]) -> bytes:
    """The message-index array as Confluent's serializers write it (``[0]`` is the byte 0).

    >>> encode_message_indexes([0]), encode_message_indexes([1]), encode_message_indexes([1, 0])
    (b'\\x00', b'\\x02\\x02', b'\\x04\\x02\\x00')
    """
    if list(indexes) == [0]:
        return b"\x00"
    return b"".join(_varint(_zigzag(v)) for v in (len(indexes), *indexes))


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """A zigzag varint of at most 10 bytes at ``at``, and where the next value starts."""
    value = shift = 0
    for i in range(at, min(at + 10, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            value &= (1 << 64) - 1
            return (value >> 1) ^ -(value & 1), i + 1
        shift += 7
    if len(data) - at >= 10:
        raise PayloadError(DlqReason.BAD_PROTOBUF, f"a message index at byte {at} is a varint longer than 10 bytes")
    raise PayloadError(DlqReason.BAD_PROTOBUF, f"the message indexes end at byte {len(data)}, within a varint")


def read_message_indexes(data: bytes, at: int) -> tuple[tuple[int, ...], int]:
    """The message indexes that start at byte ``at`` of ``data``, and where the payload starts.

    >>> read_message_indexes(b"\\x00\\x00\\x00\\x00\\x01\\x00\\x08", 5)
    ((0,), 6)
    >>> read_message_indexes(b"\\x04\\x02\\x00", 0)
    ((1, 0), 3)
    """
    count, at = _read_varint(data, at)
    if count == 0:
        return (0,), at
    if not 0 < count <= MAX_INDEXES:
        raise PayloadError(
            DlqReason.BAD_PROTOBUF, f"the message-index array has {count} entries; expected 1 to {MAX_INDEXES}")
    indexes = []
    for _ in range(count):
        index, at = _read_varint(data, at)
        if index < 0:
            raise PayloadError(DlqReason.BAD_PROTOBUF, f"a message index is negative; got {index}")
        indexes.append(index)
    return tuple(indexes), at


# ---------------------------------------------------------------------------------- schemas


def compile_proto(main: str, include: Sequence[Path]) -> descriptor_pb2.FileDescriptorSet:
    """``main`` (a path relative to one of ``include``) and its imports, compiled by ``protoc``.

    ``protoc`` is the one of the ``grpcio-tools`` package (``python -m grpc_tools.protoc``),
    run in a child process so that its messages can be quoted; the well-known types
    (``google/protobuf/*.proto``) are found without being in ``include``.
    """
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise ProtobufSchemaError(
            "compiling .proto text needs protoc from the grpcio-tools package (pip install grpcio-tools); "
            "or give a FileDescriptorSet: protoc --include_imports --descriptor_set_out=FILE.desc FILE.proto")
    well_known = Path(next(iter(spec.submodule_search_locations))) / "_proto"
    with tempfile.TemporaryDirectory(prefix="drift-protoc-") as folder:
        out = Path(folder) / "schema.desc"
        command = [
            sys.executable, "-m", "grpc_tools.protoc", *(f"-I{p}" for p in include), f"-I{well_known}",
            "--include_imports", f"--descriptor_set_out={out}", main,
        ]
        try:
            done = subprocess.run(command, capture_output=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProtobufSchemaError(f"protoc did not run: {exc}") from None
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
            raise ProtobufSchemaError(f"protoc cannot compile it: {message[:1000]}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def compile_proto_texts(texts: Mapping[str, str], main: str) -> descriptor_pb2.FileDescriptorSet:
    """``.proto`` texts by import name (``main`` and what it imports), compiled by :func:`compile_proto`."""
    with tempfile.TemporaryDirectory(prefix="drift-proto-") as folder:
        root = Path(folder).resolve()
        for name, text in texts.items():
            path = (root / name).resolve()
            if not path.is_relative_to(root):
                raise ProtobufSchemaError(f"the import name {name!r} leaves the schema's folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return compile_proto(main, [root])


def descriptor_set(data: bytes) -> descriptor_pb2.FileDescriptorSet:
    """A serialized ``FileDescriptorSet`` (``protoc --descriptor_set_out``, ``buf build -o``)."""
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(data)
    except DecodeError as exc:
        raise ProtobufSchemaError(f"not a FileDescriptorSet: {exc}") from None
    if not files.file or any(not f.name for f in files.file):
        raise ProtobufSchemaError("not a FileDescriptorSet: it has no file, or a file without a name")
    return files


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: int
    """One of :data:`_ONE`, :data:`_REPEATED`, :data:`_MAP`."""
    read: Callable[[Any, str], Any] | None
    """How a value (a map's value) is read, with its path; ``None``: as it is."""


_ONE, _REPEATED, _MAP = range(3)


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one message type is read."""

    fields: dict[int, _Field]
    """By field number."""
    defaults: dict[str, Any]
    """The fields without presence that are not text, at their default value: ``ListFields``
    leaves them out when they hold it, yet ``0`` and ``false`` are values."""
    oneof: str | None
    """A value type (fields all one ``oneof``): the oneof's name."""


class ProtobufSchema:
    """The message types of one schema: its ``.proto`` file (the last of ``files``) and imports.

    ``files`` come dependencies first, as ``protoc --include_imports`` writes them; an
    imported well-known type (``google/protobuf/timestamp.proto``, ...) may be left out.
    """

    def __init__(self, files: Sequence[descriptor_pb2.FileDescriptorProto]) -> None:
        if not files:
            raise ProtobufSchemaError("the schema has no .proto file")
        self.main = files[-1]
        self.pool = descriptor_pool.DescriptorPool()
        by_name = {f.name: f for f in files}
        added: set[str] = set()

        def add(name: str, chain: tuple[str, ...]) -> None:
            if name in added:
                return
            if name in chain:
                raise ProtobufSchemaError(f"{name} imports itself: {' -> '.join((*chain, name))}")
            proto = by_name.get(name)
            if proto is None:
                known = _WELL_KNOWN.get(name)
                if known is None:
                    raise ProtobufSchemaError(f"{chain[-1]} imports {name}, which the schema does not include")
                proto = descriptor_pb2.FileDescriptorProto()
                known.CopyToProto(proto)
            for dependency in proto.dependency:
                add(dependency, (*chain, name))
            try:
                self.pool.Add(proto)
            except Exception as exc:  # noqa: BLE001 - upb and the Python runtime raise different types
                raise ProtobufSchemaError(f"{name} is not a valid .proto file: {exc}") from None
            added.add(name)

        for proto in files:
            add(proto.name, ())
        if not self.main.message_type:
            raise ProtobufSchemaError(f"{self.main.name} has no message type")
        self._types: dict[tuple[int, ...], tuple[type[Message], Descriptor]] = {}
        self._plans: dict[str, _Plan] = {}

    def message_type(self, indexes: tuple[int, ...]) -> tuple[type[Message], Descriptor]:
        """The message class and descriptor of ``indexes``; :class:`PayloadError` if there is none."""
        found = self._types.get(indexes)
        if found is not None:
            return found
        names: list[str] = []
        types = self.main.message_type
        where = f"{self.main.name} has {len(types)} top-level message types"
        for index in indexes:
            if index >= len(types):
                raise PayloadError(
                    DlqReason.BAD_PROTOBUF, f"message indexes {list(indexes)} name no message type: {where}")
            names.append(types[index].name)
            where = f"{'.'.join(names)} has {len(types[index].nested_type)} nested message types"
            types = types[index].nested_type
        full_name = ".".join([self.main.package, *names] if self.main.package else names)
        descriptor = self.pool.FindMessageTypeByName(full_name)
        found = self._types[indexes] = (message_factory.GetMessageClass(descriptor), descriptor)
        return found

    def record(self, payload: bytes, indexes: tuple[int, ...]) -> Any:
        """The message in ``payload`` as the JSON object of the same content.

        - fields by their ``.proto`` names; a field with presence (``optional``, a message,
          a ``oneof`` member) only when set; a field without presence with its value, but
          an empty string or ``bytes`` is left out (proto3 cannot tell it from an absent one);
        - repeated fields are lists and maps objects, both left out when empty;
        - integers, floating-point numbers (a ``float`` as its float32 value), booleans and
          strings are themselves, an enum its name, ``bytes`` a little-endian float32 vector
          (``{"dtype": "float32", "b64": ...}``);
        - ``google.protobuf.Timestamp`` is RFC 3339 text in UTC, ``Duration`` a number of
          seconds, ``Struct``/``Value``/``ListValue`` the JSON they hold, a wrapper
          (``DoubleValue``, ...) its value;
        - a message whose fields (two or more) are all one ``oneof`` is the value of the
          member that is set (``null`` when none is): a value of several possible types.

        A payload that does not parse as the message, or has fields the message does not
        declare, is :class:`PayloadError` ``bad_protobuf``.
        """
        cls, descriptor = self.message_type(indexes)
        try:
            message = cls.FromString(payload)
        except DecodeError as exc:
            raise PayloadError(DlqReason.BAD_PROTOBUF, f"not a {descriptor.full_name}: {exc}") from None
        return self._message(message, descriptor, "")

    # Readers: each takes the value and the path of the field it is in (for the details).

    def _message(self, message: Message, descriptor: Descriptor, path: str) -> Any:
        special = _SPECIAL.get(descriptor.full_name)
        if special is not None:
            return special(self, message, path)
        unknown = unknown_fields.UnknownFieldSet(message)
        if len(unknown):
            field = unknown[0]
            raise PayloadError(DlqReason.BAD_PROTOBUF, (
                f"not a {descriptor.full_name}: field number {field.field_number} (wire type {field.wire_type})"
                f"{' in ' + path if path else ''} is not one of its fields"))
        plan = self._plans.get(descriptor.full_name)
        if plan is None:
            plan = self._plans[descriptor.full_name] = self._plan(descriptor)
        if plan.oneof is not None:
            member = message.WhichOneof(plan.oneof)
            if member is None:
                return None
            one = plan.fields[descriptor.fields_by_name[member].number]
            value = getattr(message, member)
            return value if one.read is None else one.read(value, path)
        out = dict(plan.defaults) if plan.defaults else {}
        # ListFields: the fields set (with presence), not empty (repeated, maps), or not at
        # their default value (without presence: so an empty string is left out).
        for descriptor_field, value in message.ListFields():
            field = plan.fields.get(descriptor_field.number)
            if field is None:  # an extension
                continue
            name, read = field.name, field.read
            if field.kind == _ONE:
                out[name] = value if read is None else read(value, f"{path}.{name}" if path else name)
            elif field.kind == _REPEATED:
                if read is None:
                    out[name] = list(value)
                else:
                    where = f"{path}.{name}" if path else name
                    out[name] = [read(v, f"{where}[{i}]") for i, v in enumerate(value)]
            elif read is None:
                out[name] = {str(k): v for k, v in value.items()}
            else:
                where = f"{path}.{name}" if path else name
                out[name] = {str(k): read(v, f"{where}.{k}") for k, v in value.items()}
        return out

    def _plan(self, descriptor: Descriptor) -> _Plan:
        fields = descriptor.fields
        oneofs = descriptor.oneofs
        value_type = len(fields) >= 2 and len(oneofs) == 1 and len(oneofs[0].fields) == len(fields)
        plan: dict[int, _Field] = {}
        defaults: dict[str, Any] = {}
        for field in fields:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                kind, read = _MAP, self._reader(field.message_type.fields_by_name["value"])
            else:
                kind, read = (_REPEATED if field.is_repeated else _ONE), self._reader(field)
            plan[field.number] = _Field(field.name, kind, read)
            text = field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)
            if kind == _ONE and not field.has_presence and not text:
                defaults[field.name] = field.default_value if read is None else read(field.default_value, "")
        return _Plan(plan, defaults, oneofs[0].name if value_type else None)

    def _reader(self, field: FieldDescriptor) -> Callable[[Any, str], Any] | None:
        kind = field.type
        if kind in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            descriptor = field.message_type
            assert descriptor is not None
            return lambda value, path: self._message(value, descriptor, path)
        if kind == FieldDescriptor.TYPE_BYTES:
            return _bytes
        if kind == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None
            names = {v.number: v.name for v in field.enum_type.values}
            return lambda value, path: names.get(value, value)
        return None


def _bytes(value: bytes, path: str) -> Any:
    return {"dtype": "float32", "b64": base64.b64encode(value).decode("ascii")}


def _timestamp(schema: ProtobufSchema, message: Any, path: str) -> str:
    seconds, nanos = message.seconds, message.nanos
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos <= 999_999_999):
        raise PayloadError(DlqReason.BAD_TIMESTAMP, (
            f"{path or 'the message'} is not a valid google.protobuf.Timestamp; got seconds={seconds} nanos={nanos}"))
    text = (_EPOCH + timedelta(seconds=seconds)).isoformat(timespec="seconds")
    return f"{text}.{nanos:09d}Z" if nanos else f"{text}Z"


def _duration(schema: ProtobufSchema, message: Any, path: str) -> float:
    return float(message.seconds) + float(message.nanos) / 1e9


def _value(schema: ProtobufSchema, message: Any, path: str) -> Any:
    kind = message.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "struct_value":
        return _struct(schema, message.struct_value, path)
    if kind == "list_value":
        return _list(schema, message.list_value, path)
    return getattr(message, kind)


def _struct(schema: ProtobufSchema, message: Any, path: str) -> dict[str, Any]:
    fields = message.fields
    return {k: _value(schema, fields[k], f"{path}.{k}" if path else k) for k in fields}


def _list(schema: ProtobufSchema, message: Any, path: str) -> list[Any]:
    return [_value(schema, v, f"{path}[{i}]") for i, v in enumerate(message.values)]


def _wrapped(schema: ProtobufSchema, message: Any, path: str) -> Any:
    value = message.value
    return _bytes(value, path) if isinstance(value, bytes) else value


_SPECIAL: dict[str, Callable[[ProtobufSchema, Any, str], Any]] = {
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Duration": _duration,
    "google.protobuf.Value": _value,
    "google.protobuf.Struct": _struct,
    "google.protobuf.ListValue": _list,
    **{f"google.protobuf.{name}": _wrapped for name in (
        "DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value", "BoolValue",
        "StringValue", "BytesValue")},
}
"""The well-known types read as the JSON they stand for."""

