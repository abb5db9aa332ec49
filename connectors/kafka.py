"""Kafka: the inference source and the JSON output topics."""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

import orjson
from bytewax.connectors.kafka import KafkaSource
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, Producer

from drift.events import RawMessage

X = TypeVar("X")


def inference_source(
    bootstrap: str, topic: str, settings: dict[str, str], tail: bool = True, batch_size: int = 1000
) -> KafkaSource:
    """Every partition of ``topic``, from the beginning unless resumed.

    Errors from the consumer do not stop the flow: they arrive as items and are
    turned into dead letters with reason ``kafka_error`` by :func:`to_raw`.
    """
    return KafkaSource(
        brokers=[bootstrap], topics=[topic], tail=tail, starting_offset=OFFSET_BEGINNING,
        add_config=dict(settings), batch_size=batch_size, raise_on_errors=False,
    )


def to_raw(message: Any) -> RawMessage:
    """A Bytewax Kafka message or error as a :class:`RawMessage`."""
    error = getattr(message, "err", None)
    if error is not None:
        inner = message.msg
        return RawMessage(
            value=inner.value, key=inner.key, topic=inner.topic or "?",
            partition=inner.partition if inner.partition is not None else -1,
            offset=inner.offset if inner.offset is not None else -1, error=str(error),
        )
    return RawMessage(
        value=message.value, key=message.key, topic=message.topic,
        partition=message.partition, offset=message.offset,
    )


class _JsonPartition(StatelessSinkPartition[X], Generic[X]):
    def __init__(self, producer: Producer, topic: str, encode: Callable[[X], tuple[bytes | None, bytes]]) -> None:
        self._producer = producer
        self._topic = topic
        self._encode = encode

    def write_batch(self, items: list[X]) -> None:
        for item in items:
            key, value = self._encode(item)
            while True:
                try:
                    self._producer.produce(self._topic, value=value, key=key)
                    break
                except BufferError:
                    # The local queue is full: let deliveries drain, then retry.
                    self._producer.poll(0.1)
            self._producer.poll(0)
        self._producer.flush()

    def close(self) -> None:
        self._producer.flush()


class JsonTopicSink(DynamicSink[X], Generic[X]):
    """Writes each item as one JSON message; ``key_of`` picks the message key."""

    def __init__(
        self, bootstrap: str, topic: str, settings: dict[str, str],
        to_dict: Callable[[X], dict[str, Any]], key_of: Callable[[X], str | None],
    ) -> None:
        self._config = {"bootstrap.servers": bootstrap, **settings}
        self._topic = topic
        self._to_dict = to_dict
        self._key_of = key_of

    def _encode(self, item: X) -> tuple[bytes | None, bytes]:
        key = self._key_of(item)
        return (key.encode() if key is not None else None, orjson.dumps(self._to_dict(item)))

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonPartition[X]:
        return _JsonPartition(Producer(self._config), self._topic, self._encode)
