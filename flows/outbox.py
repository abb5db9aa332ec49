"""Ticket events published from the ticket store's outbox.

A ticket change and its event are written in one transaction (``ticket_outbox`` in
:mod:`drift.tickets`). The flow hands each event to its sinks (Kafka topic, webhook, the
run's summary) and marks it published only once every sink's ``write_batch`` returned,
that is, once the broker acknowledged it or the sink spilled it to disk. What a crash
left unmarked, between the store and the sinks, is published again when the job starts
(:class:`PendingTicketEvents`), with its original id: delivery is at least once, and the
ids let receivers drop a repeat.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from drift.errors import TicketStoreError
from drift.tickets import StoredTicketEvent, TicketStore

log = logging.getLogger(__name__)


class _PendingPartition(StatelessSourcePartition[StoredTicketEvent]):
    def __init__(self, open_store: Callable[[], TicketStore], first: bool) -> None:
        self._open_store = open_store
        self._done = not first

    def next_batch(self) -> list[StoredTicketEvent]:
        if self._done:
            raise StopIteration
        self._done = True
        try:
            with self._open_store() as store:
                pending = store.pending_events()
        except TicketStoreError as exc:
            log.warning("cannot read the ticket outbox; unpublished ticket events wait for the next start: %s", exc)
            return []
        if pending:
            log.warning("publishing %d ticket event(s) stored but not published before the last stop", len(pending))
        return pending


class PendingTicketEvents(DynamicSource[StoredTicketEvent]):
    """The outbox's unpublished ticket events, once, from the first worker of each process."""

    def __init__(self, open_store: Callable[[], TicketStore]) -> None:
        self._open_store = open_store

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PendingPartition:
        return _PendingPartition(self._open_store, worker_index == 0)


class _PublishedPartition(StatelessSinkPartition[Any]):
    def __init__(self, inner: StatelessSinkPartition[Any], open_store: Callable[[], TicketStore]) -> None:
        self._inner = inner
        self._open_store = open_store
        self._store: TicketStore | None = None
        self._lock = threading.Lock()

    def write_batch(self, items: list[Any]) -> None:
        self._inner.write_batch(items)
        ids = [item.id for item in items if getattr(item, "id", "")]
        if not ids:
            return
        with self._lock:
            try:
                if self._store is None:
                    self._store = self._open_store()
                self._store.mark_events_published(ids)
            except TicketStoreError as exc:
                # Not marked: published again at the next start (same ids), never lost.
                log.warning("cannot mark %d ticket event(s) published: %s", len(ids), exc)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            if self._store is not None:
                self._store.close()


class PublishedSink(DynamicSink[Any]):
    """``inner`` (the ticket sinks), then each written event marked published in the outbox."""

    def __init__(self, inner: DynamicSink[Any], open_store: Callable[[], TicketStore]) -> None:
        self.inner = inner
        self._open_store = open_store

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PublishedPartition:
        return _PublishedPartition(self.inner.build(step_id, worker_index, worker_count), self._open_store)
