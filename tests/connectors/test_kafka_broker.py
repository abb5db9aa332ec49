"""The development Kafka broker behaves like Kafka: topics, partitions, ordering, groups.

These tests guard the test infrastructure itself; if they fail, every other
``kafka`` test would fail for reasons unrelated to drift.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.kafka

MESSAGES = 100

Record = tuple[bytes | None, bytes | None]


def _partition(msg: Message) -> int:
    partition = msg.partition()
    assert partition is not None, f"message without a partition: {msg!r}"
    return partition


def test_produced_messages_come_back_in_order_per_partition(
    kafka_bootstrap: str, kafka_topics: Callable[..., str]
) -> None:
    topic = kafka_topics("roundtrip", partitions=3)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    delivered: dict[int, list[Record]] = defaultdict(list)
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(f"{msg.key()!r}: {err}")
        else:
            delivered[_partition(msg)].append((msg.key(), msg.value()))

    for i in range(MESSAGES):
        producer.produce(topic, key=f"key-{i % 7}".encode(), value=f"value-{i:03d}".encode(), on_delivery=on_delivery)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} messages still unsent after 30s"
    assert failures == [], f"delivery failed: {failures}"
    assert sum(len(v) for v in delivered.values()) == MESSAGES

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumed: dict[int, list[Record]] = defaultdict(list)
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        total = 0
        while total < MESSAGES and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, f"consumer error: {msg.error()}"
            consumed[_partition(msg)].append((msg.key(), msg.value()))
            total += 1
    finally:
        consumer.close()

    assert total == MESSAGES, f"expected {MESSAGES} messages back within 60s, received {total}"
    assert dict(consumed) == dict(delivered), "per-partition order or content differs from what was produced"
    # Same key, same partition: the property keyed state in the flows relies on.
    partition_of: dict[bytes | None, set[int]] = defaultdict(set)
    for partition, records in consumed.items():
        for key, _value in records:
            partition_of[key].add(partition)
    assert all(len(p) == 1 for p in partition_of.values()), f"a key landed in several partitions: {dict(partition_of)}"
    # Every value came back exactly once.
    values = sorted(value or b"" for records in consumed.values() for _key, value in records)
    assert values == [f"value-{i:03d}".encode() for i in range(MESSAGES)]


def test_topic_is_created_with_the_requested_partitions(kafka_bootstrap: str, kafka_topics: Callable[..., str]) -> None:
    topic = kafka_topics("partitions", partitions=3)
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic=topic, timeout=10)
    assert topic in metadata.topics, f"topic {topic} missing from metadata: {sorted(metadata.topics)}"
    assert sorted(metadata.topics[topic].partitions) == [0, 1, 2]
