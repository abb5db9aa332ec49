"""bench/kafka_throughput.py runs end to end at a tiny size on the suite's broker (not timed).

The benchmark runs as a subprocess, as it is run by hand, and must print one JSON document
in which every event is accounted for. Speeds are only checked to be positive.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.kafka
def test_kafka_throughput_benchmark_runs_at_a_tiny_size(
    kafka_bootstrap: str, run_bench: Callable[..., dict[str, Any]],
) -> None:
    n = 10_000
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    document = run_bench(
        "kafka_throughput.py", "--events", str(n), "--partitions", "2", "--processes", "1", "2",
        "--format", "json", "arrow", "--arrow-batch", "500", env=env, timeout=280,
    )
    assert document["benchmark"] == "kafka_throughput"
    assert document["complete"] is True and document["broker"]["external"] is True
    assert document["broker"]["kafka_version"]
    assert [(r["format"], r["processes"]) for r in document["runs"]] == [
        ("json", 1), ("json", 2), ("arrow", 1), ("arrow", 2)]
    for run in document["runs"]:
        assert run["events"] == n
        assert run["flow_s"] > 0 and run["to_end_s"] >= run["flow_s"] and run["wall_s"] >= run["to_end_s"]
        assert run["events_per_s"] > 0 and run["consumed_by_counters"] == n
        accounting = run["accounting"]
        assert accounting["complete"] is True
        assert accounting["window_events"] + accounting["late"] == n and accounting["dlq_other"] == 0
        assert accounting["windows"] > 0
        assert len(run["load_average_before"]) == 3
    assert document["produced"]["json"]["messages"] == n
    assert document["produced"]["arrow"]["messages"] >= n // 500  # one partly filled per partition at most
    assert sum(document["produced"]["json"]["end_offsets"]) == n
