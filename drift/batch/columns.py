"""What the batch decoder needs of one model: its cohort labels, numeric and categorical
features, profiled prediction fields, and whether its rows are decoded column-wise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from drift.reference import NumericProfile, ReferenceProfile


@dataclass(frozen=True, slots=True)
class ModelColumns:
    """What the batch decoder needs of one model."""

    name: str
    cohort: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    predictions: tuple[tuple[str, bool], ...]
    """``(name under prediction, numeric)`` of each profiled prediction field."""
    columnar: bool
    """Whether its clean rows are decoded column-wise (no embedding, value skew or freshness)."""
    per_event: bool
    """Whether its decoded events also feed the per-event stream (value skew, freshness)."""


def model_columns(
    name: str, cohort: Sequence[str], profile: ReferenceProfile, *, per_event: bool, embeddings: bool,
) -> ModelColumns:
    """The decoder's view of one model and its reference profile."""
    numeric = tuple(f for f, p in profile.features.items() if isinstance(p, NumericProfile))
    categorical = tuple(f for f, p in profile.features.items() if not isinstance(p, NumericProfile))
    predictions = []
    flat = True
    for path, p in profile.predictions.items():
        parts = path.split(".")
        if len(parts) != 2 or parts[0] != "prediction":
            flat = False
            continue
        predictions.append((parts[1], isinstance(p, NumericProfile)))
    return ModelColumns(
        name, tuple(cohort), numeric, categorical, tuple(predictions),
        columnar=flat and not per_event and not embeddings, per_event=per_event,
    )
