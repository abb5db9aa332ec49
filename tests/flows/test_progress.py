"""Progress lines: the rate, the run's count from the job's own counters, a terminal only.

``drift replay`` on a pseudo-terminal is in tests/test_cli.py; ``drift run --until-end``
on one, against the real broker, is here."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from drift import demo, metrics
from flows.progress import RunProgress, events_read, progress_for, run_progress, terminal_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _clock(*ticks: float) -> Callable[[], float]:
    times = iter(ticks)
    return lambda: next(times)


@pytest.mark.parametrize(("total", "calls", "shown"), [
    # No total: the count, and the rate once a second has passed since the last rate.
    (None, [(0.0, 0), (0.5, 400), (2.0, 5000), (2.5, 5200), (3.0, 7000)],
     ["run: 0 events", "run: 400 events", "run: 5,000 events, 2,500/s", "run: 5,200 events, 2,500/s",
      "run: 7,000 events, 2,000/s"]),
    # A total: the bar.
    (10, [(0.0, 0), (1.0, 5), (2.0, 10)],
     ["run [..............................] 0/10 events", "run [###############...............] 5/10 events, 5/s",
      "run [##############################] 10/10 events, 5/s"]),
    (4, [(0.0, 9)], ["run [##############################] 9/4 events"]),  # never past the end
])
def test_terminal_progress_lines(total: int | None, calls: list[tuple[float, int]], shown: list[str]) -> None:
    screen = io.StringIO()
    show = terminal_progress(total, screen, "run", clock=_clock(0.0, *(t for t, _ in calls)))
    for _, done in calls:
        show(done)
    assert screen.getvalue().split("\r")[1:] == shown


def test_quiet_unless_the_stream_is_a_terminal(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"{}\n" * 3)
    assert progress_for(events, io.StringIO()) is None and run_progress(io.StringIO()) is None
    assert progress_for(events, Terminal()) is not None
    progress = run_progress(Terminal())
    assert isinstance(progress, RunProgress)


def test_events_read_counts_decoded_and_dead_letters_but_late_ones_once() -> None:
    before = events_read()
    metrics.EVENTS_IN.labels("decode_inference", "ok").inc(100)
    metrics.EVENTS_IN.labels("decode_feature", "ignored").inc(3)
    metrics.DLQ.labels("decode_inference", "invalid_json").inc(2)
    metrics.DLQ.labels("window_events", "late").inc(5)  # decoded first: already among the 100
    assert events_read() - before == 105


def test_run_progress_shows_from_the_first_message_and_ends_its_line() -> None:
    count = {"n": 40}  # read by earlier runs of this process
    screen = Terminal()
    with RunProgress(screen, interval=0.01, read=lambda: count["n"]):
        time.sleep(0.1)
        assert screen.getvalue() == ""  # nothing read yet: the lines about connecting stay readable
        count["n"] = 1040
        deadline = time.monotonic() + 5
        while "1,000 events" not in screen.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    text = screen.getvalue()
    assert text.startswith("\rrun: 1,000 events") and text.endswith("\n") and text.count("\n") == 1
    # A run that read nothing leaves the terminal as it was.
    idle = Terminal()
    with RunProgress(idle, interval=0.01, read=lambda: 7):
        time.sleep(0.05)
    assert idle.getvalue() == ""


# --------------------------------------------------------------------------- drift run --until-end on Kafka


def _on_a_terminal(args: list[str], env: dict[str, str], stdout: Path) -> tuple[int, str]:
    """``args`` with stderr on a pseudo-terminal and stdout to a file: exit status, what the terminal showed."""
    controller, terminal = pty.openpty()
    with stdout.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=terminal, stdin=subprocess.DEVNULL, env=env)
    os.close(terminal)
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 240)
        if not ready:
            break
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        shown += chunk
    proc.wait(timeout=60)
    os.close(controller)
    return proc.returncode, shown.decode("utf-8", "replace")


@pytest.mark.kafka
def test_run_until_end_shows_progress_on_a_terminal_only(tmp_path: Path, kafka_bootstrap: str,
                                                         kafka_topics: Any) -> None:
    from confluent_kafka import Producer

    topic = kafka_topics("inference")
    text = demo.config_text(value_skew=False).replace("inference_topic: inference-events",
                                                      f"inference_topic: {topic}")
    config = tmp_path / "drift.yaml"
    config.write_text(text + "metrics:\n  port: 0\n", encoding="utf-8")
    demo.write_references(tmp_path)
    lines = demo.events().without_value_skew()
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for line in lines:
        producer.produce(topic, value=line, key=b"k")
    assert producer.flush(30) == 0
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    args = [sys.executable, "-m", "drift.cli", "run", "--config", str(config), "--until-end", "--json"]
    code, shown = _on_a_terminal(args, env, tmp_path / "summary.json")
    assert code == 0, shown[-3000:]
    last = shown.replace("\r\n", "\n").split("\r")[-1]
    assert last.startswith(f"run: {len(lines):,} events"), shown[-500:]
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["events"] == len(lines)  # the summary still goes to stdout, whole
    piped = subprocess.run(args, capture_output=True, text=True, timeout=240, env=env, check=False)
    assert piped.returncode == 0 and "\r" not in piped.stderr and "run: " not in piped.stderr
