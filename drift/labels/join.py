"""Predictions waiting for their labels: the bounded join state of delayed ground truth.

A model's prediction is known when it is served; its label (the ground truth) arrives
minutes to weeks later, on another stream, with the same join key (the ``event_id`` by
default). :class:`PendingPredictions` remembers, for each prediction still waiting, the
cohort row it was counted in, the window id of its ``ts``, the prediction itself and its
``ts``; :meth:`PendingPredictions.join` matches a batch of labels against them and hands
back the joined rows as arrays (:class:`Joined`), which
:class:`drift.labels.metrics.WindowOutcomes` accumulates per cohort window.

Layout
    Predictions live in numpy arrays indexed by *slot* (key, cohort row, window id,
    prediction, ``ts``, arrival number, labelled flag), as the cohort windows of
    :mod:`drift.cohort_arrays` do: a new prediction takes a free slot, an evicted one gives
    its slot back, and the arrays grow by doubling (never past ``cap`` plus one batch).

Keys
    Ids are not kept: each is hashed to 64 bits (:func:`hash_ids`), vectorised over a
    batch. Integer ids go through a bijective 64-bit mix (splitmix64's finaliser), so
    distinct integers never collide; string ids are hashed with FNV-1a over their UTF-8
    bytes, then mixed. Two of ``n`` live string ids share a hash with probability about
    ``n² / 2⁶⁵`` (2.7·10⁻⁶ for ten million ids); a label whose id collides with another
    prediction's would join that prediction. Integer and string ids hash differently:
    predictions and labels of one model must use the same type. A 64-bit key and its
    index cost 16 to 32 bytes per prediction where a dict of Python strings costs well
    over a hundred, which is what keeps ten million waiting predictions in memory.

Index
    :class:`SlotIndex` maps keys to slots with open addressing (linear probing) in one
    ``int32`` array of a power-of-two size, kept at most half full: a batch is looked up
    or inserted in a few vectorised probe rounds, not one Python call per id. Removal
    leaves a tombstone; when live entries and tombstones would fill half the table it is
    rebuilt with at least three cells per live entry (so a rebuild is followed by at least
    half as many inserts as there are live entries before the next).

Join rule
    A label at ``ts`` joins the pending prediction with its key when ``label ts −
    prediction ts ≤ horizon`` (a label stamped before its prediction joins too). The first
    label of a prediction wins; a later one (in the same batch or after) is counted as a
    duplicate and not returned. A label with no pending prediction (never seen, already
    evicted, past the horizon, or not arrived yet: labels are not buffered) is counted as
    unmatched. A joined prediction stays, marked labelled, until it expires, so that a
    second label is recognised as a duplicate rather than as unmatched.

Bounds
    ``horizon``: once the newest ``ts`` seen (of predictions and labels) is more than
    ``horizon`` past a prediction's ``ts``, the prediction is evicted (reason
    ``expired``). ``cap``: after a batch of predictions, while more than ``cap`` are held
    the oldest (by ``ts``, then arrival) are evicted (reason ``capped``). Evictions are
    counted only for predictions that never got a label; a labelled one leaving is not a
    loss. A prediction whose key is already pending is not added again (the first is
    kept) and is counted as a duplicate prediction; a null id is counted and skipped.

Snapshots (``__getstate__``) hold the live slots only, packed, with the counters; the
restored state behaves as the original (same joins, same eviction order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

Kind = Literal["binary", "multiclass", "regression"]
"""What a prediction is: a positive-class score in [0, 1] (``binary``), a class index
(``multiclass``) or a value (``regression``)."""
KINDS: tuple[Kind, ...] = ("binary", "multiclass", "regression")

EvictionReason = Literal["expired", "capped"]
EVICTION_REASONS: tuple[EvictionReason, ...] = ("expired", "capped")

DEFAULT_CAP = 10_000_000
"""Predictions held at most per state, by default."""
EMPTY = -1
"""A table cell never used (ends a probe sequence)."""
TOMBSTONE = -2
"""A table cell whose key was removed (a probe sequence goes on past it)."""
NO_TS = np.iinfo(np.int64).max
"""The ``ts`` of a free slot (never below an eviction cutoff)."""
MAX_SLOTS = np.iinfo(np.int32).max
"""Slots are stored in the index as 32-bit integers."""

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a bijection of 64-bit integers that spreads every input bit."""
    h = h ^ (h >> np.uint64(30))
    h = h * _MIX_1
    h = h ^ (h >> np.uint64(27))
    h = h * _MIX_2
    out: npt.NDArray[np.uint64] = h ^ (h >> np.uint64(31))
    return out


def _hash_strings(ids: pa.Array) -> npt.NDArray[np.uint64]:
    """FNV-1a of each string's UTF-8 bytes, mixed; one vectorised pass per byte position."""
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    _, offsets_buffer, data_buffer = ids.buffers()
    offset_type = np.int64 if pa.types.is_large_string(ids.type) or pa.types.is_large_binary(ids.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[ids.offset: ids.offset + n + 1].astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, dtype=np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    padded = np.concatenate([data, np.zeros(1, dtype=np.uint8)])  # index len(data) reads a harmless 0
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    longest = int(lengths.max())
    for j in range(longest):
        within = lengths > j
        byte = padded[np.where(within, starts + j, data.size)].astype(np.uint64)
        h = np.where(within, (h ^ byte) * _FNV_PRIME, h)
    return mix(h ^ lengths.astype(np.uint64) * _GOLDEN)


def hash_ids(ids: pa.Array | pa.ChunkedArray | npt.ArrayLike) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """``(keys, valid)``: the 64-bit key of each id, and which ids are not null.

    ``ids``: an Arrow string/binary or integer array (dictionary-encoded or not), or a
    numpy array of integers or strings. Keys of null ids are 0 and ``valid`` is False there.

    >>> keys, valid = hash_ids(pa.array(["a", None, "a"]))
    >>> bool(keys[0] == keys[2]), valid.tolist()
    (True, [True, False, True])
    """
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if isinstance(ids, pa.DictionaryArray):
        ids = ids.dictionary_decode()
    if not isinstance(ids, pa.Array):
        values = np.asarray(ids)
        if values.dtype.kind in "iu":
            ids = pa.array(values)
        elif values.dtype.kind in "UO":
            ids = pa.array(values.tolist(), type=pa.string())
        elif values.dtype.kind == "S":
            ids = pa.array(values.tolist(), type=pa.binary())
        else:
            raise TypeError(f"ids must be strings or integers; got an array of dtype {values.dtype}")
    valid = np.ones(len(ids), dtype=np.bool_)
    if ids.null_count:
        valid = ids.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_integer(ids.type):
        raw = ids.fill_null(0).to_numpy().astype(np.int64).view(np.uint64)
        keys = mix(raw ^ _GOLDEN)
    elif pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type) or pa.types.is_binary(ids.type) \
            or pa.types.is_large_binary(ids.type):
        keys = _hash_strings(ids)
    else:
        raise TypeError(f"ids must be strings or integers; got an Arrow array of type {ids.type}")
    keys[~valid] = 0
    return keys, valid


class SlotIndex:
    """Key → slot, by open addressing with linear probing over one ``int32`` array.

    The table does not hold the keys: a cell holds a slot (or :data:`EMPTY` /
    :data:`TOMBSTONE`), and the owner's ``keys[slot]`` is compared with the key sought.
    ``position[slot]`` is where the slot sits in the table (for removal). Keys are
    already mixed, so their low bits pick the first cell.
    """

    def __init__(self, size: int = 1024) -> None:
        self.table = np.full(size, EMPTY, dtype=np.int32)
        self.position = np.zeros(0, dtype=np.int64)
        self.n_live = 0
        self.n_tombstones = 0

    @property
    def mask(self) -> np.uint64:
        return np.uint64(self.table.size - 1)

    def lookup(self, keys: npt.NDArray[np.uint64], slot_keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """The slot of each key (-1: absent), ``slot_keys`` being the key of each slot."""
        n = keys.size
        out = np.full(n, -1, dtype=np.int64)
        todo = np.arange(n)
        pos = (keys & self.mask).astype(np.int64)
        mask = self.table.size - 1
        while todo.size:
            cell = self.table[pos].astype(np.int64)
            used = cell >= 0
            hit = used.copy()
            hit[used] = slot_keys[cell[used]] == keys[todo[used]]
            out[todo[hit]] = cell[hit]
            go_on = ~(hit | (cell == EMPTY))
            todo, pos = todo[go_on], (pos[go_on] + 1) & mask
        return out

    def insert(self, keys: npt.NDArray[np.uint64], slots: npt.NDArray[np.int64], slot_keys: npt.NDArray[np.uint64]) -> None:
        """Put ``slots`` under ``keys`` (distinct keys, none present), growing the table as needed."""
        if self.position.size < slot_keys.size:
            grown = np.zeros(slot_keys.size, dtype=np.int64)
            grown[: self.position.size] = self.position
            self.position = grown
        if 2 * (self.n_live + self.n_tombstones + keys.size) > self.table.size:
            self._rebuild(self.n_live + keys.size, slot_keys)
        self._place(keys, slots)
        self.n_live += keys.size

    def remove(self, slots: npt.NDArray[np.int64]) -> None:
        self.table[self.position[slots]] = TOMBSTONE
        self.n_live -= slots.size
        self.n_tombstones += slots.size

    def _place(self, keys: npt.NDArray[np.uint64], slots: npt.NDArray[np.int64]) -> None:
        mask = self.table.size - 1
        pos = (keys & self.mask).astype(np.int64)
        todo = np.arange(keys.size)
        while todo.size:
            free = np.flatnonzero(self.table[pos] < 0)
            # Several keys may reach the same free cell in one round: the first takes it,
            # the others probe on.
            _, first = np.unique(pos[free], return_index=True)
            winners = free[first]
            won = slots[todo[winners]]
            self.n_tombstones -= int(np.count_nonzero(self.table[pos[winners]] == TOMBSTONE))
            self.table[pos[winners]] = won
            self.position[won] = pos[winners]
            rest = np.ones(todo.size, dtype=np.bool_)
            rest[winners] = False
            todo, pos = todo[rest], (pos[rest] + 1) & mask

    def _rebuild(self, n_live: int, slot_keys: npt.NDArray[np.uint64]) -> None:
        """A fresh table of at least three cells per live entry, holding the current live slots."""
        live = self.table[self.table >= 0].astype(np.int64)
        size = 1024
        while size < 3 * n_live:
            size *= 2
        self.table = np.full(size, EMPTY, dtype=np.int32)
        self.n_tombstones = 0
        self._place(slot_keys[live], live)


@dataclass(frozen=True)
class Joined:
    """The labels of a batch that joined a prediction (``k`` rows, in label order).

    ``predictions`` and ``labels`` are float64 for every kind (a multiclass class index is
    a whole number); ``label_index`` is each row's position in the label batch.
    """

    cohort_rows: npt.NDArray[np.int64]
    window_ids: npt.NDArray[np.int64]
    predictions: npt.NDArray[np.float64]
    labels: npt.NDArray[np.float64]
    prediction_ts: npt.NDArray[np.int64]
    label_index: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.labels.size)


def _as_array(values: npt.ArrayLike | pa.Array, dtype: type[Any], n: int, name: str) -> npt.NDArray[Any]:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if values.null_count:
            raise ValueError(f"{name} must have no nulls; got {values.null_count} null(s)")
        values = values.to_numpy(zero_copy_only=False)
    out = np.asarray(values)
    if out.ndim == 0:
        return np.full(n, out, dtype=dtype)
    if out.shape != (n,):
        raise ValueError(f"{name} must hold one value per id ({n}); got shape {out.shape}")
    return out.astype(dtype, copy=False)


def _micros(ts: npt.ArrayLike | pa.Array, n: int) -> npt.NDArray[np.int64]:
    """``ts`` as integer microseconds: integers as they are, Arrow and numpy timestamps of
    any unit converted (a timezone-naive timestamp is taken as UTC)."""
    if isinstance(ts, (pa.Array, pa.ChunkedArray)) and pa.types.is_timestamp(ts.type):
        ts = ts.cast(pa.timestamp("us", tz=ts.type.tz)).cast(pa.int64())
    elif isinstance(ts, np.ndarray) and ts.dtype.kind == "M":
        ts = ts.astype("datetime64[us]").astype(np.int64)
    return _as_array(ts, np.int64, n, "ts")


def check_values(kind: Kind, values: npt.NDArray[np.float64], name: str, labels: bool = False) -> None:
    """Raise ValueError unless every value suits ``kind`` (binary scores in [0, 1], binary
    labels 0 or 1, class indices whole numbers >= 0, regression values finite)."""
    if kind == "binary":
        bad = ~np.isin(values, (0.0, 1.0)) if labels else ~((values >= 0.0) & (values <= 1.0))
        expected = "0 or 1" if labels else "a score in [0, 1]"
    elif kind == "multiclass":
        bad = ~((values >= 0) & (values == np.floor(values)) & np.isfinite(values))
        expected = "a class index (a whole number >= 0)"
    else:
        bad = ~np.isfinite(values)
        expected = "a finite number"
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] must be {expected} for a {kind} model; got {float(values[i])!r}"
                         f" ({int(bad.sum())} such value(s) in the batch)")


class PendingPredictions:
    """The predictions of one model (or shard) waiting for their labels (see the module text).

    Parameters
    ----------
    kind
        ``binary``, ``multiclass`` or ``regression`` (how predictions and labels are checked).
    horizon
        How long after a prediction's ``ts`` its label may arrive.
    cap
        Predictions held at most; beyond it the oldest are evicted.

    ``ts`` arguments are integer microseconds since the epoch (UTC), as elsewhere in the
    array engine, or Arrow or numpy timestamps (of any unit).

    >>> state = PendingPredictions("binary", horizon=timedelta(hours=1), cap=100)
    >>> state.add_predictions(pa.array(["e1", "e2"]), np.array([0, 1]), np.array([7, 7]),
    ...                       np.array([0.9, 0.2]), np.array([0, 0]))
    >>> joined = state.join(pa.array(["e2", "e3"]), np.array([1.0, 0.0]), np.array([60_000_000, 60_000_000]))
    >>> joined.cohort_rows.tolist(), joined.predictions.tolist(), joined.labels.tolist()
    ([1], [0.2], [1.0])
    >>> state.n_joined, state.n_unmatched_labels, len(state)
    (1, 1, 2)
    """

    def __init__(self, kind: Kind, horizon: timedelta, cap: int = DEFAULT_CAP) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        if horizon < timedelta(0):
            raise ValueError(f"horizon must be >= 0; got {horizon!r}")
        if not 1 <= cap <= MAX_SLOTS // 2:
            raise ValueError(f"cap must be an integer in [1, {MAX_SLOTS // 2}]; got {cap!r}")
        self.kind: Kind = kind
        self.horizon = horizon
        self.horizon_us = horizon // timedelta(microseconds=1)
        self.cap = cap
        self.slots = 0
        self.used = 0
        """Slots handed out so far; free ones below it are in ``free[:n_free]``."""
        self.free = np.zeros(0, dtype=np.int64)
        self.n_free = 0
        self.keys = np.zeros(0, dtype=np.uint64)
        self.cohort_rows = np.zeros(0, dtype=np.int64)
        self.window_ids = np.zeros(0, dtype=np.int64)
        self.predictions = np.zeros(0, dtype=np.float64)
        self.ts = np.zeros(0, dtype=np.int64)
        """:data:`NO_TS` for a free slot."""
        self.arrival = np.zeros(0, dtype=np.int64)
        """Arrival number of each slot's prediction (orders evictions among equal ``ts``)."""
        self.labelled = np.zeros(0, dtype=np.bool_)
        self.index = SlotIndex()
        self.n_arrived = 0
        self.newest_ts = np.iinfo(np.int64).min
        self.oldest_ts = NO_TS
        """The smallest ``ts`` held, or a lower bound of it (checked before scanning for expiry)."""
        self.n_joined = 0
        self.n_unmatched_labels = 0
        self.n_duplicate_labels = 0
        self.n_duplicate_predictions = 0
        self.n_without_id = 0
        """Predictions and labels whose id was null (skipped)."""
        self.n_evicted: dict[EvictionReason, int] = {reason: 0 for reason in EVICTION_REASONS}
        """Predictions evicted before any label arrived, by reason."""

    def __len__(self) -> int:
        """Predictions held (waiting, or labelled and not yet expired)."""
        return self.used - self.n_free

    @property
    def n_waiting(self) -> int:
        """Predictions held that have no label yet."""
        return len(self) - int(np.count_nonzero(self.labelled[: self.used]))

    def counters(self) -> dict[str, int]:
        """Every counter by name (for metrics and benchmark reports)."""
        return {
            "held": len(self), "joined": self.n_joined, "unmatched_labels": self.n_unmatched_labels,
            "duplicate_labels": self.n_duplicate_labels, "duplicate_predictions": self.n_duplicate_predictions,
            "without_id": self.n_without_id, "evicted_expired": self.n_evicted["expired"],
            "evicted_capped": self.n_evicted["capped"],
        }

    def nbytes(self) -> int:
        """Bytes held by the arrays of the state (slots and index)."""
        arrays = (self.free, self.keys, self.cohort_rows, self.window_ids, self.predictions, self.ts, self.arrival,
                  self.labelled, self.index.table, self.index.position)
        return sum(a.nbytes for a in arrays)

    # -- slots ------------------------------------------------------------------------------

    def _grow(self, slots: int) -> None:
        if slots <= self.slots:
            return

        def more(a: npt.NDArray[Any], fill: Any = 0) -> npt.NDArray[Any]:
            grown = np.full(slots, fill, dtype=a.dtype) if fill else np.zeros(slots, dtype=a.dtype)
            grown[: a.size] = a
            return grown

        self.keys, self.cohort_rows, self.window_ids = more(self.keys), more(self.cohort_rows), more(self.window_ids)
        self.predictions, self.ts, self.arrival = more(self.predictions), more(self.ts, NO_TS), more(self.arrival)
        self.labelled = more(self.labelled)
        self.slots = slots

    def _allocate(self, n: int) -> npt.NDArray[np.int64]:
        """``n`` free slots (given-back ones first, most recent first)."""
        reused_n = min(n, self.n_free)
        reused = self.free[self.n_free - reused_n: self.n_free][::-1].copy()
        self.n_free -= reused_n
        fresh = n - reused_n
        if self.used + fresh > self.slots:
            # Doubling, but not past the cap plus this batch: at the cap, slots are reused.
            self._grow(max(self.used + fresh, min(2 * self.slots, self.cap + n), 16))
        out = np.concatenate([reused, np.arange(self.used, self.used + fresh, dtype=np.int64)])
        self.used += fresh
        return out

    def _release(self, slots: npt.NDArray[np.int64], reason: EvictionReason) -> None:
        if slots.size == 0:
            return
        self.n_evicted[reason] += int(np.count_nonzero(~self.labelled[slots]))
        self.index.remove(slots)
        self.ts[slots] = NO_TS
        self.labelled[slots] = False
        if self.free.size < self.n_free + slots.size:
            grown = np.zeros(max(2 * self.free.size, self.n_free + slots.size), dtype=np.int64)
            grown[: self.n_free] = self.free[: self.n_free]
            self.free = grown
        self.free[self.n_free: self.n_free + slots.size] = slots
        self.n_free += slots.size

    # -- bounds ----------------------------------------------------------------------------

    def _expire(self) -> None:
        """Evict the predictions more than ``horizon`` older than the newest ``ts`` seen."""
        cutoff = self.newest_ts - self.horizon_us
        if cutoff <= self.oldest_ts:
            return
        ts = self.ts[: self.used]
        self._release(np.flatnonzero(ts < cutoff), "expired")
        self.oldest_ts = int(ts.min(initial=NO_TS))

    def _enforce_cap(self) -> None:
        over = len(self) - self.cap
        if over <= 0:
            return
        ts = self.ts[: self.used]  # free slots hold NO_TS, so they sort last
        threshold = np.partition(ts, over - 1)[over - 1]
        below = np.flatnonzero(ts < threshold)
        tied = np.flatnonzero(ts == threshold)
        tied = tied[np.argsort(self.arrival[tied], kind="stable")[: over - below.size]]
        self._release(np.concatenate([below, tied]), "capped")
        self.oldest_ts = int(threshold)

    # -- batches ---------------------------------------------------------------------------

    def add_predictions(
        self, ids: pa.Array | pa.ChunkedArray | npt.ArrayLike, cohort_rows: npt.ArrayLike, window_ids: npt.ArrayLike,
        predictions: npt.ArrayLike, ts: npt.ArrayLike,
    ) -> None:
        """Remember a batch of predictions until their labels arrive.

        All arguments hold one value per id (``cohort_rows``, ``window_ids`` and ``ts`` may
        be scalars). Raises ValueError when a prediction does not suit the kind.
        """
        keys, valid = hash_ids(ids)
        n = keys.size
        rows = _as_array(cohort_rows, np.int64, n, "cohort_rows")
        windows = _as_array(window_ids, np.int64, n, "window_ids")
        values = _as_array(predictions, np.float64, n, "predictions")
        stamps = _micros(ts, n)
        check_values(self.kind, values, "predictions")
        if n == 0:
            return
        self.n_without_id += n - int(np.count_nonzero(valid))
        # One prediction per key: the first of the batch, unless one is already held.
        candidates = np.flatnonzero(valid)
        _, first = np.unique(keys[candidates], return_index=True)
        new = candidates[np.sort(first)]
        new = new[self.index.lookup(keys[new], self.keys) < 0]
        self.n_duplicate_predictions += candidates.size - new.size
        self.n_arrived += n
        if new.size:
            slots = self._allocate(new.size)
            self.keys[slots] = keys[new]
            self.cohort_rows[slots], self.window_ids[slots] = rows[new], windows[new]
            self.predictions[slots], self.ts[slots] = values[new], stamps[new]
            self.arrival[slots] = self.n_arrived - n + new
            self.labelled[slots] = False
            self.index.insert(keys[new], slots, self.keys)
            self.oldest_ts = min(self.oldest_ts, int(stamps[new].min()))
        self.newest_ts = max(self.newest_ts, int(stamps.max()))
        self._expire()
        self._enforce_cap()

    def join(self, label_ids: pa.Array | pa.ChunkedArray | npt.ArrayLike, labels: npt.ArrayLike,
             ts: npt.ArrayLike) -> Joined:
        """Join a batch of labels to the predictions waiting for them (see the module text).

        Returns the joined rows in label order; the counters say what became of the
        others. Raises ValueError when a label does not suit the kind.
        """
        keys, valid = hash_ids(label_ids)
        n = keys.size
        values = _as_array(labels, np.float64, n, "labels")
        stamps = _micros(ts, n)
        check_values(self.kind, values, "labels", labels=True)
        if n == 0:
            return _empty_joined()
        self.n_without_id += n - int(np.count_nonzero(valid))
        slots = np.full(n, -1, dtype=np.int64)
        slots[valid] = self.index.lookup(keys[valid], self.keys)
        found = np.flatnonzero(slots >= 0)
        in_time = stamps[found] - self.ts[slots[found]] <= self.horizon_us
        found = found[in_time]
        # First label of each prediction, in batch order, unless it already has one.
        _, first = np.unique(slots[found], return_index=True)
        firsts = found[np.sort(first)]
        joins = firsts[~self.labelled[slots[firsts]]]
        self.n_duplicate_labels += found.size - joins.size
        self.n_unmatched_labels += int(np.count_nonzero(valid)) - found.size
        self.n_joined += joins.size
        joined_slots = slots[joins]
        self.labelled[joined_slots] = True
        out = Joined(
            cohort_rows=self.cohort_rows[joined_slots], window_ids=self.window_ids[joined_slots],
            predictions=self.predictions[joined_slots], labels=values[joins],
            prediction_ts=self.ts[joined_slots], label_index=joins.astype(np.int64),
        )
        self.newest_ts = max(self.newest_ts, int(stamps.max()))
        self._expire()
        return out

    # -- snapshots -------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The live slots only, packed in arrival order, with the counters and bounds."""
        live = np.flatnonzero(self.ts[: self.used] != NO_TS)
        live = live[np.argsort(self.arrival[live], kind="stable")]
        return {
            "kind": self.kind, "horizon": self.horizon, "cap": self.cap,
            "keys": self.keys[live], "cohort_rows": self.cohort_rows[live], "window_ids": self.window_ids[live],
            "predictions": self.predictions[live], "ts": self.ts[live], "arrival": self.arrival[live],
            "labelled": self.labelled[live], "n_arrived": self.n_arrived, "newest_ts": self.newest_ts,
            "counters": {
                "n_joined": self.n_joined, "n_unmatched_labels": self.n_unmatched_labels,
                "n_duplicate_labels": self.n_duplicate_labels, "n_duplicate_predictions": self.n_duplicate_predictions,
                "n_without_id": self.n_without_id,
            },
            "n_evicted": dict(self.n_evicted),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["kind"], state["horizon"], state["cap"])  # type: ignore[misc]
        n = int(state["keys"].size)
        if n:
            self._grow(max(16, n))
            slots = np.arange(n, dtype=np.int64)
            for name in ("keys", "cohort_rows", "window_ids", "predictions", "ts", "arrival", "labelled"):
                getattr(self, name)[:n] = state[name]
            self.used = n
            self.index.insert(self.keys[:n].copy(), slots, self.keys)
            self.oldest_ts = int(self.ts[:n].min())
        self.n_arrived, self.newest_ts = state["n_arrived"], state["newest_ts"]
        for name, value in state["counters"].items():
            setattr(self, name, value)
        self.n_evicted = dict(state["n_evicted"])


def _empty_joined() -> Joined:
    ints, floats = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return Joined(ints, ints, floats, floats, ints, ints)
