"""Embedding drift: MMD² permutation test against a per-permutation loop, printed as JSON.

    python bench/embedding.py [--sizes 2000 5000] [--dim 384] [--permutations 500]
                              [--device cpu|gpu|auto] [--repeats 3] [--naive-permutations 10]

For each ``n`` (``n = m``, float32 rows, the current window slightly shifted) it times
:func:`detectors.embedding.mmd_permutation_test` (upper-triangle kernel strips, all
permutations as matrix products, float32 kernel with float64 sums) and, in the same
run on the same data, the naive way: the full kernel matrix once (float64), then a
Python loop over permutations, either re-indexing the kernel (the common way) or
one matrix-vector product per permutation (the best a loop does). Loops are timed over
``--naive-permutations`` permutations and extrapolated to ``--permutations``
(``naive_s = kernel_s + per_permutation_s × P``), because running all of them takes
minutes. The per-window costs of the other statistics are reported alongside.

Timings are the minimum over ``--repeats`` runs (the median is reported too): the
machine may be shared, and the minimum is the least disturbed run. The load average
at start and end is in ``machine``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from detectors.embedding import (
    centroid_permutation_test,
    knn_ood_test,
    knn_threshold,
    median_heuristic,
    mmd_permutation_test,
)
from drift.backend import resolve_device


def timed(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> tuple[Any, float, float]:
    """(last result, min seconds, median seconds) over ``repeats`` runs."""
    seconds = []
    result = None
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        seconds.append(time.perf_counter() - start)
    return result, min(seconds), statistics.median(seconds)


def naive_mmd_permutation_test(
    x: np.ndarray, y: np.ndarray, n_measured: int, rng: np.random.Generator, bandwidth: float,
) -> tuple[float, float, float, float]:
    """The plain way: one kernel matrix (float64), then a Python loop over permutations.

    Two loops are timed: re-indexing the kernel into its three blocks per
    permutation (the common implementation), and one matrix-vector product per
    permutation (the best a per-permutation loop does).

    Returns (observed mmd2, kernel seconds, seconds per permutation re-indexing,
    seconds per permutation with a matrix-vector product).
    """
    start = time.perf_counter()
    z = np.concatenate([x, y]).astype(np.float64)
    sq = np.sum(z * z, axis=1)
    kernel = np.exp(-np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0) / (2.0 * bandwidth**2))
    np.fill_diagonal(kernel, 1.0)
    kernel_s = time.perf_counter() - start
    n, m = len(x), len(y)

    def statistic(ix: np.ndarray, iy: np.ndarray) -> float:
        k_xx = kernel[np.ix_(ix, ix)].sum() - n
        k_yy = kernel[np.ix_(iy, iy)].sum() - m
        k_xy = kernel[np.ix_(ix, iy)].sum()
        return float(k_xx / (n * (n - 1)) + k_yy / (m * (m - 1)) - 2.0 * k_xy / (n * m))

    def statistic_gemv(ix: np.ndarray) -> float:
        # The same statistic from one matrix-vector product: a = 1 on x rows.
        a = np.zeros(n + m)
        a[ix] = 1.0
        ka = kernel @ a
        q, s, total = float(a @ ka), float(ka.sum()), float(row_sums.sum())
        return (q - n) / (n * (n - 1)) + (total - 2 * s + q - m) / (m * (m - 1)) - 2 * (s - q) / (n * m)

    row_sums = kernel.sum(axis=1)
    observed = statistic(np.arange(n), np.arange(n, n + m))
    assert abs(statistic_gemv(np.arange(n)) - observed) <= 1e-9 * max(1.0, abs(observed)) + 1e-12
    start = time.perf_counter()
    for _ in range(n_measured):
        perm = rng.permutation(n + m)
        statistic(perm[:n], perm[n:])
    per_permutation_s = (time.perf_counter() - start) / n_measured
    start = time.perf_counter()
    for _ in range(n_measured):
        perm = rng.permutation(n + m)
        statistic_gemv(perm[:n])
    per_permutation_gemv_s = (time.perf_counter() - start) / n_measured
    return observed, kernel_s, per_permutation_s, per_permutation_gemv_s


def machine(xp: ModuleType) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "load_average": list(os.getloadavg()),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), None)
    except OSError:
        info["cpu"] = platform.processor() or None
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        info["blas"] = f"{blas['name']} {blas['version']}"
    except (AttributeError, KeyError):
        info["blas"] = None
    try:
        import faiss

        info["faiss"] = faiss.__version__
    except ImportError:
        info["faiss"] = None
    if xp is not np:
        info["cupy"] = xp.__version__
        info["gpu"] = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)["name"].decode()
    return info


def case(xp: ModuleType, n: int, dim: int, n_permutations: int, repeats: int, naive_permutations: int,
         seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    x_host = rng.normal(size=(n, dim)).astype(np.float32)
    y_host = (rng.normal(size=(n, dim)) + 0.02).astype(np.float32)
    x, y = xp.asarray(x_host), xp.asarray(y_host)

    def sync() -> None:
        if xp is not np:
            xp.cuda.Device().synchronize()

    bandwidth, bandwidth_s, _ = timed(lambda: median_heuristic(x, rng=np.random.default_rng(seed), xp=xp), 1, sync)
    (mmd2, p_value), ours_s, ours_median_s = timed(
        lambda: mmd_permutation_test(x, y, n_permutations, np.random.default_rng(seed), bandwidth, xp=xp),
        repeats, sync)
    result: dict[str, Any] = {
        "n": n, "m": n, "dim": dim, "permutations": n_permutations,
        "device": xp.__name__,
        "bandwidth_s": round(bandwidth_s, 4),
        "mmd_permutation_test_s": round(ours_s, 4),
        "mmd_permutation_test_median_s": round(ours_median_s, 4),
        "mmd2": mmd2, "p_value": p_value,
    }
    threshold = knn_threshold(x, 10, 0.95, xp=xp)
    _, result["knn_ood_window_s"], _ = timed(
        lambda: knn_ood_test(x, y, 10, 0.95, threshold=threshold, xp=xp), repeats, sync)
    _, result["centroid_permutation_test_s"], _ = timed(
        lambda: centroid_permutation_test(x, y, n_permutations, np.random.default_rng(seed), xp=xp), repeats, sync)
    if naive_permutations > 0:
        naive_mmd2, kernel_s, per_perm_s, per_perm_gemv_s = naive_mmd_permutation_test(
            x_host, y_host, naive_permutations, np.random.default_rng(seed), bandwidth)
        naive_s = kernel_s + per_perm_s * n_permutations
        naive_gemv_s = kernel_s + per_perm_gemv_s * n_permutations
        result.update(
            naive_measured_permutations=naive_permutations,
            naive_kernel_s=round(kernel_s, 4),
            naive_index_per_permutation_s=round(per_perm_s, 5),
            naive_index_extrapolated_s=round(naive_s, 3),
            naive_index_over_ours=round(naive_s / ours_s, 1),
            naive_gemv_per_permutation_s=round(per_perm_gemv_s, 5),
            naive_gemv_extrapolated_s=round(naive_gemv_s, 3),
            naive_gemv_over_ours=round(naive_gemv_s / ours_s, 1),
            naive_mmd2=naive_mmd2,
        )
    for key in ("knn_ood_window_s", "centroid_permutation_test_s"):
        result[key] = round(result[key], 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--permutations", type=int, default=500)
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-permutations", type=int, default=10,
                        help="permutations the naive loop is timed over (0 skips it)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    xp = resolve_device(args.device)
    info = machine(xp)
    cases = [case(xp, n, args.dim, args.permutations, args.repeats, args.naive_permutations, args.seed)
             for n in args.sizes]
    info["load_average_end"] = list(os.getloadavg())
    print(json.dumps({"benchmark": "embedding_mmd", "machine": info, "cases": cases}, indent=2))


if __name__ == "__main__":
    main()
