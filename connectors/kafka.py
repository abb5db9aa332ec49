"""Kafka: the inference source and the JSON output topics.

The consumer lag of every partition read is exported by Bytewax's own source
as the gauge ``bytewax_kafka_consumer_lag{step_id, topic, partition}`` in the
default Prometheus registry, so ``/metrics`` serves it with drift's metrics.
"""

from __future__ import annotations

import threading
from datetime import datetime
from itertools import repeat
from operator import is_not
from typing import Any, Callable, Generic, Optional, TypeVar, cast

import orjson
from bytewax.connectors.kafka import KafkaSource, _KafkaSourcePartition
from bytewax.inputs import AbortExecution, FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, Producer

from drift.errors import DriftError
from drift.events import RawMessage, raw_messages

X = TypeVar("X")

LAG_METRIC = "bytewax_kafka_consumer_lag"
"""Name of the per-partition consumer lag gauge (set by Bytewax's ``KafkaSource``)."""


class KafkaDeliveryError(DriftError):
    """An output message could not be delivered to its topic."""


class _StoppablePartition(StatefulSourcePartition[Any, Optional[int]]):
    """One Kafka partition that ends the execution once ``stop`` is set.

    Bytewax's ``AbortExecution`` from ``next_batch`` ends the run without a
    final snapshot, like a crash: a restart with the same recovery folder
    resumes from the last completed snapshot, so nothing read after it is lost.
    """

    def __init__(self, inner: StatefulSourcePartition[Any, Optional[int]], stop: threading.Event) -> None:
        self._inner = inner
        self._stop = stop

    def next_batch(self) -> list[Any]:
        if self._stop.is_set():
            raise AbortExecution()
        # One item per poll: the flow decodes and counts a whole batch at once.
        batch = list(self._inner.next_batch())
        return [batch] if batch else []

    def next_awake(self) -> Optional[datetime]:
        return self._inner.next_awake()

    def snapshot(self) -> Optional[int]:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class _RawKafkaPartition(_KafkaSourcePartition):
    """Bytewax's Kafka partition (consumer, offsets, snapshots, lag gauge), whose batches
    are :class:`RawMessage` lists built straight from the poll.

    Bytewax's own ``next_batch`` makes a ``KafkaSourceMessage`` per message (headers,
    latency and timestamp included) that :func:`to_raw` then copied into a
    :class:`RawMessage`: 60% of the JSON flow. Here a poll's values, keys and offsets are
    read with C loops and become ``RawMessage`` objects directly; from a poll's first
    error (or end of partition) on, messages are read one by one.
    """

    def next_batch(self) -> list[RawMessage]:  # type: ignore[override]
        if self._eof:
            raise StopIteration()
        messages = self._consumer.consume(self._batch_size, 0.001)
        if not messages:
            return []
        # ``is not``: confluent-kafka's KafkaError compared with ``==`` to None sets a stray exception.
        failed = list(map(is_not, map(Message.error, messages), repeat(None)))
        first_error = failed.index(True) if any(failed) else len(messages)
        batch = self._messages(messages[:first_error])
        if first_error < len(messages):
            batch.extend(self._with_errors(messages[first_error:]))
        return batch

    def _messages(self, messages: list[Message]) -> list[RawMessage]:
        """Messages without an error, with C loops."""
        if not messages:
            return []
        offsets = cast(list[int], list(map(Message.offset, messages)))  # set on every message without an error
        self._offset = offsets[-1] + 1  # resume from the next message
        return raw_messages(
            list(map(Message.value, messages)), self._topic, self._part_idx, offsets,
            list(map(Message.key, messages)))

    def _with_errors(self, messages: list[Message]) -> list[RawMessage]:
        """From the first message with an error on, one by one (as Bytewax's own partition does)."""
        batch: list[RawMessage] = []
        last_offset = None
        for message in messages:
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                self._eof = True  # StopIteration at the next call: this batch is emitted first
                break
            offset, partition = message.offset(), message.partition()
            batch.append(RawMessage(
                value=message.value(), key=message.key(), topic=message.topic() or self._topic,
                partition=partition if partition is not None else self._part_idx,
                offset=offset if offset is not None else -1, error=None if error is None else str(error),
            ))
            if offset is not None and offset >= 0:
                last_offset = offset
        if last_offset is not None:
            self._offset = last_offset + 1
        return batch


class InferenceSource(FixedPartitionedSource[Any, Optional[int]]):
    """Bytewax's ``KafkaSource``, stoppable, and reporting when the dataflow starts.

    Every worker lists the partitions when the dataflow starts; ``on_start``
    is called then (with the partition names), which is the moment the flow
    is running and can be reported ready. Setting ``stop`` ends the run at
    the next batch of every partition. Partitions, offsets and snapshots are
    those of the wrapped ``KafkaSource``.
    """

    def __init__(
        self, kafka: KafkaSource, on_start: Callable[[list[str]], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._kafka = kafka
        self._on_start = on_start
        self.stop = stop if stop is not None else threading.Event()

    def list_parts(self) -> list[str]:
        parts = list(self._kafka.list_parts())
        if self._on_start is not None:
            self._on_start(parts)
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[int]) -> _StoppablePartition:
        inner = self._kafka.build_part(step_id, for_part, resume_state)
        if isinstance(inner, _KafkaSourcePartition):
            # Same consumer, offsets and metrics; only the batches it returns differ.
            inner.__class__ = _RawKafkaPartition
        return _StoppablePartition(inner, self.stop)


def inference_source(
    bootstrap: str, topic: str, settings: dict[str, str], tail: bool = True, batch_size: int = 1000,
    on_start: Callable[[list[str]], None] | None = None, stop: threading.Event | None = None,
) -> InferenceSource:
    """Every partition of ``topic``, from the beginning unless resumed.

    Each Kafka partition is one input partition of the dataflow, read by one
    worker; with recovery its offset is part of every snapshot, so a resumed
    run continues from the offsets of the last snapshot (not a consumer group).
    Errors from the consumer do not stop the flow: they arrive as items and are
    turned into dead letters with reason ``kafka_error`` by :func:`to_raw`.
    """
    kafka = KafkaSource(
        brokers=[bootstrap], topics=[topic], tail=tail, starting_offset=OFFSET_BEGINNING,
        add_config=dict(settings), batch_size=batch_size, raise_on_errors=False,
    )
    return InferenceSource(kafka, on_start=on_start, stop=stop)


def to_raw(message: Any) -> RawMessage:
    """A Bytewax Kafka message or error as a :class:`RawMessage` (which it returns as is)."""
    if message.__class__ is RawMessage:
        return message  # type: ignore[no-any-return,unused-ignore]
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


# Producer settings for the output topics. Idempotence keeps librdkafka's own
# retries (e.g. while a broker restarts) from writing a message twice; a
# message that still cannot be delivered within the timeout fails the batch.
PRODUCER_SETTINGS = {
    "enable.idempotence": "true",
    "acks": "all",
    "linger.ms": "5",
    "message.timeout.ms": "120000",
}


class _JsonPartition(StatelessSinkPartition[X], Generic[X]):
    def __init__(self, producer: Producer, topic: str, encode: Callable[[X], tuple[bytes | None, bytes]]) -> None:
        self._producer = producer
        self._topic = topic
        self._encode = encode
        self._failures: list[str] = []

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(
                f"topic {message.topic()!r} partition {message.partition()}: {error.str()}"
            )

    def write_batch(self, items: list[X]) -> None:
        for item in items:
            key, value = self._encode(item)
            while True:
                try:
                    self._producer.produce(self._topic, value=value, key=key, on_delivery=self._delivered)
                    break
                except BufferError:
                    # The local queue is full: let deliveries drain, then retry.
                    self._producer.poll(0.1)
            self._producer.poll(0)
        # The batch is done only when the broker has every message: a worker
        # never reaches the next snapshot with outputs still in flight, which
        # is what makes outputs at-least-once across a crash.
        self._producer.flush()
        self._raise_failures()

    def _raise_failures(self) -> None:
        if self._failures:
            failures, self._failures = self._failures, []
            raise KafkaDeliveryError(
                f"{len(failures)} message(s) to {self._topic!r} were not delivered; "
                f"first: {failures[0]}. The job stops so that a restart with "
                "--recovery-dir writes them again from the last snapshot."
            )

    def close(self) -> None:
        self._producer.flush()
        self._raise_failures()


class JsonTopicSink(DynamicSink[X], Generic[X]):
    """Writes each item as one JSON message; ``key_of`` picks the message key."""

    def __init__(
        self, bootstrap: str, topic: str, settings: dict[str, str],
        to_dict: Callable[[X], dict[str, Any]], key_of: Callable[[X], str | None],
    ) -> None:
        self._config = {"bootstrap.servers": bootstrap, **PRODUCER_SETTINGS, **settings}
        self._topic = topic
        self._to_dict = to_dict
        self._key_of = key_of

    def _encode(self, item: X) -> tuple[bytes | None, bytes]:
        key = self._key_of(item)
        return (key.encode() if key is not None else None, orjson.dumps(self._to_dict(item)))

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonPartition[X]:
        return _JsonPartition(Producer(self._config), self._topic, self._encode)
