"""Array backend: numpy on the CPU, cupy on a GPU, one implementation of the math.

Statistics take their array module (``xp``) from their inputs with
:func:`get_namespace`, so the same code runs on numpy and on cupy arrays. cupy is
never imported at module top: importing ``drift`` must work on machines without a
GPU, and importing cupy initialises CUDA, which is slow and can fail.

The module also holds :class:`Reservoir`, the bounded per-window sample of rows
(embeddings) that keeps memory flat whatever the traffic.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from drift.errors import DriftError

Array: TypeAlias = Any
"""A numpy or cupy array (both expose the same array-module calls)."""

Device: TypeAlias = Literal["auto", "cpu", "gpu"]
DEVICES: tuple[Device, ...] = ("auto", "cpu", "gpu")
GPU_INSTALL_HINT = "pip install 'drift[gpu]'"


class BackendError(DriftError):
    """An array backend is missing, unknown, or arrays live on different devices."""


def _module_of(array: object) -> str:
    """The top-level package that defines ``type(array)`` (``numpy``, ``cupy``, ...)."""
    return type(array).__module__.split(".", 1)[0]


def get_namespace(*arrays: object, xp: ModuleType | None = None) -> ModuleType:
    """The array module of ``arrays``: numpy, or cupy for cupy arrays.

    Parameters
    ----------
    *arrays:
        Arrays (numpy or cupy), or anything numpy accepts (lists, scalars, None),
        which counts as host data.
    xp:
        Force this module. Arrays of another module are still rejected, so a
        caller cannot silently mix host and device data.

    Raises
    ------
    BackendError
        When the arrays mix numpy and cupy, or are cupy arrays on different GPUs
        (an operation between them would copy implicitly or fail deep inside cupy).

    Examples
    --------
    >>> import numpy as np
    >>> get_namespace(np.zeros(2), [1.0, 2.0]).__name__
    'numpy'
    """
    modules = {"cupy" if _module_of(a) == "cupy" else "numpy" for a in arrays}
    if xp is not None:
        modules.add("cupy" if xp.__name__.split(".", 1)[0] == "cupy" else "numpy")
    if len(modules) > 1:
        kinds = ", ".join(f"{type(a).__module__}.{type(a).__name__}" for a in arrays)
        raise BackendError(
            f"arrays must all be numpy (host) or all cupy (GPU); got {kinds}"
            + (f" with xp={xp.__name__}" if xp is not None else "")
            + ". Move them with drift.backend.to_host or cupy.asarray first"
        )
    if modules != {"cupy"}:
        return np if xp is None else xp
    # The array exists, so cupy is already imported: take it from sys.modules
    # rather than importing here.
    cupy = xp if xp is not None else sys.modules["cupy"]
    devices = {getattr(getattr(a, "device", None), "id", None) for a in arrays if _module_of(a) == "cupy"}
    if len(devices) > 1:
        raise BackendError(f"cupy arrays must be on one GPU; got devices {sorted(map(str, devices))}")
    return cupy


def _import_cupy() -> ModuleType | None:
    try:
        return importlib.import_module("cupy")
    except ImportError:
        return None


def _gpu_count(cupy: ModuleType) -> int:
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # cupy raises CUDARuntimeError without a driver or a device
        return 0


def resolve_device(device: str) -> ModuleType:
    """The array module for a ``device:`` setting: ``auto``, ``cpu`` or ``gpu``.

    ``cpu`` is numpy. ``gpu`` is cupy and fails when cupy is not installed or no GPU
    is visible. ``auto`` is cupy only when it imports *and* a GPU is present, else
    numpy, so one config runs everywhere.

    Raises
    ------
    BackendError
        Unknown device (the message lists the options), or ``gpu`` without cupy
        (the message names the install command) or without a visible GPU.

    Examples
    --------
    >>> resolve_device("cpu").__name__
    'numpy'
    """
    if device not in DEVICES:
        raise BackendError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    if device == "cpu":
        return np
    cupy = _import_cupy()
    if cupy is None:
        if device == "gpu":
            raise BackendError(f"device: gpu needs cupy, which is not installed; install it with {GPU_INSTALL_HINT}")
        return np
    if _gpu_count(cupy) == 0:
        if device == "gpu":
            raise BackendError("device: gpu, but cupy sees no GPU (no CUDA device or driver); use device: auto or cpu")
        return np
    return cupy


def to_host(x: Array) -> Any:
    """``x`` in host memory: a numpy array for numpy or cupy arrays; other values unchanged.

    >>> import numpy as np
    >>> to_host(np.arange(3)).tolist()
    [0, 1, 2]
    """
    if _module_of(x) == "cupy":
        return x.get()
    return x


# --------------------------------------------------------------------------
# Reservoir sample
# --------------------------------------------------------------------------


class Reservoir:
    """A uniform random sample of at most ``capacity`` rows of a stream (Algorithm R).

    After ``n_seen`` rows were added, :attr:`rows` holds ``min(n_seen, capacity)``
    of them, every subset of that size being equally likely. Memory is
    ``capacity × dim`` whatever the traffic.

    The state is the sample, its event ids and ``n_seen`` (plus the random
    generator, which pickles with it); the object pickles as is, so it can be a
    dataflow snapshot.

    Parameters
    ----------
    capacity:
        The most rows kept (>= 1).
    dim:
        Row length (columns of the float32 sample).
    rng:
        Random generator, built by the caller from a seed it owns; it decides
        which rows replace which.

    Examples
    --------
    >>> import numpy as np
    >>> r = Reservoir(3, dim=2, rng=np.random.default_rng(0))
    >>> r.add(np.arange(10.0).reshape(5, 2), ids=["a", "b", "c", "d", "e"])
    >>> r.n_seen, r.rows.shape
    (5, (3, 2))

    Reference: Vitter, J. S. (1985). Random sampling with a reservoir. *ACM TOMS* 11(1).
    """

    __slots__ = ("capacity", "dim", "rng", "_rows", "_ids", "n_seen")

    def __init__(self, capacity: int, dim: int, rng: np.random.Generator) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1; got {capacity}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1; got {dim}")
        self.capacity = capacity
        self.dim = dim
        self.rng = rng
        self._rows: npt.NDArray[np.float32] = np.empty((0, dim), dtype=np.float32)
        self._ids: list[str | None] = []
        self.n_seen = 0

    @property
    def rows(self) -> npt.NDArray[np.float32]:
        """The sample, ``(min(n_seen, capacity), dim)`` float32 (a view: copy to keep)."""
        return self._rows

    @property
    def ids(self) -> list[str | None]:
        """Event ids of :attr:`rows`, row for row (None where none was given)."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, rows: npt.ArrayLike, ids: list[str | None] | None = None) -> None:
        """Offer a batch of rows (``(k, dim)``), in stream order, with their event ids."""
        batch = np.asarray(rows, dtype=np.float32)
        if batch.ndim == 1 and batch.size == self.dim:
            batch = batch.reshape(1, self.dim)
        if batch.ndim != 2 or batch.shape[1] != self.dim:
            raise ValueError(f"rows must have shape (k, {self.dim}); got {batch.shape}")
        k = batch.shape[0]
        batch_ids: list[str | None] = [None] * k if ids is None else list(ids)
        if len(batch_ids) != k:
            raise ValueError(f"ids must have one entry per row; got {len(batch_ids)} for {k} rows")
        if k == 0:
            return
        # The first rows fill the free slots.
        free = min(self.capacity - len(self._ids), k)
        if free > 0:
            self._rows = np.concatenate([self._rows, batch[:free]])
            self._ids.extend(batch_ids[:free])
        if free < k:
            # Row number t (0-based in the stream) replaces slot j ~ U{0..t} when
            # j < capacity: Algorithm R, drawn for the whole batch at once.
            t = self.n_seen + np.arange(free, k, dtype=np.int64)
            slots = self.rng.integers(0, t + 1)
            taken = np.flatnonzero(slots < self.capacity)
            if taken.size:
                # Within a batch a later row overwrites an earlier one in the same
                # slot, as the one-at-a-time algorithm would: keep the last per slot.
                chosen = slots[taken]
                _, last_from_end = np.unique(chosen[::-1], return_index=True)
                keep = taken[taken.size - 1 - last_from_end]
                self._rows[slots[keep]] = batch[free + keep]
                for slot, row in zip(slots[keep].tolist(), (free + keep).tolist()):
                    self._ids[slot] = batch_ids[row]
        self.n_seen += k

    def merge(self, other: Reservoir, rng: np.random.Generator) -> Reservoir:
        """A uniform sample of the union of both streams, as a new reservoir.

        Of the ``c = min(capacity, n_a + n_b)`` rows kept, the number taken from this
        side is hypergeometric (``c`` draws from ``n_a`` rows of one kind and ``n_b``
        of the other), then that many are picked at random from each sample. A random
        subset of a uniform sample is a uniform sample, so the result is a uniform
        ``c``-subset of all ``n_a + n_b`` rows: merging is associative in distribution,
        and merging with an empty reservoir keeps the sample.

        The new reservoir draws its later replacements from ``rng``.
        """
        if other.capacity != self.capacity or other.dim != self.dim:
            raise ValueError(
                f"can only merge reservoirs of one capacity and dim; got ({self.capacity}, {self.dim}) "
                f"and ({other.capacity}, {other.dim})"
            )
        merged = Reservoir(self.capacity, self.dim, rng)
        n_total = self.n_seen + other.n_seen
        size = min(self.capacity, n_total)
        if size == 0:
            return merged
        from_self = int(rng.hypergeometric(self.n_seen, other.n_seen, size))
        pick_self = rng.choice(len(self), size=from_self, replace=False)
        pick_other = rng.choice(len(other), size=size - from_self, replace=False)
        merged._rows = np.concatenate([self._rows[pick_self], other._rows[pick_other]])
        merged._ids = [self._ids[i] for i in pick_self.tolist()] + [other._ids[i] for i in pick_other.tolist()]
        merged.n_seen = n_total
        return merged
