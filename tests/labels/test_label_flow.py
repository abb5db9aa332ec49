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
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, log_loss, precision_score, recall_score

from connectors.files import write_jsonl, write_parquet
from drift import metrics
from drift.config import load_config
from drift.events import DlqReason, RawMessage
from drift.findings import Cohort, Severity
from drift.labels.events import LabelDecoder, LabelSpec, is_label_message
from drift.labels.events import LabelBatch
from drift.labels.judging import LabelState, PredictionRows
from drift.windowing import to_micros
from flows.labels import LabelsLogic, ModelBatch, label_plans
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


def _counter(counter: Any, *labels: str) -> float:
    value: float = counter.labels(*labels)._value.get()
    return value


def _window(o: Outcome) -> tuple[str, str]:
    return o.tenant, (START + timedelta(hours=o.hour)).isoformat()


def test_quality_of_each_cohort_window_equals_scikit_learn_on_the_labels_that_joined(tmp_path: Path) -> None:
    # A gate no window reaches (some labels never come): every window is judged at the
    # horizon, with every label that arrived within it.
    outcomes, lines = _history(seed=11)
    result = _replay(tmp_path, lines, gate=1.0)
    quality = {(q["cohort"]["tenant"], q["window_start"]): q for q in result.to_dict()["quality"]
               if q["cohort"]["tenant"] != "z"}
    assert len(quality) == 4 * HOURS and {q["judged_by"] for q in quality.values()} == {"horizon"}
    for key, q in quality.items():
        mine = [o for o in outcomes if _window(o) == key]
        joined = [o for o in mine if o.delay is not None and o.delay <= HORIZON]
        y = np.array([o.label for o in joined])
        p = np.array([o.score for o in joined])
        assert (q["n_predictions"], q["n_labelled"]) == (len(mine), len(joined))
        assert q["label_coverage"] == pytest.approx(len(joined) / len(mine))
        predicted = (p >= 0.5).astype(int)
        assert q["precision"] == pytest.approx(precision_score(y, predicted, zero_division=np.nan))
        assert q["recall"] == pytest.approx(recall_score(y, predicted, zero_division=np.nan))
        assert q["f1"] == pytest.approx(f1_score(y, predicted, zero_division=np.nan))
        assert q["accuracy"] == pytest.approx(accuracy_score(y, predicted))
        assert q["log_loss"] == pytest.approx(log_loss(y, p, labels=[0, 1]))
        assert q["brier"] == pytest.approx(brier_score_loss(y, p))
        # Expected calibration error and the reliability table, bin by bin (10 equal bins).
        bins = np.minimum((p * 10).astype(int), 9)
        ece = sum(abs(p[bins == b].sum() - y[bins == b].sum()) for b in range(10)) / len(joined)
        assert q["ece"] == pytest.approx(ece)
        table = q["reliability"]
        assert [row["count"] for row in table] == [int((bins == b).sum()) for b in range(10)]
        for b, row in enumerate(table):
            if row["count"]:
                assert row["mean_score"] == pytest.approx(p[bins == b].mean())
                assert row["mean_label"] == pytest.approx(y[bins == b].mean())
            else:
                assert row["mean_score"] is None and row["mean_label"] is None


def test_the_coverage_gate_judges_a_window_once_as_its_labels_reach_it(tmp_path: Path) -> None:
    outcomes, lines = _history()
    joined_before = _counter(metrics.LABELS, "scoring", "joined")
    after_before = _counter(metrics.LABELS, "scoring", "after_judging")
    judged_before = _counter(metrics.LABEL_WINDOWS_JUDGED, "scoring", "coverage")
    result = _replay(tmp_path, lines, gate=0.5)
    quality = [q for q in result.to_dict()["quality"] if q["cohort"]["tenant"] != "z"]
    by_coverage = [q for q in quality if q["judged_by"] == "coverage"]
    assert len(by_coverage) == 3 * HOURS == _counter(metrics.LABEL_WINDOWS_JUDGED, "scoring", "coverage") - judged_before
    for q in by_coverage:
        # Judged as soon as half its labels were in (within one source batch), not with all of them.
        eventually = sum(1 for o in outcomes if _window(o) == (q["cohort"]["tenant"], q["window_start"])
                         and o.delay is not None and o.delay <= HORIZON)
        assert 0.5 <= q["label_coverage"] and q["n_labelled"] < eventually
    # Every label that joined was counted once: in its window's judgement, or as after_judging.
    joined = _counter(metrics.LABELS, "scoring", "joined") - joined_before
    after = _counter(metrics.LABELS, "scoring", "after_judging") - after_before
    within = sum(1 for o in outcomes if o.delay is not None and o.delay <= HORIZON)
    assert joined == within
    assert sum(q["n_labelled"] for q in quality) + after == joined


def test_windows_whose_labels_do_not_come_are_judged_at_the_horizon_and_their_slos_skipped(tmp_path: Path) -> None:
    outcomes, lines = _history()
    expired_before = _counter(metrics.LABEL_EVICTIONS, "scoring", "expired")
    unmatched_before = _counter(metrics.LABELS, "scoring", "unmatched")
    result = _replay(tmp_path, lines)
    d = [q for q in result.to_dict()["quality"] if q["cohort"]["tenant"] == "d"]
    assert [q["judged_by"] for q in d] == ["horizon"] * HOURS
    assert all(q["label_coverage"] < 0.5 for q in d)
    slo = [f for f in result.findings if f.detector == "slo" and f.cohort.key == "scoring|tenant=d"]
    assert len(slo) == HOURS
    for finding in slo:
        assert finding.severity is Severity.OK and finding.skipped is not None
        assert "below the gate 0.5" in finding.skipped
    assert not [t for t in result.tickets if t.ticket.cohort_key == "scoring|tenant=d"]
    # What never got a label within the horizon left the join state as expired; labels later than
    # the horizon found no prediction.
    newest = START + timedelta(hours=HOURS) + (3 * 36 - 1) * timedelta(minutes=20)
    tail_expired = sum(1 for k in range(3 * 36)
                       if START + timedelta(hours=HOURS) + k * timedelta(minutes=20) < newest - HORIZON)
    lost = sum(1 for o in outcomes if o.delay is None or o.delay > HORIZON)
    assert _counter(metrics.LABEL_EVICTIONS, "scoring", "expired") - expired_before == lost + tail_expired
    late_labels = sum(1 for o in outcomes if o.delay is not None and o.delay > HORIZON)
    assert _counter(metrics.LABELS, "scoring", "unmatched") - unmatched_before == late_labels


BAD_LABELS = [
    (b'{"model": "scoring", "event_id": "a-0-0", "label": 1}', DlqReason.MISSING_FIELD, "ts"),
    (b'{"event_id": "a-0-0", "ts": "2026-11-02T05:00:00Z", "label": 1}', DlqReason.MISSING_FIELD, "model"),
    (b'{"model": "scoring", "ts": "2026-11-02T05:00:00Z", "label": 1}', DlqReason.MISSING_FIELD, "event_id"),
    (b'{"model": "nope", "event_id": "a-0-0", "ts": "2026-11-02T05:00:00Z", "label": 1}',
     DlqReason.UNKNOWN_MODEL, "model"),
    (b'{"model": "other", "event_id": "a-0-0", "ts": "2026-11-02T05:00:00Z", "label": 1}',
     DlqReason.UNKNOWN_MODEL, "model"),
    (b'{"model": "scoring", "event_id": "a-0-0", "ts": "2026-11-02T05:00:00Z", "label": 2}',
     DlqReason.WRONG_TYPE, "label"),
    (b'{"model": "scoring", "event_id": "a-0-0", "ts": "2026-11-02T05:00:00Z", "label": "yes"}',
     DlqReason.WRONG_TYPE, "label"),
    (b'{"model": "scoring", "event_id": "a-0-0", "ts": "yesterday", "label": 0}', DlqReason.BAD_TIMESTAMP, "ts"),
    (b'{"model": "scoring", "event_id": "a-0-0", "ts": "2036-11-02T05:00:00Z", "label": 0}',
     DlqReason.FUTURE_TIMESTAMP, "ts"),
    (b'{"model": "scoring", "event_id": [1], "ts": "2026-11-02T05:00:00Z", "label": 0}', DlqReason.WRONG_TYPE,
     "event_id"),
    (b'{"model": "scoring", "event_id": "a-0-0", "ts": "2026-11-02T05:00:00Z", "label": null}',
     DlqReason.MISSING_FIELD, "label"),
]


def test_bad_label_events_go_to_the_dead_letters_with_their_reason(tmp_path: Path) -> None:
    _, lines = _history()
    at = len(lines) // 2
    result = _replay(tmp_path, [*lines[:at], *(line for line, _, _ in BAD_LABELS), *lines[at:]])
    dead = sorted(result.dlq, key=lambda d: d.offset)
    assert [(d.offset, d.reason, d.field) for d in dead] == [
        (at + i, reason, field) for i, (_, reason, field) in enumerate(BAD_LABELS)]
    assert all(d.step_id == "decode_label" and d.value == BAD_LABELS[i][0] for i, d in enumerate(dead))
    assert "has no labels: configured" in dead[4].detail and "is not configured" in dead[3].detail
    assert result.to_dict()["events"] == len(lines) + len(BAD_LABELS)


@pytest.mark.parametrize("value", [b"not json", b"", b"[1, 2]", b'{"model": "scoring", "event_id": "e", "ts": 1e400, "label": 1}'])
def test_the_labels_topic_refuses_what_is_not_a_label_object(value: bytes) -> None:
    decoder = LabelDecoder({"scoring": LabelSpec("binary")}, frozenset({"scoring"}))
    raw = RawMessage(value, "labels", 0, 5)
    assert is_label_message(raw, "labels")
    letter = decoder(raw)
    assert not isinstance(letter, LabelBatch) and getattr(letter, "reason", None) in (
        DlqReason.INVALID_JSON, DlqReason.EMPTY, DlqReason.NOT_AN_OBJECT, DlqReason.BAD_TIMESTAMP)


def test_label_kinds_are_checked_against_the_model() -> None:
    specs = {"m": LabelSpec("multiclass", n_classes=3), "r": LabelSpec("regression"), "b": LabelSpec("binary")}
    decoder = LabelDecoder(specs, frozenset(specs))

    def decode(model: str, label: Any) -> Any:
        line = orjson.dumps({"model": model, "event_id": 7, "ts": "2026-11-02T05:00:00Z", "label": label})
        return decoder(RawMessage(line, "labels", 0, 0))

    assert decode("m", 2).label == 2.0 and decode("m", 2).key == "7"
    assert decode("m", 3).reason is DlqReason.WRONG_TYPE and decode("m", 1.5).reason is DlqReason.WRONG_TYPE
    assert decode("r", -3.25).label == -3.25 and decode("r", True).reason is DlqReason.WRONG_TYPE
    assert decode("b", True).label == 1.0 and decode("b", 0.0).label == 0.0
    assert decode("b", 0.5).reason is DlqReason.WRONG_TYPE


def test_drift_schema_label_prints_the_label_event_schema_and_good_events_satisfy_it() -> None:
    import json
    import subprocess
    import sys

    import jsonschema

    from drift.schemas import schema

    proc = subprocess.run([sys.executable, "-m", "drift.cli", "schema", "label"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document == schema("label")
    validator = jsonschema.Draft202012Validator(document)
    _, lines = _history()
    labels = [orjson.loads(line) for line in lines if b'"label"' in line][:50]
    assert labels and all(validator.is_valid(label) for label in labels)
    assert not validator.is_valid({"model": "scoring", "ts": 1, "label": 1, "features": {}})
    assert not validator.is_valid({"model": "scoring", "event_id": "e", "ts": 1})


def _items(lines: list[bytes], batch: int = 2000) -> list[ModelBatch]:
    """The file's lines as the labels step gets them: one item per source batch (labels, then
    predictions), decoded here without the dataflow."""
    decoder = LabelDecoder({"scoring": LabelSpec("binary")}, frozenset({"scoring"}),
                           now=lambda: START + timedelta(days=30))
    out = []
    for i in range(0, len(lines), batch):
        part = [RawMessage(line, "file:events.jsonl", 0, i + j) for j, line in enumerate(lines[i:i + batch])]
        labels, dead = decoder.decode_batch([m for m in part if is_label_message(m, None)])
        assert not dead
        events = [orjson.loads(m.value or b"") for m in part if not is_label_message(m, None)]
        tenants = sorted({e["tenant"] for e in events})
        cohorts = [Cohort("scoring", (("tenant", t),)) for t in tenants]
        predictions = PredictionRows(
            "scoring", pa.array([e["event_id"] for e in events]),
            np.array([tenants.index(e["tenant"]) for e in events], dtype=np.int64), cohorts,
            np.array([to_micros(datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))) for e in events]),
            np.array([e["prediction"]["score"] for e in events]), np.ones(len(events), dtype=bool),
        ) if events else None
        out.append(ModelBatch("scoring", predictions, labels[0] if labels else None))
    return out


def _documents(outputs: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(orjson.dumps(item.to_dict())) for item in outputs]  # NaN as null: comparable


def test_the_labels_step_resumed_from_a_snapshot_goes_on_as_if_never_stopped(tmp_path: Path) -> None:
    _, lines = _history()
    plan = label_plans(load_config(_workspace(tmp_path, lines)))[0]
    items = _items(lines)
    clock = lambda: START + timedelta(days=30)  # noqa: E731 - a fixed wall clock: no idle time passes

    def run(logic: LabelsLogic, part: list[ModelBatch], end: bool) -> list[Any]:
        out: list[Any] = []
        for item in part:
            out.extend(logic.on_item(item)[0])
        if end:
            out.extend(logic.on_eof()[0])
        return out

    whole = run(LabelsLogic(plan, clock, None), items, end=True)
    assert [d["cohort_key"] for d in _documents(whole) if d.get("severity") == "alert"] == ["scoring|tenant=c"]
    for cut in (1, len(items) // 2, len(items) - 1):
        first = LabelsLogic(plan, clock, None)
        before = run(first, items[:cut], end=False)
        snapshot = first.snapshot()
        first.on_item(items[cut])  # the snapshot is a copy: the live state moving on does not change it
        resumed = LabelsLogic(plan, clock, pickle.loads(pickle.dumps(snapshot)))
        after = run(resumed, items[cut:], end=True)
        assert _documents(before + after) == _documents(whole)
    # The snapshot holds arrays, not an object per prediction or window.
    state, book = first.snapshot()
    assert len(pickle.dumps((state, book))) < 200 * len(state.pending) + 100_000


KINDS_CONFIG = """\
version: 1
models:
  - name: cls
    window: {size: 1h, allowed_lateness: 1m}
    reference: {parquet: reference.parquet}
    features:
      x: {type: numeric}
    labels: {kind: multiclass, n_classes: 3, prediction: prediction.class}
    slo:
      - accuracy >= 0.5
      - label_coverage >= 1.0 before judging
  - name: reg
    window: {size: 1h, allowed_lateness: 1m}
    reference: {parquet: reference.parquet}
    features:
      x: {type: numeric}
      request: {type: categorical}
    labels: {kind: regression, prediction: prediction.value, join_key: request}
    slo:
      - rmse <= 2.0
      - label_coverage >= 1.0 before judging
"""


def test_multiclass_and_regression_models_with_their_own_prediction_field_and_join_key(tmp_path: Path) -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    rng = np.random.default_rng(5)
    timed: list[tuple[datetime, bytes]] = []
    truth: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for hour in range(3):
        for i in range(150):
            ts = START + timedelta(hours=hour, seconds=float(rng.uniform(0, 3600)))
            known = ts + timedelta(minutes=float(rng.uniform(1, 50)))
            y_class = int(rng.integers(0, 3))
            p_class = y_class if rng.random() < 0.7 else int(rng.integers(0, 3))
            timed.append((ts, orjson.dumps({"event_id": f"c{hour}-{i}", "ts": _z(ts), "model": "cls",
                                            "features": {"x": 1.0}, "prediction": {"class": p_class}})))
            timed.append((known, orjson.dumps({"model": "cls", "event_id": f"c{hour}-{i}", "ts": _z(known),
                                               "label": y_class})))
            y_value = float(rng.normal(10, 3))
            p_value = y_value + float(rng.normal(0, 1.5))
            timed.append((ts, orjson.dumps({"event_id": f"r{hour}-{i}", "ts": _z(ts), "model": "reg",
                                            "features": {"x": 1.0, "request": f"q{hour}-{i}"},
                                            "prediction": {"value": p_value}})))
            timed.append((known, orjson.dumps({"model": "reg", "request": f"q{hour}-{i}", "ts": _z(known),
                                               "label": y_value})))
            truth.setdefault(("cls", hour), []).append((p_class, y_class))
            truth.setdefault(("reg", hour), []).append((p_value, y_value))
    tail = START + timedelta(hours=4)
    for model, extra in (("cls", {"prediction": {"class": 0}}), ("reg", {"prediction": {"value": 0.0}})):
        features = {"x": 1.0, "request": "end"} if model == "reg" else {"x": 1.0}
        timed.append((tail, orjson.dumps({"event_id": "end", "ts": _z(tail), "model": model, "features": features,
                                          **extra})))
    timed.sort(key=lambda item: item[0])
    (tmp_path / "drift.yaml").write_text(KINDS_CONFIG, encoding="utf-8")
    write_parquet(tmp_path / "reference.parquet", {"x": np.ones(100), "request": np.array(["q"] * 100)})
    write_jsonl(tmp_path / "events.jsonl", [line for _, line in timed])
    result = run_file(load_config(tmp_path / "drift.yaml"), tmp_path / "events.jsonl")

    assert result.dlq == []
    judged = {(q["model"], q["window_start"]): q for q in result.to_dict()["quality"] if q["judged"]}
    assert len(judged) == 6
    for (model, hour), pairs in truth.items():
        q = judged[(model, (START + timedelta(hours=hour)).isoformat())]
        p, y = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
        assert q["judged_by"] == "coverage" and q["n_labelled"] == q["n_predictions"] == len(pairs)
        if model == "cls":
            assert q["accuracy"] == pytest.approx(accuracy_score(y, p))
            for name, score in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
                assert q[name] == pytest.approx(score(y, p, average="macro", zero_division=np.nan)), name
            assert "log_loss" not in q and "mae" not in q
        else:
            assert q["mae"] == pytest.approx(mean_absolute_error(y, p))
            assert q["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, p)))
            assert "recall" not in q
    slo = {(f.cohort.model, f.feature) for f in result.findings if f.detector == "slo"}
    assert slo == {("cls", "accuracy >= 0.5"), ("reg", "rmse <= 2.0")}


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    batch=st.integers(1, 60),
    apart=st.booleans(),
)
def test_any_batching_joins_the_labels_within_the_horizon_once_and_judges_each_window_once(
    seed: int, batch: int, apart: bool,
) -> None:
    """Predictions and labels in the order they happened, cut into batches of any size; a batch's
    labels in the same item as its predictions (a file), or in an item of their own after them
    (``apart``: another topic, read behind)."""
    rng = np.random.default_rng(seed)
    horizon, lateness = timedelta(hours=2), timedelta(minutes=2)
    state = LabelState("m", "binary", timedelta(minutes=30), lateness, horizon, cap=10_000)
    h_us = horizon // timedelta(microseconds=1)
    timed: list[tuple[int, int, str, float, int]] = []  # (ts µs, 0 prediction / 1 label, id, value, its prediction's ts)
    for i in range(int(rng.integers(1, 120))):
        ts = to_micros(START) + int(rng.integers(0, 4 * 3600 * 10**6))
        timed.append((ts, 0, f"e{i}", float(rng.random()), ts))
        if rng.random() < 0.8:
            timed.append((ts + int(rng.integers(0, 3 * 3600 * 10**6)), 1, f"e{i}", float(rng.integers(0, 2)), ts))
    timed.sort()
    within = [t for t in timed if t[1] == 1 and t[0] - t[4] <= h_us]
    clock = START + timedelta(days=30)
    cohort = Cohort("m", (("tenant", "a"),))
    judged: list[tuple[str, datetime]] = []
    n_labelled = 0
    sure = 0
    """Labels that must join: within the horizon of their prediction and, read behind their
    batch's predictions (``apart``), not yet past it at the newest of them (else the clock has
    moved on: labels must not fall further behind the predictions than the horizon)."""

    def take(found: list[Any]) -> None:
        nonlocal n_labelled
        for j in found:
            judged.extend((c.key, w.start) for c, w in zip(j.cohorts, j.windows))
            n_labelled += int(j.counts.n_labelled.sum())

    for start in range(0, len(timed), batch):
        part = timed[start:start + batch]
        predictions = [p for p in part if p[1] == 0]
        labels = [p for p in part if p[1] == 1]
        newest = max((p[0] for p in timed[:start + batch] if p[1] == 0), default=0)
        sure += sum(1 for p in labels if p[0] - p[4] <= h_us and (not apart or p[0] > newest or newest - p[4] <= h_us))
        label_args = (pa.array([p[2] for p in labels], type=pa.string()), np.array([p[3] for p in labels]),
                      np.array([p[0] for p in labels], dtype=np.int64))
        if labels and not apart:
            take(state.add_labels(*label_args, clock))
        if predictions:
            take(state.add_predictions(PredictionRows(
                "m", pa.array([p[2] for p in predictions]), np.zeros(len(predictions), dtype=np.int64), [cohort],
                np.array([p[0] for p in predictions], dtype=np.int64), np.array([p[3] for p in predictions]),
                np.ones(len(predictions), dtype=bool)), clock))
        if labels and apart:
            take(state.add_labels(*label_args, clock))
    take(state.flush(clock))
    assert state.pending.n_joined == sure
    if not apart:
        assert sure == len(within)  # in the order they happened, every one joins
    assert len(judged) == len(set(judged))
    waiting = int(state.waiting()[2].n_labelled.sum())
    assert n_labelled + state.counters.labels.get("after_judging", 0) + waiting == state.pending.n_joined


def _run_with_workers(tmp_path: Path, lines: list[bytes], workers: int) -> list[Any]:
    from bytewax.testing import TestingSource, cluster_main, run_main

    from connectors.memory import ListSink
    from flows.pipeline import Outputs, build_flow
    from flows.runner import load_profiles

    tmp_path.mkdir()
    config = load_config(_workspace(tmp_path, lines))
    raw = [RawMessage(value=line, topic="file:events.jsonl", partition=0, offset=i) for i, line in enumerate(lines)]
    outputs = Outputs(findings=ListSink(), tickets=ListSink(), dlq=ListSink(), quality=ListSink())
    flow = build_flow(config, load_profiles(config), TestingSource(raw, batch_size=700), outputs,
                      now=lambda: START + timedelta(days=30), durable=False)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, addresses=[], proc_id=0, worker_count_per_proc=workers)
    found = [f for f in outputs.findings.items if f.detector == "slo"]  # type: ignore[attr-defined]
    return sorted(orjson.dumps(item.to_dict(), option=orjson.OPT_SORT_KEYS)
                  for item in [*found, *outputs.quality.items])  # type: ignore[attr-defined]


def test_one_and_two_workers_judge_the_same_windows_the_same_way(tmp_path: Path) -> None:
    _, lines = _history()
    one = _run_with_workers(tmp_path / "one", lines, 1)
    assert one and one == _run_with_workers(tmp_path / "two", lines, 2)


def test_drift_replay_shows_the_label_quality_of_the_judged_windows(tmp_path: Path) -> None:
    import subprocess
    import sys

    _, lines = _history()
    config = _workspace(tmp_path, lines)
    proc = subprocess.run([sys.executable, "-m", "drift.cli", "replay", "--config", str(config), "--events",
                           str(tmp_path / "events.jsonl")], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(text for text in proc.stdout.splitlines() if text.startswith("label quality:"))
    # a, b and c at the gate; d and the tail's first hours (a day before its end) at the horizon.
    assert line == (f"label quality: {4 * HOURS + 11} cohort windows judged ({3 * HOURS} at the coverage gate, "
                    f"{HOURS + 11} at the horizon), 25 waiting for labels")
    assert "scoring|tenant=c  03:00-04:00  coverage" in proc.stdout
    assert "slo" in proc.stdout and "recall >= 0.8" in proc.stdout
