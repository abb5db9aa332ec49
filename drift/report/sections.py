"""The report sections drawn from the history re-read, not from the findings alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from drift.report.projection import EmbeddingProjection
from drift.report.seasonal import SeasonalSeries


@dataclass(frozen=True, slots=True)
class HistorySections:
    """The report sections drawn from the history re-read (not from the findings alone)."""

    seasonal: Sequence[SeasonalSeries] = ()
    projections: Sequence[EmbeddingProjection] = ()
    notes: Sequence[str] = ()
    """Why a section holds less than asked (no seasonal model, too few embeddings, ...)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "seasonal_baselines": [s.to_dict() for s in self.seasonal],
            "embedding_projections": [p.to_dict() for p in self.projections],
            "report_notes": list(self.notes),
        }
