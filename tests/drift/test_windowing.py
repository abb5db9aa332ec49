"""The window rules of drift.windowing against a direct computation on datetimes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.windowing import (
    EventClock, closed_below, is_closed_us, is_late_us, to_datetime, to_micros, window_at, window_index,
    window_index_us,
)

ORIGIN = datetime(1970, 1, 1, tzinfo=timezone.utc)
T0 = datetime(2026, 11, 2, tzinfo=timezone.utc)
sizes = st.sampled_from([timedelta(seconds=30), timedelta(minutes=5), timedelta(hours=1), timedelta(days=1)])
offsets = st.integers(min_value=-10**12, max_value=10**12)  # microseconds around T0 (about ±11 days)


def containing(ts: datetime, size: timedelta) -> tuple[datetime, datetime]:
    """The window of ``ts``, found by stepping from the epoch (the oracle)."""
    n = (ts - ORIGIN) / size
    start = ORIGIN + int(np.floor(n)) * size
    while start > ts:
        start -= size
    while start + size <= ts:
        start += size
    return start, start + size


@given(offsets, sizes)
def test_window_index_and_bounds_hold_the_timestamp(offset: int, size: timedelta) -> None:
    ts = T0 + timedelta(microseconds=offset)
    window = window_at(window_index(ts, size), size)
    assert (window.start, window.end) == containing(ts, size)
    assert window_index_us(to_micros(ts), size // timedelta(microseconds=1)) == window_index(ts, size)
    assert to_datetime(to_micros(ts)) == ts


@given(offsets, offsets, sizes)
def test_late_exactly_when_the_window_had_ended_at_the_watermark(offset: int, mark: int, size: timedelta) -> None:
    ts, watermark = T0 + timedelta(microseconds=offset), T0 + timedelta(microseconds=mark)
    size_us = size // timedelta(microseconds=1)
    _, end = containing(ts, size)
    assert is_late_us(to_micros(ts), to_micros(watermark), size_us) is (end <= watermark)
    index = window_index(ts, size)
    assert is_closed_us(index, to_micros(watermark), size_us) is (end <= watermark)
    assert (index < closed_below(watermark, size)) is (end <= watermark)
    # The array form agrees with the scalar one.
    late = is_late_us(np.array([to_micros(ts)]), np.array([to_micros(watermark)]), size_us)
    assert late.tolist() == [end <= watermark]


@settings(max_examples=200)
@given(st.lists(st.integers(min_value=0, max_value=3 * 3600), min_size=1, max_size=60),
       st.sampled_from([0, 30, 120, 600]), sizes)
def test_event_clock_follows_the_newest_event_less_the_lateness(
    seconds: list[int], lateness_s: int, size: timedelta,
) -> None:
    lateness = timedelta(seconds=lateness_s)
    clock = EventClock(size, lateness)
    newest: datetime | None = None
    for s in seconds:
        ts = T0 + timedelta(seconds=s)
        _, end = containing(ts, size)
        expected_late = newest is not None and end <= newest - lateness
        assert clock.observe(ts) is expected_late
        if not expected_late and (newest is None or ts > newest):
            newest = ts
        assert newest is not None
        assert clock.closed_below == closed_below(newest - lateness, size)
