"""End to end on the real broker: produce, run `drift run --until-end`, read every output topic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from drift import demo

pytestmark = pytest.mark.kafka

EXTRA_MALFORMED = [
    (b'{"ts": 1762070400000, "model": "credit-risk", "features": {"income": NaN}}', "invalid_json"),
    (b'{"ts": "2026-11-02T09:00:00Z", "model": 7, "features": {}}', "wrong_type"),
    (b'{"ts": "2999-01-01T00:00:00Z", "model": "credit-risk", "features": {}}', "future_timestamp"),
]


def _config(tmp_path: Path, bootstrap: str, topics: dict[str, str]) -> Path:
    text = demo.config_text()
    text = text.replace("inference_topic: inference-events", "\n".join([
        f"inference_topic: {topics['inference']}",
        f"  findings_topic: {topics['findings']}",
        f"  tickets_topic: {topics['tickets']}",
        f"  dlq_topic: {topics['dlq']}",
    ]))
    text = text.replace("feature_topic: feature-events", f"feature_topic: {topics['features']}")
    # Every finding on the topic, ok ones included: the checks below read the healthy windows too.
    text += "metrics:\n  port: 0\nengine:\n  ok_findings: true\n"
    path = tmp_path / "drift.yaml"
    path.write_text(text, encoding="utf-8")
    demo.write_references(tmp_path)
    return path



def test_flow_on_real_kafka(tmp_path: Path, kafka_bootstrap: str, read_topic: Any, kafka_topics: Any) -> None:
    topics = {name: kafka_topics(name) for name in ("inference", "features", "findings", "tickets", "dlq")}
    config = _config(tmp_path, kafka_bootstrap, topics)
    bundle = demo.events()
    lines = bundle.inference_lines + [line for line, _ in EXTRA_MALFORMED]
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for line in bundle.feature_lines:  # the offline store's values, on their own topic
        producer.produce(topics["features"], value=line, key=b"k")
    for line in lines:
        producer.produce(topics["inference"], value=line, key=b"k")
    assert producer.flush(30) == 0

    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "run", "--config", str(config), "--until-end", "--json"],
        capture_output=True, timeout=240, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    summary = json.loads(proc.stdout)

    # Accounting: every produced message is decoded or dead-lettered; late ones are both.
    assert summary["events"] == len(lines) + len(bundle.feature_lines)
    assert summary["feature_events"] == len(bundle.feature_lines)
    assert summary["decoded"] + summary["dlq"]["total"] - summary["late"] == len(lines)
    assert summary["late"] == bundle.n_late

    dlq = read_topic(topics["dlq"])
    assert len(dlq) == bundle.n_malformed + bundle.n_late + len(EXTRA_MALFORMED)
    by_offset = {d["offset"]: d for d in dlq}
    for offset, line in enumerate(lines):
        if offset in by_offset:
            letter = by_offset[offset]
            assert letter["topic"] == topics["inference"] and letter["partition"] == 0
            original = bytes.fromhex(letter["value"]) if letter["value_encoding"] == "hex" else (letter["value"] or "").encode()
            assert original == line
    for line, reason in EXTRA_MALFORMED:
        assert by_offset[lines.index(line)]["reason"] == reason
    assert {d["reason"] for d in dlq} >= {"late", "invalid_json", "not_utf8", "unknown_model", "missing_field", "empty"}

    findings = read_topic(topics["findings"])
    assert len(findings) == summary["findings_total"] > 0
    drifted = [f for f in findings if f["detector"] == "psi"]
    alerts = [f for f in drifted if f["severity"] == "alert"]
    assert {(f["cohort"]["tenant"], f["feature"]) for f in alerts} == {
        (demo.SHIFTED_TENANT, name) for name in demo.SHIFTED_FEATURES
    }
    stable = [f for f in drifted if f["cohort"]["tenant"] == demo.STABLE_TENANT or f["feature"] in demo.STABLE_FEATURES]
    assert stable and all(f["severity"] == "ok" for f in stable)
    # The injected nulls are a quality incident of acme's income, and nothing else is.
    quality = [f for f in findings if f["detector"].startswith("quality.")]
    raised = [f for f in quality if f["severity"] != "ok"]
    assert {(f["cohort"]["tenant"], f["detector"], f["feature"], f["severity"]) for f in raised} == {
        (demo.NULL_TENANT, "quality.null_rate", demo.NULL_FEATURE, "alert")
    }
    rates = [f for f in quality if f["detector"] not in ("quality.schema_change", "quality.cardinality_growth")]
    assert all(f["evidence"]["numerator"] <= f["evidence"]["denominator"] for f in rates)
    # The text model's embeddings (JSON lists and base64) moved for one tenant only.
    embedding = [f for f in findings if f["detector"] == "embedding"]
    assert len(embedding) == 12 and all(f["skipped"] is None for f in embedding)
    assert {f["cohort"]["tenant"] for f in embedding if f["severity"] != "ok"} == {demo.DOC_SHIFTED_TENANT}
    assert all(str(row["event_id"]).endswith("-new")
               for f in embedding if f["severity"] != "ok" for row in f["evidence"]["farthest"])

    ticket_events = read_topic(topics["tickets"])
    drift_tickets = [t for t in ticket_events if t["ticket"]["detector"] == "psi"]
    opened = [t for t in drift_tickets if t["kind"] == "opened"]
    assert sorted(t["ticket"]["feature"] for t in opened) == sorted(demo.SHIFTED_FEATURES)
    assert all(t["ticket"]["cohort"]["tenant"] == demo.SHIFTED_TENANT for t in drift_tickets)
    quality_tickets = [t for t in ticket_events if t["ticket"]["detector"].startswith("quality")]
    assert [t["kind"] for t in quality_tickets] == ["opened", "updated"]
    assert all((t["ticket"]["detector"], t["ticket"]["feature"], t["ticket"]["cohort"]["tenant"]) ==
               ("quality.null_rate", demo.NULL_FEATURE, demo.NULL_TENANT) for t in quality_tickets)

    listed = subprocess.run(
        [sys.executable, "-m", "drift.cli", "tickets", "list", "--config", str(config), "--json"],
        capture_output=True, timeout=60, env=env, check=True,
    )
    tickets = json.loads(listed.stdout)
    assert len(tickets) == len(demo.SHIFTED_FEATURES) + 3
    # The value skew of credit-limit: income served in cents in us-east-1, and nothing else.
    value_skew = [f for f in findings if f["detector"] == "skew.value" and f["severity"] != "ok"]
    assert [(f["model"], f["feature"], f["cohort"]["region"]) for f in value_skew] == [
        (demo.SKEW_MODEL, "income", "us-east-1")
    ]
    assert abs(value_skew[0]["evidence"]["mean_ratio"] - 100.0) < 1.0
    assert {(t["model"], t["status"]) for t in tickets} == {
        ("credit-risk", "open"), (demo.SKEW_MODEL, "open"), (demo.DOC_MODEL, "pending_review"),
    }
    assert {t["feature"] for t in tickets if t["detector"] == "psi"} == set(demo.SHIFTED_FEATURES)
    assert [(t["detector"], t["feature"]) for t in tickets if t["detector"].startswith("quality")] == [
        ("quality.null_rate", demo.NULL_FEATURE)
    ]
    assert [(t["detector"], t["cohort"]["tenant"]) for t in tickets if t["model"] == demo.DOC_MODEL] == [
        ("embedding", demo.DOC_SHIFTED_TENANT)
    ]
