"""The ticket store: every finding the policy lets through lands on its problem's ticket.

:class:`TicketStore` records findings (one ticket per fingerprint, idempotent per window),
clears them, remembers each cohort window's traffic, and keeps every ticket event in an
outbox until the sinks have it. The lifecycle and review come from
:class:`drift.tickets.lifecycle.LifecycleStore`; opening, the audit chain and reads from
:class:`drift.tickets.base.StoreBase`.
"""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from drift.config import ImpactConfig
from drift.errors import TicketStoreError
from drift.findings import Finding, Severity
from drift.policy import in_cooldown, quiet_until
from drift.tickets.context import ticket_context
from drift.tickets.database import Tx
from drift.tickets.lifecycle import LifecycleStore
from drift.tickets.model import (
    SYSTEM_IDENTITY,
    Action,
    EventKind,
    StoredTicketEvent,
    TicketEvent,
    TicketRef,
    TicketStatus,
    as_action,
    canonical_json,
    json_default,
    parse_time,
    time_text,
    worse,
)

__all__ = ["TicketStore"]


def _initial_status(action: Action) -> TicketStatus:
    return TicketStatus.PENDING_REVIEW if action == "human_review" else TicketStatus.OPEN


def _impact_dict(impact: ImpactConfig | None) -> dict[str, Any]:
    if impact is None:
        return {}
    return {"tier": impact.tier, "regulated": impact.regulated, "weight": impact.weight}


class TicketStore(LifecycleStore):
    """Tickets, reviews, retraining outbox and audit log in one database.

    Open a SQLite store with :meth:`open`; a PostgreSQL one with
    :func:`drift.tickets.postgres.open_postgres`. A store holds one connection and
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

    __slots__ = ()

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
        texts: dict[datetime, str] = {}  # a batch's windows share a few bounds: each is formatted once

        def text(moment: datetime, what: str) -> str:
            done = texts.get(moment)
            if done is None:
                done = texts[moment] = time_text(moment, what)
            return done

        rows = [
            (model, text(start, "traffic window start"), cohort_key, text(end, "traffic window end"), int(n_events))
            for model, cohort_key, start, end, n_events in windows
        ]
        if not rows:
            return
        with self._write("write") as tx:
            tx.run_many(
                "INSERT INTO window_traffic (model, window_start, cohort_key, window_end, n_events)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (model, window_start, cohort_key)"
                " DO UPDATE SET n_events = excluded.n_events, window_end = excluded.window_end",
                rows,
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
        drift_started: datetime | None = None,
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
            cooldown`` is counted in ``suppressed`` and does not reopen it
            (the policy's decision: :func:`drift.policy.in_cooldown`).
        drift_started
            The start of the first of the consecutive alerting windows that led
            to this one (:attr:`drift.policy.Decision.drift_started`). A ticket
            opened by this finding records it, with ``detected_at`` the end of
            this window; without it (or if it is later than this window's start)
            the problem is taken to start with this window.

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
        checked_action = as_action(action)
        fingerprint = finding.fingerprint
        if math.isnan(finding.value):
            # NaN is stored as NULL by SQLite and cannot rank as "worst".
            raise TicketStoreError(
                f"cannot record finding {fingerprint} (detector {finding.detector!r}, "
                f"feature {finding.feature!r}, cohort {finding.cohort.key!r}): value is NaN"
            )
        if approvals < 1:
            raise TicketStoreError(f"approvals must be >= 1; got {approvals!r}")
        window_start = time_text(finding.window.start, f"finding {fingerprint} window start")
        window_end = time_text(finding.window.end, f"finding {fingerprint} window end")
        try:
            payload = json.dumps(finding.to_dict(), sort_keys=True, default=json_default)
        except (TypeError, ValueError) as exc:
            raise TicketStoreError(
                f"cannot record finding {fingerprint} (detector {finding.detector!r}, "
                f"feature {finding.feature!r}): evidence is not JSON serialisable: {exc}"
            ) from exc
        impact_text = json.dumps(_impact_dict(impact), sort_keys=True)
        started = finding.window.start
        if drift_started is not None:
            time_text(drift_started, f"finding {fingerprint} drift start")  # refuses a naive time
            started = min(drift_started, started)
        started_text = time_text(started, f"finding {fingerprint} drift start")
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
                resolved_end = parse_time(row["last_window_end"])
                if in_cooldown(finding.window.start, resolved_end, cooldown):
                    seq = int(row["seq"])
                    self._insert_window(tx, fingerprint, window_start, window_end, seq, finding, at_text)
                    tx.run("UPDATE tickets SET suppressed = suppressed + 1 WHERE seq = ?", (seq,))
                    quiet = quiet_until(resolved_end, cooldown)
                    self._audit(tx, at_text, SYSTEM_IDENTITY, "suppressed", seq,
                                {**window_detail, "quiet_until": time_text(quiet, "quiet until")})
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
                        requester, approvals_required, review_round, impact,
                        drift_started, detected_at
                    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, 1, 0, ?, ?, ?, ?, ?, ?)
                    RETURNING seq
                    """,
                    (
                        fingerprint, status.value, checked_action, finding.cohort.model,
                        json.dumps(finding.cohort.to_dict(), sort_keys=True), finding.cohort.key,
                        finding.detector, finding.feature, finding.severity.value,
                        window_start, window_end, at_text, at_text,
                        finding.value, finding.value, payload,
                        SYSTEM_IDENTITY if review else None, approvals, 1 if review else 0, impact_text,
                        started_text, window_end,
                    ),
                )
                detail: dict[str, Any] = {**window_detail, "status": status.value, "action": checked_action,
                                          "approvals_required": approvals, "fingerprint": fingerprint}
            else:
                seq = int(row["seq"])
                first_start = min(parse_time(row["first_window_start"]), finding.window.start)
                last_end = parse_time(row["last_window_end"])
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
                    stored_action = as_action(row["action"])
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
                        worse(Severity(row["severity"]), finding.severity).value,
                        time_text(first_start, "first window start"),
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
            context = ticket_context(tx, ticket)
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
        person to say. The first clear of a ticket records ``recovered``, the end
        of ``finding``'s window. Returns None when there is no live, active ticket.
        """
        at, at_text = self._clock()
        window_end = time_text(finding.window.end, "clearing window end")
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
            tx.run("UPDATE tickets SET active = 0, updated_at = ?, recovered = COALESCE(recovered, ?) WHERE seq = ?",
                   (at_text, window_end, seq))
            audit_id = self._audit(tx, at_text, SYSTEM_IDENTITY, "cleared", seq,
                                   {"window_end": window_end, "value": finding.value})
            ticket = self._fetch(tx, seq)
            assert ticket is not None
            context = ticket_context(tx, ticket)
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

