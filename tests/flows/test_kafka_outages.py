"""``drift run`` as an operator sees it with a poison message, a broker that cannot be reached, and
a broker that goes away.

Each test runs ``drift run`` as a subprocess against a real broker (or a closed
port) and checks what the operator gets: the exit status, how long a stop takes,
the lines on stderr and ``/readyz``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from drift import demo
from flows.cluster import free_ports

ROOT = Path(__file__).resolve().parents[2]
LINES = demo.events().without_value_skew()[:3000]
CLOSED = "127.0.0.1:1"
STOP_SECONDS = 5.0
"""SIGTERM or SIGINT to exit, at most, in every state."""


def broker_module() -> ModuleType:
    """deploy/kafka/broker.py, as tests/conftest.py loads it."""
    return sys.modules["drift_deploy_kafka_broker"]


def setup_job(folder: Path, bootstrap: str | None, kafka_lines: str = "") -> tuple[Path, dict[str, str]]:
    """Topics (when there is a broker) and a config of the demo's models that uses them."""
    suffix = uuid.uuid4().hex[:10]
    topics = {name: f"{name}-{suffix}" for name in ("inference", "findings", "tickets", "dlq")}
    if bootstrap is not None:
        # The input topic takes messages up to 2 MB, whatever the broker's default.
        broker_module().create_topics(bootstrap, [topics["inference"]], config={"max.message.bytes": "2000000"})
        broker_module().create_topics(bootstrap, [topics[n] for n in ("findings", "tickets", "dlq")])
    text = demo.config_text(value_skew=False).replace("inference_topic: inference-events", "\n".join([
        f"inference_topic: {topics['inference']}",
        f"  findings_topic: {topics['findings']}",
        f"  tickets_topic: {topics['tickets']}",
        f"  dlq_topic: {topics['dlq']}",
        *(f"  {line}" for line in kafka_lines.splitlines()),
    ]))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "drift.yaml").write_text(text, encoding="utf-8")
    demo.write_references(folder)
    return folder / "drift.yaml", topics


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": 2_000_000})
    for value in values:
        producer.produce(topic, value=value, key=b"k")
    assert producer.flush(30) == 0


def read_all(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    """(size, value) of every message of a one-partition topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[tuple[int, bytes]] = []
        while len(out) < high:
            message = consumer.poll(10)
            assert message is not None and message.error() is None, message and message.error()
            out.append((len(message.value()), message.value()))
        return out
    finally:
        consumer.close()


def run_until_end(config: Path, bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drift.cli", "run", "--config", str(config), "--until-end", "--json", *args],
        env={**os.environ, "KAFKA_BOOTSTRAP": bootstrap}, cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False,
    )


class Job:
    """``drift run`` in the background, serving /readyz on a free port; its output in a file."""

    def __init__(self, config: Path, bootstrap: str, log: Path, *args: str) -> None:
        self.port = free_ports(1)[0]
        self.log = log
        self.started = time.monotonic()
        with open(log, "wb") as handle:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "drift.cli", "run", "--config", str(config),
                 "--metrics-port", str(self.port), *args],
                env={**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "PYTHONUNBUFFERED": "1"}, cwd=ROOT,
                stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def readyz(self) -> tuple[int | None, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return None, {}

    def wait_for(self, what: str, check: Any, timeout: float) -> float:
        """Seconds until ``check()`` holds (from now); fails with the log after ``timeout``."""
        since = time.monotonic()
        while not check():
            assert self.popen.poll() is None, f"drift run exited with {self.popen.returncode}:\n{self.text()[-3000:]}"
            if time.monotonic() - since > timeout:
                pytest.fail(f"no {what} within {timeout:g}s:\n{self.text()[-3000:]}")
            time.sleep(0.1)
        return time.monotonic() - since

    def signal(self, signum: int) -> tuple[int, float]:
        """(exit status, seconds from the signal to the exit)."""
        since = time.monotonic()
        self.popen.send_signal(signum)
        try:
            code = self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"drift run still runs 30s after {signal.Signals(signum).name}:\n{self.text()[-3000:]}")
        return code, time.monotonic() - since

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)


@pytest.fixture
def jobs() -> Iterator[list[Job]]:
    started: list[Job] = []
    yield started
    for job in started:
        job.kill()


# --------------------------------------------------------------------------- poison message


@pytest.mark.kafka
def test_a_poison_message_is_cut_in_its_dead_letter_and_the_flow_goes_on(
    tmp_path: Path, kafka_small_messages: str,
) -> None:
    """200 kB of \\x01: its dead letter, JSON-escaped, would be 1.2 MB; the broker takes 100 kB at most."""
    config, topics = setup_job(tmp_path, kafka_small_messages)
    poison = b"\x01" * 200_000
    produce(kafka_small_messages, topics["inference"], [poison, *LINES])
    recovery = str(tmp_path / "recovery")

    done = run_until_end(config, kafka_small_messages, "--recovery-dir", recovery)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["events"] == len(LINES) + 1  # the events after the poison were read and used
    assert summary["windows"] > 0 and summary["decoded"] > 0.9 * len(LINES)

    letters = [json.loads(value) for _, value in read_all(kafka_small_messages, topics["dlq"])]
    sizes = [size for size, _ in read_all(kafka_small_messages, topics["dlq"])]
    assert max(sizes) < 100_000
    (letter,) = [d for d in letters if d["offset"] == 0]
    assert letter["reason"] == "invalid_json" and letter["value_truncated"] is True
    assert letter["value_size"] == len(poison)
    assert letter["value_sha256"] == hashlib.sha256(poison).hexdigest()
    assert letter["value"] and set(letter["value"]) == {"\x01"}
    assert len(json.dumps(letter["value"])) - 2 <= 64 * 1024  # the head, as written in JSON
    # Every other dead letter is whole.
    assert all(d["value_truncated"] is False for d in letters if d["offset"] != 0)
    assert summary["dlq"]["total"] == len(letters)

    # A restart with the same recovery folder does not crash on it again.
    again = run_until_end(config, kafka_small_messages, "--recovery-dir", recovery)
    assert again.returncode == 0, again.stderr[-3000:]


@pytest.mark.kafka
def test_a_dead_letter_the_broker_refuses_is_spilled_and_the_flow_goes_on(
    tmp_path: Path, kafka_small_messages: str,
) -> None:
    """600 kB that are not UTF-8, with dead letters allowed 300 kB: the broker (100 kB) refuses it."""
    config, topics = setup_job(tmp_path, kafka_small_messages,
                               "dlq_max_value_bytes: 300000\nproduce_backoff: 100ms\nspill_dir: spill")
    poison = bytes(range(128, 256)) * (600_000 // 128)
    produce(kafka_small_messages, topics["inference"], [poison, *LINES])

    done = run_until_end(config, kafka_small_messages)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["events"] == len(LINES) + 1 and summary["windows"] > 0

    spill = tmp_path / "spill" / f"{topics['dlq']}.0.jsonl"
    (entry,) = [json.loads(line) for line in spill.read_text().splitlines()]
    assert entry["error"] == "MSG_SIZE_TOO_LARGE" and entry["topic"] == topics["dlq"]
    letter = json.loads(entry["value"])
    assert (letter["offset"], letter["reason"], letter["value_size"]) == (0, "not_utf8", len(poison))
    assert letter["value_sha256"] == hashlib.sha256(poison).hexdigest()
    # One line says so; the other dead letters reached the topic.
    said = [line for line in done.stderr.splitlines() if "not delivered" in line]
    assert len(said) == 1 and "MSG_SIZE_TOO_LARGE" in said[0] and str(spill) in said[0], done.stderr[-2000:]
    delivered = [json.loads(value) for _, value in read_all(kafka_small_messages, topics["dlq"])]
    assert len(delivered) == summary["dlq"]["total"] - 1 and all(d["offset"] != 0 for d in delivered)


# --------------------------------------------------------------------------- broker unreachable or lost


def test_an_unreachable_broker_gives_one_clear_line_few_logs_and_sigterm_exits_0(
    tmp_path: Path, jobs: list[Job],
) -> None:
    config, _ = setup_job(tmp_path, None)
    job = Job(config, CLOSED, tmp_path / "job.log")
    jobs.append(job)
    line = f"drift: cannot reach Kafka at {CLOSED} ("
    job.wait_for("line saying Kafka cannot be reached", lambda: line in job.text(), timeout=30)
    assert time.monotonic() - job.started < 30
    status, document = job.readyz()
    assert status == 503 and "Connection refused" in document["problems"]["kafka"], document
    time.sleep(10)
    lines = job.text().splitlines()
    # Before: about 20 librdkafka lines a second. Now the line above once, and
    # librdkafka's own at most once a minute per kind.
    assert sum(line in text for text in lines) == 1, lines
    assert len(lines) <= 8, lines
    assert job.readyz()[0] == 503

    code, seconds = job.signal(signal.SIGTERM)
    assert code == 0 and seconds < STOP_SECONDS, (code, seconds, job.text()[-2000:])


@pytest.mark.kafka
def test_sigint_while_connected_and_sigterm_once_the_broker_is_lost_exit_0(
    tmp_path: Path, jobs: list[Job],
) -> None:
    broker = broker_module().KafkaBroker().start(timeout=120)
    bootstrap = broker.bootstrap
    try:
        config, topics = setup_job(tmp_path, bootstrap)
        produce(bootstrap, topics["inference"], LINES)
        recovery = str(tmp_path / "recovery")

        connected = Job(config, bootstrap, tmp_path / "connected.log", "--recovery-dir", recovery)
        jobs.append(connected)
        connected.wait_for("/readyz 200", lambda: connected.readyz()[0] == 200, timeout=60)
        code, seconds = connected.signal(signal.SIGINT)
        assert code == 0 and seconds < STOP_SECONDS, (code, seconds, connected.text()[-2000:])

        lost = Job(config, bootstrap, tmp_path / "lost.log", "--recovery-dir", recovery)
        jobs.append(lost)
        lost.wait_for("/readyz 200", lambda: lost.readyz()[0] == 200, timeout=60)
        broker.stop()
        line = f"drift: lost Kafka at {bootstrap} ("
        lost.wait_for("line saying Kafka was lost", lambda: line in lost.text(), timeout=30)
        status, document = lost.readyz()
        assert status == 503 and "kafka" in document["problems"], document
        code, seconds = lost.signal(signal.SIGTERM)
        assert code == 0 and seconds < STOP_SECONDS, (code, seconds, lost.text()[-2000:])
    finally:
        broker.stop()
