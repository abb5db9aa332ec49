"""Routing and human review end to end on the real broker.

The demo's config on Kafka: ``doc-classifier`` is high impact, so its embedding drift lands
in ``pending_review`` (two distinct approvers); ``credit-risk`` is medium impact, so its
tickets open directly. Approving with ``drift review approve`` (never by the requester)
emits the retraining request, with the ticket's whole context, on the retrain topic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from drift import demo
from drift.tickets import SYSTEM_IDENTITY

pytestmark = pytest.mark.kafka


def _config(tmp_path: Path, topics: dict[str, str]) -> Path:
    text = demo.config_text().replace("inference_topic: inference-events", "\n".join([
        f"inference_topic: {topics['inference']}",
        f"  findings_topic: {topics['findings']}",
        f"  tickets_topic: {topics['tickets']}",
        f"  dlq_topic: {topics['dlq']}",
        f"  retrain_topic: {topics['retrain']}",
    ])).replace("feature_topic: feature-events", f"feature_topic: {topics['features']}")
    text += "metrics:\n  port: 0\n"
    path = tmp_path / "drift.yaml"
    path.write_text(text, encoding="utf-8")
    demo.write_references(tmp_path)
    return path


def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    """(key, value) of every message of a one-partition topic, up to its high watermark."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[tuple[bytes | None, dict[str, Any]]] = []
        while len(out) < high:
            message = consumer.poll(10)
            assert message is not None, f"timed out reading {topic}: {len(out)} of {high}"
            assert message.error() is None, message.error()
            out.append((message.key(), json.loads(message.value())))
        return out
    finally:
        consumer.close()


def test_high_impact_drift_waits_for_two_reviewers_and_approval_emits_the_retrain_request(
    tmp_path: Path, kafka_bootstrap: str, kafka_topics: Any,
) -> None:
    names = ("inference", "features", "findings", "tickets", "dlq", "retrain")
    topics = {name: kafka_topics(name) for name in names}
    config = _config(tmp_path, topics)
    bundle = demo.events()
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for line in bundle.feature_lines:
        producer.produce(topics["features"], value=line, key=b"k")
    for line in bundle.inference_lines:
        producer.produce(topics["inference"], value=line, key=b"k")
    assert producer.flush(30) == 0

    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}

    def drift(*args: str) -> subprocess.CompletedProcess[str]:
        # `--reviewer NAME` of a person acting for themselves: the identity comes from DRIFT_REVIEWER.
        rest, who = list(args), {}
        if "--reviewer" in rest:
            i = rest.index("--reviewer")
            who = {"DRIFT_REVIEWER": rest[i + 1]}
            del rest[i:i + 2]
        return subprocess.run([sys.executable, "-m", "drift.cli", *rest], capture_output=True, text=True,
                              timeout=240, env={**env, **who}, check=False)

    run = drift("run", "--config", str(config), "--until-end", "--json")
    assert run.returncode == 0, run.stderr[-3000:]

    # Routing: the high-impact model's ticket is pending review, the medium-impact ones are open.
    events = [value for _, value in _read_all(kafka_bootstrap, topics["tickets"])]
    latest = {e["ticket"]["id"]: e["ticket"] for e in events}
    doc = [t for t in latest.values() if t["model"] == demo.DOC_MODEL]
    credit = [t for t in latest.values() if t["model"] == "credit-risk"]
    assert len(doc) == 1 and credit
    assert (doc[0]["status"], doc[0]["action"], doc[0]["approvals_required"]) == ("pending_review", "human_review", 2)
    assert doc[0]["requester"] == SYSTEM_IDENTITY and doc[0]["cohort"]["tenant"] == demo.DOC_SHIFTED_TENANT
    assert all((t["status"], t["action"]) == ("open", "ticket") for t in credit)
    ticket_id = doc[0]["id"]

    queue = json.loads(drift("review", "list", "--config", str(config), "--json").stdout)
    assert [(p["id"], p["approvals_missing"]) for p in queue] == [(ticket_id, 2)]

    # The requester can never approve; a low-impact ticket is not in review at all.
    refused = drift("review", "approve", ticket_id, "--reviewer", SYSTEM_IDENTITY, "--config", str(config))
    assert refused.returncode == 1 and "cannot approve" in refused.stderr
    not_pending = drift("review", "approve", credit[0]["id"], "--reviewer", "alice", "--config", str(config))
    assert not_pending.returncode == 1

    first = drift("review", "approve", ticket_id, "--reviewer", "alice", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert "1 more approval(s) needed" in first.stdout
    # The same reviewer counts once: dual control needs a second, distinct person.
    twice = drift("review", "approve", ticket_id, "--reviewer", "alice", "--config", str(config))
    assert twice.returncode == 1
    assert _read_all(kafka_bootstrap, topics["retrain"]) == [], "no request before the last approval"

    second = drift("review", "approve", ticket_id, "--reviewer", "bob", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert f"published to {topics['retrain']}" in second.stdout

    requests = _read_all(kafka_bootstrap, topics["retrain"])
    assert len(requests) == 1
    key, request = requests[0]
    assert key is not None and key.decode() == request["key"]
    assert request["kind"] == "retrain_request" and request["ticket_id"] == ticket_id
    assert request["model"] == demo.DOC_MODEL and request["cohort"] == doc[0]["cohort"]
    assert request["requested_by"] == SYSTEM_IDENTITY and sorted(request["approved_by"]) == ["alice", "bob"]
    assert request["ticket"]["status"] == "approved" and request["ticket"]["occurrences"] == doc[0]["occurrences"]
    # The whole context: what the ticket events carried (traffic, findings, countermeasures, impact).
    context = request["context"]
    last_context = [e["context"] for e in events if e["ticket"]["id"] == ticket_id][-1]
    assert set(last_context) <= set(context)
    assert [c["detector"] for c in context["countermeasures"]] == ["embedding"]
    assert context["countermeasures"] == last_context["countermeasures"]

    assert json.loads(drift("review", "list", "--config", str(config), "--json").stdout) == []
    assert drift("audit", "verify", "--config", str(config)).returncode == 0
