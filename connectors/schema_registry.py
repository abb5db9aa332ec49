"""A schema registry's REST API (Confluent's, also served by Apicurio and Redpanda), read-only.

Only ``GET {registry}/schemas/ids/{id}`` is used: a schema id names one schema forever,
so a schema found is kept for the run. An id the registry does not know (404) and a
registry that cannot be reached are remembered for :data:`RETRY_AFTER`, so that a batch
of such messages costs one request, and asked again after that.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import httpx

from drift.config import SchemasConfig
from drift.wire import FileSchemas, SchemaError, SchemaSource, UnknownSchema, WireSchema, parse_avro_schema

RETRY_AFTER = 10.0
"""Seconds an unknown or unreachable schema id is answered from memory before it is asked again."""

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistrySchemas:
    """Schemas by id from a registry's ``/schemas/ids/{id}``, with a cache.

    ``client`` may be given (tests, or shared settings); ``clock`` is injected for the
    retry delay. Safe to share between the worker threads of one process.
    """

    def __init__(
        self, url: str, timeout: float = 5.0, client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
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

    def _fetch(self, schema_id: int) -> WireSchema:
        where = f"{self.url}/schemas/ids/{schema_id}"
        try:
            response = self.client.get(where)
        except httpx.HTTPError as exc:
            raise UnknownSchema(f"schema id {schema_id}: the schema registry {self.url} is unreachable: {exc}") from None
        if response.status_code == 404:
            raise UnknownSchema(f"schema id {schema_id} is not in the schema registry {self.url}")
        if response.status_code != 200:
            raise UnknownSchema(
                f"schema id {schema_id}: the schema registry {self.url} answered {response.status_code}: "
                f"{response.text[:200]!r}")
        try:
            body = response.json()
        except ValueError:
            raise UnknownSchema(f"schema id {schema_id}: the schema registry {self.url} answered no JSON") from None
        text = body.get("schema") if isinstance(body, dict) else None
        kind = body.get("schemaType", "AVRO") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise UnknownSchema(f"schema id {schema_id}: the schema registry {self.url} answered no schema")
        if kind != "AVRO":
            raise UnknownSchema(f"schema id {schema_id} is a {kind} schema; events.format avro reads Avro only")
        try:
            return parse_avro_schema(text, schema_id, where)
        except SchemaError as exc:
            raise UnknownSchema(str(exc)) from None

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


def open_schemas(schemas: SchemasConfig, resolve: Callable[[str], Path]) -> Schemas:
    """The schema source of ``events.schemas``; ``resolve`` turns a file's path into one relative
    to the config file. Files are read (and checked) now: :class:`drift.wire.SchemaError`."""
    files = FileSchemas({i: resolve(p) for i, p in schemas.schema_files().items()}) if schemas.files else None
    registry = (
        RegistrySchemas(schemas.registry, schemas.timeout.total_seconds()) if schemas.registry is not None else None
    )
    return Schemas(files, registry)
