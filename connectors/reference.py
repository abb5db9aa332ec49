"""Reference (training) data from Parquet, read with pyarrow."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from drift.errors import ReferenceDataError


def read_columns(
    path: Path, names: list[str], categorical: Collection[str] = (),
) -> tuple[dict[str, Any], int]:
    """The named columns of a Parquet file, and the row count.

    Columns may be top level or fields of a ``features`` struct column (the
    layout of logged inference events). Numeric columns of the names not in
    ``categorical`` come as float64 numpy arrays (nulls as NaN); the columns named in
    ``categorical`` come as Arrow arrays of their own type, so that an integer or
    boolean category keeps its text (:mod:`drift.categories`): read as floats, the code
    ``1`` would be the category ``1.0``, which no event sends.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise ReferenceDataError(f"reference file not found: {path}") from None
    except (OSError, pa.ArrowException) as exc:
        raise ReferenceDataError(f"cannot read reference Parquet {path}: {exc}") from None
    columns: dict[str, Any] = {}
    nested = None
    if "features" in table.column_names and pa.types.is_struct(table.schema.field("features").type):
        nested = table.column("features").combine_chunks()
    for name in names:
        if name in table.column_names:
            column = table.column(name)
        elif nested is not None and nested.type.get_field_index(name) >= 0:
            column = nested.field(name)
        else:
            continue
        if name in categorical:
            columns[name] = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            # Nulls become NaN, which profiling skips.
            columns[name] = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            columns[name] = column.to_pylist()
    return columns, table.num_rows


def read_embeddings(path: Path, name: str, dim: int) -> Any:
    """The embedding column ``name`` of a Parquet file as an ``(n, dim)`` float32 numpy array.

    Only that column is read. It must be a list of numbers per row: a fixed-size
    list (``fixed_size_list<float, dim>``, the compact layout) or a variable list whose
    rows all have ``dim`` values. Null rows are refused, as are other lengths and
    non-finite values, naming the first bad row.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        raise ReferenceDataError(f"reference file not found: {path}") from None
    except (OSError, pa.ArrowException) as exc:
        raise ReferenceDataError(f"cannot read reference Parquet {path}: {exc}") from None
    if name not in schema.names:
        raise ReferenceDataError(
            f"{path}: reference has no embedding column {name!r}; columns: {sorted(schema.names)}")
    kind = schema.field(name).type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)) or not (
        pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)
    ):
        raise ReferenceDataError(
            f"{path}: embedding column {name!r} must be a (fixed-size) list of numbers; got {kind}")
    try:
        column = pq.read_table(path, columns=[name]).column(name).combine_chunks()
    except (OSError, pa.ArrowException) as exc:
        raise ReferenceDataError(f"cannot read column {name!r} of {path}: {exc}") from None
    if column.null_count:
        first = int(pc.index(column.is_null(), True).as_py())
        raise ReferenceDataError(f"{path}: embedding column {name!r} has {column.null_count} null rows; first at row {first}")
    if pa.types.is_fixed_size_list(kind):
        lengths = np.full(len(column), kind.list_size)
    else:
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(lengths != dim)
    if wrong.size:
        raise ReferenceDataError(
            f"{path}: embedding column {name!r} must have {dim} values per row (dim); "
            f"row {int(wrong[0])} has {int(lengths[wrong[0]])}")
    values = column.flatten()
    if values.null_count:
        raise ReferenceDataError(f"{path}: embedding column {name!r} holds null values inside rows")
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused just below
        rows = values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(column), dim)
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if bad.size:
        raise ReferenceDataError(f"{path}: embedding column {name!r} row {int(bad[0])} is not finite (as float32)")
    return rows
