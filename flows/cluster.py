"""Several processes of one dataflow on this host: spawn, supervise, stop together.

``drift run --processes P`` without ``--addresses`` starts P child processes
(``drift run --process-id i --addresses ...``), each with ``--workers``
threads, on free ports of 127.0.0.1, and supervises them. Timely (under
Bytewax) cannot lose a member of a running cluster, so the first child that
exits on its own ends the run: the others get SIGTERM (then SIGKILL after a
grace period) and the parent reports which process failed.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

STOP_GRACE_SECONDS = 30.0
"""How long a child may take to drain after SIGTERM before it is killed."""


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that were free a moment ago (bound to 0, read, closed)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the supervising parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class _Child:
    process_id: int
    popen: subprocess.Popen[bytes]
    summary: Path
    returncode: int | None = None


@dataclass
class ClusterResult:
    """How a local cluster ended."""

    returncode: int
    summaries: list[dict[str, Any]] = field(default_factory=list)
    """Each process's ``--json`` summary (with ``--until-end``), by process id."""
    message: str = ""
    stopped: bool = False
    """SIGTERM or SIGINT stopped the cluster before the end of its input."""


def combine_summaries(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One run summary from those of the processes of a cluster.

    Each process only sees the windows, findings, tickets and dead letters of
    its own workers; counts add up and lists concatenate.
    """
    combined: dict[str, Any] = {
        "events": 0, "decoded": 0, "feature_events": 0, "late": 0, "dlq": {"total": 0, "by_reason": {}},
        "windows": 0, "findings_total": 0, "findings": [], "tickets": [], "processes": len(documents),
    }
    reasons: Counter[str] = Counter()
    for document in documents:
        for key in ("events", "decoded", "late", "windows", "findings_total"):
            combined[key] += document[key]
        combined["feature_events"] += document.get("feature_events", 0)
        combined["dlq"]["total"] += document["dlq"]["total"]
        reasons.update(document["dlq"]["by_reason"])
        combined["findings"].extend(document["findings"])
        combined["tickets"].extend(document["tickets"])
    combined["dlq"]["by_reason"] = dict(sorted(reasons.items()))
    combined["findings"].sort(
        key=lambda f: (f["window_start"], f["cohort_key"], f["detector"], f.get("feature") or "")
    )
    return combined


def run_local_cluster(
    child_args: list[str], processes: int, metrics_port: int, until_end: bool, json_summary: bool,
    grace: float = STOP_GRACE_SECONDS,
) -> ClusterResult:
    """Run ``drift run CHILD_ARGS`` as ``processes`` cluster members and wait for them.

    ``child_args`` are the options every member shares (config, workers,
    recovery, ...). Member ``i`` serves its metrics on ``metrics_port + i``
    (none when ``metrics_port`` is 0). With ``json_summary`` each member
    writes its JSON summary to a file; they are returned for the caller to
    combine.
    SIGTERM and SIGINT to this process are passed on to every member. The
    members' stdout goes to this process's stderr (Timely prints connection
    retries there), so that stdout stays the parent's own.

    A member that fails, or one that ends while the others tail the topic
    (``until_end`` false), stops the others; with ``until_end`` the members
    finish together at the end of the input and a clean exit is expected.
    """
    ports = free_ports(processes)
    addresses = ";".join(f"127.0.0.1:{port}" for port in ports)
    children: list[_Child] = []
    state: dict[str, Any] = {"signal": None, "deadline": None}

    def stop_all() -> None:
        if state["deadline"] is None:
            state["deadline"] = time.monotonic() + grace
        for child in children:
            if child.popen.poll() is None:
                child.popen.send_signal(signal.SIGTERM)

    def forward(signum: int, _frame: Any) -> None:
        state["signal"] = signum
        stop_all()

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    failure = ""
    scratch = tempfile.TemporaryDirectory(prefix="drift-cluster-")
    try:
        for process_id in range(processes):
            if state["signal"] is not None:
                break  # stopped while starting: do not start the rest
            summary = Path(scratch.name) / f"process-{process_id}.json"
            command = [
                sys.executable, "-m", "drift.cli", "run", *child_args,
                "--processes", str(processes), "--process-id", str(process_id), "--addresses", addresses,
                "--metrics-port", str(metrics_port + process_id if metrics_port else 0),
            ]
            if json_summary:
                command += ["--summary-file", str(summary)]
            popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(), preexec_fn=_die_with_parent,
            )
            children.append(_Child(process_id, popen, summary))
        print(f"drift: cluster of {processes} processes at {addresses} (pids "
              f"{', '.join(str(c.popen.pid) for c in children)})", file=sys.stderr, flush=True)
        while any(child.returncode is None for child in children):
            ended = [child for child in children if child.returncode is None and child.popen.poll() is not None]
            for child in ended:
                child.returncode = child.popen.returncode
            if ended and state["deadline"] is None:
                failed = [child for child in ended if child.returncode != 0]
                if failed:
                    failure = "; ".join(
                        f"process {child.process_id} (pid {child.popen.pid}) exited with status {child.returncode}"
                        for child in failed
                    ) + "; stopping the other processes"
                    print(f"drift: error: {failure}", file=sys.stderr, flush=True)
                    stop_all()
                elif not until_end:
                    # Timely cannot go on without a member: stop the others too.
                    stop_all()
            if state["deadline"] is not None and time.monotonic() > state["deadline"]:
                for child in children:
                    if child.popen.poll() is None:
                        child.popen.kill()
            time.sleep(0.05)
        summaries = []
        stopped = state["signal"] is not None
        if json_summary and not stopped and not failure:
            for child in children:
                try:
                    summaries.append(orjson.loads(child.summary.read_bytes()))
                except (OSError, orjson.JSONDecodeError) as exc:
                    if not failure:
                        failure = f"process {child.process_id} left no readable summary: {exc}"
        if failure:
            return ClusterResult(1, summaries, failure, stopped)
        codes = [child.returncode for child in children]
        if any(code != 0 for code in codes):
            return ClusterResult(1, summaries, f"processes exited with statuses {codes}", stopped)
        return ClusterResult(0, summaries, stopped=stopped)
    finally:
        for child in children:
            if child.popen.poll() is None:
                child.popen.kill()
                child.popen.wait()
        scratch.cleanup()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
