"""Data-quality checks: hand-computed windows, exact rates, merge, config errors."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from detectors.base import Detector
from detectors.quality import DEFAULT_THRESHOLDS, QualityConfig, QualityDetector, Thresholds, rate
from detectors.registry import build
from drift import summary as summary_module
from drift.config import parse_config
from drift.errors import ConfigError
from drift.events import InferenceEvent, RawMessage
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import ReferenceProfile, categorical_profile, numeric_profile
from drift.summary import FLUSH_EVERY, WindowSummary, empty_summary, merge, summarise

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
COHORT = Cohort("m", (("tenant", "acme"),))
WINDOW = Window(T0, T0 + timedelta(hours=1))
CATEGORIES = ("DE", "FR", "ES")

# age: reference 18..90; income: reference 100..10_000; country: DE, FR, ES.
PROFILE = ReferenceProfile(
    model="m",
    features={
        "age": numeric_profile(np.arange(18.0, 91.0), 4),
        "income": numeric_profile(np.linspace(100.0, 10_000.0, 50), 4),
        "country": categorical_profile(["DE", "DE", "FR", "ES"]),
    },
    n_rows=100, source="test", built_at=T0,
)
MISSING = object()
"""A feature value that leaves the field out of the event."""


def event(i: int, event_id: str | None = None, **features: Any) -> InferenceEvent:
    present = {name: value for name, value in features.items() if value is not MISSING}
    return InferenceEvent(
        event_id=event_id, ts=T0 + timedelta(seconds=i), model="m", model_version=None,
        tenant="acme", region=None, route=None, segment={}, entity_id=None,
        features=present, prediction=None, embedding=None,
        raw=RawMessage(value=b"", topic="t", partition=0, offset=i),
    )


def rows(*features: dict[str, Any], ids: list[str | None] | None = None) -> list[InferenceEvent]:
    """Events from feature mappings; fields not given default to valid values."""
    base = {"age": 40, "income": 5000.0, "country": "DE"}
    ids = ids if ids is not None else [None] * len(features)
    return [event(i, ids[i], **{**base, **f}) for i, f in enumerate(features)]


def by_check(findings: list[Finding]) -> dict[tuple[str, str | None], Finding]:
    return {(f.detector.removeprefix("quality."), f.feature): f for f in findings}


def score(events: list[InferenceEvent], bounds: dict[str, tuple[float | None, float | None]] | None = None,
          **config: Any) -> dict[tuple[str, str | None], Finding]:
    config.setdefault("min_samples", 1)
    summary = summarise(events, PROFILE, bounds=bounds)
    return by_check(QualityDetector(QualityConfig(**config)).score(summary, PROFILE, COHORT, WINDOW))


# --------------------------------------------------------------------------
# Hand-computed windows, one check per row
# --------------------------------------------------------------------------

CASES = [
    pytest.param(
        rows({"age": None}, {"age": None}, *([{}] * 8)), None,
        ("null_rate", "age"), 2, 10, [], id="null-rate",
    ),
    pytest.param(
        rows({"income": MISSING}, {"income": MISSING}, {"income": MISSING}, *([{}] * 7)), None,
        ("missing_rate", "income"), 3, 10, [], id="missing-rate",
    ),
    pytest.param(
        # explicit null and missing are told apart: one null, two missing
        rows({"age": None}, {"age": MISSING}, {"age": MISSING}, {}), None,
        ("null_rate", "age"), 1, 4, [], id="null-is-not-missing",
    ),
    pytest.param(
        rows({"age": None}, {"age": MISSING}, {"age": MISSING}, {}), None,
        ("missing_rate", "age"), 2, 4, [], id="missing-is-not-null",
    ),
    pytest.param(
        # denominator: present and non-null (6 numbers + 2 wrong) — the null and the missing one are out
        rows({"age": "42"}, {"age": True}, {"age": None}, {"age": MISSING}, *([{}] * 6)), None,
        ("type_mismatch", "age"), 2, 8, ["'42'", "True"], id="type-mismatch",
    ),
    pytest.param(
        # configured range [18, 120] is closed: 18 and 120 are in range
        rows({"age": 17}, {"age": 18}, {"age": 120}, {"age": 121.5}, {"age": 50}), {"age": (18.0, 120.0)},
        ("out_of_range", "age"), 2, 5, ["17.0", "121.5"], id="out-of-range-config",
    ),
    pytest.param(
        # no configured bounds: the reference's [min, max] = [18, 90]
        rows({"age": 10}, {"age": 95}, {"age": 90}, {"age": 18}), None,
        ("out_of_range", "age"), 2, 4, ["10.0", "95.0"], id="out-of-range-reference",
    ),
    pytest.param(
        # min only: the high side is open, so a huge value is in range; text is not a number
        rows({"income": -1.0}, {"income": 1e12}, {"income": "n/a"}, {"income": -1.0}), {"income": (0.0, None)},
        ("out_of_range", "income"), 2, 3, ["-1.0"], id="out-of-range-min-only",
    ),
    pytest.param(
        rows({"country": "BR"}, {"country": "XX"}, {"country": "BR"}, {"country": "FR"}, {"country": None}), None,
        ("unseen_category", "country"), 3, 4, ["BR", "XX"], id="unseen-category",
    ),
    pytest.param(
        # ids a b a a - c b: a twice more, b once more; the event without an id is not counted
        rows(*([{}] * 7), ids=["a", "b", "a", "a", None, "c", "b"]), None,
        ("duplicate_event_id", None), 3, 6, ["a", "b"], id="duplicate-event-id",
    ),
]


@pytest.mark.parametrize(("events", "bounds", "key", "numerator", "denominator", "examples"), CASES)
def test_hand_computed_window(
    events: list[InferenceEvent], bounds: dict[str, tuple[float | None, float | None]] | None,
    key: tuple[str, str | None], numerator: int, denominator: int, examples: list[str],
) -> None:
    finding = score(events, bounds)[key]
    assert finding.detector == f"quality.{key[0]}"
    assert finding.feature == key[1]
    assert finding.value == numerator / denominator
    assert finding.evidence["check"] == key[0]
    assert (finding.evidence["numerator"], finding.evidence["denominator"]) == (numerator, denominator)
    assert finding.n_current == denominator
    assert finding.evidence.get("examples", []) == examples
    assert finding.skipped is None


def test_out_of_range_evidence_names_the_bounds_used() -> None:
    events = rows({"age": 10}, {"income": -5.0})
    found = score(events, bounds={"income": (0.0, None)})
    age, income = found[("out_of_range", "age")], found[("out_of_range", "income")]
    assert age.evidence["bounds"] == {"low": 18.0, "high": 90.0, "source": "reference"}
    assert age.baseline == "reference"
    assert income.evidence["bounds"] == {"low": 0.0, "high": None, "source": "config"}
    assert income.baseline == "config"


def test_unseen_evidence_has_the_reference_unseen_share() -> None:
    found = score(rows({"country": "BR"}))
    assert found[("unseen_category", "country")].evidence["reference_unseen_share"] == 0.0


def test_checks_apply_only_where_they_mean_something() -> None:
    found = score(rows({}))
    features_of = {check: {feature for c, feature in found if c == check} for check, _ in found}
    assert features_of == {
        "null_rate": {"age", "income", "country"},
        "missing_rate": {"age", "income", "country"},
        "type_mismatch": {"age", "income"},  # any scalar is a valid category
        "out_of_range": {"age", "income"},
        "unseen_category": {"country"},
        "duplicate_event_id": {None},
        "cardinality_growth": {"country"},
        "schema_change": {None},
    }


def test_findings_are_json_ready_and_fingerprints_separate_checks() -> None:
    findings = QualityDetector(QualityConfig()).score(
        summarise(rows({"age": "x"}, {"income": None}, ids=["a", "a"]), PROFILE, bounds={"income": (0, None)}),
        PROFILE, COHORT, WINDOW,
    )
    for finding in findings:
        json.dumps(finding.to_dict(), allow_nan=False)
    assert len({f.fingerprint for f in findings}) == len(findings)


# --------------------------------------------------------------------------
# Severity, min_samples, turning checks off
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_null", "thresholds", "expected"),
    [
        pytest.param(0, Thresholds(warn=0.02, alert=0.05), Severity.OK, id="zero"),
        pytest.param(1, Thresholds(warn=0.02, alert=0.05), Severity.OK, id="below-warn"),
        pytest.param(2, Thresholds(warn=0.02, alert=0.05), Severity.WARN, id="at-warn"),
        pytest.param(4, Thresholds(warn=0.02, alert=0.05), Severity.WARN, id="between"),
        pytest.param(5, Thresholds(warn=0.02, alert=0.05), Severity.ALERT, id="at-alert"),
        pytest.param(100, Thresholds(warn=0.02, alert=0.05), Severity.ALERT, id="all-null"),
        pytest.param(4, Thresholds(warn=None, alert=0.05), Severity.OK, id="no-warn-level-below"),
        pytest.param(5, Thresholds(warn=None, alert=0.05), Severity.ALERT, id="no-warn-level-at"),
    ],
)
def test_severity_from_thresholds(n_null: int, thresholds: Thresholds, expected: Severity) -> None:
    events = rows(*([{"age": None}] * n_null + [{}] * (100 - n_null)))
    # PROFILE's age has 73 values in 100 rows: a 27% null rate that no window here exceeds.
    finding = score(events, null_rate=thresholds, significance="none")[("null_rate", "age")]
    assert finding.severity is expected
    assert (finding.warn, finding.alert) == (thresholds.warn_level, thresholds.alert)


def test_too_few_samples_is_ok_with_the_exact_rate_and_a_reason() -> None:
    found = score(rows({"age": None}, {}), min_samples=3)
    finding = found[("null_rate", "age")]
    assert (finding.value, finding.severity) == (0.5, Severity.OK)
    assert finding.skipped == "2 values to check in the window; min_samples is 3"


def test_a_check_set_to_null_is_off_and_features_narrow_the_checks() -> None:
    found = score(rows({"age": None}), features=["age"], null_rate=None, duplicate_event_id=None, schema_change=None)
    assert {check for check, _ in found} == {"missing_rate", "type_mismatch", "out_of_range"}
    assert {feature for _, feature in found} == {"age"}


def test_duplicate_check_without_tracked_ids_is_skipped() -> None:
    summary = summarise(rows({}, ids=["a"]), PROFILE, track_event_ids=False)
    (finding,) = [f for f in QualityDetector(QualityConfig(min_samples=1)).score(summary, PROFILE, COHORT, WINDOW)
                  if f.detector == "quality.duplicate_event_id"]
    assert finding.skipped == "event ids were not tracked for this window"
    assert finding.severity is Severity.OK


def test_event_id_cap_makes_the_count_a_lower_bound_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_module, "MAX_EVENT_IDS", 3)
    # a b c fill the set; d is not remembered, so its repeat is not counted; a's is
    events = rows(*([{}] * 6), ids=["a", "b", "c", "d", "d", "a"])
    summary = summarise(events, PROFILE)
    assert summary.event_ids == {"a", "b", "c"} and summary.event_ids_capped
    finding = by_check(QualityDetector(QualityConfig(min_samples=1)).score(summary, PROFILE, COHORT, WINDOW))[
        ("duplicate_event_id", None)]
    assert (finding.evidence["numerator"], finding.evidence["denominator"]) == (1, 6)
    assert finding.evidence["event_ids_capped"] is True
    assert "lower bound" in finding.evidence["note"]
    # merging two full sets stays within the cap, and says so
    left = summarise(rows({}, {}, ids=["a", "b"]), PROFILE)
    right = summarise(rows({}, {}, ids=["c", "d"]), PROFILE)
    merged = merge(left, right, PROFILE)
    assert merged.event_ids == {"a", "b", "c"} and merged.event_ids_capped


def test_registry_builds_the_quality_detector() -> None:
    detector: Detector = build("quality", QualityConfig())
    assert isinstance(detector, QualityDetector) and detector.name == "quality"


def test_rate_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="numerator <= denominator"):
        rate(3, 2)


# --------------------------------------------------------------------------
# Properties: exact rates on constructed windows, merge equals concatenation
# --------------------------------------------------------------------------

numeric_values = st.one_of(
    st.just(MISSING), st.none(), st.booleans(), st.sampled_from(["12", "", "abc"]),
    st.integers(-50, 200), st.floats(-50, 200, allow_nan=False), st.just(-0.0),
)
categorical_values = st.one_of(st.just(MISSING), st.none(), st.sampled_from([*CATEGORIES, "BR", "XX", "1"]),
                               st.integers(0, 3), st.booleans())
event_rows = st.lists(
    st.tuples(numeric_values, categorical_values, st.one_of(st.none(), st.sampled_from("abcdefgh"))),
    max_size=60,
)


def make_events(drawn: list[tuple[Any, Any, str | None]]) -> list[InferenceEvent]:
    return [event(i, event_id, age=age, country=country) for i, (age, country, event_id) in enumerate(drawn)]


AGE_BOUNDS = {"age": (0.0, 120.0)}


def oracle(drawn: list[tuple[Any, Any, str | None]]) -> dict[tuple[str, str | None], tuple[int, int]]:
    """(numerator, denominator) of each check, counted one event at a time, by definition."""
    ages = [a for a, _, _ in drawn]
    countries = [c for _, c, _ in drawn]
    numbers = [a for a in ages if isinstance(a, (int, float)) and not isinstance(a, bool)]
    present_age = [a for a in ages if a is not MISSING and a is not None]
    present_country = [c for c in countries if c is not MISSING and c is not None]
    text = ["true" if c is True else "false" if c is False else str(c) for c in present_country]
    ids = [i for _, _, i in drawn if i is not None]
    return {
        ("null_rate", "age"): (sum(a is None for a in ages), len(drawn)),
        ("missing_rate", "age"): (sum(a is MISSING for a in ages), len(drawn)),
        ("type_mismatch", "age"): (len(present_age) - len(numbers), len(present_age)),
        ("out_of_range", "age"): (sum(not 0 <= a <= 120 for a in numbers), len(numbers)),
        ("null_rate", "country"): (sum(c is None for c in countries), len(drawn)),
        ("missing_rate", "country"): (sum(c is MISSING for c in countries), len(drawn)),
        ("unseen_category", "country"): (sum(t not in CATEGORIES for t in text), len(text)),
        ("duplicate_event_id", None): (len(ids) - len(set(ids)), len(ids)),
    }


@settings(max_examples=150, deadline=None)
@given(event_rows)
def test_rates_are_exact_and_within_unit_interval(drawn: list[tuple[Any, Any, str | None]]) -> None:
    found = score(make_events(drawn), bounds=AGE_BOUNDS, features=["age", "country"])
    for key, (numerator, denominator) in oracle(drawn).items():
        finding = found[key]
        assert (finding.evidence["numerator"], finding.evidence["denominator"]) == (numerator, denominator), key
        assert 0.0 <= finding.value <= 1.0
        assert finding.value == (numerator / denominator if denominator else 0.0)


def quality_state(summary: WindowSummary) -> dict[str, Any]:
    """The data-quality part of a summary, comparable with ==."""
    return {
        "features": {
            name: (c.n_null, c.n_missing, c.n_wrong_type, c.n_out_of_range, list(c.out_of_range_examples),
                   c.bounds, c.counts.tolist())
            for name, c in summary.features.items()
        },
        "n_events": summary.n_events,
        "event_ids": summary.event_ids,
        "n_event_id": summary.n_event_id,
        "n_duplicate_event_id": summary.n_duplicate_event_id,
        "event_ids_capped": summary.event_ids_capped,
    }


@settings(max_examples=150, deadline=None)
@given(event_rows, st.data())
def test_merge_equals_the_summary_of_the_concatenation(drawn: list[tuple[Any, Any, str | None]], data: st.DataObject) -> None:
    events = make_events(drawn)
    cut1 = data.draw(st.integers(0, len(events)))
    cut2 = data.draw(st.integers(cut1, len(events)))
    a, b, c = events[:cut1], events[cut1:cut2], events[cut2:]
    whole = summarise(events, PROFILE, bounds=AGE_BOUNDS)
    sa, sb, sc = (summarise(part, PROFILE, bounds=AGE_BOUNDS) for part in (a, b, c))
    left = merge(merge(sa, sb, PROFILE), sc, PROFILE)
    right = merge(sa, merge(sb, sc, PROFILE), PROFILE)
    assert quality_state(left) == quality_state(whole)
    assert quality_state(right) == quality_state(whole)
    # duplicate examples are real duplicates, whichever way the window was split
    repeated = {i for i in (e.event_id for e in events) if i is not None and
                sum(e.event_id == i for e in events) > 1}
    assert set(left.duplicate_examples) <= repeated


def test_out_of_range_is_counted_across_flushes() -> None:
    rng = np.random.default_rng(7)
    ages = rng.uniform(-20, 140, 3 * FLUSH_EVERY + 17).round(1)
    events = rows(*({"age": float(a)} for a in ages))
    summary = empty_summary(PROFILE, bounds=AGE_BOUNDS)
    for item in events:
        summary_module.add_event(summary, item, PROFILE)
        # between flushes the pending values are not yet counted
        assert summary.features["age"].n_out_of_range <= int(((ages < 0) | (ages > 120)).sum())
    summary_module.flush(summary, PROFILE)
    assert summary.features["age"].n_out_of_range == int(((ages < 0) | (ages > 120)).sum())
    outside = [repr(float(a)) for a in ages if not 0 <= a <= 120]
    assert summary.features["age"].out_of_range_examples == list(dict.fromkeys(outside))[:5]


def test_summaries_with_different_bounds_do_not_merge() -> None:
    with pytest.raises(ValueError, match="different bounds"):
        merge(summarise([], PROFILE), summarise([], PROFILE, bounds=AGE_BOUNDS), PROFILE)


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


def test_defaults_are_documented_values() -> None:
    config = QualityConfig()
    for check, (warn, alert) in DEFAULT_THRESHOLDS.items():
        assert config.thresholds(check) == Thresholds(warn=warn, alert=alert)
    assert config.min_samples == 100 and config.features == "*"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param({"warn": 0.02, "alert": 0.1}, Thresholds(warn=0.02, alert=0.1), id="both"),
        pytest.param({"alert": 0.005}, Thresholds(warn=0.005, alert=0.005), id="alert-below-default-warn"),
        pytest.param({"alert": 0.2}, Thresholds(warn=0.01, alert=0.2), id="alert-only"),
        pytest.param({"warn": 0.2}, Thresholds(warn=0.2, alert=0.2), id="warn-above-default-alert"),
        pytest.param({"warn": 0.02}, Thresholds(warn=0.02, alert=0.05), id="warn-only"),
        pytest.param({"warn": None, "alert": 0.1}, Thresholds(warn=None, alert=0.1), id="no-warn-level"),
        pytest.param({}, Thresholds(warn=0.01, alert=0.05), id="empty-mapping"),
    ],
)
def test_omitted_thresholds_take_defaults_kept_in_order(given: dict[str, Any], expected: Thresholds) -> None:
    assert QualityConfig.model_validate({"null_rate": given}).null_rate == expected


HEAD = """\
version: 1
models:
  - name: m
    features:
      age: {type: numeric, range: [18, 120]}
      country: {type: categorical}
    detectors:
"""


def load_errors(body: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(HEAD + textwrap.indent(textwrap.dedent(body), "      "), path="drift.yaml")
    return info.value.messages


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "- quality: {null_rate: {warn: 0.2, alert: 0.1}}\n",
            "drift.yaml:8:30 models[0].detectors[0].quality.null_rate: warn must be <= alert; got warn=0.2, "
            "alert=0.1",
            id="warn-above-alert",
        ),
        pytest.param(
            "- quality: {out_of_range: {alert: 1.5}}\n",
            "drift.yaml:8:41 models[0].detectors[0].quality.out_of_range.alert: must be <= 1.0; got 1.5",
            id="rate-above-one",
        ),
        pytest.param(
            "- quality: {missing_rate: {alert: 0}}\n",
            "drift.yaml:8:41 models[0].detectors[0].quality.missing_rate.alert: must be > 0.0; got 0",
            id="rate-zero",
        ),
        pytest.param(
            "- quality: {type_mismatch: {alert: 0.1, page: true}}\n",
            "drift.yaml:8:47 models[0].detectors[0].quality.type_mismatch.page: unknown key 'page'; valid keys: "
            "alert, warn",
            id="unknown-threshold-key",
        ),
        pytest.param(
            "- quality: {min_samples: 0}\n",
            "drift.yaml:8:32 models[0].detectors[0].quality.min_samples: must be >= 1; got 0",
            id="min-samples",
        ),
        pytest.param(
            "- quality: {features: [age, salary]}\n",
            "drift.yaml:3:5 models[0]: quality.features names features not declared under features: "
            "['salary']; declared: ['age', 'country']",
            id="undeclared-feature",
        ),
        pytest.param(
            "- psi: {}\n- quality: {null_rate: \"5%\"}\n",
            "drift.yaml:9:30 models[0].detectors[1].quality.null_rate: must be a mapping; got '5%'",
            id="thresholds-not-a-mapping",
        ),
    ],
)
def test_config_errors_name_the_yaml_path(body: str, expected: str) -> None:
    assert load_errors(body) == [expected]


def test_yaml_config_loads_with_checks_turned_off() -> None:
    config = parse_config(HEAD + textwrap.indent(textwrap.dedent("""\
        - quality: {features: "*", null_rate: {warn: 0.02, alert: 0.05}, missing_rate: {alert: 0.05},
                    out_of_range: {alert: 0.01}, type_mismatch: {alert: 0.01}, unseen_category: null,
                    duplicate_event_id: {alert: 0.01}, min_samples: 50}
        """), "      "))
    model = config.models[0]
    ((name, settings),) = model.detector_configs()
    assert name == "quality" and isinstance(settings, QualityConfig)
    assert settings.unseen_category is None and settings.min_samples == 50
    assert settings.null_rate == Thresholds(warn=0.02, alert=0.05)
    assert settings.missing_rate == Thresholds(warn=0.01, alert=0.05)
    assert model.feature_bounds() == {"age": (18.0, 120.0)}
    assert model.tracks_event_ids()


def test_thresholds_are_frozen_and_strict() -> None:
    with pytest.raises(ValidationError):
        Thresholds.model_validate({"alert": "0.1"})
    with pytest.raises(ValidationError):
        QualityConfig().null_rate.alert = 0.5  # type: ignore[misc, union-attr]


# --------------------------------------------------------------------------
# Significance: a rate is tested against the reference's own rate
# --------------------------------------------------------------------------


def test_null_rate_p_value_is_the_binomial_tail_above_the_reference_rate() -> None:
    from scipy.stats import binomtest

    finding = score(rows(*([{"age": None}] * 35 + [{}] * 65)))[("null_rate", "age")]
    expected = binomtest(35, 100, 0.27, alternative="greater").pvalue
    assert finding.p_value == pytest.approx(expected, rel=1e-9)
    assert finding.evidence["reference_rate"] == 0.27 and finding.evidence["p_method"] == "binomial"


def test_a_rate_as_high_as_the_references_own_is_not_an_alert() -> None:
    """The reference has 27% nulls in age: a window at 30% is past alert 0.05, but not news."""
    events = rows(*([{"age": None}] * 30 + [{}] * 70))
    quiet = score(events)[("null_rate", "age")]
    loud = score(events, significance="none")[("null_rate", "age")]
    assert loud.severity is Severity.ALERT
    assert quiet.severity is Severity.OK and "not_significant" in quiet.evidence


def test_a_rate_the_reference_never_had_is_significant_at_once() -> None:
    found = score(rows(*([{"country": "XX"}] * 10 + [{"country": "DE"}] * 90)))
    out = found[("unseen_category", "country")]  # the reference had no unseen values
    assert out.p_value == 0.0 and out.severity is Severity.ALERT


def test_false_alarms_of_null_rate_at_small_n_drop_with_significance() -> None:
    """Windows of 100 events with the reference's own 3% null rate: alert 0.05 fires often by chance."""
    rng = np.random.default_rng(5)
    profile = ReferenceProfile(
        model="m", features={"age": numeric_profile(np.arange(970.0), 4)}, n_rows=1000, source="t", built_at=T0,
    )
    fired = {"none": 0, "bh": 0}
    for _ in range(300):
        n_null = int(rng.binomial(100, 0.03))
        summary = summarise(rows(*([{"age": None}] * n_null + [{"age": 5.0}] * (100 - n_null))), profile)
        for setting, key in (("none", "none"), ({"method": "bh", "q": 0.01}, "bh")):
            found = QualityDetector(QualityConfig(min_samples=1, significance=setting)).score(
                summary, profile, COHORT, WINDOW)
            fired[key] += by_check(found)[("null_rate", "age")].severity is not Severity.OK
    assert fired["none"] > 30  # P(X >= 2 | n=100, p=0.03) is about 80% past warn 0.02
    assert fired["bh"] <= 3
