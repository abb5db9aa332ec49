"""The ticket step keeps the ticket-state gauges (the alert rules' input) in step with the store."""

from __future__ import annotations

import urllib.request
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from connectors.files import write_jsonl
from connectors.ticket_store import open_store
from drift import demo
from drift.config import load_config
from drift.health import Health, serve
from flows.runner import run_file


def test_open_tickets_and_their_cohorts_are_exported_after_a_run(tmp_path: Path) -> None:
    (tmp_path / "drift.yaml").write_text(demo.config_text(), encoding="utf-8")
    demo.write_references(tmp_path)
    write_jsonl(tmp_path / "events.jsonl", demo.events().lines)
    config = load_config(tmp_path / "drift.yaml")
    port = serve("127.0.0.1", 0, Health()).server_port  # the job's own HTTP server
    run_file(config, tmp_path / "events.jsonl")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}

    with open_store(config) as store:
        live = store.live()
    active = [t for t in live if t.active]
    assert active  # the demo opens drift, quality and embedding tickets
    expected = Counter((t.model, t.detector, t.severity.value, t.action) for t in active)
    got = {(s.labels["model"], s.labels["detector"], s.labels["severity"], s.labels["routing"]): s.value
           for s in families["drift_tickets_open"].samples}
    assert got == expected
    info = {s.labels["ticket"]: s.labels for s in families["drift_ticket_info"].samples}
    assert set(info) == {t.id for t in active}
    for ticket in active:
        assert info[ticket.id]["feature"] == (ticket.feature or "-")
        assert info[ticket.id]["cohort"] == "|".join(f"{k}={v}" for k, v in sorted(ticket.cohort.items())
                                                     if k != "model")
    queue = {s.labels["model"]: s.value for s in families["drift_review_queue"].samples}
    assert set(queue) >= {m.name for m in config.models}
    assert sum(queue.values()) == sum(1 for t in live if t.status == "pending_review")
    assert families["drift_ticket_state_timestamp_seconds"].samples[0].value > 0
