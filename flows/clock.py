"""An event clock whose watermark does not jump over the time the job was down.

Bytewax's ``EventClock`` advances a key's watermark with the system time that
passed since the key's newest event: ``watermark = newest_ts - lateness +
(now - system_time_of_newest)``. Its snapshot keeps that system time, so after
a restart the downtime counts as elapsed event time. Events that queued in
Kafka while the job was down (or that were read but not yet snapshotted) are
on time, yet a downtime longer than ``allowed_lateness`` would close their
windows on resume and send them to the ``late`` dead letters.

:class:`RestartSafeEventClock` resumes a snapshot as if the newest event had
just been seen: the watermark continues from where the snapshot left it and
only system time *after* the restart moves it. The events read after the
restart then decide, exactly as in an uninterrupted run, which windows close
and which events are late.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Generic, Optional, TypeVar, cast

from bytewax.operators.windowing import Clock, ClockLogic, EventClock

V = TypeVar("V")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class RestartSafeEventClock(Clock[V, Any], Generic[V]):
    """``EventClock`` that does not count the downtime before a resume as elapsed time.

    Same arguments and meaning as Bytewax's ``EventClock``; only a resumed
    snapshot is treated differently.
    """

    ts_getter: Callable[[V], datetime]
    wait_for_system_duration: timedelta
    now_getter: Callable[[], datetime] = field(default=_utc_now)

    def build(self, resume_state: Optional[Any]) -> ClockLogic[V, Any]:
        clock = EventClock(self.ts_getter, self.wait_for_system_duration, now_getter=self.now_getter)
        if resume_state is None:
            return self._waking(clock.build(None))
        # The state type is private to Bytewax (``_EventClockState``); only its
        # field ``system_time_of_max_event`` is moved, to now. Never move it
        # backwards: after a system clock step back (NTP) the watermark must
        # not advance by the difference either.
        state = copy.deepcopy(resume_state)
        now = self.now_getter()
        if now > state.system_time_of_max_event:
            state.system_time_of_max_event = now
        return self._waking(clock.build(state))

    def _waking(self, logic: Any) -> ClockLogic[V, Any]:
        """``logic`` that asks to be woken when its watermark will reach a window's close.

        Bytewax's ``EventClock`` wakes the window step at the close time itself (event time
        taken for system time): for history older than now that moment has passed, and a
        window that is not yet closable is woken again at once, over and over, for as long
        as it stays open. The watermark reaches ``close`` when the system time is
        ``system_time_of_max_event + (close - watermark_base)``: that is when to wake,
        on the engine's clock (:func:`engine_deadline`).
        """
        def wake(close: datetime) -> Optional[datetime]:
            state = logic.state
            try:
                due = state.system_time_of_max_event + (close - state.watermark_base)
                return engine_deadline(due, self.now_getter())
            except OverflowError:  # no event yet (watermark at its minimum): items or the end wake it
                return None

        logic.to_system = wake
        return cast(ClockLogic[V, Any], logic)


def engine_deadline(due: Optional[datetime], now: datetime) -> Optional[datetime]:
    """A deadline ``due`` of a clock whose current time is ``now``, on the engine's clock.

    Bytewax calls a step's ``notify_at`` against the system's UTC clock. A step that reads an
    injected clock (a replay's, a test's fixed time) states its deadline on that clock: moved
    by the same distance from the system's now, the step is woken when its own clock would
    have reached the deadline, never in a loop because an injected clock lags the system's.
    With the system clock itself the deadline is unchanged.

    >>> from datetime import timezone
    >>> fixed = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
    >>> wake = engine_deadline(fixed + timedelta(minutes=5), fixed)
    >>> timedelta(minutes=4) < wake - _utc_now() <= timedelta(minutes=5)
    True
    >>> engine_deadline(None, fixed) is None
    True
    """
    if due is None:
        return None
    return _utc_now() + (due - now)

