"""Delayed labels end to end on the real broker: predictions on the inference topic, their labels
minutes to hours later on the labels topic, `drift run --until-end`: a recall breach in one
cohort window makes one ticket, with the SLO's context."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer

from connectors.files import write_parquet

pytestmark = pytest.mark.kafka

START = datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)
HOURS = 6
PER_HOUR = 240
BREACH = ("c", 3)

CONFIG = """\
version: 1
kafka:
  bootstrap: {bootstrap}
  inference_topic: {inference}
  labels_topic: {labels}
  findings_topic: {findings}
  tickets_topic: {tickets}
  dlq_topic: {dlq}
  halt_topic: {halts}
models:
  - name: scoring
    cohort: [tenant]
    window: {{size: 1h, allowed_lateness: 5m}}
    reference: {{parquet: reference.parquet}}
    features:
      x: {{type: numeric}}
    labels: {{kind: binary, prediction: prediction.score, horizon: 2d}}
    slo:
      - recall >= 0.8
      - label_coverage >= 0.5 before judging
routing:
  - when: {{severity: alert}}
    action: ticket
tickets:
  store: sqlite:///./tickets.db
baselines:
  dir: baselines
metrics:
  port: 0
"""


def _z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _events(seed: int = 3) -> tuple[list[bytes], list[bytes], int]:
    """(predictions, labels, labels never sent) in the order they happen."""
    rng = np.random.default_rng(seed)
    predictions: list[tuple[datetime, bytes]] = []
    labels: list[tuple[datetime, bytes]] = []
    never = 0
    for hour in range(HOURS):
        for tenant in ("a", "b", "c"):
            for i in range(PER_HOUR):
                ts = START + timedelta(hours=hour, seconds=float(rng.uniform(0, 3600)))
                label = int(rng.random() < 0.3)
                recall = 0.45 if (tenant, hour) == BREACH else 0.95
                hit = rng.random() < (recall if label else 0.1)
                score = float(rng.uniform(0.5, 1.0) if hit else rng.uniform(0.0, 0.5))
                event_id = f"{tenant}-{hour}-{i}"
                predictions.append((ts, orjson.dumps({
                    "event_id": event_id, "ts": _z(ts), "model": "scoring", "tenant": tenant,
                    "features": {"x": float(rng.normal())}, "prediction": {"score": score},
                })))
                if rng.random() < 0.1:
                    never += 1
                    continue
                known = ts + timedelta(minutes=float(rng.uniform(2, 150)))
                labels.append((known, orjson.dumps(
                    {"model": "scoring", "event_id": event_id, "ts": _z(known), "label": label})))
    for k in range(13):  # traffic goes on for two hours: every window of the six closes
        ts = START + timedelta(hours=HOURS, minutes=10 * k)
        predictions.append((ts, orjson.dumps({
            "event_id": f"z-{k}", "ts": _z(ts), "model": "scoring", "tenant": "z", "features": {"x": 0.0},
            "prediction": {"score": 0.5},
        })))
    predictions.sort(key=lambda item: item[0])
    labels.sort(key=lambda item: item[0])
    return [line for _, line in predictions], [line for _, line in labels], never


def test_a_recall_breach_on_real_kafka_opens_one_ticket_with_the_slo_context(
    tmp_path: Path, kafka_bootstrap: str, read_topic: Any, kafka_topics: Any,
) -> None:
    topics = {name: kafka_topics(name) for name in ("inference", "labels", "findings", "tickets", "dlq", "halts")}
    config = tmp_path / "drift.yaml"
    config.write_text(CONFIG.format(bootstrap=kafka_bootstrap, **topics), encoding="utf-8")
    write_parquet(tmp_path / "reference.parquet", {"x": np.random.default_rng(0).normal(size=2000)})

    predictions, labels, _ = _events()
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for line in predictions:
        producer.produce(topics["inference"], value=line, key=b"p")
    assert producer.flush(30) == 0
    # The labels come later, on their own topic, with one that is not a label event.
    for line in [*labels, b'{"model": "scoring", "event_id": "a-0-0", "ts": "2026-11-02T01:00:00Z"}']:
        producer.produce(topics["labels"], value=line, key=b"l")
    assert producer.flush(30) == 0

    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "run", "--config", str(config), "--until-end", "--json"],
        capture_output=True, timeout=240, env=env, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    summary = orjson.loads(proc.stdout)
    assert summary["label_events"] == len(labels)

    tickets = read_topic(topics["tickets"])
    opened = [t for t in tickets if t["kind"] == "opened"]
    assert [(t["ticket"]["detector"], t["ticket"]["cohort_key"], t["ticket"]["feature"]) for t in opened] == [
        ("slo", "scoring|tenant=c", "recall >= 0.8")]
    ticket = opened[0]["ticket"]
    assert ticket["first_window_start"] == _z(START + timedelta(hours=3)).replace("Z", "+00:00")
    evidence = ticket["last_finding"]["evidence"]
    assert evidence["slo"] == "recall >= 0.8" and evidence["sli"] < 0.8 and evidence["budget_remaining"] < 0
    assert evidence["label_coverage"] >= 0.5 and evidence["p_value"] <= evidence["alpha"]

    findings = read_topic(topics["findings"])
    alerts = [(f["cohort_key"], f["window_start"]) for f in findings if f["detector"] == "slo" and f["severity"] == "alert"]
    assert alerts == [("scoring|tenant=c", (START + timedelta(hours=3)).isoformat())]
    dlq = read_topic(topics["dlq"])
    assert [(d["step_id"], d["reason"], d["topic"]) for d in dlq] == [("decode_label", "missing_field", topics["labels"])]
    # Every cohort window of the six hours was judged on its labels.
    judged = {(q["cohort"]["tenant"], q["window_start"]) for q in summary["quality"] if q["judged"]}
    assert judged >= {(t, (START + timedelta(hours=h)).isoformat()) for t in "abc" for h in range(HOURS)}
