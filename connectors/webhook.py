"""Ticket events as JSON POSTs to a webhook, with a disk spool so nothing is lost.

Delivery is *spool first*: an event is written to the spool folder (atomically:
temporary file, fsync, rename) before the first attempt, and removed only after
the receiver answered 2xx. So:

* **nothing is lost**: a receiver that is down, or a crash, leaves the event
  in the spool; the next :meth:`WebhookDelivery.deliver_pending` (the next
  batch, or the next start) sends it, oldest first.
* **nothing is sent twice after recovery**: a delivered key is appended to
  ``sent.log`` before its spool file is removed, and a key already sent or
  spooled is not spooled again. Every POST carries ``Idempotency-Key: <ticket
  event id>``, so the one window left (a crash between the receiver's 2xx and
  the ``sent.log`` write) is deduplicated by the receiver.

Retries back off exponentially (``backoff``, doubled per attempt, capped at a
minute). A 4xx other than 408/429 will not succeed by retrying: the event is
moved to ``rejected/`` with the receiver's answer, kept for a person to look at,
and the queue moves on. The token comes from the environment (the config's
``${VAR}``) and is sent as ``Authorization: Bearer``; it never appears in errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["DeliveryReport", "WebhookDelivery"]

_MAX_DELAY_S: Final = 60.0
_RETRYABLE_4XX: Final = frozenset({408, 425, 429})


@dataclass
class DeliveryReport:
    """What one :meth:`WebhookDelivery.deliver_pending` call did."""

    delivered: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    pending: int = 0
    error: str | None = None


class WebhookDelivery:
    """Spooled, retried, idempotent POSTs of JSON documents to one URL.

    One instance per spool folder: two writers on one folder could send the
    same file. The flow gives each worker its own folder.
    """

    def __init__(
        self,
        url: str,
        spool_dir: str | Path,
        token: str | None = None,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.spool = Path(spool_dir)
        self._token = token
        self._timeout_s = timeout_s
        self._max_attempts = max(1, max_attempts)
        self._backoff_s = backoff_s
        self._sleep = sleep
        (self.spool / "rejected").mkdir(parents=True, exist_ok=True)
        self._sent_log = self.spool / "sent.log"
        self._sent: set[str] = set()
        if self._sent_log.exists():
            self._sent = {line for line in self._sent_log.read_text(encoding="utf-8").splitlines() if line}

    # -------------------------------------------------------------- spool

    def _pending_files(self) -> list[Path]:
        return sorted(self.spool.glob("*.json"))

    def _spooled_keys(self) -> set[str]:
        keys = set()
        for path in self._pending_files():
            try:
                keys.add(json.loads(path.read_bytes())["key"])
            except (OSError, ValueError, KeyError):
                continue
        return keys

    def submit(self, key: str, document: dict[str, Any]) -> bool:
        """Spool ``document`` under idempotency ``key``; False when the key was seen before."""
        if key in self._sent or key in self._spooled_keys():
            return False
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        name = f"{time.time_ns():020d}-{digest}"
        data = json.dumps({"key": key, "document": document}, sort_keys=True).encode()
        tmp = self.spool / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.spool / f"{name}.json")
        return True

    @property
    def n_pending(self) -> int:
        return len(self._pending_files())

    # -------------------------------------------------------------- sending

    def _post(self, key: str, body: bytes) -> tuple[int | None, str]:
        headers = {"Content-Type": "application/json", "Idempotency-Key": key, "User-Agent": "drift-webhook"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return int(response.status), ""
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.reason if isinstance(exc.reason, str) else str(exc.reason)
        except (urllib.error.URLError, OSError) as exc:
            return None, str(getattr(exc, "reason", exc))

    def _mark_sent(self, key: str) -> None:
        with open(self._sent_log, "a", encoding="utf-8") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._sent.add(key)

    def deliver_pending(self) -> DeliveryReport:
        """Send spooled documents oldest first; stop at the first that cannot be delivered.

        Stopping keeps the order: a later event never overtakes an earlier
        one of the same ticket.
        """
        report = DeliveryReport()
        for path in self._pending_files():
            try:
                spooled = json.loads(path.read_bytes())
                key = str(spooled["key"])
            except (OSError, ValueError, KeyError) as exc:
                path.rename(self.spool / "rejected" / path.name)
                report.error = f"unreadable spool file {path.name}: {exc}"
                continue
            if key in self._sent:
                path.unlink()
                continue
            body = json.dumps(spooled["document"], sort_keys=True).encode()
            status: int | None = None
            reason = ""
            for attempt in range(self._max_attempts):
                if attempt:
                    self._sleep(min(self._backoff_s * 2 ** (attempt - 1), _MAX_DELAY_S))
                status, reason = self._post(key, body)
                if status is not None and (200 <= status < 300 or (400 <= status < 500 and status not in _RETRYABLE_4XX)):
                    break
            if status is not None and 200 <= status < 300:
                self._mark_sent(key)
                path.unlink()
                report.delivered.append(key)
            elif status is not None and 400 <= status < 500 and status not in _RETRYABLE_4XX:
                target = self.spool / "rejected" / path.name
                path.rename(target)
                target.with_suffix(".reason").write_text(f"HTTP {status}: {reason}\n", encoding="utf-8")
                report.rejected.append(key)
            else:
                report.error = (f"POST {self.url} failed after {self._max_attempts} attempt(s): "
                                f"{'HTTP ' + str(status) if status is not None else reason}")
                break
        report.pending = self.n_pending
        return report


def ticket_event_sink(delivery_for_worker: Callable[[int], WebhookDelivery]) -> Any:
    """A Bytewax sink POSTing ticket events; each worker spools in its own folder."""
    from bytewax.outputs import DynamicSink, StatelessSinkPartition

    from drift.tickets import TicketEvent

    class _Partition(StatelessSinkPartition[TicketEvent]):
        def __init__(self, delivery: WebhookDelivery) -> None:
            self._delivery = delivery

        def write_batch(self, items: list[TicketEvent]) -> None:
            for event in items:
                self._delivery.submit(event.id, event.to_dict())
            # Failures stay spooled and are retried with the next batch.
            self._delivery.deliver_pending()

    class _Sink(DynamicSink[TicketEvent]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
            return _Partition(delivery_for_worker(worker_index))

    return _Sink()
