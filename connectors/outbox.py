"""Send keyed JSON records to a Kafka topic and report which were acknowledged.

Used by ``drift review approve`` / ``drift review publish`` to deliver the
retraining requests kept in the ticket store's outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drift.config import KafkaConfig


def kafka_sender(kafka: KafkaConfig, topic: str, timeout_s: float = 10.0) -> Any:
    """A :data:`drift.tickets.review.Sender` producing to ``topic`` with acks from all replicas."""

    def send(records: Sequence[tuple[str, bytes]]) -> set[str]:
        from confluent_kafka import Producer

        delivered: set[str] = set()

        def on_delivery(err: Any, msg: Any) -> None:
            if err is None:
                delivered.add(msg.key().decode())

        producer = Producer({
            "bootstrap.servers": kafka.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            # Give up quickly: the outbox keeps what was not acknowledged.
            "message.timeout.ms": int(timeout_s * 1000),
            "socket.connection.setup.timeout.ms": int(timeout_s * 1000),
            **kafka.client_settings(),
        })
        for key, value in records:
            producer.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery)
        producer.flush(timeout_s + 2)
        return delivered

    return send
