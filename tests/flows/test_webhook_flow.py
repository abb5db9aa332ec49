"""The webhook sink wired into the flow: the demo's ticket events reach a real HTTP server once each."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors.files import write_jsonl
from drift import demo
from drift.config import load_config
from flows.runner import run_file

TOKEN = "s3cret-webhook-token"


class Receiver:
    """An HTTP server on 127.0.0.1 that answers 503 to its first ``fail_first`` POSTs."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.received: list[tuple[str, dict[str, Any], str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.received.append(
                    (self.headers["Idempotency-Key"], json.loads(body), self.headers.get("Authorization", "")),
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tickets"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    server = Receiver(fail_first=2)
    yield server
    server.close()


def test_demo_ticket_events_reach_the_webhook_exactly_once(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIFT_WEBHOOK_TOKEN", TOKEN)
    text = demo.config_text()
    assert "  store: sqlite:///./drift-tickets.db\n" in text
    text = text.replace("  store: sqlite:///./drift-tickets.db\n", "\n".join([
        "  store: sqlite:///./drift-tickets.db",
        "  sinks: [webhook]",
        f"  webhook: {{url: '{receiver.url}', token: '${{DRIFT_WEBHOOK_TOKEN}}', spool_dir: spool,",
        "            max_attempts: 5, backoff: 10ms}",
        "",
    ]))
    (tmp_path / "drift.yaml").write_text(text, encoding="utf-8")
    demo.write_references(tmp_path)
    write_jsonl(tmp_path / "events.jsonl", demo.events().lines)
    config = load_config(tmp_path / "drift.yaml")

    result = run_file(config, tmp_path / "events.jsonl")
    assert result.tickets, "the demo opens tickets"
    # The first POSTs failed (503) and were retried: every event arrived, once, in order.
    assert receiver.attempts == len(result.tickets) + 2
    assert [key for key, _, _ in receiver.received] == [t.id for t in result.tickets]
    assert [body for _, body, _ in receiver.received] == [
        json.loads(json.dumps(t.to_dict(), sort_keys=True)) for t in result.tickets
    ]
    assert {auth for _, _, auth in receiver.received} == {f"Bearer {TOKEN}"}
    statuses = {body["ticket"]["model"]: body["ticket"]["status"] for _, body, _ in receiver.received}
    assert statuses[demo.DOC_MODEL] == "pending_review" and statuses["credit-risk"] == "open"
    # Nothing is left in the spool, and every key is in its sent log.
    spool = tmp_path / "spool"
    assert not list(spool.glob("worker-*/*.json"))
    sent = (spool / "worker-0" / "sent.log").read_text().split()
    assert sent == [t.id for t in result.tickets]

    # Replaying the same file makes no new ticket events, so nothing is sent twice.
    again = run_file(config, tmp_path / "events.jsonl")
    assert not again.tickets
    assert len(receiver.received) == len(result.tickets)
