"""Ticket events as JSON POSTs to a webhook, delivered off the dataflow from a disk spool.

The flow never waits on the receiver. The sink writes each ticket event to the job's
spool folder (one file per event, written atomically: temporary file, fsync, rename)
and hands its name to a bounded queue; a daemon thread of the process sends the spool
oldest first. When the queue is full the name is dropped: the file is on disk, and the
thread also looks at the spool on its own every ``drain_interval``, so a receiver that
comes back gets everything without waiting for a new ticket event.

* **One spool per job.** Every worker and process of the job writes to the same folder
  (``tickets.webhook.spool_dir``). A sender claims a file by renaming it into
  ``claimed/`` before the POST, so two processes never send the same file; a claim left
  by a dead process (or older than the longest a pass can take) goes back to the spool.
  Folders ``worker-N/`` of the earlier one-folder-per-worker layout are moved into it, so
  a job that now runs fewer workers still sends what they left.
* **Nothing is lost, nothing is sent twice after recovery.** A file is removed only after
  the receiver answered 2xx, and its key is appended to ``sent.log`` first; a key already
  sent or spooled is not spooled again. Every POST carries ``Idempotency-Key``; the one
  window left (a crash between the 2xx and the ``sent.log`` write) is the receiver's to
  deduplicate with it.
* **Retries.** 408, 425, 429, 5xx and connection errors or timeouts are retried
  (``max_attempts`` per pass, exponential backoff from ``backoff`` with as much random
  jitter, at most a minute, by tenacity). A pass stops at the first event it cannot
  deliver, which keeps the order, and the next pass comes ``drain_interval`` later.
* **Rejections.** Any other answer (a redirect, which is never followed, so the token
  never goes to another host; another 4xx) will not change by retrying: the file moves to
  ``rejected/`` with a ``.reason`` holding the status, it is counted in
  ``drift_webhook_rejected_total{status}`` and said on stderr, and the queue moves on.

The token comes from the environment (the config's ``${VAR}``), is sent as
``Authorization: Bearer`` and never appears in errors or logs.

Modules: :mod:`connectors.webhook.spool` (the spool folder), :mod:`connectors.webhook.delivery`
(the sending thread) and :mod:`connectors.webhook.sink` (the Bytewax sink).
"""

from __future__ import annotations

from connectors.webhook.delivery import DeliveryReport, WebhookDelivery
from connectors.webhook.sink import ticket_event_sink
from connectors.webhook.spool import Spool

__all__ = ["DeliveryReport", "Spool", "WebhookDelivery", "ticket_event_sink"]
