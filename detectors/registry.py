"""Detectors by YAML name: ``psi:`` builds :class:`detectors.psi.PsiDetector`, ``quality:``
:class:`detectors.quality.QualityDetector`."""

from __future__ import annotations

from typing import Callable

from pydantic import BaseModel

from detectors.base import Detector
from detectors.psi import PsiConfig, PsiDetector
from detectors.quality import QualityConfig, QualityDetector

REGISTRY: dict[str, tuple[type[BaseModel], Callable[[BaseModel], Detector]]] = {
    "psi": (PsiConfig, lambda config: PsiDetector(config)),  # type: ignore[arg-type]
    "quality": (QualityConfig, lambda config: QualityDetector(config)),  # type: ignore[arg-type]
}


def build(name: str, config: BaseModel) -> Detector:
    """The detector registered under ``name``; an unknown name lists the valid ones."""
    try:
        _, factory = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown detector {name!r}; valid: {', '.join(sorted(REGISTRY))}") from None
    return factory(config)
