"""PSI: the statistic against a direct formula and scipy, its properties, and the detector."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from detectors.psi import DEFAULT_EPSILON, PsiConfig, PsiDetector, psi, psi_terms
from drift.events import InferenceEvent, RawMessage
from drift.findings import Cohort, Severity, Window
from drift.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from drift.summary import summarise

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
COHORT = Cohort("m")
WINDOW = Window(T0, T0 + timedelta(hours=1))


def direct_psi(reference: list[float], current: list[float], epsilon: float = DEFAULT_EPSILON) -> float:
    """PSI written out bin by bin: sum of (c - r) ln(c / r) over shares floored at epsilon."""
    ref_total, cur_total = sum(reference), sum(current)
    if ref_total <= 0 or cur_total <= 0:
        return 0.0
    total = 0.0
    for ref_count, cur_count in zip(reference, current):
        r = max(ref_count / ref_total, epsilon)
        c = max(cur_count / cur_total, epsilon)
        total += (c - r) * math.log(c / r)
    return total


def event(i: int, features: dict[str, object]) -> InferenceEvent:
    return InferenceEvent(
        event_id=str(i), ts=T0 + timedelta(seconds=i), model="m", model_version=None,
        tenant=None, region=None, route=None, segment={}, entity_id=None,
        features=features, prediction=None, embedding=None,  # type: ignore[arg-type]
        raw=RawMessage(value=b"", topic="t", partition=0, offset=i),
    )


@st.composite
def count_pairs(draw: st.DrawFn, min_count: int = 0, max_count: int = 1000) -> tuple[list[int], list[int]]:
    """Two count vectors over the same 1..30 bins."""
    n_bins = draw(st.integers(min_value=1, max_value=30))
    counts = st.lists(st.integers(min_count, max_count), min_size=n_bins, max_size=n_bins)
    return draw(counts), draw(counts)


# --------------------------------------------------------------------------
# The statistic
# --------------------------------------------------------------------------


def test_hand_computed_shift() -> None:
    # shares (0.5, 0.5) -> (0.8, 0.2): 0.3 ln(0.8/0.5) + (-0.3) ln(0.2/0.5)
    expected = 0.3 * math.log(1.6) + 0.3 * math.log(2.5)
    assert psi([50, 50], [80, 20]) == pytest.approx(expected, rel=1e-12)


EPS = DEFAULT_EPSILON


@pytest.mark.parametrize(
    ("reference", "current", "expected"),
    [
        pytest.param([50, 50], [50, 50], 0.0, id="identical"),
        pytest.param([1, 3], [10, 30], 0.0, id="proportional"),
        pytest.param([7], [3], 0.0, id="single-bin"),
        pytest.param([0, 0], [5, 5], 0.0, id="reference-all-zero"),
        pytest.param([5, 5], [0, 0], 0.0, id="current-all-zero"),
        pytest.param([0, 0], [0, 0], 0.0, id="both-all-zero"),
        pytest.param([0.5, 0.5], [80, 20], 0.3 * math.log(1.6) + 0.3 * math.log(2.5), id="shares-vs-counts"),
        # the shared empty bin is floored on both sides, so it adds nothing
        pytest.param([50, 0, 50], [80, 0, 20], 0.3 * math.log(1.6) + 0.3 * math.log(2.5), id="empty-on-both"),
        # current loses a bin: shares (0.5, 0.5) -> (1, eps)
        pytest.param([50, 50], [100, 0], 0.5 * math.log(2) + (0.5 - EPS) * math.log(0.5 / EPS), id="empty-in-current"),
        pytest.param([100, 0], [50, 50], 0.5 * math.log(2) + (0.5 - EPS) * math.log(0.5 / EPS), id="empty-in-reference"),
    ],
)
def test_edge_cases(reference: list[float], current: list[float], expected: float) -> None:
    value = psi(reference, current)
    assert math.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_epsilon_is_the_floor_of_an_empty_bin() -> None:
    small = psi([50, 50], [100, 0], epsilon=1e-6)
    large = psi([50, 50], [100, 0], epsilon=1e-2)
    assert small == pytest.approx(direct_psi([50, 50], [100, 0], 1e-6), rel=1e-12)
    assert large == pytest.approx(direct_psi([50, 50], [100, 0], 1e-2), rel=1e-12)
    assert small > large  # a smaller floor punishes a vanished bin harder


@settings(max_examples=200, deadline=None)
@given(count_pairs())
def test_matches_direct_formula(pair: tuple[list[int], list[int]]) -> None:
    reference, current = pair
    assert psi(reference, current) == pytest.approx(direct_psi(reference, current), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(count_pairs(min_count=1, max_count=100))
def test_equals_symmetric_kl_without_empty_bins(pair: tuple[list[int], list[int]]) -> None:
    # counts >= 1 over <= 30 bins of <= 100 keep every share >= 1/3000 > epsilon, so no floor applies
    reference, current = pair
    oracle = scipy.stats.entropy(current, reference) + scipy.stats.entropy(reference, current)
    assert psi(reference, current) == pytest.approx(oracle, rel=1e-9, abs=1e-12)


def test_equals_symmetric_kl_on_random_counts() -> None:
    rng = np.random.default_rng(20260101)
    for _ in range(20):
        # counts >= 100 of a total < 120 000 keep every share above epsilon
        reference = rng.integers(100, 10_000, size=12)
        current = rng.integers(100, 10_000, size=12)
        oracle = scipy.stats.entropy(current, reference) + scipy.stats.entropy(reference, current)
        assert psi(reference, current) == pytest.approx(oracle, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(count_pairs())
def test_non_negative_finite_and_symmetric(pair: tuple[list[int], list[int]]) -> None:
    reference, current = pair
    value = psi(reference, current)
    assert math.isfinite(value)
    assert value >= 0.0
    assert psi(current, reference) == pytest.approx(value, rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=30), st.integers(1, 50))
def test_exactly_zero_for_identical_and_proportional(counts: list[int], factor: int) -> None:
    assert psi(counts, counts) == 0.0
    assert psi(counts, [factor * c for c in counts]) == 0.0


@settings(max_examples=100, deadline=None)
@given(count_pairs(), st.randoms(use_true_random=False))
def test_invariant_to_permuting_bins_jointly(pair: tuple[list[int], list[int]], random: object) -> None:
    reference, current = pair
    order = list(range(len(reference)))
    random.shuffle(order)  # type: ignore[attr-defined]
    permuted = psi([reference[i] for i in order], [current[i] for i in order])
    assert permuted == pytest.approx(psi(reference, current), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(count_pairs())
def test_terms_sum_to_psi(pair: tuple[list[int], list[int]]) -> None:
    reference, current = pair
    terms = psi_terms(reference, current)
    assert terms.shape == (len(reference),)
    assert np.all(terms >= 0.0)
    assert float(terms.sum()) == pytest.approx(psi(reference, current), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        pytest.param([1, 2], [1, 2, 3], id="lengths-differ"),
        pytest.param([1], [1, 2, 3], id="would-broadcast"),
        pytest.param([[1, 2]], [[1, 2]], id="two-dimensional"),
        pytest.param(1, 1, id="scalars"),
    ],
)
@pytest.mark.parametrize("statistic", [psi, psi_terms], ids=["psi", "psi_terms"])
def test_shape_mismatch_raises(statistic: object, reference: object, current: object) -> None:
    with pytest.raises(ValueError, match="1-D of one length"):
        statistic(reference, current)  # type: ignore[operator]


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"warn": 0.3, "alert": 0.2}, id="warn-above-alert"),
        pytest.param({"bins": 1}, id="one-bin"),
        pytest.param({"epsilon": 0.0}, id="zero-epsilon"),
        pytest.param({"min_samples": 0}, id="no-samples"),
        pytest.param({"bins": "10"}, id="string-bins"),
        pytest.param({"threshold": 0.2}, id="unknown-field"),
    ],
)
def test_config_rejects(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PsiConfig(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# The detector
# --------------------------------------------------------------------------

NUMERIC = NumericProfile(edges=(0.0, 1.0, 2.0), shares=(0.25, 0.25, 0.25, 0.25), n=400, low=-1.0, high=3.0)
CATEGORICAL = CategoricalProfile(categories=("a", "b"), shares=(0.6, 0.4, 0.0), n=500)
PROFILE = ReferenceProfile(
    model="m", features={"x": NUMERIC, "c": CATEGORICAL}, n_rows=500, source="test", built_at=T0,
)


def shifted_events(n: int) -> list[InferenceEvent]:
    """n events whose x lands mostly in the top bin and whose c is mostly 'a' plus unseen values."""
    xs = [2.5, 2.5, 2.5, 0.5]
    cs = ["a", "a", "b", "zz", "a"]
    return [event(i, {"x": xs[i % len(xs)], "c": cs[i % len(cs)]}) for i in range(n)]


def finding_for(detector: PsiDetector, n: int, feature: str = "x"):  # type: ignore[no-untyped-def]
    findings = detector.score(summarise(shifted_events(n), PROFILE), PROFILE, COHORT, WINDOW)
    return next(f for f in findings if f.feature == feature)


def expected_x_psi(n: int) -> float:
    current = [0, 0, 0, 0]
    for e in shifted_events(n):
        x = float(e.features["x"])  # type: ignore[arg-type]
        current[sum(1 for edge in NUMERIC.edges if edge <= x)] += 1
    return direct_psi(list(NUMERIC.shares), current)


@pytest.mark.parametrize(
    ("warn_factor", "alert_factor", "severity"),
    [
        pytest.param(2.0, 4.0, Severity.OK, id="below-warn"),
        pytest.param(0.5, 2.0, Severity.WARN, id="between"),
        pytest.param(0.25, 0.5, Severity.ALERT, id="above-alert"),
    ],
)
def test_severity_from_thresholds(warn_factor: float, alert_factor: float, severity: Severity) -> None:
    value = expected_x_psi(200)
    config = PsiConfig(warn=value * warn_factor, alert=value * alert_factor, min_samples=10)
    finding = finding_for(PsiDetector(config), 200)
    assert finding.value == pytest.approx(value, rel=1e-9)
    assert finding.severity is severity
    assert finding.skipped is None
    assert (finding.warn, finding.alert) == (config.warn, config.alert)
    assert finding.n_current == 200
    assert finding.n_reference == NUMERIC.n
    assert finding.detector == "psi"


@pytest.mark.parametrize(
    ("n_events", "min_samples", "skipped"),
    [
        pytest.param(0, 1, True, id="empty-window"),
        pytest.param(99, 100, True, id="one-short"),
        pytest.param(100, 100, False, id="exactly-enough"),
    ],
)
def test_skipped_below_min_samples(n_events: int, min_samples: int, skipped: bool) -> None:
    # alert=0 would flag any judged value, so OK can only come from skipping
    detector = PsiDetector(PsiConfig(warn=0.0, alert=0.0, min_samples=min_samples))
    finding = finding_for(detector, n_events)
    assert finding.n_current == n_events
    if skipped:
        assert finding.skipped is not None
        assert str(min_samples) in finding.skipped
        assert finding.value == 0.0
        assert finding.severity is Severity.OK
    else:
        assert finding.skipped is None
        assert finding.value == pytest.approx(expected_x_psi(n_events), rel=1e-9)
        assert finding.severity is Severity.ALERT


def test_evidence_numeric() -> None:
    finding = finding_for(PsiDetector(PsiConfig(min_samples=1)), 200)
    evidence = finding.evidence
    assert evidence["bins"] == NUMERIC.bin_labels()
    assert len(evidence["bins"]) == NUMERIC.n_bins == 4
    assert evidence["reference_share"] == list(NUMERIC.shares)
    assert len(evidence["current_share"]) == 4
    assert sum(evidence["current_share"]) == pytest.approx(1.0, abs=1e-5)
    # current counts per bin: 3 in 4 values are 2.5 (bin 3), 1 in 4 is 0.5 (bin 1)
    r_shares, c_shares = NUMERIC.shares, (0.0, 0.25, 0.0, 0.75)
    oracle_terms = {
        label: (max(c, EPS) - max(r, EPS)) * math.log(max(c, EPS) / max(r, EPS))
        for label, r, c in zip(NUMERIC.bin_labels(), r_shares, c_shares)
    }
    assert evidence["current_share"] == list(c_shares)
    top = evidence["top_bins"]
    assert len(top) == 3  # all but the bin whose share did not move
    contributions = [b["contribution"] for b in top]
    assert contributions == sorted(contributions, reverse=True)
    for item in top:
        assert item["contribution"] == pytest.approx(oracle_terms[item["bin"]], abs=1e-6)
    left_out = set(oracle_terms) - {b["bin"] for b in top}
    assert all(oracle_terms[label] <= min(contributions) for label in left_out)
    assert "wrong_type_examples" not in evidence


def test_evidence_categorical_names_unseen_values() -> None:
    finding = finding_for(PsiDetector(PsiConfig(min_samples=1)), 200, feature="c")
    assert finding.evidence["bins"] == ["a", "b", "__unseen__"]
    assert finding.evidence["unseen_examples"] == ["zz"]
    assert finding.value == pytest.approx(direct_psi([0.6, 0.4, 0.0], [120, 40, 40]), rel=1e-9)


def test_evidence_numeric_names_wrong_types() -> None:
    events = [event(i, {"x": "oops" if i == 0 else 0.5, "c": "a"}) for i in range(20)]
    findings = PsiDetector(PsiConfig(min_samples=1)).score(summarise(events, PROFILE), PROFILE, COHORT, WINDOW)
    x = next(f for f in findings if f.feature == "x")
    assert x.evidence["wrong_type_examples"] == ["'oops'"]
    assert x.n_current == 19


def test_evidence_of_identical_window_has_no_top_bins() -> None:
    # one value per reference quarter, repeated: current shares equal the reference exactly
    events = [event(i, {"x": [-0.5, 0.5, 1.5, 2.5][i % 4], "c": "a"}) for i in range(40)]
    findings = PsiDetector(PsiConfig(min_samples=1)).score(summarise(events, PROFILE), PROFILE, COHORT, WINDOW)
    x = next(f for f in findings if f.feature == "x")
    assert x.value == 0.0
    assert x.evidence["top_bins"] == []


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        pytest.param("*", ["x", "c"], id="all"),
        pytest.param(["c"], ["c"], id="one"),
        pytest.param(["c", "x"], ["c", "x"], id="config-order"),
        pytest.param(["nope", "x"], ["x"], id="unknown-dropped"),
    ],
)
def test_features_selection(features: object, expected: list[str]) -> None:
    detector = PsiDetector(PsiConfig(features=features, min_samples=1))  # type: ignore[arg-type]
    assert detector.features(PROFILE) == expected
    findings = detector.score(summarise(shifted_events(10), PROFILE), PROFILE, COHORT, WINDOW)
    assert [f.feature for f in findings] == expected
    assert all(f.cohort == COHORT and f.window == WINDOW for f in findings)
