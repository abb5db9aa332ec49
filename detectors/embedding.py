"""Embedding-space drift: MMD² permutation test, kNN out-of-distribution rate,
centroid shift and per-component KS on the reference's principal components.

Every statistic is a pure function of arrays that takes its array module from its
inputs (:func:`drift.backend.get_namespace`), so the same code runs on numpy (CPU)
and cupy (GPU). Random draws come from a numpy ``Generator`` passed in and are made
on the host, so a seed gives the same permutations on either device. Results go to
host memory once, as floats or small numpy arrays.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.stats
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detectors.seasonal_profile import SeasonalProfile
from drift.backend import Array, get_namespace, resolve_device, to_host
from drift.countermeasures import suggest
from drift.events import EVENT_FIELDS
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import ReferenceProfile
from drift.summary import WindowSummary

DEFAULT_BLOCK = 512
"""Rows of the kernel matrix (or query rows for kNN) computed at a time."""
DEFAULT_PERM_BLOCK = 1024
"""Permutations multiplied at a time."""
PROJECTION_COMPONENTS = 10
"""Principal components of the reference tested per window."""
N_MOVED_COMPONENTS = 3
N_FARTHEST = 5


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _as_matrix(xp: ModuleType, a: Array, name: str, dtype: Any = None) -> Array:
    out = xp.asarray(a, dtype=xp.float64 if dtype is None else dtype)
    if out.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples × dim); got shape {tuple(out.shape)}")
    return out


def _same_dim(x: Array, y: Array) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"samples must have one dimension; got {x.shape[1]} and {y.shape[1]}")


def _sq_norms(xp: ModuleType, a: Array) -> Array:
    return xp.sum(a * a, axis=1)


def _sq_distances(xp: ModuleType, a: Array, b: Array, a_sq: Array, b_sq: Array) -> Array:
    """``‖a_i − b_j‖²`` through one matrix product, clipped at 0 (rounding can go below)."""
    d2 = a @ b.T
    d2 *= -2.0
    d2 += a_sq[:, None]
    d2 += b_sq[None, :]
    return xp.maximum(d2, 0.0, out=d2)


def _rbf_from_sq(xp: ModuleType, d2: Array, bandwidth: float) -> Array:
    """``exp(−d² / (2 h²))`` in place."""
    d2 *= -1.0 / (2.0 * bandwidth * bandwidth)
    return xp.exp(d2, out=d2)


# --------------------------------------------------------------------------
# MMD²
# --------------------------------------------------------------------------


def mmd2_unbiased(x: Array, y: Array, bandwidth: float, *, xp: ModuleType | None = None) -> float:
    r"""Unbiased squared maximum mean discrepancy with an RBF kernel.

    .. math::

        k(a, b) = \exp\!\left(-\frac{\lVert a - b\rVert^2}{2h^2}\right)

        \widehat{\mathrm{MMD}}^2_u = \frac{1}{n(n-1)}\sum_{i \ne j} k(x_i, x_j)
            + \frac{1}{m(m-1)}\sum_{i \ne j} k(y_i, y_j)
            - \frac{2}{nm}\sum_{i, j} k(x_i, y_j)

    Parameters
    ----------
    x, y:
        ``(n, d)`` and ``(m, d)`` samples, ``n, m >= 2``; numpy or cupy, any real
        dtype (computed in float64).
    bandwidth:
        ``h > 0``, e.g. :func:`median_heuristic` of the reference.

    Returns
    -------
    float
        An unbiased estimate of MMD², so it can be slightly negative when both
        samples come from one distribution; symmetric in ``x`` and ``y``.

    Notes
    -----
    Memory is ``(n + m)²`` floats (three kernel matrices); use
    :func:`mmd_permutation_test` for large samples, which computes the same value
    in row blocks.

    References
    ----------
    Gretton, A., Borgwardt, K., Rasch, M., Schölkopf, B., Smola, A. (2012). A kernel
    two-sample test. *JMLR* 13, 723–773 (Lemma 6).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0]])
    >>> round(mmd2_unbiased(x, x + 10.0, bandwidth=1.0), 6)   # 2 k(0, 1) = 2 e^{-1/2}
    1.213061
    """
    xp = get_namespace(x, y, xp=xp)
    x = _as_matrix(xp, x, "x")
    y = _as_matrix(xp, y, "y")
    _same_dim(x, y)
    n, m = int(x.shape[0]), int(y.shape[0])
    if n < 2 or m < 2:
        raise ValueError(f"each sample needs at least 2 rows; got {n} and {m}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0; got {bandwidth!r}")
    x_sq, y_sq = _sq_norms(xp, x), _sq_norms(xp, y)
    k_xx = float(xp.sum(_rbf_from_sq(xp, _self_sq_distances(xp, x, x_sq), bandwidth))) - n
    k_yy = float(xp.sum(_rbf_from_sq(xp, _self_sq_distances(xp, y, y_sq), bandwidth))) - m
    k_xy = float(xp.sum(_rbf_from_sq(xp, _sq_distances(xp, x, y, x_sq, y_sq), bandwidth)))
    return k_xx / (n * (n - 1)) + k_yy / (m * (m - 1)) - 2.0 * k_xy / (n * m)


def _self_sq_distances(xp: ModuleType, a: Array, a_sq: Array) -> Array:
    """Squared distances within ``a`` with the diagonal exactly 0, so ``k(a_i, a_i) = 1``
    as the formulas assume (``‖a‖² + ‖a‖² − 2a·a`` rounds to a few ulps, not 0)."""
    d2 = _sq_distances(xp, a, a, a_sq, a_sq)
    diagonal = xp.arange(a.shape[0])
    d2[diagonal, diagonal] = 0.0
    return d2


def median_heuristic(
    reference: Array,
    max_points: int = 2000,
    rng: np.random.Generator | None = None,
    *,
    xp: ModuleType | None = None,
) -> float:
    """RBF bandwidth ``h``: the median Euclidean distance between reference rows.

    Parameters
    ----------
    reference:
        ``(n, d)``, ``n >= 2``.
    max_points:
        Pairs among at most this many rows are used (``max_points²/2`` distances):
        the median settles long before that, and memory stays ``max_points²``.
    rng:
        Picks the rows when ``n > max_points``; without it, evenly spaced rows.

    Returns
    -------
    float
        The median over distinct pairs. When more than half the pairs are identical
        (median 0) the mean of the non-zero distances is used, and 1.0 when every
        row is the same, so the kernel stays defined.

    Reference: Gretton et al. (2012), section 8; Garreau, D., Jitkrittum, W.,
    Kanagawa, M. (2017). Large sample analysis of the median heuristic. arXiv:1707.07269.

    Examples
    --------
    >>> import numpy as np
    >>> median_heuristic(np.array([[0.0], [1.0], [3.0]]))   # distances 1, 2, 3
    2.0
    """
    xp = get_namespace(reference, xp=xp)
    ref = _as_matrix(xp, reference, "reference")
    n = ref.shape[0]
    if n < 2:
        raise ValueError(f"reference needs at least 2 rows; got {n}")
    if n > max_points:
        rows = rng.choice(n, size=max_points, replace=False) if rng is not None else (
            np.linspace(0, n - 1, max_points).round().astype(np.int64))
        ref = ref[xp.asarray(np.sort(rows))]
    sq = _sq_norms(xp, ref)
    d2 = _sq_distances(xp, ref, ref, sq, sq)
    upper = xp.triu_indices(ref.shape[0], k=1)
    distances = xp.sqrt(d2[upper])
    median = float(xp.median(distances))
    if median > 0:
        return median
    positive = distances[distances > 0]
    return float(xp.mean(positive)) if positive.size else 1.0


def _split_keys(n_total: int, n_permutations: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    # One uniform key per pooled row and permutation; the rows with the n smallest
    # keys play x. Ranks of i.i.d. continuous keys are a uniform random permutation,
    # and a partition finds the n smallest in O(N) where a shuffle costs more.
    return rng.random((n_permutations, n_total))


def permutation_indices(n_total: int, n_permutations: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """``(n_permutations, n_total)`` random permutations of ``0 … n_total−1``, drawn on the host.

    These are the permutations :func:`mmd_permutation_test` and
    :func:`centroid_permutation_test` use when given a generator in the same state:
    the first ``n`` entries of row ``p`` are the pooled rows that play ``x`` in
    permutation ``p`` (the tests draw the same keys and take the ``n`` smallest
    without sorting).
    """
    return np.argsort(_split_keys(n_total, n_permutations, rng), axis=1)


def _splits(xp: ModuleType, n: int, n_total: int, n_permutations: int, rng: np.random.Generator,
            dtype: Any) -> Array:
    """``(N, P+1)`` 0/1 matrix: column 0 is the observed split, column ``p`` permutation ``p``."""
    keys = _split_keys(n_total, n_permutations, rng)
    nth_smallest = np.partition(keys, n - 1, axis=1)[:, n - 1:n]
    member = np.ones((n_total, n_permutations + 1), dtype=np.bool_)
    member[:, 0] = np.arange(n_total) < n
    member[:, 1:] = (keys <= nth_smallest).T
    return xp.asarray(member).astype(dtype)


def mmd2_permutations(
    x: Array,
    y: Array,
    n_permutations: int,
    rng: np.random.Generator,
    bandwidth: float | None = None,
    block: int = DEFAULT_BLOCK,
    perm_block: int = DEFAULT_PERM_BLOCK,
    *,
    dtype: Literal["float32", "float64"] = "float32",
    xp: ModuleType | None = None,
) -> Array:
    r"""MMD² (unbiased, RBF) of ``x`` against ``y``, and of ``P`` random re-splits of the pool.

    Pool the samples, ``z = [x; y]`` (``N = n + m`` rows), with kernel matrix
    ``K``. A split of the pool is a 0/1 column ``a`` marking the rows that play
    ``x``; with ``r = K 1``, ``T = 1ᵀ K 1`` and ``k(z_i, z_i) = 1``:

    .. math::

        q = a^\top K a,\quad s = a^\top r,\qquad
        \widehat{\mathrm{MMD}}^2_u(a) = \frac{q - n}{n(n-1)}
          + \frac{T - 2s + q - m}{m(m-1)} - \frac{2(s - q)}{nm}

    All ``P + 1`` splits (the observed one and ``P`` random permutations) are the
    columns of one ``(N, P+1)`` matrix ``A``, so every statistic comes from
    ``q = colsum((K A) ∘ A)`` and ``s = rᵀ A``: one kernel matrix and matrix
    products, no Python loop over permutations.

    ``K`` is never held whole, and only its upper triangle is computed: the strip of
    rows ``[i, i + block)`` and columns ``[i, N)`` is computed, its off-diagonal part
    doubled (it stands for the mirrored lower part too), multiplied by ``A`` in
    column blocks of ``perm_block`` permutations, and dropped. That halves both the
    kernel and the products.

    Parameters
    ----------
    x, y:
        Reference ``(n, d)`` and current ``(m, d)``, ``n, m >= 2``, numpy or cupy
        (not mixed).
    n_permutations:
        ``P >= 1``.
    rng:
        Draws the bandwidth's subsample (when ``bandwidth`` is None and ``n`` is
        over 2000), then the permutations (the same as :func:`permutation_indices`
        would return).
    bandwidth:
        RBF ``h``; None takes :func:`median_heuristic` of ``x`` (the reference).
    block, perm_block:
        Kernel rows and permutations per block (memory, below).
    dtype:
        Of the kernel and the products; ``q``, ``s`` and ``T`` are summed in float64
        whatever it is, and the pool is centred (in float64) before distances are
        taken, so embeddings far from the origin lose no precision. float32
        (default) is 2–3× faster on CPUs and GPUs; the statistics then differ from
        float64 by about 1e-3 of their spread under the null (measured: 1.6e-8
        against a null standard deviation of 2.1e-5 at ``n = m = 2000``,
        ``d = 384``), and the test stays an exact permutation test of the kernel
        matrix as rounded. float64 agrees with :func:`mmd2_unbiased` to rounding.

    Returns
    -------
    Array
        ``(P+1,)`` float64 in the inputs' array module: the observed MMD²_u, then
        the statistic of each permutation.

    Notes
    -----
    Time: ``N² d / 2`` for the kernel, ``N² (P+1) / 2`` for the products (plus
    ``block · N`` of each). Memory, in ``dtype`` floats: ``block · N`` (a kernel strip)
    + ``N · (P+1)`` (splits) + ``block · perm_block`` (a product), plus the pooled data,
    ``N · d`` in float64 and once more in ``dtype``. For ``n = m = 20,000``
    (``N = 40,000``), ``d = 768``, ``P = 200``, ``block = 512`` in float32: 82 MB +
    32 MB + 0.4 MB + 369 MB ≈ 0.5 GB (about 0.75 GB at the peak, with float64 copies of
    float32 inputs), where the whole ``K`` would be 6.4 GB (12.8 GB in float64).

    References
    ----------
    Gretton et al. (2012), section 5 (permutation test for MMD²_u).
    """
    xp = get_namespace(x, y, xp=xp)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64; got {dtype!r}")
    work = xp.float32 if dtype == "float32" else xp.float64
    x = _as_matrix(xp, x, "x")
    y = _as_matrix(xp, y, "y")
    _same_dim(x, y)
    n, m = int(x.shape[0]), int(y.shape[0])
    if n < 2 or m < 2:
        raise ValueError(f"each sample needs at least 2 rows; got {n} and {m}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    if block < 1 or perm_block < 1:
        raise ValueError(f"block and perm_block must be >= 1; got {block} and {perm_block}")
    if bandwidth is None:
        bandwidth = median_heuristic(x, rng=rng, xp=xp)
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0; got {bandwidth!r}")
    splits = _splits(xp, n, n + m, n_permutations, rng, work)
    pool = xp.concatenate([x, y])
    pool -= xp.mean(pool, axis=0)
    return _mmd2_of_splits(xp, pool.astype(work, copy=False), n, splits, bandwidth, block, perm_block)


def mmd_permutation_test(
    x: Array,
    y: Array,
    n_permutations: int,
    rng: np.random.Generator,
    bandwidth: float | None = None,
    block: int = DEFAULT_BLOCK,
    perm_block: int = DEFAULT_PERM_BLOCK,
    *,
    dtype: Literal["float32", "float64"] = "float32",
    xp: ModuleType | None = None,
) -> tuple[float, float]:
    r"""MMD² (unbiased, RBF) of ``x`` against ``y`` and its permutation p-value.

    .. math:: p = \frac{1 + \#\{\text{permutations with } \mathrm{MMD}^2 \ge \text{observed}\}}{1 + P}

    which is a valid p-value (never 0) under exchangeability. Parameters, cost
    and memory are those of :func:`mmd2_permutations`, which computes the
    statistics.

    Returns
    -------
    (mmd2, p_value):
        The observed statistic and ``p`` in ``(0, 1]``; the smallest reachable
        p-value is ``1 / (P + 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(50, 3))
    >>> mmd2, p = mmd_permutation_test(x, x + 1.0, 99, rng)
    >>> p == 0.01
    True
    """
    xp = get_namespace(x, y, xp=xp)
    stats = mmd2_permutations(x, y, n_permutations, rng, bandwidth, block, perm_block, dtype=dtype, xp=xp)
    observed = stats[0]
    # Compared on the device; one scalar goes to the host.
    n_ge = int(xp.sum(stats[1:] >= observed))
    return float(observed), (1.0 + n_ge) / (1.0 + n_permutations)


def _mmd2_of_splits(
    xp: ModuleType, z: Array, n: int, splits: Array, bandwidth: float, block: int, perm_block: int,
) -> Array:
    """MMD²_u of every split (column of ``splits``), ``(P+1,)`` float64 on the device."""
    n_total = int(z.shape[0])
    m = n_total - n
    n_cols = int(splits.shape[1])
    z_sq = _sq_norms(xp, z)
    q = xp.zeros(n_cols, dtype=xp.float64)
    r = xp.zeros(n_total, dtype=xp.float64)
    for start in range(0, n_total, block):
        stop = min(start + block, n_total)
        width = stop - start
        strip = _sq_distances(xp, z[start:stop], z[start:], z_sq[start:stop], z_sq[start:])
        # The diagonal is 0 exactly: k(z_i, z_i) = 1, which the formula assumes.
        local = xp.arange(width)
        strip[local, local] = 0.0
        strip = _rbf_from_sq(xp, strip, bandwidth)
        r[start:stop] += xp.sum(strip, axis=1, dtype=xp.float64)
        r[stop:] += xp.sum(strip[:, width:], axis=0, dtype=xp.float64)
        strip[:, width:] *= 2.0
        for c0 in range(0, n_cols, perm_block):
            c1 = min(c0 + perm_block, n_cols)
            product = strip @ splits[start:, c0:c1]
            product *= splits[start:stop, c0:c1]
            q[c0:c1] += xp.sum(product, axis=0, dtype=xp.float64)
    total = xp.sum(r)
    s = xp.zeros(n_cols, dtype=xp.float64)
    for c0 in range(0, n_cols, perm_block):
        c1 = min(c0 + perm_block, n_cols)
        s[c0:c1] = r @ splits[:, c0:c1].astype(xp.float64)
    return ((q - n) / (n * (n - 1)) + (total - 2.0 * s + q - m) / (m * (m - 1))
            - 2.0 * (s - q) / (n * m))


# --------------------------------------------------------------------------
# k nearest neighbours
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Centroid shift
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CentroidShift:
    """Result of :func:`centroid_shift`."""

    cosine_distance: float
    """``1 − cos(μ_r, μ_c)``; 0 when either mean is the zero vector."""
    euclidean_distance: float
    """``‖μ_c − μ_r‖``."""
    variance_share_along_shift: float
    """Share of the current sample's total variance along ``u = (μ_c − μ_r)/‖μ_c − μ_r‖``."""
    reference_variance_share_along_shift: float
    """The same share for the reference: a current share well above it means the
    window spread out along the move (a new cluster), not only moved."""


def centroid_shift(reference: Array, current: Array, *, xp: ModuleType | None = None) -> CentroidShift:
    r"""How far the mean embedding moved, and how much of the current spread lies along the move.

    .. math::

        \cos\_d = 1 - \frac{\mu_r \cdot \mu_c}{\lVert\mu_r\rVert\,\lVert\mu_c\rVert},\quad
        e = \lVert \mu_c - \mu_r \rVert,\quad
        \mathrm{share} = \frac{\operatorname{Var}(C u)}{\operatorname{tr}\operatorname{Cov}(C)}

    Cost ``(n + m) d``: cheap enough for every window. Cosine is the distance most
    embedding models are trained for; the Euclidean one also sees a change of norm.
    With isotropic noise the share is about ``1/d``; it is 0 when the means are
    equal (no direction) or the current sample has no variance.

    Parameters
    ----------
    reference, current:
        ``(n, d)`` and ``(m, d)``, ``n, m >= 1``.

    Examples
    --------
    >>> import numpy as np
    >>> shift = centroid_shift(np.array([[1.0, 0.0], [1.0, 2.0]]), np.array([[1.0, 2.0], [1.0, 4.0]]))
    >>> round(shift.cosine_distance, 4), shift.euclidean_distance, shift.variance_share_along_shift
    (0.1056, 2.0, 1.0)
    """
    xp = get_namespace(reference, current, xp=xp)
    ref = _as_matrix(xp, reference, "reference")
    cur = _as_matrix(xp, current, "current")
    _same_dim(ref, cur)
    if ref.shape[0] < 1 or cur.shape[0] < 1:
        raise ValueError(f"each sample needs at least 1 row; got {ref.shape[0]} and {cur.shape[0]}")
    mu_r, mu_c = xp.mean(ref, axis=0), xp.mean(cur, axis=0)
    delta = mu_c - mu_r
    euclidean = float(xp.sqrt(xp.sum(delta * delta)))
    norms = float(xp.sqrt(xp.sum(mu_r * mu_r))) * float(xp.sqrt(xp.sum(mu_c * mu_c)))
    cosine = 1.0 - float(xp.sum(mu_r * mu_c)) / norms if norms > 0 else 0.0
    if euclidean == 0.0:
        return CentroidShift(max(cosine, 0.0), 0.0, 0.0, 0.0)
    u = delta / euclidean
    return CentroidShift(
        cosine_distance=max(cosine, 0.0),
        euclidean_distance=euclidean,
        variance_share_along_shift=_share_along(xp, cur, mu_c, u),
        reference_variance_share_along_shift=_share_along(xp, ref, mu_r, u),
    )


def _share_along(xp: ModuleType, a: Array, mean: Array, u: Array) -> float:
    centred = a - mean
    total = float(xp.sum(centred * centred))
    if total <= 0:
        return 0.0
    along = centred @ u
    return float(xp.sum(along * along)) / total


def centroid_permutation_test(
    x: Array, y: Array, n_permutations: int, rng: np.random.Generator, *, xp: ModuleType | None = None,
) -> tuple[float, float]:
    r"""Squared distance between means, ``‖μ_x − μ_y‖²``, and its permutation p-value.

    This is MMD² with the linear kernel (biased form). Centre the pool ``z`` on its
    mean; for a split ``a`` (1 for rows playing ``x``), ``μ_x − μ_y = (1/n + 1/m) zᵀa``,
    so all permutations take one ``(d, N) × (N, P+1)`` product: cost ``N d P``.
    Permutations are drawn as in :func:`mmd_permutation_test`, p-value likewise.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(40, 3))
    >>> distance2, p = centroid_permutation_test(x, x + 1.0, 99, rng)
    >>> round(distance2, 6), p
    (3.0, 0.01)
    """
    xp = get_namespace(x, y, xp=xp)
    x = _as_matrix(xp, x, "x")
    y = _as_matrix(xp, y, "y")
    _same_dim(x, y)
    n, m = x.shape[0], y.shape[0]
    if n < 1 or m < 1:
        raise ValueError(f"each sample needs at least 1 row; got {n} and {m}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    z = xp.concatenate([x, y])
    z = z - xp.mean(z, axis=0)
    splits = _splits(xp, n, n + m, n_permutations, rng, z.dtype)
    deltas = (z.T @ splits) * (1.0 / n + 1.0 / m)
    stats = xp.sum(deltas * deltas, axis=0)
    delta = xp.mean(x, axis=0) - xp.mean(y, axis=0)
    n_ge = int(xp.sum(stats[1:] >= stats[0]))
    return float(xp.sum(delta * delta)), (1.0 + n_ge) / (1.0 + n_permutations)


# --------------------------------------------------------------------------
# Projection evidence
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Components:
    """Principal components of a reference sample (host arrays): see :func:`principal_components`."""

    mean: npt.NDArray[np.float64]
    """``(d,)``"""
    vectors: npt.NDArray[np.float64]
    """``(k, d)``, orthonormal rows, by decreasing variance."""
    explained_variance_ratio: npt.NDArray[np.float64]
    """``(k,)``, share of the reference's total variance along each vector."""


@dataclass(frozen=True, slots=True)
class ComponentShift:
    """KS of current against reference projections on one principal component."""

    component: int
    ks_stat: float
    p_value: float
    explained_variance_ratio: float


def principal_components(reference: Array, n_components: int = PROJECTION_COMPONENTS, *,
                         xp: ModuleType | None = None) -> Components:
    """Top ``n_components`` principal components of ``reference`` by SVD of the centred rows.

    ``min(n_components, n, d)`` are returned. The sign of a vector is arbitrary (as
    from any SVD); two-sided KS does not depend on it.
    """
    xp = get_namespace(reference, xp=xp)
    ref = _as_matrix(xp, reference, "reference")
    if ref.shape[0] < 2:
        raise ValueError(f"reference needs at least 2 rows; got {ref.shape[0]}")
    mean = xp.mean(ref, axis=0)
    _, singular, vt = xp.linalg.svd(ref - mean, full_matrices=False)
    variance = singular * singular
    total = float(xp.sum(variance))
    k = min(n_components, int(vt.shape[0]))
    ratio = variance[:k] / total if total > 0 else xp.zeros(k)
    return Components(
        mean=np.asarray(to_host(mean), dtype=np.float64),
        vectors=np.asarray(to_host(vt[:k]), dtype=np.float64),
        explained_variance_ratio=np.asarray(to_host(ratio), dtype=np.float64),
    )


def projection_ks(
    reference: Array, current: Array, components: Components | None = None,
    n_components: int = PROJECTION_COMPONENTS, *, xp: ModuleType | None = None,
) -> list[ComponentShift]:
    """Two-sample KS (``scipy.stats.ks_2samp``) per principal component of the reference.

    Projects both samples on the reference's top components (``components``, or
    computed here) and tests each direction: which directions moved. The
    projections are ``(n + m) × k`` floats brought to the host for scipy.

    Returns
    -------
    list[ComponentShift]
        One per component, in component order (0 = most variance). The p-values are
        per component, not corrected for testing ``k`` of them: evidence, not the
        alerting test.
    """
    xp = get_namespace(reference, current, xp=xp)
    ref = _as_matrix(xp, reference, "reference")
    cur = _as_matrix(xp, current, "current")
    _same_dim(ref, cur)
    if components is None:
        components = principal_components(ref, n_components, xp=xp)
    mean = xp.asarray(components.mean)
    vectors = xp.asarray(components.vectors)
    ref_proj = to_host((ref - mean) @ vectors.T)
    cur_proj = to_host((cur - mean) @ vectors.T)
    shifts = []
    for i in range(vectors.shape[0]):
        result = scipy.stats.ks_2samp(ref_proj[:, i], cur_proj[:, i])
        shifts.append(ComponentShift(
            component=i, ks_stat=float(result.statistic), p_value=float(result.pvalue),
            explained_variance_ratio=float(components.explained_variance_ratio[i]),
        ))
    return shifts


# --------------------------------------------------------------------------
# Config and detector
# --------------------------------------------------------------------------


class EmbeddingConfig(BaseModel):
    """``embedding:`` in YAML.

    ``p_value: 0.01`` alerts about once per hundred drift-free windows per cohort
    before the policy's consecutive-window rule; ``warn_p_value: 0.05`` is the usual
    test level. 500 permutations resolve p-values down to 0.002, well under 0.01.
    A sample of 2,000 per side keeps the kernel matrix at 4,000² (a fraction of a
    second on two cores) and detects mean shifts of a few percent of the spread.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    field: str = "embedding"
    dim: int = Field(ge=1)
    method: Literal["mmd", "knn", "centroid"] = "mmd"
    sample: int = Field(default=2000, ge=10, le=1_000_000)
    permutations: int = Field(default=500, ge=1, le=100_000)
    p_value: float = Field(default=0.01, gt=0, lt=1)
    warn_p_value: float = Field(default=0.05, gt=0, lt=1)
    k: int = Field(default=10, ge=1, le=1000)
    quantile: float = Field(default=0.95, gt=0, lt=1)
    device: Literal["auto", "cpu", "gpu"] = "auto"
    seed: int = Field(default=0, ge=0)
    min_samples: int = Field(default=100, ge=2)
    seasonal_rows: int | None = Field(default=None, ge=2, le=100_000)
    """With a seasonal baseline: embedding rows each slot keeps over the history (default
    ``max(256, min_samples)``); see :attr:`slot_rows`."""

    @field_validator("field")
    @classmethod
    def _own_event_key(cls, value: str) -> str:
        # The embedding is a top-level key of the event (and the reference Parquet column).
        if not value or value in EVENT_FIELDS:
            raise ValueError(
                f"must be a top-level event key other than {', '.join(EVENT_FIELDS)}; got {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered_levels(self) -> EmbeddingConfig:
        if self.warn_p_value < self.p_value:
            raise ValueError(
                f"warn_p_value must be >= p_value; got warn_p_value={self.warn_p_value}, p_value={self.p_value}")
        if self.k >= self.min_samples:
            raise ValueError(f"k must be < min_samples; got k={self.k}, min_samples={self.min_samples}")
        if self.min_samples > self.sample:
            raise ValueError(f"min_samples must be <= sample; got min_samples={self.min_samples}, sample={self.sample}")
        if self.seasonal_rows is not None and self.seasonal_rows < self.min_samples:
            raise ValueError(
                f"seasonal_rows must be >= min_samples (a slot is used from min_samples rows on); "
                f"got seasonal_rows={self.seasonal_rows}, min_samples={self.min_samples}")
        return self

    @property
    def slot_rows(self) -> int:
        """Rows a seasonal slot keeps over its K periods (``ceil(slot_rows / K)`` per period)."""
        return self.seasonal_rows if self.seasonal_rows is not None else max(256, self.min_samples)


def severity_of_p(p_value: float, warn_p_value: float, alert_p_value: float) -> Severity:
    """Severity of a p-value (smaller is worse).

    >>> severity_of_p(0.003, warn_p_value=0.05, alert_p_value=0.01)
    <Severity.ALERT: 'alert'>
    """
    if p_value < alert_p_value:
        return Severity.ALERT
    if p_value < warn_p_value:
        return Severity.WARN
    return Severity.OK


@dataclass(frozen=True, slots=True)
class EmbeddingReference:
    """Everything the detector needs from the reference, computed once (host arrays; picklable).

    Build with :meth:`EmbeddingDetector.prepare` when the baseline is built, so each
    window costs only the window's work.
    """

    rows: npt.NDArray[np.float32]
    """The reference sample, at most ``sample`` rows."""
    n: int
    """Rows in the full reference (before sampling)."""
    bandwidth: float
    knn_threshold: float
    components: Components


def window_rng(seed: int, cohort: Cohort, window: Window) -> np.random.Generator:
    """A generator for one cohort and window: reproducible, different across windows."""
    digest = hashlib.sha256(f"{cohort.key}\x1f{window.start.isoformat()}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


class EmbeddingDetector:
    """Drift of a window's embeddings against reference embeddings.

    One finding per window, ``feature`` = the configured field. ``value`` is MMD²
    (``method: mmd``), the kNN OOD rate (``knn``) or the cosine distance between
    means (``centroid``); severity comes from that method's p-value (permutation
    test, binomial test, permutation test of the mean distance): ``alert`` when
    ``p < p_value``, ``warn`` when ``p < warn_p_value``. The finding's ``warn`` and
    ``alert`` hold those p-value levels (``evidence["levels_on"] == "p_value"``).

    Evidence, whatever the method: ``p_value``, ``n``, ``centroid`` (cosine and
    Euclidean distance, variance shares along the shift), ``ood`` (kNN OOD rate,
    threshold, binomial p), ``moved_components`` (the reference principal components
    whose projections moved most, by KS), ``farthest`` (event ids and k-th neighbour
    distances of the current rows farthest from the reference: content to inspect),
    and ``bandwidth`` for MMD.

    In the flow the detector keeps the :class:`detectors.base.Detector` contract:
    :meth:`bind` prepares the reference embeddings once, at flow start, and
    :meth:`score` then scores a window summary's embedding sample (its reservoir).
    ``n_current`` is the number of embeddings the window saw (the reservoir keeps at
    most ``sample``); evidence adds ``n_without_embedding`` (events of the model that
    carried none) and, when not ``ok``, ``countermeasures`` naming the farthest event ids.

    Raises :class:`drift.backend.BackendError` when built with ``device: gpu``
    and cupy is missing (naming the install command) or sees no GPU.
    """

    name = "embedding"

    def __init__(self, config: EmbeddingConfig, reference: EmbeddingReference | None = None) -> None:
        self.config = config
        self.xp = resolve_device(config.device)
        self.reference = reference
        """The prepared reference :meth:`score` compares with (set by :meth:`bind`)."""

    def bind(self, reference: Array) -> EmbeddingDetector:
        """A detector like this one that scores windows against ``reference`` rows, prepared now."""
        bound = EmbeddingDetector.__new__(EmbeddingDetector)
        bound.config, bound.xp = self.config, self.xp
        bound.reference = self.prepare(reference)
        return bound

    def score(
        self, summary: WindowSummary, profile: ReferenceProfile, cohort: Cohort, window: Window,
    ) -> list[Finding]:
        """Score a closed window's embedding sample against the bound reference, or its slot's.

        The reference embeddings were prepared by :meth:`bind`. With a seasonal baseline
        ``profile`` is a :class:`drift.baselines.SeasonalProfile`: when its slot holds
        ``min_samples`` rows (``slot_embeddings``) the window is compared with those
        (:meth:`prepare_slot`), else with the reference, and the finding's ``baseline``
        says which. A summary without an embedding sample scores as an empty window (a
        skipped finding).
        """
        if self.reference is None:
            raise RuntimeError("EmbeddingDetector.score needs a reference: build it with .bind(reference rows)")
        sample = summary.embedding
        if sample is None:
            rows = np.empty((0, self.config.dim), dtype=np.float32)
            ids: list[str | None] = []
            n_seen = n_missing = 0
        else:
            sample.flush()
            rows, ids = sample.reservoir.rows, sample.reservoir.ids
            n_seen, n_missing = sample.reservoir.n_seen, sample.n_missing
        prepared, baseline = self.reference, "reference"
        if isinstance(profile, SeasonalProfile):
            baseline = profile.baselines.get(self.config.field, "reference") if profile.baselines else "reference"
            slot_rows = profile.slot_embeddings.get(self.config.field)
            if slot_rows is not None:
                prepared = self.prepare_slot(slot_rows)
        found = self.score_arrays(prepared, rows, ids, cohort, window, baseline=baseline)
        out = []
        for finding in found:
            evidence = {**finding.evidence, "n_without_embedding": n_missing}
            if finding.severity is not Severity.OK and finding.skipped is None:
                advice = suggest(self.name).to_dict()
                evidence["countermeasures"] = [{
                    **advice,
                    "event_ids": [row["event_id"] for row in evidence.get("farthest", [])
                                  if row["event_id"] is not None],
                }]
            out.append(replace(finding, n_current=n_seen, evidence=evidence))
        return out

    def prepare(self, reference: Array) -> EmbeddingReference:
        """Sample the reference and compute its bandwidth, kNN threshold and components.

        Raises ValueError for fewer than ``min_samples`` rows, a wrong dimension or
        non-finite values: a baseline that cannot be judged against.
        """
        config = self.config
        ref = np.asarray(to_host(reference), dtype=np.float32)
        self._check_dim(ref, "reference")
        rng = np.random.default_rng([config.seed, 0])
        n = ref.shape[0]
        if n < config.min_samples:
            raise ValueError(f"reference needs at least min_samples={config.min_samples} embeddings; got {n}")
        if n > config.sample:
            ref = ref[np.sort(rng.choice(n, size=config.sample, replace=False))]
        xp = self.xp
        on_device = xp.asarray(ref)
        return EmbeddingReference(
            rows=ref, n=n,
            bandwidth=median_heuristic(on_device, rng=rng, xp=xp),
            knn_threshold=knn_threshold(on_device, config.k, config.quantile, xp=xp),
            components=principal_components(on_device, PROJECTION_COMPONENTS, xp=xp),
        )

    def prepare_slot(self, rows: Array) -> EmbeddingReference:
        """A seasonal slot's rows as a reference: its own kNN threshold and components, the
        bound reference's bandwidth (so MMD² keeps one unit across slots and windows)."""
        if self.reference is None:
            raise RuntimeError("EmbeddingDetector.prepare_slot needs a bound reference: build it with .bind(rows)")
        config = self.config
        slot = np.asarray(to_host(rows), dtype=np.float32)
        self._check_dim(slot, "slot")
        n = slot.shape[0]
        if n <= config.k:
            raise ValueError(f"a slot needs more than k={config.k} embeddings; got {n}")
        if n > config.sample:
            rng = np.random.default_rng([config.seed, 1])
            slot = slot[np.sort(rng.choice(n, size=config.sample, replace=False))]
        on_device = self.xp.asarray(slot)
        return EmbeddingReference(
            rows=slot, n=n, bandwidth=self.reference.bandwidth,
            knn_threshold=knn_threshold(on_device, config.k, config.quantile, xp=self.xp),
            components=principal_components(on_device, PROJECTION_COMPONENTS, xp=self.xp),
        )

    def score_arrays(
        self, reference: Array | EmbeddingReference, current: Array, current_ids: list[str | None],
        cohort: Cohort, window: Window, *, baseline: str = "reference",
    ) -> list[Finding]:
        """Score a window's current rows (with their event ids) against the reference.

        ``reference`` is an :class:`EmbeddingReference` (from :meth:`prepare`, stored
        with the baseline) or raw ``(n, dim)`` rows, prepared on every call. A
        window or raw reference with fewer than ``min_samples`` rows gives a skipped
        finding; ``n_current`` counts the rows given, ``evidence["n"]`` those tested
        (at most ``sample``).
        """
        config = self.config
        if not isinstance(reference, EmbeddingReference):
            n_reference = int(reference.shape[0])
            if n_reference < config.min_samples:
                skipped = f"{n_reference} reference embeddings; min_samples is {config.min_samples}"
                return [self._finding(cohort, window, 0.0, Severity.OK, len(current_ids), n_reference, {}, skipped,
                                      baseline)]
            reference = self.prepare(reference)
        prepared = reference
        cur = np.asarray(to_host(current), dtype=np.float32)
        self._check_dim(cur, "current")
        if len(current_ids) != cur.shape[0]:
            raise ValueError(f"current_ids must have one id per row; got {len(current_ids)} for {cur.shape[0]} rows")
        n_current = cur.shape[0]
        rng = window_rng(config.seed, cohort, window)
        ids = list(current_ids)
        if n_current > config.sample:
            keep = np.sort(rng.choice(n_current, size=config.sample, replace=False))
            cur, ids = cur[keep], [ids[i] for i in keep.tolist()]
        if n_current < config.min_samples:
            skipped = f"{n_current} embeddings in the window; min_samples is {config.min_samples}"
            return [self._finding(cohort, window, 0.0, Severity.OK, n_current, prepared.n, {}, skipped, baseline)]

        xp = self.xp
        ref_x, cur_x = xp.asarray(prepared.rows), xp.asarray(cur)
        shift = centroid_shift(ref_x, cur_x, xp=xp)
        ood = knn_ood_test(ref_x, cur_x, config.k, config.quantile, threshold=prepared.knn_threshold, xp=xp)
        evidence: dict[str, Any] = {"levels_on": "p_value", "method": config.method, "n": int(cur.shape[0])}
        if config.method == "mmd":
            value, p_value = mmd_permutation_test(
                ref_x, cur_x, config.permutations, rng, bandwidth=prepared.bandwidth, xp=xp)
            evidence.update(mmd2=value, bandwidth=prepared.bandwidth, n_permutations=config.permutations)
        elif config.method == "knn":
            value, p_value = ood.ood_rate, ood.p_value
        else:
            _, p_value = centroid_permutation_test(ref_x, cur_x, config.permutations, rng, xp=xp)
            value = shift.cosine_distance
            evidence.update(n_permutations=config.permutations)
        moved = sorted(projection_ks(ref_x, cur_x, prepared.components, xp=xp), key=lambda c: -c.ks_stat)
        farthest = np.argsort(-ood.distances, kind="stable")[:N_FARTHEST]
        evidence.update(
            p_value=p_value,
            centroid={
                "cosine_distance": shift.cosine_distance,
                "euclidean_distance": shift.euclidean_distance,
                "variance_share_along_shift": shift.variance_share_along_shift,
                "reference_variance_share_along_shift": shift.reference_variance_share_along_shift,
            },
            ood={
                "ood_rate": ood.ood_rate, "n_ood": ood.n_ood, "expected_rate": ood.expected_rate,
                "threshold": ood.threshold, "p_value": ood.p_value, "k": config.k,
            },
            moved_components=[
                {"component": c.component, "ks_stat": c.ks_stat, "p_value": c.p_value,
                 "explained_variance_ratio": c.explained_variance_ratio}
                for c in moved[:N_MOVED_COMPONENTS]
            ],
            farthest=[{"event_id": ids[i], "distance": float(ood.distances[i])} for i in farthest.tolist()],
        )
        severity = severity_of_p(p_value, config.warn_p_value, config.p_value)
        return [self._finding(cohort, window, float(value), severity, n_current, prepared.n, evidence, None, baseline)]

    def _check_dim(self, rows: npt.NDArray[np.float32], name: str) -> None:
        if rows.ndim != 2 or rows.shape[1] != self.config.dim:
            raise ValueError(f"{name} embeddings must have shape (n, {self.config.dim}); got {rows.shape}")
        if not np.all(np.isfinite(rows)):
            raise ValueError(f"{name} embeddings must be finite; got NaN or infinity")

    def _finding(
        self, cohort: Cohort, window: Window, value: float, severity: Severity, n_current: int,
        n_reference: int, evidence: dict[str, Any], skipped: str | None, baseline: str = "reference",
    ) -> Finding:
        return Finding(
            detector=self.name, cohort=cohort, window=window, feature=self.config.field, value=value,
            severity=severity, warn=self.config.warn_p_value, alert=self.config.p_value,
            n_current=n_current, n_reference=n_reference, baseline=baseline,
            evidence=evidence, skipped=skipped,
        )
