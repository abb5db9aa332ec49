"""``models:``: one monitored model: its features, windows, reference, impact, detectors
(a discriminated union on the detector name) and policy.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from detectors.canary import CanaryConfig
from detectors.embedding import EmbeddingConfig
from detectors.freshness import FreshnessConfig
from detectors.psi import PsiConfig
from detectors.quality import QualityConfig
from detectors.score import ScoreConfig
from detectors.skew import SkewConfig
from drift.config.base import Strict
from drift.config.baseline import BaselineConfig
from drift.config.labels import LabelsConfig
from drift.duration import Duration, format_duration
from drift.labels.slo import SloConfig, check_slos
from drift.reference import PredictionColumn
from drift.summary import EmbeddingSampling


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
    rollups: list[list[str]] = Field(default_factory=list)
    """Cohorts summed over the labels a rollup leaves out, scored as cohorts of their own:
    ``[model]`` is the whole model, ``[tenant]`` each tenant over its other labels."""
    labels: LabelsConfig | None = None
    """Delayed ground truth: predictions joined to their labels, quality per cohort window (docs/labels.md)."""
    slo: list[SloConfig] = Field(default_factory=list)
    """Quality objectives judged on the labels (docs/slo.md); the model needs ``labels:``."""
    canary: CanaryConfig | None = None
    """Champion–challenger comparison of the routes of each cohort (docs/canary.md)."""

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
    def _rollups_within_cohort(self) -> ModelConfig:
        if self.rollups and not self.cohort:
            raise ValueError("rollups need cohort labels: a model without them has one cohort, the whole model")
        seen: set[tuple[str, ...]] = set()
        for i, rollup in enumerate(self.rollups):
            kept = self.rollup_labels(rollup)
            unknown = [label for label in kept if label not in self.cohort]
            if "model" in rollup and len(rollup) > 1:
                raise ValueError(f"rollups[{i}]: [model] is the whole model and takes no other label; got {rollup}")
            if unknown:
                raise ValueError(
                    f"rollups[{i}] names {unknown}, which are not cohort labels of the model; "
                    f"a rollup keeps some of {self.cohort} (or [model] for the whole model)"
                )
            if len(set(kept)) != len(kept):
                raise ValueError(f"rollups[{i}]: labels must be distinct; got {rollup}")
            if set(kept) == set(self.cohort):
                raise ValueError(f"rollups[{i}] keeps every cohort label {rollup}: it would be the cohorts themselves")
            key = tuple(sorted(kept))
            if key in seen:
                raise ValueError(f"rollups[{i}] repeats an earlier rollup: {rollup}")
            seen.add(key)
        return self

    @model_validator(mode="after")
    def _canary_label_and_fields(self) -> ModelConfig:
        canary = self.canary
        if canary is None:
            return self
        if canary.label not in self.cohort:
            raise ValueError(
                f"canary.label {canary.label!r} must be one of the model's cohort labels, which carry the route; "
                f"cohort: {self.cohort} (add {canary.label!r} to cohort)"
            )
        if isinstance(canary.fields, list):
            known = [*self.features, *self.prediction_columns()]
            unknown = [name for name in canary.fields if name not in known]
            if unknown:
                raise ValueError(
                    f"canary.fields names fields that are neither features nor profiled prediction fields: "
                    f"{unknown}; known: {known} (a prediction field is profiled by a score detector)"
                )
        if canary.quality is not None:
            if self.labels is None:
                raise ValueError("canary.quality compares the routes' accuracy on their labels: the model needs labels:")
            if self.labels.kind == "regression":
                raise ValueError("canary.quality compares accuracy, which a regression model does not have "
                                 "(labels.kind is regression)")
        return self

    @model_validator(mode="after")
    def _labels_and_slos(self) -> ModelConfig:
        labels = self.labels
        if labels is not None and labels.join_key != "event_id":
            spec = self.features.get(labels.join_key)
            if spec is None or spec.type != "categorical":
                raise ValueError(
                    f"labels.join_key must be event_id or a categorical feature of the model; got "
                    f"{labels.join_key!r} (categorical features: "
                    f"{sorted(n for n, f in self.features.items() if f.type == 'categorical')})"
                )
        if self.slo:
            if labels is None:
                raise ValueError("slo needs labels: (the quality an SLO judges is measured on the model's labels)")
            check_slos(labels.kind, self.slo, self.window.size, self.cohort)
        return self

    @staticmethod
    def rollup_labels(rollup: list[str]) -> list[str]:
        """The cohort labels a rollup keeps (none for ``[model]``)."""
        return [label for label in rollup if label != "model"]

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
