"""Webhook delivery against real HTTP servers on 127.0.0.1: failing, hanging, refusing,
redirecting, recovering; and several senders (threads, processes) on one spool."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from connectors.webhook import Spool, WebhookDelivery

ROOT = Path(__file__).resolve().parents[2]

Answer = int | str
"""An HTTP status, or "hang" (no answer until the receiver closes)."""


class Receiver:
    """An HTTP server on 127.0.0.1; ``answer(n)`` decides the n-th POST (1-based)."""

    def __init__(self, answer: Callable[[int], Answer] = lambda _: 200, port: int = 0,
                 location: str | None = None) -> None:
        self.answer = answer
        self.location = location
        self.seen = 0
        self.accepted: list[tuple[str, dict[str, Any]]] = []
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.seen += 1
                    receiver.auth.append(self.headers.get("Authorization"))
                    answer = receiver.answer(receiver.seen)
                    if answer == 200:
                        receiver.accepted.append((self.headers["Idempotency-Key"], json.loads(body)))
                if answer == "hang":
                    receiver.release.wait(30)
                    return
                assert isinstance(answer, int)
                self.send_response(answer)
                if receiver.location is not None:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_port)
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keys(self) -> list[str]:
        return [key for key, _ in self.accepted]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


def serve(receivers: list[Receiver], *args: Any, **kwargs: Any) -> Receiver:
    receiver = Receiver(*args, **kwargs)
    receivers.append(receiver)
    return receiver


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def event(i: int) -> tuple[str, dict[str, Any]]:
    key = f"store-a:DRIFT-{1 + i % 2}:{i + 1}"
    return key, {"id": key, "kind": "opened" if i < 2 else "updated", "ticket": {"id": f"DRIFT-{1 + i % 2}"}}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_retryable_answers_are_retried_with_exponential_backoff_and_jitter(
    receivers: list[Receiver], tmp_path: Path,
) -> None:
    answers = [408, 425, 429, 500, 503]
    receiver = serve(receivers, lambda n: answers[n - 1] if n <= len(answers) else 200)
    before = {reason: metric("drift_webhook_failures_total", reason=reason) for reason in ("408", "425", "429", "5xx")}
    delays: list[float] = []
    delivery = WebhookDelivery(receiver.url, tmp_path / "spool", token="s3cret", max_attempts=6,
                               backoff_s=0.5, sleep=delays.append)
    delivery.submit(*event(0))
    report = delivery.deliver_pending()
    assert report.delivered == [event(0)[0]] and report.error is None
    assert receiver.keys() == [event(0)[0]] and receiver.seen == 6
    assert len(delays) == 5
    for attempt, delay in enumerate(delays):
        assert 0.5 * 2**attempt <= delay <= 0.5 * 2**attempt + 0.5  # exponential, plus jitter
    assert len(set(delays) - {0.5 * 2**attempt for attempt in range(5)}) > 0  # the jitter is random
    assert metric("drift_webhook_failures_total", reason="5xx") - before["5xx"] == 2
    for status in ("408", "425", "429"):
        assert metric("drift_webhook_failures_total", reason=status) - before[status] == 1


def test_outage_then_recovery_delivers_every_event_once_in_order(receivers: list[Receiver], tmp_path: Path) -> None:
    receiver = serve(receivers, lambda n: 503 if n <= 7 else 200)
    delays: list[float] = []
    delivery = WebhookDelivery(receiver.url, tmp_path / "spool", token="s3cret",
                               max_attempts=3, backoff_s=0, sleep=delays.append)
    events = [event(i) for i in range(5)]
    for key, document in events[:3]:
        assert delivery.submit(key, document)
        report = delivery.deliver_pending()
    # 7 failures: the first pass tries 3 times, the second 3, the third 1 more and then succeeds.
    assert report.error is None and report.pending == 0
    for key, document in events[3:]:
        delivery.submit(key, document)
    delivery.deliver_pending()
    assert receiver.keys() == [key for key, _ in events]
    assert [doc for _, doc in receiver.accepted] == [doc for _, doc in events]
    assert set(receiver.auth) == {"Bearer s3cret"}

    # Replaying the same events (a restart re-emitting them) sends nothing again.
    again = WebhookDelivery(receiver.url, tmp_path / "spool", token="s3cret", sleep=delays.append)
    assert not any(again.submit(key, document) for key, document in events)
    assert again.deliver_pending().delivered == []
    assert len(receiver.accepted) == 5


def test_connection_refused_keeps_the_event_and_counts_the_failure(tmp_path: Path) -> None:
    before = metric("drift_webhook_failures_total", reason="connection")
    delivery = WebhookDelivery(f"http://127.0.0.1:{refused_port()}/hook", tmp_path / "spool", max_attempts=2,
                               backoff_s=0, sleep=lambda _: None)
    delivery.submit(*event(0))
    report = delivery.deliver_pending()
    assert report.pending == 1 and "connection error" in (report.error or "")
    assert metric("drift_webhook_failures_total", reason="connection") - before == 2
    assert metric("drift_webhook_spool_events") == 1
    assert metric("drift_webhook_spool_oldest_age_seconds") > 0


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_a_permanent_4xx_is_set_aside_with_its_status_and_counted(
    receivers: list[Receiver], tmp_path: Path, status: int, capsys: pytest.CaptureFixture[str],
) -> None:
    bad = serve(receivers, lambda n: status if n == 1 else 200)
    before = metric("drift_webhook_rejected_total", status=str(status))
    delivery = WebhookDelivery(bad.url, tmp_path / "spool", max_attempts=5, backoff_s=0, sleep=lambda _: None)
    delivery.submit(*event(0))
    delivery.submit(*event(1))
    report = delivery.deliver_pending()
    assert report.rejected == [event(0)[0]] and report.delivered == [event(1)[0]]
    assert bad.seen == 2  # not retried
    (reason,) = (tmp_path / "spool" / "rejected").glob("*.reason")
    assert reason.read_text().startswith(f"HTTP {status}")
    assert json.loads(reason.with_suffix(".json").read_text())["key"] == event(0)[0]
    assert metric("drift_webhook_rejected_total", status=str(status)) - before == 1
    assert f"HTTP {status}" in capsys.readouterr().err


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed(receivers: list[Receiver], tmp_path: Path, status: int) -> None:
    elsewhere = serve(receivers)
    redirecting = serve(receivers, lambda _: status, location=elsewhere.url)
    delivery = WebhookDelivery(redirecting.url, tmp_path / "spool", token="s3cret", sleep=lambda _: None)
    delivery.submit(*event(0))
    report = delivery.deliver_pending()
    assert report.rejected == [event(0)[0]] and not report.delivered
    assert redirecting.seen == 1 and elsewhere.seen == 0 and elsewhere.auth == []
    (reason,) = (tmp_path / "spool" / "rejected").glob("*.reason")
    assert f"HTTP {status}" in reason.read_text() and "not followed" in reason.read_text()
    assert "s3cret" not in reason.read_text()


def test_submit_never_waits_for_a_hanging_receiver(receivers: list[Receiver], tmp_path: Path) -> None:
    hanging = serve(receivers, lambda _: "hang")
    delivery = WebhookDelivery(hanging.url, tmp_path / "spool", timeout_s=5, drain_interval_s=0.1).start()
    started = time.monotonic()
    for i in range(50):
        delivery.submit(*event(i))
    submitting = time.monotonic() - started
    assert wait_for(lambda: hanging.seen >= 1)
    closing = time.monotonic()
    left = delivery.close(0.2)
    assert submitting < 2.0, submitting
    assert time.monotonic() - closing < 2.0
    assert left == 50


def test_the_spool_drains_on_its_own_when_the_receiver_recovers(receivers: list[Receiver], tmp_path: Path) -> None:
    port = refused_port()
    delivery = WebhookDelivery(f"http://127.0.0.1:{port}/hook", tmp_path / "spool", max_attempts=1,
                               drain_interval_s=0.1).start()
    try:
        for i in range(12):
            delivery.submit(*event(i))
        time.sleep(0.3)
        assert delivery.n_pending == 12
        receiver = serve(receivers, port=port)
        # No new event arrives: the thread's own passes find the receiver back.
        assert wait_for(lambda: len(receiver.accepted) == 12)
        assert receiver.keys() == [event(i)[0] for i in range(12)]
        assert wait_for(lambda: metric("drift_webhook_spool_events") == 0)
    finally:
        delivery.close()


def test_a_full_queue_loses_nothing(receivers: list[Receiver], tmp_path: Path) -> None:
    receiver = serve(receivers)
    delivery = WebhookDelivery(receiver.url, tmp_path / "spool", queue_size=1, drain_interval_s=0.1)
    for i in range(5):
        assert delivery.submit(*event(i))  # the thread is not running: the queue fills at once
    assert delivery.n_pending == 5
    delivery.start()
    assert delivery.close(10) == 0
    assert receiver.keys() == [event(i)[0] for i in range(5)]


def test_several_senders_on_one_spool_send_each_event_once(receivers: list[Receiver], tmp_path: Path) -> None:
    receiver = serve(receivers)
    senders = [WebhookDelivery(receiver.url, tmp_path / "spool", drain_interval_s=0.05).start() for _ in range(3)]
    for i in range(60):
        senders[i % 3].submit(*event(i))
    assert all(sender.close(10) == 0 for sender in senders)
    assert sorted(receiver.keys()) == sorted(event(i)[0] for i in range(60))


_PROCESS = """
import sys
from connectors.webhook import WebhookDelivery
url, spool, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
delivery = WebhookDelivery(url, spool, drain_interval_s=0.05).start()
for i in range(first, first + 30):
    delivery.submit(f"k-{i}", {"i": i})
sys.exit(delivery.close(20))
"""


def test_processes_sharing_one_spool_send_each_event_once(receivers: list[Receiver], tmp_path: Path) -> None:
    receiver = serve(receivers)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS, receiver.url, str(tmp_path / "spool"), str(first)],
                              cwd=ROOT, env=env) for first in (0, 30)]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    assert sorted(receiver.keys()) == sorted(f"k-{i}" for i in range(60))


def test_a_claim_left_by_a_dead_process_goes_back_to_the_spool(receivers: list[Receiver], tmp_path: Path) -> None:
    receiver = serve(receivers)
    spool = Spool(tmp_path / "spool")
    path = spool.add(*event(0))
    assert path is not None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    claimed = spool.claimed / f"{dead.stdout.strip()}@{spool.owner.split('@', 1)[1]}~{path.name}"
    path.rename(claimed)
    delivery = WebhookDelivery(receiver.url, tmp_path / "spool")
    assert delivery.deliver_pending().delivered == [event(0)[0]]
    assert delivery.n_pending == 0


def test_the_spools_of_the_per_worker_layout_are_adopted(receivers: list[Receiver], tmp_path: Path) -> None:
    receiver = serve(receivers)
    for worker in range(4):
        legacy = tmp_path / "spool" / f"worker-{worker}"
        (legacy / "rejected").mkdir(parents=True)
        key, document = event(worker)
        (legacy / f"{worker:020d}-{worker:016x}.json").write_text(json.dumps({"key": key, "document": document}))
        (legacy / "sent.log").write_text(f"old-{worker}\n")
    (tmp_path / "spool" / "worker-2" / "rejected" / "x.json").write_text("{}")
    delivery = WebhookDelivery(receiver.url, tmp_path / "spool")
    assert delivery.deliver_pending().delivered == [event(i)[0] for i in range(4)]
    assert not list((tmp_path / "spool").glob("worker-*"))
    assert (tmp_path / "spool" / "rejected" / "x.json").exists()
    sent = (tmp_path / "spool" / "sent.log").read_text().split()
    assert {f"old-{worker}" for worker in range(4)} <= set(sent)
    assert not delivery.submit("old-1", {})  # sent before, in the old layout


def test_close_waits_at_most_its_deadline(tmp_path: Path) -> None:
    delivery = WebhookDelivery(f"http://127.0.0.1:{refused_port()}/hook", tmp_path / "spool",
                               backoff_s=0.2, drain_interval_s=0.1).start()
    delivery.submit(*event(0))
    started = time.monotonic()
    assert delivery.close(0.5) == 1
    assert time.monotonic() - started < 1.5


def test_the_store_id_in_the_keys_is_stable_per_store_and_differs_between_stores(tmp_path: Path) -> None:
    from drift.tickets import TicketStore

    with TicketStore.open(tmp_path / "a.db") as store:
        first = store.store_id()
        assert store.store_id() == first
    with TicketStore.open(tmp_path / "a.db") as store:
        assert store.store_id() == first
    with TicketStore.open(tmp_path / "b.db") as store:
        assert store.store_id() != first
