"""The inference source: Bytewax's Kafka source, one partition per topic partition, reading raw
messages (errors included) that a stop request can end between batches.
"""

from __future__ import annotations

import threading
from datetime import datetime
from functools import partial
from itertools import repeat
from operator import is_not
from typing import Any, Callable, Optional, cast

from bytewax.connectors.kafka import KafkaSource, _KafkaSourcePartition
from bytewax.inputs import AbortExecution, FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message

from connectors.kafka.clients import KafkaUnreachable, MetadataClient, client_config
from drift.events import RawMessage, raw_messages


LAG_METRIC = "bytewax_kafka_consumer_lag"
"""Name of the per-partition consumer lag gauge (set by Bytewax's ``KafkaSource``)."""


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
        stop: threading.Event | None = None, metadata: Callable[[], MetadataClient] | None = None,
        topic: str = "", timeout: float = 5.0,
    ) -> None:
        self._kafka = kafka
        self._on_start = on_start
        self.stop = stop if stop is not None else threading.Event()
        self._metadata = metadata
        self._topic = topic
        self._timeout = timeout

    def list_parts(self) -> list[str]:
        parts = self._list_parts()
        if self._on_start is not None:
            self._on_start(parts)
        return parts

    def _list_parts(self) -> list[str]:
        """The partitions, asked with a timeout and again until they come or ``stop`` is set.

        Bytewax's own listing waits for the broker without a timeout, in the
        thread that would run the signal handler. Stopped before an answer, the
        source has no partitions and the dataflow ends at once.
        """
        if self._metadata is None:
            return list(self._kafka.list_parts())
        client = self._metadata()
        while True:
            try:
                return [f"{index}-{self._topic}" for index in client.partitions(self._topic, self._timeout)]
            except KafkaUnreachable:
                if self.stop.wait(0.2):
                    return []

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[int]) -> _StoppablePartition:
        inner = self._kafka.build_part(step_id, for_part, resume_state)
        if isinstance(inner, _KafkaSourcePartition):
            # Same consumer, offsets and metrics; only the batches it returns differ.
            inner.__class__ = _RawKafkaPartition
        return _StoppablePartition(inner, self.stop)


def inference_source(
    bootstrap: str, topic: str, settings: dict[str, str], tail: bool = True, batch_size: int = 1000,
    on_start: Callable[[list[str]], None] | None = None, stop: threading.Event | None = None,
    timeout: float = 5.0,
) -> InferenceSource:
    """Every partition of ``topic``, from the beginning unless resumed.

    Each Kafka partition is one input partition of the dataflow, read by one
    worker; with recovery its offset is part of every snapshot, so a resumed
    run continues from the offsets of the last snapshot (not a consumer group).
    Errors from the consumer do not stop the flow: they arrive as items and are
    turned into dead letters with reason ``kafka_error`` by :func:`to_raw`.
    """
    config = client_config(bootstrap, settings)
    del config["bootstrap.servers"]
    kafka = KafkaSource(
        brokers=[bootstrap], topics=[topic], tail=tail, starting_offset=OFFSET_BEGINNING,
        add_config=config, batch_size=batch_size, raise_on_errors=False,
    )
    return InferenceSource(
        kafka, on_start=on_start, stop=stop, metadata=partial(MetadataClient, bootstrap, settings), topic=topic,
        timeout=timeout,
    )


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
