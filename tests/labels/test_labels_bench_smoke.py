"""bench/labels.py end to end at a tiny size (not timed): every label is accounted for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.parametrize("extra", [[], ["--ids", "int", "--advance"]])
def test_labels_benchmark_runs_at_a_tiny_size(extra: list[str], run_bench: Callable[..., dict[str, Any]]) -> None:
    document = run_bench("labels.py", "--predictions", "20000", "--labels", "5000", "--label-batch", "700",
                         "--prediction-batch", "3000", *extra)
    state = document["state"]
    assert document["predictions"]["held"] == 20_000
    assert state["joined"] + state["unmatched_labels"] + state["duplicate_labels"] == 5_000
    assert state["unmatched_labels"] >= 250  # the labels of ids never predicted
    if extra:
        assert state["evicted_expired"] > 0
    else:
        assert state["joined"] == 4_750 and state["held"] == 20_000
    assert document["join"]["join_labels_per_s"] > 0 and document["memory"]["peak_rss_bytes"] > 0
    assert document["targets"]["met"] is False  # judged at 10 million predictions only
