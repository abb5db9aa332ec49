"""Feature events and their decoding (design §Events, topic ``feature-events``).

A feature event is a value the offline (or online) feature store holds for one entity::

    {"ts": "2026-11-02T07:00:00Z", "feature_set": "customer_profile", "entity_id": "cust-42",
     "source": "offline", "values": {"income": 5100.0, "country": "DE"},
     "materialized_at": "2026-11-02T07:05:00Z"}

``ts`` is the event time the values are valid from (the feature store's event timestamp);
``materialized_at`` is optional. Decoding follows the inference decoder's discipline: it
never raises, and every unusable message becomes a :class:`~drift.events.DeadLetter` with
step id ``decode_feature``.

In a file (``drift replay``, ``drift demo``) both kinds of events share one JSONL file: an
object with a top-level ``feature_set`` key is a feature event (:func:`is_feature_message`).
On Kafka they come from their own topic (``kafka.feature_topic``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Literal, Mapping


from drift.events import (
    file_object_with,
    DeadLetter,
    DlqReason,
    FeatureValue,
    RawMessage,
    _Reject,
    event_time,
    guarded,
    json_object,
    parse_timestamp,
    scalar_map,
)

Source = Literal["offline", "online"]



@dataclass(frozen=True, slots=True)
class FeatureEvent:
    """One decoded feature event."""

    ts: datetime
    feature_set: str
    entity_id: str
    source: Source
    values: Mapping[str, FeatureValue]
    materialized_at: datetime | None
    raw: RawMessage = field(repr=False, compare=False)


def is_feature_message(raw: RawMessage, feature_topic: str | None) -> bool:
    """Whether ``raw`` is to be decoded as a feature event.

    Messages of ``feature_topic`` always are. A file line is when it is a JSON object
    with a top-level ``feature_set`` key; the byte test first keeps inference lines
    from being parsed twice.

    >>> line = b'{"ts": 1, "feature_set": "p", "entity_id": "c", "values": {}}'
    >>> is_feature_message(RawMessage(line, "file:e.jsonl", 0, 0), None)
    True
    >>> is_feature_message(RawMessage(b'{"model": "m"}', "file:e.jsonl", 0, 1), None)
    False
    """
    return file_object_with(raw, feature_topic, "feature_set") is not None


def _text(obj: Mapping[str, Any], name: str) -> str:
    if name not in obj or obj[name] is None:
        raise _Reject(DlqReason.MISSING_FIELD, f"{name} is required")
    value = obj[name]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise _Reject(DlqReason.WRONG_TYPE, f"{name} must be a non-empty string; got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class FeatureDecoder:
    """Turns :class:`RawMessage` into :class:`FeatureEvent` or :class:`DeadLetter`.

    Parameters
    ----------
    max_future:
        How far past ``now()`` an event's ``ts`` may be.
    now:
        Wall clock, injected so tests control it.
    step_id:
        Named in every dead letter.
    """

    max_future: timedelta = timedelta(minutes=10)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    step_id: str = "decode_feature"

    def __call__(self, raw: RawMessage) -> FeatureEvent | DeadLetter:
        return guarded(self._decode, raw, self.step_id)

    def _decode(self, raw: RawMessage) -> FeatureEvent:
        obj = json_object(raw)
        ts = event_time(obj, self.now, self.max_future)
        source = obj.get("source", "offline")
        if source not in ("offline", "online"):
            raise _Reject(DlqReason.WRONG_TYPE, f"source must be 'offline' or 'online'; got {str(source)[:64]!r}")
        materialized = obj.get("materialized_at")
        return FeatureEvent(
            ts=ts,
            feature_set=_text(obj, "feature_set"),
            entity_id=_text(obj, "entity_id"),
            source=source,
            values=scalar_map(obj, "values"),
            materialized_at=None if materialized is None else parse_timestamp(materialized),
            raw=raw,
        )
