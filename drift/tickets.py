"""Tickets: one durable record per ongoing problem, kept in SQLite.

A ticket gathers every alerting window of one *fingerprint* (model, cohort,
detector, feature; see :attr:`drift.findings.Finding.fingerprint`). The store is
written by every worker process of the stream job, so it is built around three
guarantees:

* **Idempotent per window.** A finding is recorded at most once per
  (fingerprint, window start). Replaying a window after a crash, or a second
  worker seeing the same window, changes nothing.
* **One live ticket per fingerprint.** Each record runs in one ``BEGIN
  IMMEDIATE`` transaction, so writers are serialised on the database lock; a
  partial unique index backs this up should another writer ever skip it.
* **History is kept.** A resolved ticket whose problem comes back is reopened,
  not replaced, so its occurrences and worst value carry on.

Only the standard library is used (``sqlite3``, ``json``); nothing is pickled.
"""

from __future__ import annotations

import builtins
import json
import math
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias

from drift.errors import TicketStoreError
from drift.findings import Finding, Severity

__all__ = [
    "ACTIONS",
    "SCHEMA_VERSION",
    "Action",
    "EventKind",
    "Ticket",
    "TicketEvent",
    "TicketStatus",
    "TicketStore",
]

Action: TypeAlias = Literal["ticket", "human_review"]
EventKind: TypeAlias = Literal["opened", "updated", "reopened"]

ACTIONS: Final[tuple[str, ...]] = ("ticket", "human_review")
"""The routing actions a ticket can carry (``routing[].action`` in the YAML)."""

SCHEMA_VERSION: Final = 1
"""Stored in ``PRAGMA user_version``; a newer file is refused, not misread."""

TICKET_PREFIX: Final = "DRIFT-"

_ID_PATTERN: Final = re.compile(r"DRIFT-([1-9][0-9]*)")

# How long a writer waits for another worker's transaction before failing.
# Records are a handful of small statements, so seconds of waiting means a
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
        }


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """A change to a ticket caused by recording a finding."""

    kind: EventKind
    ticket: Ticket
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping: ``{"kind", "at", "ticket"}``."""
        return {"kind": self.kind, "at": self.at.isoformat(), "ticket": self.ticket.to_dict()}


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
    return int(match.group(1))


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


_STATUS_LIST: Final = ", ".join(f"'{s.value}'" for s in TicketStatus)

# One statement per item: `executescript` would commit the surrounding
# transaction, and the schema must be created under the same lock as the
# version check so two workers starting together cannot race.
_SCHEMA: Final[tuple[str, ...]] = (
    # `seq` is AUTOINCREMENT so an id is never reused, even after rows are
    # deleted: ids are printed in alerts and must keep naming one problem.
    f"""
    CREATE TABLE IF NOT EXISTS tickets (
        seq                INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint        TEXT    NOT NULL,
        status             TEXT    NOT NULL CHECK (status IN ({_STATUS_LIST})),
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
        worst_value        REAL    NOT NULL,
        last_value         REAL    NOT NULL,
        last_finding       TEXT    NOT NULL
    )
    """,
    # At most one live (not resolved) ticket per problem, whatever any writer
    # does; `record` relies on BEGIN IMMEDIATE, this catches the rest.
    """
    CREATE UNIQUE INDEX IF NOT EXISTS tickets_live_fingerprint
        ON tickets (fingerprint) WHERE status != 'resolved'
    """,
    "CREATE INDEX IF NOT EXISTS tickets_status ON tickets (status)",
    # Keyed by fingerprint rather than ticket, so a window replayed after its
    # ticket was resolved is still recognised and does not reopen it.
    """
    CREATE TABLE IF NOT EXISTS ticket_windows (
        fingerprint  TEXT    NOT NULL,
        window_start TEXT    NOT NULL,
        window_end   TEXT    NOT NULL,
        ticket_seq   INTEGER NOT NULL REFERENCES tickets (seq),
        value        REAL    NOT NULL,
        severity     TEXT    NOT NULL,
        recorded_at  TEXT    NOT NULL,
        PRIMARY KEY (fingerprint, window_start)
    ) WITHOUT ROWID
    """,
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


def _ticket_from_row(row: sqlite3.Row) -> Ticket:
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
    )


def _initial_status(action: Action) -> TicketStatus:
    return TicketStatus.PENDING_REVIEW if action == "human_review" else TicketStatus.OPEN


class TicketStore:
    """Tickets in one SQLite file, shared by every worker process.

    Open it with :meth:`open`. A store holds one connection and is used from
    the thread that opened it; each worker opens its own store on the same
    file, and SQLite's lock (WAL mode, with a busy timeout) orders them.

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
    >>> first.kind, first.ticket.id, first.ticket.status.value, again
    ('opened', 'DRIFT-1', 'open', None)
    """

    __slots__ = ("_conn", "_now", "_path")

    def __init__(self, conn: sqlite3.Connection, path: Path, now: Callable[[], datetime]) -> None:
        # Use `open`: it prepares the connection and the schema first.
        self._conn = conn
        self._path = path
        self._now = now

    @classmethod
    def open(cls, path: str | Path, now: Callable[[], datetime] = _utc_now) -> TicketStore:
        """Open the ticket store at ``path``, creating file and schema if needed.

        Parameters
        ----------
        path
            The SQLite file. Missing parent folders are created.
        now
            Wall clock for ``opened_at`` / ``updated_at`` and event times; it
            must return timezone-aware datetimes. Injected so tests are
            deterministic.

        Returns
        -------
        TicketStore
            Open until :meth:`close` (or the end of a ``with`` block).

        Raises
        ------
        TicketStoreError
            The file cannot be opened, is not a SQLite database, or was
            written by a newer schema; the message names the path and cause.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None turns off the module's implicit
            # transactions, so `_transaction` alone decides where one starts.
            conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise TicketStoreError(f"cannot open ticket store {str(path)!r}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        store = cls(conn, path, now)
        try:
            store._prepare()
        except BaseException:
            conn.close()
            raise
        return store

    def _prepare(self) -> None:
        conn = self._conn
        try:
            # The busy timeout comes first: switching to WAL needs a lock that
            # another worker opening the same file may hold for a moment.
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            # WAL lets readers (the CLI, other workers) run beside the one
            # writer. `synchronous` keeps its default (FULL): a committed window
            # must survive a power cut, or the stream could resume past events
            # whose tickets were lost.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise TicketStoreError(f"cannot open ticket store {str(self._path)!r}: {exc}") from exc
        with self._transaction("open") as tx:
            version = int(tx.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise TicketStoreError(
                    f"cannot open ticket store {str(self._path)!r}: its schema version "
                    f"{version} is newer than this drift supports ({SCHEMA_VERSION})"
                )
            for statement in _SCHEMA:
                tx.execute(statement)

    @property
    def path(self) -> Path:
        """The SQLite file this store writes."""
        return self._path

    def close(self) -> None:
        """Close the connection; calling it again does nothing."""
        self._conn.close()

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
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock before the first read, so the
        # "is there a live ticket?" check and the insert that follows cannot
        # interleave with another worker's: there is no window for a duplicate.
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise TicketStoreError(
                f"cannot {doing} ticket store {str(self._path)!r}: {exc}"
            ) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the failed statement may have rolled back already
            if isinstance(exc, sqlite3.Error):
                raise TicketStoreError(
                    f"cannot {doing} ticket store {str(self._path)!r}: {exc}"
                ) from exc
            raise

    def _clock(self) -> tuple[datetime, str]:
        at = self._now()
        text = _time_text(at, "the store's clock now()")
        return at.astimezone(UTC), text

    def record(self, finding: Finding, action: str = "ticket") -> TicketEvent | None:
        """Record ``finding`` on its fingerprint's ticket.

        Parameters
        ----------
        finding
            An alerting finding (policy decides which findings get here).
            Its window times must be timezone-aware.
        action
            The routing action, ``"ticket"`` or ``"human_review"``. It sets
            the status of a new or reopened ticket (``open`` or
            ``pending_review``); a live ticket keeps its status and action,
            which only the lifecycle (review, resolution) changes.

        Returns
        -------
        TicketEvent or None
            ``opened`` when the fingerprint has no ticket yet, ``updated``
            when it has a live one, ``reopened`` when all its tickets are
            resolved (the latest is reopened and keeps its history). None
            when this fingerprint's window was already recorded: replaying
            after a crash neither double counts nor emits a second event.

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
        window_start = _time_text(finding.window.start, f"finding {fingerprint} window start")
        window_end = _time_text(finding.window.end, f"finding {fingerprint} window end")
        try:
            payload = json.dumps(finding.to_dict(), sort_keys=True, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise TicketStoreError(
                f"cannot record finding {fingerprint} (detector {finding.detector!r}, "
                f"feature {finding.feature!r}): evidence is not JSON serialisable: {exc}"
            ) from exc
        at, at_text = self._clock()

        with self._transaction("write") as tx:
            seen = tx.execute(
                "SELECT 1 FROM ticket_windows WHERE fingerprint = ? AND window_start = ?",
                (fingerprint, window_start),
            ).fetchone()
            if seen is not None:
                return None

            row = tx.execute(
                "SELECT * FROM tickets WHERE fingerprint = ? AND status != ?",
                (fingerprint, TicketStatus.RESOLVED.value),
            ).fetchone()
            kind: EventKind
            if row is not None:
                kind = "updated"
                status, stored_action = TicketStatus(row["status"]), _as_action(row["action"])
            else:
                row = tx.execute(
                    "SELECT * FROM tickets WHERE fingerprint = ? ORDER BY seq DESC LIMIT 1",
                    (fingerprint,),
                ).fetchone()
                kind = "opened" if row is None else "reopened"
                status, stored_action = _initial_status(checked_action), checked_action

            if row is None:
                cursor = tx.execute(
                    """
                    INSERT INTO tickets (
                        fingerprint, status, action, model, cohort, cohort_key,
                        detector, feature, severity, first_window_start,
                        last_window_end, opened_at, updated_at, occurrences,
                        worst_value, last_value, last_finding
                    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)
                    """,
                    (
                        fingerprint,
                        status.value,
                        stored_action,
                        finding.cohort.model,
                        json.dumps(finding.cohort.to_dict(), sort_keys=True),
                        finding.cohort.key,
                        finding.detector,
                        finding.feature,
                        finding.severity.value,
                        window_start,
                        window_end,
                        at_text,
                        at_text,
                        finding.value,
                        finding.value,
                        payload,
                    ),
                )
                seq = int(cursor.lastrowid or 0)
            else:
                seq = int(row["seq"])
                first_start = min(_parse_time(row["first_window_start"]), finding.window.start)
                last_end = _parse_time(row["last_window_end"])
                # Windows can arrive out of order (late data, replay, another
                # worker); "last" means latest in event time, not latest written.
                is_latest = finding.window.end >= last_end
                tx.execute(
                    """
                    UPDATE tickets SET
                        status = ?, action = ?, severity = ?,
                        first_window_start = ?, last_window_end = ?,
                        updated_at = ?, occurrences = occurrences + 1,
                        worst_value = max(worst_value, ?),
                        last_value = ?, last_finding = ?
                    WHERE seq = ?
                    """,
                    (
                        status.value,
                        stored_action,
                        _worse(Severity(row["severity"]), finding.severity).value,
                        _time_text(first_start, "first window start"),
                        window_end if is_latest else row["last_window_end"],
                        at_text,
                        finding.value,
                        finding.value if is_latest else row["last_value"],
                        payload if is_latest else row["last_finding"],
                        seq,
                    ),
                )
            tx.execute(
                """
                INSERT INTO ticket_windows (
                    fingerprint, window_start, window_end, ticket_seq,
                    value, severity, recorded_at
                ) VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    fingerprint,
                    window_start,
                    window_end,
                    seq,
                    finding.value,
                    finding.severity.value,
                    at_text,
                ),
            )
            ticket = self._fetch(tx, seq)
        assert ticket is not None  # written in the transaction above
        return TicketEvent(kind=kind, ticket=ticket, at=at)

    @staticmethod
    def _fetch(conn: sqlite3.Connection, seq: int) -> Ticket | None:
        row = conn.execute("SELECT * FROM tickets WHERE seq = ?", (seq,)).fetchone()
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
        try:
            ticket = self._fetch(self._conn, seq)
        except sqlite3.Error as exc:
            raise TicketStoreError(
                f"cannot read ticket {ticket_id!r} from {str(self._path)!r}: {exc}"
            ) from exc
        if ticket is None:
            raise TicketStoreError(f"no ticket {ticket_id!r} in {str(self._path)!r}")
        return ticket

    def list(self, status: TicketStatus | None = None) -> builtins.list[Ticket]:
        """All tickets, or those with ``status``, oldest id first."""
        query = "SELECT * FROM tickets ORDER BY seq"
        params: tuple[str, ...] = ()
        if status is not None:
            query = "SELECT * FROM tickets WHERE status = ? ORDER BY seq"
            params = (TicketStatus(status).value,)
        try:
            rows = self._conn.execute(query, params).fetchall()
        except sqlite3.Error as exc:
            raise TicketStoreError(f"cannot list tickets in {str(self._path)!r}: {exc}") from exc
        return [_ticket_from_row(row) for row in rows]

    def set_status(self, ticket_id: str, status: TicketStatus) -> Ticket:
        """Move ``ticket_id`` to ``status`` and return the updated ticket.

        Minimal on purpose: any move is allowed except one that would give a
        fingerprint two live tickets. The lifecycle rules (who may approve,
        which moves are legal) belong to the review module.

        Raises
        ------
        TicketStoreError
            Unknown id or status, a second live ticket for the fingerprint,
            or the store cannot be written.
        """
        seq = _parse_ticket_id(ticket_id)
        try:
            new_status = TicketStatus(status)
        except ValueError:
            options = ", ".join(s.value for s in TicketStatus)
            raise TicketStoreError(
                f"cannot set {ticket_id}: status must be one of {options}; got {status!r}"
            ) from None
        _, at_text = self._clock()
        with self._transaction("write") as tx:
            current = self._fetch(tx, seq)
            if current is None:
                raise TicketStoreError(f"no ticket {ticket_id!r} in {str(self._path)!r}")
            if current.status == new_status:
                return current
            if new_status != TicketStatus.RESOLVED:
                live = tx.execute(
                    "SELECT seq FROM tickets WHERE fingerprint = ? AND status != ? AND seq != ?",
                    (current.fingerprint, TicketStatus.RESOLVED.value, seq),
                ).fetchone()
                if live is not None:
                    raise TicketStoreError(
                        f"cannot set {ticket_id} to {new_status.value}: "
                        f"{_ticket_id(int(live['seq']))} is already live for the same problem "
                        f"(fingerprint {current.fingerprint})"
                    )
            tx.execute(
                "UPDATE tickets SET status = ?, updated_at = ? WHERE seq = ?",
                (new_status.value, at_text, seq),
            )
            updated = self._fetch(tx, seq)
        assert updated is not None  # updated in the transaction above
        return updated
