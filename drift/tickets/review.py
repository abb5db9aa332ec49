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

import getpass
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from drift.config import Config, ReviewRole
from drift.errors import ReviewError
from drift.identity import canonical, same_person
from drift.tickets.model import SYSTEM_IDENTITY, RetrainRequest, Ticket, TicketStatus, canonical_json
from drift.tickets.store import TicketStore

__all__ = [
    "REVIEWER_ENV",
    "Actor",
    "PendingReview",
    "PublishResult",
    "ReviewPolicy",
    "Sender",
    "acting_identity",
    "pending_reviews",
    "publish_outbox",
]

REVIEWER_ENV: Final = "DRIFT_REVIEWER"
"""The environment variable naming who runs a review command; the OS user when unset."""


def acting_identity(environ: Mapping[str, str] | None = None) -> str:
    """Who runs this command: ``$DRIFT_REVIEWER``, else the OS user (:func:`getpass.getuser`)."""
    env = os.environ if environ is None else environ
    name = env.get(REVIEWER_ENV, "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError) as exc:  # no login name and no passwd entry (some containers)
        raise ReviewError(f"cannot tell who you are: set {REVIEWER_ENV} ({exc})") from None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who a review action is recorded for: ``name``, and the administrator who acted for them."""

    name: str
    admin: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewPolicy:
    """The ``review:`` config applied to people: identities, roles and sensitive tickets.

    With ``review.reviewers`` declared, only those people act, each within their
    roles; without it any well-formed name acts (names are still compared as people).
    """

    reviewers: Mapping[str, frozenset[str]] | None
    sensitive_features: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: Config) -> ReviewPolicy:
        declared = config.review.reviewers
        reviewers = None if declared is None else {
            canonical(name, "reviewer name"): frozenset(r.roles) for name, r in declared.items()}
        return cls(reviewers, frozenset(config.review.sensitive_features))

    def actor(self, named: str | None, as_admin: bool, environ: Mapping[str, str] | None = None) -> Actor:
        """The person an action is recorded for.

        The caller's own identity (:func:`acting_identity`), unless ``named`` is
        someone else: that takes ``as_admin``, and, with declared reviewers, the
        ``admin`` role. The administrator is recorded with the action.
        """
        me = self._known(acting_identity(environ), "you (" + REVIEWER_ENV + " or the OS user)")
        if named is None or canonical(named, "--reviewer") == me:
            return Actor(me)
        if same_person(named, me):
            raise ReviewError(f"{named!r} is not you ({me!r}) but looks like you: give your own name or none")
        if not as_admin:
            raise ReviewError(
                f"you are {me!r} ({REVIEWER_ENV} or the OS user); acting for {named!r} needs --as-admin"
            )
        self.require(me, "admin", f"act for {named!r}")
        return Actor(self._known(named, "the named reviewer"), me)

    def _known(self, name: str, what: str) -> str:
        person = canonical(name, what)
        if person == SYSTEM_IDENTITY:
            raise ReviewError(f"{what} {name!r} is the stream job's identity, which no person may use: "
                              f"it requests the reviews the job opens and cannot approve them")
        if self.reviewers is not None and person not in self.reviewers:
            raise ReviewError(
                f"{what} {name!r} is not a declared reviewer (review.reviewers: "
                f"{', '.join(sorted(self.reviewers)) or 'none'})"
            )
        return person

    def require(self, person: str, role: ReviewRole, doing: str) -> None:
        """Refuse ``person`` without ``role`` (no check when no reviewers are declared)."""
        if self.reviewers is None:
            return
        roles = self.reviewers.get(person, frozenset())
        if role not in roles:
            raise ReviewError(
                f"{person!r} may not {doing}: it needs the role {role!r} (review.reviewers.{person}.roles: "
                f"{', '.join(sorted(roles)) or 'none'})"
            )

    def is_sensitive(self, ticket: Ticket) -> bool:
        """A ticket on a sensitive feature, or of a regulated model."""
        return ticket.feature in self.sensitive_features or bool(ticket.impact.get("regulated"))

    def review_role(self, ticket: Ticket) -> ReviewRole:
        return "approve_sensitive" if self.is_sensitive(ticket) else "approve_retraining"

    # The actions, with their roles checked before the store's own rules.

    def approve(self, store: TicketStore, ticket_id: str, actor: Actor, comment: str | None = None
                ) -> tuple[Ticket, RetrainRequest | None]:
        ticket = store.get(ticket_id)
        self.require(actor.name, self.review_role(ticket), f"approve {ticket_id}")
        return store.approve(ticket_id, actor.name, comment, admin=actor.admin)

    def reject(self, store: TicketStore, ticket_id: str, actor: Actor, comment: str) -> Ticket:
        ticket = store.get(ticket_id)
        self.require(actor.name, self.review_role(ticket), f"reject {ticket_id}")
        return store.reject(ticket_id, actor.name, comment, admin=actor.admin)

    def request(self, store: TicketStore, ticket_id: str, actor: Actor, approvals: int | None = None) -> Ticket:
        return store.request_review(ticket_id, actor.name, approvals, admin=actor.admin)

    def move(self, store: TicketStore, ticket_id: str, status: str, actor: Actor,
             comment: str | None = None) -> Ticket:
        self.require(actor.name, "resolve", f"move {ticket_id} to {status}")
        return store.set_status(ticket_id, status, actor=actor.name, comment=comment, admin=actor.admin)

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
