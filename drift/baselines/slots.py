"""What a slot keeps besides bin counts, and which findings feed it: the detector families, the bins' fingerprint, expected shares, the embedding ring, a window's health."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Set
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Iterable, Mapping, NamedTuple

import numpy as np
import numpy.typing as npt

from detectors.quality import FEATURE_CHECKS
from drift.findings import Finding, Severity
from drift.reference import FeatureProfile, NumericProfile
from drift.summary import WindowSummary
from drift.baselines.calendar import PERIOD

if TYPE_CHECKING:
    from drift.config import BaselineConfig


BASELINE_DETECTORS = frozenset({"psi"})
"""Detectors that compare a window's feature bins with the baseline's shares: only their
findings decide whether a feature's bins may feed its slot (a null-rate alert says nothing
about whether the distribution of the values present is fit to learn from)."""

SCORE_DETECTORS = frozenset({"score.psi", "score.mean_shift", "score.label_shift"})
"""Findings that judge a prediction field's bins and moments (``feature`` is the field path)."""

RATE_CHECKS: tuple[str, ...] = FEATURE_CHECKS
"""The quality rates a slot keeps (numerator, denominator) of, in this order
(:func:`detectors.quality.rate_counts`); a window's ``quality.<check>`` finding about a
feature decides whether that rate may feed its slot."""

EMBEDDING_DETECTORS = frozenset({"embedding"})
"""Findings that judge a window's embedding sample (``feature`` is the embedding field)."""

_RANK = {Severity.OK: 0, Severity.WARN: 1, Severity.ALERT: 2}


def bins_fingerprint(profile: FeatureProfile) -> str:
    """A short hash of a feature's bins: counts are only comparable over the same bins."""
    if isinstance(profile, NumericProfile):
        key: list[Any] = ["numeric", list(profile.edges)]
    else:
        key = ["categorical", list(profile.categories)]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def _half_life_periods(config: BaselineConfig) -> float | None:
    half_life = config.half_life
    if half_life is None:
        return None
    if not isinstance(half_life, timedelta) or half_life <= timedelta(0):
        raise ValueError(f"half_life must be a positive duration or None; got {half_life!r}")
    return half_life / PERIOD[config.seasonality]


class Expected(NamedTuple):
    """What a slot's history expects: shares per bin, samples behind them, and how."""

    shares: npt.NDArray[np.float64]
    n: int
    description: str


def _ring_rng(seed: int, field_name: str, slot: int, period: int, n_seen: int) -> np.random.Generator:
    """The generator of one offer to an embedding cell: seeded from where the rows go, so a
    restarted flow or a rebuilt baseline keeps the same rows, with no generator in the state.
    SHA-256, not ``hash()`` (salted per process), as :func:`drift.summary.reservoir_rng`."""
    digest = hashlib.sha256(f"seasonal\x1f{field_name}\x1f{slot}\x1f{period}\x1f{n_seen}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


@dataclass(eq=False, slots=True)
class EmbeddingRing:
    """Per-(slot, ring cell) uniform samples of healthy windows' embedding rows.

    A cell holds at most ``rows_per_period`` rows of its slot and period (Algorithm R over
    the rows of the windows offered to it, each window's own sample), so a slot's history
    is at most ``rows_per_period * K`` rows and the state at most ``slots * (K + 1) *
    rows_per_period * dim * 4`` bytes whatever the traffic. Cells share
    :attr:`SeasonalBaseline.periods`: a cell is cleared when its ring cell moves on.
    """

    field_name: str
    dim: int
    rows_per_period: int
    min_rows: int
    """Rows a slot needs before a window is compared with it (the detector's ``min_samples``)."""
    seed: int
    n_seen: npt.NDArray[np.int64]
    """``(slots, K + 1)``: rows offered to each cell (its sample keeps at most ``rows_per_period``)."""
    rows: dict[tuple[int, int], npt.NDArray[np.float32]] = field(default_factory=dict)

    @classmethod
    def empty(
        cls, field_name: str, dim: int, rows_per_period: int, min_rows: int, seed: int, slots: int, n_periods: int,
    ) -> EmbeddingRing:
        if dim < 1 or rows_per_period < 1 or min_rows < 1:
            raise ValueError(f"need dim, rows_per_period and min_rows >= 1; got {dim}, {rows_per_period}, {min_rows}")
        return cls(field_name, dim, rows_per_period, min_rows, seed, np.zeros((slots, n_periods + 1), dtype=np.int64))

    def clear(self, slot: int, cell: int) -> None:
        self.n_seen[slot, cell] = 0
        self.rows.pop((slot, cell), None)

    def offer(self, slot: int, cell: int, period: int, new: npt.NDArray[np.float32]) -> None:
        """Add a window's rows to the cell's sample (Algorithm R, later rows win a shared place)."""
        new = np.asarray(new, dtype=np.float32)
        if new.ndim != 2 or new.shape[1] != self.dim:
            raise ValueError(f"embedding rows of {self.field_name!r} must have shape (n, {self.dim}); got {new.shape}")
        if not new.shape[0]:
            return
        held = self.rows.get((slot, cell), np.empty((0, self.dim), dtype=np.float32))
        seen, cap = int(self.n_seen[slot, cell]), self.rows_per_period
        fill = min(new.shape[0], cap - held.shape[0])
        out = np.concatenate([held, new[:fill]]) if fill > 0 else held.copy()
        rest = new[max(fill, 0):]
        if rest.shape[0]:
            first = seen + max(fill, 0)
            rng = _ring_rng(self.seed, self.field_name, slot, period, first)
            # Row i of the stream (0-based) replaces a uniform place in 0..i when that is < cap.
            place = rng.integers(0, first + np.arange(rest.shape[0]) + 1)
            kept = np.flatnonzero(place < cap)
            # The last row to land on a place is the one the sequential algorithm keeps.
            places, last = np.unique(place[kept][::-1], return_index=True)
            out[places] = rest[kept[::-1][last]]
        self.rows[(slot, cell)] = out
        self.n_seen[slot, cell] = seen + new.shape[0]

    @property
    def nbytes(self) -> int:
        return int(self.n_seen.nbytes + sum(a.nbytes for a in self.rows.values()))

    def max_nbytes(self) -> int:
        """The most bytes the ring can hold: every cell full."""
        slots, cells = self.n_seen.shape
        return int(self.n_seen.nbytes + slots * cells * self.rows_per_period * self.dim * 4)


class Health(NamedTuple):
    """What a scored window may feed, per kind of history (:func:`window_health`)."""

    features: frozenset[str]
    """Features whose bins feed their slot (PSI findings ok)."""
    predictions: frozenset[str]
    """Prediction fields whose bins and moments feed their slot (score findings ok)."""
    rates: Mapping[str, frozenset[str]]
    """Per quality check, the features whose rate feeds its slot (that check's finding ok)."""
    embeddings: frozenset[str]
    """Embedding fields whose rows feed their slot (embedding finding ok)."""


def is_healthy(
    findings: Iterable[Finding],
    detectors: frozenset[str] = BASELINE_DETECTORS,
    tolerate: Severity = Severity.OK,
) -> bool:
    """Whether every feature of a window is healthy: no judged finding of ``detectors`` above
    ``tolerate`` (skipped findings judge nothing). The rule that feeds the baseline is
    per feature (:func:`healthy_features`); this is the whole-window view.

    The default feeds only all-``ok`` windows. ``tolerate=Severity.WARN`` (feed warn too)
    lets a drift that grows by less than the alert threshold per period be absorbed;
    tests/drift/test_baselines.py shows it.
    """
    limit = _RANK[tolerate]
    return all(_RANK[f.severity] <= limit for f in findings if f.detector in detectors and f.skipped is None)


def healthy_features(
    findings: Iterable[Finding],
    features: Iterable[str],
    detectors: frozenset[str] = BASELINE_DETECTORS,
    tolerate: Severity = Severity.OK,
) -> frozenset[str]:
    """The ``features`` that may feed their slot: no judged finding of ``detectors`` about
    the feature above ``tolerate``.

    Health is per feature, so a feature that moves for outside reasons (a delay that
    follows the weather) keeps only its own slot from learning, never another feature's.
    A skipped finding (too few values) judges nothing; a finding of ``detectors`` about
    no feature in particular (``feature`` None) judges them all.

    >>> from datetime import datetime, timezone
    >>> from drift.findings import Cohort, Window
    >>> w = Window(datetime(2026, 1, 5, tzinfo=timezone.utc), datetime(2026, 1, 5, 1, tzinfo=timezone.utc))
    >>> def psi(feature: str, severity: Severity) -> Finding:
    ...     return Finding("psi", Cohort("m"), w, feature, 0.0, severity, 0.1, 0.25, 500, 500, "reference")
    >>> found = [psi("delay", Severity.ALERT), psi("amount", Severity.OK)]
    >>> sorted(healthy_features(found, ["amount", "delay", "channel"]))
    ['amount', 'channel']
    """
    limit = _RANK[tolerate]
    unhealthy: set[str] = set()
    for finding in findings:
        if finding.detector not in detectors or finding.skipped is not None or _RANK[finding.severity] <= limit:
            continue
        if finding.feature is None:
            return frozenset()
        unhealthy.add(finding.feature)
    return frozenset(features) - unhealthy


def window_health(findings: Iterable[Finding], summary: WindowSummary) -> Health:
    """What a scored window may feed, per (detector, feature) (:func:`healthy_features`):

    - a feature's bins: its PSI findings (:data:`BASELINE_DETECTORS`);
    - a prediction field's bins and moments: its ``score.*`` findings;
    - a feature's quality rate ``check``: its ``quality.<check>`` finding only (a null-rate
      spike keeps the null rate out of the slot, not the missing rate);
    - an embedding field's rows: its ``embedding`` finding.
    """
    found = list(findings)
    fields = [summary.embedding.field_name] if summary.embedding is not None else []
    return Health(
        features=healthy_features(found, summary.features),
        predictions=healthy_features(found, summary.predictions, SCORE_DETECTORS),
        rates={check: healthy_features(found, summary.features, frozenset({f"quality.{check}"}))
               for check in RATE_CHECKS},
        embeddings=healthy_features(found, fields, EMBEDDING_DETECTORS),
    )


def _as_health(healthy: bool | Set[str] | Health, summary: WindowSummary) -> Health:
    if isinstance(healthy, Health):
        return healthy
    everything = frozenset(summary.features)
    if isinstance(healthy, bool):
        features = everything if healthy else frozenset()
        others = healthy
    else:
        features, others = frozenset(healthy), True
    fields = [summary.embedding.field_name] if summary.embedding is not None else []
    return Health(
        features=features,
        predictions=frozenset(summary.predictions) if others else frozenset(),
        rates={check: features for check in RATE_CHECKS},
        embeddings=frozenset(fields) if others else frozenset(),
    )
