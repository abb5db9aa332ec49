"""bench/peers.py runs end to end at a tiny size, every peer included (not timed).

The peers come from the ``bench`` extra, which the test command installs. A peer that
is missing makes the benchmark exit 2 and this test fail: it never skips.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

PEERS = ("evidently", "nannyml", "whylogs")


def check_case(case: dict[str, Any], tools: tuple[str, ...], n_features: int) -> None:
    assert set(case["tools"]) == {"ours", *tools}
    for tool, result in case["tools"].items():
        assert result["window_s"] > 0 and result["total_s"] >= result["window_s"], (tool, result)
        assert result["n_scored"] == n_features, f"{tool} scored {result['n_scored']} of {n_features} features"
        assert isinstance(result["flagged"], list) and result["computes"]
        if "scores" in result:
            assert len(result["scores"]) == n_features
            assert all(math.isfinite(v) for v in result["scores"].values()), (tool, result["scores"])
    assert set(case["ratios"]) == set(tools)
    for tool, ratio in case["ratios"].items():
        assert ratio["total"] > 0 and ratio["window"] > 0, (tool, ratio)
    agreement = case["agreement"]
    assert agreement["injected"]
    for tool in ("ours", *tools):
        # Like for like: every tool finds the injected drift (extra flags are reported, not failed).
        assert agreement[tool]["missed"] == [], f"{tool} missed injected drift: {agreement[tool]}"


def test_peers_benchmark_runs_every_tool_at_a_tiny_size(run_bench: Callable[..., dict[str, Any]]) -> None:
    document = run_bench("peers.py", 
        "--rows", "2000", "--reference-rows", "10000", "--features", "10",
        "--wide-features", "5", "--wide-rows", "2000", "--repeats", "1", "--seed", "7",
    )
    assert document["benchmark"] == "peers"
    machine = document["machine"]
    assert machine["cpus"] >= 1 and machine["python"] and machine["platform"]
    for package in ("drift", "numpy", "pandas", "pyarrow", "scipy", *PEERS):
        assert machine["versions"][package], f"no version of {package}: {machine['versions']}"
    assert document["parameters"]["tools"] == list(PEERS)

    main = document["main"]
    assert (main["rows"], main["reference_rows"]) == (2000, 10000)
    assert (main["numeric_features"], main["categorical_features"]) == (8, 2)
    check_case(main, PEERS, 10)
    assert set(main["agreement"]["injected"]) == {"num_01", "num_07", "cat_01"}
    assert main["tools"]["whylogs"]["algorithms"] == ["chi-square", "ks"]

    wide = document["wide"]
    assert (wide["rows"], wide["numeric_features"]) == (2000, 5)
    check_case(wide, ("evidently",), 5)
