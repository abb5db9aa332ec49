"""Tickets as values: statuses and their legal moves, tickets, events, reviews, requests.

Everything here is a frozen dataclass or a pure helper, with no database: the store
(:mod:`drift.tickets.store`) reads and writes these, the sinks publish them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Literal, TypeAlias

from drift.errors import TicketStoreError
from drift.findings import Severity
from drift.identity import canonical

__all__ = [
    "ACTIONS",
    "SYSTEM_IDENTITY",
    "TICKET_PREFIX",
    "TRANSITIONS",
    "Action",
    "EventKind",
    "RetrainRequest",
    "Review",
    "StoredTicketEvent",
    "Ticket",
    "TicketEvent",
    "TicketRef",
    "TicketStatus",
    "TicketTimeline",
    "canonical_json",
]

Action: TypeAlias = Literal["ticket", "human_review"]
EventKind: TypeAlias = Literal["opened", "updated", "reopened", "cleared"]

ACTIONS: Final[tuple[str, ...]] = ("ticket", "human_review")
"""The routing actions a ticket can carry (``routing[].action`` in the YAML)."""

SYSTEM_IDENTITY: Final = "drift"
"""The actor of everything the stream job does, and the requester of reviews it opens."""

TICKET_PREFIX: Final = "DRIFT-"

_ID_PATTERN: Final = re.compile(r"DRIFT-([1-9][0-9]*)")
_MAX_SEQ: Final = 2**63 - 1

SEVERITY_RANK: Final[dict[Severity, int]] = {
    Severity.OK: 0,
    Severity.WARN: 1,
    Severity.ALERT: 2,
}


class TicketStatus(StrEnum):
    """Where a ticket is in its lifecycle."""

    OPEN = "open"
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"


TRANSITIONS: Final[dict[TicketStatus, frozenset[TicketStatus]]] = {
    TicketStatus.OPEN: frozenset(
        {TicketStatus.PENDING_REVIEW, TicketStatus.IN_PROGRESS, TicketStatus.RESOLVED}
    ),
    # A problem that goes away while it waits for review may be closed unreviewed:
    # nothing is retrained, so no approval is bypassed.
    TicketStatus.PENDING_REVIEW: frozenset(
        {TicketStatus.APPROVED, TicketStatus.REJECTED, TicketStatus.RESOLVED}
    ),
    TicketStatus.APPROVED: frozenset({TicketStatus.IN_PROGRESS, TicketStatus.RESOLVED}),
    TicketStatus.REJECTED: frozenset({TicketStatus.PENDING_REVIEW, TicketStatus.RESOLVED}),
    TicketStatus.IN_PROGRESS: frozenset({TicketStatus.RESOLVED}),
    # Only a recurring problem reopens a resolved ticket (TicketStore.record).
    TicketStatus.RESOLVED: frozenset({TicketStatus.OPEN, TicketStatus.PENDING_REVIEW}),
}
"""Every legal status move. Moves into ``approved``/``rejected`` go through review,
into ``pending_review`` through :meth:`TicketStore.request_review`, out of
``resolved`` only through :meth:`TicketStore.record`."""

REVIEW_ONLY: Final = frozenset({TicketStatus.APPROVED, TicketStatus.REJECTED})


@dataclass(frozen=True, slots=True)
class Ticket:
    """One ongoing problem: every alerting window of one fingerprint.

    Times are timezone-aware UTC. ``first_window_start`` and
    ``last_window_end`` are event time (the windows recorded);
    ``opened_at`` and ``updated_at`` are wall-clock time of the store.
    ``occurrences`` counts distinct windows, so replays do not inflate it.
    ``severity`` and ``worst_value`` are the worst ever recorded, while
    ``last_value`` and ``last_finding`` belong to the latest window in event
    time (a late window does not overwrite a newer one).

    ``active`` is the alert policy's view: False once the value stayed below
    the clear level for the configured windows (hysteresis), True again on the
    next alerting window. ``suppressed`` counts alerting windows that recurred
    during the cooldown after resolution and so did not reopen the ticket.
    ``requester``, ``approvals_required`` and ``review_round`` describe the
    current (or last) review; ``impact`` is the model's impact config when the
    ticket was last recorded.

    The timeline (:class:`TicketTimeline`) says when the problem started, was
    detected, acknowledged, recovered and resolved. Each of ``drift_started``,
    ``detected_at``, ``acknowledged_at`` and ``recovered`` is written once, the
    first time its moment comes, and never changes after (a reopened ticket keeps
    them); they are None until then, and on tickets written before the store had them.
    ``drift_started`` (event time) is the start of the first of the windows at warn
    or alert, in a row, that led to the ticket (the warn windows just before the
    alerting run are looked back over); ``detected_at`` (event time) the end
    of the window that opened it; ``acknowledged_at`` (wall clock) the first thing
    a person did on it (a review verdict, a review request or a status move);
    ``recovered`` (event time) the end of the window at which the policy's
    hysteresis first cleared it. ``resolved_at`` (wall clock) is the latest
    resolution.
    """

    id: str
    fingerprint: str
    status: TicketStatus
    action: Action
    model: str
    cohort: dict[str, str]
    cohort_key: str
    detector: str
    feature: str | None
    severity: Severity
    first_window_start: datetime
    last_window_end: datetime
    opened_at: datetime
    updated_at: datetime
    occurrences: int
    worst_value: float
    last_value: float
    last_finding: dict[str, Any]
    active: bool = True
    suppressed: int = 0
    resolved_at: datetime | None = None
    requester: str | None = None
    approvals_required: int = 1
    review_round: int = 0
    impact: dict[str, Any] = field(default_factory=dict)
    drift_started: datetime | None = None
    detected_at: datetime | None = None
    acknowledged_at: datetime | None = None
    recovered: datetime | None = None

    def timeline(self) -> TicketTimeline:
        """The ticket's timeline and the durations between its moments."""
        return TicketTimeline(self.id, self.model, self.detector, self.drift_started, self.detected_at,
                              self.opened_at, self.acknowledged_at, self.recovered, self.resolved_at)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping, the shape written to the tickets topic."""
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "status": self.status.value,
            "action": self.action,
            "model": self.model,
            "cohort": dict(self.cohort),
            "cohort_key": self.cohort_key,
            "detector": self.detector,
            "feature": self.feature,
            "severity": self.severity.value,
            "first_window_start": self.first_window_start.isoformat(),
            "last_window_end": self.last_window_end.isoformat(),
            "opened_at": self.opened_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "occurrences": self.occurrences,
            "worst_value": self.worst_value,
            "last_value": self.last_value,
            "last_finding": dict(self.last_finding),
            "active": self.active,
            "suppressed": self.suppressed,
            "resolved_at": None if self.resolved_at is None else self.resolved_at.isoformat(),
            "requester": self.requester,
            "approvals_required": self.approvals_required,
            "review_round": self.review_round,
            "impact": dict(self.impact),
            "drift_started": _iso(self.drift_started),
            "detected_at": _iso(self.detected_at),
            "acknowledged_at": _iso(self.acknowledged_at),
            "recovered": _iso(self.recovered),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _between(start: datetime | None, end: datetime | None) -> timedelta | None:
    return None if start is None or end is None else end - start


@dataclass(frozen=True, slots=True)
class TicketTimeline:
    """When a ticket's problem started, was detected, acknowledged, recovered and resolved.

    Event-time moments (``drift_started``, ``detected_at``, ``recovered``) are
    compared with each other, wall-clock ones (``opened_at``, ``acknowledged_at``,
    ``resolved_at``) with each other: a replay of last month's history detects in
    minutes of event time but opens its tickets today. A duration is None while
    either end is unknown.

    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> line = TicketTimeline("DRIFT-1", "m", "psi", t, t + timedelta(minutes=15), t, None,
    ...                       t + timedelta(hours=2), None)
    >>> line.time_to_detect, line.time_to_recover, line.time_to_acknowledge
    (datetime.timedelta(seconds=900), datetime.timedelta(seconds=7200), None)
    """

    id: str
    model: str
    detector: str
    drift_started: datetime | None
    detected_at: datetime | None
    opened_at: datetime
    acknowledged_at: datetime | None
    recovered: datetime | None
    resolved_at: datetime | None

    @property
    def time_to_detect(self) -> timedelta | None:
        """``detected_at - drift_started`` (event time)."""
        return _between(self.drift_started, self.detected_at)

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        """``acknowledged_at - opened_at`` (wall clock)."""
        return _between(self.opened_at, self.acknowledged_at)

    @property
    def time_to_recover(self) -> timedelta | None:
        """``recovered - drift_started`` (event time)."""
        return _between(self.drift_started, self.recovered)

    @property
    def time_to_resolve(self) -> timedelta | None:
        """``resolved_at - opened_at`` (wall clock)."""
        return _between(self.opened_at, self.resolved_at)


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """A change to a ticket caused by recording a finding (or clearing it).

    ``id`` is ``<ticket id>:<audit entry id>``: unique per event and stable, so
    sinks use it as the idempotency key. ``context`` is the ticket's context
    (:meth:`TicketStore.context`) as it stood when the event happened.
    """

    kind: EventKind
    ticket: Ticket
    at: datetime
    id: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping: ``{"id", "kind", "at", "ticket", "context"}``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "ticket": self.ticket.to_dict(),
            "context": dict(self.context),
        }


@dataclass(frozen=True, slots=True)
class TicketRef:
    """The id of the ticket a :class:`StoredTicketEvent` is about."""

    id: str


@dataclass(frozen=True, slots=True)
class StoredTicketEvent:
    """A ticket event as the outbox kept it: its id, kind and the document sinks write.

    What :meth:`TicketStore.pending_events` hands back after a restart, for the sinks
    (which read ``id``, ``kind``, ``ticket.id`` and ``to_dict()``) to publish unchanged.
    """

    id: str
    kind: EventKind
    ticket: TicketRef
    document: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.document)


@dataclass(frozen=True, slots=True)
class Review:
    """One reviewer's verdict on one review round of a ticket."""

    ticket_id: str
    round: int
    reviewer: str
    verdict: Literal["approve", "reject"]
    comment: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id, "round": self.round, "reviewer": self.reviewer,
            "verdict": self.verdict, "comment": self.comment, "at": self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class RetrainRequest:
    """An approved retraining request, kept in the store's outbox until published.

    ``key`` (``DRIFT-7/review-1``) identifies the request across retries of the
    publisher, so a consumer can drop duplicates.
    """

    id: int
    key: str
    ticket_id: str
    created_at: datetime
    payload: dict[str, Any]
    published_at: datetime | None


# --------------------------------------------------------------------------- helpers


def utc_now() -> datetime:
    return datetime.now(UTC)


# Times are stored as ISO 8601 text in UTC. Normalising the offset first
# makes equal instants equal strings, which the window primary key relies on.
def time_text(value: datetime, what: str) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise TicketStoreError(f"{what} must be a timezone-aware datetime; got naive {value!r}")
    return value.astimezone(UTC).isoformat()


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def worse(a: Severity, b: Severity) -> Severity:
    return a if SEVERITY_RANK[a] >= SEVERITY_RANK[b] else b


def format_ticket_id(seq: int) -> str:
    return f"{TICKET_PREFIX}{seq}"


def parse_ticket_id(ticket_id: str) -> int:
    match = _ID_PATTERN.fullmatch(ticket_id)
    if match is None:
        raise TicketStoreError(
            f"no ticket {ticket_id!r}: ticket ids look like {TICKET_PREFIX}17"
        )
    seq = int(match.group(1))
    if seq > _MAX_SEQ:
        # Larger numbers overflow the databases' 64-bit integers: no ticket can have one.
        raise TicketStoreError(f"no ticket {ticket_id!r}: ticket numbers end at {_MAX_SEQ}")
    return seq


def as_action(value: str) -> Action:
    if value == "ticket":
        return "ticket"
    if value == "human_review":
        return "human_review"
    raise TicketStoreError(f"action must be one of {', '.join(ACTIONS)}; got {value!r}")


def json_default(value: object) -> object:
    # Evidence may hold numpy scalars or small arrays; both offer `tolist`,
    # which keeps numpy out of this module's imports.
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(value: object) -> str:
    """The one text of a JSON value that the audit hash covers.

    >>> canonical_json({"b": 1, "a": [1.5, None]})
    '{"a":[1.5,null],"b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=json_default)



def check_identity(who: str, what: str) -> str:
    # One canonical name per person (drift/identity.py): "Bob" and "bob" are one reviewer.
    return canonical(who, what)


def admin_detail(admin: str | None) -> dict[str, Any]:
    """What the audit keeps of an administrator acting for the named person."""
    return {} if admin is None else {"as_admin": check_identity(admin, "the administrator")}

