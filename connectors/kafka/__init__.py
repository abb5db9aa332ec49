"""Kafka: the inference source, the JSON output topics, and the job's view of the broker.

The consumer lag of every partition read is exported by Bytewax's own source
as the gauge ``bytewax_kafka_consumer_lag{step_id, topic, partition}`` in the
default Prometheus registry, so ``/metrics`` serves it with drift's metrics.

Every client the job makes logs through the Python logger ``drift.kafka``
(librdkafka's own lines included), where one line of a kind passes at most once
per :data:`LOG_REPEAT_SECONDS`; every metadata request has a timeout; and an
output message the broker refuses is retried, then spilled to a local file: a
sink never raises into the dataflow.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from itertools import repeat
from operator import is_not
from pathlib import Path
from typing import IO, Any, Callable, Generic, Optional, TypeVar, cast

import orjson
from bytewax.connectors.kafka import KafkaSource, _KafkaSourcePartition
from bytewax.inputs import AbortExecution, FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined,unused-ignore]

from drift.errors import DriftError
from drift.events import RawMessage, raw_messages
from drift.metrics import KAFKA_DELIVERY_ERRORS, KAFKA_SPILLED

X = TypeVar("X")

LAG_METRIC = "bytewax_kafka_consumer_lag"
"""Name of the per-partition consumer lag gauge (set by Bytewax's ``KafkaSource``)."""


# --------------------------------------------------------------------------- logging

KAFKA_LOGGER = "drift.kafka"
"""The logger of every Kafka client of the job (librdkafka's lines and drift's own)."""

LOG_REPEAT_SECONDS = 60.0
"""A line of one kind (digits aside) is logged at most once per this many seconds."""

_DIGITS = re.compile(r"\d+")


class RateLimitFilter(logging.Filter):
    """Lets a message through at most once per ``interval`` seconds.

    Messages that differ only in their numbers (``after 0ms``, ``consumer-2``,
    ``3 identical error(s) suppressed``) are one kind: a broker that refuses
    connections twenty times a second gives one line a minute, which then says
    how many like it were held back.
    """

    MAX_KINDS = 1000

    def __init__(self, interval: float = LOG_REPEAT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = _DIGITS.sub("#", message)
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._held[kind] = self._held.get(kind, 0) + 1
                return False
            if len(self._last) >= self.MAX_KINDS:
                oldest = min(self._last, key=self._last.__getitem__)
                del self._last[oldest]
                self._held.pop(oldest, None)
            self._last[kind] = now
            held = self._held.pop(kind, 0)
        if held:
            record.msg, record.args = f"{message} ({held} more like it in the last {self._interval:g}s)", None
        return True


_logger_lock = threading.Lock()


def kafka_logger() -> logging.Logger:
    """The ``drift.kafka`` logger, set up once: rate limited, WARNING and above.

    Without a handler on the root logger (the command line configures none) its
    lines go to stderr as ``drift: kafka: LEVEL MESSAGE``; an application that
    configures logging gets them through its own handlers.
    """
    logger = logging.getLogger(KAFKA_LOGGER)
    with _logger_lock:
        if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
            logger.addFilter(RateLimitFilter())
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)
            if not logging.getLogger().handlers and not logger.handlers:
                handler = logging.StreamHandler()
                handler.setFormatter(logging.Formatter("drift: kafka: %(levelname)s %(message)s"))
                logger.addHandler(handler)
                logger.propagate = False
    return logger


def client_config(bootstrap: str, settings: dict[str, str]) -> dict[str, Any]:
    """librdkafka configuration of one of the job's clients: ``settings`` and the logger.

    ``log.connection.close`` is off: brokers close idle connections, which is not news.
    """
    return {"bootstrap.servers": bootstrap, "logger": kafka_logger(), "log.connection.close": False, **settings}


# --------------------------------------------------------------------------- metadata


class KafkaUnreachable(DriftError):
    """The broker did not answer a metadata request in time (or the topic is missing)."""


_BROKER_PREFIX = re.compile(r"^\S+/\S+: ")
_STATE_SUFFIX = re.compile(r"\s*\(after \d+ms in state \w+\)$")


def _readable(error: KafkaError | str) -> str:
    """``Connect to ipv4#127.0.0.1:1 failed: Connection refused`` from librdkafka's longer text."""
    text = error.str() if isinstance(error, KafkaError) else error
    return _STATE_SUFFIX.sub("", _BROKER_PREFIX.sub("", text))


class MetadataClient:
    """An admin client whose every request has a timeout, and which remembers why the
    last one failed in words (librdkafka's transport error, not only ``Timed out``)."""

    def __init__(self, bootstrap: str, settings: dict[str, str]) -> None:
        self.bootstrap = bootstrap
        self._errors: list[KafkaError] = []
        config: dict[str, Any] = {**client_config(bootstrap, settings), "error_cb": self._errors.append}
        self._admin = AdminClient(config)

    def partitions(self, topic: str, timeout: float) -> list[int]:
        """The partition ids of ``topic``; :class:`KafkaUnreachable` after ``timeout`` seconds."""
        self._errors.clear()
        try:
            metadata = self._admin.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            self._admin.poll(0)  # serves error_cb (and the log lines) of the attempt
            transport = [e for e in self._errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
            cause = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
            raise KafkaUnreachable(_readable(transport[-1] if transport else cause)) from None
        finally:
            self._admin.poll(0)
        found = metadata.topics.get(topic) if metadata.topics is not None else None
        if found is None or found.error is not None:
            why = found.error.str() if found is not None and found.error is not None else "not in the metadata"
            raise KafkaUnreachable(f"topic {topic!r}: {why}")
        return sorted(found.partitions or {})


class KafkaWatch:
    """Asks the broker for a topic's metadata every ``interval`` seconds, from a daemon thread.

    ``on_change`` is called with None when the topic is reachable, and with the reason
    when it is not, once per change (the first result included). ``reachable`` is set
    while the last request succeeded.
    """

    def __init__(
        self, bootstrap: str, topic: str, settings: dict[str, str], timeout: float,
        on_change: Callable[[str | None], None], interval: float = 5.0,
    ) -> None:
        self.reachable = threading.Event()
        self._client = MetadataClient(bootstrap, settings)
        self._topic = topic
        self._timeout = timeout
        self._interval = interval
        self._on_change = on_change
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drift-kafka-watch", daemon=True)
        self._last_ok: bool | None = None  # None: nothing reported yet

    def start(self) -> KafkaWatch:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()

    def _loop(self) -> None:
        while not self._closed.is_set():
            started = time.monotonic()
            try:
                self._client.partitions(self._topic, self._timeout)
                reason = None
            except KafkaUnreachable as exc:
                reason = str(exc)
            if self._closed.is_set():
                return
            if reason is None:
                self.reachable.set()
            else:
                self.reachable.clear()
            if (reason is None) != self._last_ok:
                self._last_ok = reason is None
                self._on_change(reason)
            self._closed.wait(max(self._interval - (time.monotonic() - started), 0.1))


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


# Producer settings for the output topics. Idempotence keeps librdkafka's own
# retries (e.g. while a broker restarts) from writing a message twice; a
# message still not delivered within the timeout is tried again by the sink
# (kafka.produce_attempts), then spilled.
PRODUCER_SETTINGS = {
    "enable.idempotence": "true",
    "acks": "all",
    "linger.ms": "5",
    "message.timeout.ms": "120000",
}

MAX_BACKOFF_SECONDS = 30.0
"""The longest wait between two tries of an output message."""

STOP_FLUSH_SECONDS = 1.0
"""Once the job stops, how long a sink still waits for the broker to confirm what it sent."""

# The broker refuses a whole record batch for these: such a message is tried again
# alone (without backoff), and spilled at once if refused alone too.
_REFUSED_BATCH = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE, KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_MSG, KafkaError.INVALID_RECORD, KafkaError._INVALID_ARG, KafkaError._BAD_MSG,
})


@dataclass
class _Outgoing:
    key: bytes | None
    value: bytes
    attempts: int = 0
    alone: bool = False
    """Sent in a record batch of its own (after the batch it was in was refused)."""


class SpillFile:
    """JSON lines of output messages that never reached their topic, appended and synced.

    One line per message: ``spilled_at``, ``topic``, ``key``, ``value`` (the message
    as the topic would have had it, a JSON document as text), ``error`` (the Kafka
    error name, or ``stopped``), ``detail`` and ``attempts``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handle: IO[bytes] | None = None

    def append(self, topic: str, messages: list[tuple[_Outgoing, str, str]]) -> None:
        """Write ``(message, error name, detail)`` entries; never raises (a lost spill is logged)."""
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        lines = b"".join(orjson.dumps({
            "spilled_at": now, "topic": topic,
            "key": out.key.decode("utf-8", "replace") if out.key is not None else None,
            "value": out.value.decode("utf-8", "replace"), "error": error, "detail": detail,
            "attempts": out.attempts,
        }) + b"\n" for out, error, detail in messages)
        try:
            with self._lock:
                if self._handle is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._handle = open(self.path, "ab")  # noqa: SIM115 - kept open, closed in close()
                self._handle.write(lines)
                self._handle.flush()
                os.fsync(self._handle.fileno())
        except OSError as exc:
            kafka_logger().error("%d message(s) to %r were neither delivered nor spilled to %s: %s",
                                 len(messages), topic, self.path, exc)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


_open_partitions: weakref.WeakSet[_JsonPartition[Any]] = weakref.WeakSet()


def spill_undelivered() -> int:
    """Spill what every open output partition has not seen delivered (the job is exiting now).

    For the stop watchdog: called from another thread while the dataflow may still
    run. Returns the number of messages spilled.
    """
    return sum(partition.abandon() for partition in list(_open_partitions))


class _JsonPartition(StatelessSinkPartition[X], Generic[X]):
    """One worker's producer for one topic.

    A batch is done when the broker has confirmed every message of it, or when
    what it refused is spilled: a message the broker refuses is sent again after
    ``backoff_s`` (doubled each time, at most :data:`MAX_BACKOFF_SECONDS`) up to
    ``attempts`` tries in all; then it goes to the spill file with a counter and
    a log line. A batch refused for what is in it (``MSG_SIZE_TOO_LARGE`` and the
    like) may hold good messages next to the bad one: each of its messages is
    sent again alone, and one refused alone is spilled at once.
    Nothing is raised into the dataflow. Once ``stop`` is set the partition waits
    at most :data:`STOP_FLUSH_SECONDS` more and spills what is unconfirmed.
    """

    def __init__(
        self, make_producer: Callable[[], Producer], topic: str, encode: Callable[[X], tuple[bytes | None, bytes]],
        spill: SpillFile, attempts: int = 3, backoff_s: float = 1.0, stop: threading.Event | None = None,
    ) -> None:
        self._make_producer = make_producer
        self._producer = make_producer()
        self._topic = topic
        self._encode = encode
        self._spill = spill
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._stop = stop if stop is not None else threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[int, _Outgoing] = {}
        self._failed: list[tuple[_Outgoing, KafkaError]] = []
        self._next_id = 0
        _open_partitions.add(self)

    def _delivered(self, message_id: int, error: KafkaError | None, _message: Message) -> None:
        with self._lock:
            out = self._in_flight.pop(message_id, None)
            if out is not None and error is not None:
                self._failed.append((out, error))

    def _send(self, out: _Outgoing) -> None:
        out.attempts += 1
        while True:
            with self._lock:
                message_id = self._next_id
                self._next_id += 1
                self._in_flight[message_id] = out
            try:
                self._producer.produce(self._topic, value=out.value, key=out.key,
                                       on_delivery=partial(self._delivered, message_id))
                self._producer.poll(0)
                return
            except BufferError:
                # The local queue is full: let deliveries drain, then try again.
                with self._lock:
                    self._in_flight.pop(message_id, None)
                if self._stop.is_set():
                    self._spill_now([(out, "stopped", "not sent before the job stopped")])
                    return
                self._producer.poll(0.1)
            except KafkaException as exc:
                error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else KafkaError(
                    KafkaError._FAIL, str(exc))
                with self._lock:
                    self._in_flight.pop(message_id, None)
                    self._failed.append((out, error))
                return

    def write_batch(self, items: list[X]) -> None:
        for item in items:
            key, value = self._encode(item)
            self._send(_Outgoing(key, value))
        # The batch is done only when the broker has every message (or it is
        # spilled): a worker never reaches the next snapshot with outputs still
        # in flight, which is what makes outputs at-least-once across a crash.
        self._settle()

    def _settle(self) -> None:
        while True:
            self._wait_in_flight()
            if self._stop.is_set():
                self.abandon()
                return
            with self._lock:
                failed, self._failed = self._failed, []
            if not failed:
                return
            retry: list[_Outgoing] = []
            alone: list[_Outgoing] = []
            spill: list[tuple[_Outgoing, str, str]] = []
            for out, error in failed:
                KAFKA_DELIVERY_ERRORS.labels(self._topic, error.name()).inc()
                if error.fatal():
                    # An idempotent producer that hit a fatal error refuses everything: start a new one.
                    self._producer = self._make_producer()
                if error.code() in _REFUSED_BATCH:
                    if out.alone:
                        spill.append((out, error.name(), error.str()))
                    else:
                        out.alone = True
                        alone.append(out)
                elif out.attempts >= self._attempts:
                    spill.append((out, error.name(), error.str()))
                else:
                    retry.append(out)
            self._spill_now(spill)
            for out in alone:
                self._send(out)
                self._wait_in_flight()  # nothing else is in its record batch
            if retry:
                tries = min(out.attempts for out in retry)
                if self._stop.wait(min(self._backoff_s * 2 ** (tries - 1), MAX_BACKOFF_SECONDS)):
                    self._spill_now([(out, "stopped", "not sent again before the job stopped") for out in retry])
                    return
                for out in retry:
                    self._send(out)

    def _wait_in_flight(self) -> None:
        """Serve delivery reports until none is pending; once stopping, for a short while only."""
        stopping_since: float | None = None
        while self._in_flight:
            if self._stop.is_set():
                stopping_since = stopping_since if stopping_since is not None else time.monotonic()
                if time.monotonic() - stopping_since > STOP_FLUSH_SECONDS:
                    return
            # In slices, so that a signal handler runs and ``stop`` is seen.
            self._producer.flush(0.2)

    def abandon(self) -> int:
        """Spill every message not confirmed (in flight or refused); returns how many."""
        with self._lock:
            pending = [(out, "stopped", "not confirmed by the broker when the job stopped")
                       for out in self._in_flight.values()]
            pending += [(out, error.name(), error.str()) for out, error in self._failed]
            self._in_flight.clear()
            self._failed = []
        self._spill_now(pending)
        return len(pending)

    def _spill_now(self, messages: list[tuple[_Outgoing, str, str]]) -> None:
        if not messages:
            return
        self._spill.append(self._topic, messages)
        by_error: dict[str, list[tuple[_Outgoing, str, str]]] = {}
        for entry in messages:
            by_error.setdefault(entry[1], []).append(entry)
        for error, entries in by_error.items():
            KAFKA_SPILLED.labels(self._topic, error).inc(len(entries))
            kafka_logger().error(
                "%d message(s) to %r not delivered (%s: %s) after %d attempt(s); written to %s",
                len(entries), self._topic, error, entries[0][2], max(e[0].attempts for e in entries),
                self._spill.path,
            )

    def close(self) -> None:
        self._settle()
        self._spill.close()
        _open_partitions.discard(self)


class JsonTopicSink(DynamicSink[X], Generic[X]):
    """Writes each item as one JSON message; ``key_of`` picks the message key.

    Messages the broker does not take are retried and then written to
    ``spill_dir/<topic>.<worker>.jsonl`` (see :class:`_JsonPartition`).
    """

    def __init__(
        self, bootstrap: str, topic: str, settings: dict[str, str],
        to_dict: Callable[[X], dict[str, Any]], key_of: Callable[[X], str | None],
        spill_dir: Path | None = None, attempts: int = 3, backoff_s: float = 1.0,
        stop: threading.Event | None = None,
    ) -> None:
        self._config = {**client_config(bootstrap, PRODUCER_SETTINGS), **settings}
        self._topic = topic
        self._to_dict = to_dict
        self._key_of = key_of
        self._spill_dir = spill_dir if spill_dir is not None else Path("drift-spill")
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._stop = stop

    def _encode(self, item: X) -> tuple[bytes | None, bytes]:
        key = self._key_of(item)
        return (key.encode() if key is not None else None, orjson.dumps(self._to_dict(item)))

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonPartition[X]:
        spill = SpillFile(self._spill_dir / f"{self._topic}.{worker_index}.jsonl")
        return _JsonPartition(partial(Producer, self._config), self._topic, self._encode, spill,
                              attempts=self._attempts, backoff_s=self._backoff_s, stop=self._stop)
