"""The webhook sink wired into the flow, against real HTTP servers on 127.0.0.1.

Each test runs the demo's events through :func:`run_file` (12 ticket events) with a
receiver that misbehaves in one way: answers 503 first, hangs, refuses connections,
answers 404, redirects to another port, or comes back after an outage.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from connectors.files import write_jsonl
from drift import demo
from drift.config import Config, load_config
from flows.runner import RunResult, run_file

TOKEN = "s3cret-webhook-token"

Answer = int | str
"""What the receiver does with one POST: an HTTP status, or "hang" (no answer until closed)."""


class Receiver:
    """An HTTP server on 127.0.0.1; ``answer(n)`` decides the n-th POST (1-based)."""

    def __init__(self, answer: Callable[[int], Answer] = lambda _: 200, port: int = 0,
                 location: str | None = None) -> None:
        self.answer = answer
        self.location = location
        self.attempts = 0
        self.received: list[tuple[str, dict[str, Any], str]] = []
        self.auth: list[str] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.attempts += 1
                    receiver.auth.append(self.headers.get("Authorization", ""))
                    answer = receiver.answer(receiver.attempts)
                    if answer == 200:
                        receiver.received.append(
                            (self.headers["Idempotency-Key"], json.loads(body), self.headers.get("Authorization", "")),
                        )
                if answer == "hang":
                    receiver.release.wait(60)
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
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/tickets"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


def refused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_config(folder: Path, url: str, store: str = "drift-tickets.db", spool: str = "spool", **hook: str) -> Config:
    """The demo's config with ``tickets.sinks: [webhook]`` and the demo's events in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = demo.config_text()
    assert "  store: sqlite:///./drift-tickets.db\n" in text
    extra = "".join(f", {key}: {value}" for key, value in {"max_attempts": "5", "backoff": "10ms", **hook}.items())
    text = text.replace("  store: sqlite:///./drift-tickets.db\n", "\n".join([
        f"  store: sqlite:///./{store}",
        "  sinks: [webhook]",
        f"  webhook: {{url: '{url}', token: '${{DRIFT_WEBHOOK_TOKEN}}', spool_dir: '{spool}'{extra}}}",
        "",
    ]))
    (folder / "drift.yaml").write_text(text, encoding="utf-8")
    demo.write_references(folder)
    write_jsonl(folder / "events.jsonl", demo.events().lines)
    return load_config(folder / "drift.yaml")


def run(config: Config) -> tuple[RunResult, float]:
    started = time.monotonic()
    result = run_file(config, config.resolve("events.jsonl"))
    return result, time.monotonic() - started


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def spooled(spool: Path) -> list[Path]:
    """Events waiting in the spool (any layout)."""
    return [path for path in spool.rglob("*.json") if "rejected" not in path.parts]


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFT_WEBHOOK_TOKEN", TOKEN)


def test_demo_ticket_events_reach_the_webhook_exactly_once(tmp_path: Path, receivers: list[Receiver]) -> None:
    receiver = Receiver(lambda n: 503 if n <= 2 else 200)
    receivers.append(receiver)
    config = demo_config(tmp_path, receiver.url)

    result, _ = run(config)
    assert len(result.tickets) == 12, "the demo opens tickets"
    # The first POSTs failed (503) and were retried: every event arrived, once, in order.
    assert receiver.attempts == len(result.tickets) + 2
    keys = [key for key, _, _ in receiver.received]
    assert len(set(keys)) == len(keys) == len(result.tickets)
    assert [key.split(":", 1)[1] for key in keys] == [t.id for t in result.tickets]
    assert [body for _, body, _ in receiver.received] == [
        json.loads(json.dumps({**t.to_dict(), "idempotency_key": key}, sort_keys=True))
        for t, key in zip(result.tickets, keys, strict=True)
    ]
    assert {auth for _, _, auth in receiver.received} == {f"Bearer {TOKEN}"}
    statuses = {body["ticket"]["model"]: body["ticket"]["status"] for _, body, _ in receiver.received}
    assert statuses[demo.DOC_MODEL] == "pending_review" and statuses["credit-risk"] == "open"
    # Nothing is left in the spool, and every key is in its sent log.
    spool = tmp_path / "spool"
    assert not spooled(spool)
    assert (spool / "sent.log").read_text().split() == keys

    # Replaying the same file makes no new ticket events, so nothing is sent twice.
    again, _ = run(config)
    assert not again.tickets
    assert len(receiver.received) == len(result.tickets)


def test_a_hanging_receiver_does_not_hold_up_the_flow_and_the_spool_drains_after_it_recovers(
    tmp_path: Path, receivers: list[Receiver],
) -> None:
    hanging = True
    receiver = Receiver(lambda _: "hang" if hanging else 200)
    receivers.append(receiver)
    config = demo_config(tmp_path / "job", receiver.url, timeout="2s", flush_timeout="1s")

    result, seconds = run(config)
    assert len(result.tickets) == 12
    # Before: the worker waited for every POST (198 s for this run, 5 s with a healthy
    # receiver); now only for the bounded wait at the end (flush_timeout: 1s).
    assert seconds < 30
    spool = tmp_path / "job" / "spool"
    assert len(spooled(spool)) == 12
    assert not receiver.received

    # The receiver recovers. The same replay makes no new ticket events, yet the spool drains.
    hanging = False
    receiver.release.set()
    again, _ = run(config)
    assert not again.tickets
    assert len(receiver.received) == 12
    assert not spooled(spool)
    assert len({key for key, _, _ in receiver.received}) == 12


def test_a_refused_receiver_costs_the_flow_nothing_and_gets_everything_when_it_listens(
    tmp_path: Path, receivers: list[Receiver],
) -> None:
    port = refused_port()
    config = demo_config(tmp_path, f"http://127.0.0.1:{port}/tickets", backoff="1s", flush_timeout="0s")
    failures = metric("drift_webhook_failures_total", reason="connection")

    result, seconds = run(config)
    assert len(result.tickets) == 12
    # Before: 48 s (5 attempts with 1+2+4+8 s of backoff, batch after batch).
    assert seconds < 20
    assert len(spooled(tmp_path / "spool")) == 12
    assert metric("drift_webhook_failures_total", reason="connection") > failures
    assert metric("drift_webhook_spool_events") == 12

    receiver = Receiver(port=port)
    receivers.append(receiver)
    again, _ = run(demo_config(tmp_path, receiver.url, flush_timeout="10s"))
    assert not again.tickets
    assert len(receiver.received) == 12
    assert metric("drift_webhook_spool_events") == 0


def test_a_404_keeps_the_events_with_the_status_and_counts_them(
    tmp_path: Path, receivers: list[Receiver], capsys: pytest.CaptureFixture[str],
) -> None:
    receiver = Receiver(lambda _: 404)
    receivers.append(receiver)
    before = metric("drift_webhook_rejected_total", status="404")
    result, _ = run(demo_config(tmp_path, receiver.url))
    assert len(result.tickets) == 12
    assert receiver.attempts == 12  # not retried
    rejected = tmp_path / "spool" / "rejected"
    assert len(list(rejected.glob("*.json"))) == 12
    assert all(path.read_text().startswith("HTTP 404") for path in rejected.glob("*.reason"))
    assert metric("drift_webhook_rejected_total", status="404") - before == 12
    assert "HTTP 404" in capsys.readouterr().err


def test_a_redirect_is_not_followed_and_the_token_stays_home(tmp_path: Path, receivers: list[Receiver]) -> None:
    elsewhere = Receiver()
    receiver = Receiver(lambda _: 302, location=elsewhere.url)
    receivers += [elsewhere, receiver]
    before = metric("drift_webhook_rejected_total", status="302")
    result, _ = run(demo_config(tmp_path, receiver.url))
    assert len(result.tickets) == 12
    assert elsewhere.attempts == 0 and not elsewhere.auth
    spool = tmp_path / "spool"
    assert not (spool / "sent.log").exists() or not (spool / "sent.log").read_text().strip()
    reasons = [path.read_text() for path in (spool / "rejected").glob("*.reason")]
    assert len(reasons) == 12 and all("HTTP 302" in text and "not followed" in text for text in reasons)
    assert metric("drift_webhook_rejected_total", status="302") - before == 12


def test_event_ids_of_two_stores_do_not_collide(tmp_path: Path, receivers: list[Receiver]) -> None:
    receiver = Receiver()
    receivers.append(receiver)
    spool = str(tmp_path / "shared-spool")
    first, _ = run(demo_config(tmp_path / "a", receiver.url, spool=spool))
    second, _ = run(demo_config(tmp_path / "b", receiver.url, spool=spool))
    # Both stores number their tickets and audit entries from 1: DRIFT-1:1 twice.
    assert {t.id for t in first.tickets} & {t.id for t in second.tickets}
    assert len(receiver.received) == 24
    assert len({key for key, _, _ in receiver.received}) == 24

    # Stable: the same store gives the same id to the same event (a restart re-sending it).
    again = Receiver()
    receivers.append(again)
    config = demo_config(tmp_path / "a", again.url, spool=str(tmp_path / "other-spool"))
    from connectors.ticket_store import open_store

    with open_store(config) as store:
        store_id = store.store_id()
    assert {key for key, _, _ in receiver.received[:12]} == {f"{store_id}:{t.id}" for t in first.tickets}


def test_the_spools_of_workers_that_no_longer_exist_are_sent(tmp_path: Path, receivers: list[Receiver]) -> None:
    receiver = Receiver()
    receivers.append(receiver)
    config = demo_config(tmp_path, receiver.url)
    # The old layout: one folder per worker index; a job of 4 workers left events in worker-3.
    legacy = tmp_path / "spool" / "worker-3"
    legacy.mkdir(parents=True)
    keys = [f"DRIFT-{i}:{i}" for i in range(1, 6)]
    for i, key in enumerate(keys):
        (legacy / f"{i:020d}-{i:016x}.json").write_text(json.dumps({"key": key, "document": {"id": key}}))
    (legacy / "sent.log").write_text("DRIFT-9:9\n")

    result, _ = run(config)
    assert len(result.tickets) == 12
    got = [key for key, _, _ in receiver.received]
    assert got[:5] == keys  # the oldest first
    assert len(got) == 17
    assert not spooled(tmp_path / "spool")
    assert "DRIFT-9:9" in (tmp_path / "spool" / "sent.log").read_text().split()


class _Event:
    """What the sink reads of a ticket event: ``id`` and ``to_dict()``."""

    def __init__(self, i: int) -> None:
        self.id = f"DRIFT-{i}:{i}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id}


def test_workers_of_a_process_share_one_spool_and_one_sender(tmp_path: Path, receivers: list[Receiver]) -> None:
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSource, cluster_main

    from connectors.webhook import WebhookDelivery, ticket_event_sink

    receiver = Receiver()
    receivers.append(receiver)
    spool = tmp_path / "spool"
    made: list[WebhookDelivery] = []

    def delivery() -> WebhookDelivery:
        made.append(WebhookDelivery(receiver.url, spool, drain_interval_s=0.1))
        return made[-1]

    flow = Dataflow("webhook_workers")
    events = op.redistribute("spread", op.input("events", flow, TestingSource([_Event(i) for i in range(40)])))
    op.output("webhook", events, ticket_event_sink(spool, delivery, lambda: "store-1", flush_timeout_s=10))
    cluster_main(flow, [], 0, worker_count_per_proc=3)

    assert len(made) == 1  # one sender thread for the process's three workers
    assert sorted(key for key, _, _ in receiver.received) == sorted(f"store-1:DRIFT-{i}:{i}" for i in range(40))
    assert not spooled(spool) and not list(spool.glob("worker-*"))
