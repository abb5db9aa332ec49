"""``drift backtest``: the replay dataflow over history, with a scratch ticket store and a report.

The run is :func:`flows.runner.run_file`, the same code as ``drift replay`` and
``drift run``; only the ticket store differs: a backtest asks which tickets a
config *would* open, so it records them in a throwaway SQLite file and never in
the store (or webhook) the config names.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, TextIO

from drift.config import Config, TicketsConfig
from drift.report import render_html, what_if
from flows.runner import RunResult, run_file


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


def terminal_progress(total: int | None, stream: TextIO) -> Callable[[int], None]:
    """A progress line rewritten in place (``\\r``) on ``stream``."""

    def show(done: int) -> None:
        if total:
            width = 30
            filled = min(width, width * done // total)
            stream.write(f"\rbacktest [{'#' * filled}{'.' * (width - filled)}] {done}/{total} events")
        else:
            stream.write(f"\rbacktest: {done} events")
        stream.flush()

    return show


def run_backtest(config: Config, events: Path, progress: Callable[[int], None] | None = None) -> RunResult:
    """Run the dataflow over ``events`` with tickets kept in a scratch store."""
    with tempfile.TemporaryDirectory(prefix="drift-backtest-") as scratch:
        scratch_tickets = TicketsConfig(store=f"sqlite:///{Path(scratch) / 'tickets.db'}", sinks=[])
        return run_file(config.model_copy(update={"tickets": scratch_tickets}), events, progress=progress)


def backtest_document(result: RunResult) -> dict[str, Any]:
    """``drift replay --json``'s document plus the ``what_if`` table."""
    return {**result.to_dict(), "what_if": what_if(result.findings)}


def write_report(result: RunResult, path: Path, title: str) -> None:
    """Write the self-contained HTML report of ``result`` to ``path``."""
    page = render_html(result.to_dict(), result.findings, result.tickets, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


def progress_for(events: Path, stream: TextIO = sys.stderr) -> Callable[[int], None] | None:
    """A progress line on a terminal; None (quiet) when ``stream`` is not one."""
    if not stream.isatty():
        return None
    return terminal_progress(count_events(events), stream)
