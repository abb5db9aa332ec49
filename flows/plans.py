"""What the flow builds for each model: its config, reference profile and detectors.

Kept apart from :mod:`flows.pipeline` so the per-model steps (value skew, freshness)
and the pipeline that wires them all read the plans from one place below both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors.base import Detector
from detectors.embedding import EmbeddingDetector
from detectors.freshness import FreshnessDetector
from detectors.registry import FRESHNESS, build_freshness
from detectors.registry import build as build_detector
from drift.config import Config, ModelConfig
from drift.errors import BaselineError, ReferenceDataError
from drift.events import InferenceEvent
from drift.findings import Cohort
from drift.reference import ReferenceProfile


@dataclass
class ModelPlan:
    """What the flow needs for one model: its config, reference and detectors."""

    config: ModelConfig
    profile: ReferenceProfile
    detectors: list[Detector] = field(default_factory=list)
    """Window detectors, scored on each closed cohort window."""
    freshness: list[FreshnessDetector] = field(default_factory=list)
    """Freshness detectors, scored on feature events (flows/freshness.py)."""


def plan_models(config: Config, profiles: dict[str, ReferenceProfile]) -> list[ModelPlan]:
    """Build every model's detectors; ``embedding`` detectors are bound to their reference here.

    The reference embeddings (``ReferenceProfile.embeddings``, loaded by
    ``flows.runner.load_profiles``) are prepared once per model, at flow start, and
    kept in the plan: the flow's snapshots hold only window state.
    """
    plans = []
    for model in config.models:
        profile = profiles[model.name]
        plan = ModelPlan(model, profile)
        for name, settings in model.detector_configs():
            if name == FRESHNESS:
                plan.freshness.append(build_freshness(settings))
                continue
            detector = build_detector(name, settings)
            if isinstance(detector, EmbeddingDetector):
                detector = _bind_embedding(detector, model, profile)
            plan.detectors.append(detector)
        plans.append(plan)
    return plans


def _bind_embedding(detector: EmbeddingDetector, model: ModelConfig, profile: ReferenceProfile) -> EmbeddingDetector:
    field_name = detector.config.field
    rows = profile.embeddings.get(field_name)
    if rows is None:
        raise BaselineError(
            f"model {model.name!r} has an embedding detector on {field_name!r} but no reference embeddings "
            f"were loaded; give the model a reference Parquet file with a {field_name!r} column"
        )
    try:
        return detector.bind(rows)
    except ValueError as exc:
        raise ReferenceDataError(f"reference embeddings of {model.name!r} ({field_name}): {exc}") from None


def cohort_of(event: InferenceEvent, labels: list[str]) -> Cohort:
    return Cohort(event.model, tuple((label, event.label(label) or "-") for label in labels))
