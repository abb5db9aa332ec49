"""Binning cost against bare numpy, and many features at once (CPU or GPU); one JSON document.

    python bench/binning.py [--rows 1000000] [--features 20] [--repeats 5]
    python bench/binning.py --wide --rows 1000000 --features 1000 --device gpu

Default: the per-value cost of counting numeric values into a window
(``drift.columnar.add_column``: bins, out-of-range count, sums for the mean, in the
slices the summary keeps) against the practical limit, ``numpy.searchsorted`` +
``numpy.bincount`` on the same arrays, as a ratio measured in the same run. Also against bare numpy comparisons
(``count_nonzero(values >= edge)`` per edge), which is how ``add_column`` counts bins
when a feature has few edges (``drift.columnar.COMPARE_EDGES``).

``--wide``: ``features × rows`` values binned by ``drift.columnar.bin_matrix`` (one
comparison pass per edge, one ``bincount`` for all features) and scored with PSI
against the reference shares, on numpy or, with ``--device gpu``, cupy (the time
includes the transfer of the result, not of the input, which a GPU pipeline keeps
on the device).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload  # noqa: E402

from drift.backend import resolve_device  # noqa: E402
from drift.columnar import add_column, bin_matrix  # noqa: E402
from drift.reference import numeric_profile  # noqa: E402
from drift.summary import Bounds, FeatureCounts  # noqa: E402


def best(repeats: int, run: Callable[[], Any], sync: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def per_value(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    reference = rng.normal(size=(args.features, 100_000))
    profiles = [numeric_profile(reference[j], 10) for j in range(args.features)]
    data = [rng.normal(0.1, 1.1, args.rows) for _ in range(args.features)]
    edges = [np.asarray(p.edges) for p in profiles]

    def ours() -> None:
        for j, profile in enumerate(profiles):
            counts = FeatureCounts(np.zeros(profile.n_bins, np.int64), bounds=Bounds(profile.low, profile.high, "reference"))
            add_column(counts, data[j], profile)

    def bare() -> None:
        for j in range(args.features):
            np.bincount(np.searchsorted(edges[j], data[j], side="right"), minlength=len(edges[j]) + 1)

    def bare_compare() -> None:
        for j in range(args.features):
            at_least = [np.count_nonzero(data[j] >= edge) for edge in edges[j]]
            -np.diff(np.array([data[j].size, *at_least, 0]))

    ours_s, bare_s = best(args.repeats, ours), best(args.repeats, bare)
    compare_s = best(args.repeats, bare_compare)
    values = args.rows * args.features
    return {
        "benchmark": "binning_per_value", "rows": args.rows, "features": args.features,
        "ours_seconds": round(ours_s, 4), "bare_numpy_seconds": round(bare_s, 4),
        "bare_compare_seconds": round(compare_s, 4),
        "ours_ns_per_value": round(ours_s / values * 1e9, 2), "bare_ns_per_value": round(bare_s / values * 1e9, 2),
        "bare_compare_ns_per_value": round(compare_s / values * 1e9, 2),
        "ratio_ours_to_bare": round(ours_s / bare_s, 2),
        "ratio_ours_to_bare_compare": round(ours_s / compare_s, 2),
        "note": "ours also counts values outside the reference range and sums values and squares (score means); "
                "bare_compare: numpy count_nonzero(values >= edge) per edge, the counting ours uses for few edges",
    }


def wide(args: argparse.Namespace) -> dict[str, Any]:
    xp = resolve_device(args.device)
    rng = np.random.default_rng(args.seed)
    reference = rng.normal(size=(10_000, args.features)).astype(np.float32)
    edges = [np.unique(np.quantile(reference[:, j], np.linspace(0, 1, 11)[1:-1])).tolist() for j in range(args.features)]
    width = max(len(e) for e in edges) + 1
    ref_counts = bin_matrix(reference, edges)
    ref_shares = ref_counts / ref_counts.sum(axis=1, keepdims=True)
    host = rng.normal(0.05, 1.0, size=(args.rows, args.features)).astype(np.float32)
    values = xp.asarray(host)
    shares = xp.asarray(ref_shares)
    sync: Callable[[], None] = (lambda: xp.cuda.Device().synchronize()) if args.device == "gpu" else (lambda: None)

    def run() -> Any:
        counts = bin_matrix(values, edges, xp=xp)
        current = counts / counts.sum(axis=1, keepdims=True)
        expected = xp.maximum(shares, 1e-4)
        actual = xp.maximum(current, 1e-4)
        psi = ((actual - expected) * xp.log(actual / expected)).sum(axis=1)
        return psi.get() if hasattr(psi, "get") else psi

    psi = run()  # warm-up (kernel compilation on a GPU)
    seconds = best(args.repeats, run, sync)
    check = bin_matrix(host[: min(args.rows, 100_000)], edges)  # numpy on a slice: same bins
    on_device = bin_matrix(values[: min(args.rows, 100_000)], edges, xp=xp)
    on_device = on_device.get() if hasattr(on_device, "get") else on_device
    assert np.array_equal(check, on_device), "device bins differ from numpy"
    device_name = "cpu"
    if args.device == "gpu":
        device_name = xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return {
        "benchmark": "binning_wide", "device": args.device, "device_name": device_name,
        "rows": args.rows, "features": args.features, "bins_per_feature": width,
        "seconds": round(seconds, 4), "values_per_second": round(args.rows * args.features / seconds),
        "max_psi": round(float(np.max(psi)), 6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--wide", action="store_true")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    args = parser.parse_args()
    result = wide(args) if args.wide else per_value(args)
    result["load_average"] = os.getloadavg()
    result["machine"] = workload.machine()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
