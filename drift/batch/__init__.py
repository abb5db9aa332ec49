"""Decoding a batch of messages column by column: the flow's hot path.

A source batch (Kafka poll, or a thousand file lines) is decoded at once:

1. messages that can be parsed as one newline-delimited JSON document (not empty,
   no line break inside, at most :data:`drift.events.MAX_MESSAGE_BYTES`) are parsed
   by Arrow's JSON reader into columns; a message holding an Arrow IPC stream
   (producers that batch on their side) is read as a record batch;
2. the rows of a configured model that are *clean* (RFC 3339 ``ts``, or an epoch number in
   the model's ``ts_unit`` from 2000 on, not too far ahead; every profiled feature and
   prediction field present, non-null and of the right type; no unknown feature) become
   a :class:`drift.columnar.Block` per cohort;
3. every other message is decoded one by one by :class:`drift.events.Decoder`, so it
   gets exactly the event or dead letter (with its reason) it would get alone.

Rows of models that need each event (embeddings, value skew, freshness) always take
step 3. When Arrow cannot parse a group of messages (one bad message spoils the whole
group) the group is split in halves until the bad messages are isolated, so a few bad
messages do not send a whole batch down the slow road.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import repeat
from operator import attrgetter, is_not
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from drift.categories import category_text, category_texts
from drift.columnar import MISSING, NULL, OK, WRONG, Block, concat_blocks
from drift.windowing import to_micros
from drift.events import (
    ARROW_STREAM_MAGIC, EPOCH_MIN_MICROS, MAX_MESSAGE_BYTES, MAX_NESTING, MICROS_PER_UNIT, DeadLetter, Decoder,
    DlqReason, InferenceEvent, RawMessage,
)
from drift.findings import Cohort
from drift.reference import NumericProfile, ReferenceProfile

_ABSENT = object()

TS_PATTERN = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
"""The RFC 3339 form read column-wise; any other ``ts`` text is decoded one by one."""

BLOCK_SPLIT = max(1, min(os.cpu_count() or 1, 4))
"""Arrow reads a batch in this many blocks at once."""

MIN_COLUMNAR = 32
"""Smaller batches (and a model's events decoded one by one, when it has no clean rows in the
batch and fewer than this many) are counted one event at a time: column-wise work has a fixed
cost per batch that a handful of events does not repay."""

MIN_SPLIT = 16
"""Groups of at most this many messages that Arrow cannot parse are decoded one by one."""

MAX_BRACKETS = 64
"""Long messages with more objects and lists than this are decoded one by one (deep nesting
is refused there; Arrow's reader recurses into it)."""

MAX_ARROW_BYTES = 65_536
"""Larger JSON messages are decoded one by one: with every line under half a block, Arrow's
reader never sees an object straddle its block boundaries."""

DEEP_BYTES = 8192
"""Messages up to this size are given to Arrow whatever their nesting (it reads far deeper)."""

ROW_SPAN = 1 << 24
"""Rows of one Arrow message are ranked ``position × ROW_SPAN + row`` (more than fit in a message)."""

EXACT_INTEGERS = 2.0**53
"""Numbers at or beyond this magnitude are decoded one by one (integer/float rules)."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TS_LOW = to_micros(datetime(2, 1, 1, tzinfo=timezone.utc))
_TS_HIGH = to_micros(datetime(9998, 12, 31, tzinfo=timezone.utc))
_CATEGORY_TYPES = (
    pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_boolean, pa.types.is_floating,
)


@dataclass(frozen=True, slots=True)
class ModelColumns:
    """What the batch decoder needs of one model."""

    name: str
    cohort: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    predictions: tuple[tuple[str, bool], ...]
    """``(name under prediction, numeric)`` of each profiled prediction field."""
    columnar: bool
    """Whether its clean rows are decoded column-wise (no embedding, value skew or freshness)."""
    per_event: bool
    """Whether its decoded events also feed the per-event stream (value skew, freshness)."""


def model_columns(
    name: str, cohort: Sequence[str], profile: ReferenceProfile, *, per_event: bool, embeddings: bool,
) -> ModelColumns:
    """The decoder's view of one model and its reference profile."""
    numeric = tuple(f for f, p in profile.features.items() if isinstance(p, NumericProfile))
    categorical = tuple(f for f, p in profile.features.items() if not isinstance(p, NumericProfile))
    predictions = []
    flat = True
    for path, p in profile.predictions.items():
        parts = path.split(".")
        if len(parts) != 2 or parts[0] != "prediction":
            flat = False
            continue
        predictions.append((parts[1], isinstance(p, NumericProfile)))
    return ModelColumns(
        name, tuple(cohort), numeric, categorical, tuple(predictions),
        columnar=flat and not per_event and not embeddings, per_event=per_event,
    )


@dataclass(slots=True)
class Piece:
    """The rows of one cohort in one batch, in arrival order.

    ``columnar[i]`` says whether row ``i`` is the next row of ``block`` or the next of
    ``events`` (decoded one by one).
    """

    cohort: Cohort
    ts: npt.NDArray[np.int64]
    columnar: npt.NDArray[np.bool_]
    block: Block | None
    events: list[InferenceEvent]

    def __len__(self) -> int:
        return int(self.ts.size)


@dataclass(slots=True)
class DecodedBatch:
    """One source batch, decoded."""

    pieces: list[Piece] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    events: list[InferenceEvent] = field(default_factory=list)
    """Decoded events of models with per-event consumers (value skew, freshness)."""
    n_events: int = 0
    n_columnar: int = 0
    """Events counted column-wise (parsed by Arrow, or decoded one by one and turned into rows)."""


@dataclass(slots=True)
class _Rows:
    """Clean rows of one model gathered from the batch's tables."""

    index: list[npt.NDArray[np.intp]] = field(default_factory=list)
    """Arrival rank of each row: ``message position × ROW_SPAN + row within the message``."""
    keys: list[pa.Array] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    first_labels: list[dict[str, tuple[tuple[str, str], ...]]] = field(default_factory=list)


class BatchDecoder:
    """Decodes a list of :class:`RawMessage` into a :class:`DecodedBatch`; never raises on a message."""

    def __init__(self, decoder: Decoder, models: Iterable[ModelColumns], min_columnar: int = MIN_COLUMNAR) -> None:
        self.decoder = decoder
        self.min_columnar = min_columnar
        self.models = {m.name: m for m in models}
        numeric: dict[str, str] = {}
        categorical: dict[str, str] = {}
        columnar = []
        for m in self.models.values():
            if not m.columnar:
                continue
            clash = [f for f in m.numeric if f in categorical] + [f for f in m.categorical if f in numeric]
            if clash:  # two models disagree on a feature's type: the later one decodes event by event
                self.models[m.name] = ModelColumns(
                    m.name, m.cohort, m.numeric, m.categorical, m.predictions, columnar=False, per_event=m.per_event)
                continue
            numeric.update({f: m.name for f in m.numeric})
            categorical.update({f: m.name for f in m.categorical})
            columnar.append(self.models[m.name])
        self.columnar = columnar
        self._own = {m.name: frozenset({*m.numeric, *m.categorical}) for m in self.models.values()}
        self.known_features = set(numeric) | set(categorical)
        envelope = [pa.field(n, pa.string()) for n in (
            "event_id", "model", "model_version", "tenant", "region", "route", "entity_id")]
        features = pa.field("features", pa.struct([pa.field(f, pa.float64()) for f in numeric]))
        predictions = {p for m in columnar for p, is_num in m.predictions if is_num}
        prediction = pa.field("prediction", pa.struct([pa.field(p, pa.float64()) for p in sorted(predictions)]))
        self._schemas = [
            pa.schema([*envelope, pa.field("ts", ts_type), features, prediction])
            for ts_type in (pa.string(), pa.int64())
        ]
        self._schema_first = 0

    # -- entry point -------------------------------------------------------------------

    def __call__(self, raws: Sequence[RawMessage]) -> DecodedBatch:
        out = DecodedBatch()
        slow: list[int] = []
        rows = {m.name: _Rows() for m in self.columnar}
        groups: _SlowGroups = {}
        arrow: list[int] = []
        if self.columnar and len(raws) >= self.min_columnar:
            values = list(map(_VALUE, raws))
            flagged = _screen(raws, values)
            for i in flagged:
                value = values[i]
                if raws[i].error is not None or not value or len(value) > MAX_MESSAGE_BYTES:
                    slow.append(i)
                elif value.startswith(ARROW_STREAM_MAGIC):
                    arrow.append(i)
                else:
                    slow.append(i)
            if arrow:
                self._arrow_messages(raws, arrow, rows, out, groups)
            skip = set(flagged)
            candidates = [i for i in range(len(raws)) if i not in skip] if skip else list(range(len(raws)))
            now = _now_micros(self.decoder)
            for lo, hi, table in self._parse(raws, candidates, slow):
                index = np.asarray(candidates[lo:hi], dtype=np.intp)
                rest = self._table_rows(table, index, raws, now, rows)
                slow.extend(index[rest].tolist())
        else:
            for i, raw in enumerate(raws):
                value = raw.value
                if (raw.error is None and value and len(value) <= MAX_MESSAGE_BYTES
                        and value.startswith(ARROW_STREAM_MAGIC)):
                    arrow.append(i)  # many events: column-wise anyway
                else:
                    slow.append(i)
            if arrow:
                self._arrow_messages(raws, arrow, rows, out, groups)
        self._assemble(raws, sorted(slow), rows, out, groups)
        return out

    # -- parsing -------------------------------------------------------------------------

    def _parse(self, raws: Sequence[RawMessage], candidates: list[int], slow: list[int]) -> list[tuple[int, int, pa.Table]]:
        """Parse ``candidates`` as NDJSON in as few groups as the data allows."""
        parsed: list[tuple[int, int, pa.Table]] = []
        pending = [(0, len(candidates))] if candidates else []
        while pending:
            lo, hi = pending.pop()
            table = self._read_json([raws[i].value for i in candidates[lo:hi]])  # type: ignore[misc]
            if table is not None:
                parsed.append((lo, hi, table))
            elif hi - lo <= MIN_SPLIT:
                slow.extend(candidates[lo:hi])
            else:
                mid = (lo + hi) // 2
                pending.extend([(mid, hi), (lo, mid)])
        return parsed

    def _read_json(self, values: list[bytes]) -> pa.Table | None:
        data = b"\n".join(values)
        # Blocks of about a core's share: Arrow parses blocks in parallel, outside the GIL.
        options = pj.ReadOptions(
            use_threads=True, block_size=max(2 * MAX_ARROW_BYTES + 2, len(data) // BLOCK_SPLIT + 1))
        order = [self._schema_first, 1 - self._schema_first]
        for attempt in order:
            try:
                table = pj.read_json(pa.py_buffer(data), read_options=options, parse_options=pj.ParseOptions(
                    explicit_schema=self._schemas[attempt], unexpected_field_behavior="infer"))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError) as exc:
                if "/ts)" in str(exc):
                    continue  # the other ``ts`` form may fit
                return None
            if table.num_rows != len(values):
                return None  # a line break inside a message
            try:
                table.validate(full=True)  # strings must be UTF-8: the reader does not check
            except (pa.ArrowInvalid, UnicodeDecodeError):  # the latter: Arrow's message quotes the bytes
                return None
            if not _utf8_names(table.schema):
                return None  # nor keys
            self._schema_first = attempt
            return table
        return None

    def _arrow_messages(
        self, raws: Sequence[RawMessage], positions: list[int], rows: dict[str, _Rows], out: DecodedBatch,
        groups: _SlowGroups,
    ) -> None:
        """Read the Arrow IPC messages at ``positions``; screen those of one schema as one table.

        The screen costs a few dozen Arrow calls per table whatever its length, so the record
        batches of a poll are put end to end first: the calls are per poll, not per message.
        """
        by_schema: list[tuple[pa.Schema, list[tuple[int, pa.Table]]]] = []
        for i in positions:
            raw = raws[i]
            try:
                table = pa.ipc.open_stream(pa.py_buffer(raw.value)).read_all()
                table.validate(full=True)
                if not _utf8_names(table.schema):
                    raise pa.ArrowInvalid("a field name is not UTF-8")
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError, UnicodeDecodeError) as exc:
                out.dead.append(DeadLetter(
                    reason=DlqReason.BAD_ARROW, detail=f"not an Arrow IPC stream: {str(exc)[:200]}",
                    step_id=self.decoder.step_id, topic=raw.topic, partition=raw.partition,
                    offset=raw.offset, value=raw.value, key=raw.key))
                continue
            if table.num_rows == 0:
                continue
            for schema, members in by_schema:
                if schema.equals(table.schema):
                    members.append((i, table))
                    break
            else:
                by_schema.append((table.schema, [(i, table)]))
        now = _now_micros(self.decoder)
        for _, members in by_schema:
            counts = np.asarray([t.num_rows for _, t in members], dtype=np.intp)
            table = members[0][1] if len(members) == 1 else pa.concat_tables([t for _, t in members])
            starts = np.cumsum(counts) - counts
            messages = np.repeat(np.arange(len(members)), counts)
            located = _ArrowRows(
                [_ArrowSource(raws[i], self._own) for i, _ in members],
                messages, np.arange(table.num_rows) - starts[messages])
            index = np.asarray([i for i, _ in members], dtype=np.intp)[messages]
            rest = self._table_rows(table, index, raws, now, rows, located)
            # Rows that are not clean are decoded one by one from their JSON form; a null
            # cell of another model's feature column is an absent field, not a null.
            left = np.flatnonzero(rest)
            records = table.take(pa.array(left, type=pa.int64())).to_pylist() if left.size else []
            for j, record in zip(left.tolist(), records):
                i, row = int(index[j]), int(located.within[j])
                raw = raws[i]
                value = orjson.dumps(_json_record(record, self._own), default=_json_default)
                item = self.decoder(RawMessage(value, raw.topic, raw.partition, raw.offset, raw.key))
                if isinstance(item, DeadLetter):
                    out.dead.append(DeadLetter(
                        reason=item.reason, detail=f"row {row} of the Arrow record batch: {item.detail}",
                        step_id=item.step_id, topic=raw.topic, partition=raw.partition, offset=raw.offset,
                        value=value, key=raw.key))
                else:
                    self._add_event(item, i * ROW_SPAN + row, out, groups)

    # -- clean rows of a table -----------------------------------------------------------

    def _table_rows(
        self, table: pa.Table, index: npt.NDArray[np.intp], raws: Sequence[RawMessage], now: int,
        rows: dict[str, _Rows], located: _ArrowRows | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Gather the table's clean rows into ``rows``; return the mask of the others.

        ``index`` is the position in ``raws`` of each row's message; ``located`` is given for
        Arrow record batches (many rows per message), ``None`` for JSON lines (one each).
        """
        arrow = located is not None
        n = table.num_rows
        rest = np.ones(n, dtype=bool)
        names = set(table.schema.names)
        if "features" not in names or "model" not in names or "ts" not in names:
            return rest
        features = _column(table, "features")
        if not pa.types.is_struct(features.type):
            return rest
        extra = {features.type.field(k).name for k in range(features.type.num_fields)} - self.known_features
        if extra:
            return rest  # an unknown feature: the schema check needs each event
        for deep in ("prediction", "embedding", "segment"):
            if deep in names and _depth(table.schema.field(deep).type) > MAX_NESTING - 2:
                return rest
        ts_column = _column(table, "ts")
        latest = now + self.decoder.max_future // timedelta(microseconds=1)
        # Epoch numbers are read in each model's ``ts_unit``: one reading per unit in use.
        readings: dict[str, tuple[npt.NDArray[np.int64] | None, npt.NDArray[np.bool_]]] = {}

        def timestamps(model: str) -> tuple[npt.NDArray[np.int64] | None, npt.NDArray[np.bool_]]:
            unit = self.decoder.ts_unit(model) if pa.types.is_integer(ts_column.type) else "ms"
            if unit not in readings:
                readings[unit] = _timestamps(ts_column, latest, unit)
            return readings[unit]

        if timestamps(self.columnar[0].name)[0] is None:
            return rest
        ok = _valid(features)
        segment = _column(table, "segment") if "segment" in names else None
        if segment is not None:
            if not pa.types.is_struct(segment.type) or not all(
                    pa.types.is_string(segment.type.field(k).type) for k in range(segment.type.num_fields)):
                return rest
            ok &= _segment_complete(segment)
        model = _column(table, "model")
        if not (pa.types.is_string(model.type) or pa.types.is_null(model.type)):
            return rest
        raw_values: pa.Array | None = None
        for m in self.columnar:
            mine = _bools(pc.equal(model, m.name)) if pa.types.is_string(model.type) else np.zeros(n, bool)
            if not mine.any():
                continue
            ts, ts_ok = timestamps(m.name)
            assert ts is not None  # the column's type was checked above
            good = mine & ok & ts_ok
            states: dict[str, npt.NDArray[np.int8]] = {}

            def accept(name: str, column: pa.Array | None, fine: npt.NDArray[np.bool_],
                       absent: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.bool_]:
                """Rows whose cell is usable: a value, or (Arrow input) a null or absent column;
                ``absent`` marks rows where the field cannot be there (no prediction object)."""
                state = np.zeros(n, dtype=np.int8)
                usable = fine.copy()
                if absent is not None:
                    state[absent] = MISSING
                    usable |= absent
                if arrow:
                    if column is None:
                        state[:] = MISSING
                        usable[:] = True
                    else:
                        null = ~_valid(column) & (state == OK)
                        state[null] = NULL
                        usable |= null
                elif absent is None:
                    # A feature: Arrow shows both an absent key and ``null`` as null; the
                    # message's bytes tell them apart where that is certain.
                    unclear = (~_valid(column) if column is not None else np.ones(n, bool)) & good
                    if unclear.any():
                        missing, null = self._null_or_missing(name, unclear, table, index, raws)
                        state[missing] = MISSING
                        state[null] = NULL
                        usable |= missing | null
                if state.any():
                    states[name] = state
                return usable

            numeric_columns: dict[str, Any] = {}
            categorical_columns: dict[str, Any] = {}
            readers: tuple[tuple[tuple[str, ...], Callable[..., Any], dict[str, Any]], ...] = (
                (m.numeric, _numeric, numeric_columns), (m.categorical, _categories, categorical_columns))
            for feature_names, read, target in readers:
                for name in feature_names:
                    column = features.field(name) if features.type.get_field_index(name) >= 0 else None
                    values, fine = read(column, n)
                    good &= accept(name, column, fine)
                    target[name] = values
            foreign = [f for f in self.known_features if f not in m.numeric and f not in m.categorical]
            for name in foreign:
                if features.type.get_field_index(name) >= 0:
                    good &= _bools(features.field(name).is_null())
            prediction_columns: dict[str, Any] = {}
            if m.predictions:
                pred = _column(table, "prediction") if "prediction" in names else None
                if pred is not None and not pa.types.is_struct(pred.type):
                    good[:] = False
                # No prediction object (absent or null): every prediction field is absent.
                no_object = np.ones(n, dtype=bool) if pred is None else ~_valid(pred)
                for name, is_numeric in m.predictions:
                    column = None if pred is None or pred.type.get_field_index(name) < 0 else pred.field(name)
                    values, fine = _numeric(column, n) if is_numeric else _categories(column, n)
                    path = f"prediction.{name}"
                    good &= accept(path, column, fine, absent=no_object)
                    prediction_columns[path] = values
            if foreign and not arrow and good.any():
                # In JSON a null in another model's feature may be an explicit ``null``:
                # an unknown field for this model, which the schema check needs to see.
                if raw_values is None:
                    raw_values = pa.array([r.value for r in _at(raws, index)], type=pa.binary())
                for name in foreign:
                    key = re.escape(orjson.dumps(name).decode()) + r"\s*:"
                    good &= ~_bools(pc.match_substring_regex(raw_values, key))
            if not good.any():
                continue
            rest &= ~good
            self._gather(m, table, good, index, raws, located, ts, numeric_columns, categorical_columns,
                         prediction_columns, segment, rows[m.name], states)
        return rest

    def _null_or_missing(
        self, name: str, rows: npt.NDArray[np.bool_], table: pa.Table, index: npt.NDArray[np.intp],
        raws: Sequence[RawMessage],
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Of the JSON ``rows`` where feature ``name`` read as null: (absent, ``null``).

        Absent: the key's text appears nowhere in the message, and the message has no
        backslash (a key may be written with escapes, ``"\u0078"`` for ``"x"``). ``null``:
        it appears once, as a key right after ``{`` or ``,`` with the value ``null``, and no
        object other than ``features`` in the batch has such a key (valid JSON puts an
        unescaped ``"`` there only at a string's start, so the match is that key). Anything
        else stays unclear and the message is decoded on its own.
        """
        picked = np.flatnonzero(rows)
        values = pa.array([raws[i].value for i in index[picked].tolist()], type=pa.binary())
        quoted = orjson.dumps(name).decode()
        count = pc.count_substring(values, quoted).to_numpy(zero_copy_only=False)
        escapes = _bools(pc.match_substring(values, "\\"))
        missing = np.zeros(rows.size, dtype=bool)
        null = np.zeros(rows.size, dtype=bool)
        missing[picked] = (count == 0) & ~escapes
        if (count == 1).any() and not _named_elsewhere(table.schema, name):
            pattern = r"[{,]\s*" + re.escape(quoted) + r"\s*:\s*null"
            null[picked] = (count == 1) & _bools(pc.match_substring_regex(values, pattern))
        return missing, null

    def _gather(
        self, m: ModelColumns, table: pa.Table, good: npt.NDArray[np.bool_], index: npt.NDArray[np.intp],
        raws: Sequence[RawMessage], located: _ArrowRows | None, ts: npt.NDArray[np.int64],
        numeric: dict[str, npt.NDArray[np.float64]], categorical: dict[str, pa.Array],
        predictions: dict[str, Any], segment: pa.Array | None, out: _Rows,
        states: dict[str, npt.NDArray[np.int8]],
    ) -> None:
        mask = pa.array(good)
        picked = np.flatnonzero(good)
        label_columns = []
        for label in m.cohort:
            if label.startswith("segment."):
                sub = label[len("segment."):]
                if segment is None or segment.type.get_field_index(sub) < 0:
                    values = pa.nulls(table.num_rows, pa.string())
                else:
                    values = segment.field(sub)
            else:
                values = _column(table, label) if label in table.schema.names else pa.nulls(table.num_rows, pa.string())
                if not pa.types.is_string(values.type):
                    values = values.cast(pa.string())
            label_columns.append(pc.fill_null(values.filter(mask), "-"))
        if label_columns:
            keys = pc.binary_join_element_wise(
                m.name, *[pc.binary_join_element_wise(f"{label}=", column, "")
                          for label, column in zip(m.cohort, label_columns)], "|")
        else:
            keys = pa.array([m.name] * int(good.sum()), type=pa.string())
        event_ids = _column(table, "event_id") if "event_id" in table.schema.names else pa.nulls(table.num_rows, pa.string())
        if not pa.types.is_string(event_ids.type):
            event_ids = event_ids.cast(pa.string())
        names = [*m.numeric, *(p for p, v in predictions.items() if isinstance(v, np.ndarray))]
        columns = [*(numeric[k] for k in m.numeric), *(v for v in predictions.values() if isinstance(v, np.ndarray))]
        matrix = np.stack(columns)[:, good] if columns else np.zeros((0, int(good.sum())))
        block = Block(
            ts=ts[good],
            event_ids=event_ids.filter(mask),
            numeric_names=tuple(names),
            numeric=matrix,
            categorical={
                **{k: v.filter(mask) for k, v in categorical.items()},
                **{k: v.filter(mask) for k, v in predictions.items() if not isinstance(v, np.ndarray)},
            },
            raws=located.messages(picked) if located is not None else _at(raws, index[picked]),
            states={k: v[good] for k, v in states.items() if v[good].any()},
        )
        out.index.append(index[picked] * ROW_SPAN + (located.within[picked] if located is not None else 0))
        out.keys.append(keys)
        out.blocks.append(block)
        labels: dict[str, tuple[tuple[str, str], ...]] = {}
        encoded = keys.dictionary_encode()
        first = np.unique(encoded.indices.to_numpy(zero_copy_only=False), return_index=True)[1]
        for position in first.tolist():
            key = keys[position].as_py()
            labels[key] = tuple((label, column[position].as_py()) for label, column in zip(m.cohort, label_columns))
        out.first_labels.append(labels)

    # -- assembling pieces ---------------------------------------------------------------

    def _add_event(self, event: InferenceEvent, position: int, out: DecodedBatch, groups: _SlowGroups) -> None:
        model = self.models[event.model]
        cohort = Cohort(event.model, tuple((label, event.label(label) or "-") for label in model.cohort))
        if model.per_event:
            out.events.append(event)
        entry = groups.get(cohort.key)
        if entry is None:
            entry = groups[cohort.key] = (cohort, [])
        entry[1].append((position, len(entry[1]), event))

    def _assemble(
        self, raws: Sequence[RawMessage], slow: list[int], rows: dict[str, _Rows], out: DecodedBatch,
        groups: _SlowGroups,
    ) -> None:
        for i in slow:
            item = self.decoder(raws[i])
            if isinstance(item, DeadLetter):
                out.dead.append(item)
            else:
                self._add_event(item, i * ROW_SPAN, out, groups)
        # Per column-wise model: its clean rows plus its events decoded one by one (as rows
        # with null/missing/wrong cells), ordered by cohort then arrival, cut per cohort.
        blocks: dict[str, tuple[Cohort, npt.NDArray[np.int64], Block]] = {}
        for name, gathered in rows.items():
            parts = list(gathered.blocks)
            index = list(gathered.index)
            keys = list(gathered.keys)
            labels: dict[str, tuple[tuple[str, str], ...]] = {}
            for part in gathered.first_labels:
                for key, value in part.items():
                    labels.setdefault(key, value)
            mine = [(key, entry) for key, entry in groups.items() if entry[0].model == name]
            if mine and (parts or sum(len(entry[1]) for _, entry in mine) >= self.min_columnar):
                flat = sorted((row for _, entry in mine for row in entry[1]), key=lambda r: (r[0], r[1]))
                cohort_of = {id(row[2]): entry[0] for _, entry in mine for row in entry[1]}
                converted, left = events_block([row[2] for row in flat], self.models[name])
                kept = np.ones(len(flat), dtype=bool)
                kept[left] = False
                if converted is not None:
                    chosen = [row for row, k in zip(flat, kept.tolist()) if k]
                    parts.append(converted)
                    index.append(np.asarray([row[0] for row in chosen], dtype=np.int64))
                    keys.append(pa.array([cohort_of[id(row[2])].key for row in chosen], type=pa.string()))
                    labels.update({cohort_of[id(row[2])].key: cohort_of[id(row[2])].labels for row in chosen})
                    out.n_columnar += len(converted)
                for key, _ in mine:
                    del groups[key]
                for row, k in zip(flat, kept.tolist()):  # left out: added one by one
                    if not k:
                        cohort = cohort_of[id(row[2])]
                        groups.setdefault(cohort.key, (cohort, []))[1].append(row)
            if not parts:
                continue
            block = concat_blocks(parts)
            positions = np.concatenate(index)
            encoded = pa.concat_arrays(keys).dictionary_encode()
            codes = encoded.indices.to_numpy(zero_copy_only=False)
            order = np.lexsort((positions, codes))  # by cohort, then arrival
            if not np.array_equal(order, np.arange(order.size)):
                block, positions, codes = block.take(order), positions[order], codes[order]
            starts = [0, *(np.flatnonzero(np.diff(codes)) + 1).tolist(), len(block)]
            for a, b in zip(starts, starts[1:]):
                key = encoded.dictionary[int(codes[a])].as_py()
                blocks[key] = (Cohort(name, labels[key]), positions[a:b], block.slice(a, b))
            out.n_columnar += sum(len(p) for p in gathered.blocks)
        for key in {*blocks, *groups}:
            cohort = blocks[key][0] if key in blocks else groups[key][0]
            piece_block = blocks[key][2] if key in blocks else None
            fast_index = blocks[key][1] if key in blocks else np.zeros(0, dtype=np.int64)
            slow_rows = sorted(groups[key][1], key=lambda row: (row[0], row[1])) if key in groups else []
            events = [row[2] for row in slow_rows]
            positions = np.concatenate([fast_index, np.asarray([row[0] for row in slow_rows], dtype=np.int64)])
            kinds = np.concatenate([np.ones(fast_index.size, bool), np.zeros(len(events), bool)])
            stamps = np.concatenate([
                piece_block.ts if piece_block is not None else np.zeros(0, np.int64),
                np.asarray([to_micros(e.ts) for e in events], dtype=np.int64),
            ])
            order = np.argsort(positions, kind="stable")
            out.pieces.append(Piece(cohort, stamps[order], kinds[order], piece_block, events))
            out.n_events += len(order)


_SlowGroups = dict[str, tuple[Cohort, list[tuple[int, int, InferenceEvent]]]]


def events_block(events: Sequence[InferenceEvent], m: ModelColumns) -> tuple[Block | None, list[int]]:
    """Events decoded one by one, as block rows: (the block, positions of events left out).

    Nulls, absent fields, wrong-typed numbers and unknown feature names become cell
    states, so counting the block is counting the events. An event whose categorical
    field holds a container (only prediction fields can) is left out: its example
    order depends on when unseen values are flushed, so it is added on its own.
    """
    numeric_paths = [*m.numeric, *(f"prediction.{p}" for p, num in m.predictions if num)]
    categorical_paths = [*m.categorical, *(f"prediction.{p}" for p, num in m.predictions if not num)]
    known = {*m.numeric, *m.categorical}
    kept: list[int] = []
    left: list[int] = []
    matrix = np.full((len(numeric_paths), len(events)), math.nan)
    numeric_states = np.zeros((len(numeric_paths), len(events)), dtype=np.int8)
    texts: list[list[str | None]] = [[] for _ in categorical_paths]
    categorical_states: list[list[int]] = [[] for _ in categorical_paths]
    wrong: dict[str, list[tuple[int, str]]] = {}
    unknown: dict[int, tuple[str, ...]] = {}
    for position, event in enumerate(events):
        cells = [_cell(event, path) for path in categorical_paths]
        if any(state == WRONG for state, _ in cells):
            left.append(position)
            continue
        row = len(kept)
        kept.append(position)
        for j, (state, text) in enumerate(cells):
            categorical_states[j].append(state)
            texts[j].append(text)
        for j, path in enumerate(numeric_paths):
            value = _value_at(event, path)
            if value is _ABSENT:
                numeric_states[j, row] = MISSING
            elif value is None:
                numeric_states[j, row] = NULL
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                matrix[j, row] = float(value)
            else:
                numeric_states[j, row] = WRONG
                wrong.setdefault(path, []).append((row, repr(value)[:64]))
        extra = tuple(name for name in event.features if name not in known)
        if extra:
            unknown[row] = extra
    if not kept:
        return None, left
    n = len(kept)
    states = {path: numeric_states[j, :n] for j, path in enumerate(numeric_paths) if numeric_states[j, :n].any()}
    states.update({
        path: np.asarray(categorical_states[j], dtype=np.int8)
        for j, path in enumerate(categorical_paths) if any(categorical_states[j])
    })
    chosen = [events[i] for i in kept]
    block = Block(
        ts=np.asarray([to_micros(e.ts) for e in chosen], dtype=np.int64),
        event_ids=pa.array([e.event_id for e in chosen], type=pa.string()),
        numeric_names=tuple(numeric_paths), numeric=matrix[:, :n].copy(),
        categorical={path: pa.array(texts[j], type=pa.string()) for j, path in enumerate(categorical_paths)},
        raws=[e.raw for e in chosen], states=states, wrong=wrong, unknown=unknown,
    )
    return block, left


def _value_at(event: InferenceEvent, path: str) -> Any:
    if path.startswith("prediction."):
        prediction = event.prediction
        if not isinstance(prediction, dict):
            return _ABSENT
        return prediction.get(path[len("prediction."):], _ABSENT)
    return event.features.get(path, _ABSENT)


def _cell(event: InferenceEvent, path: str) -> tuple[int, str | None]:
    value = _value_at(event, path)
    if value is _ABSENT:
        return MISSING, None
    if value is None:
        return NULL, None
    if isinstance(value, (str, int, float, bool)):
        return OK, category_text(value)
    return WRONG, None


_VALUE = attrgetter("value")
_ERROR = attrgetter("error")


def _screen(raws: Sequence[RawMessage], values: list[bytes | None]) -> list[int]:
    """Positions of the messages Arrow must not be given as a JSON line.

    Source errors, empty and oversized messages, Arrow streams, anything that is not one
    ``{...}``, and long messages with more than :data:`MAX_BRACKETS` objects and lists
    (Arrow's reader recurses into nesting; a message shorter than :data:`DEEP_BYTES`
    cannot nest deep enough to matter). A line break inside a message shows as extra
    rows, and the reader's row count is checked.
    """
    flagged: set[int] = set()
    errors = list(map(_ERROR, raws))  # C loops: a batch is thousands of messages
    if any(map(is_not, errors, repeat(None))):
        flagged.update(i for i, error in enumerate(errors) if error is not None)
    array = pa.array(values, type=pa.binary())  # an absent value is null: flagged below
    bad = ~_bools(pc.starts_with(array, "{")) | ~_bools(pc.ends_with(array, "}"))
    lengths = pc.binary_length(array).to_numpy(zero_copy_only=False)
    bad |= lengths > MAX_ARROW_BYTES
    for i in np.flatnonzero((lengths > DEEP_BYTES) & ~bad).tolist():
        value = values[i]
        if value is not None and value.count(b"{") + value.count(b"[") > MAX_BRACKETS:
            bad[i] = True
    flagged.update(np.flatnonzero(bad).tolist())
    return sorted(flagged)


# -- column helpers ----------------------------------------------------------------------


class _ArrowSource:
    """One Arrow IPC message whose rows became block rows; reads a row back as a JSON event.

    The decoded table is cached once a row is asked for, and never pickled or copied: a
    snapshot or a process boundary carries the message's bytes, as it did before.
    """

    __slots__ = ("raw", "own", "_table")

    def __init__(self, raw: RawMessage, own: dict[str, frozenset[str]]) -> None:
        self.raw = raw
        self.own = own
        self._table: pa.Table | None = None

    def row_value(self, row: int) -> bytes:
        """Row ``row`` of the message as one JSON event (the form its slow rows are decoded from)."""
        if self._table is None:
            self._table = pa.ipc.open_stream(pa.py_buffer(self.raw.value)).read_all()
        [record] = self._table.slice(row, 1).to_pylist()
        return orjson.dumps(_json_record(record, self.own), default=_json_default)

    def __getstate__(self) -> tuple[RawMessage, dict[str, frozenset[str]]]:
        return self.raw, self.own

    def __setstate__(self, state: tuple[RawMessage, dict[str, frozenset[str]]]) -> None:
        self.raw, self.own = state
        self._table = None

    def __deepcopy__(self, memo: dict[int, Any]) -> _ArrowSource:
        return self  # immutable: the message's bytes never change


class ArrowRowMessage(RawMessage):
    """One row of an Arrow IPC message, as a :class:`RawMessage` of its own.

    ``topic``, ``partition``, ``offset`` and ``key`` are those of the Arrow message;
    ``value`` is that one row as a JSON event (what its per-event decoding reads), built
    each time it is read: a late row's dead letter carries its row, not the whole batch.
    """

    __slots__ = ("_source", "_row")
    _source: _ArrowSource
    _row: int

    def __init__(self, source: _ArrowSource, row: int) -> None:
        # Frozen like every RawMessage: the slots are set through their descriptors.
        _SOURCE_SLOT.__set__(self, source)
        _ROW_SLOT.__set__(self, row)

    @property
    def value(self) -> bytes:
        return self._source.row_value(self._row)

    @property
    def topic(self) -> str:
        return self._source.raw.topic

    @property
    def partition(self) -> int:
        return self._source.raw.partition

    @property
    def offset(self) -> int:
        return self._source.raw.offset

    @property
    def key(self) -> bytes | None:
        return self._source.raw.key

    @property
    def error(self) -> str | None:
        return None

    @property
    def row(self) -> int:
        """The row's number within its Arrow message."""
        return self._row

    def __reduce__(self) -> tuple[Any, ...]:
        return ArrowRowMessage, (self._source, self._row)

    def __deepcopy__(self, memo: dict[int, Any]) -> ArrowRowMessage:
        return self  # immutable


_SOURCE_SLOT: Any = ArrowRowMessage.__dict__["_source"]
_ROW_SLOT: Any = ArrowRowMessage.__dict__["_row"]


class ArrowRowMessages(Sequence[RawMessage]):
    """The messages of a block's Arrow rows: ``[i]`` is row ``i``'s :class:`ArrowRowMessage`.

    Arrays (which message, which row in it), so the hot path makes no object per row;
    an element is made when asked for (a late row's dead letter). Slices and
    :meth:`take` stay arrays.

    :func:`drift.columnar.concat_blocks` joins them with :meth:`concat`, still arrays.
    """

    __slots__ = ("_sources", "_message", "_within")

    def __init__(
        self, sources: npt.NDArray[np.object_], message: npt.NDArray[np.intp], within: npt.NDArray[np.intp],
    ) -> None:
        self._sources = sources
        self._message = message
        self._within = within

    def __len__(self) -> int:
        return int(self._message.size)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return ArrowRowMessages(self._sources, self._message[i], self._within[i])
        return ArrowRowMessage(self._sources[self._message[i]], int(self._within[i]))

    def __iter__(self) -> Iterator[RawMessage]:
        return (self[i] for i in range(len(self)))

    def take(self, index: npt.NDArray[np.intp]) -> ArrowRowMessages:
        """The messages of the rows at ``index``."""
        return ArrowRowMessages(self._sources, self._message[index], self._within[index])

    @classmethod
    def concat(cls, parts: Sequence[ArrowRowMessages]) -> ArrowRowMessages:
        """The rows of ``parts``, in order (their Arrow messages listed once per part)."""
        offsets = np.cumsum([0, *(p._sources.size for p in parts)])
        return ArrowRowMessages(
            np.concatenate([p._sources for p in parts]),
            np.concatenate([p._message + offset for p, offset in zip(parts, offsets.tolist())]),
            np.concatenate([p._within for p in parts]),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return ArrowRowMessages, (self._sources, self._message, self._within)


class _ArrowRows:
    """Where each row of a table of Arrow record batches came from."""

    __slots__ = ("sources", "message", "within")

    def __init__(self, sources: list[_ArrowSource], message: npt.NDArray[np.intp], within: npt.NDArray[np.intp]) -> None:
        self.sources = np.empty(len(sources), dtype=object)
        self.sources[:] = sources
        self.message = message
        """Which of ``sources`` each row is from."""
        self.within = within
        """Each row's row number within its message."""

    def messages(self, picked: npt.NDArray[np.intp]) -> ArrowRowMessages:
        """The messages of the rows in ``picked``."""
        return ArrowRowMessages(self.sources, self.message[picked], self.within[picked])


def _json_record(record: dict[str, Any], own: dict[str, frozenset[str]]) -> dict[str, Any]:
    """An Arrow row as the JSON event it stands for: null cells are absent fields, except
    the row's own model's features, where a null is an explicit ``null``."""
    mine = own.get(record.get("model"), frozenset())  # type: ignore[arg-type]
    features = record.get("features")
    if isinstance(features, dict):
        record = {**record, "features": {k: v for k, v in features.items() if v is not None or k in mine}}
    return {k: v for k, v in record.items() if v is not None}


def _at(raws: Sequence[RawMessage], index: npt.NDArray[np.intp]) -> list[RawMessage]:
    return [raws[i] for i in index.tolist()]


def _now_micros(decoder: Decoder) -> int:
    return to_micros(decoder.now())


def _column(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _bools(array: Any) -> npt.NDArray[np.bool_]:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _valid(array: pa.Array) -> npt.NDArray[np.bool_]:
    return _bools(array.is_valid())


def _depth(data_type: pa.DataType, limit: int = MAX_NESTING) -> int:
    """How deep structs and lists nest in ``data_type``, counted up to ``limit + 1`` (no recursion)."""
    deepest = 0
    stack = [(data_type, 0)]
    while stack:
        current, depth = stack.pop()
        if pa.types.is_struct(current):
            children = [current.field(k).type for k in range(current.num_fields)]
        elif pa.types.is_list(current) or pa.types.is_large_list(current) or pa.types.is_fixed_size_list(current):
            children = [current.value_type]
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def _utf8_names(schema: pa.Schema) -> bool:
    """Whether every field name in ``schema``, nested ones too, is valid UTF-8."""
    try:
        stack = [field_.type for field_ in schema]
        while stack:
            data_type = stack.pop()
            if pa.types.is_struct(data_type):
                stack.extend(data_type.field(k).type for k in range(data_type.num_fields))
                [data_type.field(k).name for k in range(data_type.num_fields)]
            elif pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
                stack.append(data_type.value_type)
    except UnicodeDecodeError:
        return False
    return True


def _named_elsewhere(schema: pa.Schema, name: str) -> bool:
    """Whether a field called ``name`` exists anywhere in ``schema`` but directly under ``features``."""
    stack: list[tuple[pa.DataType, bool]] = []
    for field_ in schema:
        if field_.name == name:
            return True
        stack.append((field_.type, field_.name == "features"))
    while stack:
        data_type, is_features = stack.pop()
        if pa.types.is_struct(data_type):
            for k in range(data_type.num_fields):
                child = data_type.field(k)
                if child.name == name and not is_features:
                    return True
                stack.append((child.type, False))
        elif pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type):
            stack.append((data_type.value_type, False))
    return False


def _segment_complete(segment: pa.Array) -> npt.NDArray[np.bool_]:
    """Rows whose segment is absent, or present with every key the batch knows.

    A null inside a present segment may be an explicit ``null`` (refused one by one).
    """
    ok = ~_valid(segment)
    whole = _valid(segment)
    for k in range(segment.type.num_fields):
        whole &= _valid(segment.field(k))
    return ok | whole


def _epoch_bounds(unit: str, latest: int) -> tuple[int, int]:
    """The epoch values in ``unit`` that land from 2000 to ``latest`` (microseconds), as int64.

    >>> _epoch_bounds("s", 1_764_237_600_000_000)
    (946684800, 1764237600)
    """
    if unit == "ns":
        low, high = EPOCH_MIN_MICROS * 1000, latest * 1000 + 999
    else:
        per = MICROS_PER_UNIT[unit]
        low, high = -(-EPOCH_MIN_MICROS // per), latest // per
    return max(low, _INT64_MIN), min(high, _INT64_MAX)


def _timestamps(
    column: pa.Array, latest: int, unit: str = "ms",
) -> tuple[npt.NDArray[np.int64] | None, npt.NDArray[np.bool_]]:
    """Event times in microseconds and which rows have one the column-wise rules accept.

    Integers are epoch values in ``unit``. Only values that land from 2000 to ``latest``
    are scaled (so nothing wraps around int64); the others are left to the one-by-one
    decoder, which says why (:func:`drift.events.parse_timestamp`).
    """
    n = len(column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        ok = _bools(pc.match_substring_regex(column, TS_PATTERN))
        text = pc.if_else(pa.array(ok), column, "1970-01-01T00:00:00Z")
        try:
            micros = text.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            micros = np.zeros(n, dtype=np.int64)
            for i, value in enumerate(text.to_pylist()):
                try:
                    micros[i] = to_micros(datetime.fromisoformat(value).astimezone(timezone.utc))
                except (ValueError, OverflowError):
                    ok[i] = False
    elif pa.types.is_integer(column.type):
        try:
            epoch = column.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:  # unsigned values past int64
            return None, np.zeros(n, dtype=bool)
        low, high = _epoch_bounds(unit, latest)
        ok = (epoch >= low) & (epoch <= high)
        kept = np.where(ok, epoch, 0)
        micros = kept // 1000 if unit == "ns" else kept * MICROS_PER_UNIT[unit]
    elif pa.types.is_timestamp(column.type):
        zone = column.type.tz or "UTC"
        typed = column.cast(pa.timestamp("us", tz=zone)) if column.type.tz else pc.assume_timezone(
            column.cast(pa.timestamp("us")), "UTC")
        micros = typed.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        ok = _valid(column)
    else:
        return None, np.zeros(n, dtype=bool)
    micros = np.asarray(micros, dtype=np.int64)
    ok &= _valid(column) & (micros >= _TS_LOW) & (micros <= _TS_HIGH) & (micros <= latest)
    return micros, ok


def _numeric(column: pa.Array | None, n: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    if column is None or not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        return np.zeros(n), np.zeros(n, dtype=bool)
    if not pa.types.is_float64(column.type):
        column = column.cast(pa.float64())
    if column.null_count:
        column = column.fill_null(math.nan)
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        fine = np.isfinite(values) & (np.abs(values) < EXACT_INTEGERS)
    return values, fine


def _categories(column: pa.Array | None, n: int) -> tuple[pa.Array, npt.NDArray[np.bool_]]:
    """A categorical column's texts (:mod:`drift.categories`) and the rows they are right for."""
    if column is None or not any(check(column.type) for check in _CATEGORY_TYPES):
        return pa.nulls(n, pa.string()), np.zeros(n, dtype=bool)
    if pa.types.is_floating(column.type):
        # NaN is a dead letter, and JSON integers past 2**53 mixed with other numbers reach
        # Arrow's reader as rounded doubles: those rows take the per-event path. (Narrower
        # floats only come typed, in Arrow messages: their text is exact at their width.)
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        with np.errstate(invalid="ignore"):
            fine = np.isfinite(values)
            if pa.types.is_float64(column.type):
                fine &= (values != np.trunc(values)) | (np.abs(values) < EXACT_INTEGERS)
        return category_texts(column), fine & _valid(column)
    strings = column if pa.types.is_string(column.type) else column.cast(pa.string())
    return strings, _valid(column)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(type(value).__name__)


def encode_arrow(records: Sequence[dict[str, Any]], schema: pa.Schema | None = None) -> bytes:
    """Events as one Arrow IPC stream message (what a batching producer sends)."""
    table = pa.Table.from_pylist(list(records), schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
