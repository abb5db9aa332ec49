"""Decoding a batch of messages column by column: the flow's hot path.

A source batch (Kafka poll, or a thousand file lines) is decoded at once:

1. each JSON message is first decoded by msgspec against one strict event type built from
   the column-wise models (:mod:`drift.batch.typed_json`: the known top-level fields,
   exactly their features and profiled prediction fields, typed), a chunk of messages at a
   time, into columns;
2. the messages it refuses that can be parsed as one newline-delimited JSON document (not
   empty, no line break inside, at most :data:`drift.events.MAX_MESSAGE_BYTES`) are
   parsed by Arrow's JSON reader into columns (other keys, other types); a message holding
   an Arrow IPC stream (producers that batch on their side) is read as a record batch;
3. the rows of a configured model that are *clean* (RFC 3339 ``ts``, or an epoch number in
   the model's ``ts_unit`` from 2000 on, not too far ahead; every profiled feature and
   prediction field present, non-null and of the right type; no unknown feature) become
   a :class:`drift.columnar.Block` per cohort; on the typed road an absent or ``null``
   field is known exactly and counted as such, column-wise too;
4. every other message is decoded one by one by :class:`drift.events.Decoder`, so it
   gets exactly the event or dead letter (with its reason) it would get alone.

Rows of models that need each event (embeddings, value skew, freshness) always take
step 4. When Arrow cannot parse a group of messages (one bad message spoils the whole
group) the group is split in halves until the bad messages are isolated, so a few bad
messages do not send a whole batch down the slow road.

The package's modules: :mod:`drift.batch.decoder` (:class:`BatchDecoder`, the four steps
above), :mod:`drift.batch.typed_json` (the typed road), :mod:`drift.batch.columns` (what it
needs of one model), :mod:`drift.batch.arrow`
(Arrow columns checked and read as arrays, and :func:`encode_arrow`) and
:mod:`drift.batch.event_rows` (events decoded one by one, as block rows). The values the
flow keeps in its state are defined here, so a recovery snapshot names them
``drift.batch.*``: :class:`Piece` and the messages of Arrow rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from drift.batch.arrow import EXACT_INTEGERS, TS_PATTERN, _json_default, encode_arrow
from drift.batch.columns import ModelColumns, model_columns
from drift.batch.event_rows import events_block
from drift.columnar import Block
from drift.events import DeadLetter, InferenceEvent, RawMessage
from drift.findings import Cohort


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


Labels = tuple[tuple[str, str], ...]


class CohortLabels(Mapping[str, Labels]):
    """Each cohort key's labels, read from a batch's label columns only when first asked for.

    The windows step asks only for the keys of cohorts it has not seen, so a batch of known
    cohorts builds nothing. ``parts`` are ``(keys, label columns)`` with one entry per row;
    a key's labels come from its first row.
    """

    def __init__(self, names: tuple[str, ...], parts: list[tuple[pa.Array, list[pa.Array]]] | None = None) -> None:
        self.names = names
        self.parts = list(parts or [])
        self.known: dict[str, Labels] = {}

    @classmethod
    def merge(cls, names: tuple[str, ...], tables: Sequence[CohortLabels]) -> CohortLabels:
        out = cls(names)
        for table in tables:
            for key, labels in table.known.items():
                out.known.setdefault(key, labels)
            out.parts.extend(table.parts)
        return out

    def add(self, key: str, labels: Labels) -> None:
        self.known.setdefault(key, labels)

    def _read(self) -> None:
        parts, self.parts = self.parts, []
        for keys, columns in parts:
            first = pa.array(np.unique(keys.dictionary_encode().indices.to_numpy(zero_copy_only=False),
                                       return_index=True)[1])
            values = [column.take(first).to_pylist() for column in columns]
            rows = zip(*values) if values else iter([()] * len(first))
            for key, row in zip(keys.take(first).to_pylist(), rows):
                self.known.setdefault(key, tuple(zip(self.names, row)))

    def __getitem__(self, key: str) -> Labels:
        if key not in self.known and self.parts:
            self._read()
        return self.known[key]

    def __iter__(self) -> Iterator[str]:
        self._read()
        return iter(self.known)

    def __len__(self) -> int:
        self._read()
        return len(self.known)


@dataclass(slots=True)
class ModelRows:
    """The rows of one model in one batch, all cohorts together, in arrival order.

    Events decoded one by one are rows too (null, absent and wrong-typed cells as cell
    states: :func:`drift.batch.event_rows.events_block`). ``keys[i]`` is row ``i``'s
    cohort key and ``labels`` each key's labels; ``embeddings[i]`` the embedding of row
    ``i``'s event (None for a row read column-wise, or an event without one), for models
    that sample embeddings.

    The rows of a *rollup* (``rollups:`` of a model) are the model's rows again, keyed by
    their rollup cohort; ``members[i]`` is then row ``i``'s own cohort key (the rollup's
    attribution), and None for the rows of the cohorts themselves.
    """

    model: str
    block: Block
    keys: pa.Array
    labels: Mapping[str, Labels]
    embeddings: list[Any] | None = None
    members: pa.Array | None = None

    def __len__(self) -> int:
        return len(self.block)


@dataclass(slots=True)
class DecodedBatch:
    """One source batch, decoded.

    A decoder built with ``by_model=True`` fills ``models`` (one :class:`ModelRows` per
    model) instead of ``pieces`` (one :class:`Piece` per cohort)."""

    pieces: list[Piece] = field(default_factory=list)
    models: list[ModelRows] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    events: list[InferenceEvent] = field(default_factory=list)
    """Decoded events of models with per-event consumers (value skew, freshness)."""
    n_events: int = 0
    n_columnar: int = 0
    """Events counted column-wise (parsed by Arrow, or decoded one by one and turned into rows)."""


# -- the messages of Arrow rows, kept in snapshots as drift.batch.* ---------------------


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


# The decoder builds the values above, so it is imported once they exist.
from drift.batch.decoder import (  # noqa: E402
    BLOCK_SPLIT,
    DEEP_BYTES,
    MAX_ARROW_BYTES,
    MAX_BRACKETS,
    MIN_COLUMNAR,
    MIN_SPLIT,
    ROW_SPAN,
    BatchDecoder,
)

__all__ = [
    "BLOCK_SPLIT",
    "DEEP_BYTES",
    "EXACT_INTEGERS",
    "MAX_ARROW_BYTES",
    "MAX_BRACKETS",
    "MIN_COLUMNAR",
    "MIN_SPLIT",
    "ROW_SPAN",
    "TS_PATTERN",
    "ArrowRowMessage",
    "ArrowRowMessages",
    "BatchDecoder",
    "DecodedBatch",
    "ModelColumns",
    "CohortLabels",
    "ModelRows",
    "Piece",
    "encode_arrow",
    "events_block",
    "model_columns",
]
