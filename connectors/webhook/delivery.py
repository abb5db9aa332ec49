"""Sending the spool: POSTs with retries, backoff and an ``Idempotency-Key``, oldest first, by a
daemon thread that the flow hands new files to without waiting.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from tenacity import (
    Retrying,
    retry_if_result,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential_jitter,
)

from connectors.webhook.spool import Spool, _IN_FLIGHT, _IN_FLIGHT_LOCK, _release_in_flight
from drift import metrics


_MAX_DELAY_S: Final = 60.0
_RETRYABLE_STATUS: Final = frozenset({408, 425, 429})
_PASS_LEASE_MARGIN_S: Final = 60.0


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
