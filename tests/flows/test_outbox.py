"""Ticket events go out through the store's outbox: stored with the change, published after."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from connectors.files import write_jsonl
from drift import demo
from drift.config import load_config
from drift.findings import Cohort, Finding, Severity, Window
from drift.tickets import StoredTicketEvent, TicketEvent, TicketStore
from flows.runner import run_file

T0 = datetime(2026, 11, 27, 9, tzinfo=timezone.utc)
HALF_HOUR = timedelta(minutes=30)


def finding(window: int, value: float = 0.4, severity: Severity = Severity.ALERT) -> Finding:
    start = T0 + window * HALF_HOUR
    return Finding("psi", Cohort("m", (("tenant", "acme"),)), Window(start, start + HALF_HOUR), "income",
                   value, severity, 0.1, 0.25, 500, 5000, "reference")


def test_every_ticket_event_is_in_the_outbox_until_marked_published(tmp_path: Path) -> None:
    with TicketStore.open(tmp_path / "t.db") as store:
        opened = store.record(finding(0))
        updated = store.record(finding(1))
        assert opened is not None and updated is not None
        pending = store.pending_events()
        assert [e.id for e in pending] == [opened.id, updated.id]
        assert pending[0].to_dict() == opened.to_dict() and pending[0].ticket.id == opened.ticket.id
        store.mark_events_published([opened.id])
        assert [e.id for e in store.pending_events()] == [updated.id]
        store.mark_events_published([updated.id, opened.id])
        assert store.pending_events() == []


def test_a_clear_read_again_after_a_later_alerting_window_changes_nothing(tmp_path: Path) -> None:
    """After a restart the flow reads W1 (cleared) again although W2 already alerted."""
    with TicketStore.open(tmp_path / "t.db") as store:
        assert store.record(finding(0)) is not None
        cleared = store.clear(finding(1, 0.01, Severity.OK))
        assert cleared is not None and cleared.kind == "cleared"
        assert store.record(finding(2)) is not None  # active again
        assert store.clear(finding(1, 0.01, Severity.OK)) is None  # the same clear, replayed
        assert store.get(cleared.ticket.id).active
        assert store.clear(finding(3, 0.01, Severity.OK)) is not None  # a new clearing window
        assert store.clear(finding(3, 0.01, Severity.OK)) is None  # and only once


def _demo_config(tmp_path: Path) -> Path:
    config = tmp_path / "drift.yaml"
    config.write_text(demo.config_text(), encoding="utf-8")
    demo.write_references(tmp_path)
    write_jsonl(tmp_path / "events.jsonl", demo.events().lines)
    return config


def test_events_a_crash_left_unpublished_are_published_at_the_next_start(tmp_path: Path) -> None:
    config = load_config(_demo_config(tmp_path))
    # A ticket change whose event never reached a sink: the job stopped in between.
    with TicketStore.open(config.ticket_store_path()) as store:
        assert store.record(finding(0)) is not None
        assert len(store.pending_events()) == 1
    result = run_file(config, tmp_path / "events.jsonl")
    assert result.tickets and all(isinstance(t, TicketEvent) for t in result.tickets)
    with TicketStore.open(config.ticket_store_path()) as store:
        # Marked only after the sinks wrote them: the left-over event and every event of the run.
        assert store.pending_events() == []


def test_the_pending_source_reads_the_outbox_once_on_the_first_worker(tmp_path: Path) -> None:
    from flows.outbox import PendingTicketEvents

    path = tmp_path / "t.db"
    with TicketStore.open(path) as store:
        left = store.record(finding(0))
    assert left is not None
    source = PendingTicketEvents(lambda: TicketStore.open(path))
    first = source.build("read_unpublished_ticket_events", 0, 2)
    batch = first.next_batch()
    assert [e.id for e in batch] == [left.id] and isinstance(batch[0], StoredTicketEvent)
    assert batch[0].to_dict() == left.to_dict()
    with pytest.raises(StopIteration):
        first.next_batch()
    with pytest.raises(StopIteration):
        source.build("read_unpublished_ticket_events", 1, 2).next_batch()


@pytest.mark.kafka
def test_on_the_real_broker_a_left_over_event_reaches_the_tickets_topic_with_its_id(
    tmp_path: Path, kafka_bootstrap: str, read_topic: Any, kafka_topics: Any,
) -> None:
    import json
    import os
    import subprocess
    import sys

    from confluent_kafka import Producer

    topics = {name: kafka_topics(name) for name in ("inference", "features", "findings", "tickets", "dlq")}
    text = demo.config_text().replace("inference_topic: inference-events", "\n".join([
        f"inference_topic: {topics['inference']}", f"  findings_topic: {topics['findings']}",
        f"  tickets_topic: {topics['tickets']}", f"  dlq_topic: {topics['dlq']}",
    ])).replace("feature_topic: feature-events", f"feature_topic: {topics['features']}") + "metrics:\n  port: 0\n"
    config_path = tmp_path / "drift.yaml"
    config_path.write_text(text, encoding="utf-8")
    demo.write_references(tmp_path)
    config = load_config(config_path)
    with TicketStore.open(config.ticket_store_path()) as store:
        left = store.record(finding(0))  # stored, never published: a crash in between
    assert left is not None
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for line in demo.events().inference_lines[:400]:
        producer.produce(topics["inference"], value=line, key=b"k")
    assert producer.flush(30) == 0
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "run", "--config", str(config_path), "--until-end", "--json"],
        capture_output=True, timeout=240, env={**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    json.loads(proc.stdout)
    published = [t for t in read_topic(topics["tickets"]) if t["id"] == left.id]
    assert len(published) == 1 and published[0] == json.loads(json.dumps(left.to_dict()))
    with TicketStore.open(config.ticket_store_path()) as store:
        assert store.pending_events() == []
