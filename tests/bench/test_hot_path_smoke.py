"""bench/throughput.py and bench/binning.py run end to end at a tiny size (not timed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def test_throughput_benchmark_runs(run_bench: Callable[..., dict[str, Any]]) -> None:
    document = run_bench("throughput.py", "--events", "3000", "--repeats", "1")
    assert document["events"] == 3000 and document["features"] == {"numeric": 20, "categorical": 5}
    for path in ("file_json", "memory_json", "memory_arrow", "memory_avro", "memory_arrow_polls", "decode",
                 "decode_windows", "decode_avro", "per_event_decoder"):
        assert document["seconds"][path] > 0 and document["events_per_second"][path] > 0, path


def test_binning_benchmarks_run(run_bench: Callable[..., dict[str, Any]]) -> None:
    document = run_bench("binning.py", "--rows", "5000", "--features", "3", "--repeats", "1")
    assert document["ratio_ours_to_bare"] > 0 and document["ours_ns_per_value"] > 0
    wide = run_bench("binning.py", "--wide", "--rows", "2000", "--features", "30", "--repeats", "1")
    assert wide["device"] == "cpu" and wide["values_per_second"] > 0 and wide["max_psi"] >= 0
