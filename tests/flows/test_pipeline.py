"""The dataflow end to end on files, under one and two workers."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bytewax.testing import TestingSource, cluster_main, run_main

from connectors.files import write_jsonl
from connectors.memory import ListSink
from drift import demo
from drift.demo import skew
from drift.config import load_config
from drift.events import RawMessage
from drift.findings import Severity
from flows.pipeline import Outputs, build_flow
from flows.runner import load_profiles, run_file


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "drift.yaml").write_text(demo.config_text(), encoding="utf-8")
    demo.write_references(tmp_path)
    write_jsonl(tmp_path / "events.jsonl", demo.events().lines)
    return tmp_path


def _cohort_tenant(finding) -> str:  # type: ignore[no-untyped-def]
    return dict(finding.cohort.labels)["tenant"]


def test_demo_stream_finds_the_injected_shift_and_nothing_else(workspace: Path) -> None:
    config = load_config(workspace / "drift.yaml")
    result = run_file(config, workspace / "events.jsonl")
    psi_findings = [f for f in result.findings if f.detector == "psi"]
    alerts = [f for f in psi_findings if f.severity is Severity.ALERT]
    assert alerts, "the injected shift must be found"
    for finding in alerts:
        assert _cohort_tenant(finding) == demo.SHIFTED_TENANT
        assert finding.feature in demo.SHIFTED_FEATURES
        assert finding.window.start >= demo.SHIFT_AT
    warned = [f for f in psi_findings if f.severity is not Severity.OK]
    assert {(_cohort_tenant(f), f.feature) for f in warned} == {
        (demo.SHIFTED_TENANT, feature) for feature in demo.SHIFTED_FEATURES
    }
    # Every shifted window of the shifted cohort alerts on both features.
    shifted_windows = {w.window for w in result.windows
                       if dict(w.cohort.labels)["tenant"] == demo.SHIFTED_TENANT and w.window.start >= demo.SHIFT_AT}
    assert len(shifted_windows) == 3
    assert {(f.window, f.feature) for f in alerts} == {
        (w, feature) for w in shifted_windows for feature in demo.SHIFTED_FEATURES
    }
    # One ticket per (cohort, feature): opened once, then updated.
    psi_tickets = [t for t in result.tickets if t.ticket.detector == "psi"]
    opened = [t for t in psi_tickets if t.kind == "opened"]
    assert sorted(t.ticket.feature for t in opened) == sorted(demo.SHIFTED_FEATURES)
    assert len({t.ticket.id for t in psi_tickets}) == 2
    last = {t.ticket.id: t.ticket for t in psi_tickets}
    assert all(ticket.occurrences == 3 for ticket in last.values())


def test_demo_stream_finds_the_injected_nulls_as_a_quality_incident(workspace: Path) -> None:
    config = load_config(workspace / "drift.yaml")
    result = run_file(config, workspace / "events.jsonl")
    quality = [f for f in result.findings if f.detector.startswith("quality.")]
    # Every check on every feature of every window, plus one duplicate-id and one schema finding per window.
    checks = {f.detector for f in quality}
    assert checks == {"quality.null_rate", "quality.missing_rate", "quality.type_mismatch",
                      "quality.out_of_range", "quality.duplicate_event_id", "quality.schema_change",
                      "quality.cardinality_growth"}
    not_rates = ("quality.schema_change", "quality.cardinality_growth")  # a count and a ratio
    assert all(0.0 <= f.value <= 1.0 for f in quality if f.detector not in not_rates)
    raised = [f for f in quality if f.severity is not Severity.OK]
    assert {(_cohort_tenant(f), f.detector, f.feature) for f in raised} == {
        (demo.NULL_TENANT, "quality.null_rate", demo.NULL_FEATURE)
    }
    null_windows = {w.window for w in result.windows
                    if dict(w.cohort.labels)["tenant"] == demo.NULL_TENANT and w.window.start >= demo.NULL_AT}
    assert len(null_windows) == 2
    assert {f.window for f in raised} == null_windows
    for finding in raised:
        assert finding.severity is Severity.ALERT
        assert abs(finding.value - demo.NULL_SHARE) < 0.06
        assert finding.evidence["numerator"] == round(finding.value * finding.evidence["denominator"])
    # The nulls do not read as drift: PSI of acme's income stays ok.
    assert all(f.severity is Severity.OK for f in result.findings
               if f.detector == "psi" and _cohort_tenant(f) == demo.NULL_TENANT)
    # One quality ticket, for acme's income null rate: opened, then updated.
    quality_tickets = [t for t in result.tickets if t.ticket.detector.startswith("quality")]
    assert [t.kind for t in quality_tickets] == ["opened", "updated"]
    ticket = quality_tickets[-1].ticket
    assert (ticket.detector, ticket.feature, ticket.cohort["tenant"], ticket.occurrences) == (
        "quality.null_rate", demo.NULL_FEATURE, demo.NULL_TENANT, 2)


def test_demo_stream_finds_the_new_topic_in_the_embeddings_of_one_cohort(workspace: Path) -> None:
    config = load_config(workspace / "drift.yaml")
    result = run_file(config, workspace / "events.jsonl")
    findings = [f for f in result.findings if f.detector == "embedding"]
    assert {f.cohort.model for f in findings} == {demo.DOC_MODEL}
    # One finding per cohort window: 2 tenants x 6 half hours.
    assert len(findings) == 12 and all(f.skipped is None for f in findings)
    raised = [f for f in findings if f.severity is not Severity.OK]
    shifted = {w.window for w in result.windows if w.cohort.model == demo.DOC_MODEL
               and dict(w.cohort.labels)["tenant"] == demo.DOC_SHIFTED_TENANT and w.window.start >= demo.DOC_SHIFT_AT}
    assert len(shifted) == 3
    assert {(_cohort_tenant(f), f.window) for f in raised} == {(demo.DOC_SHIFTED_TENANT, w) for w in shifted}
    for finding in raised:
        assert finding.severity is Severity.ALERT and finding.evidence["p_value"] < 0.01
        assert finding.feature == "embedding" and finding.n_current > 100
        # The farthest samples are the new topic's documents: the content to inspect.
        farthest = [row["event_id"] for row in finding.evidence["farthest"]]
        assert len(farthest) == 5 and all(str(e).endswith("-new") for e in farthest)
    # One ticket for the shifted cohort, whose countermeasure says to inspect new content
    # clusters and names the farthest event ids of the latest window.
    tickets = [t for t in result.tickets if t.ticket.detector == "embedding"]
    assert [t.kind for t in tickets] == ["opened", "updated", "updated"]
    assert {t.ticket.cohort["tenant"] for t in tickets} == {demo.DOC_SHIFTED_TENANT}
    advice = tickets[-1].context["countermeasures"]
    assert [c["detector"] for c in advice] == ["embedding"]
    assert "inspect new content clusters" in advice[0]["action"]
    latest = max(raised, key=lambda f: f.window.start)
    assert advice[0]["event_ids"] == [row["event_id"] for row in latest.evidence["farthest"]]
    assert latest.evidence["countermeasures"][0]["event_ids"] == advice[0]["event_ids"]


def test_every_message_is_accounted_for(workspace: Path) -> None:
    bundle = demo.events()
    config = load_config(workspace / "drift.yaml")
    result = run_file(config, workspace / "events.jsonl")
    document = result.to_dict()
    assert document["events"] == len(bundle.lines)
    assert document["feature_events"] == result.feature_events == len(bundle.feature_lines) > 0
    late = [d for d in result.dlq if d.reason.value == "late"]
    assert len(late) == bundle.n_late
    assert len(result.dlq) - len(late) == bundle.n_malformed
    assert sum(w.n_events for w in result.windows) + result.feature_events + len(result.dlq) == len(bundle.lines)
    # Each dead letter points back at its line and keeps its bytes.
    for letter in result.dlq:
        assert letter.value == bundle.lines[letter.offset].replace(b"\n", b" ")
        assert letter.topic == "file:events.jsonl"


def test_replay_is_idempotent_on_the_ticket_store(workspace: Path) -> None:
    config = load_config(workspace / "drift.yaml")
    first = run_file(config, workspace / "events.jsonl")
    again = run_file(config, workspace / "events.jsonl")
    assert first.tickets and not again.tickets, "replaying the same windows must not count twice"


def _run_with_workers(workspace: Path, workers: int) -> list[tuple]:  # type: ignore[type-arg]
    config = load_config(workspace / "drift.yaml")
    profiles = load_profiles(config)
    lines = demo.events().lines
    raw = [RawMessage(value=line, topic="t", partition=0, offset=i) for i, line in enumerate(lines)]
    outputs = Outputs(findings=ListSink(), tickets=ListSink(), dlq=ListSink(), windows=ListSink())
    now = lambda: datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)  # noqa: E731
    flow = build_flow(config, profiles, TestingSource(raw, batch_size=256), outputs, now=now)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, addresses=[], proc_id=0, worker_count_per_proc=workers)
    findings = outputs.findings.items  # type: ignore[attr-defined]
    dlq = outputs.dlq.items  # type: ignore[attr-defined]
    return sorted(
        [(f.cohort.key, f.window.start, f.detector, f.feature or "", round(f.value, 9), f.severity.value)
         for f in findings]
        + [("dlq", d.offset, d.reason.value, "", 0.0, "") for d in dlq]  # type: ignore[misc]
    )


def test_one_and_two_workers_give_the_same_findings(workspace: Path) -> None:
    assert _run_with_workers(workspace, 1) == _run_with_workers(workspace, 2)


def test_parquet_and_jsonl_replays_agree(workspace: Path) -> None:
    lines = [line for line in demo.events().lines if line.startswith(b"{")]
    rows = []
    for line in lines:
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    good = [r for r in rows if r.get("model") == "credit-risk" and "ts" in r and r["ts"] != "yesterday"
            and not isinstance(r.get("features", {}).get("age"), list)]
    write_jsonl(workspace / "good.jsonl", [orjson.dumps(r) for r in good])
    pq.write_table(pa.Table.from_pylist(good), workspace / "good.parquet")
    config = load_config(workspace / "drift.yaml")
    from_jsonl = run_file(config, workspace / "good.jsonl")
    (workspace / "drift-tickets.db").unlink()
    from_parquet = run_file(config, workspace / "good.parquet")
    key = lambda f: (f.cohort.key, f.window.start, f.detector, f.feature or "", round(f.value, 9))  # noqa: E731
    assert sorted(map(key, from_jsonl.findings)) == sorted(map(key, from_parquet.findings))
    assert len(from_parquet.tickets) == len(from_jsonl.tickets) > 0


def test_drift_demo_json(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "demo", "--json", "--dir", str(tmp_path / "demo")],
        capture_output=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    document = json.loads(proc.stdout)
    assert set(document) >= {"events", "dlq", "windows", "findings", "tickets"}
    assert document["dlq"]["total"] == demo.events().n_malformed + demo.events().n_late
    drifted = [f for f in document["findings"] if f["detector"] == "psi"]
    features = {(f["cohort"]["tenant"], f["feature"]) for f in drifted}
    assert features == {(demo.SHIFTED_TENANT, name) for name in demo.SHIFTED_FEATURES}
    assert {t["ticket"]["feature"] for t in document["tickets"] if t["ticket"]["detector"] == "psi"} == \
        set(demo.SHIFTED_FEATURES)
    quality = {(f["cohort"]["tenant"], f["detector"], f["feature"]) for f in document["findings"]
               if f["detector"].startswith("quality")}
    assert quality == {(demo.NULL_TENANT, "quality.null_rate", demo.NULL_FEATURE)}
    assert {(t["ticket"]["cohort"]["tenant"], t["ticket"]["detector"], t["ticket"]["feature"])
            for t in document["tickets"] if t["ticket"]["detector"].startswith("quality")} == quality
    # The text model: only the cohort whose documents moved to a new topic alerts.
    embedding = [f for f in document["findings"] if f["detector"] == "embedding"]
    assert embedding and {f["cohort"]["tenant"] for f in embedding} == {demo.DOC_SHIFTED_TENANT}
    assert {t["ticket"]["cohort"]["tenant"] for t in document["tickets"]
            if t["ticket"]["detector"] == "embedding"} == {demo.DOC_SHIFTED_TENANT}
    assert {f["detector"] for f in document["findings"]} == {"psi", "quality.null_rate", "embedding", "skew.value"}
    assert document["events"] == len(demo.events().lines)
    # Routing: the high-impact text model's ticket waits for review, the others open directly.
    latest = {t["ticket"]["id"]: t["ticket"] for t in document["tickets"]}
    assert {(t["model"], t["status"], t["action"]) for t in latest.values()} == {
        (demo.DOC_MODEL, "pending_review", "human_review"), ("credit-risk", "open", "ticket"),
        (demo.SKEW_MODEL, "open", "ticket"),
    }
    assert [t["approvals_required"] for t in latest.values() if t["model"] == demo.DOC_MODEL] == [2]
    # Value skew: exactly one alert, income served in cents in us-east-1, ratio 100.
    skewed = [f for f in document["findings"] if f["detector"] == "skew.value"]
    assert [(f["model"], f["feature"], f["cohort"]["region"], f["severity"]) for f in skewed] == [
        (demo.SKEW_MODEL, skew.SKEWED_FEATURE, skew.SKEWED_REGION, "alert")
    ]
    assert abs(skewed[0]["evidence"]["mean_ratio"] - skew.UNIT_FACTOR) < 1.0
    assert "cents vs dollars" in skewed[0]["evidence"]["unit_suspect"]
    assert {(t["ticket"]["model"], t["ticket"]["feature"], t["ticket"]["cohort"]["region"])
            for t in document["tickets"] if t["ticket"]["detector"] == "skew.value"} == {
        (demo.SKEW_MODEL, skew.SKEWED_FEATURE, skew.SKEWED_REGION)
    }


def test_drift_demo_human_output_shows_routing_and_value_skew(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True, timeout=120, check=False, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    routing = proc.stdout.split("routing:")[1].split("value skew:")[0]
    assert f"{demo.DOC_MODEL} embedding -> human review (pending_review, 2 approval(s) needed)" in routing
    assert "credit-risk psi -> opened directly (open)" in routing
    skewed = [line for line in proc.stdout.splitlines() if line.startswith("value skew:")]
    assert len(skewed) == 1
    assert f"{skew.SKEWED_FEATURE} in {demo.SKEW_MODEL}" in skewed[0] and skew.SKEWED_REGION in skewed[0]
    assert "ratio 100.0" in skewed[0] and "cents vs dollars" in skewed[0]
