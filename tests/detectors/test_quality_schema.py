"""Schema change and category cardinality growth: hand-computed windows, state, merge, flow."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.files import write_jsonl
from detectors.quality import QualityConfig, QualityDetector
from drift import demo
from drift import summary as summary_module
from drift.config import load_config, parse_config
from drift.errors import ConfigError
from drift.events import InferenceEvent, RawMessage
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import ReferenceProfile, categorical_profile, numeric_profile
from drift.summary import Schema, WindowSummary, merge, schema_of, summarise, track_schema
from flows.runner import run_file

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
COHORT = Cohort("m", (("tenant", "acme"),))
# country: reference has DE, FR, ES and 7 rarer values r0 .. r6: 10 distinct.
PROFILE = ReferenceProfile(
    model="m",
    features={
        "age": numeric_profile(np.arange(18.0, 91.0), 4),
        "country": categorical_profile(["DE"] * 5 + ["FR"] * 3 + ["ES"] * 2 + [f"r{i}" for i in range(7)]),
    },
    n_rows=17, source="test", built_at=T0,
)
MISSING = object()


def event(i: int, **features: Any) -> InferenceEvent:
    present = {"age": 40, "country": "DE", **features}
    present = {k: v for k, v in present.items() if v is not MISSING}
    return InferenceEvent(
        event_id=None, ts=T0 + timedelta(seconds=i), model="m", model_version=None, tenant="acme", region=None,
        route=None, segment={}, entity_id=None, features=present, prediction=None, embedding=None,
        raw=RawMessage(value=b"", topic="t", partition=0, offset=i),
    )


def window(k: int) -> Window:
    return Window(T0 + timedelta(hours=k), T0 + timedelta(hours=k + 1))


def check(findings: list[Finding], name: str, feature: str | None = None) -> Finding:
    (found,) = [f for f in findings if f.detector == f"quality.{name}" and f.feature == feature]
    return found


DETECTOR = QualityDetector(QualityConfig(min_samples=1))


# --------------------------------------------------------------------------
# Schema change
# --------------------------------------------------------------------------

SCHEMA_WINDOWS: list[tuple[str, list[dict[str, Any]], float, list[str], list[str]]] = [
    ("as the reference", [{}, {}], 0, [], []),
    ("a new field in one event", [{}, {"zip": "10115"}], 1, ["zip"], []),
    ("two new fields", [{"zip": 1, "vip": True}, {"zip": 2}], 2, ["vip", "zip"], []),
    ("a field missing in some events only", [{"age": MISSING}, {}], 0, [], []),
    ("a field missing in all events", [{"age": MISSING}, {"age": MISSING}], 1, [], ["age"]),
    ("explicit nulls are not a vanished field", [{"age": None}, {"age": None}], 0, [], []),
    ("renamed field", [{"age": MISSING, "age_years": 40}] * 3, 2, ["age_years"], ["age"]),
]


@pytest.mark.parametrize("name, rows, value, new, vanished", SCHEMA_WINDOWS, ids=[w[0] for w in SCHEMA_WINDOWS])
def test_schema_change_against_the_reference(
    name: str, rows: list[dict[str, Any]], value: float, new: list[str], vanished: list[str]
) -> None:
    summary = summarise([event(i, **row) for i, row in enumerate(rows)], PROFILE)
    finding = check(DETECTOR.score(summary, PROFILE, COHORT, window(0)), "schema_change")
    assert finding.value == value
    assert (finding.evidence["new_fields"], finding.evidence["vanished_fields"]) == (new, vanished)
    assert finding.severity is (Severity.ALERT if value >= 1 else Severity.OK)
    assert finding.baseline == "reference" and finding.feature is None


def test_schema_change_fires_once_per_change_per_cohort() -> None:
    """New field in window 1, kept in 2, gone in 3, back in 4; age vanishes in 2 and stays gone in 3."""
    rows = [
        [{}],
        [{"zip": 1}],
        [{"zip": 2, "age": MISSING}],
        [{"age": MISSING}],
        [{"zip": 3}],
    ]
    state = None
    seen = []
    for k, part in enumerate(rows):
        summary = summarise([event(i, **row) for i, row in enumerate(part)], PROFILE)
        state = track_schema(state, window(k).start, summary)
        finding = check(DETECTOR.score(summary, PROFILE, COHORT, window(k)), "schema_change")
        seen.append((finding.value, finding.evidence["new_fields"], finding.evidence["vanished_fields"]))
    assert seen == [(0, [], []), (1, ["zip"], []), (1, [], ["age"]), (0, [], []), (1, ["zip"], [])]


def test_schema_state_moves_only_forward() -> None:
    late = summarise([event(0, zip=1)], PROFILE)
    state = track_schema(None, window(5).start, summarise([event(0)], PROFILE))
    after = track_schema(state, window(2).start, late)
    assert after is state and late.schema_before == Schema()
    assert schema_of(late) == Schema(frozenset({"zip"}), frozenset())


def test_unknown_fields_are_capped_and_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_module, "MAX_UNKNOWN_FIELDS", 3)
    summary = summarise([event(0, **{f"f{i}": i for i in range(5)})], PROFILE)
    assert len(summary.unknown_fields) == 3 and summary.unknown_fields_capped
    finding = check(DETECTOR.score(summary, PROFILE, COHORT, window(0)), "schema_change")
    assert finding.value == 3 and finding.evidence["unknown_fields_capped"] is True
    long_name = "x" * 200
    assert summarise([event(0, **{long_name: 1})], PROFILE).unknown_fields == {"x" * 64}


# --------------------------------------------------------------------------
# Cardinality growth
# --------------------------------------------------------------------------

CARDINALITY_WINDOWS: list[tuple[str, list[Any], float, int, Severity]] = [
    # name, countries, value = distinct / 10, unseen distinct, severity (warn 1.5, alert 2)
    ("one known category", ["DE"] * 4, 0.1, 0, Severity.OK),
    ("known ones, also rare", ["DE", "FR", "ES", "r0", "r1"], 0.5, 0, Severity.OK),
    ("fourteen new", ["DE"] + [f"n{i}" for i in range(14)], 1.5, 14, Severity.WARN),
    ("many new", [f"n{i}" for i in range(25)] + [None, None], 2.5, 25, Severity.ALERT),
    ("repeats count once", ["n1"] * 20 + [1, "1", True, "true"], 0.3, 3, Severity.OK),
]


@pytest.mark.parametrize(
    "name, countries, value, n_unseen, severity", CARDINALITY_WINDOWS, ids=[w[0] for w in CARDINALITY_WINDOWS],
)
def test_cardinality_growth(name: str, countries: list[Any], value: float, n_unseen: int, severity: Severity) -> None:
    summary = summarise([event(i, country=c) for i, c in enumerate(countries)], PROFILE)
    finding = check(DETECTOR.score(summary, PROFILE, COHORT, window(0)), "cardinality_growth", "country")
    assert finding.value == pytest.approx(value)
    assert finding.evidence["n_distinct_reference"] == 10
    assert finding.evidence["n_unseen_distinct"] == n_unseen
    assert finding.severity is severity


def test_cardinality_needs_min_samples_and_cap_gives_a_lower_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    few = summarise([event(i, country=f"n{i}") for i in range(30)], PROFILE)
    finding = check(QualityDetector(QualityConfig()).score(few, PROFILE, COHORT, window(0)), "cardinality_growth", "country")
    assert finding.severity is Severity.OK and finding.skipped is not None and finding.value == 3.0
    monkeypatch.setattr(summary_module, "MAX_UNSEEN_DISTINCT", 4)
    capped = summarise([event(i, country=f"n{i}") for i in range(30)], PROFILE)
    finding = check(DETECTOR.score(capped, PROFILE, COHORT, window(0)), "cardinality_growth", "country")
    assert finding.value == pytest.approx(0.4) and finding.evidence["unseen_capped"] is True
    assert "lower bound" in finding.evidence["note"]


def test_cardinality_of_an_old_baseline_uses_the_kept_categories() -> None:
    old = ReferenceProfile("m", {"country": categorical_profile(["DE", "FR"]).__class__(
        categories=("DE", "FR"), shares=(0.5, 0.5, 0.0), n=2)}, 2, "old", T0)
    summary = summarise([event(i, country=c) for i, c in enumerate(["DE", "FR", "IT"])], old)
    finding = check(DETECTOR.score(summary, old, COHORT, window(0)), "cardinality_growth", "country")
    assert finding.value == pytest.approx(1.5)


# --------------------------------------------------------------------------
# Properties: bounds and merge
# --------------------------------------------------------------------------

rows = st.fixed_dictionaries(
    {},
    optional={
        "country": st.one_of(st.sampled_from(["DE", "FR", "r1", "n1", "n2", "n3"]), st.none(), st.integers(0, 3)),
        "age": st.one_of(st.just(MISSING), st.integers(18, 90)),
        "zip": st.integers(0, 3),
        "vip": st.booleans(),
    },
)


@st.composite
def event_lists(draw: st.DrawFn) -> list[InferenceEvent]:
    return [event(i, **row) for i, row in enumerate(draw(st.lists(rows, max_size=25)))]


def new_state(summary: WindowSummary) -> tuple[Any, ...]:
    c = summary.features["country"]
    return (sorted(summary.unknown_fields), summary.unknown_fields_capped, sorted(c.unseen), c.unseen_capped,
            schema_of(summary))


@settings(max_examples=100, deadline=None)
@given(event_lists(), event_lists(), event_lists())
def test_new_summary_fields_merge_associatively(
    a: list[InferenceEvent], b: list[InferenceEvent], c: list[InferenceEvent]
) -> None:
    sa, sb, sc = (summarise(part, PROFILE) for part in (a, b, c))
    left = new_state(merge(merge(sa, sb, PROFILE), sc, PROFILE))
    right = new_state(merge(sa, merge(sb, sc, PROFILE), PROFILE))
    assert left == right == new_state(summarise(a + b + c, PROFILE))
    assert new_state(merge(sb, sa, PROFILE)) == new_state(merge(sa, sb, PROFILE))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3), event_lists(), event_lists())
def test_capped_sets_merge_associatively(cap: int, a: list[InferenceEvent], b: list[InferenceEvent]) -> None:
    original = (summary_module.MAX_UNKNOWN_FIELDS, summary_module.MAX_UNSEEN_DISTINCT)
    summary_module.MAX_UNKNOWN_FIELDS = summary_module.MAX_UNSEEN_DISTINCT = cap
    try:
        sa, sb = summarise(a, PROFILE), summarise(b, PROFILE)
        merged = merge(sa, sb, PROFILE)
        assert len(merged.unknown_fields) <= cap and len(merged.features["country"].unseen) <= cap
        assert new_state(merged) == new_state(merge(merge(sa, summarise([], PROFILE), PROFILE), sb, PROFILE))
        whole = summarise(a + b, PROFILE)
        # below the cap both ways agree exactly; at the cap both say so
        assert merged.unknown_fields_capped == whole.unknown_fields_capped
    finally:
        summary_module.MAX_UNKNOWN_FIELDS, summary_module.MAX_UNSEEN_DISTINCT = original


@settings(max_examples=100, deadline=None)
@given(event_lists())
def test_values_are_within_bounds(events: list[InferenceEvent]) -> None:
    summary = summarise(events, PROFILE)
    findings = DETECTOR.score(summary, PROFILE, COHORT, window(0))
    schema = check(findings, "schema_change")
    assert 0 <= schema.value <= summary_module.MAX_UNKNOWN_FIELDS + len(PROFILE.features)
    growth = check(findings, "cardinality_growth", "country")
    assert 0 <= growth.value <= (3 + summary_module.MAX_UNSEEN_DISTINCT) / 10
    for finding in findings:
        if finding.detector not in ("quality.schema_change", "quality.cardinality_growth"):
            assert 0.0 <= finding.value <= 1.0


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


def test_limits_fill_and_errors_name_the_path() -> None:
    config = QualityConfig.model_validate({"schema_change": {"warn": 1}, "cardinality_growth": {"warn": 3}})
    assert config.schema_change is not None and (config.schema_change.warn, config.schema_change.alert) == (1, 1)
    assert config.cardinality_growth is not None and config.cardinality_growth.alert == 3
    assert QualityConfig(schema_change=None).schema_change is None
    text = textwrap.dedent("""\
        version: 1
        models:
          - name: m
            features: {age: {type: numeric}}
            detectors:
              - quality: {cardinality_growth: {warn: 3, alert: 2}}
        """)
    with pytest.raises(ConfigError, match=r"models\[0\]\.detectors\[0\]\.quality\.cardinality_growth: warn must be <= alert"):
        parse_config(text, "drift.yaml")


# --------------------------------------------------------------------------
# In the flow: the previous schema is per cohort and survives across windows
# --------------------------------------------------------------------------


def test_flow_reports_a_new_field_once_for_its_cohort(tmp_path: Path) -> None:
    (tmp_path / "drift.yaml").write_text(demo.config_text(), encoding="utf-8")
    demo.write_references(tmp_path)
    start = demo.START
    lines = []
    for i in range(600):
        ts = start + timedelta(minutes=i * 0.25)  # 150 minutes: windows 08:00 .. 10:00
        tenant = "acme" if i % 2 else "globex"
        features: dict[str, Any] = {"age": 40, "income": 4000.0, "country": "DE"}
        if tenant == "acme" and ts >= start + timedelta(minutes=60):
            features["zip"] = "10115"  # a producer starts sending a new field
        lines.append(orjson.dumps({
            "event_id": f"e-{i}", "ts": ts.isoformat(), "model": "credit-risk", "model_version": "3.2.0",
            "tenant": tenant, "region": "eu-west-1", "features": features,
        }))
    write_jsonl(tmp_path / "events.jsonl", lines)
    result = run_file(load_config(tmp_path / "drift.yaml"), tmp_path / "events.jsonl")
    schema = [f for f in result.findings if f.detector == "quality.schema_change"]
    assert len(schema) == 10  # 5 windows x 2 tenants
    raised = [(dict(f.cohort.labels)["tenant"], f.window.start, f.evidence["new_fields"]) for f in schema if f.value > 0]
    assert raised == [("acme", start + timedelta(minutes=60), ["zip"])]
    later = [f for f in schema if dict(f.cohort.labels)["tenant"] == "acme" and f.window.start > start + timedelta(minutes=60)]
    assert later and all(f.baseline == "previous_window" and f.severity is Severity.OK for f in later)
    assert all(f.evidence["unknown_fields"] == ["zip"] for f in later)
