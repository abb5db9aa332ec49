"""Tickets: one durable record per ongoing problem, with its review and audit trail.

A ticket gathers every alerting window of one *fingerprint* (model, cohort,
detector, feature; see :attr:`drift.findings.Finding.fingerprint`). The store is
written by every worker process of the stream job and read by the CLI, so it is
built around a few guarantees:

* **Idempotent per window.** A finding is recorded at most once per
  (fingerprint, window start). Replaying a window after a crash, or a second
  worker seeing the same window, changes nothing.
* **One live ticket per fingerprint.** Each write runs in one transaction that
  takes the store's write lock first (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL
  advisory lock), so writers are serialised; a partial unique index backs this
  up should another writer ever skip it.
* **History is kept.** A resolved ticket whose problem comes back after its
  cooldown is reopened, not replaced, so its occurrences and worst value carry on.
* **Lifecycle is enforced.** ``open → (pending_review → approved | rejected) →
  in_progress → resolved``; any other move fails naming from and to
  (:data:`TRANSITIONS`). Approval needs distinct reviewers, never the requester.
* **Every action is audited.** Each change appends to a hash-chained,
  append-only audit log in the same transaction (:meth:`TicketStore.verify_audit`).

The SQL is written once for SQLite (the embedded default, here) and
PostgreSQL (``connectors/postgres.py``), behind the small :class:`Database`
protocol. Only the standard library is used; nothing is pickled.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import math
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Protocol, TypeAlias

from drift.audit import AuditKey, HeadFile, audit_mac, key_lookup, replay_problems
from drift.config import ImpactConfig
from drift.countermeasures import suggest
from drift.errors import ReviewError, TicketStoreError, TransitionError
from drift.findings import Finding, Severity
from drift.identity import canonical, same_person

__all__ = [
    "ACTIONS",
    "SCHEMA_VERSION",
    "SYSTEM_IDENTITY",
    "TRANSITIONS",
    "Action",
    "AuditEntry",
    "AuditReport",
    "Database",
    "EventKind",
    "RetrainRequest",
    "Review",
    "SqliteDatabase",
    "StoredTicketEvent",
    "Ticket",
    "TicketEvent",
    "TicketRef",
    "TicketStatus",
    "TicketStore",
]

Action: TypeAlias = Literal["ticket", "human_review"]
EventKind: TypeAlias = Literal["opened", "updated", "reopened", "cleared"]
Row: TypeAlias = dict[str, Any]

ACTIONS: Final[tuple[str, ...]] = ("ticket", "human_review")
"""The routing actions a ticket can carry (``routing[].action`` in the YAML)."""

SCHEMA_VERSION: Final = 4
"""Stored with the data (``PRAGMA user_version`` in SQLite); a newer store is refused."""

SYSTEM_IDENTITY: Final = "drift"
"""The actor of everything the stream job does, and the requester of reviews it opens."""

TICKET_PREFIX: Final = "DRIFT-"

GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of the first audit entry."""

_ID_PATTERN: Final = re.compile(r"DRIFT-([1-9][0-9]*)")
_MAX_SEQ: Final = 2**63 - 1

# How long a writer waits for another worker's transaction before failing.
# Writes are a handful of small statements, so seconds of waiting means a
# stuck process, not ordinary contention.
_BUSY_TIMEOUT_MS: Final = 30_000

_SEVERITY_RANK: Final[dict[Severity, int]] = {
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

_REVIEW_ONLY: Final = frozenset({TicketStatus.APPROVED, TicketStatus.REJECTED})


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
        }


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


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log, as stored."""

    id: int
    at: str
    actor: str
    action: str
    ticket_id: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str
    key_id: str | None = None
    mac: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
            "ticket_id": self.ticket_id, "detail": self.detail,
            "prev_hash": self.prev_hash, "hash": self.hash, "key_id": self.key_id, "mac": self.mac,
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What :meth:`TicketStore.verify_audit` found."""

    ok: bool
    n_entries: int
    entry_id: int | None = None
    problem: str | None = None
    n_authenticated: int = 0
    """Entries whose MAC was checked with their key."""
    n_unauthenticated: int = 0
    """Entries without a MAC (no key was set when they were written)."""
    unchecked_key_ids: tuple[str, ...] = ()
    """Key ids of entries with a MAC whose key this verifier does not have."""
    head: str | None = None
    """The published head file that was compared, or None when there is none."""
    n_published: int = 0

    @property
    def authenticated(self) -> bool:
        """Every entry's MAC checked, and the head published."""
        return (self.ok and self.n_authenticated == self.n_entries and self.head is not None)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "n_entries": self.n_entries, "entry_id": self.entry_id,
                "problem": self.problem, "authenticated": self.authenticated,
                "n_authenticated": self.n_authenticated, "n_unauthenticated": self.n_unauthenticated,
                "unchecked_key_ids": list(self.unchecked_key_ids), "head": self.head,
                "n_published": self.n_published}


# --------------------------------------------------------------------------- helpers


def _utc_now() -> datetime:
    return datetime.now(UTC)


# Times are stored as ISO 8601 text in UTC. Normalising the offset first
# makes equal instants equal strings, which the window primary key relies on.
def _time_text(value: datetime, what: str) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise TicketStoreError(f"{what} must be a timezone-aware datetime; got naive {value!r}")
    return value.astimezone(UTC).isoformat()


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _worse(a: Severity, b: Severity) -> Severity:
    return a if _SEVERITY_RANK[a] >= _SEVERITY_RANK[b] else b


def _ticket_id(seq: int) -> str:
    return f"{TICKET_PREFIX}{seq}"


def _parse_ticket_id(ticket_id: str) -> int:
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


def _as_action(value: str) -> Action:
    if value == "ticket":
        return "ticket"
    if value == "human_review":
        return "human_review"
    raise TicketStoreError(f"action must be one of {', '.join(ACTIONS)}; got {value!r}")


def _json_default(value: object) -> object:
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
                      allow_nan=False, default=_json_default)


def default_head_file(path: str | Path) -> Path:
    """Where a SQLite store at ``path`` publishes its audit head: ``PATH.audit-head``."""
    return Path(f"{path}.audit-head")


def audit_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """``sha256(prev_hash + canonical JSON of the entry)`` as hex."""
    return hashlib.sha256((prev_hash + canonical_json(dict(entry))).encode()).hexdigest()


def _check_identity(who: str, what: str) -> str:
    # One canonical name per person (drift/identity.py): "Bob" and "bob" are one reviewer.
    return canonical(who, what)


def _admin_detail(admin: str | None) -> dict[str, Any]:
    """What the audit keeps of an administrator acting for the named person."""
    return {} if admin is None else {"as_admin": _check_identity(admin, "the administrator")}


# --------------------------------------------------------------------------- database


class Tx(Protocol):
    """One open transaction (or autocommit reader) on the store's database.

    SQL uses ``?`` placeholders; a PostgreSQL backend translates them. Rows
    come back as plain dicts keyed by column name.
    """

    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None: ...

    def all(self, sql: str, params: Sequence[object] = ()) -> builtins.list[Row]: ...

    def run(self, sql: str, params: Sequence[object] = ()) -> None: ...

    def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run an ``INSERT ... RETURNING <id column>`` and return the id."""
        ...

    def schema_version(self) -> int: ...

    def set_schema_version(self, version: int) -> None: ...


class Database(Protocol):
    """What the store needs from SQLite or PostgreSQL."""

    dialect: Literal["sqlite", "postgresql"]
    location: str
    """For messages: a path or a URL without its password."""

    def write(self, doing: str) -> AbstractContextManager[Tx]:
        """A transaction holding the store's write lock from its first statement."""
        ...

    def read(self, doing: str) -> AbstractContextManager[Tx]:
        """A consistent read (no lock held against writers)."""
        ...

    def close(self) -> None: ...


def schema(dialect: Literal["sqlite", "postgresql"], from_version: int) -> builtins.list[str]:
    """DDL bringing a store at ``from_version`` (0: empty) to :data:`SCHEMA_VERSION`.

    One statement per item: SQLite's ``executescript`` would commit the
    surrounding transaction, and the schema must be created under the same
    lock as the version check so two workers starting together cannot race.
    """
    sqlite = dialect == "sqlite"
    # `seq` never reuses an id, even after rows are deleted: ids are printed in
    # alerts and must keep naming one problem.
    pk = "INTEGER PRIMARY KEY AUTOINCREMENT" if sqlite else "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    real = "REAL" if sqlite else "DOUBLE PRECISION"
    rowid = " WITHOUT ROWID" if sqlite else ""
    statuses = ", ".join(f"'{s.value}'" for s in TicketStatus)
    v2_columns = [
        ("active", "INTEGER NOT NULL DEFAULT 1"),
        ("suppressed", "INTEGER NOT NULL DEFAULT 0"),
        ("resolved_at", "TEXT"),
        ("requester", "TEXT"),
        ("approvals_required", "INTEGER NOT NULL DEFAULT 1"),
        ("review_round", "INTEGER NOT NULL DEFAULT 0"),
        ("impact", "TEXT NOT NULL DEFAULT '{}'"),
        ("audit_id", "INTEGER"),
    ]
    out: builtins.list[str] = []
    if from_version < 1:
        out.append(f"""
        CREATE TABLE IF NOT EXISTS tickets (
            seq                {pk},
            fingerprint        TEXT    NOT NULL,
            status             TEXT    NOT NULL CHECK (status IN ({statuses})),
            action             TEXT    NOT NULL CHECK (action IN ('ticket', 'human_review')),
            model              TEXT    NOT NULL,
            cohort             TEXT    NOT NULL,
            cohort_key         TEXT    NOT NULL,
            detector           TEXT    NOT NULL,
            feature            TEXT,
            severity           TEXT    NOT NULL CHECK (severity IN ('ok', 'warn', 'alert')),
            first_window_start TEXT    NOT NULL,
            last_window_end    TEXT    NOT NULL,
            opened_at          TEXT    NOT NULL,
            updated_at         TEXT    NOT NULL,
            occurrences        INTEGER NOT NULL CHECK (occurrences >= 1),
            worst_value        {real}  NOT NULL,
            last_value         {real}  NOT NULL,
            last_finding       TEXT    NOT NULL,
            {", ".join(f"{name} {kind}" for name, kind in v2_columns)}
        )
        """)
        # At most one live (not resolved) ticket per problem, whatever any
        # writer does; `record` relies on the write lock, this catches the rest.
        out.append("""
        CREATE UNIQUE INDEX IF NOT EXISTS tickets_live_fingerprint
            ON tickets (fingerprint) WHERE status != 'resolved'
        """)
        out.append("CREATE INDEX IF NOT EXISTS tickets_status ON tickets (status)")
        # Keyed by fingerprint rather than ticket, so a window replayed after its
        # ticket was resolved is still recognised and does not reopen it.
        out.append(f"""
        CREATE TABLE IF NOT EXISTS ticket_windows (
            fingerprint  TEXT    NOT NULL,
            window_start TEXT    NOT NULL,
            window_end   TEXT    NOT NULL,
            ticket_seq   INTEGER NOT NULL REFERENCES tickets (seq),
            value        {real}  NOT NULL,
            severity     TEXT    NOT NULL,
            recorded_at  TEXT    NOT NULL,
            PRIMARY KEY (fingerprint, window_start)
        ){rowid}
        """)
    elif from_version == 1:
        out += [f"ALTER TABLE tickets ADD COLUMN {name} {kind}" for name, kind in v2_columns]
    if from_version < 2:
        out.append("CREATE INDEX IF NOT EXISTS tickets_cohort ON tickets (cohort_key)")
        # Events per cohort window, so a ticket can say which share of the
        # model's traffic its cohort carries (written for every closed window).
        out.append(f"""
        CREATE TABLE IF NOT EXISTS window_traffic (
            model        TEXT    NOT NULL,
            window_start TEXT    NOT NULL,
            cohort_key   TEXT    NOT NULL,
            window_end   TEXT    NOT NULL,
            n_events     INTEGER NOT NULL CHECK (n_events >= 0),
            PRIMARY KEY (model, window_start, cohort_key)
        ){rowid}
        """)
        out.append(f"""
        CREATE TABLE IF NOT EXISTS ticket_reviews (
            ticket_seq INTEGER NOT NULL REFERENCES tickets (seq),
            round      INTEGER NOT NULL,
            reviewer   TEXT    NOT NULL,
            verdict    TEXT    NOT NULL CHECK (verdict IN ('approve', 'reject')),
            comment    TEXT,
            at         TEXT    NOT NULL,
            PRIMARY KEY (ticket_seq, round, reviewer)
        ){rowid}
        """)
        out.append(f"""
        CREATE TABLE IF NOT EXISTS retrain_outbox (
            id           {pk},
            request_key  TEXT NOT NULL UNIQUE,
            ticket_seq   INTEGER NOT NULL REFERENCES tickets (seq),
            created_at   TEXT NOT NULL,
            payload      TEXT NOT NULL,
            published_at TEXT
        )
        """)
        # Ids are given by the writer (last id + 1, under the write lock), not
        # by the database, so the chain's order is the ids' order.
        out.append("""
        CREATE TABLE IF NOT EXISTS audit_log (
            id        INTEGER PRIMARY KEY,
            at        TEXT NOT NULL,
            actor     TEXT NOT NULL,
            action    TEXT NOT NULL,
            ticket_id TEXT,
            detail    TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash      TEXT NOT NULL
        )
        """)
        # Append-only in the database too: an ordinary UPDATE or DELETE fails.
        # Whoever drops the trigger still cannot hide an edit from verify_audit.
        if sqlite:
            for verb in ("UPDATE", "DELETE"):
                out.append(f"""
                CREATE TRIGGER IF NOT EXISTS audit_log_no_{verb.lower()}
                BEFORE {verb} ON audit_log
                BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
                """)
        else:
            out.append("""
            CREATE OR REPLACE FUNCTION drift_audit_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'the audit log is append-only'; END
            $$ LANGUAGE plpgsql
            """)
            out.append("""
            CREATE OR REPLACE TRIGGER audit_log_append_only
            BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION drift_audit_append_only()
            """)
    if from_version < 3:
        # The entry's HMAC and the id of its key (drift/audit.py). key_id is '' for an
        # entry written without a key and NULL for one written before version 3.
        out.append("ALTER TABLE audit_log ADD COLUMN key_id TEXT")
        out.append("ALTER TABLE audit_log ADD COLUMN mac TEXT")
    if from_version < 4:
        # Ticket events, written in the transaction of the ticket change they describe and
        # published from here (published_at set once every sink has them).
        out.append(f"""
        CREATE TABLE ticket_outbox (
            id TEXT PRIMARY KEY,
            audit_id {"INTEGER" if sqlite else "BIGINT"} NOT NULL,
            kind TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            event TEXT NOT NULL,
            created_at TEXT NOT NULL,
            published_at TEXT
        )""")
        out.append("CREATE INDEX ticket_outbox_pending ON ticket_outbox (published_at, audit_id)")
    return out


class _SqliteTx:
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        row = self._conn.execute(sql, tuple(params)).fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, params: Sequence[object] = ()) -> builtins.list[Row]:
        return [dict(row) for row in self._conn.execute(sql, tuple(params)).fetchall()]

    def run(self, sql: str, params: Sequence[object] = ()) -> None:
        self._conn.execute(sql, tuple(params))

    def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        row = self._conn.execute(sql, tuple(params)).fetchone()
        return int(row[0])

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        self._conn.execute(f"PRAGMA user_version = {int(version)}")


class SqliteDatabase:
    """One SQLite file in WAL mode; one connection, used from the thread that opened it."""

    dialect: Literal["sqlite", "postgresql"] = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None turns off the module's implicit
            # transactions, so `write` alone decides where one starts.
            self._conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except (OSError, sqlite3.Error) as exc:
            raise TicketStoreError(f"cannot open ticket store {self.location!r}: {exc}") from exc
        self._conn.row_factory = sqlite3.Row
        try:
            # The busy timeout comes first: switching to WAL needs a lock that
            # another worker opening the same file may hold for a moment.
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            # WAL lets readers (the CLI, other workers) run beside the one
            # writer. `synchronous` keeps its default (FULL): a committed window
            # must survive a power cut, or the stream could resume past events
            # whose tickets were lost.
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            self._conn.close()
            raise TicketStoreError(f"cannot open ticket store {self.location!r}: {exc}") from exc

    @contextmanager
    def write(self, doing: str) -> Iterator[Tx]:
        # BEGIN IMMEDIATE takes the write lock before the first read, so the
        # "is there a live ticket?" check and the insert that follows cannot
        # interleave with another worker's: there is no window for a duplicate.
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise TicketStoreError(f"cannot {doing} ticket store {self.location!r}: {exc}") from exc
        try:
            yield _SqliteTx(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the failed statement may have rolled back already
            if isinstance(exc, sqlite3.Error):
                raise TicketStoreError(
                    f"cannot {doing} ticket store {self.location!r}: {exc}"
                ) from exc
            raise

    @contextmanager
    def read(self, doing: str) -> Iterator[Tx]:
        # A deferred transaction reads one snapshot in WAL mode and takes no
        # write lock, so the CLI never blocks the stream job.
        conn = self._conn
        try:
            conn.execute("BEGIN")
            try:
                yield _SqliteTx(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise TicketStoreError(f"cannot {doing} ticket store {self.location!r}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()


# --------------------------------------------------------------------------- rows


def _ticket_from_row(row: Row) -> Ticket:
    resolved = row.get("resolved_at")
    return Ticket(
        id=_ticket_id(int(row["seq"])),
        fingerprint=str(row["fingerprint"]),
        status=TicketStatus(row["status"]),
        action=_as_action(row["action"]),
        model=str(row["model"]),
        cohort=json.loads(row["cohort"]),
        cohort_key=str(row["cohort_key"]),
        detector=str(row["detector"]),
        feature=row["feature"],
        severity=Severity(row["severity"]),
        first_window_start=_parse_time(row["first_window_start"]),
        last_window_end=_parse_time(row["last_window_end"]),
        opened_at=_parse_time(row["opened_at"]),
        updated_at=_parse_time(row["updated_at"]),
        occurrences=int(row["occurrences"]),
        worst_value=float(row["worst_value"]),
        last_value=float(row["last_value"]),
        last_finding=json.loads(row["last_finding"]),
        active=bool(row["active"]),
        suppressed=int(row["suppressed"]),
        resolved_at=None if resolved is None else _parse_time(resolved),
        requester=row["requester"],
        approvals_required=int(row["approvals_required"]),
        review_round=int(row["review_round"]),
        impact=json.loads(row["impact"]),
    )


def _initial_status(action: Action) -> TicketStatus:
    return TicketStatus.PENDING_REVIEW if action == "human_review" else TicketStatus.OPEN


def _impact_dict(impact: ImpactConfig | None) -> dict[str, Any]:
    if impact is None:
        return {}
    return {"tier": impact.tier, "regulated": impact.regulated, "weight": impact.weight}


def _rank_key(finding: Mapping[str, Any]) -> tuple[int, float]:
    # How far past its own alert threshold: values of different detectors
    # (PSI, rates, distances) only compare as multiples of their thresholds.
    alert = float(finding.get("alert") or 0.0)
    value = float(finding.get("value") or 0.0)
    ratio = value / alert if alert > 0 else value
    return (_SEVERITY_RANK.get(Severity(finding.get("severity", "ok")), 0), ratio)


# --------------------------------------------------------------------------- store


class TicketStore:
    """Tickets, reviews, retraining outbox and audit log in one database.

    Open a SQLite store with :meth:`open`; a PostgreSQL one with
    ``connectors.postgres.open_postgres``. A store holds one connection and
    is used from the thread that opened it; each worker opens its own.

    Examples
    --------
    >>> import os, tempfile
    >>> from datetime import UTC, datetime
    >>> from drift.findings import Cohort, Finding, Severity, Window
    >>> t0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    >>> t1 = datetime(2026, 11, 27, 10, 5, tzinfo=UTC)
    >>> finding = Finding("psi", Cohort("credit-risk"), Window(t0, t1), "age",
    ...                   0.31, Severity.ALERT, 0.1, 0.25, 900, 5000, "reference")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with TicketStore.open(os.path.join(folder, "t.db")) as store:
    ...         first = store.record(finding)
    ...         again = store.record(finding)
    ...         intact = store.verify_audit().ok
    >>> first.kind, first.ticket.id, first.ticket.status.value, again, intact
    ('opened', 'DRIFT-1', 'open', None, True)
    """

    __slots__ = ("_db", "_head", "_heads", "_key", "_now")

    def __init__(self, db: Database, now: Callable[[], datetime] = _utc_now, *,
                 audit_key: AuditKey | None | Literal["env"] = "env",
                 head_file: str | Path | None = None) -> None:
        """Wrap an open database and bring its schema up to date.

        ``audit_key`` authenticates new audit entries (default: from
        ``DRIFT_AUDIT_KEY``; None: unauthenticated). ``head_file`` is where each
        committed entry's hash and MAC are published (None: nowhere).
        """
        self._db = db
        self._now = now
        self._heads: builtins.list[dict[str, Any]] = []
        self._head = None if head_file is None else HeadFile(head_file)
        try:
            self._key = AuditKey.from_env() if audit_key == "env" else audit_key
        except BaseException:
            db.close()
            raise
        try:
            self._prepare()
        except BaseException:
            db.close()
            raise

    @classmethod
    def open(cls, path: str | Path, now: Callable[[], datetime] = _utc_now, *,
             audit_key: AuditKey | None | Literal["env"] = "env",
             head_file: str | Path | None | Literal["default"] = "default") -> TicketStore:
        """Open the SQLite ticket store at ``path``, creating file and schema if needed.

        Parameters
        ----------
        path
            The SQLite file. Missing parent folders are created.
        now
            Wall clock for ``opened_at`` / ``updated_at`` and event times; it
            must return timezone-aware datetimes. Injected so tests are
            deterministic.
        audit_key, head_file
            See :class:`TicketStore`; the head file defaults to
            :func:`default_head_file` of ``path``.

        Raises
        ------
        TicketStoreError
            The file cannot be opened, is not a SQLite database, or was
            written by a newer schema; the message names the path and cause.
        """
        head = default_head_file(path) if head_file == "default" else head_file
        return cls(SqliteDatabase(path), now, audit_key=audit_key, head_file=head)

    def _prepare(self) -> None:
        with self._db.write("open") as tx:
            version = tx.schema_version()
            if version > SCHEMA_VERSION:
                raise TicketStoreError(
                    f"cannot open ticket store {self._db.location!r}: its schema version "
                    f"{version} is newer than this drift supports ({SCHEMA_VERSION})"
                )
            if version < SCHEMA_VERSION:
                for statement in schema(self._db.dialect, version):
                    tx.run(statement)
                tx.set_schema_version(SCHEMA_VERSION)

    @property
    def path(self) -> Path:
        """The SQLite file this store writes (a SQLite store only)."""
        if isinstance(self._db, SqliteDatabase):
            return self._db.path
        raise TicketStoreError(f"the ticket store {self._db.location!r} is not a file")

    @property
    def location(self) -> str:
        """The file or URL (without password) of the store, for messages."""
        return self._db.location

    def store_id(self) -> str:
        """A random id made the first time it is asked for and kept in the store.

        Ticket and audit ids (``DRIFT-3:17``) start at 1 in every store; this id tells
        one store's ticket events from another's (the webhook's idempotency keys).
        """
        with self._db.write("store id") as tx:
            tx.run("CREATE TABLE IF NOT EXISTS drift_store_id"
                   " (id INTEGER PRIMARY KEY CHECK (id = 1), uuid TEXT NOT NULL)")
            tx.run("INSERT INTO drift_store_id (id, uuid) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
                   (uuid.uuid4().hex,))
            row = tx.one("SELECT uuid FROM drift_store_id WHERE id = 1")
        assert row is not None  # inserted above
        return str(row["uuid"])

    def close(self) -> None:
        """Close the connection; calling it again does nothing."""
        self._db.close()

    def __enter__(self) -> TicketStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _write(self, doing: str) -> Iterator[Tx]:
        """A write transaction whose new audit entries are published once it commits."""
        self._heads.clear()
        try:
            with self._db.write(doing) as tx:
                yield tx
        except BaseException:
            self._heads.clear()
            raise
        # After the commit: a head line never names an entry the log does not hold. A crash
        # just before this leaves the head behind the log, which verify accepts.
        heads, self._heads = self._heads, []
        if self._head is not None and heads:
            self._head.append(heads)

    def _clock(self) -> tuple[datetime, str]:
        at = self._now()
        text = _time_text(at, "the store's clock now()")
        return at.astimezone(UTC), text

    # ------------------------------------------------------------------ audit

    def _audit(
        self, tx: Tx, at_text: str, actor: str, action: str, seq: int | None,
        detail: Mapping[str, Any],
    ) -> int:
        last = tx.one("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
        entry_id = 1 if last is None else int(last["id"]) + 1
        prev = GENESIS_HASH if last is None else str(last["hash"])
        ticket_id = None if seq is None else _ticket_id(seq)
        detail_text = canonical_json(dict(detail))
        entry = {"id": entry_id, "at": at_text, "actor": actor, "action": action,
                 "ticket_id": ticket_id, "detail": json.loads(detail_text)}
        entry_hash = audit_hash(prev, entry)
        key_id = "" if self._key is None else self._key.key_id
        mac = None if self._key is None else audit_mac(self._key.secret, key_id, entry_hash)
        tx.run(
            "INSERT INTO audit_log (id, at, actor, action, ticket_id, detail, prev_hash, hash, key_id, mac)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry_id, at_text, actor, action, ticket_id, detail_text, prev, entry_hash, key_id, mac),
        )
        self._heads.append({"id": entry_id, "hash": entry_hash, "key_id": key_id, "mac": mac})
        if seq is not None:
            tx.run("UPDATE tickets SET audit_id = ? WHERE seq = ?", (entry_id, seq))
        return entry_id

    def audit_log(self, ticket_id: str | None = None) -> builtins.list[AuditEntry]:
        """The audit log, oldest first; only ``ticket_id``'s entries when given."""
        with self._db.read("read the audit log of") as tx:
            if ticket_id is None:
                rows = tx.all("SELECT * FROM audit_log ORDER BY id")
            else:
                _parse_ticket_id(ticket_id)
                rows = tx.all("SELECT * FROM audit_log WHERE ticket_id = ? ORDER BY id", (ticket_id,))
        return [
            AuditEntry(int(r["id"]), str(r["at"]), str(r["actor"]), str(r["action"]), r["ticket_id"],
                       json.loads(r["detail"]), str(r["prev_hash"]), str(r["hash"]), r["key_id"], r["mac"])
            for r in rows
        ]

    def verify_audit(self, keys: Mapping[str, bytes] | None = None) -> AuditReport:
        """Check the audit log and the store against it; report the first thing that was tampered with.

        In id order: ids are 1, 2, 3, ... (a gap is a deleted entry); each
        ``prev_hash`` is the hash of the entry before; each ``hash`` matches the
        entry's content; each ``mac`` matches, for every key id in ``keys``
        (default: ``DRIFT_AUDIT_KEY`` and retired ``DRIFT_AUDIT_KEY_<ID>``), and
        once an entry has a MAC every later one has. Then every published head
        must still be in the log with its hash (deleting the newest entries and
        moving the tickets' pointers back is seen there), each ticket's latest
        entry must exist, and a replay of the log must give every ticket's
        state, every review verdict and every retraining request as stored.
        """
        keys = key_lookup(self._key) if keys is None else dict(keys)
        with self._db.read("verify the audit log of") as tx:
            rows = tx.all("SELECT * FROM audit_log ORDER BY id")
            tickets = tx.all("SELECT * FROM tickets ORDER BY seq")
            reviews = tx.all("SELECT * FROM ticket_reviews")
            outbox = tx.all("SELECT * FROM retrain_outbox ORDER BY id")
        heads = None if self._head is None else self._head.read()
        head = None if self._head is None or heads is None else str(self._head.path)
        n = len(rows)
        n_auth = n_unauth = 0
        unchecked: set[str] = set()
        keyed_since: int | None = None

        def failed(entry_id: int | None, problem: str) -> AuditReport:
            return AuditReport(False, n, entry_id, problem, n_auth, n_unauth, tuple(sorted(unchecked)), head,
                               0 if heads is None else len(heads))

        prev = GENESIS_HASH
        by_id: dict[int, Row] = {}
        entries: builtins.list[Row] = []
        for expected, row in enumerate(rows, start=1):
            entry_id = int(row["id"])
            if entry_id != expected:
                return failed(expected, f"audit entry {expected} is missing: it was deleted")
            if row["prev_hash"] != prev:
                return failed(entry_id, f"audit entry {entry_id} does not chain to entry {entry_id - 1}: "
                                        f"one of them was edited")
            try:
                detail = json.loads(row["detail"])
            except ValueError:
                return failed(entry_id, f"audit entry {entry_id} was edited: its detail is not JSON")
            entry = {"id": entry_id, "at": row["at"], "actor": row["actor"], "action": row["action"],
                     "ticket_id": row["ticket_id"], "detail": detail}
            if audit_hash(prev, entry) != row["hash"]:
                return failed(entry_id, f"audit entry {entry_id} was edited: its hash does not match its content")
            key_id, mac = row.get("key_id"), row.get("mac")
            if mac is None:
                if keyed_since is not None:
                    return failed(entry_id, f"audit entry {entry_id} has no MAC, but entry {keyed_since} and "
                                            f"later ones have: it was written or rewritten without the key")
                n_unauth += 1
            else:
                keyed_since = entry_id if keyed_since is None else keyed_since
                secret = keys.get(str(key_id))
                if secret is None:
                    unchecked.add(str(key_id))
                elif not hmac.compare_digest(audit_mac(secret, str(key_id), str(row["hash"])), str(mac)):
                    return failed(entry_id, f"audit entry {entry_id} was edited: its MAC does not match "
                                            f"(key {key_id!r}); the chain was recomputed without the key")
                else:
                    n_auth += 1
            prev = str(row["hash"])
            by_id[entry_id] = row
            entries.append(entry)
        if heads is None and self._head is not None and any(r.get("key_id") is not None for r in rows):
            return failed(None, f"the published audit head {self._head.path} is missing, but the log was "
                                f"written with it: it was deleted or the store was moved without it")
        for ticket in tickets:
            if ticket.get("audit_id") is None:
                continue
            entry_id = int(ticket["audit_id"])
            ticket_id = _ticket_id(int(ticket["seq"]))
            found = by_id.get(entry_id)
            if found is None:
                return failed(entry_id, f"audit entry {entry_id} is missing: it was the latest entry of "
                                        f"{ticket_id} and was deleted")
            if found["ticket_id"] != ticket_id:
                return failed(entry_id, f"audit entry {entry_id} does not belong to {ticket_id}, whose "
                                        f"latest entry it should be")
        for published in heads or []:
            entry_id = int(published["id"])
            found = by_id.get(entry_id)
            if found is None:
                return failed(entry_id, f"audit entry {entry_id} is missing: the published head "
                                        f"{head} names it; it was deleted")
            if found["hash"] != published["hash"]:
                return failed(entry_id, f"audit entry {entry_id} was rewritten: its hash differs from the "
                                        f"published head {head}")
        difference = replay_problems(entries, tickets, reviews, outbox, _ticket_id)
        if difference is not None:
            return failed(*difference)
        return AuditReport(True, n, None, None, n_auth, n_unauth, tuple(sorted(unchecked)), head,
                           0 if heads is None else len(heads))

    # ------------------------------------------------------------------ traffic

    def record_traffic(self, model: str, cohort_key: str, window_start: datetime,
                       window_end: datetime, n_events: int) -> None:
        """Remember how many events one cohort window held (idempotent: last write wins).

        The share of a cohort in its model's traffic is computed when read
        (:meth:`context`), from every cohort window of the model recorded by then.
        """
        self.record_traffic_many([(model, cohort_key, window_start, window_end, n_events)])

    def record_traffic_many(self, windows: Sequence[tuple[str, str, datetime, datetime, int]]) -> None:
        """:meth:`record_traffic` for each ``(model, cohort_key, start, end, n_events)``, in one transaction."""
        rows = [
            (model, _time_text(start, "traffic window start"), cohort_key,
             _time_text(end, "traffic window end"), int(n_events))
            for model, cohort_key, start, end, n_events in windows
        ]
        if not rows:
            return
        with self._write("write") as tx:
            for row in rows:
                tx.run(
                    "INSERT INTO window_traffic (model, window_start, cohort_key, window_end, n_events)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (model, window_start, cohort_key)"
                    " DO UPDATE SET n_events = excluded.n_events, window_end = excluded.window_end",
                    row,
                )

    # ------------------------------------------------------------------ record

    def record(
        self,
        finding: Finding,
        action: str = "ticket",
        *,
        approvals: int = 1,
        impact: ImpactConfig | None = None,
        cooldown: timedelta = timedelta(0),
    ) -> TicketEvent | None:
        """Record ``finding`` on its fingerprint's ticket.

        Parameters
        ----------
        finding
            An alerting finding (policy decides which findings get here).
            Its window times must be timezone-aware.
        action
            The routing action, ``"ticket"`` or ``"human_review"``. It sets
            the status of a new or reopened ticket (``open`` or
            ``pending_review``, requested by :data:`SYSTEM_IDENTITY`); a live
            ticket keeps its status and action, which only the lifecycle
            (review, resolution) changes.
        approvals
            Distinct approvers a review of a new or reopened ticket needs.
        impact
            The model's impact config, kept on the ticket for its context.
        cooldown
            Quiet period after resolution, in event time: an alerting window
            that starts before the resolved ticket's ``last_window_end +
            cooldown`` is counted in ``suppressed`` and does not reopen it.

        Returns
        -------
        TicketEvent or None
            ``opened`` when the fingerprint has no ticket yet, ``updated``
            when it has a live one, ``reopened`` when all its tickets are
            resolved and the cooldown is over (the latest is reopened and keeps
            its history). None when this fingerprint's window was already
            recorded (a replay neither double counts nor emits a second event)
            or when the window fell in the cooldown.

        Raises
        ------
        TicketStoreError
            Unknown action, NaN value, naive window times, evidence that is
            not JSON serialisable, or the database cannot be written.
        """
        checked_action = _as_action(action)
        fingerprint = finding.fingerprint
        if math.isnan(finding.value):
            # NaN is stored as NULL by SQLite and cannot rank as "worst".
            raise TicketStoreError(
                f"cannot record finding {fingerprint} (detector {finding.detector!r}, "
                f"feature {finding.feature!r}, cohort {finding.cohort.key!r}): value is NaN"
            )
        if approvals < 1:
            raise TicketStoreError(f"approvals must be >= 1; got {approvals!r}")
        window_start = _time_text(finding.window.start, f"finding {fingerprint} window start")
        window_end = _time_text(finding.window.end, f"finding {fingerprint} window end")
        try:
            payload = json.dumps(finding.to_dict(), sort_keys=True, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise TicketStoreError(
                f"cannot record finding {fingerprint} (detector {finding.detector!r}, "
                f"feature {finding.feature!r}): evidence is not JSON serialisable: {exc}"
            ) from exc
        impact_text = json.dumps(_impact_dict(impact), sort_keys=True)
        at, at_text = self._clock()
        window_detail = {"window_start": window_start, "window_end": window_end,
                         "value": finding.value, "severity": finding.severity.value}

        with self._write("write") as tx:
            seen = tx.one(
                "SELECT 1 AS seen FROM ticket_windows WHERE fingerprint = ? AND window_start = ?",
                (fingerprint, window_start),
            )
            if seen is not None:
                return None

            row = tx.one(
                "SELECT * FROM tickets WHERE fingerprint = ? AND status != ?",
                (fingerprint, TicketStatus.RESOLVED.value),
            )
            kind: EventKind
            if row is not None:
                kind = "updated"
            else:
                row = tx.one(
                    "SELECT * FROM tickets WHERE fingerprint = ? ORDER BY seq DESC LIMIT 1",
                    (fingerprint,),
                )
                kind = "opened" if row is None else "reopened"

            if row is not None and kind == "reopened":
                quiet_until = _parse_time(row["last_window_end"]) + cooldown
                if finding.window.start < quiet_until:
                    seq = int(row["seq"])
                    self._insert_window(tx, fingerprint, window_start, window_end, seq, finding, at_text)
                    tx.run("UPDATE tickets SET suppressed = suppressed + 1 WHERE seq = ?", (seq,))
                    self._audit(tx, at_text, SYSTEM_IDENTITY, "suppressed", seq,
                                {**window_detail, "quiet_until": _time_text(quiet_until, "quiet until")})
                    return None

            if row is None:
                status = _initial_status(checked_action)
                review = status is TicketStatus.PENDING_REVIEW
                seq = tx.insert(
                    """
                    INSERT INTO tickets (
                        fingerprint, status, action, model, cohort, cohort_key,
                        detector, feature, severity, first_window_start,
                        last_window_end, opened_at, updated_at, occurrences,
                        worst_value, last_value, last_finding, active, suppressed,
                        requester, approvals_required, review_round, impact
                    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, 1, 0, ?, ?, ?, ?)
                    RETURNING seq
                    """,
                    (
                        fingerprint, status.value, checked_action, finding.cohort.model,
                        json.dumps(finding.cohort.to_dict(), sort_keys=True), finding.cohort.key,
                        finding.detector, finding.feature, finding.severity.value,
                        window_start, window_end, at_text, at_text,
                        finding.value, finding.value, payload,
                        SYSTEM_IDENTITY if review else None, approvals, 1 if review else 0, impact_text,
                    ),
                )
                detail: dict[str, Any] = {**window_detail, "status": status.value, "action": checked_action,
                                          "approvals_required": approvals, "fingerprint": fingerprint}
            else:
                seq = int(row["seq"])
                first_start = min(_parse_time(row["first_window_start"]), finding.window.start)
                last_end = _parse_time(row["last_window_end"])
                # Windows can arrive out of order (late data, replay, another
                # worker); "last" means latest in event time, not latest written.
                is_latest = finding.window.end >= last_end
                if kind == "reopened":
                    status = _initial_status(checked_action)
                    stored_action = checked_action
                    review = status is TicketStatus.PENDING_REVIEW
                    requester = SYSTEM_IDENTITY if review else None
                    review_round = int(row["review_round"]) + (1 if review else 0)
                    required = approvals
                else:
                    status = TicketStatus(row["status"])
                    stored_action = _as_action(row["action"])
                    requester = row["requester"]
                    review_round = int(row["review_round"])
                    required = int(row["approvals_required"])
                tx.run(
                    """
                    UPDATE tickets SET
                        status = ?, action = ?, severity = ?,
                        first_window_start = ?, last_window_end = ?,
                        updated_at = ?, occurrences = occurrences + 1,
                        worst_value = ?, last_value = ?, last_finding = ?,
                        active = 1, requester = ?, approvals_required = ?,
                        review_round = ?, impact = ?
                    WHERE seq = ?
                    """,
                    (
                        status.value, stored_action,
                        _worse(Severity(row["severity"]), finding.severity).value,
                        _time_text(first_start, "first window start"),
                        window_end if is_latest else row["last_window_end"],
                        at_text,
                        max(float(row["worst_value"]), finding.value),
                        finding.value if is_latest else row["last_value"],
                        payload if is_latest else row["last_finding"],
                        requester, required, review_round,
                        impact_text if impact is not None else row["impact"],
                        seq,
                    ),
                )
                detail = {**window_detail}
                if kind == "reopened":
                    detail.update(status=status.value, action=stored_action, previous_status="resolved",
                                  approvals_required=required)
            self._insert_window(tx, fingerprint, window_start, window_end, seq, finding, at_text)
            audit_id = self._audit(tx, at_text, SYSTEM_IDENTITY, kind, seq, detail)
            ticket = self._fetch(tx, seq)
            assert ticket is not None  # written in the transaction above
            context = self._context(tx, ticket)
            event = TicketEvent(kind=kind, ticket=ticket, at=at, id=f"{ticket.id}:{audit_id}", context=context)
            self._to_outbox(tx, event, audit_id, at_text)
        return event

    @staticmethod
    def _insert_window(tx: Tx, fingerprint: str, window_start: str, window_end: str, seq: int,
                       finding: Finding, at_text: str) -> None:
        tx.run(
            """
            INSERT INTO ticket_windows (
                fingerprint, window_start, window_end, ticket_seq, value, severity, recorded_at
            ) VALUES (?, ?, ?, ?, ?, ?, ?)
            """,
            (fingerprint, window_start, window_end, seq, finding.value, finding.severity.value, at_text),
        )

    def clear(self, finding: Finding) -> TicketEvent | None:
        """Mark the live ticket of ``finding``'s fingerprint inactive (hysteresis cleared it).

        The status does not change: whether the problem is *resolved* is for a
        person to say. Returns None when there is no live, active ticket.
        """
        at, at_text = self._clock()
        window_end = _time_text(finding.window.end, "clearing window end")
        with self._write("write") as tx:
            row = tx.one(
                "SELECT * FROM tickets WHERE fingerprint = ? AND status != ? AND active = 1",
                (finding.fingerprint, TicketStatus.RESOLVED.value),
            )
            if row is None:
                return None
            if row["last_window_end"] is not None and str(row["last_window_end"]) >= window_end:
                # The ticket already holds an alerting window ending at or after this one:
                # a clear read again after a restart, or out of order. Clearing is decided
                # per window, like recording, so it changes nothing and says nothing.
                return None
            seq = int(row["seq"])
            tx.run("UPDATE tickets SET active = 0, updated_at = ? WHERE seq = ?", (at_text, seq))
            audit_id = self._audit(tx, at_text, SYSTEM_IDENTITY, "cleared", seq,
                                   {"window_end": window_end, "value": finding.value})
            ticket = self._fetch(tx, seq)
            assert ticket is not None
            context = self._context(tx, ticket)
            event = TicketEvent(kind="cleared", ticket=ticket, at=at, id=f"{ticket.id}:{audit_id}", context=context)
            self._to_outbox(tx, event, audit_id, at_text)
        return event

    # ------------------------------------------------------------------ outbox

    @staticmethod
    def _to_outbox(tx: Tx, event: TicketEvent, audit_id: int, at_text: str) -> None:
        """Keep ``event`` in the outbox, in the transaction of the change it describes."""
        tx.run(
            "INSERT INTO ticket_outbox (id, audit_id, kind, ticket_id, event, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (event.id, audit_id, event.kind, event.ticket.id, canonical_json(event.to_dict()), at_text),
        )

    def pending_events(self, limit: int = 10_000) -> builtins.list[StoredTicketEvent]:
        """Ticket events stored but not yet marked published, oldest first.

        After a crash between a ticket change and its publication, these are what the
        job publishes when it starts again (with their original ids).
        """
        with self._db.read("read the outbox of") as tx:
            rows = tx.all(
                "SELECT id, kind, ticket_id, event FROM ticket_outbox WHERE published_at IS NULL "
                "ORDER BY audit_id LIMIT ?", (int(limit),),
            )
        return [StoredTicketEvent(id=str(r["id"]), kind=r["kind"], ticket=TicketRef(str(r["ticket_id"])),
                                  document=json.loads(r["event"])) for r in rows]

    def mark_events_published(self, event_ids: Sequence[str]) -> None:
        """Mark ticket events as handed to every sink (delivered, or spilled by the sink)."""
        ids = [str(i) for i in event_ids if i]
        if not ids:
            return
        _, at_text = self._clock()
        with self._write("write") as tx:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                tx.run(f"UPDATE ticket_outbox SET published_at = ? WHERE published_at IS NULL AND id IN ({marks})",
                       (at_text, *chunk))

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _fetch(tx: Tx, seq: int) -> Ticket | None:
        row = tx.one("SELECT * FROM tickets WHERE seq = ?", (seq,))
        return None if row is None else _ticket_from_row(row)

    def get(self, ticket_id: str) -> Ticket:
        """The ticket called ``ticket_id`` (``DRIFT-17``).

        Raises
        ------
        TicketStoreError
            No such ticket (the message names the id), or the store cannot
            be read.
        """
        seq = _parse_ticket_id(ticket_id)
        with self._db.read(f"read ticket {ticket_id!r} from") as tx:
            ticket = self._fetch(tx, seq)
        if ticket is None:
            raise TicketStoreError(f"no ticket {ticket_id!r} in {self._db.location!r}")
        return ticket

    def list(self, status: TicketStatus | None = None) -> builtins.list[Ticket]:
        """All tickets, or those with ``status``, oldest id first."""
        with self._db.read("list tickets in") as tx:
            if status is None:
                rows = tx.all("SELECT * FROM tickets ORDER BY seq")
            else:
                rows = tx.all("SELECT * FROM tickets WHERE status = ? ORDER BY seq",
                              (TicketStatus(status).value,))
        return [_ticket_from_row(row) for row in rows]

    def live(self) -> builtins.list[Ticket]:
        """Tickets not resolved (whatever their other status), oldest id first.

        The read behind the ticket-state metrics (:class:`drift.metrics.TicketState`);
        the partial index on live fingerprints keeps it small however many
        tickets were ever resolved.
        """
        with self._db.read("list live tickets in") as tx:
            rows = tx.all("SELECT * FROM tickets WHERE status != ? ORDER BY seq", (TicketStatus.RESOLVED.value,))
        return [_ticket_from_row(row) for row in rows]

    def context(self, ticket_id: str) -> dict[str, Any]:
        """Everything a reviewer needs about ``ticket_id``, computed now.

        ``{"cohort", "windows", "traffic", "findings", "baseline", "impact",
        "countermeasures", "reviews"}``: see docs/tickets.md for each field.
        """
        seq = _parse_ticket_id(ticket_id)
        with self._db.read(f"read ticket {ticket_id!r} from") as tx:
            ticket = self._fetch(tx, seq)
            if ticket is None:
                raise TicketStoreError(f"no ticket {ticket_id!r} in {self._db.location!r}")
            return self._context(tx, ticket)

    def _context(self, tx: Tx, ticket: Ticket) -> dict[str, Any]:
        seq = _parse_ticket_id(ticket.id)
        windows = tx.all(
            "SELECT window_start, window_end, value, severity FROM ticket_windows"
            " WHERE ticket_seq = ? ORDER BY window_start", (seq,),
        )
        # Traffic of the latest window and of all the ticket's windows together.
        starts = [str(w["window_start"]) for w in windows]
        traffic_rows = tx.all(
            "SELECT window_start, cohort_key, n_events FROM window_traffic WHERE model = ?"
            f" AND window_start IN ({', '.join('?' for _ in starts) or 'NULL'})",
            (ticket.model, *starts),
        )
        n_cohort: dict[str, int] = {}
        n_model: dict[str, int] = {}
        n_cohorts: dict[str, int] = {}
        for t in traffic_rows:
            start = str(t["window_start"])
            n_model[start] = n_model.get(start, 0) + int(t["n_events"])
            n_cohorts[start] = n_cohorts.get(start, 0) + 1
            if t["cohort_key"] == ticket.cohort_key:
                n_cohort[start] = int(t["n_events"])
        latest = str(ticket.last_finding.get("window_start", starts[-1] if starts else ""))
        latest = _time_text(_parse_time(latest), "latest window") if latest else latest

        def share(num: int | None, den: int | None) -> float | None:
            return None if num is None or not den else num / den

        known = [s for s in starts if s in n_cohort]
        total_cohort = sum(n_cohort[s] for s in known)
        total_model = sum(n_model[s] for s in known)
        traffic = {
            "window_start": latest or None,
            "n_events": n_cohort.get(latest),
            "n_model_events": n_model.get(latest),
            "n_cohorts": n_cohorts.get(latest),
            "share": share(n_cohort.get(latest), n_model.get(latest)),
            "n_events_all_windows": total_cohort if known else None,
            "share_all_windows": share(total_cohort, total_model) if known else None,
        }
        # The findings of this cohort that have live tickets, worst first:
        # this ticket's latest finding and those of its neighbours.
        related = tx.all(
            "SELECT seq, last_finding FROM tickets WHERE cohort_key = ? AND status != ? AND seq != ?",
            (ticket.cohort_key, TicketStatus.RESOLVED.value, seq),
        )
        findings = [{**ticket.last_finding, "ticket_id": ticket.id}]
        findings += [{**json.loads(r["last_finding"]), "ticket_id": _ticket_id(int(r["seq"]))} for r in related]
        findings.sort(key=_rank_key, reverse=True)
        ranked = [
            {"rank": i, "ticket_id": f["ticket_id"], "detector": f.get("detector"),
             "feature": f.get("feature"), "value": f.get("value"), "severity": f.get("severity"),
             "warn": f.get("warn"), "alert": f.get("alert"),
             "window_start": f.get("window_start"), "window_end": f.get("window_end"),
             "n_current": f.get("n_current"), "evidence": f.get("evidence", {})}
            for i, f in enumerate(findings, start=1)
        ]
        countermeasures: builtins.list[dict[str, Any]] = []
        for f in ranked:
            suggestion: dict[str, Any] = {"detector": str(f["detector"]), **suggest(str(f["detector"])).to_dict()}
            # Embedding findings name the window's samples farthest from the reference: what to inspect.
            farthest = (f["evidence"] or {}).get("farthest") if isinstance(f["evidence"], dict) else None
            if farthest:
                suggestion["event_ids"] = [row.get("event_id") for row in farthest if row.get("event_id") is not None]
            if not any(c["action"] == suggestion["action"] for c in countermeasures):
                countermeasures.append(suggestion)
        impact = dict(ticket.impact)
        weight = impact.get("weight")
        traffic_share = traffic["share"]
        impact["traffic_share"] = traffic_share
        impact["estimate"] = (
            None if weight is None or traffic_share is None else float(weight) * float(traffic_share)
        )
        reviews = tx.all(
            "SELECT * FROM ticket_reviews WHERE ticket_seq = ? ORDER BY at, reviewer", (seq,)
        )
        return {
            "cohort": dict(ticket.cohort),
            "windows": [
                {"window_start": w["window_start"], "window_end": w["window_end"],
                 "value": float(w["value"]), "severity": w["severity"],
                 "n_events": n_cohort.get(str(w["window_start"]))}
                for w in windows
            ],
            "traffic": traffic,
            "findings": ranked,
            "baseline": {
                "name": ticket.last_finding.get("baseline"),
                "n_reference": ticket.last_finding.get("n_reference"),
            },
            "impact": impact,
            "countermeasures": countermeasures,
            "reviews": [
                {"round": int(r["round"]), "reviewer": r["reviewer"], "verdict": r["verdict"],
                 "comment": r["comment"], "at": r["at"]}
                for r in reviews
            ],
        }

    # ------------------------------------------------------------------ lifecycle

    def _move(self, tx: Tx, seq: int, current: Ticket, new: TicketStatus) -> None:
        allowed = TRANSITIONS[current.status]
        if new not in allowed:
            options = ", ".join(sorted(s.value for s in allowed)) or "none"
            raise TransitionError(
                f"cannot move {current.id} from {current.status.value} to {new.value}: "
                f"allowed from {current.status.value}: {options}"
            )

    def set_status(self, ticket_id: str, status: TicketStatus | str, actor: str = SYSTEM_IDENTITY,
                   comment: str | None = None, *, admin: str | None = None) -> Ticket:
        """Move ``ticket_id`` to ``status`` along :data:`TRANSITIONS` and return it.

        Approval and rejection go through :meth:`approve` / :meth:`reject`
        (they count reviewers), entering review through :meth:`request_review`,
        and a resolved ticket only reopens when its problem recurs.

        Raises
        ------
        TransitionError
            The move is not allowed; the message names from and to.
        TicketStoreError
            Unknown id or status, or the store cannot be written.
        """
        seq = _parse_ticket_id(ticket_id)
        try:
            new_status = TicketStatus(status)
        except ValueError:
            options = ", ".join(s.value for s in TicketStatus)
            raise TicketStoreError(
                f"cannot set {ticket_id}: status must be one of {options}; got {status!r}"
            ) from None
        actor = _check_identity(actor, "the actor")
        acting = _admin_detail(admin)
        _, at_text = self._clock()
        with self._write("write") as tx:
            current = self._fetch(tx, seq)
            if current is None:
                raise TicketStoreError(f"no ticket {ticket_id!r} in {self._db.location!r}")
            if current.status == new_status:
                return current
            if new_status in _REVIEW_ONLY:
                raise TransitionError(
                    f"cannot move {ticket_id} from {current.status.value} to {new_status.value} "
                    f"directly: use 'drift review {'approve' if new_status is TicketStatus.APPROVED else 'reject'}'"
                )
            if new_status is TicketStatus.PENDING_REVIEW:
                raise TransitionError(
                    f"cannot move {ticket_id} from {current.status.value} to pending_review "
                    f"directly: use 'drift review request'"
                )
            if current.status is TicketStatus.RESOLVED:
                raise TransitionError(
                    f"cannot move {ticket_id} from resolved to {new_status.value}: a resolved "
                    f"ticket reopens only when its problem recurs after the cooldown"
                )
            self._move(tx, seq, current, new_status)
            resolved_at = at_text if new_status is TicketStatus.RESOLVED else None
            tx.run("UPDATE tickets SET status = ?, updated_at = ?, resolved_at = ? WHERE seq = ?",
                   (new_status.value, at_text, resolved_at, seq))
            self._audit(tx, at_text, actor, "status", seq,
                        {"from": current.status.value, "to": new_status.value, "comment": comment, **acting})
            updated = self._fetch(tx, seq)
        assert updated is not None  # updated in the transaction above
        return updated

    def request_review(self, ticket_id: str, requester: str, approvals: int | None = None, *,
                       admin: str | None = None) -> Ticket:
        """Send an ``open`` (or ``rejected``) ticket to review, requested by ``requester``.

        The requester is recorded and may never approve this review round.
        ``approvals`` (distinct approvers needed) defaults to the ticket's.
        """
        seq = _parse_ticket_id(ticket_id)
        requester = _check_identity(requester, "the requester")
        acting = _admin_detail(admin)
        if approvals is not None and approvals < 1:
            raise ReviewError(f"approvals must be >= 1; got {approvals!r}")
        _, at_text = self._clock()
        with self._write("write") as tx:
            current = self._fetch(tx, seq)
            if current is None:
                raise TicketStoreError(f"no ticket {ticket_id!r} in {self._db.location!r}")
            self._move(tx, seq, current, TicketStatus.PENDING_REVIEW)
            if current.status is TicketStatus.RESOLVED:
                raise TransitionError(
                    f"cannot move {ticket_id} from resolved to pending_review: a resolved "
                    f"ticket reopens only when its problem recurs after the cooldown"
                )
            required = current.approvals_required if approvals is None else approvals
            tx.run(
                "UPDATE tickets SET status = ?, requester = ?, approvals_required = ?,"
                " review_round = review_round + 1, updated_at = ? WHERE seq = ?",
                (TicketStatus.PENDING_REVIEW.value, requester, required, at_text, seq),
            )
            self._audit(tx, at_text, requester, "review_requested", seq,
                        {"from": current.status.value, "approvals_required": required, **acting})
            updated = self._fetch(tx, seq)
        assert updated is not None
        return updated

    def reviews(self, ticket_id: str) -> builtins.list[Review]:
        """Every verdict given on ``ticket_id``, all rounds, oldest first."""
        seq = _parse_ticket_id(ticket_id)
        with self._db.read("read reviews from") as tx:
            rows = tx.all("SELECT * FROM ticket_reviews WHERE ticket_seq = ? ORDER BY at, reviewer", (seq,))
        return [Review(ticket_id, int(r["round"]), str(r["reviewer"]), r["verdict"], r["comment"],
                       _parse_time(r["at"])) for r in rows]

    def approve(self, ticket_id: str, reviewer: str, comment: str | None = None, *, admin: str | None = None
                ) -> tuple[Ticket, RetrainRequest | None]:
        """Add ``reviewer``'s approval; the last one needed approves the ticket.

        The requester never approves, and one reviewer counts once per round.
        Names are compared as people (:func:`drift.identity.same_person`):
        ``Bob`` is the requester ``bob``, and ``alіce`` (Cyrillic ``і``) is ``alice``.
        When the ticket becomes ``approved``, a retraining request with the
        whole context is written to the outbox in the same transaction and
        returned; otherwise None (more approvals are needed).

        Raises
        ------
        ReviewError
            The reviewer is the requester, already approved, or is blank.
        TransitionError
            The ticket is not pending review.
        """
        seq = _parse_ticket_id(ticket_id)
        reviewer = _check_identity(reviewer, "the reviewer")
        acting = _admin_detail(admin)
        at, at_text = self._clock()
        with self._write("write") as tx:
            current = self._fetch(tx, seq)
            if current is None:
                raise TicketStoreError(f"no ticket {ticket_id!r} in {self._db.location!r}")
            if current.status is not TicketStatus.PENDING_REVIEW:
                raise TransitionError(
                    f"cannot approve {ticket_id}: it is {current.status.value}, not pending_review"
                )
            if same_person(reviewer, current.requester):
                raise ReviewError(
                    f"{reviewer!r} requested the review of {ticket_id} and cannot approve it; "
                    f"another reviewer must"
                    + ("" if reviewer == current.requester else f" (the requester is {current.requester!r})")
                )
            done = [str(r["reviewer"]) for r in tx.all(
                "SELECT reviewer FROM ticket_reviews WHERE ticket_seq = ? AND round = ?",
                (seq, current.review_round),
            ) if same_person(reviewer, str(r["reviewer"]))]
            if done:
                raise ReviewError(
                    f"{reviewer!r} already approved {ticket_id} in this review"
                    + ("" if done[0] == reviewer else f" (as {done[0]!r})")
                    + f"; {current.approvals_required} distinct approvers are needed"
                )
            tx.run(
                "INSERT INTO ticket_reviews (ticket_seq, round, reviewer, verdict, comment, at)"
                " VALUES (?, ?, ?, 'approve', ?, ?)",
                (seq, current.review_round, reviewer, comment, at_text),
            )
            approvers = [str(r["reviewer"]) for r in tx.all(
                "SELECT reviewer FROM ticket_reviews WHERE ticket_seq = ? AND round = ?"
                " AND verdict = 'approve' ORDER BY at, reviewer",
                (seq, current.review_round),
            )]
            complete = len(approvers) >= current.approvals_required
            self._audit(tx, at_text, reviewer, "approval", seq,
                        {"round": current.review_round, "comment": comment,
                         "approvals": len(approvers), "approvals_required": current.approvals_required,
                         **acting})
            request: RetrainRequest | None = None
            if complete:
                tx.run("UPDATE tickets SET status = ?, updated_at = ? WHERE seq = ?",
                       (TicketStatus.APPROVED.value, at_text, seq))
                self._audit(tx, at_text, reviewer, "status", seq,
                            {"from": TicketStatus.PENDING_REVIEW.value, "to": TicketStatus.APPROVED.value,
                             "approved_by": approvers})
                ticket = self._fetch(tx, seq)
                assert ticket is not None
                key = f"{ticket_id}/review-{current.review_round}"
                payload = {
                    "kind": "retrain_request",
                    "key": key,
                    "ticket_id": ticket_id,
                    "model": ticket.model,
                    "cohort": dict(ticket.cohort),
                    "requested_by": current.requester,
                    "approved_by": approvers,
                    "approved_at": at_text,
                    "ticket": ticket.to_dict(),
                    "context": self._context(tx, ticket),
                }
                payload_text = canonical_json(payload)
                outbox_id = tx.insert(
                    "INSERT INTO retrain_outbox (request_key, ticket_seq, created_at, payload)"
                    " VALUES (?, ?, ?, ?) RETURNING id",
                    (key, seq, at_text, payload_text),
                )
                self._audit(tx, at_text, reviewer, "retrain_requested", seq, {"key": key, "outbox_id": outbox_id})
                request = RetrainRequest(outbox_id, key, ticket_id, at, json.loads(payload_text), None)
            else:
                ticket = self._fetch(tx, seq)
                assert ticket is not None
        return ticket, request

    def reject(self, ticket_id: str, reviewer: str, comment: str, *, admin: str | None = None) -> Ticket:
        """Reject ``ticket_id``'s review; one reviewer suffices and must say why."""
        seq = _parse_ticket_id(ticket_id)
        reviewer = _check_identity(reviewer, "the reviewer")
        acting = _admin_detail(admin)
        if not comment or not comment.strip():
            raise ReviewError(f"rejecting {ticket_id} needs a comment saying why")
        _, at_text = self._clock()
        with self._write("write") as tx:
            current = self._fetch(tx, seq)
            if current is None:
                raise TicketStoreError(f"no ticket {ticket_id!r} in {self._db.location!r}")
            if current.status is not TicketStatus.PENDING_REVIEW:
                raise TransitionError(
                    f"cannot reject {ticket_id}: it is {current.status.value}, not pending_review"
                )
            tx.run(
                "INSERT INTO ticket_reviews (ticket_seq, round, reviewer, verdict, comment, at)"
                " VALUES (?, ?, ?, 'reject', ?, ?)"
                " ON CONFLICT (ticket_seq, round, reviewer) DO UPDATE SET verdict = 'reject',"
                " comment = excluded.comment, at = excluded.at",
                (seq, current.review_round, reviewer, comment, at_text),
            )
            tx.run("UPDATE tickets SET status = ?, updated_at = ? WHERE seq = ?",
                   (TicketStatus.REJECTED.value, at_text, seq))
            self._audit(tx, at_text, reviewer, "status", seq,
                        {"from": current.status.value, "to": TicketStatus.REJECTED.value, "comment": comment,
                         "round": current.review_round, **acting})
            ticket = self._fetch(tx, seq)
        assert ticket is not None
        return ticket

    # ------------------------------------------------------------------ outbox

    def retrain_requests(self, pending_only: bool = False) -> builtins.list[RetrainRequest]:
        """Retraining requests in the outbox, oldest first (unpublished only when asked)."""
        query = "SELECT * FROM retrain_outbox"
        if pending_only:
            query += " WHERE published_at IS NULL"
        with self._db.read("read the retraining outbox of") as tx:
            rows = tx.all(query + " ORDER BY id")
        return [
            RetrainRequest(int(r["id"]), str(r["request_key"]), _ticket_id(int(r["ticket_seq"])),
                           _parse_time(r["created_at"]), json.loads(r["payload"]),
                           None if r["published_at"] is None else _parse_time(r["published_at"]))
            for r in rows
        ]

    def mark_published(self, request_id: int, destination: str) -> None:
        """Note that retraining request ``request_id`` reached ``destination``."""
        _, at_text = self._clock()
        with self._write("write") as tx:
            row = tx.one("SELECT * FROM retrain_outbox WHERE id = ?", (request_id,))
            if row is None:
                raise TicketStoreError(f"no retraining request {request_id} in {self._db.location!r}")
            if row["published_at"] is not None:
                return
            tx.run("UPDATE retrain_outbox SET published_at = ? WHERE id = ?", (at_text, request_id))
            self._audit(tx, at_text, SYSTEM_IDENTITY, "retrain_published", int(row["ticket_seq"]),
                        {"key": row["request_key"], "destination": destination})
