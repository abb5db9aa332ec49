"""Open the ticket store that ``tickets.store`` names: SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from drift.config import Config
from drift.tickets import TicketStore


def _utc_now() -> datetime:
    return datetime.now(UTC)


def open_store(config: Config, now: Callable[[], datetime] = _utc_now) -> TicketStore:
    """The store of ``config``: ``sqlite:///PATH`` (relative to the config) or ``postgresql://``."""
    path = config.ticket_store_path()
    head = None if config.tickets.audit_head is None else config.resolve(config.tickets.audit_head)
    if path is not None:
        return TicketStore.open(path, now=now, head_file="default" if head is None else head)
    from drift.tickets.postgres import open_postgres

    return open_postgres(config.tickets.store, now=now, head_file=head)
