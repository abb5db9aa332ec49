"""Skew end to end on the real broker: inference and feature events on their own topics, `drift run --until-end`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from connectors.files import write_parquet
from drift.demo import skew

pytestmark = pytest.mark.kafka



def test_value_skew_on_real_kafka_names_the_feature_region_and_unit(
    tmp_path: Path, kafka_bootstrap: str, read_topic: Any, kafka_topics: Any,
) -> None:
    topics = {name: kafka_topics(name) for name in ("inference", "features", "findings", "tickets", "dlq")}
    text = skew.CONFIG.replace("inference_topic: inference-events", "\n".join([
        f"inference_topic: {topics['inference']}",
        f"  findings_topic: {topics['findings']}",
        f"  tickets_topic: {topics['tickets']}",
        f"  dlq_topic: {topics['dlq']}",
    ])).replace("feature_topic: feature-events", f"feature_topic: {topics['features']}")
    text += "metrics:\n  port: 0\nengine:\n  ok_findings: true\n"  # the matched values are counted on ok findings too
    config = tmp_path / "drift.yaml"
    config.write_text(text, encoding="utf-8")
    write_parquet(tmp_path / "reference.parquet", skew.reference_columns())

    bundle = skew.events()
    broken = b'{"ts": "2026-11-02T07:00:00Z", "feature_set": "customer_profile", "entity_id": 7, "values": []}'
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for line in [*bundle.features, broken]:
        producer.produce(topics["features"], value=line, key=b"f")
    for line in bundle.inference:
        producer.produce(topics["inference"], value=line, key=b"k")
    assert producer.flush(30) == 0

    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "run", "--config", str(config), "--until-end", "--json"],
        capture_output=True, timeout=240, env=env, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]

    findings = read_topic(topics["findings"])
    raised = {(f["detector"], f["feature"], f["cohort"]["region"]) for f in findings if f["severity"] != "ok"}
    # Nothing but the cents-vs-dollars income of us-east-1 alerts: as value skew, and (the same bug seen
    # against the training data) as distribution skew.
    assert raised == {
        ("skew.value", skew.SKEWED_FEATURE, skew.SKEWED_REGION),
        ("skew.jensen_shannon", skew.SKEWED_FEATURE, skew.SKEWED_REGION),
    }
    values = [f for f in findings if f["detector"] == "skew.value"]
    skewed = [f for f in values if f["feature"] == skew.SKEWED_FEATURE and f["cohort"]["region"] == skew.SKEWED_REGION]
    assert len(skewed) == 4
    for finding in skewed:
        assert finding["severity"] == "alert"
        assert finding["evidence"]["mean_ratio"] == pytest.approx(100.0, rel=1e-3)
        assert "cents vs dollars" in finding["evidence"]["unit_suspect"]
        assert finding["evidence"]["missing_offline_rate"] == 0.0
        assert finding["evidence"]["countermeasures"]
    # Every inference event found its offline value, whichever topic was read first.
    assert sum(f["evidence"]["n_match"] + f["evidence"]["n_mismatch"] for f in values if f["feature"] == "age") \
        == len(bundle.inference)

    dlq = read_topic(topics["dlq"])
    assert [(d["step_id"], d["topic"], d["offset"]) for d in dlq] == [
        ("decode_feature", topics["features"], len(bundle.features))
    ]
    tickets = read_topic(topics["tickets"])
    opened = {(t["ticket"]["detector"], t["ticket"]["feature"]) for t in tickets if t["kind"] == "opened"}
    assert opened == {("skew.value", skew.SKEWED_FEATURE), ("skew.jensen_shannon", skew.SKEWED_FEATURE)}
