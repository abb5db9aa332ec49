"""Reference (training) data from Parquet, read with pyarrow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drift.errors import ReferenceDataError


def read_columns(path: Path, names: list[str]) -> tuple[dict[str, Any], int]:
    """The named columns of a Parquet file as numpy arrays or lists, and the row count.

    Columns may be top level or fields of a ``features`` struct column (the
    layout of logged inference events).
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
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            # Nulls become NaN, which profiling skips.
            columns[name] = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            columns[name] = column.to_pylist()
    return columns, table.num_rows
