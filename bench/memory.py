"""Memory of the live state: many cohorts, millions of events, RSS sampled as it runs.

    python bench/memory.py [--events 10000000] [--cohorts 10000] [--sample-every 1000000]
                           [--format arrow|json] [--rate-per-s 1000] [--batch-events 10000]
                           [--message-events 1000] [--epoch-interval 10] [--max-seconds S]
                           [--gc job|default] [--durable-snapshots]

Runs the real dataflow (``flows.pipeline.build_flow``, one worker, in this process) on
the shared workload (bench/workload.py: one model, 20 numeric + 5 categorical features,
PSI + quality, 5-minute windows keyed by ``tenant``) with ``--cohorts`` tenants. A
Bytewax source generates the events lazily, in time order, ``--batch-events`` per
source batch: Arrow IPC messages of ``--message-events`` events each (the values of
``workload.records``, built column-wise because building 10 million dicts would take
longer than the flow), or JSON lines from ``workload.records`` with ``--format json``.
Event time advances ``--rate-per-s`` events per second, so windows close as the stream
goes on and the state holds what a long-running job holds: the open window of every
cohort, the rows waiting for the watermark, the per-cohort metrics and step state.

The source samples the resident set size (``VmRSS`` of /proc/self/status, with
tracemalloc off) every ``--sample-every`` events, before emitting the next batch, so a
sample at ``k`` events is taken after the flow has processed the first ``k``. The
outputs only count what they receive (findings, tickets and dead letters are not
kept), and the run fails (exit 1) when the windows' event counts and the late dead
letters do not add up to the events generated.

Garbage collection is set as ``drift run`` sets it (``flows.runner.tune_gc``); ``--gc
default`` keeps Python's defaults, to measure what that setting is worth.

Bytewax ends an epoch every ``--epoch-interval`` seconds (10, as ``drift run``'s
``--snapshot-interval``) and snapshots the state of every key touched in it, with or
without recovery: that cost is part of the run. Without a recovery store (the default
here, as ``drift run`` without ``--recovery-dir``) the cohort windows hand over their
live state; ``--durable-snapshots`` makes them copy it, as with a recovery store.
``--max-seconds`` ends a run that would take too long: the source stops (no windows are
closed at the end, so nothing is checked for completeness) and the document says
``stopped_early``.

Prints one JSON document: RSS at every sample, the max, the peak (``VmHWM``, or the max
if larger), the ratio RSS(last)/RSS(first at or after 2M events), the largest spread
between samples from 2M events on, the median and longest times the flow took over one
source batch (``batch_seconds``: a batch whose events move watermarks past a window's end
includes closing and scoring those cohorts' windows), and the targets (RSS at most 1 GiB,
flat within 10% from 2M events on, no batch over 2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bytewax.inputs import AbortExecution, DynamicSource, StatelessSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload  # noqa: E402  (bench/ is a folder of scripts, not a package)

from drift.events import RawMessage  # noqa: E402

GIB = 1 << 30
RSS_LIMIT = GIB
"""Target: the resident set of the job with 10,000 cohorts × 25 features."""
FLAT_FROM = 2_000_000
"""Target: RSS flat (within :data:`FLAT_TOLERANCE`) from this many events on."""
FLAT_TOLERANCE = 0.10
CLOSE_LIMIT_S = 2.0
"""Target: the flow holds no batch longer than this, the close of every cohort's window included."""
TOPIC = "bench-memory"


# -- the workload, column-wise --------------------------------------------------------------


def workload_tables(
    n: int, cohorts: int, seed: int = 2, rate_per_s: float = 1000.0, null_rate: float = 0.002,
) -> Iterator[pa.Table]:
    """``workload.records(n, cohorts, seed, rate_per_s, null_rate)`` as Arrow tables, one per chunk.

    The same random draws in the same order as ``workload.records`` (chunks of 10,000),
    so the values, nulls, tenants and timestamps are the same; the tables are what
    ``drift.batch.encode_arrow`` makes of those records (``tests/bench`` checks it).
    """
    rng = np.random.default_rng(seed)
    chunk = 10_000
    tenants_text = pa.array([f"tenant-{t:05d}" for t in range(cohorts)], type=pa.string())
    categories = pa.array(workload.CATEGORIES, type=pa.string())
    start_us = (workload.START - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1e6
    done = 0
    while done < n:
        size = min(chunk, n - done)
        numeric = np.stack([workload._numeric(rng, j, size) for j in range(len(workload.NUMERIC))], axis=1)
        cats = rng.integers(0, len(workload.CATEGORIES), (size, len(workload.CATEGORICAL)))
        tenants = rng.integers(0, cohorts, size)
        nulls = rng.random((size, len(workload.NUMERIC))) < null_rate
        index = np.arange(done, done + size)
        # timedelta(seconds=i / rate) rounds to the microsecond, as rint does here.
        micros = np.rint(index / rate_per_s * 1e6).astype(np.int64) + int(start_us)
        # isoformat() leaves out a zero fraction; numpy always writes six digits.
        text = pa.array(np.datetime_as_string(micros.astype("datetime64[us]"), unit="us"))
        ts = pc.replace_substring(pc.binary_join_element_wise(text, pa.scalar("Z"), ""), ".000000Z", "Z")
        fields = [pa.array(numeric[:, j], mask=nulls[:, j]) for j in range(len(workload.NUMERIC))]
        fields += [categories.take(pa.array(cats[:, j])) for j in range(len(workload.CATEGORICAL))]
        features = pa.StructArray.from_arrays(fields, names=[*workload.NUMERIC, *workload.CATEGORICAL])
        yield pa.Table.from_arrays(
            [
                pa.array([f"ev-{i}" for i in range(done, done + size)], type=pa.string()),
                ts,
                pa.array([workload.MODEL] * size, type=pa.string()),
                pa.array(["v1"] * size, type=pa.string()),
                tenants_text.take(pa.array(tenants)),
                features,
            ],
            names=["event_id", "ts", "model", "model_version", "tenant", "features"],
        )
        done += size


def ipc_message(table: pa.Table) -> bytes:
    """One Arrow IPC stream message holding ``table`` (as ``drift.batch.encode_arrow`` writes it)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def message_batches(
    n: int, cohorts: int, fmt: str, batch_events: int, message_events: int, rate_per_s: float, seed: int = 2,
) -> Iterator[tuple[int, list[RawMessage]]]:
    """``(events in the batch, messages)`` for the whole stream, generated lazily, in time order."""
    offset = 0
    if fmt == "json":
        import orjson

        pending: list[RawMessage] = []
        for record in workload.records(n, cohorts=cohorts, seed=seed, rate_per_s=rate_per_s):
            pending.append(RawMessage(orjson.dumps(record), TOPIC, 0, offset))
            offset += 1
            if len(pending) == batch_events:
                yield len(pending), pending
                pending = []
        if pending:
            yield len(pending), pending
        return
    buffer: pa.Table | None = None
    for table in workload_tables(n, cohorts, seed=seed, rate_per_s=rate_per_s):
        buffer = table if buffer is None else pa.concat_tables([buffer, table])
        while buffer.num_rows >= batch_events:
            messages, offset = _ipc_messages(buffer.slice(0, batch_events), message_events, offset)
            yield batch_events, messages
            buffer = buffer.slice(batch_events)
    if buffer is not None and buffer.num_rows:
        messages, offset = _ipc_messages(buffer, message_events, offset)
        yield buffer.num_rows, messages


def _ipc_messages(table: pa.Table, message_events: int, offset: int) -> tuple[list[RawMessage], int]:
    messages = []
    for lo in range(0, table.num_rows, message_events):
        part = table.slice(lo, message_events).combine_chunks()
        messages.append(RawMessage(ipc_message(part), TOPIC, 0, offset))
        offset += 1
    return messages, offset


# -- measuring ------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line (Linux only)")


def rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """``VmHWM``: the kernel's high-water mark of the resident set.

    The kernel folds per-thread RSS counts into it lazily, so it can trail a ``VmRSS``
    sample by a few pages; the document reports the larger of the two.
    """
    return _status_kib("VmHWM") * 1024


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Sampler:
    """RSS every ``every`` events, taken from the source before it emits more."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.next_mark = every
        self.samples: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self._last = (0, self.started)

    def maybe_sample(self, emitted: int, final: bool = False) -> None:
        if emitted < self.next_mark and not final:
            return
        now = time.perf_counter()
        last_events, last_time = self._last
        self.samples.append({
            "events": emitted, "rss_bytes": rss_bytes(), "seconds": round(now - self.started, 2),
            "events_per_s_since_last": round((emitted - last_events) / max(now - last_time, 1e-9)),
            "load_average": load_average(),
        })
        self._last = (emitted, now)
        sample = self.samples[-1]
        print(f"memory: {emitted:,} events, RSS {sample['rss_bytes'] / (1 << 20):,.0f} MiB, "
              f"{sample['seconds']:.0f} s, load {sample['load_average']}", file=sys.stderr, flush=True)
        while self.next_mark <= emitted:
            self.next_mark += self.every


class _GeneratedPartition(StatelessSourcePartition[list[RawMessage]]):
    def __init__(self, batches: Iterator[tuple[int, list[RawMessage]]], sampler: Sampler, state: dict[str, Any]) -> None:
        self._batches = batches
        self._sampler = sampler
        self._state = state

    def next_batch(self) -> list[list[RawMessage]]:
        # The time between two calls is the time the flow took over the last batch, windows
        # closed and scored included: its longest value bounds how long a close held the flow.
        now = time.perf_counter()
        last = self._state.get("last_call")
        if last is not None:
            self._state.setdefault("gaps", []).append((now - last, self._state["emitted"]))
        self._state["last_call"] = now
        self._sampler.maybe_sample(self._state["emitted"])
        limit = self._state.get("max_seconds")
        if limit is not None and time.perf_counter() - self._sampler.started > limit:
            # Out of time: sample where the run got to and end it without closing
            # the open windows (closing every cohort's window can take minutes).
            done = self._state["emitted"]
            if not self._sampler.samples or self._sampler.samples[-1]["events"] != done:
                self._sampler.maybe_sample(done, final=True)
            self._state["stopped_early"] = True
            raise AbortExecution()
        try:
            size, messages = next(self._batches)
        except StopIteration:
            # The end: the last batch has gone through the flow; sample once more
            # unless a mark fell exactly there.
            done = self._state["emitted"]
            if not self._sampler.samples or self._sampler.samples[-1]["events"] != done:
                self._sampler.maybe_sample(done, final=True)
            raise
        self._state["emitted"] += size
        return [messages]


class GeneratedSource(DynamicSource[list[RawMessage]]):
    """The workload as one source partition (worker 0), one list of messages per batch."""

    def __init__(self, batches: Iterator[tuple[int, list[RawMessage]]], sampler: Sampler) -> None:
        self._batches = batches
        self.sampler = sampler
        self.state: dict[str, Any] = {"emitted": 0, "max_seconds": None, "stopped_early": False}

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSourcePartition[list[RawMessage]]:
        if worker_index != 0:
            return _GeneratedPartition(iter(()), self.sampler, {"emitted": 0})
        return _GeneratedPartition(self._batches, self.sampler, self.state)


class _Tally:
    """What the outputs received, without keeping it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.window_events = 0
        self.late = 0


class _TallyPartition(StatelessSinkPartition[Any]):
    def __init__(self, tally: _Tally, kind: str) -> None:
        self._tally = tally
        self._kind = kind

    def write_batch(self, items: list[Any]) -> None:
        with self._tally.lock:
            self._tally.counts[self._kind] += len(items)
            if self._kind == "windows":
                self._tally.window_events += sum(item.n_events for item in items)
            elif self._kind == "dlq":
                for letter in items:
                    self._tally.counts[f"dlq_{letter.reason.value}"] += 1
            elif self._kind == "findings":
                for finding in items:
                    self._tally.counts[f"findings_{finding.severity.value}"] += 1


class TallySink(DynamicSink[Any]):
    def __init__(self, tally: _Tally, kind: str) -> None:
        self._tally = tally
        self._kind = kind

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _TallyPartition:
        return _TallyPartition(self._tally, self._kind)


# -- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from bytewax.testing import run_main

    from drift.config import load_config
    from flows.pipeline import Outputs, build_flow
    from flows.runner import load_profiles, tune_gc

    config_path = workload.prepare(folder, cohorts=args.cohorts)
    config = load_config(config_path)
    profiles = load_profiles(config)  # builds and stores the reference profile (not measured)
    tally = _Tally()
    outputs = Outputs(
        findings=TallySink(tally, "findings"), tickets=TallySink(tally, "tickets"), dlq=TallySink(tally, "dlq"),
        windows=TallySink(tally, "windows"), feature_events=None,
    )
    if tracemalloc.is_tracing():
        tracemalloc.stop()
    sampler = Sampler(args.sample_every)
    batches = message_batches(
        args.events, args.cohorts, args.format, args.batch_events, args.message_events, args.rate_per_s,
    )
    source = GeneratedSource(batches, sampler)
    source.state["max_seconds"] = args.max_seconds
    flow = build_flow(config, profiles, source, outputs, durable=args.durable_snapshots)
    if args.gc == "job":
        tune_gc()  # as drift run and drift replay do
    rss_before = rss_bytes()
    load_before = load_average()
    started = time.perf_counter()
    sampler.started = started
    sampler._last = (0, started)
    run_main(flow, epoch_interval=timedelta(seconds=args.epoch_interval))
    seconds = time.perf_counter() - started
    emitted = source.state["emitted"]
    late = tally.counts["dlq_late"]
    other_dlq = tally.counts["dlq"] - late
    stopped_early = bool(source.state["stopped_early"])
    # A run stopped early has open windows that were never closed: nothing to check.
    complete = None if stopped_early else (
        emitted == args.events and tally.window_events + late == emitted and other_dlq == 0)
    samples = sampler.samples
    flat = [s for s in samples if s["events"] >= FLAT_FROM]
    ratio = round(flat[-1]["rss_bytes"] / flat[0]["rss_bytes"], 3) if len(flat) >= 2 else None
    flat_spread = (
        round(max(s["rss_bytes"] for s in flat) / min(s["rss_bytes"] for s in flat) - 1, 3) if len(flat) >= 2 else None
    )
    max_rss = max(s["rss_bytes"] for s in samples) if samples else None
    gaps = sorted(source.state.get("gaps", []), reverse=True)
    for sample in samples:
        sample["rss_mib"] = round(sample["rss_bytes"] / (1 << 20), 1)
    return {
        "benchmark": "live_state_memory",
        "events": emitted,
        "cohorts": args.cohorts,
        "features": len(workload.NUMERIC) + len(workload.CATEGORICAL),
        "format": args.format,
        "rate_per_s": args.rate_per_s,
        "batch_events": args.batch_events,
        "message_events": args.message_events if args.format == "arrow" else 1,
        "epoch_interval_s": args.epoch_interval,
        "gc": args.gc,
        "durable_snapshots": args.durable_snapshots,
        "seconds": round(seconds, 2),
        "events_per_s": round(emitted / seconds) if seconds > 0 else None,
        "rss_before_flow_bytes": rss_before,
        "samples": samples,
        "max_rss_bytes": max_rss,
        "max_rss_mib": round(max_rss / (1 << 20), 1) if max_rss else None,
        "peak_rss_bytes": max(peak_rss_bytes(), max_rss or 0),
        "rss_ratio_last_to_first_from_2m": ratio,
        "batch_seconds": {
            "median": round(gaps[len(gaps) // 2][0], 3) if gaps else None,
            "longest": [{"seconds": round(g, 3), "after_events": e} for g, e in gaps[:3]],
        },
        "rss_spread_from_2m": flat_spread,
        "targets": {
            "close_seconds_limit": CLOSE_LIMIT_S,
            "longest_batch_within_close_limit": bool(gaps) and gaps[0][0] <= CLOSE_LIMIT_S,
            "rss_limit_bytes": RSS_LIMIT,
            "rss_within_limit": max_rss is not None and max_rss <= RSS_LIMIT,
            "flat_tolerance": FLAT_TOLERANCE,
            "flat_from_events": FLAT_FROM,
            "flat": flat_spread is not None and flat_spread <= FLAT_TOLERANCE,
        },
        "outputs": {
            "windows": tally.counts["windows"], "window_events": tally.window_events, "late": late,
            "dlq_other": other_dlq, "findings": tally.counts["findings"],
            "findings_by_severity": {k.removeprefix("findings_"): v for k, v in sorted(tally.counts.items())
                                     if k.startswith("findings_")},
            "tickets": tally.counts["tickets"],
        },
        "complete": complete,
        "stopped_early": stopped_early,
        "max_seconds": args.max_seconds,
        "tracemalloc": tracemalloc.is_tracing(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "machine": workload.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--cohorts", type=int, default=10_000)
    parser.add_argument("--sample-every", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["arrow", "json"], default="arrow")
    parser.add_argument("--rate-per-s", type=float, default=1000.0,
                        help="events per second of event time (the workload's default)")
    parser.add_argument("--batch-events", type=int, default=10_000, help="events per source batch")
    parser.add_argument("--message-events", type=int, default=1000, help="events per Arrow IPC message")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop generating after this long (the document says stopped_early; no completeness check)")
    parser.add_argument("--epoch-interval", type=float, default=10.0,
                        help="Bytewax epoch (snapshot) interval in seconds; 10 is drift run's --snapshot-interval")
    parser.add_argument("--durable-snapshots", action="store_true",
                        help="copy the state at every snapshot, as drift run does with --recovery-dir "
                             "(default: as without a recovery store, where Bytewax drops snapshots at once)")
    parser.add_argument("--gc", choices=["job", "default"], default="job",
                        help="garbage collection as the job sets it (flows.runner.tune_gc) or Python's defaults")
    args = parser.parse_args(argv)
    if min(args.events, args.cohorts, args.sample_every, args.batch_events, args.message_events) < 1:
        parser.error("--events, --cohorts, --sample-every, --batch-events and --message-events must be positive")
    with tempfile.TemporaryDirectory(prefix="drift-bench-memory-") as tmp:
        document = run(args, Path(tmp))
    print(json.dumps(document, indent=2))
    if document["complete"] is False:
        out = document["outputs"]
        print(f"error: events lost: generated {document['events']} of {args.events}, windows counted "
              f"{out['window_events']}, late {out['late']}, other dead letters {out['dlq_other']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
