"""What a window is compared with when its model has a seasonal baseline.

:func:`drift.baselines.baseline_profile` builds a :class:`SeasonalProfile` for each window
from its cohort's slot history; the detectors read it like any
:class:`~drift.reference.ReferenceProfile` (same bins, the slot's shares), and the
``quality`` and ``embedding`` detectors also read the slot's rates and rows from it. It
lives with the detectors, the lowest layer that reads it, so they never import the
baselines service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from drift.reference import ReferenceProfile


class SlotRate(NamedTuple):
    """What a slot's history says about one quality rate of a feature.

    ``rate`` is the decay-weighted ``sum k / sum n`` of the previous periods, or None when
    their ``n`` (raw, undecayed) is below ``min_samples``: the detector then falls back to
    the reference's rate, and ``description`` says why.
    """

    rate: float | None
    k: int
    """Offending values behind ``rate`` (``round(rate * n)``, so decay is kept)."""
    n: int
    description: str



@dataclass(frozen=True, slots=True)
class SeasonalProfile(ReferenceProfile):
    """A :class:`~drift.reference.ReferenceProfile` for one window's seasonal slot.

    Feature and prediction shares (and ``n``, and a numeric prediction's mean and std) are
    the slot's where it has ``min_samples`` values; ``baselines`` names, per feature,
    prediction field and embedding field, what it is compared with. Quality rates and
    embedding rows, which a profile has no place for, come in :attr:`rates` and
    :attr:`slot_embeddings`; :attr:`reference` is the training profile behind it all.
    """

    reference: ReferenceProfile | None = None
    seasonal: frozenset[str] = frozenset()
    """Features, prediction fields and embedding fields compared with the slot's history."""
    rates: Mapping[tuple[str, str], SlotRate] = field(default_factory=dict)
    """``(feature, check)`` -> the slot's rate (or why there is none), for every rate kept."""
    slot_embeddings: Mapping[str, npt.NDArray[np.float32]] = field(default_factory=dict, compare=False, repr=False)
    """Embedding field -> the slot's rows ``(n, dim)`` float32, where it holds ``min_rows``."""


