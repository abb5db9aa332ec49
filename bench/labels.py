"""Join throughput of delayed labels with millions of predictions waiting; one JSON document.

    python bench/labels.py [--predictions 10000000] [--labels 2000000] [--label-batch 10000]
                           [--prediction-batch 100000] [--cohorts 1000] [--ids uuid|int]
                           [--unmatched-rate 0.05] [--advance] [--seed 0]

In this process, with no dataflow: ``--predictions`` binary predictions (scores in
[0, 1], cohort rows drawn among ``--cohorts``, 5-minute windows over one day of event
time) are added to one :class:`drift.labels.join.PendingPredictions` (horizon 7 days,
cap the number of predictions) in batches of ``--prediction-batch``; then ``--labels``
labels are joined in batches of ``--label-batch`` and each batch's joined rows counted
into a :class:`drift.labels.metrics.WindowOutcomes`. Labels are for distinct
predictions drawn at random, except a share ``--unmatched-rate`` whose ids were never
predicted. Ids are UUID-formatted strings (36 characters, built column-wise as an Arrow
array) or, with ``--ids int``, 64-bit integers.

Only the library calls are timed (building the id arrays is not). ``--advance`` stamps
the labels so that event time moves past the horizon as they arrive: every label batch
then also expires the oldest predictions (an eviction scan per batch), the steady state
of a long-running join.

The document holds: the time and rate of adding the predictions; the join rate
(``join_labels_per_s``) and the rate of join plus counting the outcomes
(``labels_per_s``); the state's counters and array bytes; the resident set after the
predictions were added and at the end (``VmRSS``) and its peak (``VmHWM``), from
/proc/self/status; and the targets (at least 200,000 labels/s with 10 million
predictions waiting, peak resident set at most 2 GiB).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drift.labels.join import PendingPredictions  # noqa: E402
from drift.labels.metrics import WindowOutcomes  # noqa: E402

TARGET_LABELS_PER_S = 200_000
TARGET_PEAK_BYTES = 2 * 1024**3
DAY_US = 86_400_000_000
WINDOW_US = 300_000_000
HORIZON = timedelta(days=7)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _status_bytes(field: str) -> int:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``), in bytes; 0 where absent."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _words(indices: npt.NDArray[np.int64], salt: int) -> npt.NDArray[np.uint64]:
    """A pseudo-random 64-bit word per index (splitmix64)."""
    h = indices.astype(np.uint64) * np.uint64(2) + np.uint64(salt)
    h = h * np.uint64(0x9E3779B97F4A7C15)
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    out: npt.NDArray[np.uint64] = h ^ (h >> np.uint64(31))
    return out


def uuid_ids(indices: npt.NDArray[np.int64]) -> pa.Array:
    """The id of each index: 32 hex digits as ``8-4-4-4-12``, an Arrow string array built from buffers."""
    n = indices.size
    shifts = np.arange(60, -1, -4, dtype=np.uint64)
    nibbles = np.concatenate([(_words(indices, s)[:, None] >> shifts) & np.uint64(0xF) for s in (1, 2)], axis=1)
    digits = _HEX[nibbles.astype(np.intp)]
    dash = np.full((n, 1), ord("-"), dtype=np.uint8)
    text = np.concatenate([digits[:, :8], dash, digits[:, 8:12], dash, digits[:, 12:16], dash, digits[:, 16:20],
                           dash, digits[:, 20:]], axis=1)
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(text)))


def make_ids(indices: npt.NDArray[np.int64], kind: str) -> pa.Array | npt.NDArray[np.int64]:
    return uuid_ids(indices) if kind == "uuid" else indices


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    n = args.predictions
    spacing = max(1, DAY_US // max(n, 1))
    state = PendingPredictions("binary", horizon=HORIZON, cap=max(n, 1))
    outcomes = WindowOutcomes("binary")

    add_seconds = 0.0
    for lo in range(0, n, args.prediction_batch):
        index = np.arange(lo, min(n, lo + args.prediction_batch), dtype=np.int64)
        ids = make_ids(index, args.ids)
        rows = rng.integers(0, args.cohorts, index.size)
        ts = index * spacing
        scores = rng.random(index.size)
        start = time.perf_counter()
        state.add_predictions(ids, rows, ts // WINDOW_US, scores, ts)
        add_seconds += time.perf_counter() - start
        outcomes.add_predictions(rows, ts // WINDOW_US)
    rss_after_predictions = _status_bytes("VmRSS")
    held_after_predictions = len(state)

    n_labels = args.labels
    n_unmatched = int(round(n_labels * args.unmatched_rate))
    chosen = rng.permutation(n)[: n_labels - n_unmatched] if n else np.zeros(0, dtype=np.int64)
    label_index = np.concatenate([chosen, np.arange(n, n + n_unmatched)]).astype(np.int64)
    rng.shuffle(label_index)
    last_ts = max(n - 1, 0) * spacing
    horizon_us = HORIZON // timedelta(microseconds=1)
    join_seconds = count_seconds = 0.0
    n_batches = 0
    for lo in range(0, label_index.size, args.label_batch):
        index = label_index[lo: lo + args.label_batch]
        ids = make_ids(index, args.ids)
        labels = (rng.random(index.size) < 0.3).astype(np.float64)
        if args.advance:
            # The horizon's cutoff sweeps over the predictions' span as the labels arrive: every
            # batch expires the next slice of the oldest predictions.
            span = last_ts + 1
            ts = np.full(index.size, last_ts + horizon_us - span + (lo + index.size) * span // label_index.size)
        else:
            ts = np.full(index.size, last_ts + 1)
        start = time.perf_counter()
        joined = state.join(ids, labels, ts)
        middle = time.perf_counter()
        outcomes.add(joined)
        count_seconds += time.perf_counter() - middle
        join_seconds += middle - start
        n_batches += 1
    total = join_seconds + count_seconds
    peak = _status_bytes("VmHWM")
    return {
        "benchmark": "labels",
        "config": {
            "predictions": n, "labels": n_labels, "label_batch": args.label_batch,
            "prediction_batch": args.prediction_batch, "cohorts": args.cohorts, "ids": args.ids,
            "unmatched_rate": args.unmatched_rate, "advance": args.advance, "horizon_s": HORIZON.total_seconds(),
            "seed": args.seed,
        },
        "predictions": {
            "seconds": round(add_seconds, 4), "per_s": round(n / add_seconds) if add_seconds else None,
            "held": held_after_predictions,
        },
        "join": {
            "batches": n_batches, "join_seconds": round(join_seconds, 4), "count_seconds": round(count_seconds, 4),
            "join_labels_per_s": round(n_labels / join_seconds) if join_seconds else None,
            "labels_per_s": round(n_labels / total) if total else None,
        },
        "state": {**state.counters(), "array_bytes": state.nbytes(), "cohort_windows": len(outcomes)},
        "memory": {
            "rss_after_predictions_bytes": rss_after_predictions, "rss_end_bytes": _status_bytes("VmRSS"),
            "peak_rss_bytes": peak,
        },
        "targets": {
            "labels_per_s": TARGET_LABELS_PER_S, "peak_rss_bytes": TARGET_PEAK_BYTES,
            "predictions_for_target": 10_000_000,
            # Judged only at the size the targets are set for.
            "met": bool(n >= 10_000_000 and total and n_labels / total >= TARGET_LABELS_PER_S
                        and 0 < peak <= TARGET_PEAK_BYTES),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--predictions", type=int, default=10_000_000)
    parser.add_argument("--labels", type=int, default=2_000_000)
    parser.add_argument("--label-batch", type=int, default=10_000)
    parser.add_argument("--prediction-batch", type=int, default=100_000)
    parser.add_argument("--cohorts", type=int, default=1_000)
    parser.add_argument("--ids", choices=("uuid", "int"), default="uuid")
    parser.add_argument("--unmatched-rate", type=float, default=0.05)
    parser.add_argument("--advance", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.predictions < 1 or args.labels < 1 or args.label_batch < 1 or args.prediction_batch < 1:
        parser.error("--predictions, --labels, --label-batch and --prediction-batch must be >= 1")
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
