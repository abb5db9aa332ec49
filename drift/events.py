"""Inference events and their decoding.

Decoding never raises on an event: :func:`decode_inference` returns either an
:class:`InferenceEvent` or a :class:`DeadLetter` carrying the original bytes, the
source position and a machine-readable :class:`DlqReason`.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from itertools import repeat
from typing import Any, Callable, Mapping, TypeVar, Union

import numpy as np
import numpy.typing as npt
import orjson

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

_EPOCH_MS_MIN = 0
_EPOCH_MS_MAX = 253402300799999  # 9999-12-31T23:59:59.999Z


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; the original bytes are kept as text where possible."""
        value: str | None = None
        encoding = None
        if self.value is not None:
            try:
                value, encoding = self.value.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                value, encoding = self.value.hex(), "hex"
        return {
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


def parse_timestamp(value: object) -> datetime:
    """An RFC 3339 string with offset or epoch milliseconds, as an aware UTC datetime.

    >>> parse_timestamp("2026-11-27T10:00:00.123Z").isoformat()
    '2026-11-27T10:00:00.123000+00:00'
    >>> parse_timestamp(1764237600000).isoformat()
    '2025-11-27T10:00:00+00:00'
    """
    if isinstance(value, bool):
        raise _Reject(DlqReason.BAD_TIMESTAMP, f"ts must be RFC 3339 text or epoch milliseconds; got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or not _EPOCH_MS_MIN <= value <= _EPOCH_MS_MAX:
            raise _Reject(DlqReason.BAD_TIMESTAMP, f"ts epoch milliseconds out of range; got {value!r}")
        return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Reject(DlqReason.BAD_TIMESTAMP, f"ts is not RFC 3339; got {value[:64]!r}") from None
        if parsed.tzinfo is None:
            raise _Reject(DlqReason.BAD_TIMESTAMP, f"ts has no UTC offset; got {value[:64]!r}")
        try:
            return parsed.astimezone(timezone.utc)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
            raise _Reject(DlqReason.BAD_TIMESTAMP, f"ts is out of range in UTC; got {value[:64]!r}") from None
    raise _Reject(DlqReason.WRONG_TYPE, f"ts must be a string or integer; got {type(value).__name__}")


def _optional_text(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Reject(DlqReason.WRONG_TYPE, f"{name} must be a string; got {type(value).__name__}")


def _features(obj: Mapping[str, Any]) -> dict[str, FeatureValue]:
    if "features" not in obj:
        raise _Reject(DlqReason.MISSING_FIELD, "features is required")
    features = obj["features"]
    if not isinstance(features, dict):
        raise _Reject(DlqReason.WRONG_TYPE, f"features must be an object; got {type(features).__name__}")
    for name, value in features.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise _Reject(DlqReason.NON_FINITE, f"features.{name} is not finite; got {value!r}")
        if not (value is None or isinstance(value, (str, int, float, bool))):
            raise _Reject(
                DlqReason.WRONG_TYPE,
                f"features.{name} must be a number, string, boolean or null; got {type(value).__name__}",
            )
    return features


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


EMBEDDING_DTYPES = ("float32",)
"""``dtype`` values accepted in ``{"dtype": ..., "b64": ...}`` embeddings (little-endian)."""


def decode_embedding(value: object, dim: int, name: str = "embedding") -> npt.NDArray[np.float32] | None:
    """An embedding as sent in an event, as a ``(dim,)`` float32 vector; None when absent.

    Accepted forms: a JSON list of ``dim`` numbers, or ``{"dtype": "float32", "b64": "..."}``
    holding ``4 × dim`` bytes of little-endian float32. Raises ``_Reject`` (the decoder
    turns it into a dead letter) with reason ``wrong_type`` (neither form, or a list item
    that is not a number), ``bad_embedding`` (another dtype or key, invalid base64),
    ``wrong_dimension`` (a length other than ``dim``) or ``non_finite`` (NaN, infinity,
    or a number too large for float32).

    >>> decode_embedding([1, 0.5], 2).tolist()
    [1.0, 0.5]
    >>> decode_embedding({"dtype": "float32", "b64": "AACAPwAAAD8="}, 2).tolist()
    [1.0, 0.5]
    """
    if value is None:
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            if type(item) is not float and type(item) is not int:
                raise _Reject(DlqReason.WRONG_TYPE, f"{name}[{i}] must be a number; got {type(item).__name__}")
        if len(value) != dim:
            raise _Reject(DlqReason.WRONG_DIMENSION, f"{name} must have {dim} numbers; got {len(value)}")
        try:
            vector = np.asarray(value, dtype=np.float64)
        except OverflowError:  # an integer beyond float64
            raise _Reject(DlqReason.NON_FINITE, f"{name} holds a number too large for float32") from None
        with np.errstate(over="ignore"):
            out = vector.astype(np.float32)
    elif isinstance(value, dict):
        if set(value) != {"dtype", "b64"}:
            raise _Reject(
                DlqReason.BAD_EMBEDDING,
                f"{name} object must have exactly the keys dtype and b64; got {sorted(map(str, value))[:8]}",
            )
        dtype, text = value["dtype"], value["b64"]
        if dtype not in EMBEDDING_DTYPES:
            raise _Reject(
                DlqReason.BAD_EMBEDDING,
                f"{name}.dtype must be one of {', '.join(EMBEDDING_DTYPES)}; got {str(dtype)[:32]!r}",
            )
        if not isinstance(text, str):
            raise _Reject(DlqReason.BAD_EMBEDDING, f"{name}.b64 must be a base64 string; got {type(text).__name__}")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _Reject(DlqReason.BAD_EMBEDDING, f"{name}.b64 is not valid base64: {exc}") from None
        if len(data) != 4 * dim:
            raise _Reject(
                DlqReason.WRONG_DIMENSION,
                f"{name}.b64 must decode to {4 * dim} bytes ({dim} float32); got {len(data)} bytes",
            )
        # Little-endian on the wire, native (and writable, so it pickles small) in memory.
        out = np.frombuffer(data, dtype="<f4").astype(np.float32)
    else:
        raise _Reject(
            DlqReason.WRONG_TYPE,
            f"{name} must be a list of numbers or an object {{dtype, b64}}; got {type(value).__name__}",
        )
    finite = np.isfinite(out)
    if not finite.all():
        first = int(np.argmin(finite))
        raise _Reject(DlqReason.NON_FINITE, f"{name}[{first}] is not finite as float32; got {float(out[first])!r}")
    return out


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
        raise _Reject(DlqReason.INVALID_JSON, f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _Reject(DlqReason.NOT_AN_OBJECT, f"event must be a JSON object; got {type(obj).__name__}")
    return obj


def event_time(obj: Mapping[str, Any], now: Callable[[], datetime], max_future: timedelta) -> datetime:
    """The required ``ts`` of an event, refused when further than ``max_future`` ahead of ``now()``."""
    if "ts" not in obj:
        raise _Reject(DlqReason.MISSING_FIELD, "ts is required")
    ts = parse_timestamp(obj["ts"])
    if ts > now() + max_future:
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

    def __call__(self, raw: RawMessage) -> InferenceEvent | DeadLetter:
        return guarded(self._decode, raw, self.step_id)

    def _decode(self, raw: RawMessage) -> InferenceEvent:
        obj = json_object(raw)
        ts = event_time(obj, self.now, self.max_future)
        model = obj.get("model")
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
            features=_features(obj),
            prediction=prediction,
            embedding=embedding,
            raw=raw,
        )
