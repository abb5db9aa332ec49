"""Crash recovery on the real broker: SIGKILL mid-stream, SIGTERM, a broker restart.

Each scenario runs ``drift run --recovery-dir`` as a subprocess on the demo
events and compares what reached the output topics and the ticket store with
one uninterrupted ``drift run --until-end`` over the same events (the
``reference`` fixture). Outputs are at-least-once: a window closed after the
last snapshot is written again after a restart, so findings are compared
deduplicated by (cohort, window, detector, feature), and every copy of one
must carry the same value and event count.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from drift import demo

ROOT = Path(__file__).resolve().parents[2]
DEMO = demo.events()
# The inference path alone: without the demo's value-skew model, whose join has its own tests.
LINES = DEMO.without_value_skew()
# An index in the middle of a 30-minute window (about 09:40): stopping there
# never leaves a window that could close early on system time alone.
SPLIT = int(len(LINES) * 100 / 180)
SNAPSHOT = "500ms"
Key = tuple[str, str, str, str | None]


# --------------------------------------------------------------------------- helpers


def broker_module() -> ModuleType:
    """deploy/kafka/broker.py, as tests/conftest.py loads it."""
    name = "drift_deploy_kafka_broker"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / "kafka" / "broker.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def new_topics(bootstrap: str, partitions: int = 1) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    topics = {name: f"{name}-{suffix}" for name in ("inference", "findings", "tickets", "dlq")}
    broker_module().create_topics(bootstrap, [topics["inference"]], partitions=partitions)
    broker_module().create_topics(bootstrap, [topics[n] for n in ("findings", "tickets", "dlq")])
    return topics


def write_config(folder: Path, topics: dict[str, str], lateness: str | None = None, metrics_port: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = demo.config_text(value_skew=False).replace("inference_topic: inference-events", "\n".join([
        f"inference_topic: {topics['inference']}",
        f"  findings_topic: {topics['findings']}",
        f"  tickets_topic: {topics['tickets']}",
        f"  dlq_topic: {topics['dlq']}",
    ]))
    if lateness is not None:
        assert "allowed_lateness: 2m" in text
        text = text.replace("allowed_lateness: 2m", f"allowed_lateness: {lateness}")
    # Every window's findings on the topic, ok ones included: the waits below follow the job's
    # progress window by window, and the comparison covers every window.
    text += f"metrics:\n  port: {metrics_port}\nengine:\n  ok_findings: true\n"
    (folder / "drift.yaml").write_text(text, encoding="utf-8")
    demo.write_references(folder)
    return folder / "drift.yaml"


def cohort_key(line: bytes) -> bytes:
    """Message key: the cohort's labels, so one cohort stays in one partition, in order."""
    try:
        event = json.loads(line)
        return f"{event.get('model_version')}|{event.get('tenant')}|{event.get('region')}".encode()
    except (ValueError, AttributeError):
        return b"-"


def produce(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for line in lines:
        producer.produce(topic, value=line, key=cohort_key(line))
    assert producer.flush(30) == 0


class TopicReader:
    """Reads every partition of a topic from the beginning, keeping what it got."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}",
                                   "enable.auto.commit": False})
        # Right after a broker restart a topic can be listed before its partitions have leaders.
        deadline = time.monotonic() + 30
        while True:
            partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
            if partitions and all(p.leader >= 0 for p in partitions.values()):
                break
            assert time.monotonic() < deadline, f"topic {topic} has no leader for every partition"
            time.sleep(0.2)
        self._partitions = sorted(partitions)
        self._topic = topic
        self._consumer.assign([TopicPartition(topic, p, 0) for p in self._partitions])

    def poll(self, seconds: float = 0.2) -> None:
        for message in self._consumer.consume(1000, seconds):
            if message.error() is None:
                self.messages.append(json.loads(message.value()))

    def read_to_end(self, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        highs = {p: self._consumer.get_watermark_offsets(TopicPartition(self._topic, p), timeout=10)[1]
                 for p in self._partitions}
        while True:
            positions = {tp.partition: tp.offset for tp in self._consumer.position(
                [TopicPartition(self._topic, p) for p in self._partitions])}
            if all(positions[p] >= highs[p] or highs[p] == 0 for p in self._partitions):
                return self.messages
            assert time.monotonic() < deadline, f"timed out reading {self._topic}"
            self.poll(0.5)

    def close(self) -> None:
        self._consumer.close()


def window_results(findings: list[dict[str, Any]]) -> dict[Key, tuple[Any, ...]]:
    """One entry per (cohort, window, detector, feature); every copy of one must agree."""
    out: dict[Key, tuple[Any, ...]] = {}
    for f in findings:
        value = f["value"]
        value = None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, 9)
        key = (f["cohort_key"], f["window_start"], f["detector"], f["feature"])
        result = (value, f["n_current"], f["severity"], f["skipped"])
        assert out.setdefault(key, result) == result, f"two different results for {key}: {out[key]} and {result}"
    return out


def dead_letters(letters: list[dict[str, Any]]) -> set[tuple[int, int, str]]:
    """(partition, offset, reason) of each dead letter of an input message (not client errors)."""
    return {(d["partition"], d["offset"], d["reason"]) for d in letters if d["reason"] != "kafka_error"}


def drift_env(bootstrap: str) -> dict[str, str]:
    return {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "PYTHONUNBUFFERED": "1"}


class Job:
    """``drift run`` in its own process group, killed with the group when the test ends."""

    def __init__(self, args: list[str], bootstrap: str, log: Path) -> None:
        self.log = log
        self._handle = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "drift.cli", "run", *args], env=drift_env(bootstrap), cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=self._handle, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)
        self._handle.close()

    def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM; returns (exit status, seconds until it exited)."""
        started = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout=timeout)
        finally:
            self.kill()
        return code, time.monotonic() - started

    def tail(self) -> str:
        # librdkafka logs every failed connection attempt while a broker is down: skip those.
        lines = [line for line in self.log.read_text(errors="replace").splitlines()
                 if not ("|FAIL|" in line and "Connect to" in line)]
        return "\n".join(lines)[-4000:]


@contextlib.contextmanager
def jobs() -> Iterator[Callable[..., Job]]:
    """Factory of :class:`Job`; every job's process group is killed at the end."""
    started: list[Job] = []

    def start(args: list[str], bootstrap: str, log: Path) -> Job:
        job = Job(args, bootstrap, log)
        started.append(job)
        return job

    try:
        yield start
    finally:
        for job in started:
            job.kill()


def run_until_end(args: list[str], bootstrap: str, timeout: float = 120) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "drift.cli", "run", *args, "--until-end", "--json"],
        env=drift_env(bootstrap), cwd=ROOT, capture_output=True, timeout=timeout, check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def tickets_in_store(config: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "drift.cli", "tickets", "list", "--config", str(config), "--json"],
        capture_output=True, timeout=60, check=True, cwd=ROOT,
    )
    tickets: list[dict[str, Any]] = json.loads(done.stdout)
    return tickets


def wait_for(reader: TopicReader, predicate: Callable[[list[dict[str, Any]]], bool], job: Job | None,
             what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate(reader.messages):
        if job is not None and job.popen.poll() is not None:
            pytest.fail(f"drift run exited with {job.popen.returncode} while waiting for {what}:\n{job.tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}" + (f":\n{job.tail()}" if job else ""))
        reader.poll(0.2)


def wait_for_snapshots(folder: Path, partitions: int, job: Job, timeout: float = 60) -> None:
    """Wait until ``folder`` has its partitions and every one has committed a snapshot."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while True:
        parts = sorted(folder.glob("part-*.sqlite3"))
        committed = 0
        for part in parts:
            try:
                with sqlite3.connect(f"file:{part}?mode=ro", uri=True) as db:
                    committed += bool(db.execute("SELECT count(*) FROM commits").fetchone()[0])
            except sqlite3.Error:
                pass
        if len(parts) == partitions and committed == partitions:
            return
        if job.popen.poll() is not None:
            pytest.fail(f"drift run exited with {job.popen.returncode} while waiting for snapshots:\n{job.tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {partitions} committed partitions in {folder}:\n{job.tail()}")
        time.sleep(0.2)


def covers(expected: set[Key]) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda messages: expected <= set(window_results(messages))


@dataclass
class Reference:
    """An uninterrupted ``drift run --until-end`` over all demo events."""

    windows: dict[Key, tuple[Any, ...]]
    dead: set[tuple[int, int, str]]
    tickets: dict[str, int]
    summary: dict[str, Any]

    def closing_before(self, moment: datetime) -> set[Key]:
        """Results of the windows that end at or before ``moment``."""
        return {k for k in self.windows if datetime.fromisoformat(k[1]) + timedelta(minutes=30) <= moment}

    def all_but_last_window(self) -> set[Key]:
        # The last window closes only at the end of the input (or after its
        # lateness in system time), so a tail-mode run never shows it.
        last = max(k[1] for k in self.windows)
        return {k for k in self.windows if k[1] != last}


def reference_run(bootstrap: str, folder: Path, lateness: str | None = None) -> Reference:
    topics = new_topics(bootstrap)
    config = write_config(folder, topics, lateness=lateness)
    produce(bootstrap, topics["inference"], LINES)
    summary = run_until_end(["--config", str(config)], bootstrap)
    readers = {name: TopicReader(bootstrap, topics[name]) for name in ("findings", "dlq")}
    try:
        windows = window_results(readers["findings"].read_to_end())
        dead = dead_letters(readers["dlq"].read_to_end())
    finally:
        for reader in readers.values():
            reader.close()
    tickets = {t["fingerprint"]: t["occurrences"] for t in tickets_in_store(config)}
    assert windows and tickets
    return Reference(windows, dead, tickets, summary)


def event_time(line: bytes) -> datetime:
    return datetime.fromisoformat(json.loads(line)["ts"].replace("Z", "+00:00"))


def assert_same_as(reference: Reference, config: Path, bootstrap: str, topics: dict[str, str]) -> None:
    """The outputs of a recovered run equal those of the uninterrupted one."""
    readers = {name: TopicReader(bootstrap, topics[name]) for name in ("findings", "dlq", "tickets")}
    try:
        findings = readers["findings"].read_to_end()
        letters = readers["dlq"].read_to_end()
        ticket_events = readers["tickets"].read_to_end()
    finally:
        for reader in readers.values():
            reader.close()
    windows = window_results(findings)
    missing = sorted(set(reference.windows) - set(windows))[:5]
    extra = sorted(set(windows) - set(reference.windows))[:5]
    assert not missing and not extra, f"missing {missing}, extra {extra}"
    differing = [(k, windows[k], reference.windows[k]) for k in windows if windows[k] != reference.windows[k]]
    assert not differing, f"results differ (recovered, reference): {differing[:5]}"
    # Events: each window counted every event once (n_current of every PSI
    # finding is part of the result compared above); dead letters, by source offset.
    assert dead_letters(letters) == reference.dead
    late = [d for d in dead_letters(letters) if d[2] == "late"]
    assert len(late) == DEMO.n_late, f"late dead letters {late}; only {DEMO.n_late} event(s) of the demo are late"
    tickets = tickets_in_store(config)
    fingerprints = [t["fingerprint"] for t in tickets]
    assert len(fingerprints) == len(set(fingerprints)), "a fingerprint has two tickets"
    assert {t["fingerprint"]: t["occurrences"] for t in tickets} == reference.tickets
    # Ticket events are at least once: one the outbox published but had not marked when the
    # job was killed is published again with its id. Two different "opened" events of one
    # fingerprint would be a ticket opened twice.
    opened = {t["id"]: t["ticket"]["fingerprint"] for t in ticket_events if t["kind"] == "opened"}
    assert len(opened) == len(set(opened.values())), "a ticket was announced as opened twice"


@pytest.fixture(scope="module")
def reference(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return reference_run(kafka_bootstrap, tmp_path_factory.mktemp("reference"))


# --------------------------------------------------------------------------- tests


@pytest.mark.kafka
def test_killed_twice_then_stopped_equals_an_uninterrupted_run(
    tmp_path: Path, kafka_bootstrap: str, reference: Reference,
) -> None:
    topics = new_topics(kafka_bootstrap)
    config = write_config(tmp_path, topics)
    args = ["--config", str(config), "--recovery-dir", str(tmp_path / "recovery"), "--snapshot-interval", SNAPSHOT]
    log = tmp_path / "drift.log"
    # The producer keeps writing while the job is killed and restarted.
    slices = [LINES[i:i + 200] for i in range(0, len(LINES), 200)]
    produced = threading.Event()

    def producer() -> None:
        for part in slices:
            produce(kafka_bootstrap, topics["inference"], part)
            time.sleep(0.3)
        produced.set()

    thread = threading.Thread(target=producer, daemon=True)
    findings = TopicReader(kafka_bootstrap, topics["findings"])
    ordered = sorted(reference.windows, key=lambda k: k[1])
    try:
        with jobs() as start:
            thread.start()
            for share in (0.2, 0.5):
                job = start(args, kafka_bootstrap, log)
                goal = set(ordered[: int(len(ordered) * share)])
                wait_for(findings, covers(goal), job, f"{share:.0%} of the window results")
                job.kill()  # SIGKILL: no chance to flush or snapshot
            job = start(args, kafka_bootstrap, log)
            assert produced.wait(60), "the producer did not finish"
            wait_for(findings, covers(reference.all_but_last_window()), job, "all windows but the last")
            code, seconds = job.terminate(timeout=20)
            assert code == 0, job.tail()
            assert seconds < 20
            assert "SIGTERM received" in job.tail()
    finally:
        findings.close()
        thread.join(timeout=60)
    # The rest (the last window closes at the end of the input), resumed from the last snapshot.
    summary = run_until_end(args, kafka_bootstrap)
    assert summary["late"] == 0 or summary["late"] == DEMO.n_late
    assert_same_as(reference, config, kafka_bootstrap, topics)


@pytest.mark.kafka
def test_downtime_longer_than_the_lateness_makes_nothing_late(
    tmp_path: Path, kafka_bootstrap: str, reference: Reference,
) -> None:
    # The demo's events are in time order (but for its one late event), so a
    # lateness of 1 s changes when windows close, not what they hold: the
    # uninterrupted run with the demo's 2 minutes is the reference.
    expected = reference
    topics = new_topics(kafka_bootstrap)
    config = write_config(tmp_path / "recovered", topics, lateness="1s")
    args = ["--config", str(config), "--recovery-dir", str(tmp_path / "recovery"), "--snapshot-interval", SNAPSHOT]
    produce(kafka_bootstrap, topics["inference"], LINES[:SPLIT])
    findings = TopicReader(kafka_bootstrap, topics["findings"])
    try:
        with jobs() as start:
            job = start(args, kafka_bootstrap, tmp_path / "drift.log")
            done = expected.closing_before(event_time(LINES[SPLIT - 1]) - timedelta(minutes=5))
            wait_for(findings, covers(done), job, "the windows of the first part")
            time.sleep(1.0)  # a snapshot after the last event read
            job.kill()
    finally:
        findings.close()
    time.sleep(8.0)  # down for much longer than the allowed lateness
    produce(kafka_bootstrap, topics["inference"], LINES[SPLIT:])
    run_until_end(args, kafka_bootstrap)
    assert_same_as(expected, config, kafka_bootstrap, topics)


@pytest.mark.kafka
def test_broker_restart_while_the_job_runs_loses_nothing(tmp_path: Path, reference: Reference) -> None:
    module = broker_module()
    broker = module.KafkaBroker(module.ensure_jars()).start(timeout=120)
    try:
        bootstrap = broker.bootstrap
        topics = new_topics(bootstrap)
        config = write_config(tmp_path, topics)
        args = ["--config", str(config), "--recovery-dir", str(tmp_path / "recovery"), "--snapshot-interval", SNAPSHOT]
        produce(bootstrap, topics["inference"], LINES[:SPLIT])
        with jobs() as start:
            job = start(args, bootstrap, tmp_path / "drift.log")
            findings = TopicReader(bootstrap, topics["findings"])
            try:
                done = reference.closing_before(event_time(LINES[SPLIT - 1]) - timedelta(minutes=5))
                wait_for(findings, covers(done), job, "the windows of the first part")
            finally:
                findings.close()
            broker.restart(down_for=3.0)
            assert broker.bootstrap == bootstrap
            assert job.popen.poll() is None, f"drift run died with the broker:\n{job.tail()}"
            produce(bootstrap, topics["inference"], LINES[SPLIT:])
            findings = TopicReader(bootstrap, topics["findings"])
            try:
                wait_for(findings, covers(reference.all_but_last_window()), job, "the windows after the restart",
                         timeout=120)
            finally:
                findings.close()
            code, _ = job.terminate(timeout=20)
            assert code == 0, job.tail()
        run_until_end(args, bootstrap)
        assert_same_as(reference, config, bootstrap, topics)
    finally:
        broker.stop()


@pytest.mark.kafka
def test_killed_cluster_resumed_by_one_worker(tmp_path: Path, kafka_bootstrap: str, reference: Reference) -> None:
    # Rescaling: 2 processes x 2 workers write four recovery partitions in
    # one folder; a single worker resumes from all four.
    topics = new_topics(kafka_bootstrap)
    config = write_config(tmp_path, topics)
    args = ["--config", str(config), "--recovery-dir", str(tmp_path / "recovery"), "--snapshot-interval", SNAPSHOT]
    produce(kafka_bootstrap, topics["inference"], LINES[:SPLIT])
    findings = TopicReader(kafka_bootstrap, topics["findings"])
    try:
        with jobs() as start:
            job = start([*args, "--processes", "2", "--workers", "2"], kafka_bootstrap, tmp_path / "drift.log")
            done = reference.closing_before(event_time(LINES[SPLIT - 1]) - timedelta(minutes=5))
            wait_for(findings, covers(done), job, "the windows of the first part")
            wait_for_snapshots(tmp_path / "recovery", 4, job)
            job.kill()  # the whole process group: parent and both members
    finally:
        findings.close()
    assert len(list((tmp_path / "recovery").glob("part-*.sqlite3"))) == 4
    produce(kafka_bootstrap, topics["inference"], LINES[SPLIT:])
    run_until_end(args, kafka_bootstrap)
    assert_same_as(reference, config, kafka_bootstrap, topics)


def test_restart_safe_clock_does_not_count_the_downtime() -> None:
    from bytewax.operators.windowing import EventClock

    from flows.clock import RestartSafeEventClock

    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    newest = datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
    watermarks = {}
    for clock_type in (EventClock, RestartSafeEventClock):
        now[0] = datetime(2026, 1, 1, tzinfo=timezone.utc)
        clock = clock_type(lambda ts: ts, wait_for_system_duration=timedelta(seconds=5), now_getter=lambda: now[0])
        logic = clock.build(None)
        logic.before_batch()
        assert logic.on_item(newest) == (newest, newest - timedelta(seconds=5))
        snapshot = logic.snapshot()
        now[0] += timedelta(minutes=10)  # down for ten minutes
        resumed = clock.build(snapshot)
        resumed.before_batch()
        watermarks[clock_type.__name__] = resumed.on_notify()
        # Afterwards system time moves the watermark as before.
        now[0] += timedelta(seconds=2)
        watermarks[clock_type.__name__ + "+2s"] = resumed.on_notify()
    assert watermarks["EventClock"] == newest + timedelta(minutes=10) - timedelta(seconds=5)
    assert watermarks["RestartSafeEventClock"] == newest - timedelta(seconds=5)
    assert watermarks["RestartSafeEventClock+2s"] == newest - timedelta(seconds=3)
