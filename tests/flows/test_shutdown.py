"""SIGTERM/SIGINT end ``drift run`` with status 0 even while its main thread is stuck in C code."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The main thread blocks in os.read on a pipe nobody writes to: Python runs the
# handler (PEP 475) and goes back to waiting, as in a C call that never returns.
STUCK = """
import os, sys
from flows.shutdown import Shutdown
with Shutdown(deadline=1.0) as shutdown:
    shutdown.on_stop(lambda: print("on_stop", flush=True))
    shutdown.before_exit(lambda: print("before_exit", flush=True))
    print("waiting", flush=True)
    os.read(os.pipe()[0], 1)
print("not reached", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stuck_main_thread_still_exits_0_at_the_deadline(signum: int) -> None:
    process = subprocess.Popen([sys.executable, "-c", STUCK], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "waiting\n"
    started = time.monotonic()
    process.send_signal(signum)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert 0.9 < time.monotonic() - started < 3
    assert out.splitlines() == ["on_stop", "before_exit"]
    name = signal.Signals(signum).name
    assert f"drift: {name} received; stopping" in err
    assert "exiting without it" in err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_drift_run_loads_its_modules_exits_0(tmp_path: Path, signum: int) -> None:
    process = subprocess.Popen([sys.executable, "-m", "drift.cli", "run", "--config", str(tmp_path / "none.yaml")],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)  # importing numpy, scipy, pyarrow and pydantic takes longer
    started = time.monotonic()
    process.send_signal(signum)
    _, err = process.communicate(timeout=10)
    assert (process.returncode, time.monotonic() - started < 1) == (0, True), err
    assert "received while starting; exiting" in err
