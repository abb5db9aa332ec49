"""The JSON output topics: an idempotent producer per worker; a message the broker refuses is
tried again with backoff, then spilled to a local JSON-lines file, so a sink never raises
into the dataflow.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import IO, Any, Callable, Generic, TypeVar

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.kafka.clients import client_config, kafka_logger
from drift.metrics import KAFKA_DELIVERY_ERRORS, KAFKA_SPILLED


X = TypeVar("X")


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
