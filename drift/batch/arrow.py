"""Arrow columns checked and read as numpy arrays (timestamps, numbers, categories, nesting and
field names), and :func:`encode_arrow`, the Arrow IPC form producers may send.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from drift.categories import category_texts
from drift.events import EPOCH_MIN_MICROS, MAX_NESTING, MICROS_PER_UNIT
from drift.windowing import to_micros


TS_PATTERN = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
"""The RFC 3339 form read column-wise; any other ``ts`` text is decoded one by one."""

EXACT_INTEGERS = 2.0**53
"""Numbers at or beyond this magnitude are decoded one by one (integer/float rules)."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TS_LOW = to_micros(datetime(2, 1, 1, tzinfo=timezone.utc))
_TS_HIGH = to_micros(datetime(9998, 12, 31, tzinfo=timezone.utc))
_CATEGORY_TYPES = (
    pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_boolean, pa.types.is_floating,
)


def _column(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _bools(array: Any) -> npt.NDArray[np.bool_]:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count:
        array = array.fill_null(False)
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


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
        text = column if ok.all() else pc.if_else(pa.array(ok), column, "1970-01-01T00:00:00Z")
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
