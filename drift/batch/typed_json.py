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

A batch is read a chunk of :data:`CHUNK` messages at a time: each chunk's decoded objects
are turned into numpy and Arrow columns and freed while they are still in the CPU's
cache, and only the columns are kept.

A chunk whose every message has the plain shape (strings without escapes, categories as
strings, ``ts`` a string or an integer, no repeated key: drift/batch/_scan.c) is read by
the compiled scanner straight into the same columns, with no Python object per value; any
other chunk is decoded by msgspec. :data:`SCANNER` is False when the extension was not
built (the msgspec road then reads every chunk).
"""

from __future__ import annotations

import gc
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, repeat
from operator import is_not
from typing import Any, Iterable, Iterator, Sequence, TypeAlias

import msgspec
from msgspec.structs import astuple
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from drift.batch.arrow import EXACT_INTEGERS
from drift.batch.columns import ModelColumns
from drift.categories import category_text
from drift.events import MAX_MESSAGE_BYTES

try:
    from drift.batch._scan import Scanner
except ImportError:  # built without a C compiler: every chunk takes the msgspec road
    SCANNER = False
else:
    SCANNER = True

_ABSENT_NUMBER = math.nan
"""What an absent numeric field reads as (JSON has no NaN, so a value never does)."""

GIVE_UP = 64
"""When the first this many messages of a batch are all refused, the rest are not tried."""

CHUNK = 1024
"""Messages decoded and turned into columns at a time: the decoded objects of a chunk (about
35 per workload event) stay in the CPU's cache until they are freed; of a whole 5,000-message
batch they would not."""

_CATEGORY = str | int | float | bool | None | msgspec.UnsetType
_TEXT = str | None
ENVELOPE = ("event_id", "model", "model_version", "tenant", "region", "route", "entity_id")
"""The event's text fields, read as strings (an integer there takes another road)."""
_EVENT_ORDER = ("event_id", "ts", "model", "model_version", "tenant", "region", "route", "entity_id", "segment",
                "features", "prediction")
"""The event type's fields in the order producers usually write them: msgspec looks a key up
from the field after the one it read last, so keys in this order are found at once."""
_TS, _SEGMENT, _FEATURES, _PREDICTION = (_EVENT_ORDER.index(name) for name in ("ts", "segment", "features", "prediction"))

Column = tuple[Any, npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]
"""A field's column as ``(values, fine, null, absent)`` (see :func:`categories`)."""


class TypedFields:
    """The fields of one object (``features`` or ``prediction``) in the accepted messages.

    The fields read as ``float | None`` are one ``float64`` matrix, a row per field (null
    and absent both NaN there, told apart by :attr:`null`); each other field is read as a
    category (:func:`categories`), or as a number one by one (:func:`_numbers_one_by_one`)
    where a model profiles it as one.
    """

    __slots__ = ("present", "floats", "values", "fine", "null", "absent", "clean", "odd", "others")

    def __init__(self, present: npt.NDArray[np.bool_], floats: list[str], values: npt.NDArray[np.float64],
                 null: npt.NDArray[np.bool_], others: dict[tuple[str, bool], Column]) -> None:
        self.present = present
        """Which rows have the object."""
        self.floats = {name: k for k, name in enumerate(floats)}
        """The row of each float field in :attr:`values`."""
        self.values = values
        """The float fields' values, ``(fields, rows)``; NaN where null or absent."""
        gaps = np.isnan(values)
        with np.errstate(invalid="ignore"):
            self.fine = np.abs(values) < EXACT_INTEGERS
        self.null = null
        self.absent = gaps & ~null
        self.clean = self.fine | gaps
        """Cells that are a value the column-wise rules accept, a null, or absent."""
        self.odd = np.asarray(gaps.any(axis=1), dtype=bool)
        """The float fields with a null or absent cell."""
        self.others = others
        """The other fields' columns, by ``(name, read as a number)``."""

    def column(self, name: str, numeric: bool) -> Column:
        """Field ``name``'s column, read as a number (``numeric``) or as a category."""
        k = self.floats.get(name)
        if k is not None:
            return self.values[k], self.fine[k], self.null[k], self.absent[k]
        return self.others[(name, numeric)]


@dataclass(slots=True)
class TypedColumns:
    """The messages msgspec accepted, as columns (position ``i`` is ``parsed[i]``)."""

    parsed: npt.NDArray[np.intp]
    """Positions, in the values given, of the accepted messages."""
    envelope: dict[str, pa.Array]
    """The text fields the models read (``model``, ``event_id`` and the cohort labels among
    :data:`ENVELOPE`), as Arrow strings."""
    ts: list[pa.Array]
    """The ``ts`` column as Arrow arrays: one of texts, or one of texts and one of integers
    (nulls where the other kind is)."""
    segment: dict[str, pa.Array]
    """The value under ``segment`` of each ``segment.*`` cohort label, as Arrow strings."""
    features: TypedFields
    """The features: an absent key (or no ``features`` object) reads as NaN for a numeric
    feature, ``UNSET`` for a categorical one."""
    prediction: TypedFields
    """The profiled prediction fields, absent ones read the same way."""


class _FieldChunks:
    """The columns of one object's fields, gathered chunk by chunk (see :class:`TypedFields`)."""

    def __init__(self, empty: Any, floats: list[str], others: list[tuple[str, bool]], size: int) -> None:
        self.empty = empty
        """The struct with every field absent (for a message without the object)."""
        self.floats = floats
        self.others = sorted(others, key=lambda other: other[1])  # the categories first
        self.width = len(floats) + len({name for name, _ in others})
        self.at = {name: k for k, name in enumerate(sorted({name for name, _ in others}), len(floats))}
        self.present: list[npt.NDArray[np.bool_]] = []
        self.values = np.empty((len(floats), size), dtype=np.float64)
        self.null = np.zeros((len(floats), size), dtype=bool)
        self.columns: list[list[Column]] = [[] for _ in others]
        self.texts = [self.at[name] for name, numeric in self.others if not numeric]
        """The cells' columns read as categories (the first of :attr:`others`)."""
        self.chunks = self.n = 0

    def add(self, structs: Sequence[Any]) -> None:
        """The next rows: the decoded objects of a chunk (None where a message has none)."""
        m = len(structs)
        missing = structs.count(None)
        if not self.width:  # no fields (no profiled prediction field): only whether the object is there
            self.present.append(np.ones(m, dtype=bool) if not missing else np.zeros(m, dtype=bool) if missing == m
                                else np.fromiter(map(is_not, structs, repeat(None)), dtype=bool, count=m))
            self.chunks += 1
            self.n += m
            return
        if missing == m:
            present = np.zeros(m, dtype=bool)
            cells = np.empty((m, self.width), dtype=object)
            cells[:] = astuple(self.empty)
        else:
            if missing:
                present = np.fromiter(map(is_not, structs, repeat(None)), dtype=bool, count=m)
                structs = [self.empty if s is None else s for s in structs]
            else:
                present = np.ones(m, dtype=bool)
            cells = np.fromiter(chain.from_iterable(map(astuple, structs)), dtype=object, count=m * self.width)
            cells = cells.reshape(m, self.width)
        self.present.append(present)
        k, lo = len(self.floats), self.n
        if k:
            floats = self.values[:, lo:lo + m]
            floats[:] = cells[:, :k].T  # None reads as NaN
            field_, row = np.nonzero(np.isnan(floats))
            if row.size:
                self.null[field_, row + lo] = np.fromiter(
                    (v is None for v in cells[row, field_].tolist()), dtype=bool, count=row.size)
        if self.texts:  # the category columns as strings, in one call; one by one where that fails
            try:
                texts = pa.array(cells[:, self.texts].T.ravel().tolist(), type=pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                pass
            else:
                null = _nulls(texts)
                none = np.zeros(m, dtype=bool)
                for j, target in enumerate(self.columns[:len(self.texts)]):
                    gaps = null[j * m:(j + 1) * m]
                    target.append((texts.slice(j * m, m), ~gaps, gaps, none))
        for target, (name, numeric) in zip(self.columns, self.others):
            if len(target) == self.chunks:  # not read above
                cell_values = cells[:, self.at[name]].tolist()
                target.append(_numbers_one_by_one(cell_values) if numeric else categories(cell_values))
        self.chunks += 1
        self.n += m

    def add_scanned(self, present: bytes, floats: bytes, null: bytes, texts: list[ScannedText]) -> None:
        """The next rows, as the scanner read them: presence, the float fields (field-major), their
        null cells, and each category field's strings."""
        m = len(present)
        self.present.append(np.frombuffer(present, dtype=np.bool_))
        k, lo = len(self.floats), self.n
        if k:
            self.values[:, lo:lo + m] = np.frombuffer(floats, dtype=np.float64).reshape(k, m)
            self.null[:, lo:lo + m] = np.frombuffer(null, dtype=np.bool_).reshape(k, m)
        for target, text in zip(self.columns, texts):
            gaps_null = np.frombuffer(text[3], dtype=np.bool_)
            gaps_absent = np.frombuffer(text[4], dtype=np.bool_)
            target.append((_scanned_strings(m, text), ~(gaps_null | gaps_absent), gaps_null, gaps_absent))
        self.chunks += 1
        self.n += m

    def done(self) -> TypedFields:
        """The rows added so far, as one :class:`TypedFields`."""
        n = self.n
        return TypedFields(
            np.concatenate(self.present) if self.present else np.zeros(0, dtype=bool),
            self.floats, self.values[:, :n], self.null[:, :n],
            {key: _concat(parts) for key, parts in zip(self.others, self.columns)})


def _concat(parts: list[Column]) -> Column:
    """A field's column from its chunks' columns."""
    if not parts:
        return pa.array([], type=pa.string()), np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, bool)
    first = parts[0][0]
    values = (pa.concat_arrays([p[0] for p in parts]) if isinstance(first, pa.Array)
              else np.concatenate([p[0] for p in parts]))
    return (values, *(np.concatenate([p[k] for p in parts]) for k in (1, 2, 3)))  # type: ignore[return-value]


class TypedJson:
    """Decodes JSON events against the strict event type of the column-wise models."""

    def __init__(self, models: Iterable[ModelColumns]) -> None:
        models = list(models)
        numeric: set[str] = set()
        categorical: set[str] = set()
        numeric_predictions: set[str] = set()
        other_predictions: set[str] = set()
        for m in models:
            numeric.update(m.numeric)
            categorical.update(m.categorical)
            for name, is_numeric in m.predictions:
                (numeric_predictions if is_numeric else other_predictions).add(name)
        read_as_numbers = numeric_predictions & other_predictions
        numeric_predictions -= other_predictions  # two models disagree: read as a category, checked per model
        self.floats = frozenset(numeric) | numeric_predictions
        """Fields read as ``float | None`` (the others as a category value)."""
        self._features = sorted(numeric), [(f, False) for f in sorted(categorical)]
        self._predictions = sorted(numeric_predictions), sorted(
            {(p, False) for p in other_predictions} | {(p, True) for p in read_as_numbers})
        labels = {label for m in models for label in m.cohort}
        self.envelope = tuple(name for name in ENVELOPE if name in {"model", "event_id", *labels})
        """The text fields kept as columns; the others are only checked."""
        self.segment = tuple(sorted(label[len("segment."):] for label in labels if label.startswith("segment.")))
        """The keys under ``segment`` kept as columns (those of ``segment.*`` cohort labels)."""
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
        types: dict[str, Any] = {
            **{name: _TEXT for name in ENVELOPE}, "ts": str | int | None, "segment": dict[str, str] | None,
            "features": features | None, "prediction": prediction | None}
        event = msgspec.defstruct(
            "Event", [(name, types[name], None) for name in _EVENT_ORDER], forbid_unknown_fields=True, gc=False)
        self._decode = msgspec.json.Decoder(event).decode
        self._kept = [_EVENT_ORDER.index(name) for name in self.envelope]
        # Fields read as numbers one by one (two models disagree on one) are left to msgspec.
        self._scan = Scanner(
            envelope=self.envelope, segment=self.segment,
            feature_floats=self._features[0], feature_categories=[name for name, _ in self._features[1]],
            prediction_floats=self._predictions[0], prediction_categories=[name for name, _ in self._predictions[1]],
        ).scan if SCANNER and not read_as_numbers else None

    def read(self, values: Sequence[bytes | None]) -> TypedColumns:
        """The messages of ``values`` that the strict event type accepts, as columns.

        The garbage collector is paused meanwhile: the objects made here (a struct and a
        tuple per message, then their values) hold no cycles and are gone by the end, so a
        collection would only walk them.
        """
        with _gc_paused():
            return self._read(values)

    def _read(self, values: Sequence[bytes | None]) -> TypedColumns:
        n = len(values)
        features = _FieldChunks(self._no_features, *self._features, n)
        prediction = _FieldChunks(self._no_prediction, *self._predictions, n)
        envelope: list[list[pa.Array]] = [[] for _ in self.envelope]
        segment: list[list[pa.Array]] = [[] for _ in self.segment]
        ts: list[TsPart] = []
        parsed: list[npt.NDArray[np.intp]] = []
        tried = accepted = 0
        for lo in range(0, n, CHUNK):
            if tried >= GIVE_UP and not accepted:
                break  # a stream of another shape (other keys, other types): not worth trying further
            chunk = values[lo:lo + CHUNK]
            scanned = self._scan(chunk) if self._scan is not None else None
            if scanned is not None:
                m = len(chunk)
                tried += m
                accepted += m
                parsed.append(np.arange(lo, lo + m, dtype=np.intp))
                env, seg, ts_text, ts_int, ts_int_valid, scanned_features, scanned_prediction = scanned
                for target, text in zip(envelope, env):
                    target.append(_scanned_strings(m, text))
                for target, text in zip(segment, seg):
                    target.append(_scanned_strings(m, text))
                texts = _scanned_strings(m, ts_text)
                ts.append(texts if ts_int is None or ts_int_valid is None else (texts, pa.Array.from_buffers(
                    pa.int64(), m, [pa.py_buffer(np.packbits(np.frombuffer(ts_int_valid, dtype=np.uint8),
                                                             bitorder="little")), pa.py_buffer(ts_int)])))
                features.add_scanned(*scanned_features)
                prediction.add_scanned(*scanned_prediction)
                continue
            events, kept = self._decode_chunk(chunk, lo, tried, accepted)
            tried += len(chunk)
            if not events:
                continue
            accepted += len(events)
            parsed.append(kept)
            columns: list[Any] = list(zip(*map(astuple, events)))
            del events
            if self._kept:
                texts = pa.array(list(chain.from_iterable(columns[k] for k in self._kept)), type=pa.string())
                m = len(columns[0])
                for j, target in enumerate(envelope):
                    target.append(texts.slice(j * m, m))
            try:
                ts.append(pa.array(columns[_TS], type=pa.string()))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                ts.append(columns[_TS])  # epoch numbers among them: read as Python values at the end
            segments = columns[_SEGMENT]
            for target, sub in zip(segment, self.segment):
                target.append(pa.array([s.get(sub) if s else None for s in segments], type=pa.string()))
            features.add(columns[_FEATURES])
            prediction.add(columns[_PREDICTION])
        return TypedColumns(
            parsed=np.concatenate(parsed) if parsed else np.zeros(0, dtype=np.intp),
            envelope={name: _strings(parts) for name, parts in zip(self.envelope, envelope)},
            ts=_ts_columns(ts),
            segment={name: _strings(parts) for name, parts in zip(self.segment, segment)},
            features=features.done(), prediction=prediction.done(),
        )

    def _decode_chunk(self, chunk: Sequence[bytes | None], lo: int, tried: int,
                      accepted: int) -> tuple[list[Any], npt.NDArray[np.intp]]:
        """The decoded events of a chunk starting at position ``lo``, and their positions.

        ``tried`` messages before it were tried, ``accepted`` of them accepted: past
        :data:`GIVE_UP` refused ones with none accepted, the rest are not tried.
        """
        decode = self._decode
        try:
            if max(map(len, chunk), default=0) > MAX_MESSAGE_BYTES:  # type: ignore[arg-type]
                raise ValueError("a message is too large")
            return list(map(decode, chunk)), np.arange(lo, lo + len(chunk), dtype=np.intp)  # type: ignore[arg-type]
        except (msgspec.MsgspecError, TypeError, ValueError):
            pass
        events: list[Any] = []
        kept: list[int] = []
        for i, value in enumerate(chunk):
            if tried + i == GIVE_UP and not accepted and not kept:
                break
            if value is None or len(value) > MAX_MESSAGE_BYTES:
                continue
            try:
                events.append(decode(value))
            except (msgspec.MsgspecError, TypeError, ValueError):
                continue
            kept.append(lo + i)
        return events, np.asarray(kept, dtype=np.intp)


ScannedText = tuple[bytes, bytes, bytes, bytes, bytes]
"""A text column as the scanner returns it: Arrow validity bitmap, int32 offsets, UTF-8 bytes,
then a byte per row for a null and for an absent value."""

TsPart: TypeAlias = "pa.Array | tuple[pa.Array, pa.Array] | tuple[str | int | None, ...]"
"""A chunk's ``ts``: texts; texts and integers (the scanner; nulls where the other kind is); or
msgspec's Python values where some are integers."""


def _scanned_strings(m: int, text: ScannedText) -> pa.Array:
    """The Arrow strings of a scanned text column (null where the value was null or absent)."""
    return pa.Array.from_buffers(pa.string(), m, [pa.py_buffer(text[0]), pa.py_buffer(text[1]), pa.py_buffer(text[2])])


def _ts_columns(parts: list[TsPart]) -> list[pa.Array]:
    """The ``ts`` column from its chunks: one array of texts, or texts and integers (nulls where
    the other kind is) when any chunk had an integer."""
    if all(isinstance(part, pa.Array) for part in parts):
        return [_strings(parts)]
    texts: list[pa.Array] = []
    wholes: list[pa.Array] = []
    for part in parts:
        if isinstance(part, pa.Array):
            texts.append(part)
            wholes.append(pa.nulls(len(part), type=pa.int64()))
        elif len(part) == 2 and isinstance(part[0], pa.Array):
            texts.append(part[0])
            wholes.append(part[1])
        else:
            values = part
            texts.append(pa.array([v if isinstance(v, str) else None for v in values], type=pa.string()))
            wholes.append(pa.array([v if isinstance(v, int) and _INT64[0] <= v <= _INT64[1] else None
                                    for v in values], type=pa.int64()))
    return [_strings(texts), _strings(wholes)]


_INT64 = (-(2**63), 2**63 - 1)


def _nulls(array: pa.Array) -> npt.NDArray[np.bool_]:
    if not array.null_count:
        return np.zeros(len(array), dtype=bool)
    return np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _strings(parts: list[pa.Array]) -> pa.Array:
    if not parts:
        return pa.array([], type=pa.string())
    return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)


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
        null = _nulls(array)
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
