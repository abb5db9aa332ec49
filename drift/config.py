"""Typed configuration: the YAML that data scientists write, validated once at load.

Every model is frozen and forbids unknown keys, so a misspelt key is an error that
names its YAML path, not a silently ignored setting. ``load_config`` reads the
file with ``yaml.SafeLoader`` only, expands ``${VAR}`` / ``${VAR:-default}``
references from the environment (the only way secrets enter) and reports every
problem at once, each with file, line, column and path::

    drift.yaml:14:9 models[0].detectors[0].psi.bins: must be >= 2; got 1
"""

from __future__ import annotations

import difflib
import math
import os
import re
import typing
import zoneinfo
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    SecretStr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from detectors.embedding import EmbeddingConfig
from detectors.freshness import FreshnessConfig
from detectors.psi import PsiConfig
from detectors.quality import QualityConfig
from detectors.score import ScoreConfig
from detectors.skew import SkewConfig
from drift.duration import Duration, format_duration
from drift.errors import ConfigError, ReviewError
from drift.identity import canonical, skeleton
from drift.redaction import has_credentials, is_sensitive_name, redact, register_secret
from drift.reference import PredictionColumn
from drift.summary import EmbeddingSampling


def _exact_int(value: object) -> object:
    # Literal[1] matches by equality, so true and 1.0 would pass without this.
    if type(value) is not int:
        raise ValueError(f"must be the integer 1; got {value!r}")
    return value



class Strict(BaseModel):
    """Base of every config model: frozen, strict scalars, no unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class KafkaConfig(Strict):
    """Where the stream job reads events and writes its outputs."""

    bootstrap: str = "127.0.0.1:9092"
    group_id: str = "drift"
    inference_topic: str = "inference-events"
    feature_topic: str = "feature-events"
    findings_topic: str = "drift-findings"
    tickets_topic: str = "drift-tickets"
    retrain_topic: str = "drift-retrain-requests"
    dlq_topic: str = "drift-dlq"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    batch_size: int = Field(default=1000, ge=1)
    dlq_max_value_bytes: int = Field(default=64 * 1024, ge=64, le=900_000)
    """A dead letter's value is cut to this many characters (as written in the DLQ record);
    the record keeps the original size and SHA-256. Below the broker's 1 MB default."""
    spill_dir: str = "drift-spill"
    """Output messages the broker did not take after ``produce_attempts`` go here as JSON
    lines (relative to the config file)."""
    produce_attempts: int = Field(default=3, ge=1, le=20)
    """Tries of an output message (its first send included) before it is spilled."""
    produce_backoff: Duration = timedelta(seconds=1)
    """Wait before the second try; doubled before each next one, at most 30s."""
    connect_timeout: Duration = timedelta(seconds=5)
    """Bound of every metadata request of the job (broker reachable, partitions of a topic)."""

    @field_validator("produce_backoff", "connect_timeout")
    @classmethod
    def _positive_duration(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be a positive duration; got {format_duration(value)!r}")
        return value

    def client_settings(self) -> dict[str, str]:
        """librdkafka settings shared by the consumer and producers."""
        settings: dict[str, str] = {"security.protocol": self.security_protocol}
        if self.sasl_mechanism is not None:
            settings["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            settings["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            settings["sasl.password"] = self.sasl_password.get_secret_value()
        return settings


class SchemasConfig(Strict):
    """``events.schemas``: where the writer's schema of a wire-format message comes from."""

    registry: str | None = None
    """Base URL of a schema registry with the Confluent REST API (``GET /schemas/ids/{id}``)."""
    files: dict[str, str] = Field(default_factory=dict)
    """Schema id (quoted: ``"1"``) -> Avro schema file (``.avsc``), relative to the config
    file's folder; looked up before the registry."""
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
            raise ValueError("needs registry (a URL) or files (schema id -> .avsc file)")
        return self


class EventsConfig(Strict):
    """Rules that decide whether an event can be used at all."""

    max_future: Duration = timedelta(minutes=10)
    """An event stamped further than this after the wall clock goes to the DLQ."""
    format: Literal["json", "avro"] = "json"
    """``avro``: messages in the Confluent wire format (magic byte 0, schema id, Avro) are
    read with the schema of their id from ``schemas``; JSON and Arrow messages still are."""
    schemas: SchemasConfig | None = None

    @model_validator(mode="after")
    def _schemas_for_format(self) -> EventsConfig:
        if self.format == "avro" and self.schemas is None:
            raise ValueError("format avro needs schemas: {registry: URL} or {files: {id: file.avsc}}")
        if self.format == "json" and self.schemas is not None:
            raise ValueError("schemas are read only with format: avro")
        return self


class FeatureSpec(Strict):
    """One feature of a model's input."""

    type: Literal["numeric", "categorical"]
    # YAML has no tuples: a two-element list is the natural spelling.
    range: tuple[float, float] | None = Field(default=None, strict=False)
    min: float | None = None
    max: float | None = None

    @field_validator("range")
    @classmethod
    def _range_is_ordered_numbers(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None:
            if any(math.isnan(bound) for bound in value):
                raise ValueError(f"range bounds must be numbers, not NaN; got {list(value)}")
            if value[0] == math.inf or value[1] == -math.inf:
                raise ValueError(f"range must be [low, high] with low < .inf and high > -.inf; got {list(value)}")
        return value

    @field_validator("min", "max")
    @classmethod
    def _bound_is_a_number(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None:
            if math.isnan(value):
                raise ValueError(f"must be a number, not NaN; got {value}")
            if value == (math.inf if info.field_name == "min" else -math.inf):
                raise ValueError(f"must not be {'.inf' if value > 0 else '-.inf'}: no value would be allowed "
                                 f"(leave {info.field_name} out for no bound)")
        return value

    @model_validator(mode="after")
    def _check_bounds(self) -> FeatureSpec:
        if self.type == "categorical" and (
            self.range is not None or self.min is not None or self.max is not None
        ):
            raise ValueError("range/min/max apply to numeric features only")
        if self.range is not None:
            if self.min is not None or self.max is not None:
                raise ValueError("give either range or min/max, not both")
            if self.range[0] > self.range[1]:
                raise ValueError(f"range must be [low, high] with low <= high; got {list(self.range)}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min must be <= max; got min={self.min}, max={self.max}")
        return self

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        """The allowed (low, high), either of which may be open."""
        if self.range is not None:
            return self.range
        return self.min, self.max


class WindowConfig(Strict):
    """Event-time tumbling windows per cohort."""

    size: Duration = timedelta(minutes=5)
    allowed_lateness: Duration = timedelta(minutes=1)

    @field_validator("size")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be a positive duration; got {format_duration(value)!r}")
        return value


class ReferenceConfig(Strict):
    """Training (reference) data the live traffic is compared with."""

    parquet: str
    """Parquet file, relative to the config file's folder unless absolute."""


def _to_date(value: object) -> object:
    # YAML reads 2026-12-24 as a date already; a quoted one is ISO text.
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be a date like 2026-12-24; got {value!r}") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise ValueError(f"must be a date like 2026-12-24; got {value!r}")


Date = Annotated[date, BeforeValidator(_to_date), PlainSerializer(date.isoformat, return_type=str)]


class CalendarConfig(Strict):
    """``baseline.calendar``: which local dates are holidays, and what they are scored against."""

    country: str | None = None
    """ISO 3166 code whose public holidays count (the ``holidays`` package), e.g. ``DE``."""
    subdivision: str | None = None
    """The country's subdivision as the ``holidays`` package names it, e.g. ``BY``."""
    dates: list[Date] = Field(default_factory=list)
    """Further holidays, e.g. ``[2026-12-24]``."""
    holiday_as: Literal["own", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = "own"
    """``own``: one slot class for all holidays (by local hour); a weekday: that weekday's slot."""

    @model_validator(mode="after")
    def _known_country(self) -> CalendarConfig:
        if self.subdivision is not None and self.country is None:
            raise ValueError("subdivision needs a country")
        if self.country is not None:
            import holidays  # only configs with a calendar pay for its tables

            supported = holidays.list_supported_countries()
            if self.country not in supported:
                close = difflib.get_close_matches(self.country.upper(), list(supported), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ValueError(f"country must be a country code of the holidays package{hint}; got {self.country!r}")
            if self.subdivision is not None and self.subdivision not in supported[self.country]:
                raise ValueError(
                    f"subdivision must be one of {', '.join(supported[self.country])} for {self.country}; "
                    f"got {self.subdivision!r}"
                )
        return self


class BaselineConfig(Strict):
    """How the expected distribution is chosen for a window."""

    seasonality: Literal["none", "hour_of_day", "day_of_week", "hour_of_week"] = "none"
    history: Duration = timedelta(weeks=4)
    """How far back the same slot is pooled: ``4w`` with ``hour_of_week`` is 4 periods."""
    min_samples: int = Field(default=500, ge=1)
    """Below this many values in a slot's history the training reference is used instead."""
    half_life: Duration | None = None
    """Exponential decay of older periods (None: all periods weigh the same)."""
    timezone: str = "UTC"
    """IANA zone (``Europe/Berlin``) whose local time the slots follow, daylight saving included."""
    calendar: CalendarConfig | None = None
    """Holidays, scored against their own slots or a weekday's and never fed to ordinary slots."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value == "UTC":
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"must be an IANA time zone name like 'Europe/Berlin' or 'UTC'; got {value!r}") from None
        return value

    @model_validator(mode="after")
    def _history_covers_a_period(self) -> BaselineConfig:
        if self.calendar is not None:
            if self.seasonality == "none":
                raise ValueError("calendar needs a seasonality (hour_of_day, day_of_week or hour_of_week); got 'none'")
            if self.calendar.holiday_as != "own" and self.seasonality not in ("day_of_week", "hour_of_week"):
                raise ValueError(
                    f"calendar.holiday_as {self.calendar.holiday_as!r} needs seasonality day_of_week or "
                    f"hour_of_week; got {self.seasonality!r} (use holiday_as: own)"
                )
        period = timedelta(days=1) if self.seasonality in ("none", "hour_of_day") else timedelta(weeks=1)
        if self.seasonality != "none" and self.history < period:
            raise ValueError(
                f"history must cover at least one {'day' if period.days == 1 else 'week'} "
                f"for seasonality {self.seasonality}; got {format_duration(self.history)!r}"
            )
        if self.half_life is not None and self.half_life <= timedelta(0):
            raise ValueError(f"half_life must be a positive duration; got {format_duration(self.half_life)!r}")
        return self


class ImpactConfig(Strict):
    """Business impact of a model, used to route tickets."""

    tier: Literal["low", "medium", "high"] = "medium"
    regulated: bool = False
    weight: float = Field(default=1.0, ge=0)


class PolicyConfig(Strict):
    """When findings turn into tickets."""

    consecutive_windows: int = Field(default=1, ge=1)
    cooldown: Duration = timedelta(hours=1)
    """Quiet period after a ticket is resolved (event time) before it may reopen."""
    clear_ratio: float = Field(default=1.0, gt=0, le=1)
    """Hysteresis: an active problem clears below ``clear_ratio`` x its alert threshold."""
    clear_windows: int = Field(default=1, ge=1)
    """Hysteresis: windows in a row below the clear level before a problem clears."""
    min_samples: int = Field(default=0, ge=0)
    """Findings measured on fewer values (``n_current``) count as skipped."""


def _detector_name(value: object) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        name = next(iter(value))
        return name if isinstance(name, str) else None
    if isinstance(value, BaseModel):
        fields = [name for name in type(value).model_fields]
        return fields[0] if len(fields) == 1 else None
    return None


class PsiEntry(Strict):
    psi: PsiConfig


class QualityEntry(Strict):
    quality: QualityConfig


class ScoreEntry(Strict):
    score: ScoreConfig


class SkewEntry(Strict):
    skew: SkewConfig


class EmbeddingEntry(Strict):
    embedding: EmbeddingConfig


class FreshnessEntry(Strict):
    freshness: FreshnessConfig


DETECTOR_NAMES = ("psi", "quality", "score", "skew", "embedding", "freshness")
"""Detector names valid under ``detectors:``, as keys of one-entry mappings."""

DetectorEntry = Annotated[
    Union[
        Annotated[PsiEntry, Tag("psi")], Annotated[QualityEntry, Tag("quality")], Annotated[ScoreEntry, Tag("score")],
        Annotated[SkewEntry, Tag("skew")], Annotated[EmbeddingEntry, Tag("embedding")],
        Annotated[FreshnessEntry, Tag("freshness")],
    ],
    Discriminator(
        _detector_name,
        custom_error_type="unknown_detector",
        custom_error_message=(
            "must be a mapping with one key naming a detector, one of "
            + ", ".join(DETECTOR_NAMES)
        ),
    ),
]

COHORT_LABELS = ("model_version", "tenant", "region", "route")
"""Event fields a cohort may be split by; ``segment.<name>`` is also allowed."""


class ModelConfig(Strict):
    """One monitored model."""

    name: str = Field(min_length=1)
    cohort: list[str] = Field(default_factory=list)
    window: WindowConfig = WindowConfig()
    reference: ReferenceConfig | None = None
    baseline: BaselineConfig = BaselineConfig()
    impact: ImpactConfig = ImpactConfig()
    features: dict[str, FeatureSpec] = Field(min_length=1)
    detectors: list[DetectorEntry] = Field(default_factory=list)
    policy: PolicyConfig = PolicyConfig()
    ts_unit: Literal["s", "ms", "us", "ns"] = "ms"
    """Unit of an epoch-number ``ts`` in this model's events (RFC 3339 text needs none); docs/events.md."""

    @field_validator("cohort")
    @classmethod
    def _known_labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if label not in COHORT_LABELS and not (
                label.startswith("segment.") and len(label) > len("segment.")
            ):
                raise ValueError(
                    f"cohort labels must be among {', '.join(COHORT_LABELS)} or "
                    f"'segment.<name>'; got {label!r}"
                )
        if len(set(value)) != len(value):
            raise ValueError(f"cohort labels must be distinct; got {value}")
        return value

    @model_validator(mode="after")
    def _detector_features_exist(self) -> ModelConfig:
        for name, settings in self.detector_configs():
            features = getattr(settings, "features", "*")
            if isinstance(features, list):
                unknown = [f for f in features if f not in self.features]
                if unknown:
                    raise ValueError(
                        f"{name}.features names features not declared under features: "
                        f"{unknown}; declared: {sorted(self.features)}"
                    )
            if isinstance(settings, SkewConfig):
                named = [*settings.thresholds, *(settings.values.features if settings.values is not None
                                                 and isinstance(settings.values.features, list) else [])]
                unknown = sorted({f for f in named if f not in self.features})
                if unknown:
                    raise ValueError(
                        f"skew.thresholds/values.features name features not declared under features: "
                        f"{unknown}; declared: {sorted(self.features)}"
                    )
        return self

    @model_validator(mode="after")
    def _one_freshness_per_feature_set(self) -> ModelConfig:
        # One (model, feature set) is one finding fingerprint: a second detector would fight the first.
        sets = [s.feature_set for _, s in self.detector_configs() if isinstance(s, FreshnessConfig)]
        repeated = sorted({s for s in sets if sets.count(s) > 1})
        if repeated:
            raise ValueError(f"freshness detectors of one model must name distinct feature sets; repeated: {repeated}")
        return self

    @model_validator(mode="after")
    def _one_embedding_field(self) -> ModelConfig:
        # Events carry one embedding per model: every embedding detector reads it.
        specs = [(i, s) for i, (_, s) in enumerate(self.detector_configs()) if isinstance(s, EmbeddingConfig)]
        if specs:
            first = specs[0][1]
            for i, settings in specs[1:]:
                if (settings.field, settings.dim) != (first.field, first.dim):
                    raise ValueError(
                        f"embedding detectors of one model must share field and dim; detectors[{specs[0][0]}] has "
                        f"field={first.field!r}, dim={first.dim}, detectors[{i}] has "
                        f"field={settings.field!r}, dim={settings.dim}"
                    )
        return self

    def detector_configs(self) -> list[tuple[str, BaseModel]]:
        """(YAML name, typed settings) of each configured detector, in file order."""
        out: list[tuple[str, BaseModel]] = []
        for entry in self.detectors:
            name = next(iter(type(entry).model_fields))
            out.append((name, getattr(entry, name)))
        return out

    def embedding_sampling(self) -> EmbeddingSampling | None:
        """How windows sample embeddings: one field and dim, the largest ``sample``; None without
        an ``embedding`` detector."""
        specs = [s for _, s in self.detector_configs() if isinstance(s, EmbeddingConfig)]
        if not specs:
            return None
        return EmbeddingSampling(
            field=specs[0].field, dim=specs[0].dim, capacity=max(s.sample for s in specs), seed=specs[0].seed,
        )

    def feature_bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """(low, high) of each numeric feature that sets ``range`` or ``min``/``max``."""
        return {
            name: spec.bounds for name, spec in self.features.items()
            if spec.type == "numeric" and spec.bounds != (None, None)
        }

    def tracks_event_ids(self) -> bool:
        """Whether windows must remember event ids (a quality detector checks duplicates)."""
        return any(
            isinstance(settings, QualityConfig) and settings.tracks_event_ids
            for _, settings in self.detector_configs()
        )

    def prediction_columns(self) -> dict[str, PredictionColumn]:
        """Prediction fields that ``score`` detectors compare with reference columns, by path.

        When two detectors monitor one field, the first names the column and the
        largest ``bins`` wins.
        """
        columns: dict[str, PredictionColumn] = {}
        for _, settings in self.detector_configs():
            if isinstance(settings, ScoreConfig):
                for path, spec in settings.reference_columns().items():
                    known = columns.get(path)
                    if known is not None:
                        spec = PredictionColumn(known.column, known.type, max(known.bins, spec.bins))
                    columns[path] = spec
        return columns

    def psi_bins(self) -> dict[str, int]:
        """Bins per feature for the reference profile: the largest any PSI or skew detector asks for."""
        bins: dict[str, int] = {}
        for name, settings in self.detector_configs():
            if isinstance(settings, (PsiConfig, SkewConfig)):
                names = list(self.features) if settings.features == "*" else settings.features
                for feature in names:
                    bins[feature] = max(bins.get(feature, 0), settings.bins)
        return bins


class RoutingWhen(Strict):
    """Conditions of a routing rule; all given ones must hold."""

    impact: Literal["low", "medium", "high"] | None = None
    regulated: bool | None = None
    severity: Literal["warn", "alert"] | None = None
    model: str | None = None


class RoutingRule(Strict):
    """Where a ticket goes: the first rule whose ``when`` matches wins."""

    when: RoutingWhen = RoutingWhen()
    action: Literal["human_review", "ticket", "alert_only"]
    approvals: int = Field(default=1, ge=1)


class WebhookConfig(Strict):
    """A JSON POST of every ticket event (``connectors/webhook.py``)."""

    url: str = Field(pattern=r"^https?://")
    token: SecretStr | None = None
    """Bearer token; give it as ``${VAR}`` so it comes from the environment."""
    spool_dir: str = "drift-webhook-spool"
    """Events wait here until the receiver accepts them (relative to the config file); one
    folder per job, shared by all its workers and processes."""
    timeout: Duration = timedelta(seconds=10)
    """Of one POST: connecting, sending and waiting for the answer."""
    max_attempts: int = Field(default=5, ge=1)
    """POSTs of one event in one delivery pass (408, 425, 429, 5xx and connection errors)."""
    backoff: Duration = timedelta(seconds=1)
    """First retry delay; it doubles on each attempt (at most a minute), plus up to as much jitter."""
    drain_interval: Duration = timedelta(seconds=5)
    """How often the delivery thread looks at the spool on its own, and the pause after a failed pass."""
    queue_size: int = Field(default=1000, ge=1)
    """Ticket events the flow hands to the delivery thread without waiting; past it they wait on disk."""
    flush_timeout: Duration = timedelta(seconds=10)
    """How long the end of a run (replay, demo, a stopped job) waits for the receiver; the rest
    stays in the spool for the next run."""


class TicketsConfig(Strict):
    """The ticket store and where ticket events go."""

    store: str = "sqlite:///./drift-tickets.db"
    audit_head: str | None = None
    """Append-only file where each audit entry's hash and MAC are published (relative to the
    config file). Default: ``PATH.audit-head`` beside a SQLite store; none for PostgreSQL."""
    sinks: list[Literal["kafka", "webhook"]] = Field(default_factory=lambda: ["kafka"])  # type: ignore[arg-type]

    webhook: WebhookConfig | None = None

    @model_validator(mode="after")
    def _webhook_configured(self) -> TicketsConfig:
        if "webhook" in self.sinks and self.webhook is None:
            raise ValueError("sinks lists webhook but tickets.webhook (url, token, ...) is not given")
        return self

    @field_validator("store")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://")):
            raise ValueError(
                f"must be a URL 'sqlite:///PATH' or 'postgresql://...'; got {value!r}"
            )
        if value.startswith("postgresql://"):
            # The password comes from the environment (PGPASSWORD or a
            # PGPASSFILE), never from the file, where it would be logged.
            netloc = value[len("postgresql://"):].split("/", 1)[0]
            query = value.partition("?")[2]
            in_query = any(part.partition("=")[0].strip().lower() == "password" for part in re.split(r"[&;]", query))
            if in_query or ("@" in netloc and ":" in netloc.rsplit("@", 1)[0]):
                raise ValueError(
                    "must not contain a password; got a URL with "
                    + ("a 'password' query parameter" if in_query else "'user:password@'")
                    + " (give the password in the PGPASSWORD environment variable or a PGPASSFILE)"
                )
        return value


ReviewRole = Literal["approve_retraining", "approve_sensitive", "resolve", "admin"]
"""What a reviewer may do: approve (or reject) retraining, do so for a sensitive ticket,
move tickets to in_progress/resolved, act for another reviewer (``--as-admin``)."""


class ReviewerConfig(Strict):
    """One person who may act on tickets, and what they may do."""

    roles: list[ReviewRole] = Field(min_length=1)


class ReviewConfig(Strict):
    """Who reviews (docs/tickets.md, Identities and roles)."""

    reviewers: dict[str, ReviewerConfig] | None = None
    """Declared reviewers by name; an undeclared name is refused. Absent: any name, no roles."""
    sensitive_features: list[str] = Field(default_factory=list)
    """Features whose tickets only reviewers with ``approve_sensitive`` may approve or reject
    (as are all tickets of models with ``impact.regulated: true``)."""

    @field_validator("reviewers")
    @classmethod
    def _distinct_people(cls, value: dict[str, ReviewerConfig] | None) -> dict[str, ReviewerConfig] | None:
        if value is None:
            return value
        seen: dict[str, str] = {}
        for name in value:
            try:
                canonical(name, "reviewer name")
            except ReviewError as exc:
                raise ValueError(str(exc)) from None
            alike = seen.get(skeleton(name))
            if alike is not None:
                raise ValueError(f"reviewers {alike!r} and {name!r} are one person: their names differ only "
                                 f"in case, width, accents or look-alike letters")
            seen[skeleton(name)] = name
        return value


class MetricsConfig(Strict):
    """Prometheus metrics served over HTTP by ``drift run``."""

    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    """0 disables the endpoint."""
    max_cohorts: int = Field(default=1000, ge=1)
    """Cohorts per model and process with their own label values on per-cohort metrics; later
    cohorts are labelled ``_other`` (and counted in ``drift_cohort_overflow_total``)."""


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

    def ticket_store_path(self) -> Path | None:
        """The SQLite file of the ticket store, or None for another store."""
        prefix = "sqlite:///"
        if self.tickets.store.startswith(prefix):
            return self.resolve(self.tickets.store[len(prefix):])
        return None


# --------------------------------------------------------------------------- loading

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` with values from the environment.

    >>> expand_env("${HOST:-127.0.0.1}:9092", {})
    '127.0.0.1:9092'
    >>> expand_env("${HOST:-x}", {"HOST": "kafka"})
    'kafka'
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise KeyError(name)
            return default
        return value

    return _ENV_REF.sub(substitute, text)


def _format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str):
            out += ("." if out else "") + part
        else:  # a key YAML read as a number, a boolean or null
            out += f"[{part!r}]"
    return out


MAX_SHOWN = 120
"""Characters of a received value a message shows."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text):,} characters)"


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the union tags pydantic puts into error locations.

    A detector entry ``{psi: {...}}`` is reported by pydantic as
    ``detectors.0.psi.psi.bins`` (tag, then field); the file says ``psi`` once.
    Parametrised types also add segments like ``tuple[float, float]``.
    """
    out: list[int | str] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part in ("function-after", "lax-or-strict")):
            continue
        if out and isinstance(part, str) and part == out[-1] and part in DETECTOR_NAMES:
            continue
        out.append(part)
    return tuple(out)


def _node_at(root: yaml.Node | None, loc: tuple[int | str, ...]) -> tuple[yaml.Node | None, bool]:
    """The deepest YAML node on ``loc``; the flag says whether all of it was found."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = None
            for key, value in node.value:
                if key.value == part or (not isinstance(part, str) and isinstance(key, yaml.ScalarNode)
                                         and yaml_scalar(key.value) == part):
                    child = value
                    break
            if child is None:
                return node, False
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node, False
            node = node.value[part]
        else:
            return node, False
    return node, True


def _key_node(root: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    """The key node of the last element of ``loc`` (for unknown-key errors)."""
    parent, found = _node_at(root, loc[:-1])
    if found and isinstance(parent, yaml.MappingNode):
        for key, _ in parent.value:
            if key.value == loc[-1]:
                node: yaml.Node = key
                return node
    return None


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config model class that a (clean) location points into.

    A union (the ``detectors:`` entries) offers several models; the location's
    next key picks the one that has it.
    """
    models: list[type[BaseModel]] = [Config]
    for part in loc:
        if isinstance(part, int):
            continue
        found: list[type[BaseModel]] = []
        for model in models:
            field = model.model_fields.get(part)
            if field is not None:
                found.extend(_models_in(field.annotation))
        if not found:
            return None
        models = found
    return models[0]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every BaseModel inside an annotation such as ``list[X] | None`` or a union of entries."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = getattr(annotation, "__args__", None) or getattr(annotation, "__metadata__", None)
    origin = getattr(annotation, "__origin__", None)
    candidates = list(args or ())
    if origin is not None:
        candidates.insert(0, origin)
    out: list[type[BaseModel]] = []
    for arg in candidates:
        for model in _models_in(arg):
            if model not in out:
                out.append(model)
    return out


def _message(error: Any, loc: tuple[int | str, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = sorted(model.model_fields) if model is not None else []
        allowed = [a for a in allowed if a != "source_dir"]
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        text = f"unknown key {loc[-1]!r}"
        if hint:
            text += f" (did you mean {hint[0]!r}?)"
        if allowed:
            text += f"; valid keys: {', '.join(allowed)}"
        return text
    simple = {
        "int_type": "must be an integer",
        "float_type": "must be a number",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "list_type": "must be a list",
        "tuple_type": "must be a list of two numbers",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
    }
    if kind in simple:
        text = simple[kind]
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">",
              "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        text = f"must be {op} {bound}"
    elif kind == "literal_error":
        text = f"must be one of {ctx.get('expected')}"
    elif kind in ("too_short", "too_long"):
        text = error["msg"].replace("List should", "must").replace("Dictionary should", "must")
        text = text.replace("Tuple should", "must")
    elif kind == "value_error":
        text = str(ctx.get("error", error["msg"]))
        # A whole mapping or list as "got" would bury the message; the path names it.
        if "; got" in text or isinstance(got, (dict, list)):
            return text
        return f"{text}; got {_shown(got)}"
    else:
        text = error["msg"]
    return f"{text}; got {_shown(got)}"


def _duplicate_keys(root: yaml.Node | None, path: str) -> list[str]:
    """A key given twice in one mapping: YAML keeps the last silently, so it is an error here."""
    problems: list[str] = []
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[object] = set()
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    stack.append(value)
                    continue
                if key.value in keys:
                    mark = key.start_mark
                    problems.append(f"{path}:{mark.line + 1}:{mark.column + 1} duplicate key {key.value!r}")
                keys.add(key.value)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return sorted(problems)


# --------------------------------------------------------------------------- hostile YAML

MAX_FILE_BYTES = 4 * 1024 * 1024
"""A config file is at most 4 MiB (the demo's is 2 KiB)."""
MAX_DEPTH = 32
"""Nesting levels of the YAML; the deepest key of a real config is about 7 levels down."""
MAX_NODES = 100_000
"""YAML nodes with every alias counted as a copy of what it names."""
MAX_INT_DIGITS = 100
"""Digits of an integer literal; ``int()`` of a long one is quadratic (and Python refuses 4,300+)."""
MAX_SECRET_FILE_BYTES = 64 * 1024


class _LimitError(yaml.MarkedYAMLError):
    """Well-formed YAML that goes past a bound no config comes near."""


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that bounds nesting, node count (aliases expanded) and integer length.

    PyYAML shares one node between an anchor and its aliases, but everything after
    the loader (environment expansion, validation, messages) walks the data as a
    tree: nine levels of nine aliases are 387 million nodes there (a "billion
    laughs"). Counting each alias as the size of the node it names stops such a file
    while it is composed, after a few hundred nodes of work. Depth is bounded before
    the recursive composer reaches Python's recursion limit. ``path`` is the YAML
    path being composed, for messages.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.path: list[int | str] = []
        self._sizes: dict[int, int] = {}
        self._counts: list[int] = [0]

    def _add(self, size: int, mark: Any) -> None:
        self._counts[-1] += size
        if self._counts[-1] > MAX_NODES:
            raise _LimitError(None, None, f"the aliases expand to more than {MAX_NODES:,} nodes; a config needs "
                              "far fewer (an alias counts as a copy of what it names)", mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise _LimitError(None, None, "an alias refers to a node that contains it; YAML anchors must "
                                  "not be recursive", mark)
            self._add(size, mark)
            return node
        part: int | str | None = None
        if isinstance(parent, yaml.SequenceNode) and isinstance(index, int):
            part = index
        elif isinstance(parent, yaml.MappingNode) and isinstance(index, yaml.Node):
            part = str(index.value) if isinstance(index, yaml.ScalarNode) else "?"
        if part is not None:
            self.path.append(part)
        if len(self._counts) > MAX_DEPTH:
            raise _LimitError(None, None, f"nests deeper than {MAX_DEPTH} levels; a config needs far fewer",
                              self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self._counts.append(0)
        node = super().compose_node(parent, index)
        size = 1 + self._counts.pop()
        self._sizes[id(node)] = size
        self._add(size, node.start_mark if node is not None else None)
        if part is not None:
            self.path.pop()
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as exc:  # a timestamp 2026-02-31, ...
            raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from None

    def construct_bounded_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        digits = len(text.lstrip("+-").replace("_", ""))
        if digits > MAX_INT_DIGITS:
            raise _LimitError(None, None, f"an integer of {digits:,} digits is too long (at most {MAX_INT_DIGITS})",
                              node.start_mark)
        value: int = self.construct_yaml_int(node)
        return value


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_bounded_int)

_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{kind}" for kind in ("int", "float", "bool", "null"))


def yaml_scalar(text: str) -> object:
    """``text`` typed as YAML types a plain scalar: an int, float, bool or None, else the text itself.

    Environment values go through this, so ``${PORT}`` gives an integer port. Only a
    scalar is ever made: ``[1, 2]`` or ``{a: b}`` stays text, never YAML structure.

    >>> yaml_scalar("9464"), yaml_scalar("0.5"), yaml_scalar("true"), yaml_scalar(""), yaml_scalar("[1, 2]")
    (9464, 0.5, True, None, '[1, 2]')
    """
    loader = _BoundedLoader("")
    try:
        tag = loader.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        if tag not in _SCALAR_TAGS:
            return text
        return loader.construct_object(yaml.ScalarNode(tag, text))
    except yaml.YAMLError:
        return text
    finally:
        loader.dispose()


def _line_column(data: str | bytes, offset: int) -> tuple[int, int]:
    newline = "\n" if isinstance(data, str) else b"\n"
    line = data.count(newline, 0, offset) + 1  # type: ignore[arg-type]
    column = offset - (data.rfind(newline, 0, offset) + 1) + 1  # type: ignore[arg-type]
    return line, column


def _path_of(root: yaml.Node | None, index: int) -> tuple[int | str, ...]:
    """The YAML path of the node that starts at character ``index`` (empty when none does)."""
    stack: list[tuple[yaml.Node, tuple[int | str, ...]]] = [(root, ())] if root is not None else []
    seen: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if node.start_mark.index == index and loc:
            return loc
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, (*loc, str(key.value) if isinstance(key, yaml.ScalarNode) else "?"))
                         for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((value, (*loc, i)) for i, value in enumerate(node.value))
    return ()


def _yaml_problem(path: str, text: str, exc: yaml.YAMLError, loc: tuple[int | str, ...]) -> ConfigError:
    if isinstance(exc, yaml.reader.ReaderError):
        line, column = _line_column(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return ConfigError([f"{path}:{line}:{column} is not valid YAML: the control character #x{code:04x} is not "
                            "allowed in a YAML file"])
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
    problem = getattr(exc, "problem", None) or str(exc)
    label = _format_path(loc)
    if isinstance(exc, _LimitError):
        return ConfigError([f"{where} {label or '(top level)'}: {problem}"])
    return ConfigError([f"{where} {label + ': ' if label else ''}is not valid YAML: {problem}"])


# --------------------------------------------------------------------------- environment and secrets


def _flat_types(kinds: list[Any]) -> list[Any]:
    """The alternatives of annotations: ``Annotated`` unwrapped, unions split."""
    out: list[Any] = []
    stack = list(reversed(kinds))
    while stack:
        kind = stack.pop()
        origin = typing.get_origin(kind)
        if origin is Annotated:
            stack.append(typing.get_args(kind)[0])
        elif origin is Union or origin is _UnionType:
            stack.extend(reversed(typing.get_args(kind)))
        else:
            out.append(kind)
    return out


_UnionType = type(int | None)


def _child_types(kinds: list[Any] | None, part: int | str) -> list[Any] | None:
    """What the config accepts one step below a location that accepts ``kinds`` (None: unknown)."""
    if kinds is None:
        return None
    out: list[Any] = []
    for kind in kinds:
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(part) if isinstance(part, str) and part != "source_dir" else None
            if field is not None:
                out.append(field.annotation)
        elif origin is list and isinstance(part, int) and args:
            out.append(args[0])
        elif origin is tuple and isinstance(part, int) and args:
            if len(args) == 2 and args[1] is Ellipsis:
                out.append(args[0])
            elif part < len(args):
                out.append(args[part])
        elif origin is dict and isinstance(part, str) and len(args) == 2:
            out.append(args[1])
    return _flat_types(out) if out else None


def _takes_text(kinds: list[Any]) -> bool:
    for kind in kinds:
        if kind in (str, SecretStr, timedelta, Any):
            return True
        if typing.get_origin(kind) is Literal and any(isinstance(a, str) for a in typing.get_args(kind)):
            return True
    return False


_WHOLE_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_SECRET_HINT = ("give it as ${VAR} (from the environment) or {file: PATH} (a file holding only the secret), "
                "never as a literal in the config file")


class _Expansion:
    """``${VAR}`` references expanded, secret fields checked, errors collected with their location."""

    def __init__(self, source_dir: str, environ: typing.Mapping[str, str]) -> None:
        self.source_dir = source_dir
        self.env = environ
        self.errors: list[tuple[tuple[int | str, ...], str]] = []
        self.covered: list[tuple[int | str, ...]] = []
        """Locations whose validation errors ``errors`` already explain."""

    def tree(self, value: Any, loc: tuple[int | str, ...], kinds: list[Any] | None) -> Any:
        if kinds is not None and SecretStr in kinds:
            return self.secret(value, loc)
        if isinstance(value, str):
            return self.text(value, loc, kinds)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    # Reported here; validated under its text so nothing else trips over it.
                    self.errors.append(((*loc, key), f"a key must be text; YAML read this one as "
                                                     f"{type(key).__name__} {key!r} (quote it)"))
                    key = str(key)
                    self.covered.append((*loc, key))
                out[key] = self.tree(item, (*loc, key), _child_types(kinds, key))
            return out
        if isinstance(value, list):
            return [self.tree(v, (*loc, i), _child_types(kinds, i)) for i, v in enumerate(value)]
        return value

    def _lookup(self, match: re.Match[str], loc: tuple[int | str, ...]) -> str | None:
        name, default = match.group("name"), match.group("default")
        value = self.env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                self.errors.append((loc, f"environment variable {name} is not set and has no default"))
                return None
            value = default
        if is_sensitive_name(name):
            register_secret(value)
        return value

    def text(self, value: str, loc: tuple[int | str, ...], kinds: list[Any] | None) -> Any:
        if loc != ("tickets", "store") and has_credentials(_WHOLE_REF.sub("", value)):
            # tickets.store has its own rule: no password at all (PGPASSWORD).
            self.errors.append((loc, "holds a credential (a URL password, a password/token/key parameter or an "
                                     "authorization value) written in the config file; give the whole value as "
                                     "${VAR} so it comes from the environment"))
            return value
        whole = _WHOLE_REF.fullmatch(value)
        if whole is not None:
            found = self._lookup(whole, loc)
            if found is None:
                return value
            # A whole-value reference is typed as the same text written in the file would be,
            # unless the key takes text (a name "42" stays "42").
            return found if kinds is not None and _takes_text(kinds) else yaml_scalar(found)
        def substitute(match: re.Match[str]) -> str:
            found = self._lookup(match, loc)
            return match.group(0) if found is None else found

        return _WHOLE_REF.sub(substitute, value)

    def secret(self, value: Any, loc: tuple[int | str, ...]) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and (whole := _WHOLE_REF.fullmatch(value)) is not None:
            if whole.group("default"):
                self.errors.append((loc, "is a secret: a default would be a literal secret in the config file; "
                                         f"write ${{{whole.group('name')}}} without one"))
                return None
            found = self._lookup(whole, loc)
            if found is not None:
                register_secret(found)
            return found
        if isinstance(value, dict) and list(value) == ["file"] and isinstance(value["file"], str):
            return self.secret_file(value["file"], (*loc, "file"))
        self.errors.append((loc, f"is a secret: {_SECRET_HINT}"))
        return None

    def secret_file(self, reference: str, loc: tuple[int | str, ...]) -> str | None:
        n_errors = len(self.errors)
        name = self.text(reference, loc, [str])
        if len(self.errors) > n_errors:
            return None
        file = Path(name).expanduser()
        file = file if file.is_absolute() else Path(self.source_dir) / file
        try:
            with open(file, "rb") as handle:
                data = handle.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            self.errors.append((loc, f"cannot read the secret file {file}: {exc.strerror or exc}"))
            return None
        if len(data) > MAX_SECRET_FILE_BYTES:
            self.errors.append((loc, f"the secret file {file} is larger than {MAX_SECRET_FILE_BYTES:,} bytes"))
            return None
        try:
            secret = data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            self.errors.append((loc, f"the secret file {file} is not UTF-8 text"))
            return None
        register_secret(secret)
        return secret


# --------------------------------------------------------------------------- reference data


def _arrow_kind(kind: Any, feature: str) -> str | None:
    """Why an Arrow column type cannot hold a ``feature`` (numeric or categorical) feature, or None."""
    import pyarrow as pa

    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    if feature == "numeric":
        return None if numeric else "an integer, floating-point or boolean column"
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    ok = text or pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_dictionary(kind)
    return None if ok else "a string, integer, boolean or dictionary column"


def _schema_file_problems(config: Config) -> list[tuple[tuple[int | str, ...], str]]:
    """Each Avro schema file of ``events.schemas.files`` exists and is an Avro schema."""
    from drift.wire import FileSchemas, SchemaError

    schemas = config.events.schemas
    problems: list[tuple[tuple[int | str, ...], str]] = []
    for key, file in (schemas.files if schemas is not None else {}).items():
        try:
            FileSchemas({int(key): config.resolve(file)})
        except SchemaError as exc:
            problems.append((("events", "schemas", "files", key), str(exc).split(": ", 1)[1]))
    return problems


def _reference_problems(config: Config) -> list[tuple[tuple[int | str, ...], str]]:
    """What ``drift validate`` can know of each model's reference Parquet from its schema alone.

    The file exists and is Parquet; every feature (and every prediction column a
    ``score`` detector profiles, and the ``embedding`` field) is a column, top level
    or a field of a ``features`` struct as in :func:`connectors.reference.read_columns`,
    of a type that can hold it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    problems: list[tuple[tuple[int | str, ...], str]] = []
    for i, model in enumerate(config.models):
        if model.reference is None:
            continue
        file = config.resolve(model.reference.parquet)
        try:
            schema = pq.read_schema(file)
        except FileNotFoundError:
            problems.append((("models", i, "reference", "parquet"), f"reference file not found: {file}"))
            continue
        except (OSError, pa.ArrowException) as exc:
            problems.append((("models", i, "reference", "parquet"), f"cannot read reference Parquet {file}: {exc}"))
            continue
        columns = {field.name: field.type for field in schema}
        nested = columns.get("features")
        if nested is not None and pa.types.is_struct(nested):
            for j in range(nested.num_fields):
                columns.setdefault(nested.field(j).name, nested.field(j).type)

        def check(loc: tuple[int | str, ...], column: str, kind: str, what: str) -> None:
            found = columns.get(column)
            if found is None:
                problems.append((loc, f"{what} has no column {column!r} (top level or in a 'features' struct) in "
                                      f"the reference {file}; columns: {sorted(columns)}"))
                return
            needs = _arrow_kind(found, kind)
            if needs is not None:
                problems.append((loc, f"a {kind} {what} needs {needs} in the reference; column {column!r} of "
                                      f"{file.name} is {found}"))

        for name, spec in model.features.items():
            check(("models", i, "features", name), name, spec.type, "feature")
        for j, (detector, settings) in enumerate(model.detector_configs()):
            if isinstance(settings, ScoreConfig):
                for field, column in settings.reference_columns().items():
                    check(("models", i, "detectors", j, detector), column.column, column.type,
                          f"prediction field {field!r}")
            elif isinstance(settings, EmbeddingConfig):
                loc = ("models", i, "detectors", j, detector, "field")
                kind = columns.get(settings.field) if settings.field in schema.names else None
                if kind is None:
                    problems.append((loc, f"the reference {file} has no embedding column {settings.field!r}"))
                elif not ((pa.types.is_list(kind) or pa.types.is_large_list(kind)
                           or pa.types.is_fixed_size_list(kind))
                          and (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type))):
                    problems.append((loc, f"embedding column {settings.field!r} of {file.name} must be a "
                                          f"(fixed-size) list of numbers; got {kind}"))
    return problems


# --------------------------------------------------------------------------- parse and load


def parse_config(
    text: str, path: str = "<config>", source_dir: str = ".", *,
    check_references: bool = False, environ: typing.Mapping[str, str] | None = None,
) -> Config:
    """Validate a config given as YAML text; raise :class:`ConfigError` listing every problem.

    With ``check_references``, each model's reference Parquet is also checked
    against the features (``drift validate`` does; the stream job may run from
    stored baselines without the training data).
    """
    root: yaml.Node | None = None
    composed = False
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # reading starts here: a bad character fails now
        root = loader.get_single_node()
        composed = True
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if composed:  # constructing: find the node the error is about
            loc = _path_of(root, mark.index) if mark is not None else ()
        else:
            loc = tuple(loader.path) if loader is not None else ()
        raise _yaml_problem(path, text, exc, loc) from None
    except RecursionError:
        raise ConfigError([f"{path}: nests too deeply to be read"]) from None
    finally:
        if loader is not None:
            loader.dispose()
    duplicates = _duplicate_keys(root, path)
    if duplicates:
        raise ConfigError(duplicates)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1:1 the file must be a mapping with keys version, models, ...; got {type(data).__name__}"])

    def where(loc: tuple[int | str, ...], key: bool = False) -> str:
        node = _key_node(root, loc) if key else None
        if node is None:
            node, _ = _node_at(root, loc)
        if node is None:
            return path
        return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    expansion = _Expansion(source_dir, os.environ if environ is None else environ)
    data = expansion.tree(data, (), [Config])
    messages = [redact(f"{where(loc)} {_format_path(loc)}: {msg}") for loc, msg in expansion.errors]
    data["source_dir"] = source_dir
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        reported = [loc for loc, _ in expansion.errors] + expansion.covered
        for error in exc.errors(include_url=False):
            loc = _clean_loc(tuple(error["loc"]))
            if any(loc[:len(done)] == done for done in reported):
                continue  # the value an environment or secret error already named
            message = _message(error, loc)
            label = _format_path(loc) or "(top level)"
            messages.append(redact(f"{where(loc, key=error['type'] == 'extra_forbidden')} {label}: {message}"))
        raise ConfigError(messages) from None
    if messages:
        raise ConfigError(messages)
    if check_references:
        problems = _reference_problems(config) + _schema_file_problems(config)
        messages = [redact(f"{where(loc)} {_format_path(loc)}: {msg}") for loc, msg in problems]
        if messages:
            raise ConfigError(messages)
    return config


def load_config(path: str | Path, *, check_references: bool = False) -> Config:
    """Read and validate a config file; raise :class:`ConfigError` listing every problem."""
    file = Path(path)
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read the config file: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError([f"{file}: the config file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _line_column(raw, exc.start)
        raise ConfigError([f"{file}:{line}:{column} is not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
                           "cannot be decoded; save the file as UTF-8"]) from None
    return parse_config(text, str(file), str(file.resolve().parent), check_references=check_references)
