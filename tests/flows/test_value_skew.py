"""Value and distribution skew through the whole dataflow, on a file with both kinds of events."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.files import write_jsonl, write_parquet
from drift.config import load_config
from drift.demo import skew
from drift.findings import Severity
from flows.runner import run_file


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "drift.yaml").write_text(skew.CONFIG, encoding="utf-8")
    write_parquet(tmp_path / "reference.parquet", skew.reference_columns())
    bundle = skew.events()
    # One file, both kinds: feature events first, as an offline store materialised before serving,
    # and one broken feature event, which must reach the DLQ from the feature decoder.
    broken = b'{"ts": "2026-11-02T07:00:00Z", "feature_set": "customer_profile", "values": {}}'
    write_jsonl(tmp_path / "events.jsonl", [*bundle.features, broken, *bundle.inference])
    return tmp_path


def test_cents_served_against_dollars_offline_is_named(workspace: Path) -> None:
    result = run_file(load_config(workspace / "drift.yaml"), workspace / "events.jsonl")
    raised = {(f.detector, f.feature, dict(f.cohort.labels)["region"]) for f in result.findings
              if f.severity is not Severity.OK}
    assert raised == {
        ("skew.value", skew.SKEWED_FEATURE, skew.SKEWED_REGION),
        ("skew.jensen_shannon", skew.SKEWED_FEATURE, skew.SKEWED_REGION),
    }
    values = [f for f in result.findings if f.detector == "skew.value"]
    assert {f.feature for f in values} == {"age", "income", "country"}
    windows = {f.window for f in values}
    assert len(windows) == 4
    skewed = [f for f in values if f.feature == skew.SKEWED_FEATURE and dict(f.cohort.labels)["region"] == skew.SKEWED_REGION]
    assert len(skewed) == 4 and all(f.severity is Severity.ALERT and f.value == 1.0 for f in skewed)
    for finding in skewed:
        evidence = finding.evidence
        assert evidence["mean_ratio"] == pytest.approx(100.0, rel=1e-3)
        assert "cents vs dollars" in evidence["unit_suspect"]
        assert evidence["missing_offline_rate"] == 0.0 and evidence["match_rate"] == 0.0
        assert evidence["mean_difference"] > 0
        assert any("units" in advice for advice in evidence["countermeasures"])
        assert evidence["examples"] and evidence["examples"][0]["served"] == pytest.approx(
            100 * evidence["examples"][0]["offline"], rel=1e-6)
    clean = [f for f in values if f not in skewed]
    assert all(f.value == 0.0 and f.evidence["match_rate"] == 1.0 for f in clean)
    # Every inference event was joined: nothing missing, nothing late.
    assert sum(f.n_current for f in values if f.feature == "age") == len(skew.events().inference)
    assert [(d.step_id, d.reason.value) for d in result.dlq] == [("decode_feature", "missing_field")]


def _two_inputs(workspace: Path, workers: int) -> list[tuple]:  # type: ignore[type-arg]
    from bytewax.testing import TestingSource, cluster_main, run_main

    from connectors.memory import ListSink
    from drift.events import RawMessage
    from flows.pipeline import Outputs, build_flow
    from flows.runner import load_profiles

    config = load_config(workspace / "drift.yaml")
    bundle = skew.events()
    inference = [RawMessage(line, "inference-events", 0, i) for i, line in enumerate(bundle.inference)]
    features = [RawMessage(line, config.kafka.feature_topic, 0, i) for i, line in enumerate(bundle.features)]
    outputs = Outputs(findings=ListSink(), tickets=ListSink(), dlq=ListSink(), windows=ListSink())
    flow = build_flow(config, load_profiles(config), TestingSource(inference, batch_size=100), outputs,
                      feature_source=TestingSource(features, batch_size=7))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, addresses=[], proc_id=0, worker_count_per_proc=workers)
    return sorted((f.cohort.key, f.window.start, f.detector, f.feature, round(f.value, 9), f.severity.value)
                  for f in outputs.findings.items)  # type: ignore[attr-defined]


def test_a_second_input_gives_the_same_findings_under_one_and_two_workers(workspace: Path) -> None:
    one = _two_inputs(workspace, 1)
    assert one == _two_inputs(workspace, 2)
    raised = {(detector, feature, key) for key, _, detector, feature, _, severity in one if severity != "ok"}
    assert raised == {
        ("skew.value", skew.SKEWED_FEATURE, f"credit-risk|region={skew.SKEWED_REGION}"),
        ("skew.jensen_shannon", skew.SKEWED_FEATURE, f"credit-risk|region={skew.SKEWED_REGION}"),
    }
