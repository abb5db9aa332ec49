"""Prediction monitoring: hand-computed windows, oracles (direct formula, scipy), config, merge."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from detectors.psi import psi
from detectors.registry import build
from detectors.score import ScoreConfig, ScoreDetector, label_shift, mean_shift
from drift.config import parse_config
from drift.errors import ConfigError, ReferenceDataError
from drift.events import InferenceEvent, RawMessage
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import (
    PredictionColumn,
    ReferenceProfile,
    build_reference,
    categorical_profile,
    numeric_profile,
)
from drift.summary import WindowSummary, empty_summary, merge, summarise

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
COHORT = Cohort("m", (("tenant", "acme"),))
WINDOW = Window(T0, T0 + timedelta(hours=1))
REFERENCE_SCORES = np.linspace(0.0, 1.0, 1001)
REFERENCE_LABELS = ["approve"] * 700 + ["decline"] * 300
PROFILE = ReferenceProfile(
    model="m", features={"age": numeric_profile(np.arange(18.0, 91.0), 4)}, n_rows=1001, source="test", built_at=T0,
    predictions={
        "prediction.score": numeric_profile(REFERENCE_SCORES, 4),
        "prediction.label": categorical_profile(REFERENCE_LABELS),
    },
)
FULL = ScoreConfig.model_validate({"label_field": "prediction.label", "min_samples": 10})
MISSING = object()


def event(i: int, score: Any = MISSING, label: Any = MISSING, prediction: Any = MISSING) -> InferenceEvent:
    if prediction is MISSING:
        prediction = {}
        if score is not MISSING:
            prediction["score"] = score
        if label is not MISSING:
            prediction["label"] = label
    return InferenceEvent(
        event_id=None, ts=T0 + timedelta(seconds=i), model="m", model_version=None, tenant="acme",
        region=None, route=None, segment={}, entity_id=None, features={"age": 40},
        prediction=prediction, embedding=None, raw=RawMessage(value=b"", topic="t", partition=0, offset=i),
    )


def window(scores: list[Any], labels: list[Any] | None = None) -> WindowSummary:
    labels = labels if labels is not None else ["approve"] * len(scores)
    return summarise([event(i, s, l) for i, (s, l) in enumerate(zip(scores, labels))], PROFILE)


def by_detector(findings: list[Finding]) -> dict[str, Finding]:
    return {f.detector: f for f in findings}


# --------------------------------------------------------------------------
# Hand-computed windows
# --------------------------------------------------------------------------


def test_hand_computed_window() -> None:
    # Reference: 0.000 .. 1.000 in 1001 steps: quartile edges 0.25, 0.5, 0.75, mean 0.5,
    # std sqrt(((1001^2 - 1) / 12)) / 1000; labels 70% approve, 30% decline.
    scores = [0.1] * 10 + [0.9] * 30  # bins [10, 0, 0, 30]; mean 0.7
    labels = ["approve"] * 20 + ["decline"] * 20  # shares 0.5 / 0.5
    found = by_detector(ScoreDetector(FULL).score(window(scores, labels), PROFILE, COHORT, WINDOW))
    assert set(found) == {"score.psi", "score.mean_shift", "score.label_shift"}
    ref_std = float(np.std(REFERENCE_SCORES))
    assert ref_std == pytest.approx(np.sqrt((1001**2 - 1) / 12) / 1000)
    assert found["score.mean_shift"].value == pytest.approx(0.2 / ref_std)
    assert found["score.mean_shift"].evidence["current_mean"] == pytest.approx(0.7)
    shares = np.asarray(PROFILE.predictions["prediction.score"].shares)
    assert found["score.psi"].value == pytest.approx(psi(shares, [10, 0, 0, 30]))
    assert found["score.label_shift"].value == pytest.approx(0.2)
    assert found["score.label_shift"].evidence["labels"][0]["label"] in ("approve", "decline")
    assert all(f.feature in ("prediction.score", "prediction.label") for f in found.values())
    assert found["score.mean_shift"].severity is Severity.ALERT  # 0.69 reference stds >= 0.5
    assert found["score.label_shift"].severity is Severity.ALERT  # 0.2 >= 0.2
    assert found["score.psi"].severity is Severity.ALERT


WINDOWS: list[tuple[str, list[Any], list[Any], dict[str, float], dict[str, str | None]]] = [
    # name, scores, labels, expected values, expected skipped prefix
    ("as reference", list(REFERENCE_SCORES[::10]), ["approve"] * 71 + ["decline"] * 30,
     {"score.mean_shift": 0.0, "score.label_shift": abs(71 / 101 - 0.7)}, {}),
    ("too few", [0.5] * 9, ["approve"] * 9, {"score.psi": 0.0, "score.mean_shift": 0.0, "score.label_shift": 0.0},
     {"score.psi": "9 scores", "score.mean_shift": "9 scores", "score.label_shift": "9 labels"}),
    ("nulls and wrong types do not count", [None, "0.5", True, {"x": 1}] + [0.5] * 10, ["approve"] * 14,
     {"score.mean_shift": 0.0, "score.label_shift": 0.3}, {}),
    ("unseen label", [0.5] * 10, ["review"] * 10, {"score.label_shift": 1.0}, {}),
]


@pytest.mark.parametrize("name, scores, labels, values, skipped", WINDOWS, ids=[w[0] for w in WINDOWS])
def test_windows(
    name: str, scores: list[Any], labels: list[Any], values: dict[str, float], skipped: dict[str, str | None]
) -> None:
    found = by_detector(ScoreDetector(FULL).score(window(scores, labels), PROFILE, COHORT, WINDOW))
    for detector, value in values.items():
        assert found[detector].value == pytest.approx(value, abs=1e-9), detector
    for detector, finding in found.items():
        reason = skipped.get(detector)
        if reason is None:
            assert finding.skipped is None, (detector, finding.skipped)
        else:
            assert finding.skipped is not None and finding.skipped.startswith(reason)
            assert finding.severity is Severity.OK


def test_values_that_cannot_be_scored_are_evidence() -> None:
    summary = summarise(
        [event(0, None), event(1, "0.5"), event(2, True), event(3), event(4, prediction=None)]
        + [event(5 + i, 0.5) for i in range(10)],
        PROFILE,
    )
    found = by_detector(ScoreDetector(FULL).score(summary, PROFILE, COHORT, WINDOW))
    evidence = found["score.psi"].evidence
    assert (evidence["n_null"], evidence["n_wrong_type"], evidence["n_missing"]) == (1, 2, 2)
    assert evidence["examples"] == ["'0.5'", "True"]
    assert found["score.psi"].n_current == 10


def test_a_baseline_without_the_field_skips_with_a_hint() -> None:
    bare = ReferenceProfile("m", dict(PROFILE.features), 10, "old", T0)
    found = ScoreDetector(FULL).score(summarise([event(0, 0.5)], bare), bare, COHORT, WINDOW)
    assert [f.severity for f in found] == [Severity.OK] * 3
    assert all(f.skipped is not None and "rebuild the baseline" in f.skipped for f in found)


def test_constant_reference_score_has_no_mean_shift_unit() -> None:
    constant = ReferenceProfile("m", {}, 5, "t", T0, predictions={"prediction.score": numeric_profile([0.5] * 5, 4)})
    summary = summarise([event(i, 0.9) for i in range(20)], constant)
    found = by_detector(ScoreDetector(ScoreConfig(min_samples=10)).score(summary, constant, COHORT, WINDOW))
    assert found["score.mean_shift"].skipped is not None and "std 0" in found["score.mean_shift"].skipped
    assert found["score.psi"].skipped is None


def test_checks_turn_off_and_thresholds_fill() -> None:
    config = ScoreConfig.model_validate({"psi": None, "mean_shift": {"alert": 0.1}, "label_field": "prediction.label"})
    assert config.mean_shift is not None and (config.mean_shift.warn, config.mean_shift.alert) == (0.1, 0.1)
    assert config.label_shift is not None and (config.label_shift.warn, config.label_shift.alert) == (0.1, 0.2)
    found = ScoreDetector(config).score(window([0.5] * 200), PROFILE, COHORT, WINDOW)
    assert [f.detector for f in found] == ["score.mean_shift", "score.label_shift"]
    assert config.reference_columns() == {
        "prediction.score": PredictionColumn("score", "numeric", 10),
        "prediction.label": PredictionColumn("label", "categorical", 10),
    }
    custom = ScoreConfig.model_validate({"field": "prediction.p.default", "column": "p_default", "bins": 20})
    assert custom.reference_columns() == {"prediction.p.default": PredictionColumn("p_default", "numeric", 20)}


def test_registry_builds_the_score_detector() -> None:
    assert isinstance(build("score", FULL), ScoreDetector)


# --------------------------------------------------------------------------
# Oracles
# --------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-0.5, max_value=1.5, allow_nan=False), min_size=1, max_size=300))
def test_mean_shift_matches_scipy(values: list[float]) -> None:
    array = np.asarray(values)
    summary = window(values)
    counts = summary.predictions["prediction.score"]
    reference = PROFILE.predictions["prediction.score"]
    assert reference.mean is not None and reference.std is not None
    shift, mean, std = mean_shift(counts.moments, reference.mean, reference.std)
    assert mean == pytest.approx(float(stats.tmean(array)), abs=1e-9)
    assert std == pytest.approx(float(np.std(array)), abs=1e-6)
    assert shift == pytest.approx(abs(float(np.mean(array)) - 0.5) / float(np.std(REFERENCE_SCORES)), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=2, max_size=6), st.lists(st.integers(1, 50), min_size=6, max_size=6))
def test_score_psi_is_symmetric_kl_without_floors(reference: list[int], current: list[int]) -> None:
    current = current[: len(reference)]
    r = np.asarray(reference) / sum(reference)
    c = np.asarray(current) / sum(current)
    oracle = float(np.sum(special.rel_entr(c, r) + special.rel_entr(r, c)))
    assert psi(reference, current) == pytest.approx(oracle, rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=8), st.data())
def test_label_shift_is_linf_within_bounds(current: list[int], data: st.DataObject) -> None:
    reference = data.draw(st.lists(st.integers(0, 40), min_size=len(current), max_size=len(current)))
    value = label_shift(reference, current)
    assert 0.0 <= value <= 1.0
    if sum(reference) > 0 and sum(current) > 0:
        r = np.asarray(reference) / sum(reference)
        c = np.asarray(current) / sum(current)
        assert value == pytest.approx(float(np.max(np.abs(c - r))), abs=1e-12)
        assert label_shift(current, current) == 0.0


# --------------------------------------------------------------------------
# Summary: counting and merge
# --------------------------------------------------------------------------

scores = st.one_of(st.floats(min_value=-1, max_value=2, allow_nan=False), st.none(), st.just("x"), st.just(MISSING))
labels = st.one_of(st.sampled_from(["approve", "decline", "review"]), st.integers(0, 2), st.none(), st.just(MISSING))


@st.composite
def event_lists(draw: st.DrawFn) -> list[InferenceEvent]:
    return [event(i, draw(scores), draw(labels)) for i in range(draw(st.integers(0, 30)))]


def prediction_state(summary: WindowSummary) -> dict[str, Any]:
    return {
        path: (c.counts.tolist(), c.n_null, c.n_missing, c.n_wrong_type, c.moments.n, round(c.moments.mean, 9), round(c.moments.m2, 9))
        for path, c in summary.predictions.items()
    }


@settings(max_examples=80, deadline=None)
@given(event_lists(), event_lists(), event_lists())
def test_prediction_counts_merge_associatively(
    a: list[InferenceEvent], b: list[InferenceEvent], c: list[InferenceEvent]
) -> None:
    sa, sb, sc = (summarise(part, PROFILE) for part in (a, b, c))
    left = prediction_state(merge(merge(sa, sb, PROFILE), sc, PROFILE))
    right = prediction_state(merge(sa, merge(sb, sc, PROFILE), PROFILE))
    assert left == right == prediction_state(summarise(a + b + c, PROFILE))
    assert prediction_state(merge(sb, sa, PROFILE)) == prediction_state(merge(sa, sb, PROFILE))


def test_summary_without_score_profile_counts_no_predictions() -> None:
    bare = ReferenceProfile("m", dict(PROFILE.features), 10, "t", T0)
    assert empty_summary(bare).predictions == {}


# --------------------------------------------------------------------------
# Reference profile and config
# --------------------------------------------------------------------------


def test_reference_profiles_prediction_columns_and_round_trips() -> None:
    columns = {"age": np.arange(18.0, 91.0), "s": np.linspace(0, 1, 73), "label": ["a", "b"] * 36 + ["a"]}
    profile = build_reference(
        "m", columns, {"age": "numeric"}, {}, "ref.parquet", 73,
        {"prediction.score": PredictionColumn("s", "numeric", 5), "prediction.label": PredictionColumn("label", "categorical")},
    )
    score = profile.predictions["prediction.score"]
    assert score.n_bins == 5 and score.mean == pytest.approx(0.5)
    assert ReferenceProfile.from_json(profile.to_json()) == profile
    with pytest.raises(ReferenceDataError, match="no column 'score' for prediction field 'prediction.score'"):
        build_reference("m", columns, {}, {}, "ref.parquet", 73, {"prediction.score": PredictionColumn("score", "numeric")})


def test_baseline_json_without_predictions_still_loads() -> None:
    plain = ReferenceProfile("m", dict(PROFILE.features), 10, "t", T0)
    text = plain.to_json()
    assert "predictions" not in text
    assert ReferenceProfile.from_json(text).predictions == {}


def _config(detector: str) -> str:
    return textwrap.dedent(f"""\
        version: 1
        models:
          - name: m
            features:
              age: {{type: numeric}}
            detectors:
              - {detector}
        """)


def test_yaml_score_detector_and_errors_name_the_path(tmp_path: Path) -> None:
    config = parse_config(_config(
        "score: {field: prediction.score, psi: {warn: 0.1, alert: 0.2}, mean_shift: {alert: 0.1}, "
        "label_field: prediction.label, label_shift: {alert: 0.1}}"
    ), "drift.yaml")
    ((name, settings),) = config.models[0].detector_configs()
    assert name == "score" and isinstance(settings, ScoreConfig)
    assert settings.psi is not None and settings.psi.alert == 0.2
    with pytest.raises(ConfigError) as error:
        parse_config(_config("score: {field: features.age, mean_shift: {warn: 2, alert: 1}}"), "drift.yaml")
    text = str(error.value)
    assert "models[0].detectors[0].score.field: must be a field of the event's prediction" in text
    assert "models[0].detectors[0].score.mean_shift: warn must be <= alert" in text
