"""Shared by the benchmark smoke tests: run a bench/ script as it is run by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH = REPO_ROOT / "bench"

RunBench = Callable[..., dict[str, Any]]


def _run_bench(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> dict[str, Any]:
    """``python bench/<script> args...`` from the repository root; its one JSON document.

    A non-zero exit fails the test with the end of the script's stderr.
    """
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env=env, check=False,
    )
    assert done.returncode == 0, f"bench/{script} exited {done.returncode}:\n{done.stderr[-4000:]}"
    document: dict[str, Any] = json.loads(done.stdout)
    return document


@pytest.fixture
def run_bench() -> RunBench:
    return _run_bench
