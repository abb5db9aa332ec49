"""``events:``: the rules that decide whether an event can be used, and where the writer's
schema of a wire-format (Avro or Protobuf) message comes from.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from drift.config.base import Strict
from drift.duration import Duration


class SchemasConfig(Strict):
    """``events.schemas``: where the writer's schema of a wire-format message comes from."""

    registry: str | None = None
    """Base URL of a schema registry with the Confluent REST API (``GET /schemas/ids/{id}``)."""
    files: dict[str, str] = Field(default_factory=dict)
    """Schema id (quoted: ``"1"``) -> schema file, relative to the config file's folder; looked
    up before the registry. Avro: ``.avsc``; Protobuf: ``.proto`` text or a ``FileDescriptorSet``."""
    timeout: Duration = timedelta(seconds=5)
    """Bound of one registry request."""

    @field_validator("registry")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http:// or https:// URL; got {value!r}")
        return value

    @field_validator("files")
    @classmethod
    def _schema_ids(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in value if not (k.isascii() and k.isdigit() and int(k) < 2**32))
        if bad:
            raise ValueError(f"keys must be schema ids, integers from 0 to 4294967295 as text; got {bad[:8]}")
        return value

    def schema_files(self) -> dict[int, str]:
        """``schema id -> file`` of ``files``."""
        return {int(k): v for k, v in self.files.items()}

    @model_validator(mode="after")
    def _some_source(self) -> SchemasConfig:
        if self.registry is None and not self.files:
            raise ValueError("needs registry (a URL) or files (schema id -> .avsc, .proto or .desc file)")
        return self


class EventsConfig(Strict):
    """Rules that decide whether an event can be used at all."""

    max_future: Duration = timedelta(minutes=10)
    """An event stamped further than this after the wall clock goes to the DLQ."""
    format: Literal["json", "avro", "protobuf"] = "json"
    """``avro``, ``protobuf``: messages in the Confluent wire format (magic byte 0, schema id,
    Avro or message indexes and Protobuf) are read with the schema of their id from
    ``schemas``; JSON and Arrow messages still are."""
    schemas: SchemasConfig | None = None

    @model_validator(mode="after")
    def _schemas_for_format(self) -> EventsConfig:
        if self.format != "json" and self.schemas is None:
            file = "file.avsc" if self.format == "avro" else "file.proto"
            raise ValueError(f"format {self.format} needs schemas: {{registry: URL}} or {{files: {{id: {file}}}}}")
        if self.format == "json" and self.schemas is not None:
            raise ValueError("schemas are read only with format: avro or protobuf")
        return self
