"""JSON Schemas of the events drift reads (docs/events.md), shipped with the package.

``drift schema [inference|feature|label]`` prints them. They describe the wire format; the
decoders (:mod:`drift.events`, :mod:`drift.feature_events`, :mod:`drift.labels.events`) are
the authority, and add
what a schema cannot say (the model's ``ts_unit``, the accepted time range, the model's
configured features and embedding dimension).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


FILES: dict[str, str] = {
    "inference": "inference-event.schema.json",
    "feature": "feature-event.schema.json",
    "label": "label-event.schema.json",
}


def schema_text(kind: str) -> str:
    """The schema of ``kind`` events as shipped (JSON text)."""
    if kind not in FILES:
        raise ValueError(f"event kind must be one of {', '.join(FILES)}; got {kind!r}")
    return resources.files(__name__).joinpath(FILES[kind]).read_text(encoding="utf-8")


def schema(kind: str) -> dict[str, Any]:
    """The schema of ``kind`` events, parsed."""
    document: dict[str, Any] = json.loads(schema_text(kind))
    return document
