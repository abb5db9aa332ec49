"""Human review of high-impact tickets, and the retraining requests it releases.

The rules (enforced by :class:`drift.tickets.TicketStore` inside one write
transaction, so two reviewers acting at once cannot both slip past them):

* A ticket routed to ``human_review`` enters ``pending_review`` when it opens
  or reopens; its *requester* is :data:`drift.tickets.SYSTEM_IDENTITY`
  (``drift``). A person can send an ``open`` ticket to review with
  ``drift review request ID --requester NAME``; that person is the requester.
* The requester never approves. Each reviewer counts once per review round.
* A routing rule's ``approvals: N`` needs N distinct approvers (dual control
  with 2). The N-th approval moves the ticket to ``approved`` and writes a
  retraining request with the ticket's whole context to the store's outbox,
  in the same transaction: an approval without its request cannot happen.
* One rejection (with a comment) moves the ticket to ``rejected``.

The outbox is then published to ``kafka.retrain_topic`` by
:func:`publish_outbox`; what cannot be sent stays in the outbox for the next
try (``drift review publish``), and every request carries a stable ``key``
so a consumer can drop the duplicate of a retried send.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from drift.tickets import RetrainRequest, Ticket, TicketStatus, TicketStore, canonical_json

__all__ = ["PendingReview", "PublishResult", "Sender", "pending_reviews", "publish_outbox"]

Sender = Callable[[Sequence[tuple[str, bytes]]], set[str]]
"""Sends ``(key, JSON bytes)`` records; returns the keys that were delivered."""


@dataclass(frozen=True, slots=True)
class PendingReview:
    """A ticket waiting for review, with the approvals it has so far."""

    ticket: Ticket
    approved_by: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {**self.ticket.to_dict(), "approved_by": list(self.approved_by),
                "approvals_missing": max(0, self.ticket.approvals_required - len(self.approved_by))}


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one :func:`publish_outbox` call did."""

    published: list[str]
    pending: list[str]
    error: str | None = None


def pending_reviews(store: TicketStore) -> list[PendingReview]:
    """Tickets in ``pending_review``, oldest first, with this round's approvers."""
    out = []
    for ticket in store.list(TicketStatus.PENDING_REVIEW):
        approved = [r.reviewer for r in store.reviews(ticket.id)
                    if r.round == ticket.review_round and r.verdict == "approve"]
        out.append(PendingReview(ticket, approved))
    return out


def request_record(request: RetrainRequest) -> tuple[str, bytes]:
    """The Kafka record of a retraining request: key and canonical JSON value."""
    return request.key, canonical_json(request.payload).encode()


def publish_outbox(store: TicketStore, send: Sender, destination: str) -> PublishResult:
    """Send every unpublished retraining request; mark those delivered.

    ``send`` failing altogether (an exception) leaves everything in the
    outbox and reports why; nothing is ever dropped.
    """
    pending = store.retrain_requests(pending_only=True)
    if not pending:
        return PublishResult([], [])
    try:
        delivered = send([request_record(r) for r in pending])
    except Exception as exc:  # the transport's failure is reported, not raised
        return PublishResult([], [r.key for r in pending], f"{type(exc).__name__}: {exc}")
    published, left = [], []
    for request in pending:
        if request.key in delivered:
            store.mark_published(request.id, destination)
            published.append(request.key)
        else:
            left.append(request.key)
    return PublishResult(published, left, None if not left else "not acknowledged by the broker in time")
