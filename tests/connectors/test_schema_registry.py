"""The schema registry client against a real HTTP server on 127.0.0.1.

No registry server runs here (Apicurio Registry 3 needs Java 21; the modules of 2.6 are
not all on Maven Central), so the server below serves the Confluent API's
``GET /schemas/ids/{id}`` and ``GET /subjects/{subject}/versions/{version}`` (with or
without ``?format=serialized``) from dicts: a real server over real HTTP, not a mock client.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from datetime import timedelta

import fastavro
import numpy as np
import pytest

from connectors.schema_registry import RETRY_AFTER, RegistrySchemas, Schemas, open_schemas
from drift.config import SchemasConfig
from drift.batch import BatchDecoder, model_columns
from drift.reference import build_reference
from drift.events import Decoder, DlqReason, RawMessage
from drift.wire import FileSchemas, UnknownSchema, WireDecoder
from drift.wire_protobuf import compile_proto_texts, encode_message_indexes

SCHEMA = {"type": "record", "name": "E", "fields": [{"name": "model", "type": "string"}]}


class Registry:
    """A tiny Confluent-compatible registry: ``schemas`` by id and ``subjects`` by (subject,
    version), requests counted. ``serialized`` holds what ``?format=serialized`` answers where
    it differs (a registry that does not know the format answers the schema as registered)."""

    def __init__(self) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}
        self.subjects: dict[tuple[str, int], dict[str, Any]] = {}
        self.serialized: dict[int | tuple[str, int], dict[str, Any]] = {}
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                registry.requests.append(self.path)
                url = urlsplit(self.path)
                parts = [unquote(p) for p in url.path.strip("/").split("/")]
                compiled = parse_qs(url.query).get("format") == ["serialized"]
                key: int | tuple[str, int] | None = None
                if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
                    key = int(parts[2])
                    found = registry.schemas.get(key)
                elif len(parts) == 4 and parts[0] == "subjects" and parts[2] == "versions" and parts[3].isdigit():
                    key = (parts[1], int(parts[3]))
                    found = registry.subjects.get(key)
                else:
                    found = None
                if found is not None and compiled and key in registry.serialized:
                    found = registry.serialized[key]
                body: dict[str, Any]
                if found is not None:
                    status, body = 200, found
                else:
                    status, body = 404, {"error_code": 40403, "message": "Schema not found"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry() -> Iterator[Registry]:
    server = Registry()
    yield server
    server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_schemas_are_fetched_once_and_kept(registry: Registry) -> None:
    registry.schemas[7] = {"schema": json.dumps(SCHEMA)}
    client = RegistrySchemas(registry.url + "/")
    for _ in range(3):
        found = client.schema(7)
    assert found.schema_id == 7 and found.avro["name"] == "E"
    assert registry.requests == ["/schemas/ids/7"]
    record = {"model": "m"}
    out = io.BytesIO()
    fastavro.schemaless_writer(out, found.avro, record)
    assert fastavro.schemaless_reader(io.BytesIO(out.getvalue()), found.avro, None) == record


def test_an_unknown_id_is_asked_again_after_a_while(registry: Registry) -> None:
    clock = Clock()
    client = RegistrySchemas(registry.url, clock=clock)
    for _ in range(3):
        with pytest.raises(UnknownSchema, match=f"schema id 8 is not in the schema registry {registry.url}$"):
            client.schema(8)
    assert registry.requests == ["/schemas/ids/8"]
    registry.schemas[8] = {"schema": json.dumps(SCHEMA), "schemaType": "AVRO"}
    clock.now = RETRY_AFTER + 1
    assert client.schema(8).schema_id == 8
    assert registry.requests == ["/schemas/ids/8"] * 2


@pytest.mark.parametrize(("body", "message"), [
    ({"schema": "syntax = \"proto3\"; message E {}", "schemaType": "PROTOBUF"},
     "schema id 3 is a PROTOBUF schema; events.format avro reads Avro only"),
    ({"schema": '{"type": "record", "name": "E", "fields": [{"name": "x", "type": "nope"}]}'},
     "schema id 3 is not an Avro schema"),
    ({"nothing": 1}, "answered no schema"),
])
def test_schemas_that_cannot_be_used_are_unknown(registry: Registry, body: dict[str, Any], message: str) -> None:
    registry.schemas[3] = body
    with pytest.raises(UnknownSchema, match=message):
        RegistrySchemas(registry.url).schema(3)


def test_an_unreachable_registry_makes_unknown_schemas(registry: Registry) -> None:
    url = registry.url
    registry.stop()
    with pytest.raises(UnknownSchema, match=f"schema id 1: the schema registry {url} is unreachable"):
        RegistrySchemas(url, timeout=1).schema(1)


def test_files_come_before_the_registry(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "e.avsc").write_text(json.dumps(SCHEMA))
    registry.schemas[2] = {"schema": json.dumps({**SCHEMA, "name": "Registered"})}
    schemas = open_schemas(
        SchemasConfig(registry=registry.url, files={"1": "e.avsc"}), lambda p: tmp_path / p)
    assert schemas.schema(1).avro["name"] == "E"
    assert schemas.schema(2).avro["name"] == "Registered"
    assert registry.requests == ["/schemas/ids/2"]
    only_files = Schemas(FileSchemas({1: tmp_path / "e.avsc"}), None)
    with pytest.raises(UnknownSchema, match="schema id 2 is not in events.schemas.files"):
        only_files.schema(2)


EVENT = {"type": "record", "name": "Event", "fields": [
    {"name": "ts", "type": "string"}, {"name": "model", "type": "string"},
    {"name": "features", "type": {"type": "map", "values": "double"}}]}


def test_the_wire_decoder_reads_ids_from_the_registry(registry: Registry) -> None:
    registry.schemas[11] = {"schema": json.dumps(EVENT)}
    profile = build_reference("m", {"x": np.linspace(0, 1, 100)}, {"x": "numeric"}, {"x": 4}, "test", 100)
    decoder = WireDecoder(
        BatchDecoder(Decoder(models=frozenset({"m"}), max_future=timedelta(days=36500)),
                     [model_columns("m", (), profile, per_event=False, embeddings=False)]),
        RegistrySchemas(registry.url))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(EVENT),
                               {"ts": "2026-11-27T10:00:00Z", "model": "m", "features": {"x": 1.5}})
    payload = out.getvalue()
    batch = decoder([
        RawMessage(b"\x00" + struct.pack(">I", 11) + payload, "t", 0, 0),
        RawMessage(b"\x00" + struct.pack(">I", 11) + payload, "t", 0, 1),
        RawMessage(b"\x00" + struct.pack(">I", 12) + payload, "t", 0, 2),
    ])
    assert batch.n_events == 2
    assert [e.features for piece in batch.pieces for e in piece.events] == [{"x": 1.5}] * 2
    assert [(d.offset, d.reason) for d in batch.dead] == [(2, DlqReason.UNKNOWN_SCHEMA)]
    assert registry.requests == ["/schemas/ids/11", "/schemas/ids/12"]


# ------------------------------------------------------------------------------- Protobuf

PROTO_EVENT = """
syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "shop/scalar.proto";
message Event {
  google.protobuf.Timestamp ts = 1;
  string model = 2;
  map<string, shop.Scalar> features = 3;
}
"""
PROTO_SCALAR = 'syntax = "proto3"; package shop; message Scalar { oneof kind { double number = 1; string text = 2; } }'
PROTO_ALONE = 'syntax = "proto3"; package solo; message Other { int32 n = 1; } message Event { string model = 1; }'
COMPILED = compile_proto_texts({"event.proto": PROTO_EVENT, "shop/scalar.proto": PROTO_SCALAR}, "event.proto")
ALONE = compile_proto_texts({"alone.proto": PROTO_ALONE}, "alone.proto")


def b64(index: int, files: Any = COMPILED) -> str:
    """A compiled file as Confluent's client registers it: base64 of the FileDescriptorProto."""
    return base64.b64encode(files.file[index].SerializeToString()).decode()


def event_bytes(schema_id: int, model: str = "m") -> bytes:
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    for proto in COMPILED.file:
        pool.Add(proto)
    cls: Any = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Event"))
    event = cls(model=model)
    event.ts.FromJsonString("2026-11-27T10:00:00Z")
    event.features["x"].number = 1.5
    payload: bytes = event.SerializeToString()
    return b"\x00" + struct.pack(">I", schema_id) + encode_message_indexes([0]) + payload


REFERENCES = [{"name": "shop/scalar.proto", "subject": "shop/scalar", "version": 2}]


def protobuf_registry(registry: Registry, how: str) -> None:
    """Schema id 21 is :data:`PROTO_EVENT` with its reference, registered ``how``."""
    if how == "compiled":  # as confluent-kafka's serializer registers it
        registry.schemas[21] = {"schema": b64(-1), "schemaType": "PROTOBUF", "references": REFERENCES}
        registry.subjects[("shop/scalar", 2)] = {"schema": b64(-2), "schemaType": "PROTOBUF"}
    else:  # the text, as Confluent keeps it; "serialized": the registry also answers ?format=serialized
        registry.schemas[21] = {"schema": PROTO_EVENT, "schemaType": "PROTOBUF", "references": REFERENCES}
        registry.subjects[("shop/scalar", 2)] = {"schema": PROTO_SCALAR, "schemaType": "PROTOBUF"}
        if how == "serialized":
            registry.serialized[21] = {"schema": b64(-1)}
            registry.serialized[("shop/scalar", 2)] = {"schema": b64(-2)}


@pytest.mark.parametrize(("how", "requests"), [
    ("compiled", ["/schemas/ids/21", "/subjects/shop%2Fscalar/versions/2?format=serialized"]),
    ("serialized", ["/schemas/ids/21", "/schemas/ids/21?format=serialized",
                    "/subjects/shop%2Fscalar/versions/2?format=serialized"]),
    ("text", ["/schemas/ids/21", "/schemas/ids/21?format=serialized", "/subjects/shop%2Fscalar/versions/2"]),
])
def test_protobuf_schemas_with_references_from_the_registry(
    registry: Registry, how: str, requests: list[str],
) -> None:
    protobuf_registry(registry, how)
    client = RegistrySchemas(registry.url, format="protobuf")
    found = client.schema(21).protobuf
    assert found is not None and client.schema(21).protobuf is found
    assert registry.requests == requests
    assert found.record(event_bytes(21)[6:], (0,)) == {
        "ts": "2026-11-27T10:00:00Z", "model": "m", "features": {"x": 1.5}}


def test_a_compiled_schema_alone_needs_no_protoc(registry: Registry) -> None:
    registry.schemas[4] = {"schema": PROTO_ALONE, "schemaType": "PROTOBUF"}
    registry.serialized[4] = {"schema": b64(-1, ALONE)}
    found = RegistrySchemas(registry.url, format="protobuf").schema(4).protobuf
    assert found is not None and found.main.name == "drift-schema-4.proto"
    assert found.message_type((1,))[1].full_name == "solo.Event"


@pytest.mark.parametrize(("body", "message"), [
    ({"schema": json.dumps(SCHEMA)}, "schema id 3 is a AVRO schema; events.format protobuf reads Protobuf only"),
    ({"schema": 'syntax = "proto3"; message E { strin x = 1; }', "schemaType": "PROTOBUF"},
     '"strin" is not defined'),
    ({"schema": 'syntax = "proto3"; import "gone.proto"; message E {}', "schemaType": "PROTOBUF"},
     "gone.proto: File not found"),
    ({"schema": 'syntax = "proto3";', "schemaType": "PROTOBUF", "references": [{"name": "a.proto"}]},
     "a reference is not {name, subject, version}"),
    ({"schema": 'syntax = "proto3";', "schemaType": "PROTOBUF",
      "references": [{"name": "a.proto", "subject": "a", "version": 1}]}, "/subjects/a/versions/1 is not in the"),
])
def test_protobuf_schemas_that_cannot_be_used_are_unknown(
    registry: Registry, body: dict[str, Any], message: str,
) -> None:
    registry.schemas[3] = body
    with pytest.raises(UnknownSchema) as error:
        RegistrySchemas(registry.url, format="protobuf").schema(3)
    assert message in str(error.value)


def test_the_wire_decoder_reads_protobuf_from_the_registry(registry: Registry, tmp_path: Path) -> None:
    protobuf_registry(registry, "compiled")
    (tmp_path / "event.desc").write_bytes(COMPILED.SerializeToString())
    profile = build_reference("m", {"x": np.linspace(0, 1, 100)}, {"x": "numeric"}, {"x": 4}, "test", 100)
    schemas = open_schemas(
        SchemasConfig(registry=registry.url, files={"1": "event.desc"}), lambda p: tmp_path / p, "protobuf")
    decoder = WireDecoder(
        BatchDecoder(Decoder(models=frozenset({"m"}), max_future=timedelta(days=36500)),
                     [model_columns("m", (), profile, per_event=False, embeddings=False)]),
        schemas, format="protobuf")
    batch = decoder([
        RawMessage(event_bytes(21), "t", 0, 0), RawMessage(event_bytes(1), "t", 0, 1),
        RawMessage(event_bytes(22), "t", 0, 2), RawMessage(event_bytes(21)[:-2], "t", 0, 3),
    ])
    assert batch.n_events == 2
    assert [e.features for piece in batch.pieces for e in piece.events] == [{"x": 1.5}] * 2
    assert [(d.offset, d.reason) for d in batch.dead] == [
        (2, DlqReason.UNKNOWN_SCHEMA), (3, DlqReason.BAD_PROTOBUF)]
    assert registry.requests == [
        "/schemas/ids/21", "/subjects/shop%2Fscalar/versions/2?format=serialized", "/schemas/ids/22"]
