"""The whole configuration file (:class:`Config`), with ``metrics:`` and ``baselines:``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from drift.config.base import Strict
from drift.config.events import EventsConfig
from drift.config.kafka import KafkaConfig
from drift.config.models import ModelConfig
from drift.config.tickets import ReviewConfig, RoutingRule, TicketsConfig


def _exact_int(value: object) -> object:
    # Literal[1] matches by equality, so true and 1.0 would pass without this.
    if type(value) is not int:
        raise ValueError(f"must be the integer 1; got {value!r}")
    return value


class MetricsConfig(Strict):
    """Prometheus metrics served over HTTP by ``drift run``."""

    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    """0 disables the endpoint."""
    max_cohorts: int = Field(default=1000, ge=1)
    """Cohorts per model and process with their own label values on per-cohort metrics; later
    cohorts are labelled ``_other`` (and counted in ``drift_cohort_overflow_total``)."""


MAX_SHARDS = 4096


def _shard_count(value: object) -> object:
    if value == "auto" and isinstance(value, str):
        return value
    if type(value) is not int or not 1 <= value <= MAX_SHARDS:
        raise ValueError(f"must be 'auto' or a whole number from 1 to {MAX_SHARDS}; got {value!r}")
    return value


class EngineConfig(Strict):
    """How the flow keeps cohort window state and what it writes."""

    shards: Annotated[Literal["auto"] | int, BeforeValidator(_shard_count)] = "auto"
    """State shards per model: each is one keyed state holding its cohorts as array rows
    (a cohort's shard is a CRC-32 of its key); shards spread across workers and processes.
    ``auto``: the count a recovery folder was started with, else the cluster's workers
    (processes × workers)."""
    idle_windows: int = Field(default=12, ge=1)
    """Windows a cohort may stay without events (its watermark moving on with system time)
    before its state row is freed; a cohort seen again afterwards starts afresh."""
    ok_findings: bool = False
    """Write ``ok`` findings to the findings sink too (every cohort window scored finding by
    finding); by default only warn and alert findings are written, and healthy windows are
    counted in the metrics. ``drift replay`` and ``drift backtest`` always write them all."""


class BaselinesConfig(Strict):
    """Where built baselines are stored."""

    dir: str = "drift-baselines"


class Config(Strict):
    """The whole configuration file."""

    version: Annotated[Literal[1], BeforeValidator(_exact_int)]
    kafka: KafkaConfig = KafkaConfig()
    events: EventsConfig = EventsConfig()
    models: list[ModelConfig] = Field(min_length=1)
    routing: list[RoutingRule] = Field(default_factory=list)
    tickets: TicketsConfig = TicketsConfig()
    review: ReviewConfig = ReviewConfig()
    metrics: MetricsConfig = MetricsConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    engine: EngineConfig = EngineConfig()
    source_dir: Annotated[str, Field(exclude=True)] = "."
    """Folder of the config file; relative paths in the file are resolved from it."""

    @field_validator("models")
    @classmethod
    def _unique_names(cls, value: list[ModelConfig]) -> list[ModelConfig]:
        names = [m.name for m in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {duplicates}")
        return value

    def embedding_fields(self) -> dict[str, tuple[str, int]]:
        """``model -> (field, dim)`` of every model with an ``embedding`` detector (for the decoder)."""
        out = {}
        for model in self.models:
            sampling = model.embedding_sampling()
            if sampling is not None:
                out[model.name] = (sampling.field, sampling.dim)
        return out

    def model(self, name: str) -> ModelConfig:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)

    def resolve(self, path: str) -> Path:
        """A path from the file, resolved against the config file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else Path(self.source_dir) / candidate

    def with_ticket_store(self, store: str) -> Config:
        """This config with its tickets in ``store`` (a relative ``sqlite:///`` path is taken from
        the current folder), its sinks and webhook kept; itself when ``store`` is its own.

        A store that is not one raises ``ValueError`` naming it.
        """
        if store == self.tickets.store:
            return self
        if store.startswith("sqlite:///"):
            path = Path(store[len("sqlite:///"):]).expanduser()
            store = f"sqlite:///{path if path.is_absolute() else Path.cwd() / path}"
        try:
            tickets = TicketsConfig(store=store, sinks=self.tickets.sinks, webhook=self.tickets.webhook)
        except ValueError as exc:
            raise ValueError(f"store {store!r}: {exc}") from None
        return self.model_copy(update={"tickets": tickets})

    def ticket_store_path(self) -> Path | None:
        """The SQLite file of the ticket store, or None for another store."""
        prefix = "sqlite:///"
        if self.tickets.store.startswith(prefix):
            return self.resolve(self.tickets.store[len(prefix):])
        return None
