"""Label events and their decoding: the delayed ground truth of a model's predictions.

A label event says what the true outcome of one prediction was, once it became known::

    {"model": "credit-risk", "event_id": "e-123", "ts": "2026-11-29T16:00:00Z", "label": 1}

``model`` names a configured model with ``labels:``; the join key field (``event_id`` by
default, the model's ``labels.join_key``) names the prediction; ``label`` is the truth
(``0``/``1`` or ``false``/``true`` for a binary model, a class index ``0 .. n_classes - 1``
for a multiclass one, a finite number for regression); ``ts`` is when the label became
known (RFC 3339, or an epoch number in the model's ``ts_unit``). The window a label counts
in is the one of its prediction's ``ts``, not its own.

On Kafka label events have their own topic (``kafka.labels_topic``). In a file (``drift
replay``, ``drift backtest``, ``drift demo``) they share the JSONL with the inference events:
a line that is a JSON object with a top-level ``label`` key and no ``features`` key is a
label event (:func:`is_label_message`).

Decoding never raises: every unusable message becomes a :class:`~drift.events.DeadLetter`
with step id ``decode_label`` and one of the inference decoder's reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from drift.events import (
    DeadLetter, DlqReason, RawMessage, _Reject, event_time, file_object_with, guarded, json_object,
)
from drift.labels.join import Kind
from drift.windowing import to_micros

STEP_ID = "decode_label"


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """What the decoder needs of one model with ``labels:``."""

    kind: Kind
    join_key: str = "event_id"
    n_classes: int | None = None
    ts_unit: str = "ms"


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """One decoded label event; ``ts`` in microseconds since the epoch."""

    model: str
    key: str
    """The join key's value, as text (an integer id is read as its decimal text, as predictions' ids are)."""
    ts: int
    label: float
    raw: RawMessage = field(repr=False, compare=False)


@dataclass(frozen=True)
class LabelBatch:
    """The label events of one model in one source batch, as arrays (in arrival order)."""

    model: str
    keys: pa.Array
    """Join key values (strings)."""
    labels: npt.NDArray[np.float64]
    ts: npt.NDArray[np.int64]
    """When each label became known, microseconds since the epoch."""

    def __len__(self) -> int:
        return int(self.labels.size)


def is_label_message(raw: RawMessage, labels_topic: str | None) -> bool:
    """Whether ``raw`` is to be decoded as a label event.

    Messages of ``labels_topic`` always are. A file line is when it is a JSON object with
    a top-level ``label`` key and no ``features`` key; the byte test first keeps
    inference lines without the word from being parsed twice.

    >>> is_label_message(RawMessage(b'{"model": "m", "event_id": "e1", "ts": 1, "label": 1}', "file:e.jsonl", 0, 0), None)
    True
    >>> is_label_message(RawMessage(b'{"model": "m", "features": {"label": 1}}', "file:e.jsonl", 0, 1), None)
    False
    """
    if labels_topic is not None and raw.topic == labels_topic:
        return True
    obj = file_object_with(raw, None, "label")
    return obj is not None and "features" not in obj


def _key(obj: Mapping[str, Any], name: str) -> str:
    if name not in obj or obj[name] is None:
        raise _Reject(DlqReason.MISSING_FIELD, f"{name} is required (the join key of the model's labels)")
    value = obj[name]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise _Reject(DlqReason.WRONG_TYPE, f"{name} must be a non-empty string or an integer; got "
                                            f"{type(value).__name__}")
    return value


def _label(obj: Mapping[str, Any], spec: LabelSpec) -> float:
    if "label" not in obj or obj["label"] is None:
        raise _Reject(DlqReason.MISSING_FIELD, "label is required")
    value = obj["label"]
    if spec.kind == "binary":
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, (int, float)) and value in (0, 1):
            return float(value)
        raise _Reject(DlqReason.WRONG_TYPE, f"label must be 0 or 1 (or false/true) for a binary model; got "
                                            f"{str(value)[:64]!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Reject(DlqReason.WRONG_TYPE, f"label must be a number for a {spec.kind} model; got "
                                            f"{type(value).__name__}")
    if not math.isfinite(value):
        raise _Reject(DlqReason.NON_FINITE, f"label is not finite; got {value!r}")
    if spec.kind == "multiclass":
        n = spec.n_classes or 0
        if value != math.floor(value) or not 0 <= value < n:
            raise _Reject(DlqReason.WRONG_TYPE, f"label must be a class index 0 .. {n - 1} for a multiclass model; "
                                                f"got {value!r}")
    return float(value)


@dataclass(frozen=True)
class LabelDecoder:
    """Turns :class:`RawMessage` into :class:`LabelEvent` or :class:`DeadLetter`.

    Parameters
    ----------
    specs:
        The models with ``labels:``, by name.
    models:
        Every configured model (a label of one without ``labels:`` is told apart from a
        label of an unknown model).
    max_future:
        How far past ``now()`` a label's ``ts`` may be.
    now:
        Wall clock, injected so tests control it.
    step_id:
        Named in every dead letter.
    """

    specs: Mapping[str, LabelSpec]
    models: frozenset[str] = frozenset()
    max_future: timedelta = timedelta(minutes=10)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    step_id: str = STEP_ID

    def __call__(self, raw: RawMessage) -> LabelEvent | DeadLetter:
        return guarded(self._decode, raw, self.step_id)

    def _decode(self, raw: RawMessage) -> LabelEvent:
        obj = json_object(raw)
        model = obj.get("model")
        if model is None:
            raise _Reject(DlqReason.MISSING_FIELD, "model is required")
        if not isinstance(model, str):
            raise _Reject(DlqReason.WRONG_TYPE, f"model must be a string; got {type(model).__name__}")
        spec = self.specs.get(model)
        if spec is None:
            if model in self.models:
                raise _Reject(DlqReason.UNKNOWN_MODEL, f"model {model[:64]!r} has no labels: configured; models with "
                                                       f"labels: {sorted(self.specs)}")
            raise _Reject(DlqReason.UNKNOWN_MODEL, f"model {model[:64]!r} is not configured; models with labels: "
                                                   f"{sorted(self.specs)}")
        key = _key(obj, spec.join_key)
        label = _label(obj, spec)
        ts = event_time(obj, self.now, self.max_future, spec.ts_unit, model)
        return LabelEvent(model=model, key=key, ts=to_micros(ts), label=label, raw=raw)

    def decode_batch(self, raws: Sequence[RawMessage]) -> tuple[list[LabelBatch], list[DeadLetter]]:
        """A batch of messages as one :class:`LabelBatch` per model, and the dead letters."""
        dead: list[DeadLetter] = []
        by_model: dict[str, list[LabelEvent]] = {}
        for raw in raws:
            item = self(raw)
            if isinstance(item, DeadLetter):
                dead.append(item)
            else:
                by_model.setdefault(item.model, []).append(item)
        batches = [
            LabelBatch(
                model=model, keys=pa.array([e.key for e in events], type=pa.string()),
                labels=np.fromiter((e.label for e in events), dtype=np.float64, count=len(events)),
                ts=np.fromiter((e.ts for e in events), dtype=np.int64, count=len(events)),
            )
            for model, events in by_model.items()
        ]
        return batches, dead
