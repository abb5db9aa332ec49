"""A schema registry's REST API (Confluent's, also served by Apicurio and Redpanda), read-only.

``GET {registry}/schemas/ids/{id}`` gives a schema; a schema id names one schema forever,
so a schema found is kept for the run. A Protobuf schema (``schemaType: PROTOBUF``) is
wanted compiled, as base64 of a ``FileDescriptorProto``: as registered, else asked again
with ``?format=serialized``, and so are the schemas it imports (``references``, from
``GET /subjects/{subject}/versions/{version}``). Where the registry answers only ``.proto``
text, the texts are compiled with ``protoc`` from ``grpcio-tools``
(:func:`drift.wire_protobuf.compile_proto`). An id the registry does not know (404) and a
registry that cannot be reached are remembered for :data:`RETRY_AFTER`, so that a batch
of such messages costs one request, and asked again after that.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import httpx
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from drift.config import SchemasConfig
from drift.wire import (
    FileSchemas,
    SchemaError,
    SchemaSource,
    UnknownSchema,
    WireFormat,
    WireSchema,
    parse_avro_schema,
    parse_protobuf_schema,
)
from drift.wire_protobuf import ProtobufSchemaError, compile_proto_texts

RETRY_AFTER = 10.0
"""Seconds an unknown or unreachable schema id is answered from memory before it is asked again."""

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

MAX_REFERENCES = 256
"""At most this many schemas imported by one Protobuf schema, directly or not."""

_KINDS = {"avro": "AVRO", "protobuf": "PROTOBUF"}


class RegistrySchemas:
    """Schemas by id from a registry's ``/schemas/ids/{id}``, with a cache.

    ``client`` may be given (tests, or shared settings); ``clock`` is injected for the
    retry delay; ``format`` is ``events.format``: a schema of another type is unknown.
    Safe to share between the worker threads of one process.
    """

    def __init__(
        self, url: str, timeout: float = 5.0, client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic, format: WireFormat = "avro",
    ) -> None:
        self.url = url.rstrip("/")
        self.format = format
        self.client = client or httpx.Client(timeout=timeout, headers={"Accept": CONTENT_TYPE})
        self.clock = clock
        self._found: dict[int, WireSchema] = {}
        self._failed: dict[int, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def schema(self, schema_id: int) -> WireSchema:
        found = self._found.get(schema_id)
        if found is not None:
            return found
        with self._lock:
            failed = self._failed.get(schema_id)
            if failed is not None and self.clock() < failed[0]:
                raise UnknownSchema(failed[1])
            try:
                found = self._fetch(schema_id)
            except UnknownSchema as unknown:
                self._failed[schema_id] = (self.clock() + RETRY_AFTER, str(unknown))
                raise
            self._found[schema_id] = found
            self._failed.pop(schema_id, None)
            return found

    def _get(self, schema_id: int, path: str) -> dict[str, Any]:
        """The JSON object the registry answers at ``path``, which holds a ``schema`` text."""
        try:
            response = self.client.get(f"{self.url}{path}")
        except httpx.HTTPError as exc:
            raise UnknownSchema(f"schema id {schema_id}: the schema registry {self.url} is unreachable: {exc}") from None
        if response.status_code == 404:
            if path.startswith("/schemas/ids/"):
                raise UnknownSchema(f"schema id {schema_id} is not in the schema registry {self.url}")
            raise UnknownSchema(f"schema id {schema_id}: {path} is not in the schema registry {self.url}")
        if response.status_code != 200:
            raise UnknownSchema(
                f"schema id {schema_id}: the schema registry {self.url} answered {response.status_code}: "
                f"{response.text[:200]!r}")
        try:
            body = response.json()
        except ValueError:
            raise UnknownSchema(f"schema id {schema_id}: the schema registry {self.url} answered no JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            raise UnknownSchema(f"schema id {schema_id}: the schema registry {self.url} answered no schema")
        return body

    def _fetch(self, schema_id: int) -> WireSchema:
        where = f"{self.url}/schemas/ids/{schema_id}"
        body = self._get(schema_id, f"/schemas/ids/{schema_id}")
        kind = body.get("schemaType", "AVRO")
        if kind != _KINDS[self.format]:
            raise UnknownSchema(
                f"schema id {schema_id} is a {kind} schema; events.format {self.format} reads "
                f"{'Avro' if self.format == 'avro' else 'Protobuf'} only")
        try:
            if self.format == "protobuf":
                return self._protobuf(schema_id, body, where)
            return parse_avro_schema(body["schema"], schema_id, where)
        except SchemaError as exc:
            raise UnknownSchema(str(exc)) from None
        except ProtobufSchemaError as exc:
            raise UnknownSchema(f"{where}: schema id {schema_id} is not a Protobuf schema: {exc}") from None

    def _protobuf(self, schema_id: int, body: dict[str, Any], where: str) -> WireSchema:
        """The schema compiled by the registry (or its producer), else its texts compiled here."""
        references = body.get("references") or []
        main = _compiled(body["schema"], f"drift-schema-{schema_id}.proto")
        if main is None:
            try:
                again = self._get(schema_id, f"/schemas/ids/{schema_id}?format=serialized")
            except UnknownSchema:
                again = {"schema": ""}
            main = _compiled(again["schema"], f"drift-schema-{schema_id}.proto")
        if main is not None:
            compiled: dict[str, descriptor_pb2.FileDescriptorProto | str] = {}
            self._references(schema_id, references, compiled, "?format=serialized")
            protos = [p for p in compiled.values() if not isinstance(p, str)]
            if len(protos) == len(compiled):
                return parse_protobuf_schema([*protos, main], schema_id, where)
        texts: dict[str, descriptor_pb2.FileDescriptorProto | str] = {}
        self._references(schema_id, references, texts, "")
        name = f"drift-schema-{schema_id}.proto"
        texts[name] = body["schema"]
        if not all(isinstance(t, str) for t in texts.values()):
            raise UnknownSchema(f"schema id {schema_id}: the registry answers compiled and text schemas mixed")
        return parse_protobuf_schema(
            compile_proto_texts({k: str(v) for k, v in texts.items()}, name), schema_id, where)

    def _references(
        self, schema_id: int, references: Any, found: dict[str, descriptor_pb2.FileDescriptorProto | str],
        query: str,
    ) -> None:
        """The schemas of ``references`` and of theirs, by import name, into ``found``: compiled
        where the registry answers so, else the ``.proto`` text."""
        if not isinstance(references, list):
            raise UnknownSchema(f"schema id {schema_id}: the schema registry {self.url} answered bad references")
        for reference in references:
            if not isinstance(reference, dict) or not all(
                    isinstance(reference.get(k), (str, int)) for k in ("name", "subject", "version")):
                raise UnknownSchema(
                    f"schema id {schema_id}: a reference is not {{name, subject, version}}: {str(reference)[:200]}")
            name = str(reference["name"])
            if name in found:
                continue
            if len(found) >= MAX_REFERENCES:
                raise UnknownSchema(f"schema id {schema_id} imports more than {MAX_REFERENCES} schemas")
            subject = quote(str(reference["subject"]), safe="")
            body = self._get(schema_id, f"/subjects/{subject}/versions/{reference['version']}{query}")
            found[name] = _compiled(body["schema"], name) or body["schema"]
            self._references(schema_id, body.get("references") or [], found, query)


def _compiled(text: str, name: str) -> descriptor_pb2.FileDescriptorProto | None:
    """A schema registered compiled (base64 of a ``FileDescriptorProto``, as Confluent's client
    registers them), named ``name`` as its importers know it; ``None`` for ``.proto`` text."""
    try:
        proto = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, DecodeError):
        return None
    if not proto.message_type and not proto.enum_type and not proto.dependency:
        return None
    proto.name = name
    return proto

    def close(self) -> None:
        self.client.close()


class Schemas:
    """Files first, then the registry: ``events.schemas`` as one :class:`drift.wire.SchemaSource`."""

    def __init__(self, files: FileSchemas | None, registry: SchemaSource | None) -> None:
        self.files = files
        self.registry = registry

    def schema(self, schema_id: int) -> WireSchema:
        if self.files is not None and (self.registry is None or schema_id in self.files.files):
            return self.files.schema(schema_id)
        if self.registry is None:
            raise UnknownSchema(f"schema id {schema_id} has no schema")
        return self.registry.schema(schema_id)


def open_schemas(schemas: SchemasConfig, resolve: Callable[[str], Path], format: WireFormat = "avro") -> Schemas:
    """The schema source of ``events.schemas`` for ``events.format``; ``resolve`` turns a file's
    path into one relative to the config file. Files are read (and checked, ``.proto`` files
    compiled) now: :class:`drift.wire.SchemaError`."""
    files = (
        FileSchemas({i: resolve(p) for i, p in schemas.schema_files().items()}, format) if schemas.files else None
    )
    registry = (
        RegistrySchemas(schemas.registry, schemas.timeout.total_seconds(), format=format)
        if schemas.registry is not None else None
    )
    return Schemas(files, registry)
