"""When the window steps ask to be woken: on the engine's clock, at the moment their own
(possibly injected) clock would reach the window's close, never in the past."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flows.clock import RestartSafeEventClock, engine_deadline

FIXED = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
"""An injected clock far behind the system's (a test's or a replay's)."""


def test_the_event_clock_wakes_when_its_watermark_reaches_the_close() -> None:
    wait = timedelta(minutes=2)
    logic = RestartSafeEventClock(lambda ts: ts, wait, now_getter=lambda: FIXED).build(None)
    logic.before_batch()
    event = datetime(2026, 11, 2, 8, 3, tzinfo=timezone.utc)
    logic.on_item(event)
    close = datetime(2026, 11, 2, 8, 5, tzinfo=timezone.utc)
    before = datetime.now(timezone.utc)
    wake = logic.to_system_utc(close)
    after = datetime.now(timezone.utc)
    assert wake is not None
    # The watermark (event − wait, then + system time since the event) reaches the close after
    # close − event + wait = 4 minutes of system time: from now, not at 08:05 event time.
    ahead = close - event + wait
    assert before + ahead <= wake <= after + ahead


def test_a_resumed_event_clock_wakes_from_now_too() -> None:
    wait = timedelta(minutes=1)
    first = RestartSafeEventClock(lambda ts: ts, wait, now_getter=lambda: FIXED).build(None)
    first.before_batch()
    first.on_item(datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc))
    later = FIXED + timedelta(hours=1)
    resumed = RestartSafeEventClock(lambda ts: ts, wait, now_getter=lambda: later).build(first.snapshot())
    wake = resumed.to_system_utc(datetime(2026, 11, 2, 8, 10, tzinfo=timezone.utc))
    assert wake is not None and wake - datetime.now(timezone.utc) > timedelta(minutes=10)


def test_a_clock_with_no_event_yet_leaves_the_wake_up_to_items_or_the_end() -> None:
    logic = RestartSafeEventClock(lambda ts: ts, timedelta(minutes=1), now_getter=lambda: FIXED).build(None)
    wake = logic.to_system_utc(datetime(2026, 11, 2, 8, 10, tzinfo=timezone.utc))
    assert wake is None or wake.year > 3000  # the watermark is at its minimum: never by time alone


def test_engine_deadline_keeps_the_distance_from_now() -> None:
    wake = engine_deadline(FIXED + timedelta(seconds=30), FIXED)
    assert wake is not None and timedelta(seconds=29) < wake - datetime.now(timezone.utc) <= timedelta(seconds=30)
    assert engine_deadline(None, FIXED) is None
