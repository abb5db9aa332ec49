"""The Bytewax sink of ticket events: each event spooled, and one delivery thread per spool
folder shared by the flows of a process.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.webhook.delivery import WebhookDelivery


_SHARED: dict[Path, list[Any]] = {}
_SHARED_LOCK = threading.Lock()


def _acquire(spool: Path, make: Callable[[], WebhookDelivery]) -> WebhookDelivery:
    """The process's one started delivery of ``spool`` (workers are threads of a process)."""
    with _SHARED_LOCK:
        entry = _SHARED.get(spool)
        if entry is None:
            entry = _SHARED[spool] = [make().start(), 0]
        entry[1] += 1
        delivery = entry[0]
        assert isinstance(delivery, WebhookDelivery)
        return delivery


def _release(spool: Path, flush_timeout_s: float) -> None:
    with _SHARED_LOCK:
        entry = _SHARED.get(spool)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _SHARED[spool]
    delivery = entry[0]
    assert isinstance(delivery, WebhookDelivery)
    left = delivery.close(flush_timeout_s)
    if left:
        print(f"webhook: {left} ticket event(s) not yet accepted after waiting {flush_timeout_s:g}s; "
              f"they wait in {delivery.spool.root} for the next run", file=sys.stderr)


def ticket_event_sink(
    spool: Path,
    open_delivery: Callable[[], WebhookDelivery],
    store_id: Callable[[], str],
    flush_timeout_s: float,
) -> Any:
    """A Bytewax sink that spools ticket events for the process's delivery thread.

    The idempotency key of an event is ``<store id>:<ticket id>:<audit id>``
    (:meth:`drift.tickets.TicketStore.store_id`): stable for one event, distinct
    between stores. It is also the body's ``idempotency_key``. When the dataflow ends,
    the last partition of the process waits up to ``flush_timeout_s`` for the receiver.
    """
    from bytewax.outputs import DynamicSink, StatelessSinkPartition

    from drift.tickets import TicketEvent

    class _Partition(StatelessSinkPartition[TicketEvent]):
        def __init__(self) -> None:
            self._delivery = _acquire(spool, open_delivery)
            self._store_id = store_id()

        def write_batch(self, items: list[TicketEvent]) -> None:
            for event in items:
                key = f"{self._store_id}:{event.id}"
                self._delivery.submit(key, {**event.to_dict(), "idempotency_key": key})

        def close(self) -> None:
            _release(spool, flush_timeout_s)

    class _Sink(DynamicSink[TicketEvent]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
            return _Partition()

    return _Sink()
