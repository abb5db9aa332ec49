"""JSON events read by msgspec into typed columns: the batch decoder's first and fastest road.

Each message is decoded on its own against one event type built from the configured
models: the top-level fields of :data:`drift.events.EVENT_FIELDS` and nothing else,
``features`` with exactly the features of the column-wise models (numbers for numeric
features; a string, number or boolean for categorical ones), ``prediction`` with exactly
their profiled fields, ``segment`` an object of strings, and the envelope fields strings.
msgspec refuses everything else (another key, another type, malformed JSON, invalid UTF-8
in a string it reads), and a refused message takes the batch decoder's other roads, so
this one only has to be right on what it accepts.

It reads the same values as :func:`orjson.loads` (and so :class:`drift.events.Decoder`)
on every message it accepts, but for integers past 2**53 (a numeric field reads them as
floats, and integers past 64 bits stay exact where orjson rounds them): those never make a
clean row. An absent field and a ``null`` are told apart exactly: an absent numeric field
reads as NaN (a value JSON cannot hold), an absent categorical one as ``UNSET``.
"""

from __future__ import annotations

import gc
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from operator import is_not
from typing import Any, Iterable, Iterator, Sequence

import msgspec
from msgspec.structs import astuple
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from drift.batch.arrow import EXACT_INTEGERS
from drift.batch.columns import ModelColumns
from drift.categories import category_text
from drift.events import MAX_MESSAGE_BYTES

_ABSENT_NUMBER = math.nan
"""What an absent numeric field reads as (JSON has no NaN, so a value never does)."""

GIVE_UP = 64
"""When the first this many messages of a batch are all refused, the rest are not tried."""

_CATEGORY = str | int | float | bool | None | msgspec.UnsetType
_TEXT = str | None
ENVELOPE = ("event_id", "model", "model_version", "tenant", "region", "route", "entity_id")
"""The event's text fields, read as strings (an integer there takes another road)."""


@dataclass(slots=True)
class TypedColumns:
    """The messages msgspec accepted, as columns (position ``i`` is ``parsed[i]``)."""

    parsed: npt.NDArray[np.intp]
    """Positions, in the values given, of the accepted messages."""
    envelope: dict[str, Sequence[str | None]]
    ts: Sequence[str | int | None]
    features_present: npt.NDArray[np.bool_]
    features: dict[str, Sequence[Any]]
    """Each feature's values: an absent key (or no ``features`` object) reads as NaN for a
    numeric feature, ``UNSET`` for a categorical one."""
    prediction_present: npt.NDArray[np.bool_]
    predictions: dict[str, Sequence[Any]]
    """Each profiled prediction field's values, absent ones read the same way."""
    segments: Sequence[dict[str, str] | None]


class TypedJson:
    """Decodes JSON events against the strict event type of the column-wise models."""

    def __init__(self, models: Iterable[ModelColumns]) -> None:
        numeric: set[str] = set()
        categorical: set[str] = set()
        numeric_predictions: set[str] = set()
        other_predictions: set[str] = set()
        for m in models:
            numeric.update(m.numeric)
            categorical.update(m.categorical)
            for name, is_numeric in m.predictions:
                (numeric_predictions if is_numeric else other_predictions).add(name)
        numeric_predictions -= other_predictions  # two models disagree: read as a category, checked per model
        self.floats = frozenset(numeric) | numeric_predictions
        """Fields read as ``float | None`` (the others as a category value)."""
        self._feature_names = [*sorted(numeric), *sorted(categorical)]
        self._prediction_names = [*sorted(numeric_predictions), *sorted(other_predictions)]
        features = msgspec.defstruct(
            "Features",
            [*((f, float | None, _ABSENT_NUMBER) for f in sorted(numeric)),
             *((f, _CATEGORY, msgspec.UNSET) for f in sorted(categorical))],
            forbid_unknown_fields=True, gc=False)
        prediction = msgspec.defstruct(
            "Prediction",
            [*((p, float | None, _ABSENT_NUMBER) for p in sorted(numeric_predictions)),
             *((p, _CATEGORY, msgspec.UNSET) for p in sorted(other_predictions))],
            forbid_unknown_fields=True, gc=False)
        self._no_features = features()
        self._no_prediction = prediction()
        event = msgspec.defstruct(
            "Event",
            [*((name, _TEXT, None) for name in ENVELOPE),
             ("ts", str | int | None, None),
             ("segment", dict[str, str] | None, None),
             ("features", features | None, None),
             ("prediction", prediction | None, None)],
            forbid_unknown_fields=True, gc=False)
        self._decode = msgspec.json.Decoder(event).decode

    def read(self, values: Sequence[bytes | None]) -> TypedColumns:
        """The messages of ``values`` that the strict event type accepts, as columns.

        The garbage collector is paused meanwhile: the tuples made here (a row per message,
        then its columns) hold no cycles and most are gone by the end, so a collection
        would only walk them (it ran several times per batch, a sixth of the read).
        """
        with _gc_paused():
            return self._read(values)

    def _read(self, values: Sequence[bytes | None]) -> TypedColumns:
        decode = self._decode
        try:
            if max(map(len, values), default=0) > MAX_MESSAGE_BYTES:  # type: ignore[arg-type]
                raise ValueError("a message is too large")
            events: list[Any] = list(map(decode, values))  # type: ignore[arg-type]
            parsed = np.arange(len(values), dtype=np.intp)
        except (msgspec.MsgspecError, TypeError, ValueError):
            events = []
            kept: list[int] = []
            for i, value in enumerate(values):
                if i == GIVE_UP and not kept:
                    break  # a stream of another shape (other keys, other types): not worth trying further
                if value is None or len(value) > MAX_MESSAGE_BYTES:
                    continue
                try:
                    events.append(decode(value))
                except (msgspec.MsgspecError, TypeError, ValueError):
                    continue
                kept.append(i)
            parsed = np.asarray(kept, dtype=np.intp)
        n = len(events)
        columns: list[Any] = list(zip(*map(astuple, events))) if n else [()] * (len(ENVELOPE) + 4)
        envelope = dict(zip(ENVELOPE, columns[:len(ENVELOPE)]))  # tuples: Arrow and numpy read them as they are
        ts, segments, features, predictions = columns[len(ENVELOPE):]
        features_present, feature_columns = self._transpose(features, self._no_features, self._feature_names)
        prediction_present, prediction_columns = self._transpose(
            predictions, self._no_prediction, self._prediction_names)
        return TypedColumns(
            parsed=parsed, envelope=envelope, ts=ts, features_present=features_present, features=feature_columns,
            prediction_present=prediction_present, predictions=prediction_columns, segments=segments,
        )

    @staticmethod
    def _transpose(structs: Sequence[Any], empty: Any, names: list[str]) -> tuple[npt.NDArray[np.bool_], dict[str, Sequence[Any]]]:
        """Which rows have the object, and each field's column (``empty``'s value where it is absent)."""
        n = len(structs)
        missing = structs.count(None)
        if missing == n:
            return np.zeros(n, dtype=bool), {name: [astuple(empty)[k]] * n for k, name in enumerate(names)}
        if missing:
            present = np.fromiter(map(is_not, structs, repeat(None)), dtype=bool, count=n)
            structs = [empty if s is None else s for s in structs]
        else:
            present = np.ones(n, dtype=bool)
        if not names:
            return present, {name: [] for name in names}
        return present, dict(zip(names, zip(*map(astuple, structs))))


def numbers(values: Sequence[Any], floats: bool) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_],
                                                     npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """A numeric field's column: (values, fine, null, absent).

    ``fine``: a finite number below 2**53 in magnitude (the rows read column-wise);
    ``null``: an explicit ``null``; ``absent``: no such key. Other rows (a string, a
    boolean, an integer past 2**53) are none of the three. ``floats``: the field was read
    as ``float | None``, so it holds nothing else.
    """
    if not floats:
        return _numbers_one_by_one(values)
    array = np.array(values, dtype=np.float64)  # null and absent both read as NaN here
    gaps = np.isnan(array)
    null = np.zeros(array.size, dtype=bool)
    if gaps.any():
        at = np.flatnonzero(gaps)
        null[at] = np.fromiter((values[i] is None for i in at.tolist()), dtype=bool, count=at.size)
    with np.errstate(invalid="ignore"):
        fine = np.abs(array) < EXACT_INTEGERS
    return array, fine, null, gaps & ~null


def _numbers_one_by_one(values: Sequence[Any]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_],
                                                    npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    n = len(values)
    floats = np.full(n, math.nan)
    fine = np.zeros(n, dtype=bool)
    null = np.zeros(n, dtype=bool)
    absent = np.zeros(n, dtype=bool)
    for i, value in enumerate(values):
        if value is None:
            null[i] = True
        elif value is msgspec.UNSET or (isinstance(value, float) and math.isnan(value)):
            absent[i] = True
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < EXACT_INTEGERS:
            floats[i] = float(value)
            fine[i] = True
    return floats, fine, null, absent


def categories(values: Sequence[Any]) -> tuple[pa.Array, npt.NDArray[np.bool_], npt.NDArray[np.bool_],
                                           npt.NDArray[np.bool_]]:
    """A categorical field's column: (texts, fine, null, absent), texts as :func:`category_text` gives them.

    Numbers past 2**53 in magnitude are not ``fine`` (orjson rounds some of them).
    """
    try:
        array = pa.array(values, type=pa.string())  # the usual column: strings and nulls
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        pass
    else:
        null = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        return array, ~null, null, np.zeros(len(values), dtype=bool)
    n = len(values)
    texts: list[str | None] = [None] * n
    fine = np.zeros(n, dtype=bool)
    null = np.zeros(n, dtype=bool)
    absent = np.zeros(n, dtype=bool)
    for i, value in enumerate(values):
        if value is None:
            null[i] = True
        elif value is msgspec.UNSET or (isinstance(value, float) and math.isnan(value)):
            absent[i] = True
        elif isinstance(value, str) or isinstance(value, bool) or abs(value) < EXACT_INTEGERS or (
                isinstance(value, float) and value != math.trunc(value)):
            texts[i] = category_text(value)
            fine[i] = True
    return pa.array(texts, type=pa.string()), fine, null, absent


_PAUSE = threading.Lock()
_paused = 0
_restore = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The garbage collector off while any worker thread of this process reads a batch, and
    back as it was when the last one is done.

    Workers of one process are threads: a plain ``isenabled``/``disable``/``enable`` in each
    could read "off" while another thread held it off and then leave it off for good.
    """
    global _paused, _restore
    with _PAUSE:
        if _paused == 0:
            _restore = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _PAUSE:
            _paused -= 1
            if _paused == 0 and _restore:
                gc.enable()
