"""The Kafka clients' common ground: the ``drift.kafka`` logger (librdkafka's lines included, one
line of a kind at most once per :data:`LOG_REPEAT_SECONDS`), client settings, and the job's
view of the broker (:class:`MetadataClient`, :class:`KafkaWatch`), every request with a timeout.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined,unused-ignore]

from drift.errors import DriftError


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
