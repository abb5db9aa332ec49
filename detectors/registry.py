"""Detectors by YAML name.

Window detectors (:class:`detectors.base.Detector`): ``psi:`` builds
:class:`detectors.psi.PsiDetector`, ``quality:`` :class:`detectors.quality.QualityDetector`,
``score:`` :class:`detectors.score.ScoreDetector`, ``skew:`` :class:`detectors.skew.SkewDetector`
(which also scores value skew), ``embedding:`` :class:`detectors.embedding.EmbeddingDetector`
(bound to its reference embeddings by the flow at start: ``EmbeddingDetector.bind``).
``freshness:`` builds :class:`detectors.freshness.FreshnessDetector`, scored on feature
events (flows/freshness.py), with :func:`build_freshness`.
"""

from __future__ import annotations

from typing import Callable

from pydantic import BaseModel

from detectors.base import Detector
from detectors.embedding import EmbeddingConfig, EmbeddingDetector
from detectors.freshness import FreshnessConfig, FreshnessDetector
from detectors.psi import PsiConfig, PsiDetector
from detectors.quality import QualityConfig, QualityDetector
from detectors.score import ScoreConfig, ScoreDetector
from detectors.skew import SkewConfig, SkewDetector

REGISTRY: dict[str, tuple[type[BaseModel], Callable[[BaseModel], Detector]]] = {
    "psi": (PsiConfig, lambda config: PsiDetector(config)),  # type: ignore[arg-type]
    "quality": (QualityConfig, lambda config: QualityDetector(config)),  # type: ignore[arg-type]
    "score": (ScoreConfig, lambda config: ScoreDetector(config)),  # type: ignore[arg-type]
    "skew": (SkewConfig, lambda config: SkewDetector(config)),  # type: ignore[arg-type]
    "embedding": (EmbeddingConfig, lambda config: EmbeddingDetector(config)),  # type: ignore[arg-type]
}
"""The window detectors: YAML name -> (config model, factory)."""

FRESHNESS = "freshness"


def build(name: str, config: BaseModel) -> Detector:
    """The window detector registered under ``name``; an unknown name lists the valid ones."""
    if name == FRESHNESS:
        raise KeyError(f"{FRESHNESS!r} is scored on feature events, not on cohort windows: use build_freshness")
    try:
        _, factory = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown detector {name!r}; valid: {', '.join(sorted([*REGISTRY, FRESHNESS]))}") from None
    return factory(config)


def build_freshness(config: BaseModel) -> FreshnessDetector:
    """The freshness detector of a ``freshness:`` entry."""
    if not isinstance(config, FreshnessConfig):
        raise TypeError(f"a freshness detector needs a FreshnessConfig; got {type(config).__name__}")
    return FreshnessDetector(config)
