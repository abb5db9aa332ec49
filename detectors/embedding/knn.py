"""k-nearest-neighbour out-of-distribution rate against the reference (faiss when available, else blocked exact search)."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import numpy.typing as npt
import scipy.stats

from drift.backend import Array, get_namespace, to_host
from detectors.embedding.arrays import DEFAULT_BLOCK, _as_matrix, _same_dim, _sq_distances, _sq_norms


def faiss_available() -> bool:
    """Whether faiss imports (``faiss-cpu`` or ``faiss-gpu-cu12``)."""
    return importlib.util.find_spec("faiss") is not None


def knn_search(
    reference: Array,
    queries: Array,
    k: int,
    *,
    use_faiss: bool | None = None,
    block: int = DEFAULT_BLOCK,
    xp: ModuleType | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The ``k`` nearest reference rows of each query row (Euclidean), nearest first.

    Parameters
    ----------
    reference, queries:
        ``(n, d)`` and ``(q, d)``, ``1 <= k <= n``.
    use_faiss:
        True: faiss ``IndexFlatL2`` (exact; on the GPU when the arrays are cupy
        arrays and faiss was built with GPU support). False: brute force in the
        array module, ``block`` query rows at a time (memory ``block·n``). None:
        faiss when it imports.

    Returns
    -------
    (distances, indices):
        ``(q, k)`` host arrays, float64 and int64. faiss computes in float32, so
        its distances agree with the brute force to float32 precision.
    """
    xp = get_namespace(reference, queries, xp=xp)
    if use_faiss is None:
        use_faiss = faiss_available()
    ref = _as_matrix(xp, reference, "reference")
    qry = _as_matrix(xp, queries, "queries")
    _same_dim(ref, qry)
    if not 1 <= k <= ref.shape[0]:
        raise ValueError(f"k must be in [1, {ref.shape[0]}] (reference rows); got {k}")
    # Distances do not change under a shift; centring keeps ‖a‖² + ‖b‖² − 2a·b
    # from cancelling in float32 (faiss) when embeddings sit far from the origin.
    centre = xp.mean(ref, axis=0)
    ref, qry = ref - centre, qry - centre
    if use_faiss:
        return _knn_faiss(xp, ref, qry, k)
    ref_sq = _sq_norms(xp, ref)
    distances, indices = [], []
    for start in range(0, qry.shape[0], block):
        part = qry[start:start + block]
        d2 = _sq_distances(xp, part, ref, _sq_norms(xp, part), ref_sq)
        nearest = xp.argpartition(d2, k - 1, axis=1)[:, :k]
        near_d2 = xp.take_along_axis(d2, nearest, axis=1)
        order = xp.argsort(near_d2, axis=1)
        distances.append(to_host(xp.sqrt(xp.take_along_axis(near_d2, order, axis=1))))
        indices.append(to_host(xp.take_along_axis(nearest, order, axis=1)))
    if not distances:
        return np.zeros((0, k)), np.zeros((0, k), dtype=np.int64)
    return np.concatenate(distances).astype(np.float64), np.concatenate(indices).astype(np.int64)


def _knn_faiss(
    xp: ModuleType, ref: Array, qry: Array, k: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    faiss = importlib.import_module("faiss")
    index = faiss.IndexFlatL2(ref.shape[1])
    if xp is not np and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        # faiss takes host arrays and copies them to its own GPU index.
        resources = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(resources, int(ref.device.id), index)
    index.add(np.ascontiguousarray(to_host(ref), dtype=np.float32))
    d2, idx = index.search(np.ascontiguousarray(to_host(qry), dtype=np.float32), k)
    return np.sqrt(np.maximum(d2, 0.0)).astype(np.float64), idx.astype(np.int64)


def knn_reference_distances(
    reference: Array, k: int, *, use_faiss: bool | None = None, xp: ModuleType | None = None,
) -> npt.NDArray[np.float64]:
    """Leave-one-out distance of each reference row to its ``k``-th nearest other row.

    Searches ``k + 1`` neighbours and drops the row itself: the self match is at
    distance 0, the smallest, so the ``(k+1)``-th smallest distance including it is
    the ``k``-th excluding it, even with duplicate rows.
    """
    distances, _ = knn_search(reference, reference, k + 1, use_faiss=use_faiss, xp=xp)
    return distances[:, k]


@dataclass(frozen=True, slots=True)
class KnnOod:
    """Result of :func:`knn_ood_test`."""

    ood_rate: float
    """Share of current rows beyond the threshold."""
    n_ood: int
    n: int
    threshold: float
    """``quantile`` of the reference's leave-one-out k-th neighbour distances."""
    expected_rate: float
    """``1 − quantile``: the share expected when nothing drifted."""
    p_value: float
    """One-sided binomial test of ``n_ood`` of ``n`` against ``expected_rate``."""
    distances: npt.NDArray[np.float64]
    """k-th neighbour distance in the reference of each current row, ``(n,)``."""


def knn_threshold(
    reference: Array, k: int = 10, quantile: float = 0.95, *,
    use_faiss: bool | None = None, xp: ModuleType | None = None,
) -> float:
    """The ``quantile`` of :func:`knn_reference_distances`: a reference-only value to store."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1); got {quantile}")
    return float(np.quantile(knn_reference_distances(reference, k, use_faiss=use_faiss, xp=xp), quantile))


def knn_ood_test(
    reference: Array,
    current: Array,
    k: int = 10,
    quantile: float = 0.95,
    *,
    threshold: float | None = None,
    use_faiss: bool | None = None,
    xp: ModuleType | None = None,
) -> KnnOod:
    r"""kNN out-of-distribution rate of ``current`` against ``reference``, with a binomial test.

    ``D_k(c)`` is the distance of a current row ``c`` to its k-th nearest reference
    row; ``τ`` is the ``quantile`` of the reference's own leave-one-out ``D_k``. With
    no drift about ``1 − quantile`` of current rows lie beyond ``τ``:

    .. math::

        \mathrm{ood\_rate} = \frac{1}{m}\#\{c : D_k(c) > \tau\},\qquad
        p = P[\mathrm{Bin}(m, 1-q) \ge m \cdot \mathrm{ood\_rate}]

    Parameters
    ----------
    reference, current:
        ``(n, d)`` and ``(m, d)``, ``k < n``, ``m >= 1``.
    k:
        Neighbour rank; 10 smooths over single near-duplicates without blurring
        small new clusters.
    quantile:
        ``q``; 0.95 makes the expected share 5%, enough for a binomial test on a few
        hundred rows.
    threshold:
        ``τ`` computed beforehand (:func:`knn_threshold`); None computes it, which is
        the ``n²`` part of the cost.

    Notes
    -----
    The test treats ``τ`` as fixed. Estimated from ``n`` reference rows, the share of
    a drift-free window beyond it varies by about ``sqrt(q(1−q)/n)``, which makes the
    test slightly liberal when the reference is not larger than the window;
    leave-one-out distances see ``n − 1`` rows where current rows see ``n``, which
    leans the other way.

    Reference: Sun, Y., Ming, Y., Zhu, X., Li, Y. (2022). Out-of-distribution
    detection with deep nearest neighbors. *ICML*.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(500, 4))
    >>> result = knn_ood_test(ref, rng.normal(size=(200, 4)) + 3.0, use_faiss=False)
    >>> result.ood_rate > 0.9 and result.p_value < 1e-6
    True
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1); got {quantile}")
    if threshold is None:
        threshold = knn_threshold(reference, k, quantile, use_faiss=use_faiss, xp=xp)
    distances, _ = knn_search(reference, current, k, use_faiss=use_faiss, xp=xp)
    kth = distances[:, k - 1]
    n = int(kth.shape[0])
    n_ood = int(np.sum(kth > threshold))
    expected = 1.0 - quantile
    p_value = float(scipy.stats.binomtest(n_ood, n, expected, alternative="greater").pvalue) if n else 1.0
    return KnnOod(
        ood_rate=n_ood / n if n else 0.0, n_ood=n_ood, n=n, threshold=float(threshold),
        expected_rate=expected, p_value=p_value, distances=kth,
    )
