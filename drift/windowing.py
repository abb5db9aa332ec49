"""Event-time windows: the one definition of window index, bounds, watermark and lateness.

Windows are tumbling, of a model's ``window.size``, aligned to the Unix epoch: window
``i`` holds the events with ``EPOCH + i * size <= ts < EPOCH + (i + 1) * size``.

A cohort's *watermark* is its newest ``ts`` less the model's ``allowed_lateness``
(the flow also advances it with the system time that passed since that event; see
``flows/shard_windows.py``). A window *closes* when the watermark reaches its end, and an
event is *late* (a dead letter) only when its window had closed when it arrived.

The dataflow (``flows/shard_windows.py``, on microsecond arrays), the backtest
(``flows/backtest.py``) and the seasonal baselines built from history
(``drift/baselines/``) all take these rules from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

from drift.findings import Window

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)

Micros = TypeVar("Micros", int, npt.NDArray[np.int64])


def to_micros(ts: datetime) -> int:
    """An aware datetime as microseconds since the epoch (exact).

    >>> to_micros(datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc))
    1000000
    """
    return (ts - EPOCH) // MICROSECOND


def to_datetime(micros: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime.

    >>> to_datetime(1_000_000).isoformat()
    '1970-01-01T00:00:01+00:00'
    """
    return EPOCH + timedelta(microseconds=micros)


UTC_MIN = to_micros(datetime.min.replace(tzinfo=timezone.utc))
UTC_MAX = to_micros(datetime.max.replace(tzinfo=timezone.utc))


def window_index(ts: datetime, size: timedelta) -> int:
    """The index of the window that holds ``ts``.

    >>> window_index(datetime(1970, 1, 1, 0, 12, tzinfo=timezone.utc), timedelta(minutes=5))
    2
    """
    return (ts - EPOCH) // size


def window_at(index: int, size: timedelta) -> Window:
    """Window ``index`` of windows of ``size``.

    >>> window_at(2, timedelta(minutes=5)).start.isoformat()
    '1970-01-01T00:10:00+00:00'
    """
    start = EPOCH + index * size
    return Window(start, start + size)


def closed_below(watermark: datetime, size: timedelta) -> int:
    """Windows whose index is below this have closed at ``watermark`` (their end is at or before it).

    >>> closed_below(datetime(1970, 1, 1, 0, 10, tzinfo=timezone.utc), timedelta(minutes=5))
    2
    """
    return (watermark - EPOCH) // size


def window_index_us(ts: Micros, size_us: int) -> Micros:
    """:func:`window_index` on microseconds (an integer or an array of them)."""
    return ts // size_us


def window_end_us(ts: Micros, size_us: int) -> Micros:
    """The end (exclusive) of the window of ``ts``, in microseconds."""
    return (ts // size_us + 1) * size_us


def index_end_us(index: int, size_us: int) -> int:
    """The end (exclusive) of window ``index``, in microseconds."""
    return (index + 1) * size_us


def is_closed_us(index: int, watermark: int, size_us: int) -> bool:
    """Whether window ``index`` has closed at ``watermark``: the watermark reached its end."""
    return index_end_us(index, size_us) <= watermark


@overload
def is_late_us(ts: int, watermark: int, size_us: int) -> bool: ...
@overload
def is_late_us(
    ts: npt.NDArray[np.int64], watermark: npt.NDArray[np.int64], size_us: int,
) -> npt.NDArray[np.bool_]: ...
def is_late_us(ts: Any, watermark: Any, size_us: int) -> Any:
    """Whether a row of ``ts`` arriving at ``watermark`` is late: its window had closed (bool or bool array).

    >>> is_late_us(100, 300, 200), is_late_us(100, 199, 200)
    (True, False)
    """
    return window_end_us(ts, size_us) <= watermark


@dataclass
class EventClock:
    """The watermark of one cohort from event time alone (history files, no system time).

    ``observe`` an event's ``ts`` before counting it: it returns whether the event is
    late; :attr:`closed_below` then says which windows have closed.

    >>> clock = EventClock(timedelta(minutes=5), timedelta(minutes=1))
    >>> at = lambda m: datetime(2026, 1, 1, 0, m, tzinfo=timezone.utc)
    >>> clock.observe(at(7)), clock.closed_below - window_index(at(0), clock.size)
    (False, 1)
    >>> clock.observe(at(3)), clock.observe(at(2))  # the first window ended at 0:05 <= 0:06
    (True, True)
    """

    size: timedelta
    lateness: timedelta
    newest: datetime | None = None
    closed_below: int = field(default=-(2**62))

    def observe(self, ts: datetime) -> bool:
        if window_index(ts, self.size) < self.closed_below:
            return True
        if self.newest is None or ts > self.newest:
            self.newest = ts
            self.closed_below = max(self.closed_below, closed_below(ts - self.lateness, self.size))
        return False
