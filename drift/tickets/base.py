"""The ticket store's foundation: its connection, schema, transactions, audit chain and reads.

:class:`drift.tickets.TicketStore` builds on :class:`StoreBase`
(:mod:`drift.tickets.lifecycle` adds the status moves and review,
:mod:`drift.tickets.store` the recording of findings).
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from drift.errors import TicketStoreError
from drift.findings import Severity
from drift.tickets.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditKey,
    AuditReport,
    HeadFile,
    audit_hash,
    audit_mac,
    default_head_file,
    key_lookup,
    verify,
)
from drift.tickets.context import ticket_context
from drift.tickets.database import Database, Row, Tx
from drift.tickets.model import (
    Ticket,
    TicketStatus,
    TicketTimeline,
    as_action,
    canonical_json,
    format_ticket_id,
    parse_ticket_id,
    parse_time,
    time_text,
    utc_now,
)
from drift.tickets.schema import migrate
from drift.tickets.sqlite import SqliteDatabase

__all__ = ["StoreBase"]


def _time_or_none(row: Row, name: str) -> datetime | None:
    text = row.get(name)
    return None if text is None else parse_time(text)


def _ticket_from_row(row: Row) -> Ticket:
    resolved = row.get("resolved_at")
    return Ticket(
        id=format_ticket_id(int(row["seq"])),
        fingerprint=str(row["fingerprint"]),
        status=TicketStatus(row["status"]),
        action=as_action(row["action"]),
        model=str(row["model"]),
        cohort=json.loads(row["cohort"]),
        cohort_key=str(row["cohort_key"]),
        detector=str(row["detector"]),
        feature=row["feature"],
        severity=Severity(row["severity"]),
        first_window_start=parse_time(row["first_window_start"]),
        last_window_end=parse_time(row["last_window_end"]),
        opened_at=parse_time(row["opened_at"]),
        updated_at=parse_time(row["updated_at"]),
        occurrences=int(row["occurrences"]),
        worst_value=float(row["worst_value"]),
        last_value=float(row["last_value"]),
        last_finding=json.loads(row["last_finding"]),
        active=bool(row["active"]),
        suppressed=int(row["suppressed"]),
        resolved_at=None if resolved is None else parse_time(resolved),
        requester=row["requester"],
        approvals_required=int(row["approvals_required"]),
        review_round=int(row["review_round"]),
        impact=json.loads(row["impact"]),
        drift_started=_time_or_none(row, "drift_started"),
        detected_at=_time_or_none(row, "detected_at"),
        acknowledged_at=_time_or_none(row, "acknowledged_at"),
        recovered=_time_or_none(row, "recovered"),
    )


def _timeline_from_row(row: Row) -> TicketTimeline:
    return TicketTimeline(
        format_ticket_id(int(row["seq"])), str(row["model"]), str(row["detector"]),
        _time_or_none(row, "drift_started"), _time_or_none(row, "detected_at"), parse_time(row["opened_at"]),
        _time_or_none(row, "acknowledged_at"), _time_or_none(row, "recovered"), _time_or_none(row, "resolved_at"),
    )



class StoreBase:
    """One database holding tickets, reviews, outboxes and the audit log: opening and reading it.

    A store holds one connection and is used from the thread that opened it;
    each worker opens its own. Use :class:`drift.tickets.TicketStore`.
    """

    __slots__ = ("_db", "_head", "_heads", "_key", "_now")

    def __init__(self, db: Database, now: Callable[[], datetime] = utc_now, *,
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
    def open(cls, path: str | Path, now: Callable[[], datetime] = utc_now, *,
             audit_key: AuditKey | None | Literal["env"] = "env",
             head_file: str | Path | None | Literal["default"] = "default") -> Self:
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
            See :meth:`__init__`; the head file defaults to
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
            migrate(self._db, tx)

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

    def __enter__(self) -> Self:
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
        text = time_text(at, "the store's clock now()")
        return at.astimezone(UTC), text

    # ------------------------------------------------------------------ audit

    def _audit(
        self, tx: Tx, at_text: str, actor: str, action: str, seq: int | None,
        detail: Mapping[str, Any],
    ) -> int:
        last = tx.one("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
        entry_id = 1 if last is None else int(last["id"]) + 1
        prev = GENESIS_HASH if last is None else str(last["hash"])
        ticket_id = None if seq is None else format_ticket_id(seq)
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
                parse_ticket_id(ticket_id)
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
        state, every review verdict and every retraining request as stored
        (:func:`drift.tickets.audit.verify`).
        """
        keys = key_lookup(self._key) if keys is None else dict(keys)
        with self._db.read("verify the audit log of") as tx:
            rows = tx.all("SELECT * FROM audit_log ORDER BY id")
            tickets = tx.all("SELECT * FROM tickets ORDER BY seq")
            reviews = tx.all("SELECT * FROM ticket_reviews")
            outbox = tx.all("SELECT * FROM retrain_outbox ORDER BY id")
        return verify(rows, tickets, reviews, outbox, format_ticket_id, keys, self._head)

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _fetch(tx: Tx, seq: int) -> Ticket | None:
        row = tx.one("SELECT * FROM tickets WHERE seq = ?", (seq,))
        return None if row is None else _ticket_from_row(row)

    def _existing(self, tx: Tx, seq: int, ticket_id: str) -> Ticket:
        """Ticket ``seq``; a missing one is a :class:`TicketStoreError` naming ``ticket_id`` and the store."""
        ticket = self._fetch(tx, seq)
        if ticket is None:
            raise TicketStoreError(f"no ticket {ticket_id!r} in {self._db.location!r}")
        return ticket

    def get(self, ticket_id: str) -> Ticket:
        """The ticket called ``ticket_id`` (``DRIFT-17``).

        Raises
        ------
        TicketStoreError
            No such ticket (the message names the id), or the store cannot
            be read.
        """
        seq = parse_ticket_id(ticket_id)
        with self._db.read(f"read ticket {ticket_id!r} from") as tx:
            return self._existing(tx, seq, ticket_id)

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

    def timelines(self, after: int = 0) -> tuple[int, builtins.list[TicketTimeline]]:
        """The timelines of the tickets changed since audit entry ``after``, and the newest entry id read.

        Every change to a ticket writes an audit entry and points the ticket at it, and
        entries are numbered under the write lock, so passing back the id returned reads
        only what changed since (the timing histograms, :class:`drift.metrics.TicketTimings`).
        """
        with self._db.read("read ticket timelines from") as tx:
            rows = tx.all(
                "SELECT seq, model, detector, drift_started, detected_at, opened_at, acknowledged_at, recovered,"
                " resolved_at, audit_id FROM tickets WHERE audit_id > ? ORDER BY seq", (int(after),))
        newest = max((int(r["audit_id"]) for r in rows), default=int(after))
        return newest, [_timeline_from_row(row) for row in rows]

    def context(self, ticket_id: str) -> dict[str, Any]:
        """Everything a reviewer needs about ``ticket_id``, computed now.

        ``{"cohort", "windows", "traffic", "findings", "baseline", "impact",
        "countermeasures", "reviews"}``: see docs/tickets.md for each field.
        """
        seq = parse_ticket_id(ticket_id)
        with self._db.read(f"read ticket {ticket_id!r} from") as tx:
            return ticket_context(tx, self._existing(tx, seq, ticket_id))

