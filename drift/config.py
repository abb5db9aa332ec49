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
import os
import re
from datetime import timedelta
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
    field_validator,
    model_validator,
)

from detectors.embedding import EmbeddingConfig
from detectors.freshness import FreshnessConfig
from detectors.psi import PsiConfig
from detectors.quality import QualityConfig
from detectors.score import ScoreConfig
from detectors.skew import SkewConfig
from drift.duration import format_duration, parse_duration
from drift.errors import ConfigError
from drift.reference import PredictionColumn
from drift.summary import EmbeddingSampling


def _to_timedelta(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        return value
    raise ValueError(f"must be a duration like '30s', '5m', '1h', '2d' or '4w'; got {value!r}")


def _exact_int(value: object) -> object:
    # Literal[1] matches by equality, so true and 1.0 would pass without this.
    if type(value) is not int:
        raise ValueError(f"must be the integer 1; got {value!r}")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(format_duration, return_type=str),
]
"""A duration written as ``30s``, ``5m``, ``1h``, ``2d`` or ``4w``."""


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


class EventsConfig(Strict):
    """Rules that decide whether an event can be used at all."""

    max_future: Duration = timedelta(minutes=10)
    """An event stamped further than this after the wall clock goes to the DLQ."""


class FeatureSpec(Strict):
    """One feature of a model's input."""

    type: Literal["numeric", "categorical"]
    # YAML has no tuples: a two-element list is the natural spelling.
    range: tuple[float, float] | None = Field(default=None, strict=False)
    min: float | None = None
    max: float | None = None

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


class BaselineConfig(Strict):
    """How the expected distribution is chosen for a window."""

    seasonality: Literal["none", "hour_of_day", "day_of_week", "hour_of_week"] = "none"
    history: Duration = timedelta(weeks=4)
    """How far back the same slot is pooled: ``4w`` with ``hour_of_week`` is 4 periods."""
    min_samples: int = Field(default=500, ge=1)
    """Below this many values in a slot's history the training reference is used instead."""
    half_life: Duration | None = None
    """Exponential decay of older periods (None: all periods weigh the same)."""

    @model_validator(mode="after")
    def _history_covers_a_period(self) -> BaselineConfig:
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
    """Events wait here until the receiver accepts them (relative to the config file)."""
    timeout: Duration = timedelta(seconds=10)
    max_attempts: int = Field(default=5, ge=1)
    backoff: Duration = timedelta(seconds=1)
    """First retry delay; it doubles on each attempt."""


class TicketsConfig(Strict):
    """The ticket store and where ticket events go."""

    store: str = "sqlite:///./drift-tickets.db"
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
            if "@" in netloc and ":" in netloc.rsplit("@", 1)[0]:
                raise ValueError(
                    "must not contain a password; got a URL with 'user:password@' "
                    "(give the password in the PGPASSWORD environment variable)"
                )
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


def _format_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


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
                if key.value == part:
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
        return f"{text}; got {got!r}"
    else:
        text = error["msg"]
    return f"{text}; got {got!r}"


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
                if key.value in keys:
                    mark = key.start_mark
                    problems.append(f"{path}:{mark.line + 1}:{mark.column + 1} duplicate key {key.value!r}")
                keys.add(key.value)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return sorted(problems)


def _yaml_problem(path: str, exc: yaml.YAMLError) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
    problem = getattr(exc, "problem", None) or str(exc)
    return ConfigError([f"{where} is not valid YAML: {problem}"])


def _expand_tree(
    value: Any, loc: tuple[int | str, ...], errors: list[tuple[tuple[int | str, ...], str]]
) -> Any:
    if isinstance(value, str):
        try:
            return expand_env(value)
        except KeyError as missing:
            errors.append((loc, f"environment variable {missing.args[0]} is not set and has no default"))
            return value
    if isinstance(value, dict):
        return {k: _expand_tree(v, (*loc, k), errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_tree(v, (*loc, i), errors) for i, v in enumerate(value)]
    return value


def parse_config(text: str, path: str = "<config>", source_dir: str = ".") -> Config:
    """Validate a config given as YAML text; raise :class:`ConfigError` listing every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _yaml_problem(path, exc) from None
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

    env_errors: list[tuple[tuple[int | str, ...], str]] = []
    try:
        data = _expand_tree(data, (), env_errors)
    except RecursionError:
        raise ConfigError([f"{path}: an alias refers to itself; YAML anchors must not be recursive"]) from None
    messages = [f"{where(loc)} {_format_path(loc)}: {msg}" for loc, msg in env_errors]
    if messages:
        raise ConfigError(messages)
    data["source_dir"] = source_dir
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = _clean_loc(tuple(error["loc"]))
            text = _message(error, loc)
            label = _format_path(loc) or "(top level)"
            messages.append(f"{where(loc, key=error['type'] == 'extra_forbidden')} {label}: {text}")
        raise ConfigError(messages) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raise :class:`ConfigError` listing every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read the config file: {exc.strerror or exc}"]) from None
    return parse_config(text, str(file), str(file.resolve().parent))
