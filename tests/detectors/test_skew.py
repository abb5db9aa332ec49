"""Distribution skew: JS and L∞ against scipy and hand computation, properties, the detector, config."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from detectors.skew import (
    COUNTERMEASURES,
    SkewConfig,
    SkewDetector,
    jensen_shannon,
    js_terms,
    linf,
    unit_suspect,
)
from drift.config import ConfigError, parse_config
from drift.findings import Cohort, Window
from drift.reference import ReferenceProfile, categorical_profile, numeric_profile
from drift.summary import empty_summary

T0 = datetime(2026, 11, 2, 8, tzinfo=timezone.utc)
WINDOW = Window(T0, T0.replace(hour=9))


def _kl2(p: list[float], q: list[float]) -> float:
    return sum(a * math.log2(a / b) for a, b in zip(p, q) if a > 0)


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        ([50, 50], [50, 50]),
        ([50, 50], [80, 20]),
        ([1, 0], [0, 1]),
        ([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]),
        ([10, 0, 30, 60], [0, 5, 45, 50]),  # a bin empty on each side: no epsilon needed
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]),
    ],
)
def test_js_matches_scipy_squared_and_hand_formula(reference: list[float], current: list[float]) -> None:
    p = np.asarray(reference, float) / sum(reference)
    q = np.asarray(current, float) / sum(current)
    m = (p + q) / 2
    by_hand = 0.5 * _kl2(list(p), list(m)) + 0.5 * _kl2(list(q), list(m))
    assert jensen_shannon(reference, current) == pytest.approx(by_hand, abs=1e-12)
    assert jensen_shannon(reference, current) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)
    assert js_terms(reference, current).sum() == pytest.approx(jensen_shannon(reference, current), abs=1e-12)


def test_js_hand_computed_values() -> None:
    # p = (.5, .5), q = (.8, .2), m = (.65, .35)
    expected = 0.5 * (0.5 * math.log2(0.5 / 0.65) + 0.5 * math.log2(0.5 / 0.35)) + 0.5 * (
        0.8 * math.log2(0.8 / 0.65) + 0.2 * math.log2(0.2 / 0.35)
    )
    assert jensen_shannon([50, 50], [80, 20]) == pytest.approx(expected, abs=1e-12)
    assert jensen_shannon([1, 0], [0, 1]) == 1.0
    assert jensen_shannon([0, 0], [1, 1]) == 0.0  # nothing to compare


def test_linf_hand_computed() -> None:
    assert linf([50, 30, 20], [30, 30, 40]) == pytest.approx(0.2)
    assert linf([1, 0], [0, 1]) == 1.0
    assert linf([3, 3], [6, 6]) == 0.0
    assert linf([0, 0], [1, 1]) == 0.0


def test_shapes_and_signs_are_checked() -> None:
    with pytest.raises(ValueError, match="one length"):
        jensen_shannon([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        jensen_shannon([1, -2], [1, 2])


counts = st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_js_properties(data: st.DataObject) -> None:
    reference = data.draw(counts)
    current = data.draw(st.lists(st.integers(0, 1000), min_size=len(reference), max_size=len(reference)))
    value = jensen_shannon(reference, current)
    # base 2: within [0, 1] (it would be [0, ln 2] in nats)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(jensen_shannon(current, reference), abs=1e-12)  # symmetric
    assert jensen_shannon(reference, reference) == pytest.approx(0.0, abs=1e-15)
    assert np.all(js_terms(reference, current) >= 0)
    # Scaling counts does not change shares.
    assert jensen_shannon([3 * c for c in reference], current) == pytest.approx(value, abs=1e-12)
    if sum(reference) and sum(current):
        p = np.asarray(reference, float) / sum(reference)
        q = np.asarray(current, float) / sum(current)
        assert value == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-9)
        assert value * math.log(2) <= math.log(2) + 1e-12  # the same bound in nats
        assert 0.0 <= linf(reference, current) <= 1.0
        assert linf(reference, current) == pytest.approx(float(np.max(np.abs(p - q))), abs=1e-12)


def _profile() -> ReferenceProfile:
    rng = np.random.default_rng(7)
    return ReferenceProfile(
        "m",
        {
            "income": numeric_profile(rng.lognormal(8.4, 0.45, 5000), 10),
            "country": categorical_profile(["DE"] * 50 + ["FR"] * 30 + ["ES"] * 20),
        },
        5000, "test", T0,
    )


def _summary(profile: ReferenceProfile, income: np.ndarray, country: list[int]) -> object:
    summary = empty_summary(profile)
    edges = np.asarray(profile.features["income"].edges)  # type: ignore[union-attr]
    summary.features["income"].counts[:] = np.bincount(np.searchsorted(edges, income, side="right"), minlength=len(edges) + 1)
    summary.features["country"].counts[:] = country
    return summary


def test_detector_names_the_bins_that_contribute_most() -> None:
    profile = _profile()
    rng = np.random.default_rng(8)
    summary = _summary(profile, rng.lognormal(8.4, 0.45, 1000) * 100, [500, 300, 200, 0])
    found = SkewDetector(SkewConfig()).score(summary, profile, Cohort("m"), WINDOW)  # type: ignore[arg-type]
    by_feature = {f.feature: f for f in found}
    income, country = by_feature["income"], by_feature["country"]
    assert income.detector == "skew.jensen_shannon" and income.severity.value == "alert"
    # cents against dollars: everything in the open top bin, which holds a tenth of the reference
    expected = jensen_shannon([0.1] * 10, [0] * 9 + [1])
    assert income.value == pytest.approx(expected) and income.value > 0.7
    assert income.evidence["log_base"] == 2
    assert income.evidence["top_bins"][0]["bin"].endswith("inf)")  # the open top bin took everything
    assert COUNTERMEASURES["units"] in income.evidence["countermeasures"]
    assert country.severity.value == "ok" and country.value == pytest.approx(0.0, abs=1e-12)
    assert "countermeasures" not in country.evidence


def test_linf_applies_to_categorical_features_only() -> None:
    profile = _profile()
    rng = np.random.default_rng(9)
    summary = _summary(profile, rng.lognormal(8.4, 0.45, 1000), [200, 300, 200, 300])
    detector = SkewDetector(SkewConfig(method="linf", thresholds={"income": {"alert": 0.5}}))  # type: ignore[arg-type]
    found = {f.feature: f for f in detector.score(summary, profile, Cohort("m"), WINDOW)}  # type: ignore[arg-type]
    assert found["country"].detector == "skew.linf"
    assert found["country"].value == pytest.approx(0.3)  # DE: 0.5 -> 0.2, and unseen 0 -> 0.3
    assert {b["bin"] for b in found["country"].evidence["top_bins"][:2]} == {"DE", "__unseen__"}
    assert (found["country"].warn, found["country"].alert) == (0.1, 0.2)
    assert found["income"].detector == "skew.jensen_shannon"
    assert (found["income"].warn, found["income"].alert) == (0.05, 0.5)  # per-feature alert, warn lowered to fit


def test_below_min_samples_is_skipped() -> None:
    profile = _profile()
    summary = _summary(profile, np.array([1.0, 2.0]), [2, 0, 0, 0])
    found = SkewDetector(SkewConfig()).score(summary, profile, Cohort("m"), WINDOW)  # type: ignore[arg-type]
    assert all(f.severity.value == "ok" and f.skipped for f in found)


def test_method_null_keeps_only_value_skew() -> None:
    config = SkewConfig.model_validate({"method": None, "values": {"feature_set": "p"}})
    assert SkewDetector(config).score(empty_summary(_profile()), _profile(), Cohort("m"), WINDOW) == []


def test_unit_suspect_names_common_factors() -> None:
    assert "cents vs dollars" in (unit_suspect(100.3) or "")
    assert "dollars vs cents" in (unit_suspect(0.0101) or "")
    assert unit_suspect(1.02) is None and unit_suspect(-100.0) is None


YAML = """
version: 1
models:
  - name: m
    features: {income: {type: numeric}, country: {type: categorical}}
    detectors:
      - skew: {method: jensen_shannon, alert: 0.1, thresholds: {country: {alert: 0.2}},
               values: {feature_set: customer_profile, key: entity_id, max_age: 1h, grace: 1m,
                        tolerance: {abs: 0.01, rel: 0.001}, alert: 0.05}}
"""


def test_yaml_config_parses() -> None:
    config = parse_config(YAML, "drift.yaml")
    (name, settings), = config.models[0].detector_configs()
    assert name == "skew" and isinstance(settings, SkewConfig)
    assert settings.values is not None and settings.values.max_age.total_seconds() == 3600
    assert settings.values.tolerance.rel == 0.001
    assert settings.levels("country", "jensen_shannon") == (0.05, 0.2)
    assert settings.levels("income", "jensen_shannon") == (0.05, 0.1)
    assert config.models[0].psi_bins() == {"income": 10, "country": 10}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("method: jensen_shannon", "skew.method: must be one of 'jensen_shannon' or 'linf'"),
        ("max_age: 1h", "skew.values.max_age: must be a duration"),
        ("alert: 0.05}}", "skew.values.alert: must be <= 1"),
        ("thresholds: {country: {alert: 0.2}}", "name features not declared under features: ['zip']"),
        ("tolerance: {abs: 0.01, rel: 0.001}", "skew.values.tolerance.rel: must be >= 0"),
    ],
)
def test_yaml_errors_name_the_path(change: str, message: str) -> None:
    broken = {
        "method: jensen_shannon": "method: kl",
        "max_age: 1h": "max_age: soon",
        "alert: 0.05}}": "alert: 5}}",
        "thresholds: {country: {alert: 0.2}}": "thresholds: {zip: {alert: 0.2}}",
        "tolerance: {abs: 0.01, rel: 0.001}": "tolerance: {abs: 0.01, rel: -1.0}",
    }[change]
    with pytest.raises(ConfigError) as caught:
        parse_config(YAML.replace(change, broken), "drift.yaml")
    text = str(caught.value)
    assert "drift.yaml:" in text and "models[0]" in text
    assert message in text, text
