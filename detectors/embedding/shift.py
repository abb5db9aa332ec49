"""Where the embeddings moved: centroid shift with its permutation test, and KS tests on the reference's principal components."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np
import numpy.typing as npt
import scipy.stats

from drift.backend import Array, get_namespace, to_host
from detectors.embedding.arrays import PROJECTION_COMPONENTS, _as_matrix, _same_dim
from detectors.embedding.mmd import _splits


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
