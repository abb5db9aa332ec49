"""Event files (JSONL, Parquet) as a Bytewax source of :class:`RawMessage`.

Each line (JSONL) or row (Parquet) becomes one message with ``topic`` set to
``file:<name>`` and ``offset`` to its zero-based line or row number, so dead
letters point at the exact place in the file. The partition state is the next
offset, so a resumed run continues where it stopped.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from drift.errors import DriftError
from drift.events import RawMessage

BATCH_SIZE = 5000


def _iter_jsonl(path: Path, start: int) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle):
            if number < start:
                continue
            yield number, line.rstrip(b"\r\n")


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


class EventFileError(DriftError):
    """An events file that cannot be read (not Parquet, or a damaged part of it)."""


_PARQUET_ERRORS = (OSError, ValueError, TypeError, IndexError, MemoryError)
"""What pyarrow raises on a damaged file (``ArrowInvalid`` is a ``ValueError``, ``ArrowIOError`` an ``OSError``)."""


def open_parquet(path: Path) -> Any:
    """``pyarrow.parquet.ParquetFile`` of ``path``; a one-line :class:`EventFileError` when unreadable."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except _PARQUET_ERRORS as exc:
        raise EventFileError(f"events file {path} is not a readable Parquet file: {_one_line(exc)}") from None


def check_parquet(path: Path) -> None:
    """Read every page of ``path`` once: a damaged file is an :class:`EventFileError` here,
    not an error inside the running flow (which the engine reports with its own backtrace).
    Decompressing is a small part of a replay's time; rows are not turned into events."""
    number = 0
    try:
        for batch in open_parquet(path).iter_batches(batch_size=65_536):
            number += batch.num_rows
    except _PARQUET_ERRORS as exc:
        raise EventFileError(f"events file {path} is damaged after row {number}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _non_finite_rows(batch: Any) -> Any:
    """Rows of a record batch with a NaN or infinity in any float column, nested ones too."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    found = np.zeros(batch.num_rows, dtype=bool)
    stack = [(column, np.arange(batch.num_rows)) for column in batch.columns]
    while stack:
        array, rows = stack.pop()
        kind = array.type
        if pa.types.is_floating(kind):
            bad = pc.invert(pc.is_finite(array)).fill_null(False).to_numpy(zero_copy_only=False)
            found[rows[np.asarray(bad, dtype=bool)]] = True
        elif pa.types.is_struct(kind):
            stack.extend((array.field(k), rows) for k in range(kind.num_fields))
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
            stack.append((pc.list_flatten(array), rows[parents]))
    return found


def _iter_parquet(path: Path, start: int) -> Iterator[tuple[int, bytes]]:
    """Rows as JSON events. A NaN or infinity is written as the token ``NaN``/``Infinity``
    (not JSON), so the decoder counts the row as ``non_finite`` instead of reading a null
    (:func:`drift.events.carries_non_finite`)."""
    parquet = open_parquet(path)
    number = 0
    batches = parquet.iter_batches(batch_size=BATCH_SIZE)
    while True:
        try:
            batch = next(batches)
            rows = batch.to_pylist() if number + batch.num_rows > start else []
            non_finite = _non_finite_rows(batch) if rows else None
        except StopIteration:
            return
        except _PARQUET_ERRORS as exc:
            raise EventFileError(
                f"events file {path} is damaged after row {number}: {_one_line(exc)}") from None
        if not rows:
            number += batch.num_rows
            continue
        for k, row in enumerate(rows):
            if number >= start:
                cleaned = {k: v for k, v in row.items() if v is not None}
                if isinstance(cleaned.get("ts"), datetime) and cleaned["ts"].tzinfo is None:
                    # Parquet timestamps without a zone are UTC by convention.
                    cleaned["ts"] = cleaned["ts"].isoformat() + "Z"
                if non_finite is not None and non_finite[k]:
                    yield number, json.dumps(cleaned, default=_default, separators=(",", ":")).encode()
                else:
                    yield number, orjson.dumps(cleaned, default=_default)
            number += 1


def iter_file(path: Path, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of each event in a ``.jsonl`` or ``.parquet`` file."""
    if path.suffix == ".parquet":
        return _iter_parquet(path, start)
    return _iter_jsonl(path, start)


class _FilePartition(StatefulSourcePartition[list[RawMessage], int]):
    def __init__(self, path: Path, resume: int | None, on_batch: Callable[[int], None] | None = None) -> None:
        self._path = path
        self._on_batch = on_batch
        self._next = resume or 0
        self._lines = iter_file(path, self._next)
        self._topic = f"file:{path.name}"

    def next_batch(self) -> list[list[RawMessage]]:
        batch = []
        for offset, data in self._lines:
            batch.append(RawMessage(value=data, topic=self._topic, partition=0, offset=offset))
            self._next = offset + 1
            if len(batch) >= BATCH_SIZE:
                break
        if not batch:
            raise StopIteration
        if self._on_batch is not None:
            self._on_batch(self._next)
        return [batch]  # one item per batch: the flow decodes a batch at once

    def snapshot(self) -> int:
        return self._next


class EventFileSource(FixedPartitionedSource[list[RawMessage], int]):
    """Inference events from one JSONL or Parquet file (one partition), in batches of messages.

    ``on_batch``, when given, is called with the number of lines (rows) read so
    far after each batch: a progress hook for ``drift backtest``.
    """

    def __init__(self, path: Path, on_batch: Callable[[int], None] | None = None) -> None:
        if path.suffix not in (".jsonl", ".json", ".ndjson", ".parquet"):
            raise ValueError(f"events file must be .jsonl or .parquet; got {path.name!r}")
        if not path.is_file():
            raise FileNotFoundError(f"events file not found: {path}")
        if path.suffix == ".parquet":
            check_parquet(path)  # a damaged file fails here, in one line, before the flow starts
        self._path = path
        self._on_batch = on_batch

    def list_parts(self) -> list[str]:
        return [self._path.name]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _FilePartition:
        return _FilePartition(self._path, resume_state, self._on_batch)


def write_jsonl(path: Path, lines: list[bytes]) -> None:
    """Write raw event lines, one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for line in lines:
            handle.write(line.replace(b"\n", b" ") + b"\n")


def write_parquet(path: Path, columns: dict[str, Any]) -> None:
    """Write named columns (arrays or lists) as one Parquet table.

    A 2-D numpy array ``(n, dim)`` becomes a ``fixed_size_list<dim>`` column of its dtype
    (the layout reference embeddings are read from).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def column(values: Any) -> Any:
        if not hasattr(values, "dtype"):
            return list(values)
        if values.ndim == 2:
            flat = pa.array(values.reshape(-1))
            return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
        return values

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({name: column(values) for name, values in columns.items()}), path)
