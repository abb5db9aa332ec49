"""The schema registry client against a real HTTP server on 127.0.0.1.

No registry server runs here (Apicurio Registry 3 needs Java 21; the modules of 2.6 are
not all on Maven Central), so the server below serves the Confluent API's
``GET /schemas/ids/{id}`` from a dict: a real server over real HTTP, not a mock client.
"""

from __future__ import annotations

import io
import json
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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

SCHEMA = {"type": "record", "name": "E", "fields": [{"name": "model", "type": "string"}]}


class Registry:
    """A tiny Confluent-compatible registry: ``schemas`` by id, requests counted."""

    def __init__(self) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                registry.requests.append(self.path)
                parts = self.path.strip("/").split("/")
                body: dict[str, Any]
                if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit() \
                        and int(parts[2]) in registry.schemas:
                    status, body = 200, registry.schemas[int(parts[2])]
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
