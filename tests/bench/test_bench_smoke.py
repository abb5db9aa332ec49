"""bench/memory.py and bench/false_alarms.py run end to end at a tiny size (not timed).

The benchmark runs as a subprocess, as it is run by hand, and must print one JSON
document in which every event is accounted for. Speeds and memory are only checked to
be positive: benchmarks are not timed tests. bench/kafka_throughput.py has its own smoke
test on the suite's broker (test_kafka_bench_smoke.py).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH = REPO_ROOT / "bench"


def load_memory_bench() -> ModuleType:
    """bench/memory.py as a module (bench/ is a folder of scripts; it puts itself on sys.path)."""
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("drift_bench_memory", BENCH / "memory.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:] = saved


def test_memory_benchmark_generates_the_workload_events() -> None:
    """The column-wise generator gives what ``encode_arrow(workload.records(...))`` gives."""
    memory = load_memory_bench()
    workload = memory.workload
    from drift.batch import encode_arrow

    n, cohorts, rate = 2_500, 37, 777.0
    records = list(workload.records(n, cohorts=cohorts, rate_per_s=rate))
    expected = pa.ipc.open_stream(encode_arrow(records)).read_all()
    batches = list(memory.message_batches(n, cohorts, "arrow", 1_000, 300, rate))
    assert [size for size, _ in batches] == [1_000, 1_000, 500]
    assert [m.offset for _, messages in batches for m in messages] == list(range(10))  # 300, 300, 300, 100, ...
    tables = [pa.ipc.open_stream(m.value).read_all() for _, messages in batches for m in messages]
    assert pa.concat_tables(tables).equals(expected)


@pytest.mark.parametrize("fmt", ["arrow", "json"])
def test_memory_benchmark_runs_at_a_tiny_size(fmt: str, run_bench: Callable[..., dict[str, Any]]) -> None:
    n = 20_000
    document = run_bench(
        "memory.py", "--events", str(n), "--cohorts", "50", "--sample-every", "5000", "--batch-events", "2500",
        "--format", fmt,
    )
    assert document["benchmark"] == "live_state_memory"
    assert document["events"] == n and document["cohorts"] == 50 and document["features"] == 25
    assert document["complete"] is True and document["tracemalloc"] is False
    assert [s["events"] for s in document["samples"]] == [5_000, 10_000, 15_000, 20_000]
    assert all(s["rss_bytes"] > 0 and s["seconds"] >= 0 for s in document["samples"])
    assert document["max_rss_bytes"] == max(s["rss_bytes"] for s in document["samples"])
    assert document["peak_rss_bytes"] >= document["max_rss_bytes"] > 0
    assert document["seconds"] > 0 and document["events_per_s"] > 0
    outputs = document["outputs"]
    assert outputs["window_events"] + outputs["late"] == n and outputs["dlq_other"] == 0
    assert outputs["windows"] > 0 and outputs["findings"] > 0
    # Below 2M events there is nothing to call flat or not.
    assert document["rss_ratio_last_to_first_from_2m"] is None
    assert set(document["targets"]) >= {"rss_limit_bytes", "rss_within_limit", "flat"}
    assert document["machine"]["cpus"] and len(document["load_average_before"]) == 3



def test_false_alarm_benchmark_runs_at_a_tiny_size(run_bench: Callable[..., dict[str, Any]]) -> None:
    document = run_bench("false_alarms.py", "--cohorts", "8", "--windows", "4", "--features", "5", "--max-size", "300")
    streams = document["streams"]
    assert set(streams) == {"no_drift", "few_drift", "all_drift"}
    for stream in streams.values():
        fixed, tested = stream["significance_none"], stream["significance_bh_q0.01"]
        assert fixed["scored_feature_windows"] == tested["scored_feature_windows"] > 0
        # Significance only ever quiets findings: never more of them than fixed thresholds.
        assert tested["warn_or_alert_rate"] <= fixed["warn_or_alert_rate"]
    assert streams["few_drift"]["significance_bh_q0.01"]["drifted_cohorts_found_within_2_windows"] == "1 of 1"
