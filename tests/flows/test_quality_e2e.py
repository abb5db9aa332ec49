"""End to end on the real broker: an upstream bug injected mid-stream shows up as data quality.

Two tenants send events drawn from the training distribution for three hours. From
10:00 on, tenant ``acme``'s producer breaks: ``income`` is null in about 30% of its
events and ``age`` arrives as text (``"41"`` instead of ``41``). `drift run
--until-end` must report ``quality.null_rate`` of income and ``quality.type_mismatch``
of age for acme, in the broken windows only, open one ticket for each, and stay
quiet for globex; PSI stays quiet everywhere, because no value distribution moved.
"""

from __future__ import annotations

import json
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
from drift import demo

pytestmark = pytest.mark.kafka

START = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
HOURS = 3
BUG_AT = START + timedelta(hours=2)
BROKEN, HEALTHY = "acme", "globex"
NULL_SHARE = 0.3
N_EVENTS = 4000
SEED = 7

CONFIG = """\
version: 1
kafka:
  bootstrap: ${{KAFKA_BOOTSTRAP:-127.0.0.1:9092}}
  inference_topic: {inference}
  findings_topic: {findings}
  tickets_topic: {tickets}
  dlq_topic: {dlq}
models:
  - name: credit-risk
    cohort: [tenant]
    window: {{size: 30m, allowed_lateness: 2m}}
    reference: {{parquet: reference.parquet}}
    features:
      age: {{type: numeric, range: [18, 120]}}
      income: {{type: numeric, min: 0}}
      country: {{type: categorical}}
    detectors:
      - psi: {{features: "*", bins: 10, warn: 0.1, alert: 0.25}}
      - quality: {{features: "*"}}
      - score: {{field: prediction.score, label_field: prediction.label}}
    policy: {{consecutive_windows: 1, cooldown: 1h}}
routing:
  - when: {{severity: alert}}
    action: ticket
tickets:
  store: sqlite:///./drift-tickets.db
baselines:
  dir: baselines
metrics:
  port: 0
engine:
  ok_findings: true  # the checks read the healthy windows' findings too
"""



def _events() -> list[bytes]:
    """Events from the training distribution; acme's producer breaks at ``BUG_AT``."""
    rng = np.random.default_rng(SEED)
    offsets = np.sort(rng.uniform(0, HOURS * 3600, N_EVENTS))
    lines = []
    for i, offset in enumerate(offsets):
        ts = START + timedelta(seconds=float(offset))
        tenant = BROKEN if i % 2 == 0 else HEALTHY
        score = round(float(rng.uniform()), 4)
        age = int(np.clip(round(rng.normal(41, 12)), 18, 95))
        features: dict[str, Any] = {
            "age": age,
            "income": round(float(rng.lognormal(8.4, 0.45)), 2),
            "country": str(rng.choice(demo.COUNTRIES, p=demo.COUNTRY_SHARES)),
        }
        if tenant == BROKEN and ts >= BUG_AT:
            features["age"] = str(age)
            if rng.random() < NULL_SHARE:
                features["income"] = None
        lines.append(orjson.dumps({
            "event_id": f"e-{i}", "ts": ts.isoformat().replace("+00:00", "Z"), "model": "credit-risk",
            "model_version": "3.2.0", "tenant": tenant, "region": "eu-west-1", "features": features,
            "prediction": {"score": score, "label": demo.label_of(score)},
        }))
    return lines


def test_upstream_bug_is_a_quality_incident_of_one_tenant(
    tmp_path: Path, kafka_bootstrap: str, read_topic: Any, kafka_topics: Any,
) -> None:
    topics = {name: kafka_topics(name) for name in ("inference", "findings", "tickets", "dlq")}
    config = tmp_path / "drift.yaml"
    config.write_text(CONFIG.format(**topics), encoding="utf-8")
    write_parquet(tmp_path / "reference.parquet", demo.reference_columns())
    lines = _events()
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for line in lines:
        producer.produce(topics["inference"], value=line, key=b"k")
    assert producer.flush(30) == 0

    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "run", "--config", str(config), "--until-end", "--json"],
        capture_output=True, timeout=240, env=env, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["events"] == summary["decoded"] == len(lines)
    assert summary["dlq"]["total"] == 0

    findings = read_topic(topics["findings"])
    assert len(findings) == summary["findings_total"] > 0
    windows = {f["window_start"] for f in findings}
    assert len(windows) == HOURS * 2
    broken_windows = {w for w in windows if datetime.fromisoformat(w) >= BUG_AT}
    assert len(broken_windows) == 2

    raised = {
        (f["cohort"]["tenant"], f["window_start"], f["detector"], f["feature"], f["severity"])
        for f in findings if f["severity"] != "ok"
    }
    assert raised == {
        (BROKEN, window, detector, feature, "alert")
        for window in broken_windows
        for detector, feature in (("quality.null_rate", "income"), ("quality.type_mismatch", "age"))
    }
    for f in findings:
        if f["cohort"]["tenant"] == BROKEN and f["window_start"] in broken_windows:
            if f["detector"] == "quality.null_rate" and f["feature"] == "income":
                assert 0.2 < f["value"] < 0.4
                assert f["evidence"]["denominator"] == f["n_current"] > 100
            if f["detector"] == "quality.type_mismatch" and f["feature"] == "age":
                assert f["value"] == 1.0
                assert f["evidence"]["examples"] and all(e.startswith("'") for e in f["evidence"]["examples"])

    # PSI is quiet: judged (not skipped) in every healthy window, ok everywhere.
    psi = [f for f in findings if f["detector"] == "psi"]
    assert psi and all(f["severity"] == "ok" for f in psi)
    healthy = [f for f in psi if f["cohort"]["tenant"] == HEALTHY or f["window_start"] not in broken_windows]
    assert all(f["skipped"] is None for f in healthy)
    # The broken tenant's null incomes are not values, and its text ages cannot be binned.
    for f in psi:
        if f["cohort"]["tenant"] == BROKEN and f["window_start"] in broken_windows:
            assert (f["feature"] == "age") == (f["skipped"] is not None)
    assert all(f["severity"] == "ok" for f in findings if f["detector"].startswith("score."))

    ticket_events = read_topic(topics["tickets"])
    by_problem: dict[tuple[str, str, str], list[str]] = {}
    for event in ticket_events:
        ticket = event["ticket"]
        key = (ticket["cohort"]["tenant"], ticket["detector"], ticket["feature"])
        by_problem.setdefault(key, []).append(event["kind"])
    assert by_problem == {
        (BROKEN, "quality.null_rate", "income"): ["opened", "updated"],
        (BROKEN, "quality.type_mismatch", "age"): ["opened", "updated"],
    }
