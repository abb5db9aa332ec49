"""bench/throughput.py and bench/binning.py run end to end at a tiny size (not timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / script), *args],
        capture_output=True, text=True, timeout=240, cwd=REPO_ROOT,
    )
    assert done.returncode == 0, f"bench/{script} exited {done.returncode}:\n{done.stderr[-4000:]}"
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def test_throughput_benchmark_runs() -> None:
    document = run("throughput.py", "--events", "3000", "--repeats", "1")
    assert document["events"] == 3000 and document["features"] == {"numeric": 20, "categorical": 5}
    for path in ("file_json", "memory_json", "memory_arrow", "memory_arrow_polls", "decode", "decode_windows",
                 "per_event_decoder"):
        assert document["seconds"][path] > 0 and document["events_per_second"][path] > 0, path


def test_binning_benchmarks_run() -> None:
    document = run("binning.py", "--rows", "5000", "--features", "3", "--repeats", "1")
    assert document["ratio_ours_to_bare"] > 0 and document["ours_ns_per_value"] > 0
    wide = run("binning.py", "--wide", "--rows", "2000", "--features", "30", "--repeats", "1")
    assert wide["device"] == "cpu" and wide["values_per_second"] > 0 and wide["max_psi"] >= 0
