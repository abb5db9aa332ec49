"""Metrics of a run, read over HTTP from the real Prometheus endpoint."""

from __future__ import annotations

import urllib.request
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from connectors.files import write_jsonl
from drift import demo
from drift.config import load_config
from drift.findings import Cohort
from drift.health import Health, serve
from drift.metrics import OTHER, cohort_metrics, prometheus_label
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
    port = serve("127.0.0.1", 0, Health()).server_port  # the job's own HTTP server
    before = _scrape(port)
    result = run_file(load_config(tmp_path / "drift.yaml"), tmp_path / "events.jsonl")
    after = _scrape(port)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    reasons = Counter(d.reason.value for d in result.dlq)
    assert reasons["late"] > 0 and len(reasons) > 1
    # Decoding and windowing (late events) each label their dead letters with their step id.
    for (step, reason), count in Counter((d.step_id, d.reason.value) for d in result.dlq).items():
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
    labels = dict(last.cohort.labels)
    assert _value(after, "drift_psi", model="credit-risk", model_version="3.2.0", tenant=labels["tenant"],
                  region=labels["region"], feature="income") == last.value


def _labels(cohort: Cohort, names: tuple[str, ...]) -> dict[str, str]:
    values = {prometheus_label(label): value for label, value in cohort.labels}
    return {"model": cohort.model, **{name: values.get(name, "-") for name in names[1:]}}


def test_per_cohort_gauges_carry_the_configured_cohort_labels_and_cap_them(tmp_path: Path) -> None:
    # The demo, with credit-risk also split by sales channel and room for only three of its cohorts.
    text = demo.config_text()
    assert text.count("cohort: [model_version, tenant, region]\n") == 1
    text = text.replace("cohort: [model_version, tenant, region]\n",
                        "cohort: [model_version, tenant, region, segment.channel]\n")
    (tmp_path / "drift.yaml").write_text(text + "metrics: {max_cohorts: 3}\n", encoding="utf-8")
    demo.write_references(tmp_path)
    write_jsonl(tmp_path / "events.jsonl", demo.events().lines)
    port = serve("127.0.0.1", 0, Health()).server_port  # the job's own HTTP server
    before = _scrape(port)
    result = run_file(load_config(tmp_path / "drift.yaml"), tmp_path / "events.jsonl")
    after = _scrape(port)
    names = ("model", "model_version", "region", "segment_channel", "tenant")
    assert cohort_metrics().names == names

    def gauges(name: str, model: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {labels: value for (metric, labels), value in after.items()
                if metric == name and dict(labels)["model"] == model}

    measured = [f for f in result.findings if f.cohort.model == "credit-risk" and f.skipped is None]
    cohorts = {f.cohort for f in measured}
    assert len({c.labels for c in cohorts if dict(c.labels)["segment.channel"] != "-"}) == 4

    def last(cohort: Cohort, detector: str, feature: str | None) -> float:
        return max((f for f in measured if f.cohort == cohort and f.detector == detector and f.feature == feature),
                   key=lambda f: f.window.start).value

    psi = gauges("drift_psi", "credit-risk")
    labelled = {labels for labels in psi if dict(labels)["tenant"] != OTHER}
    by_labels = {tuple(sorted(_labels(c, names).items())): c for c in cohorts}
    admitted = {by_labels[tuple((k, v) for k, v in labels if k != "feature")] for labels in labelled}
    assert len(admitted) == 3 == _value(after, "drift_cohorts_labelled", model="credit-risk")
    # e.g. drift_psi{model="credit-risk", model_version="3.2.0", region="eu-west-1",
    #                segment_channel="mobile", tenant="acme", feature="income"}
    for labels in labelled:
        cohort = by_labels[tuple((k, v) for k, v in labels if k != "feature")]
        assert psi[labels] == last(cohort, "psi", dict(labels)["feature"])
        assert dict(labels)["model_version"] == "3.2.0" and dict(labels)["segment_channel"] in {"web", "mobile"}
    quality = gauges("drift_detector_value", "credit-risk")
    for cohort in admitted:
        key = tuple(sorted({**_labels(cohort, names), "detector": "quality.null_rate", "feature": "income"}.items()))
        assert quality[key] == last(cohort, "quality.null_rate", "income")
    # The other cohorts share '_other' labels, and every value recorded for them is counted.
    overflowed = [f for f in measured if f.cohort not in admitted]
    assert overflowed
    other = {labels: value for labels, value in psi.items() if dict(labels)["tenant"] == OTHER}
    assert {dict(labels)["feature"] for labels in other} == {"age", "income", "country"}
    assert all({dict(labels)[k] for k in ("model_version", "region", "segment_channel")} == {OTHER}
               for labels in other)
    assert (_value(after, "drift_cohort_overflow_total", model="credit-risk")
            - _value(before, "drift_cohort_overflow_total", model="credit-risk")) == len(overflowed)
    # doc-classifier splits by tenant only: its other cohort labels read '-'.
    support = max((f for f in result.findings if f.cohort.model == demo.DOC_MODEL and f.detector == "embedding"
                   and dict(f.cohort.labels)["tenant"] == demo.DOC_SHIFTED_TENANT and f.skipped is None),
                  key=lambda f: f.window.start)
    assert _value(after, "drift_detector_value", model=demo.DOC_MODEL, model_version="-", region="-",
                  segment_channel="-", tenant=demo.DOC_SHIFTED_TENANT, detector="embedding",
                  feature=support.feature or "-") == support.value
