"""End to end on the real broker: a canary that moved for one tenant halts, on ``kafka.halt_topic``.

Two tenants are served by a champion and a canary for three 10-minute windows. In the first
test the canary's scores move in acme's second window only; in the second its scores stay put
but its labels (on the labels topic) say it got worse there. ``drift run --until-end`` must
publish one halt, for acme's canary in that window, with its evidence, and the findings topic
must carry every comparison's verdict (``engine.ok_findings``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from test_canary import (
    CONFIG, QUALITY_CONFIG, SHIFTED_TENANT, SHIFTED_WINDOW, SIZE, START, _uniform_workspace, _workspace, events,
    events_with_labels,
)

pytestmark = pytest.mark.kafka


def _on_kafka(config: str, topics: dict[str, str]) -> str:
    """``config`` reading and writing ``topics``, every finding written."""
    names = [name for name in ("inference", "findings", "tickets", "dlq", "labels") if name in topics]
    return config.replace("version: 1\n", "\n".join([
        "version: 1", "kafka:", "  bootstrap: ${KAFKA_BOOTSTRAP:-127.0.0.1:9092}",
        *(f"  {name}_topic: {topics[name]}" for name in names), f"  halt_topic: {topics['halts']}", "",
    ])) + "metrics:\n  port: 0\nengine:\n  ok_findings: true\n"


def test_a_halt_reaches_the_halt_topic_with_its_evidence(
    tmp_path: Path, kafka_bootstrap: str, read_topic: Any, kafka_topics: Any,
) -> None:
    topics = {name: kafka_topics(name) for name in ("inference", "findings", "tickets", "dlq", "halts")}
    path = _workspace(tmp_path, _on_kafka(CONFIG, topics))
    lines = events(["acme", "globex"], 3, {(SHIFTED_TENANT, SHIFTED_WINDOW)}, sizes={"champion": 300, "canary": 250})
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for line in lines:
        producer.produce(topics["inference"], value=line, key=b"k")
    assert producer.flush(30) == 0

    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "run", "--config", str(path), "--until-end", "--json"],
        capture_output=True, timeout=240, env=env, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["decoded"] == len(lines) and summary["dlq"]["total"] == 0

    halts = read_topic(topics["halts"])
    assert len(halts) == 1 and summary["halts"] == halts
    halt = halts[0]
    assert (halt["detector"], halt["severity"], halt["feature"]) == ("canary.halt", "alert", None)
    assert halt["cohort"] == {"model": "credit-risk", "tenant": SHIFTED_TENANT, "route": "canary"}
    window_start = START + SHIFTED_WINDOW * SIZE
    assert halt["window_start"] == window_start.isoformat()
    evidence = halt["evidence"]
    assert evidence["decision"] == "halt"
    assert (evidence["label"], evidence["champion"], evidence["route"]) == ("route", "champion", "canary")
    assert evidence["cohort"] == {"model": "credit-risk", "tenant": SHIFTED_TENANT}
    assert (evidence["n_champion"], evidence["n_challenger"]) == (300, 250)
    assert [f["field"] for f in evidence["fields"]] == ["prediction.score"]
    assert evidence["fields"][0]["q_value"] <= 0.01 and evidence["fields"][0]["psi"] >= 0.25

    # Every comparison's verdict is a finding; the halted one is the only one at alert.
    verdicts = [f for f in read_topic(topics["findings"]) if f["detector"] == "canary.halt"]
    assert len(verdicts) == 2 * 3
    assert [f for f in verdicts if f["severity"] != "ok"] == [halt]


def test_a_canary_worse_on_its_labels_halts_on_the_halt_topic(
    tmp_path: Path, kafka_bootstrap: str, read_topic: Any, kafka_topics: Any,
) -> None:
    """Predictions on the inference topic, their labels on the labels topic: the canary's labels
    say it got worse for acme in one window (its scores did not move), and that halt is published."""
    topics = {name: kafka_topics(name) for name in ("inference", "labels", "findings", "tickets", "dlq", "halts")}
    path = _uniform_workspace(tmp_path, _on_kafka(QUALITY_CONFIG, topics))
    lines = events_with_labels(["acme", "globex"], 3, {(SHIFTED_TENANT, SHIFTED_WINDOW)})
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for line in lines:
        producer.produce(topics["inference" if b'"features"' in line else "labels"], value=line, key=b"k")
    assert producer.flush(30) == 0

    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "run", "--config", str(path), "--until-end", "--json"],
        capture_output=True, timeout=240, env=env, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["dlq"]["total"] == 0 and summary["label_events"] == len(lines) // 2

    halts = read_topic(topics["halts"])
    assert [(h["cohort_key"], h["window_start"], h["feature"], h["evidence"]["basis"]) for h in halts] == [
        ("credit-risk|tenant=acme|route=canary", (START + SHIFTED_WINDOW * SIZE).isoformat(), "accuracy", "quality")]
    field = halts[0]["evidence"]["fields"][0]
    assert field["champion"] - field["challenger"] == pytest.approx(field["drop"])
    assert field["drop"] >= 0.03 and field["q_value"] <= 0.01
    verdicts = [f for f in read_topic(topics["findings"]) if f["detector"] == "canary.halt"]
    assert {f["feature"] for f in verdicts} == {None, "accuracy"}
