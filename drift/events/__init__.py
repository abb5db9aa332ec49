"""Inference events and their decoding.

Decoding never raises on an event: :func:`decode_inference` returns either an
:class:`InferenceEvent` or a :class:`DeadLetter` carrying the original bytes, the
source position and a machine-readable :class:`DlqReason`.

Timestamps (RFC 3339 text or an epoch number in a model's ``ts_unit``) are read by
:mod:`drift.events.timestamps`, embeddings by :mod:`drift.events.embeddings`; their names
are importable from here too.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from itertools import repeat
from typing import Any, Callable, Iterable, Mapping, TypeVar, Union

import orjson

from drift.windowing import EPOCH


FeatureValue = Union[float, int, str, bool, None]
"""A scalar feature value as it arrives in JSON."""

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""Messages above this size are refused before parsing (reason ``too_large``)."""

MAX_NESTING = 64
"""How deep lists and objects may nest in ``prediction`` and ``embedding`` (reason ``invalid_json``).

The parser accepts 1024 levels, but an event about 500 deep cannot be pickled,
which Bytewax does between processes and for recovery snapshots: the flow would
stop on it.
"""

ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"
"""How an Arrow IPC stream message starts (its continuation marker); JSON never does."""


EVENT_FIELDS = (
    "event_id", "ts", "model", "model_version", "tenant", "region", "route", "segment",
    "entity_id", "features", "prediction",
)
"""Top-level event keys with a meaning of their own (an embedding field must be another key)."""


class DlqReason(StrEnum):
    """Why an event could not be used. Doubles as the ``reason`` metric label."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNKNOWN_MODEL = "unknown_model"
    LATE = "late"
    KAFKA_ERROR = "kafka_error"
    BAD_EMBEDDING = "bad_embedding"
    """An embedding object with an unknown ``dtype``, other keys, or ``b64`` that is not base64."""
    WRONG_DIMENSION = "wrong_dimension"
    """An embedding whose length is not the ``dim`` configured for the event's model."""
    BAD_ARROW = "bad_arrow"
    """A message that starts like an Arrow IPC stream but cannot be read as one."""
    UNKNOWN_SCHEMA = "unknown_schema"
    """A Confluent wire-format message whose schema id has no schema (files or registry)."""
    BAD_AVRO = "bad_avro"
    """A Confluent wire-format message whose payload is not Avro of its schema."""
    BAD_PROTOBUF = "bad_protobuf"
    """A Confluent wire-format message whose message indexes or payload are not Protobuf of its schema."""


@dataclass(frozen=True, slots=True)
class RawMessage:
    """Bytes from a source with where they came from (Kafka, or a file line)."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    error: str | None = None
    """Set when the source itself reported an error instead of a message."""


_RAW_SLOTS: tuple[Any, ...] = tuple(RawMessage.__dict__[name] for name in ("value", "topic", "partition", "offset", "key", "error"))


def raw_messages(
    values: list[bytes | None], topic: str, partition: int, offsets: list[int], keys: list[bytes | None],
) -> list[RawMessage]:
    """``RawMessage(values[i], topic, partition, offsets[i], keys[i])`` for every ``i``, made by C loops.

    A Kafka poll of thousands of messages: the dataclass ``__init__`` (a Python frame and
    six ``object.__setattr__`` calls per message) was a quarter of the whole JSON flow.
    Here each slot is filled by ``map`` over its descriptor, with no Python frame per message.
    """
    n = len(values)
    if len(offsets) != n or len(keys) != n:
        raise ValueError(f"{n} values, {len(offsets)} offsets and {len(keys)} keys: one each expected")
    out = list(map(object.__new__, repeat(RawMessage, n)))
    value, topic_, partition_, offset, key, error = _RAW_SLOTS
    deque(map(value.__set__, out, values), 0)
    deque(map(topic_.__set__, out, repeat(topic, n)), 0)
    deque(map(partition_.__set__, out, repeat(partition, n)), 0)
    deque(map(offset.__set__, out, offsets), 0)
    deque(map(key.__set__, out, keys), 0)
    deque(map(error.__set__, out, repeat(None, n)), 0)
    return out


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An unusable message, kept whole so nothing is lost."""

    reason: DlqReason
    detail: str
    step_id: str
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None

    @property
    def field(self) -> str | None:
        """The event field the reason is about (``ts``, ``features.age``, ``embedding[3]``),
        read from the detail; None for reasons about the whole message (``invalid_json``, ...)."""
        return dead_letter_field(self.reason, self.detail)

    @property
    def line(self) -> int | None:
        """The one-based line (JSONL) or row (Parquet) of a dead letter from an events file."""
        return self.offset + 1 if self.topic.startswith("file:") else None

    def to_dict(self, max_value_bytes: int | None = None) -> dict[str, Any]:
        """JSON-ready form; the original bytes are kept as text where possible.

        With ``max_value_bytes`` (the Kafka DLQ's ``kafka.dlq_max_value_bytes``) the
        record also has ``value_size`` (bytes), ``value_sha256`` (hex) and
        ``value_truncated``; a value whose text, as written in JSON (hex, or UTF-8 with
        control characters escaped as ``\\u0001``) takes more UTF-8 bytes is cut to its longest
        head that fits, so that one dead letter always fits in a Kafka message.

        >>> letter = DeadLetter(DlqReason.NOT_UTF8, "", "decode_inference", "t", 0, 7, b"\\xff" * 100)
        >>> record = letter.to_dict(max_value_bytes=64)
        >>> record["value"] == "ff" * 32, record["value_size"], record["value_truncated"]
        (True, 100, True)
        """
        value: str | None = None
        encoding = None
        if self.value is not None:
            try:
                value, encoding = self.value.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                value, encoding = self.value.hex(), "hex"
        document: dict[str, Any] = {
            "reason": self.reason.value,
            "detail": self.detail,
            "step_id": self.step_id,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "value": value,
            "value_encoding": encoding,
        }
        if max_value_bytes is not None:
            head = None if value is None else _json_text_head(value, max_value_bytes, hex_digits=encoding == "hex")
            key = document["key"]
            document.update(
                key=None if key is None else _json_text_head(key, max_value_bytes),
                value=head,
                value_size=len(self.value) if self.value is not None else None,
                value_sha256=hashlib.sha256(self.value).hexdigest() if self.value is not None else None,
                value_truncated=head is not None and value is not None and len(head) < len(value),
            )
        return document


def _json_text_head(text: str, limit: int, hex_digits: bool = False) -> str:
    """``text`` itself when its JSON form (quotes aside) takes at most ``limit`` UTF-8 bytes,
    else its longest prefix that does (whole bytes when ``text`` is hex digits)."""
    size = len(orjson.dumps(text)) - 2
    if size <= limit:
        return text
    if size == len(text):  # hex, or text without a character JSON escapes
        return text[: limit - limit % 2] if hex_digits else text[:limit]
    low, high = 0, min(len(text), limit)  # the escaped form is never shorter than the text
    while low < high:
        middle = (low + high + 1) // 2
        if len(orjson.dumps(text[:middle])) - 2 <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low]


_WHOLE_MESSAGE = frozenset({
    DlqReason.EMPTY, DlqReason.TOO_LARGE, DlqReason.NOT_UTF8, DlqReason.NOT_AN_OBJECT, DlqReason.KAFKA_ERROR,
    DlqReason.BAD_ARROW, DlqReason.UNKNOWN_SCHEMA, DlqReason.BAD_AVRO, DlqReason.BAD_PROTOBUF,
})
_ARROW_ROW = re.compile(r"^row \d+ of the Arrow record batch: ")
_NAMED_VALUE = re.compile(r"^((?:features|values)\..+?) (?:must be|is not finite)")
_PATH = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)*(?:\[\d+\])?")


def dead_letter_field(reason: DlqReason, detail: str) -> str | None:
    """The field a dead letter's detail starts with (every detail about a field does).

    >>> dead_letter_field(DlqReason.MISSING_FIELD, "ts is required")
    'ts'
    >>> dead_letter_field(DlqReason.NON_FINITE, "row 3 of the Arrow record batch: features.my x is not finite; got nan")
    'features.my x'
    >>> dead_letter_field(DlqReason.INVALID_JSON, "not JSON: unexpected character") is None
    True
    """
    if reason in _WHOLE_MESSAGE:
        return None
    detail = _ARROW_ROW.sub("", detail)
    named = _NAMED_VALUE.match(detail)
    if named is not None:
        return named.group(1)
    token = detail.split(" ", 1)[0]
    if reason is DlqReason.INVALID_JSON and not detail.startswith(f"{token} nests deeper"):
        return None
    return token if _PATH.fullmatch(token) else None


DLQ_SAMPLES_PER_REASON = 3
"""Dead letters of each reason that ``drift replay``/``backtest`` show."""


def dead_letter_samples(letters: Iterable[DeadLetter], per_reason: int = DLQ_SAMPLES_PER_REASON) -> list[dict[str, Any]]:
    """The first ``per_reason`` dead letters of each reason in source order, without their bytes:
    ``reason``, ``line`` (events files), ``field``, ``detail``, ``step_id``, ``topic``,
    ``partition``, ``offset``; sorted by reason, then position."""
    ordered = sorted(letters, key=lambda d: (d.reason.value, d.topic, d.partition, d.offset))
    taken: dict[str, int] = {}
    out = []
    for letter in ordered:
        if taken.get(letter.reason.value, 0) >= per_reason:
            continue
        taken[letter.reason.value] = taken.get(letter.reason.value, 0) + 1
        out.append({
            "reason": letter.reason.value, "line": letter.line, "field": letter.field, "detail": letter.detail,
            "step_id": letter.step_id, "topic": letter.topic, "partition": letter.partition, "offset": letter.offset,
        })
    return out


@dataclass(frozen=True, slots=True)
class InferenceEvent:
    """One decoded inference event (design §Events)."""

    event_id: str | None
    ts: datetime
    model: str
    model_version: str | None
    tenant: str | None
    region: str | None
    route: str | None
    segment: Mapping[str, str]
    entity_id: str | None
    features: Mapping[str, FeatureValue]
    prediction: Mapping[str, Any] | None
    embedding: Any
    """For a model with an ``embedding`` detector: the decoded vector, ``(dim,)`` float32
    (None when the event carried none). For other models: the JSON value as sent."""
    raw: RawMessage = field(repr=False, compare=False)
    """The message it came from, so a late event can still go to the DLQ whole."""

    def label(self, name: str) -> str | None:
        """Value of a cohort label (``tenant``, ``segment.channel``, ...)."""
        if name.startswith("segment."):
            return self.segment.get(name[len("segment."):])
        value = getattr(self, name)
        return value if value is None else str(value)


class _Reject(Exception):
    def __init__(self, reason: DlqReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _optional_text(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Reject(DlqReason.WRONG_TYPE, f"{name} must be a string; got {type(value).__name__}")


def scalar_map(obj: Mapping[str, Any], key: str) -> dict[str, FeatureValue]:
    """``obj[key]``, an object of scalar values (an event's ``features``, a feature event's
    ``values``); refused with the reason and the offending name otherwise."""
    if key not in obj:
        raise _Reject(DlqReason.MISSING_FIELD, f"{key} is required")
    values = obj[key]
    if not isinstance(values, dict):
        raise _Reject(DlqReason.WRONG_TYPE, f"{key} must be an object; got {type(values).__name__}")
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise _Reject(DlqReason.NON_FINITE, f"{key}.{name} is not finite; got {value!r}")
        if not (value is None or isinstance(value, (str, int, float, bool))):
            raise _Reject(
                DlqReason.WRONG_TYPE,
                f"{key}.{name} must be a number, string, boolean or null; got {type(value).__name__}",
            )
    return values


def _nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects in ``value`` nest more than ``limit`` levels (no recursion).

    >>> _nests_deeper_than([[1]], 2), _nests_deeper_than([[[1]]], 2), _nests_deeper_than(7, 0)
    (False, True, False)
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _segment(obj: Mapping[str, Any]) -> dict[str, str]:
    segment = obj.get("segment")
    if segment is None:
        return {}
    if not isinstance(segment, dict) or not all(isinstance(v, str) for v in segment.values()):
        raise _Reject(DlqReason.WRONG_TYPE, "segment must be an object of strings")
    return segment


E = TypeVar("E")


def guarded(decode: Callable[[RawMessage], E], raw: RawMessage, step_id: str) -> E | DeadLetter:
    """``decode(raw)``, or a dead letter: a decoder never raises on a message."""
    try:
        return decode(raw)
    except _Reject as reject:
        reason, detail = reject.reason, reject.detail
    except Exception as exc:  # noqa: BLE001 - the flow must never raise on an event
        reason, detail = DlqReason.INVALID_JSON, f"unexpected {type(exc).__name__}: {exc}"
    return DeadLetter(
        reason=reason, detail=detail, step_id=step_id, topic=raw.topic,
        partition=raw.partition, offset=raw.offset, value=raw.value, key=raw.key,
    )


def carries_non_finite(topic: str) -> bool:
    """Whether messages of ``topic`` may hold ``NaN``/``Infinity`` tokens: rows of a Parquet
    events file, whose float columns can hold them (:mod:`connectors.files` writes them so).

    JSON has no such numbers (RFC 8259): elsewhere they are ``invalid_json``.
    """
    return topic.startswith("file:") and topic.endswith(".parquet")


def _refuse_non_finite(data: bytes) -> None:
    """Raise ``non_finite`` naming the first NaN or infinity in ``data``, if it has one."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise _Reject(DlqReason.NON_FINITE, f"{path or 'event'} is not finite; got {value!r}")
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))


def file_object_with(raw: RawMessage, topic: str | None, key: str) -> dict[str, Any] | None:
    """A message of ``topic``, or a file line that is a JSON object with a top-level ``key``, as
    that object (``{}`` for a message of ``topic``, decoded later with its dead letters); None
    for anything else.

    How a second kind of event (feature events, label events) is told apart: on Kafka by its
    topic, in a file by a key of its own. The byte test first keeps the other lines from
    being parsed twice.

    >>> file_object_with(RawMessage(b'{"label": 1}', "file:e.jsonl", 0, 0), None, "label")
    {'label': 1}
    >>> file_object_with(RawMessage(b'{"model": "m"}', "file:e.jsonl", 0, 1), None, "label") is None
    True
    >>> file_object_with(RawMessage(b'not json', "labels", 0, 2), "labels", "label")
    {}
    """
    if topic is not None and raw.topic == topic:
        return {}
    if not raw.topic.startswith("file:") or not raw.value or f'"{key}"'.encode() not in raw.value:
        return None
    try:
        obj = orjson.loads(raw.value)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and key in obj else None


def json_object(raw: RawMessage) -> dict[str, Any]:
    """The message as a JSON object; rejects source errors, empty, oversized, non-UTF-8 and non-JSON."""
    if raw.error is not None:
        raise _Reject(DlqReason.KAFKA_ERROR, raw.error)
    data = raw.value
    if not data:
        raise _Reject(DlqReason.EMPTY, "message has no value")
    if len(data) > MAX_MESSAGE_BYTES:
        raise _Reject(DlqReason.TOO_LARGE, f"message is {len(data)} bytes; limit {MAX_MESSAGE_BYTES}")
    if data.startswith(ARROW_STREAM_MAGIC):
        # Readable Arrow batches never get here: the flow's batch decoder reads them (drift.batch).
        raise _Reject(DlqReason.BAD_ARROW, "an Arrow IPC stream message is read only as a batch of inference events")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as utf:
            raise _Reject(DlqReason.NOT_UTF8, f"not UTF-8 at byte {utf.start}") from None
        if carries_non_finite(raw.topic):
            _refuse_non_finite(data)
        raise _Reject(DlqReason.INVALID_JSON, f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _Reject(DlqReason.NOT_AN_OBJECT, f"event must be a JSON object; got {type(obj).__name__}")
    return obj


def event_time(
    obj: Mapping[str, Any], now: Callable[[], datetime], max_future: timedelta, unit: str = "ms",
    model: str | None = None,
) -> datetime:
    """The required ``ts`` of an event (epoch numbers in ``unit``), refused when further than
    ``max_future`` ahead of ``now()`` or implausible for the unit (:func:`parse_timestamp`)."""
    if "ts" not in obj:
        raise _Reject(DlqReason.MISSING_FIELD, "ts is required")
    latest = now() + max_future
    ts = parse_timestamp(obj["ts"], unit, (latest - EPOCH) // timedelta(microseconds=1), model)
    if ts > latest:
        raise _Reject(DlqReason.FUTURE_TIMESTAMP, f"ts {ts.isoformat()} is more than {max_future} in the future")
    return ts


@dataclass(frozen=True)
class Decoder:
    """Turns :class:`RawMessage` into :class:`InferenceEvent` or :class:`DeadLetter`.

    Parameters
    ----------
    models:
        Names of the configured models; events for any other go to the DLQ.
    max_future:
        How far past ``now()`` an event's ``ts`` may be.
    now:
        Wall clock, injected so tests control it.
    step_id:
        Named in every dead letter.
    ts_units:
        ``model -> unit`` of epoch ``ts`` values (``s``, ``ms``, ``us``, ``ns``); a model not
        listed, and an event without a configured model, read epoch milliseconds.
    embeddings:
        ``model -> (field, dim)`` for models with an ``embedding`` detector: the event's
        ``field`` is decoded with :func:`decode_embedding` into ``InferenceEvent.embedding``
        and its length checked against ``dim``. An event without the field (or with
        ``null``) is kept, for its features, with ``embedding=None``: it is counted as
        missing in the window but not sampled. Other models keep ``embedding`` as sent.
    """

    models: frozenset[str]
    max_future: timedelta = timedelta(minutes=10)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    step_id: str = "decode_inference"
    embeddings: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    ts_units: Mapping[str, str] = field(default_factory=dict)

    def ts_unit(self, model: object) -> str:
        """The epoch unit of ``ts`` for an event whose ``model`` field is ``model``."""
        return self.ts_units.get(model, "ms") if isinstance(model, str) else "ms"

    def __call__(self, raw: RawMessage) -> InferenceEvent | DeadLetter:
        return guarded(self._decode, raw, self.step_id)

    def _decode(self, raw: RawMessage) -> InferenceEvent:
        obj = json_object(raw)
        model = obj.get("model")
        # ``ts`` is checked first (its reason wins over the model's); its unit is the model's.
        unit = self.ts_unit(model)
        known = model if isinstance(model, str) and model in self.models else None
        ts = event_time(obj, self.now, self.max_future, unit, known)
        if model is None:
            raise _Reject(DlqReason.MISSING_FIELD, "model is required")
        if not isinstance(model, str):
            raise _Reject(DlqReason.WRONG_TYPE, f"model must be a string; got {type(model).__name__}")
        if model not in self.models:
            raise _Reject(DlqReason.UNKNOWN_MODEL, f"model {model[:64]!r} is not configured; known: {sorted(self.models)}")
        prediction = obj.get("prediction")
        if prediction is not None and not isinstance(prediction, dict):
            raise _Reject(DlqReason.WRONG_TYPE, f"prediction must be an object; got {type(prediction).__name__}")
        for name in ("prediction", "embedding"):
            if _nests_deeper_than(obj.get(name), MAX_NESTING):
                raise _Reject(DlqReason.INVALID_JSON, f"{name} nests deeper than {MAX_NESTING} levels")
        expected = self.embeddings.get(model)
        if expected is None:
            embedding = obj.get("embedding")
        else:
            field_name, dim = expected
            embedding = decode_embedding(obj.get(field_name), dim, field_name)
        return InferenceEvent(
            event_id=_optional_text(obj, "event_id"),
            ts=ts,
            model=model,
            model_version=_optional_text(obj, "model_version"),
            tenant=_optional_text(obj, "tenant"),
            region=_optional_text(obj, "region"),
            route=_optional_text(obj, "route"),
            segment=_segment(obj),
            entity_id=_optional_text(obj, "entity_id"),
            features=scalar_map(obj, "features"),
            prediction=prediction,
            embedding=embedding,
            raw=raw,
        )


# Reading a timestamp or an embedding raises _Reject, so these modules are imported once it exists.
from drift.events.embeddings import EMBEDDING_DTYPES, decode_embedding  # noqa: E402
from drift.events.timestamps import (  # noqa: E402
    EPOCH_MIN,
    EPOCH_MIN_MICROS,
    MICROS_PER_UNIT,
    TS_UNIT_WORDS,
    TS_UNITS,
    TsUnit,
    epoch_micros,
    parse_timestamp,
)

__all__ = [
    "file_object_with",
    "ARROW_STREAM_MAGIC",
    "DLQ_SAMPLES_PER_REASON",
    "EMBEDDING_DTYPES",
    "EPOCH_MIN",
    "EPOCH_MIN_MICROS",
    "EVENT_FIELDS",
    "MAX_MESSAGE_BYTES",
    "MAX_NESTING",
    "MICROS_PER_UNIT",
    "TS_UNITS",
    "TS_UNIT_WORDS",
    "DeadLetter",
    "Decoder",
    "DlqReason",
    "FeatureValue",
    "InferenceEvent",
    "RawMessage",
    "TsUnit",
    "carries_non_finite",
    "dead_letter_field",
    "dead_letter_samples",
    "decode_embedding",
    "epoch_micros",
    "event_time",
    "guarded",
    "json_object",
    "parse_timestamp",
    "raw_messages",
]
