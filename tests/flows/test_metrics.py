"""Metrics of a run, read over HTTP from the real Prometheus endpoint."""

from __future__ import annotations

import urllib.request
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from connectors.files import write_jsonl
from drift import demo
from drift.config import load_config
from drift.metrics import serve
from flows.runner import run_file


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_the_run_produced(tmp_path: Path) -> None:
    (tmp_path / "drift.yaml").write_text(demo.config_text(), encoding="utf-8")
    demo.write_references(tmp_path)
    write_jsonl(tmp_path / "events.jsonl", demo.events().lines)
    port = serve("127.0.0.1", 0)
    before = _scrape(port)
    result = run_file(load_config(tmp_path / "drift.yaml"), tmp_path / "events.jsonl")
    after = _scrape(port)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    reasons = Counter(d.reason.value for d in result.dlq)
    for reason, count in reasons.items():
        step = "decode_inference" if reason != "late" else "summarise_window_credit_risk"
        assert delta("drift_dlq_total", step_id=step, reason=reason) == count
    credit_windows = [w for w in result.windows if w.cohort.model == "credit-risk"]
    assert delta("drift_windows_closed_total", model="credit-risk") == len(credit_windows)
    doc_windows = [w for w in result.windows if w.cohort.model == demo.DOC_MODEL]
    assert delta("drift_windows_closed_total", model=demo.DOC_MODEL) == len(doc_windows)
    assert delta("drift_windows_closed_total", model=demo.SKEW_MODEL) == \
        len(result.windows) - len(credit_windows) - len(doc_windows) == 2
    # The offline store's values (feature events) for the value-skew join.
    assert delta("drift_events_total", step_id="decode_feature", outcome="ok") == result.feature_events > 0
    assert delta("drift_events_total", step_id="decode_inference", outcome="ok") == \
        sum(w.n_events for w in result.windows) + reasons["late"]
    # Two drift tickets (globex income and country) and one quality ticket (acme income nulls).
    assert delta("drift_tickets_total", model="credit-risk", kind="opened") == 3
    # One embedding ticket: the support tenant's documents moved to a new topic.
    assert delta("drift_tickets_total", model=demo.DOC_MODEL, kind="opened") == 1
    embedding_alerts = sum(1 for f in result.findings if f.severity.value == "alert" and f.detector == "embedding")
    assert embedding_alerts == 3
    assert delta("drift_findings_total", model=demo.DOC_MODEL, detector="embedding", severity="alert") == \
        embedding_alerts
    alerts = sum(1 for f in result.findings if f.severity.value == "alert" and f.detector == "psi")
    assert delta("drift_findings_total", model="credit-risk", detector="psi", severity="alert") == alerts
    null_alerts = sum(1 for f in result.findings if f.severity.value == "alert" and f.detector == "quality.null_rate")
    assert null_alerts == 2
    assert delta("drift_findings_total", model="credit-risk", detector="quality.null_rate", severity="alert") == \
        null_alerts
    shifted = [f for f in result.findings
               if f.detector == "psi" and f.feature == "income" and f.severity.value == "alert"]
    last = max(shifted, key=lambda f: f.window.start)
    assert _value(after, "drift_psi", model="credit-risk", model_version="3.2.0", feature="income",
                  cohort=last.cohort.key) == last.value
