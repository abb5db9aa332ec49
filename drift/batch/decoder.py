"""The batch decoder: a source batch parsed by Arrow where it can be, the clean rows of each
model turned into blocks per cohort, every other message decoded one by one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import repeat
from operator import attrgetter, is_not
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from drift.batch import CohortLabels, DecodedBatch, ModelRows, Piece, _ArrowRows, _ArrowSource, _json_record
from drift.batch.arrow import (
    _bools,
    _categories,
    _column,
    _depth,
    _json_default,
    _named_elsewhere,
    _numeric,
    _segment_complete,
    _timestamps,
    _utf8_names,
    _valid,
)
from drift.batch.columns import ModelColumns
from drift.batch.event_rows import events_block
from drift.batch.typed_json import ENVELOPE, TypedColumns, TypedJson
from drift.columnar import MISSING, NULL, OK, Block, concat_blocks
from drift.events import (
    ARROW_STREAM_MAGIC,
    MAX_MESSAGE_BYTES,
    MAX_NESTING,
    DeadLetter,
    Decoder,
    DlqReason,
    InferenceEvent,
    RawMessage,
)
from drift.findings import Cohort
from drift.windowing import to_micros


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


@dataclass(slots=True)
class _Rows:
    """Clean rows of one model gathered from the batch's tables."""

    index: list[npt.NDArray[np.intp]] = field(default_factory=list)
    """Arrival rank of each row: ``message position × ROW_SPAN + row within the message``."""
    keys: list[pa.Array] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    first_labels: list[CohortLabels] = field(default_factory=list)


class BatchDecoder:
    """Decodes a list of :class:`RawMessage` into a :class:`DecodedBatch`; never raises on a message."""

    def __init__(
        self, decoder: Decoder, models: Iterable[ModelColumns], min_columnar: int = MIN_COLUMNAR,
        by_model: bool = False,
    ) -> None:
        self.decoder = decoder
        self.min_columnar = min_columnar
        self.by_model = by_model
        """Rows as one :class:`ModelRows` per model (the cohort arrays' input) instead of pieces."""
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
        self._typed = TypedJson(columnar)

    # -- entry point -------------------------------------------------------------------

    def __call__(self, raws: Sequence[RawMessage]) -> DecodedBatch:
        out = DecodedBatch()
        slow: list[int] = []
        rows = {m.name: _Rows() for m in self.columnar}
        groups: _SlowGroups = {}
        arrow: list[int] = []
        if self.columnar and len(raws) >= self.min_columnar:
            values = list(map(_VALUE, raws))
            errors = list(map(_ERROR, raws))  # C loops: a batch is thousands of messages
            has_error = any(map(is_not, errors, repeat(None)))
            now = _now_micros(self.decoder)
            typed = self._typed.read(
                [None if error is not None else v for v, error in zip(values, errors)] if has_error else values)
            if typed.parsed.size:
                rest = self._typed_rows(typed, now, raws, rows)
                slow.extend(typed.parsed[rest].tolist())
            if typed.parsed.size == len(raws):
                others: list[int] = []
            elif typed.parsed.size:
                taken = np.zeros(len(raws), dtype=bool)
                taken[typed.parsed] = True
                others = np.flatnonzero(~taken).tolist()
            else:
                others = list(range(len(raws)))
            if others:
                if len(others) == len(raws):
                    flagged = _screen(raws, values)
                else:
                    flagged = [others[j] for j in _screen([raws[i] for i in others], [values[i] for i in others])]
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
                candidates = [i for i in others if i not in skip] if skip else others
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

    # -- typed JSON (msgspec) ------------------------------------------------------------

    def _typed_rows(
        self, typed: TypedColumns, now: int, raws: Sequence[RawMessage], rows: dict[str, _Rows],
    ) -> npt.NDArray[np.bool_]:
        """Gather the clean rows of the messages msgspec read into ``rows``; return the mask of the others."""
        index = typed.parsed
        n = int(index.size)
        rest = np.ones(n, dtype=bool)
        model = typed.envelope["model"]
        latest = now + self.decoder.max_future // timedelta(microseconds=1)
        ts_columns = typed.ts
        readings: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]] = {}

        def timestamps(unit: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
            if unit not in readings:
                micros = np.zeros(n, dtype=np.int64)
                ok = np.zeros(n, dtype=bool)
                for column in ts_columns:
                    read, fine = _timestamps(column, latest, unit)
                    if read is not None:
                        micros = np.where(fine, read, micros)
                        ok |= fine
                readings[unit] = micros, ok
            return readings[unit]

        feature = typed.features.column
        prediction = typed.prediction.column
        table: pa.Table | None = None
        segment: pa.Array | None = None
        for m in self.columnar:
            good = _bools(pc.equal(model, m.name)) & typed.features.present
            if not good.any():
                continue
            ts, ts_ok = timestamps(self.decoder.ts_unit(m.name))
            good &= ts_ok
            states: dict[str, npt.NDArray[np.int8]] = {}

            def accept(path: str, fine: npt.NDArray[np.bool_], null: npt.NDArray[np.bool_],
                       absent: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
                if null.any() or absent.any():
                    state = np.zeros(n, dtype=np.int8)
                    state[null] = NULL
                    state[absent] = MISSING
                    states[path] = state
                return fine | null | absent

            numeric_columns: dict[str, Any] = {}
            categorical_columns: dict[str, Any] = {}
            floats = typed.features.floats
            at = [floats.get(name) for name in m.numeric]
            one_by_one: list[tuple[str, bool, dict[str, Any]]] = [(name, False, categorical_columns) for name in m.categorical]
            if at and None not in at:  # the numeric features at once, from the matrix of float fields
                fields = typed.features
                where = np.asarray(at, dtype=np.intp)
                whole = where.size == len(floats) and bool((where == np.arange(where.size)).all())
                good &= (fields.clean if whole else fields.clean[where]).all(axis=0)
                for j in np.flatnonzero(fields.odd[where]).tolist():
                    accept(m.numeric[j], fields.fine[where[j]], fields.null[where[j]], fields.absent[where[j]])
                numeric_columns.update((name, fields.values[k]) for name, k in zip(m.numeric, where.tolist()))
            else:
                one_by_one[:0] = [(name, True, numeric_columns) for name in m.numeric]
            for name, is_numeric, target in one_by_one:
                values, fine, null, absent = feature(name, is_numeric)
                good &= accept(name, fine, null, absent)
                target[name] = values
            for name in self.known_features - self._own[m.name]:
                if not good.any():
                    break
                good &= feature(name, name in self._typed.floats)[3]  # another model's feature: only its absence is clean
            prediction_columns: dict[str, Any] = {}
            for name, is_numeric in m.predictions:
                read, fine, null, absent = prediction(name, is_numeric)
                path = f"prediction.{name}"
                good &= accept(path, fine, null, absent | ~typed.prediction.present)
                prediction_columns[path] = read
            if not good.any():
                continue
            rest &= ~good
            if table is None:
                wanted = {"event_id", *(label for c in self.columnar for label in c.cohort if label in ENVELOPE)}
                table = pa.table({name: typed.envelope[name] for name in sorted(wanted)})
                if typed.segment:
                    segment = pa.StructArray.from_arrays(list(typed.segment.values()), names=list(typed.segment))
            self._gather(m, table, good, index, raws, None, ts, numeric_columns, categorical_columns,
                         prediction_columns, segment, rows[m.name], states)
        return rest

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

        def message_values() -> pa.Array:
            """The JSON rows' message bytes, one Arrow array for every check of the table."""
            nonlocal raw_values
            if raw_values is None:
                raw_values = pa.array([r.value for r in _at(raws, index)], type=pa.binary())
            return raw_values

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
                        missing, null = self._null_or_missing(name, unclear, table, message_values())
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
                for name in foreign:
                    key = re.escape(orjson.dumps(name).decode()) + r"\s*:"
                    good &= ~_bools(pc.match_substring_regex(message_values(), key))
            if not good.any():
                continue
            rest &= ~good
            self._gather(m, table, good, index, raws, located, ts, numeric_columns, categorical_columns,
                         prediction_columns, segment, rows[m.name], states)
        return rest

    def _null_or_missing(
        self, name: str, rows: npt.NDArray[np.bool_], table: pa.Table, messages: pa.Array,
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Of the JSON ``rows`` where feature ``name`` read as null: (absent, ``null``);
        ``messages`` holds the bytes of every row's message.

        Absent: the key's text appears nowhere in the message, and the message has no
        backslash (a key may be written with escapes, ``"\u0078"`` for ``"x"``). ``null``:
        it appears once, as a key right after ``{`` or ``,`` with the value ``null``, and no
        object other than ``features`` in the batch has such a key (valid JSON puts an
        unescaped ``"`` there only at a string's start, so the match is that key). Anything
        else stays unclear and the message is decoded on its own.
        """
        picked = np.flatnonzero(rows)
        values = messages.take(pa.array(picked, type=pa.int64()))
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
        every = picked.size == good.size  # then nothing is filtered out

        def kept(array: pa.Array) -> pa.Array:
            return array if every else array.filter(mask)

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
            label_columns.append(pc.fill_null(kept(values), "-"))
        if label_columns:  # "model|label=value|...", in one pass
            keys = pc.binary_join_element_wise(
                m.name, *[part for label, column in zip(m.cohort, label_columns) for part in (f"|{label}=", column)],
                "")
        else:
            keys = pa.array([m.name] * int(good.sum()), type=pa.string())
        event_ids = _column(table, "event_id") if "event_id" in table.schema.names else pa.nulls(table.num_rows, pa.string())
        if not pa.types.is_string(event_ids.type):
            event_ids = event_ids.cast(pa.string())
        names = [*m.numeric, *(p for p, v in predictions.items() if isinstance(v, np.ndarray))]
        columns = [*(numeric[k] for k in m.numeric), *(v for v in predictions.values() if isinstance(v, np.ndarray))]
        matrix = (np.stack(columns) if every else np.stack(columns)[:, good]) if columns else np.zeros((0, picked.size))
        block = Block(
            ts=ts[good],
            event_ids=kept(event_ids),
            numeric_names=tuple(names),
            numeric=matrix,
            categorical={
                **{k: kept(v) for k, v in categorical.items()},
                **{k: kept(v) for k, v in predictions.items() if not isinstance(v, np.ndarray)},
            },
            raws=(located.messages(picked) if located is not None
                  else list(raws) if every and index.size == len(raws)  # every message, in order
                  else _at(raws, index[picked])),
            states={k: v[good] for k, v in states.items() if v[good].any()},
        )
        out.index.append(index[picked] * ROW_SPAN + (located.within[picked] if located is not None else 0))
        out.keys.append(keys)
        out.blocks.append(block)
        out.first_labels.append(CohortLabels(tuple(m.cohort), [(keys, label_columns)]))

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
        if self.by_model:
            self._assemble_models(rows, out, groups)
            return
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


    def _assemble_models(self, rows: dict[str, _Rows], out: DecodedBatch, groups: _SlowGroups) -> None:
        """One :class:`ModelRows` per model: its column-wise rows and its events decoded one by
        one (as rows), all cohorts together, in arrival order."""
        slow: dict[str, list[tuple[int, int, InferenceEvent, Cohort]]] = {}
        for cohort, entries in groups.values():
            slow.setdefault(cohort.model, []).extend((p, k, e, cohort) for p, k, e in entries)
        for name in [*rows, *(n for n in slow if n not in rows)]:
            gathered = rows.get(name, _Rows())
            parts, index, keys = list(gathered.blocks), list(gathered.index), list(gathered.keys)
            labels = CohortLabels.merge(tuple(self.models[name].cohort), gathered.first_labels)
            embeddings: list[Any] | None = None
            n_fast = sum(len(p) for p in parts)
            events = sorted(slow.get(name, []), key=lambda r: (r[0], r[1]))
            if events:
                converted, _ = events_block([r[2] for r in events], self.models[name], wrong_categorical=True)
                assert converted is not None
                parts.append(converted)
                index.append(np.asarray([r[0] for r in events], dtype=np.int64))
                keys.append(pa.array([r[3].key for r in events], type=pa.string()))
                for r in events:
                    labels.add(r[3].key, r[3].labels)
                embeddings = [None] * n_fast + [r[2].embedding for r in events]
                out.n_columnar += len(converted)
            if not parts:
                continue
            block = concat_blocks(parts)
            positions = np.concatenate(index)
            all_keys = pa.concat_arrays(keys) if len(keys) > 1 else keys[0]
            order = np.argsort(positions, kind="stable")
            if not np.array_equal(order, np.arange(order.size)):
                block, all_keys = block.take(order), all_keys.take(pa.array(order))
                if embeddings is not None:
                    embeddings = [embeddings[i] for i in order.tolist()]
            out.models.append(ModelRows(name, block, all_keys, labels, embeddings))
            out.n_columnar += n_fast
            out.n_events += len(block)


_SlowGroups = dict[str, tuple[Cohort, list[tuple[int, int, InferenceEvent]]]]


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


def _at(raws: Sequence[RawMessage], index: npt.NDArray[np.intp]) -> list[RawMessage]:
    return [raws[i] for i in index.tolist()]


def _now_micros(decoder: Decoder) -> int:
    return to_micros(decoder.now())
