"""Progress lines on a terminal for the long commands: ``replay``, ``backtest``, ``run --until-end``.

One line on stderr, rewritten in place (``\\r``): a bar with the count when the end is
known (a file's lines or rows), else the count read so far; both with the rate over the
last second or more. Nothing at all when stderr is not a terminal (a pipe, a log file,
a container's log), so scripts and logs stay clean.

A file is counted by its reader as it goes (``on_batch`` of
:class:`connectors.files.EventFileSource`). A Kafka run has no such hook on the hot path:
:class:`RunProgress` reads the job's own Prometheus counters (messages decoded and
dead-lettered, :mod:`drift.metrics`) from a thread, which costs the flow nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TextIO

RATE_INTERVAL_S = 1.0
"""The rate shown is measured over at least this many seconds (the latest such span)."""


def count_events(path: Path) -> int | None:
    """Lines of a JSONL file or rows of a Parquet file (None when it cannot be told cheaply)."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return None


def terminal_progress(total: int | None, stream: TextIO, label: str = "backtest",
                      clock: Callable[[], float] = time.monotonic) -> Callable[[int], None]:
    """A progress line rewritten in place (``\\r``) on ``stream``, called with the count done:
    ``replay [#####.....] 5000/8309 events, 2,500/s``, or ``run: 5,000 events, 2,500/s``
    when ``total`` is not known."""
    since = {"t": clock(), "n": 0}
    rate: list[float] = []

    def show(done: int) -> None:
        now = clock()
        if now - since["t"] >= RATE_INTERVAL_S:
            rate[:] = [(done - since["n"]) / (now - since["t"])]
            since.update(t=now, n=done)
        speed = f", {rate[0]:,.0f}/s" if rate else ""
        if total:
            width = 30
            filled = min(width, width * done // total)
            stream.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} events{speed}")
        else:
            stream.write(f"\r{label}: {done:,} events{speed}")
        stream.flush()

    return show


def progress_for(events: Path, stream: TextIO = sys.stderr, label: str = "backtest") -> Callable[[int], None] | None:
    """A progress line for reading ``events`` on a terminal; None (quiet) when ``stream`` is not one."""
    if not stream.isatty():
        return None
    return terminal_progress(count_events(events), stream, label)


def events_read() -> int:
    """Messages this process has read from its sources so far: decoded (inference and feature
    events) or dead-lettered, as the job's counters (:mod:`drift.metrics`) hold them.

    A late event is decoded first and dead-lettered after, so it is counted once, as decoded.
    """
    from drift import metrics

    total = 0.0
    for family in (metrics.EVENTS_IN, metrics.DLQ):
        for metric in family.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("reason") != "late":
                    total += sample.value
    return int(total)


class RunProgress:
    """The progress line of a run that reads until the end of its topics (``drift run --until-end``).

    A daemon thread shows ``read() - read()_at_start`` every ``interval`` seconds, from the
    first message on (so the lines about connecting to Kafka stay readable), and ends the
    line when the run ends. Use as a context manager around the run.
    """

    def __init__(self, stream: TextIO, label: str = "run", interval: float = 0.5,
                 read: Callable[[], int] = events_read) -> None:
        self._stream = stream
        self._read = read
        self._interval = interval
        self._start = read()  # the counters are per process: a run counts from here
        self._show = terminal_progress(None, stream, label)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drift-progress", daemon=True)
        self._shown = False

    def _tick(self) -> None:
        done = self._read() - self._start
        if done > 0 or self._shown:
            self._show(done)
            self._shown = True

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._tick()

    def __enter__(self) -> RunProgress:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._tick()  # the final count
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()


def run_progress(stream: TextIO = sys.stderr, label: str = "run") -> RunProgress | None:
    """A :class:`RunProgress` on a terminal; None (quiet) when ``stream`` is not one."""
    return RunProgress(stream, label) if stream.isatty() else None
