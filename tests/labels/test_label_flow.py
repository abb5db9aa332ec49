"""Delayed labels through the whole dataflow: predictions and their labels in one JSONL file.

Three tenants of a binary model make 240 predictions an hour each for six hours (1-hour
windows). Their labels arrive minutes to a day later, in the file's order of arrival; some
after the one-day horizon, some never. The model is good (recall about 0.95) but for tenant
``c`` in the window 03:00-04:00, where most positives get a low score (recall about 0.45).
Tenant ``d`` makes predictions whose labels mostly never come.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, log_loss, precision_score, recall_score

from connectors.files import write_jsonl, write_parquet
from drift import metrics
from drift.config import load_config
from drift.events import DlqReason, RawMessage
from drift.findings import Cohort, Severity
from drift.labels.events import LabelDecoder, LabelSpec, is_label_message
from drift.labels.judging import PredictionRows
from drift.labels.events import LabelBatch
from flows.labels import LabelsLogic, label_plans
from flows.runner import RunResult, run_file

START = datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)
HOURS = 6
PER_HOUR = 240
HORIZON = timedelta(days=1)
BREACH = ("c", 3)
"""Tenant and hour of the recall breach."""

CONFIG = """\
version: 1
models:
  - name: scoring
    cohort: [tenant]
    window: {{size: 1h, allowed_lateness: 5m}}
    reference: {{parquet: reference.parquet}}
    features:
      x: {{type: numeric}}
    labels: {{kind: binary, prediction: prediction.score, horizon: 1d}}
    slo:
      - recall >= 0.8
      - label_coverage >= {gate} before judging
    policy: {{consecutive_windows: 1}}
  - name: other
    features:
      x: {{type: numeric}}
    reference: {{parquet: reference.parquet}}
routing:
  - when: {{severity: alert}}
    action: ticket
tickets:
  store: sqlite:///./tickets.db
baselines:
  dir: baselines
"""


def _z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


@dataclass
class Outcome:
    """One prediction and what became of its label."""

    event_id: str
    tenant: str
    hour: int
    score: float
    label: int
    delay: timedelta | None
    """None: the label never comes."""


def _history(seed: int = 7) -> tuple[list[Outcome], list[bytes]]:
    rng = np.random.default_rng(seed)
    outcomes: list[Outcome] = []
    timed: list[tuple[datetime, int, bytes]] = []
    for hour in range(HOURS):
        for tenant in ("a", "b", "c", "d"):
            for i in range(PER_HOUR):
                ts = START + timedelta(hours=hour, seconds=float(rng.uniform(0, 3600)))
                label = int(rng.random() < 0.3)
                recall = 0.45 if (tenant, hour) == BREACH else 0.95
                hit = rng.random() < (recall if label else 0.1)
                score = float(rng.uniform(0.5, 1.0) if hit else rng.uniform(0.0, 0.5))
                draw = rng.random()
                if tenant == "d":
                    delay = timedelta(minutes=float(rng.uniform(5, 60))) if draw < 0.3 else None
                elif draw < 0.6:
                    delay = timedelta(minutes=float(rng.uniform(5, 180)))
                elif draw < 0.85:
                    delay = timedelta(hours=float(rng.uniform(3, 20)))
                elif draw < 0.95:
                    delay = timedelta(hours=float(rng.uniform(25, 30)))  # past the horizon
                else:
                    delay = None
                event_id = f"{tenant}-{hour}-{i}"
                outcomes.append(Outcome(event_id, tenant, hour, score, label, delay))
                timed.append((ts, 0, orjson.dumps({
                    "event_id": event_id, "ts": _z(ts), "model": "scoring", "tenant": tenant,
                    "features": {"x": float(rng.normal())}, "prediction": {"score": score},
                })))
                if delay is not None:
                    timed.append((ts + delay, 1, orjson.dumps({
                        "model": "scoring", "event_id": event_id, "ts": _z(ts + delay), "label": label,
                    })))
    # Traffic goes on, thinly, for a day and a half (tenant z, whose labels never come): it
    # closes the windows and moves the horizon past them.
    for k in range(3 * 36):
        ts = START + timedelta(hours=HOURS) + k * timedelta(minutes=20)
        timed.append((ts, 0, orjson.dumps({
            "event_id": f"z-{k}", "ts": _z(ts), "model": "scoring", "tenant": "z", "features": {"x": 0.0},
            "prediction": {"score": 0.5},
        })))
    timed.sort(key=lambda item: (item[0], item[1]))
    return outcomes, [line for _, _, line in timed]


def _workspace(tmp_path: Path, lines: list[bytes], gate: float = 0.5) -> Path:
    (tmp_path / "drift.yaml").write_text(CONFIG.format(gate=gate), encoding="utf-8")
    write_parquet(tmp_path / "reference.parquet", {"x": np.random.default_rng(0).normal(size=2000)})
    write_jsonl(tmp_path / "events.jsonl", lines)
    return tmp_path / "drift.yaml"


def _replay(tmp_path: Path, lines: list[bytes], gate: float = 0.5) -> RunResult:
    config = _workspace(tmp_path, lines, gate)
    return run_file(load_config(config), tmp_path / "events.jsonl")


def test_a_recall_breach_in_one_cohort_window_makes_one_alert_and_one_ticket(tmp_path: Path) -> None:
    outcomes, lines = _history()
    result = _replay(tmp_path, lines)
    slo = [f for f in result.findings if f.detector == "slo"]
    alerts = [f for f in slo if f.severity is Severity.ALERT]
    assert [(f.cohort.key, f.window.start, f.feature) for f in alerts] == [
        ("scoring|tenant=c", START + timedelta(hours=3), "recall >= 0.8")]
    assert alerts[0].evidence["sli"] < 0.6 and alerts[0].evidence["budget_remaining"] < 0
    opened = [t for t in result.tickets if t.kind == "opened"]
    assert [(t.ticket.detector, t.ticket.cohort_key, t.ticket.feature) for t in opened] == [
        ("slo", "scoring|tenant=c", "recall >= 0.8")]
    # Every cohort window of a, b and c is judged once, by coverage; d's only at the horizon,
    # below the gate: its SLO findings are skipped with the coverage as the reason.
    document = result.to_dict()
    quality = [q for q in document["quality"] if q["cohort"]["tenant"] != "z"]
    judged = [(q["cohort"]["tenant"], q["window_start"]) for q in quality if q["judged"]]
    assert len(judged) == len(set(judged)) == 4 * HOURS
    by = {(q["cohort"]["tenant"], q["judged_by"]) for q in quality if q["judged"]}
    assert by == {("a", "coverage"), ("b", "coverage"), ("c", "coverage"), ("d", "horizon")}
    skipped = [f for f in slo if f.cohort.key == "scoring|tenant=d"]
    assert len(skipped) == HOURS and all(f.skipped and "below the gate" in f.skipped for f in skipped)
    assert all(q["label_coverage"] >= 0.5 for q in quality if q["judged_by"] == "coverage")
    assert document["label_events"] == sum(o.delay is not None for o in outcomes)
    assert document["dlq"]["total"] == 0
