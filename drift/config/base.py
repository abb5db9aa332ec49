"""The base of every config model: frozen, strict scalars, no unknown keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base of every config model: frozen, strict scalars, no unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
