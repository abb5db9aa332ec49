"""The ticket lifecycle in the store: status moves, review, and the retraining outbox.

Every move follows :data:`drift.tickets.TRANSITIONS` inside one write transaction, so
two people acting at once cannot both slip past a rule; the rules for people (who may
review what) are in :mod:`drift.tickets.review`.
"""

from __future__ import annotations

import builtins
import json

from drift.errors import ReviewError, TicketStoreError, TransitionError
from drift.identity import same_person
from drift.tickets.base import StoreBase
from drift.tickets.context import ticket_context
from drift.tickets.database import Tx
from drift.tickets.model import (
    REVIEW_ONLY,
    SYSTEM_IDENTITY,
    TRANSITIONS,
    RetrainRequest,
    Review,
    Ticket,
    TicketStatus,
    admin_detail,
    canonical_json,
    check_identity,
    format_ticket_id,
    parse_ticket_id,
    parse_time,
)

__all__ = ["LifecycleStore"]


class LifecycleStore(StoreBase):
    """:class:`StoreBase` with the moves people make: status, review, retraining requests."""

    __slots__ = ()

    @staticmethod
    def _acknowledge(tx: Tx, seq: int, at_text: str) -> None:
        """Record the first thing a person did on ticket ``seq`` (``acknowledged_at``, written once)."""
        tx.run("UPDATE tickets SET acknowledged_at = COALESCE(acknowledged_at, ?) WHERE seq = ?", (at_text, seq))

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
        seq = parse_ticket_id(ticket_id)
        try:
            new_status = TicketStatus(status)
        except ValueError:
            options = ", ".join(s.value for s in TicketStatus)
            raise TicketStoreError(
                f"cannot set {ticket_id}: status must be one of {options}; got {status!r}"
            ) from None
        actor = check_identity(actor, "the actor")
        acting = admin_detail(admin)
        _, at_text = self._clock()
        with self._write("write") as tx:
            current = self._existing(tx, seq, ticket_id)
            if current.status == new_status:
                return current
            if new_status in REVIEW_ONLY:
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
            if actor != SYSTEM_IDENTITY:
                self._acknowledge(tx, seq, at_text)
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
        seq = parse_ticket_id(ticket_id)
        requester = check_identity(requester, "the requester")
        acting = admin_detail(admin)
        if approvals is not None and approvals < 1:
            raise ReviewError(f"approvals must be >= 1; got {approvals!r}")
        _, at_text = self._clock()
        with self._write("write") as tx:
            current = self._existing(tx, seq, ticket_id)
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
            self._acknowledge(tx, seq, at_text)
            self._audit(tx, at_text, requester, "review_requested", seq,
                        {"from": current.status.value, "approvals_required": required, **acting})
            updated = self._fetch(tx, seq)
        assert updated is not None
        return updated

    def _pending_review(self, tx: Tx, seq: int, ticket_id: str, verb: str) -> Ticket:
        """Ticket ``seq``, which must be pending review for ``verb`` (approve, reject)."""
        current = self._existing(tx, seq, ticket_id)
        if current.status is not TicketStatus.PENDING_REVIEW:
            raise TransitionError(f"cannot {verb} {ticket_id}: it is {current.status.value}, not pending_review")
        return current

    def reviews(self, ticket_id: str) -> builtins.list[Review]:
        """Every verdict given on ``ticket_id``, all rounds, oldest first."""
        seq = parse_ticket_id(ticket_id)
        with self._db.read("read reviews from") as tx:
            rows = tx.all("SELECT * FROM ticket_reviews WHERE ticket_seq = ? ORDER BY at, reviewer", (seq,))
        return [Review(ticket_id, int(r["round"]), str(r["reviewer"]), r["verdict"], r["comment"],
                       parse_time(r["at"])) for r in rows]

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
        seq = parse_ticket_id(ticket_id)
        reviewer = check_identity(reviewer, "the reviewer")
        acting = admin_detail(admin)
        at, at_text = self._clock()
        with self._write("write") as tx:
            current = self._pending_review(tx, seq, ticket_id, "approve")
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
            self._acknowledge(tx, seq, at_text)
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
                    "context": ticket_context(tx, ticket),
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
        seq = parse_ticket_id(ticket_id)
        reviewer = check_identity(reviewer, "the reviewer")
        acting = admin_detail(admin)
        if not comment or not comment.strip():
            raise ReviewError(f"rejecting {ticket_id} needs a comment saying why")
        _, at_text = self._clock()
        with self._write("write") as tx:
            current = self._pending_review(tx, seq, ticket_id, "reject")
            tx.run(
                "INSERT INTO ticket_reviews (ticket_seq, round, reviewer, verdict, comment, at)"
                " VALUES (?, ?, ?, 'reject', ?, ?)"
                " ON CONFLICT (ticket_seq, round, reviewer) DO UPDATE SET verdict = 'reject',"
                " comment = excluded.comment, at = excluded.at",
                (seq, current.review_round, reviewer, comment, at_text),
            )
            tx.run("UPDATE tickets SET status = ?, updated_at = ? WHERE seq = ?",
                   (TicketStatus.REJECTED.value, at_text, seq))
            self._acknowledge(tx, seq, at_text)
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
            RetrainRequest(int(r["id"]), str(r["request_key"]), format_ticket_id(int(r["ticket_seq"])),
                           parse_time(r["created_at"]), json.loads(r["payload"]),
                           None if r["published_at"] is None else parse_time(r["published_at"]))
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
