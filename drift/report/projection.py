"""Embedding findings on a plane: the reference's and a window's embeddings projected on
the reference's first two principal components."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from drift.findings import Finding
from drift.report.analysis import worst_per_series

PROJECTION_FINDINGS = 3
"""Embedding findings whose reference vs current projection the report draws."""

PROJECTION_POINTS = 2000
"""Rows of each set (reference, current) projected and drawn at most; more are subsampled."""

PROJECTION_SEED = 0


def is_embedding_finding(finding: Finding) -> bool:
    """Whether ``finding`` comes from the ``embedding`` detector (or a sub-check of it)."""
    return finding.detector == "embedding" or finding.detector.startswith("embedding.")


def top_embedding_findings(findings: Sequence[Finding], n: int = PROJECTION_FINDINGS) -> list[Finding]:
    """The worst window of each alerting (else warning) embedding series, worst first."""
    return worst_per_series(findings, is_embedding_finding, n)


@dataclass(frozen=True, slots=True)
class Projection:
    """Two samples on the first two principal components of the first (the reference)."""

    reference: npt.NDArray[np.float64]
    """``(n, 2)``: the reference rows' coordinates (centred: their mean is 0)."""
    current: npt.NDArray[np.float64]
    """``(m, 2)``"""
    components: npt.NDArray[np.float64]
    """``(2, d)``: orthonormal rows; each one's largest entry (in magnitude) is positive."""
    explained_variance_ratio: tuple[float, float]
    """Share of the reference sample's total variance along each component."""


def pca_projection(reference: npt.ArrayLike, current: npt.ArrayLike) -> Projection:
    """Project both samples on the reference's first two principal components.

    The components are those of :func:`detectors.embedding.principal_components` (SVD
    of the centred reference rows, as the embedding detector computes its projection
    evidence), with the sign made deterministic (the largest loading positive). A
    one-dimensional input gets a zero second coordinate.
    """
    from detectors.embedding import principal_components  # detectors import drift: import late

    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.ndim != 2 or cur.ndim != 2 or ref.shape[1] != cur.shape[1]:
        raise ValueError(f"reference and current must be (n, d) and (m, d); got {ref.shape} and {cur.shape}")
    fitted = principal_components(ref, n_components=2)
    vectors = np.zeros((2, ref.shape[1]), dtype=np.float64)
    ratio = np.zeros(2, dtype=np.float64)
    k = fitted.vectors.shape[0]
    vectors[:k] = fitted.vectors
    ratio[:k] = fitted.explained_variance_ratio
    for row in vectors[:k]:
        if row[int(np.argmax(np.abs(row)))] < 0:
            row *= -1
    return Projection(
        reference=(ref - fitted.mean) @ vectors.T, current=(cur - fitted.mean) @ vectors.T,
        components=vectors, explained_variance_ratio=(float(ratio[0]), float(ratio[1])),
    )


def subsample(rows: npt.NDArray[Any], n: int, rng: np.random.Generator) -> npt.NDArray[Any]:
    """At most ``n`` of ``rows``, drawn uniformly without replacement, in their order."""
    if rows.shape[0] <= n:
        return rows
    return rows[np.sort(rng.choice(rows.shape[0], size=n, replace=False))]


@dataclass(frozen=True, slots=True)
class EmbeddingProjection:
    """An embedding finding's window: reference vs current embeddings in the reference's PCA plane."""

    finding: Finding
    projection: Projection
    n_reference_total: int
    n_current_total: int
    """Embeddings of the cohort window in the history (the plotted ones are a sample)."""

    def to_dict(self) -> dict[str, Any]:
        """A summary of the coordinates (not every point): centroid and spread of each set."""
        f, p = self.finding, self.projection

        def described(xy: npt.NDArray[np.float64], total: int) -> dict[str, Any]:
            return {
                "n": int(xy.shape[0]), "n_total": total,
                "centroid": [float(v) for v in xy.mean(axis=0)] if xy.shape[0] else None,
                "std": [float(v) for v in xy.std(axis=0)] if xy.shape[0] else None,
            }

        reference = described(p.reference, self.n_reference_total)
        current = described(p.current, self.n_current_total)
        distance = (math.dist(reference["centroid"], current["centroid"])
                    if reference["centroid"] is not None and current["centroid"] is not None else None)
        return {
            "cohort_key": f.cohort.key, "model": f.cohort.model, "detector": f.detector, "field": f.feature,
            "window_start": f.window.start.isoformat(), "window_end": f.window.end.isoformat(),
            "severity": f.severity.value, "value": f.value, "p_value": f.evidence.get("p_value"),
            "explained_variance_ratio": list(p.explained_variance_ratio),
            "reference": reference, "current": current, "centroid_distance": distance,
        }


def project_embeddings(
    finding: Finding, reference: npt.ArrayLike, current: npt.ArrayLike, *, n_current_total: int | None = None,
    max_points: int = PROJECTION_POINTS, seed: int = PROJECTION_SEED,
) -> EmbeddingProjection:
    """``finding``'s window on the reference's PCA plane; each set subsampled to ``max_points``
    (seeded), the PCA fitted on the reference sample that is drawn."""
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2; got {max_points}")
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[0] < 2:
        raise ValueError(f"need at least 2 reference embeddings; got shape {ref.shape}")
    if cur.ndim != 2 or cur.shape[0] < 1:
        raise ValueError(f"need at least 1 current embedding; got shape {cur.shape}")
    rng = np.random.default_rng(seed)
    ref_sample = subsample(ref, max_points, rng)
    cur_sample = subsample(cur, max_points, rng)
    return EmbeddingProjection(
        finding=finding, projection=pca_projection(ref_sample, cur_sample), n_reference_total=int(ref.shape[0]),
        n_current_total=int(cur.shape[0]) if n_current_total is None else n_current_total,
    )

