"""Embedding-space drift: MMD² permutation test, kNN out-of-distribution rate,
centroid shift and per-component KS on the reference's principal components.

Every statistic is a pure function of arrays that takes its array module from its
inputs (:func:`drift.backend.get_namespace`), so the same code runs on numpy (CPU)
and cupy (GPU). Random draws come from a numpy ``Generator`` passed in and are made
on the host, so a seed gives the same permutations on either device. Results go to
host memory once, as floats or small numpy arrays.

The package: :mod:`~detectors.embedding.mmd` (MMD² and its permutation test),
:mod:`~detectors.embedding.knn` (kNN out-of-distribution rate), :mod:`~detectors.embedding.shift`
(centroid shift, principal-component KS), :mod:`~detectors.embedding.detector` (config and
detector), on the array helpers of :mod:`~detectors.embedding.arrays`.
"""

from __future__ import annotations

from detectors.embedding.arrays import (
    DEFAULT_BLOCK,
    DEFAULT_PERM_BLOCK,
    PROJECTION_COMPONENTS,
)
from detectors.embedding.mmd import (
    median_heuristic,
    mmd2_permutations,
    mmd2_unbiased,
    mmd_permutation_test,
    permutation_indices,
)
from detectors.embedding.knn import (
    KnnOod,
    faiss_available,
    knn_ood_test,
    knn_reference_distances,
    knn_search,
    knn_threshold,
)
from detectors.embedding.shift import (
    CentroidShift,
    ComponentShift,
    Components,
    centroid_permutation_test,
    centroid_shift,
    principal_components,
    projection_ks,
)
from detectors.embedding.detector import (
    EmbeddingConfig,
    EmbeddingDetector,
    EmbeddingReference,
    N_FARTHEST,
    N_MOVED_COMPONENTS,
    severity_of_p,
    window_rng,
)

__all__ = [
    "CentroidShift",
    "ComponentShift",
    "Components",
    "DEFAULT_BLOCK",
    "DEFAULT_PERM_BLOCK",
    "EmbeddingConfig",
    "EmbeddingDetector",
    "EmbeddingReference",
    "KnnOod",
    "N_FARTHEST",
    "N_MOVED_COMPONENTS",
    "PROJECTION_COMPONENTS",
    "centroid_permutation_test",
    "centroid_shift",
    "faiss_available",
    "knn_ood_test",
    "knn_reference_distances",
    "knn_search",
    "knn_threshold",
    "median_heuristic",
    "mmd2_permutations",
    "mmd2_unbiased",
    "mmd_permutation_test",
    "permutation_indices",
    "principal_components",
    "projection_ks",
    "severity_of_p",
    "window_rng",
]
