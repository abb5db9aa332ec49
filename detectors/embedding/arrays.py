"""Array helpers shared by the embedding statistics: shapes, squared norms and distances, the RBF kernel."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from drift.backend import Array

DEFAULT_BLOCK = 512
"""Rows of the kernel matrix (or query rows for kNN) computed at a time."""
DEFAULT_PERM_BLOCK = 1024
"""Permutations multiplied at a time."""
PROJECTION_COMPONENTS = 10
"""Principal components of the reference tested per window."""


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
