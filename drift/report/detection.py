"""The report's "Time to detect" section: each ticket's timeline, in event time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from drift.tickets import Ticket, TicketEvent


@dataclass(frozen=True, slots=True)
class DetectionRow:
    """One ticket of a run: when its problem started, was detected and recovered (event time).

    ``window`` is the length of the ticket's windows; ``windows_to_detect`` counts the
    windows from the problem's start to the end of the window that opened the ticket
    (the policy's ``consecutive_windows`` when the problem alerted from its first window).
    """

    id: str
    cohort_key: str
    detector: str
    feature: str | None
    drift_started: datetime | None
    detected_at: datetime | None
    recovered: datetime | None
    window: timedelta | None

    @property
    def time_to_detect(self) -> timedelta | None:
        return None if self.drift_started is None or self.detected_at is None else self.detected_at - self.drift_started

    @property
    def time_to_recover(self) -> timedelta | None:
        return None if self.drift_started is None or self.recovered is None else self.recovered - self.drift_started

    @property
    def windows_to_detect(self) -> float | None:
        took = self.time_to_detect
        if took is None or not self.window:
            return None
        return took / self.window

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        def seconds(value: timedelta | None) -> float | None:
            return None if value is None else value.total_seconds()

        return {
            "id": self.id, "cohort_key": self.cohort_key, "detector": self.detector, "feature": self.feature,
            "drift_started": iso(self.drift_started), "detected_at": iso(self.detected_at),
            "recovered": iso(self.recovered), "window_seconds": seconds(self.window),
            "windows_to_detect": self.windows_to_detect, "time_to_detect_seconds": seconds(self.time_to_detect),
            "time_to_recover_seconds": seconds(self.time_to_recover),
        }


def _window_length(ticket: Ticket) -> timedelta | None:
    # The latest window the ticket recorded; every window of a model has one length.
    finding = ticket.last_finding
    try:
        return datetime.fromisoformat(finding["window_end"]) - datetime.fromisoformat(finding["window_start"])
    except (KeyError, TypeError, ValueError):
        return None


def detection_rows(tickets: Sequence[TicketEvent]) -> list[DetectionRow]:
    """Every ticket the run opened or touched, as it stood after its last event, in order of first event.

    >>> detection_rows([])
    []
    """
    last: dict[str, Ticket] = {}
    for event in tickets:
        last[event.ticket.id] = event.ticket
    return [
        DetectionRow(t.id, t.cohort_key, t.detector, t.feature, t.drift_started, t.detected_at, t.recovered,
                     _window_length(t))
        for t in last.values()
    ]


def duration_text(value: timedelta | None) -> str | None:
    """A duration as a person reads it: ``45m``, ``2h 30m``, ``3d 4h``.

    >>> duration_text(timedelta(minutes=150)), duration_text(timedelta(days=3, hours=4, minutes=5))
    ('2h 30m', '3d 4h')
    >>> duration_text(timedelta(seconds=30)), duration_text(None)
    ('30s', None)
    """
    if value is None:
        return None
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"
