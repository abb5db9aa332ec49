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
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import secrets
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from tenacity import Retrying, retry_if_result, stop_after_attempt, stop_when_event_set, wait_exponential_jitter

from drift import metrics

__all__ = ["DeliveryReport", "Spool", "WebhookDelivery", "ticket_event_sink"]

_MAX_DELAY_S: Final = 60.0
_RETRYABLE_STATUS: Final = frozenset({408, 425, 429})
_HOST: Final = socket.gethostname().replace("~", "-")
_PASS_LEASE_MARGIN_S: Final = 60.0

# Claimed files held by a live sender of this process: another sender of this process
# (a later flow in the same process) must not take them back while the POST is running.
_IN_FLIGHT: Counter[str] = Counter()
_IN_FLIGHT_LOCK = threading.Lock()


def _release_in_flight(name: str) -> None:
    # A count, not a set: senders of one process share the owner name of their claims, so a
    # sender that lost the race for a file must not clear the mark of the one that won it.
    _IN_FLIGHT[name] -= 1
    if _IN_FLIGHT[name] <= 0:
        del _IN_FLIGHT[name]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class Spool:
    """The folder of ticket events that wait for the receiver, shared by the whole job.

    Pending events are ``<time_ns>-<key digest>.json`` in the folder itself (the name
    sorts oldest first); ``claimed/<owner>~<name>`` is an event being sent by
    ``owner`` (``pid@host``); ``rejected/`` holds what the receiver refused, next to a
    ``.reason``; ``sent.log`` lists the keys delivered, one a line.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.claimed = self.root / "claimed"
        self.rejected = self.root / "rejected"
        self.claimed.mkdir(parents=True, exist_ok=True)
        self.rejected.mkdir(parents=True, exist_ok=True)
        self._sent_log = self.root / "sent.log"
        self._sent: set[str] = set()
        self._sent_offset = 0
        self._lock = threading.Lock()
        self.owner = f"{os.getpid()}@{_HOST}"
        self.adopt_legacy()

    # ---------------------------------------------------------------- layout

    def adopt_legacy(self) -> int:
        """Move the events of ``worker-N/`` folders (the earlier layout) into this spool."""
        moved = 0
        for folder in sorted(self.root.glob("worker-*")):
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.json")):
                try:
                    os.replace(path, self.root / path.name)
                    moved += 1
                except FileNotFoundError:
                    continue  # another process took it first
            log = folder / "sent.log"
            taking = folder / f"sent.log.adopting-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                os.replace(log, taking)
            except FileNotFoundError:
                pass
            else:
                with open(self._sent_log, "ab") as handle:
                    text = taking.read_bytes()
                    handle.write(text if not text or text.endswith(b"\n") else text + b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                taking.unlink()
            for path in sorted((folder / "rejected").glob("*")):
                try:
                    os.replace(path, self.rejected / path.name)
                except FileNotFoundError:
                    continue
            for empty in (folder / "rejected", folder):
                try:
                    empty.rmdir()
                except OSError:
                    pass
        return moved

    # ---------------------------------------------------------------- reading

    def pending(self) -> list[Path]:
        """Events not yet claimed, oldest first."""
        return sorted(self.root.glob("*.json"))

    def _claimed(self) -> list[Path]:
        return sorted(self.claimed.glob("*~*.json"))

    def depth(self) -> int:
        """Events waiting: pending and claimed (being sent)."""
        return len(self.pending()) + len(self._claimed())

    def oldest_age_s(self, now_ns: int | None = None) -> float:
        """Seconds since the oldest waiting event was spooled; 0 when none waits."""
        names = [path.name for path in self.pending()] + [path.name.split("~", 1)[1] for path in self._claimed()]
        stamps = [int(name.split("-", 1)[0]) for name in names if name.split("-", 1)[0].isdigit()]
        if not stamps:
            return 0.0
        now = time.time_ns() if now_ns is None else now_ns
        return max(0.0, (now - min(stamps)) / 1e9)

    def sent(self, key: str) -> bool:
        """Whether ``key`` was delivered (by any process of the job)."""
        with self._lock:
            try:
                with open(self._sent_log, "rb") as handle:
                    handle.seek(self._sent_offset)
                    data = handle.read()
            except FileNotFoundError:
                data = b""
            end = data.rfind(b"\n") + 1  # only whole lines: another process may be writing one
            self._sent.update(line for line in data[:end].decode("utf-8", "replace").splitlines() if line)
            self._sent_offset += end
            return key in self._sent

    def has(self, key: str) -> bool:
        """Whether ``key`` waits in the spool (pending or claimed)."""
        tail = f"-{_digest(key)}.json"
        return any(path.name.endswith(tail) for path in self.pending() + self._claimed())

    # ---------------------------------------------------------------- writing

    def add(self, key: str, document: dict[str, Any]) -> Path | None:
        """Write ``document`` under ``key``; None when the key was sent or spooled before."""
        if self.sent(key) or self.has(key):
            return None
        name = f"{time.time_ns():020d}-{_digest(key)}.json"
        tmp = self.root / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        _fsync_write(tmp, json.dumps({"key": key, "document": document}, sort_keys=True).encode())
        target = self.root / name
        os.replace(tmp, target)
        return target

    def claim_path(self, path: Path) -> Path:
        """Where :meth:`claim` puts ``path``."""
        return self.claimed / f"{self.owner}~{path.name}"

    def claim(self, path: Path) -> Path | None:
        """Take ``path`` for sending; None when another sender took it first."""
        target = self.claim_path(path)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return None
        os.utime(target)  # the claim's age is the lease
        return target

    def unclaim(self, claimed: Path) -> None:
        """Put a claimed event back, in its place in the order."""
        try:
            os.replace(claimed, self.root / claimed.name.split("~", 1)[1])
        except FileNotFoundError:
            pass

    def mark_sent(self, key: str, claimed: Path) -> None:
        """Record ``key`` as delivered, then drop its file."""
        with open(self._sent_log, "ab") as handle:
            handle.write(key.encode() + b"\n")  # one write of an O_APPEND file: lines never interleave
            handle.flush()
            os.fsync(handle.fileno())
        claimed.unlink(missing_ok=True)

    def reject(self, claimed: Path, reason: str) -> Path:
        """Set a claimed event aside in ``rejected/`` with ``reason``; returns where it is."""
        name = claimed.name.split("~", 1)[1]
        target = self.rejected / name
        os.replace(claimed, target)
        target.with_suffix(".reason").write_text(reason + "\n", encoding="utf-8")
        return target

    def reclaim(self, lease_s: float) -> int:
        """Put back claims whose sender is gone: a dead process of this host, a closed
        sender of this process, or any claim older than ``lease_s``."""
        returned = 0
        now = time.time()
        for path in self._claimed():
            owner = path.name.split("~", 1)[0]
            pid_text, _, host = owner.partition("@")
            with _IN_FLIGHT_LOCK:
                held_here = _IN_FLIGHT[str(path)] > 0
            if held_here:
                continue
            gone = host == _HOST and pid_text.isdigit() and (
                int(pid_text) == os.getpid() or not _pid_alive(int(pid_text))
            )
            try:
                stale = now - path.stat().st_mtime > lease_s
            except FileNotFoundError:
                continue
            if gone or stale:
                self.unclaim(path)
                returned += 1
        return returned


@dataclass
class DeliveryReport:
    """What one :meth:`WebhookDelivery.deliver_pending` pass did."""

    delivered: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    pending: int = 0
    error: str | None = None


@dataclass(frozen=True)
class _Answer:
    """The outcome of one POST."""

    status: int | None
    detail: str
    retry: bool = False
    reason: str = ""
    """The failure's metric label (connection, timeout, 408, 425, 429, 5xx)."""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookDelivery:
    """Spooled, retried, idempotent POSTs of JSON documents to one URL, off the caller's thread.

    :meth:`submit` only writes the spool; :meth:`start` runs the sender thread;
    :meth:`deliver_pending` is one pass of it (tests call it directly);
    :meth:`flush` waits for the spool to empty; :meth:`close` flushes with a deadline and
    stops the thread. Several instances on one folder (processes of a job) share the work.
    """

    def __init__(
        self,
        url: str,
        spool_dir: str | Path,
        token: str | None = None,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        drain_interval_s: float = 5.0,
        queue_size: int = 1000,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.url = url
        self.spool = Spool(spool_dir)
        self._headers = {"Content-Type": "application/json", "User-Agent": "drift-webhook"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout_s = timeout_s
        self._max_attempts = max(1, max_attempts)
        self._backoff_s = max(0.0, backoff_s)
        self._drain_interval_s = max(0.01, drain_interval_s)
        self._lease_s = self._max_attempts * (timeout_s + _MAX_DELAY_S) + _PASS_LEASE_MARGIN_S
        self._abort = threading.Event()
        self._sleep = sleep if sleep is not None else self._abortable_sleep
        self._wake: queue.Queue[str] = queue.Queue(maxsize=max(1, queue_size))
        self._pass_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failing = False
        # follow_redirects=False is httpx's default, spelled out: a redirect must never
        # carry the bearer token to another host.
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._update_gauges()

    def _abortable_sleep(self, seconds: float) -> None:
        self._abort.wait(seconds)

    # -------------------------------------------------------------- the flow's side

    def submit(self, key: str, document: dict[str, Any]) -> bool:
        """Spool ``document`` under idempotency ``key`` and wake the sender; never waits on
        the receiver. False when the key was sent or spooled before."""
        path = self.spool.add(key, document)
        if path is None:
            return False
        try:
            self._wake.put_nowait(path.name)
        except queue.Full:
            pass  # the sender is behind; the event waits on disk for its next pass
        self._update_gauges()
        return True

    @property
    def n_pending(self) -> int:
        return self.spool.depth()

    # -------------------------------------------------------------- sending

    def _post(self, key: str, body: bytes) -> _Answer:
        headers = {**self._headers, "Idempotency-Key": key}
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            answer = _Answer(None, f"no answer within {self._timeout_s:g}s", retry=True, reason="timeout")
        except httpx.TransportError as exc:
            answer = _Answer(None, f"connection error: {type(exc).__name__}: {exc}", retry=True, reason="connection")
        else:
            status = response.status_code
            text = f"HTTP {status} {response.reason_phrase}".rstrip()
            if 200 <= status < 300:
                return _Answer(status, text)
            if status in _RETRYABLE_STATUS or status >= 500:
                answer = _Answer(status, text, retry=True, reason=str(status) if status < 500 else "5xx")
            elif 300 <= status < 400:
                where = response.headers.get("Location", "?")
                return _Answer(status, f"{text}: redirect to {where} not followed; check tickets.webhook.url")
            else:
                body_text = response.text[:200].strip()
                return _Answer(status, f"{text}: {body_text}" if body_text else text)
        metrics.WEBHOOK_FAILURES.labels(reason=answer.reason).inc()
        return answer

    def _post_with_retries(self, key: str, body: bytes) -> _Answer:
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts) | stop_when_event_set(self._abort),
            wait=wait_exponential_jitter(multiplier=self._backoff_s, max=_MAX_DELAY_S, jitter=self._backoff_s),
            retry=retry_if_result(lambda answer: bool(answer.retry)),
            sleep=self._sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome is not None else None,
        )
        answer = retrying(self._post, key, body)
        assert isinstance(answer, _Answer)
        return answer

    def deliver_pending(self) -> DeliveryReport:
        """One pass: send the spool oldest first; stop at the first event that cannot be
        delivered now (keeping the order), set aside those the receiver refuses."""
        report = DeliveryReport()
        with self._pass_lock:
            self.spool.reclaim(self._lease_s)
            for path in self.spool.pending():
                if self._abort.is_set():
                    break
                # In flight before the claim exists: another sender of this process reclaims
                # claims of this process that nobody holds, and must never see this one so.
                target = self.spool.claim_path(path)
                with _IN_FLIGHT_LOCK:
                    _IN_FLIGHT[str(target)] += 1
                claimed = self.spool.claim(path)
                if claimed is None:
                    with _IN_FLIGHT_LOCK:
                        _release_in_flight(str(target))
                    continue
                try:
                    if not self._send_one(claimed, report):
                        break
                finally:
                    with _IN_FLIGHT_LOCK:
                        _release_in_flight(str(claimed))
        report.pending = self.spool.depth()
        self._update_gauges()
        self._say_state(report)
        return report

    def _send_one(self, claimed: Path, report: DeliveryReport) -> bool:
        """Send one claimed event; False when the pass must stop here."""
        try:
            spooled = json.loads(claimed.read_bytes())
            key = str(spooled["key"])
            body = json.dumps(spooled["document"], sort_keys=True).encode()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            where = self.spool.reject(claimed, f"unreadable spool file: {exc}")
            metrics.WEBHOOK_REJECTED.labels(status="unreadable").inc()
            print(f"webhook: unreadable spool file set aside in {where}: {exc}", file=sys.stderr)
            return True
        if self.spool.sent(key):
            claimed.unlink(missing_ok=True)
            return True
        answer = self._post_with_retries(key, body)
        if answer.ok:
            self.spool.mark_sent(key, claimed)
            metrics.WEBHOOK_DELIVERED.inc()
            report.delivered.append(key)
            return True
        if not answer.retry:
            where = self.spool.reject(claimed, answer.detail)
            metrics.WEBHOOK_REJECTED.labels(status=str(answer.status)).inc()
            report.rejected.append(key)
            print(f"webhook: the receiver answered {answer.detail} to ticket event {key}; "
                  f"not retried, kept in {where}", file=sys.stderr)
            return True
        self.spool.unclaim(claimed)
        report.error = f"POST failed ({answer.detail})" + (
            "" if self._abort.is_set() else f" after {self._max_attempts} attempt(s)")
        return False

    def _say_state(self, report: DeliveryReport) -> None:
        # One line when delivery starts failing and one when it recovers, not one per pass.
        if report.error is not None and not self._failing and not self._abort.is_set():
            print(f"webhook: {report.error}; {report.pending} ticket event(s) wait in {self.spool.root}, "
                  f"retried every {self._drain_interval_s:g}s", file=sys.stderr)
        elif report.error is None and self._failing:
            print(f"webhook: delivering again ({len(report.delivered)} sent, {report.pending} waiting)",
                  file=sys.stderr)
        self._failing = report.error is not None

    def _update_gauges(self) -> None:
        metrics.WEBHOOK_SPOOL_EVENTS.set(self.spool.depth())
        metrics.WEBHOOK_SPOOL_OLDEST_AGE.set(self.spool.oldest_age_s())

    # -------------------------------------------------------------- the thread

    def start(self) -> WebhookDelivery:
        """Start the sender thread (once); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="drift-webhook", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._abort.is_set():
            try:
                report = self.deliver_pending()
            except Exception as exc:  # noqa: BLE001 - the sender must outlive a bad pass
                print(f"webhook: delivery pass failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                report = DeliveryReport(error=str(exc))
            if report.error is not None:
                # The receiver is failing: pause, whatever new events arrive meanwhile.
                self._abort.wait(self._drain_interval_s)
                continue
            try:
                self._wake.get(timeout=self._drain_interval_s)
            except queue.Empty:
                pass  # look at the spool anyway: another process, or a restart, may have left events
            while True:
                try:
                    self._wake.get_nowait()
                except queue.Empty:
                    break

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the spool to empty; returns the events still waiting."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            left = self.spool.depth()
            if left == 0 or time.monotonic() >= deadline:
                return left
            if self._thread is None:
                self.deliver_pending()
                continue
            try:
                self._wake.put_nowait("flush")
            except queue.Full:
                pass
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def close(self, timeout_s: float = 0.0) -> int:
        """Flush for up to ``timeout_s``, then stop the thread; returns the events left in the
        spool (sent by the next run, or by another process of the job)."""
        left = self.flush(timeout_s) if self._thread is not None else self.spool.depth()
        self._abort.set()
        try:
            self._wake.put_nowait("stop")
        except queue.Full:
            pass
        if self._thread is not None:
            # A POST in flight ends within its timeout; the thread is a daemon and puts its
            # event back when it does, so the caller does not wait for it.
            self._thread.join(timeout=0.5)
            if not self._thread.is_alive():
                self._client.close()
        else:
            self._client.close()
        self._update_gauges()
        return left


# ------------------------------------------------------------------ the Bytewax sink

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
