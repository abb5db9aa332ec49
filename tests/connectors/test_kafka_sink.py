"""Output topics never stop the flow: refused messages are retried, then spilled; logs are rate limited.

The refusals are real: a broker whose ``message.max.bytes`` is 100 kB refuses a
200 kB message (a delivery report), the producer itself refuses one above its
own 1 MB limit (an exception from ``produce``), and a closed port times out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import REGISTRY

from connectors.kafka import JsonTopicSink, KafkaUnreachable, KafkaWatch, MetadataClient, RateLimitFilter

SMALL_MESSAGE_MAX_BYTES = 100_000  # of the kafka_small_messages broker (tests/conftest.py)

CLOSED = "127.0.0.1:1"
"""A port nothing listens on."""


def broker_helper() -> Any:
    """deploy/kafka/broker.py, as tests/conftest.py loads it."""
    import sys

    return sys.modules["drift_deploy_kafka_broker"]


def _sink(bootstrap: str, topic: str, spill: Path, **options: Any) -> Any:
    settings = options.pop("settings", {})
    sink = JsonTopicSink(bootstrap, topic, settings, lambda item: item, lambda item: item.get("id"),
                         spill_dir=spill, **options)
    return sink.build("out", 0, 1)


def _spilled(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _counter(name: str, topic: str, error: str) -> float:
    return REGISTRY.get_sample_value(name, {"topic": topic, "error": error}) or 0.0


def _read(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[dict[str, Any]] = []
        while len(out) < high:
            message = consumer.poll(10)
            assert message is not None and message.error() is None
            out.append(json.loads(message.value()))
        return out
    finally:
        consumer.close()


@pytest.mark.kafka
def test_refused_messages_are_spilled_and_the_others_delivered(kafka_small_messages: str, tmp_path: Path) -> None:
    topic = f"out-{uuid.uuid4().hex[:10]}"
    broker_helper().create_topics(kafka_small_messages, [topic])
    refused_by_broker = {"id": "broker", "pad": "x" * (2 * SMALL_MESSAGE_MAX_BYTES)}
    refused_by_client = {"id": "client", "pad": "y" * 1_200_000}  # above the producer's own 1 MB
    good = [{"id": f"good-{i}"} for i in range(5)]
    before = _counter("drift_kafka_spilled_total", topic, "MSG_SIZE_TOO_LARGE")

    partition = _sink(kafka_small_messages, topic, tmp_path, backoff_s=0.05)
    started = time.monotonic()
    partition.write_batch([good[0], refused_by_broker, *good[1:3], refused_by_client, *good[3:]])
    partition.close()

    assert time.monotonic() - started < 20
    # The good messages of the refused record batch were sent again alone, and arrived.
    assert sorted(m["id"] for m in _read(kafka_small_messages, topic)) == sorted(g["id"] for g in good)
    spilled = _spilled(tmp_path / f"{topic}.0.jsonl")
    assert sorted(s["key"] for s in spilled) == ["broker", "client"]
    for entry in spilled:
        assert entry["error"] == "MSG_SIZE_TOO_LARGE" and entry["topic"] == topic
        original = refused_by_broker if entry["key"] == "broker" else refused_by_client
        assert json.loads(entry["value"]) == original
    assert _counter("drift_kafka_spilled_total", topic, "MSG_SIZE_TOO_LARGE") - before == 2


def test_a_broker_that_does_not_answer_gets_retries_with_backoff_then_a_spill(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    topic = f"out-{uuid.uuid4().hex[:10]}"
    partition = _sink(CLOSED, topic, tmp_path, attempts=3, backoff_s=0.2, settings={"message.timeout.ms": "500"})
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="drift.kafka"):
        partition.write_batch([{"id": "a"}, {"id": "b"}])
    elapsed = time.monotonic() - started
    # 3 attempts of 0.5 s and waits of 0.2 s and 0.4 s between them.
    assert 2.0 < elapsed < 10, elapsed
    spilled = _spilled(tmp_path / f"{topic}.0.jsonl")
    assert [(s["key"], s["error"], s["attempts"]) for s in spilled] == [
        ("a", "_MSG_TIMED_OUT", 3), ("b", "_MSG_TIMED_OUT", 3)]
    assert _counter("drift_kafka_delivery_errors_total", topic, "_MSG_TIMED_OUT") == 6
    assert _counter("drift_kafka_spilled_total", topic, "_MSG_TIMED_OUT") == 2
    lines = [r.getMessage() for r in caplog.records if topic in r.getMessage()]
    assert len(lines) == 1 and "2 message(s)" in lines[0] and str(tmp_path) in lines[0], lines


def test_a_stop_ends_the_wait_for_a_broker_at_once(tmp_path: Path) -> None:
    topic = f"out-{uuid.uuid4().hex[:10]}"
    stop = threading.Event()
    partition = _sink(CLOSED, topic, tmp_path, stop=stop)  # message.timeout.ms: 2 minutes
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    partition.write_batch([{"id": "a"}])
    assert time.monotonic() - started < 3
    assert [(s["key"], s["error"]) for s in _spilled(tmp_path / f"{topic}.0.jsonl")] == [("a", "stopped")]


def test_metadata_requests_have_a_timeout_and_say_why_they_failed() -> None:
    client = MetadataClient(CLOSED, {})
    started = time.monotonic()
    with pytest.raises(KafkaUnreachable, match=r"Connect to ipv4#127\.0\.0\.1:1 failed: Connection refused"):
        client.partitions("events", timeout=1.0)
    assert time.monotonic() - started < 3


def test_the_watch_reports_each_change_once() -> None:
    changes: list[str | None] = []
    watch = KafkaWatch(CLOSED, "events", {}, timeout=0.3, on_change=changes.append, interval=0.3).start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not changes:
            time.sleep(0.1)
        time.sleep(1.5)  # several more failed checks
    finally:
        watch.close()
    assert len(changes) == 1 and changes[0] is not None and "Connection refused" in changes[0], changes
    assert not watch.reachable.is_set()


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("drift.kafka", logging.ERROR, __file__, 1, message, None, None)


def test_rate_limit_lets_one_message_of_a_kind_through_per_interval() -> None:
    now = [0.0]
    limit = RateLimitFilter(interval=60, clock=lambda: now[0])
    refused: Callable[[int], logging.LogRecord] = lambda ms: _record(  # noqa: E731
        f"FAIL [rdkafka#consumer-2] 127.0.0.1:1: Connect failed (after {ms}ms in state CONNECT)")
    assert limit.filter(refused(0))
    assert not any(limit.filter(refused(ms)) for ms in range(1, 1000))  # 999 more within the minute
    assert limit.filter(_record("another kind of line"))
    now[0] = 61.0
    record = refused(5)
    assert limit.filter(record)
    assert record.getMessage().endswith("(999 more like it in the last 60s)")
    assert not limit.filter(refused(6))


def test_the_spill_file_is_json_lines_with_the_original_message(tmp_path: Path) -> None:
    topic = f"out-{uuid.uuid4().hex[:10]}"
    stop = threading.Event()
    stop.set()
    partition = _sink(CLOSED, topic, tmp_path, stop=stop)
    value = {"id": "k", "value": "\u00e9\x01"}
    partition.write_batch([value])
    (entry,) = _spilled(tmp_path / f"{topic}.0.jsonl")
    assert set(entry) == {"spilled_at", "topic", "key", "value", "error", "detail", "attempts"}
    assert json.loads(entry["value"]) == value
