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
  cooldown (:func:`drift.policy.in_cooldown`) is reopened, not replaced, so its
  occurrences and worst value carry on.
* **Lifecycle is enforced.** ``open → (pending_review → approved | rejected) →
  in_progress → resolved``; any other move fails naming from and to
  (:data:`TRANSITIONS`). Approval needs distinct reviewers, never the requester.
* **Every action is audited.** Each change appends to a hash-chained,
  append-only audit log in the same transaction (:meth:`TicketStore.verify_audit`).

The modules, from values to the store:

* :mod:`~drift.tickets.model`: statuses, tickets, events, reviews, requests;
* :mod:`~drift.tickets.audit`: the audit chain, its MACs, published head and verification;
* :mod:`~drift.tickets.database`, :mod:`~drift.tickets.schema`: the database protocol and
  the versioned migrations, written once for both dialects;
* :mod:`~drift.tickets.sqlite`, :mod:`~drift.tickets.postgres`: the two databases
  (psycopg is imported only when a PostgreSQL store is opened);
* :mod:`~drift.tickets.context`: what a reviewer reads about a ticket;
* :mod:`~drift.tickets.base`, :mod:`~drift.tickets.lifecycle`, :mod:`~drift.tickets.store`:
  :class:`TicketStore`, in three layers (opening and reads; status and review; recording);
* :mod:`~drift.tickets.review`: who may review what, and publishing retraining requests.

Only the standard library is used (and psycopg for PostgreSQL); nothing is pickled.
"""

from __future__ import annotations

from drift.tickets.audit import GENESIS_HASH, AuditEntry, AuditKey, AuditReport, audit_hash, default_head_file
from drift.tickets.database import Database, Row, Tx
from drift.tickets.model import (
    ACTIONS,
    SYSTEM_IDENTITY,
    TICKET_PREFIX,
    TRANSITIONS,
    Action,
    EventKind,
    RetrainRequest,
    Review,
    StoredTicketEvent,
    Ticket,
    TicketEvent,
    TicketRef,
    TicketStatus,
    TicketTimeline,
    canonical_json,
)
from drift.tickets.schema import SCHEMA_VERSION, schema
from drift.tickets.sqlite import SqliteDatabase
from drift.tickets.store import TicketStore

__all__ = [
    "ACTIONS",
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "SYSTEM_IDENTITY",
    "TICKET_PREFIX",
    "TRANSITIONS",
    "Action",
    "AuditEntry",
    "AuditKey",
    "AuditReport",
    "Database",
    "EventKind",
    "RetrainRequest",
    "Review",
    "Row",
    "SqliteDatabase",
    "StoredTicketEvent",
    "Ticket",
    "TicketEvent",
    "TicketRef",
    "TicketStatus",
    "TicketStore",
    "TicketTimeline",
    "Tx",
    "audit_hash",
    "canonical_json",
    "default_head_file",
    "schema",
]
