"""The webhook sink against a real HTTP server on 127.0.0.1 that fails for a while, then recovers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors.webhook import WebhookDelivery


class Receiver:
    """Answers 503 to the first ``failures`` POSTs, then 200; keeps what it accepted."""

    def __init__(self, failures: int, status_when_failing: int = 503) -> None:
        self.failures = failures
        self.status_when_failing = status_when_failing
        self.seen = 0
        self.accepted: list[tuple[str, dict[str, Any]]] = []
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.seen += 1
                    receiver.auth.append(self.headers.get("Authorization"))
                    failing = receiver.seen <= receiver.failures
                    if not failing:
                        receiver.accepted.append((self.headers["Idempotency-Key"], json.loads(body)))
                self.send_response(receiver.status_when_failing if failing else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(failures=7)
    yield server
    server.close()


def event(i: int) -> tuple[str, dict[str, Any]]:
    key = f"DRIFT-{1 + i % 2}:{i + 1}"
    return key, {"id": key, "kind": "opened" if i < 2 else "updated", "ticket": {"id": f"DRIFT-{1 + i % 2}"}}


def test_outage_then_recovery_delivers_every_event_once_in_order(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFT_WEBHOOK_TOKEN", "s3cret")
    delays: list[float] = []
    delivery = WebhookDelivery(receiver.url, tmp_path / "spool", token="s3cret",
                               max_attempts=3, backoff_s=0.5, sleep=delays.append)
    events = [event(i) for i in range(5)]
    for key, document in events[:3]:
        assert delivery.submit(key, document)
        report = delivery.deliver_pending()
    # 7 failures: the first call tries 3 times, the second 3, the third 1 more and then succeeds.
    assert delays[:2] == [0.5, 1.0]
    assert report.error is None and report.pending == 0
    for key, document in events[3:]:
        delivery.submit(key, document)
    delivery.deliver_pending()
    assert [key for key, _ in receiver.accepted] == [key for key, _ in events]
    assert [doc for _, doc in receiver.accepted] == [doc for _, doc in events]
    assert set(receiver.auth) == {"Bearer s3cret"}

    # Replaying the same events (a restart re-emitting them) sends nothing again.
    again = WebhookDelivery(receiver.url, tmp_path / "spool", token="s3cret", sleep=delays.append)
    assert not any(again.submit(key, document) for key, document in events)
    assert again.deliver_pending().delivered == []
    assert len(receiver.accepted) == 5


def test_a_receiver_down_for_longer_leaves_events_spooled_across_restarts(tmp_path: Path) -> None:
    down = Receiver(failures=10_000)
    try:
        delivery = WebhookDelivery(down.url, tmp_path / "spool", max_attempts=2, backoff_s=0, sleep=lambda _: None)
        for i in range(3):
            delivery.submit(*event(i))
        report = delivery.deliver_pending()
        assert report.pending == 3 and "HTTP 503" in (report.error or "")
        assert down.seen == 2  # stops at the first undeliverable event, keeping the order
    finally:
        down.close()
    # The receiver is back (a new one on another port); a restarted sink sends the spool.
    up = Receiver(failures=0)
    try:
        restarted = WebhookDelivery(up.url, tmp_path / "spool", sleep=lambda _: None)
        assert restarted.deliver_pending().delivered == [event(i)[0] for i in range(3)]
        assert [key for key, _ in up.accepted] == [event(i)[0] for i in range(3)]
        assert restarted.deliver_pending().delivered == []
    finally:
        up.close()


def test_connection_refused_keeps_the_event(tmp_path: Path) -> None:
    delivery = WebhookDelivery("http://127.0.0.1:9/hook", tmp_path / "spool", max_attempts=2,
                               backoff_s=0, sleep=lambda _: None)
    delivery.submit(*event(0))
    report = delivery.deliver_pending()
    assert report.pending == 1 and report.error is not None


def test_a_permanent_4xx_is_set_aside_not_retried_forever(tmp_path: Path) -> None:
    bad = Receiver(failures=1, status_when_failing=400)
    try:
        delivery = WebhookDelivery(bad.url, tmp_path / "spool", max_attempts=5, backoff_s=0, sleep=lambda _: None)
        delivery.submit(*event(0))
        delivery.submit(*event(1))
        report = delivery.deliver_pending()
        assert report.rejected == [event(0)[0]] and report.delivered == [event(1)[0]]
        assert bad.seen == 2
        assert "HTTP 400" in next((tmp_path / "spool" / "rejected").glob("*.reason")).read_text()
    finally:
        bad.close()
