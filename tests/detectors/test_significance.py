"""p-values of binned detectors: scipy as the oracle, calibration by simulation, BH, gating."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency, false_discovery_control, norm

from detectors.psi import PsiConfig, PsiDetector
from detectors.significance import (
    MIN_EXPECTED, Significance, bh_qvalues, homogeneity_test, judge, mean_shift_p,
)
from drift.findings import Cohort, Severity, Window
from drift.reference import build_reference
from drift.summary import summarise

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 500), min_size=2, max_size=12).flatmap(
        lambda ref: st.tuples(st.just(ref), st.lists(st.integers(0, 400), min_size=len(ref), max_size=len(ref)))),
)
def test_asymptotic_p_value_is_scipys_chi_square_of_the_two_row_table(tables: tuple[list[int], list[int]]) -> None:
    reference, current = (np.asarray(t, dtype=np.float64) for t in tables)
    n_reference = reference.sum()
    p, method, x2 = homogeneity_test(reference / n_reference, n_reference, current)
    used = (reference + current) > 0
    if current.sum() == 0:
        assert (p, method) == (1.0, "none")
        return
    expected_x2, expected_p, dof, _ = chi2_contingency(np.vstack([reference, current])[:, used], correction=False)
    assert x2 == pytest.approx(expected_x2, rel=1e-9, abs=1e-9)
    if method == "chi2":
        assert p == pytest.approx(expected_p, rel=1e-9, abs=1e-12)
    else:
        assert method == "monte_carlo"
        assert 0 <= p <= 1


def _simulate(shares: np.ndarray, n: int, n_reference: int, windows: int, seed: int) -> tuple[np.ndarray, set[str]]:
    """p-values of windows and references drawn from one distribution (H0 true)."""
    rng = np.random.default_rng(seed)
    out, methods = np.empty(windows), set()
    for k in range(windows):
        reference = rng.multinomial(n_reference, shares)
        current = rng.multinomial(n, shares)
        out[k], method, _ = homogeneity_test(reference / n_reference, n_reference, current)
        methods.add(method)
    return out, methods


@pytest.mark.parametrize("bins", [5, 10])
@pytest.mark.parametrize("n", [50, 100, 1_000, 10_000])
def test_p_values_are_calibrated_under_no_drift(n: int, bins: int) -> None:
    """False-positive rate within ±1 percentage point of alpha = 0.01 and 0.05 (6,000 windows: SE 0.3 points)."""
    shares = np.full(bins, 1 / bins)  # quantile bins of the reference: equal shares
    p, methods = _simulate(shares, n, n_reference=20_000, windows=6_000, seed=n * 31 + bins)
    for alpha in (0.01, 0.05):
        rate = float(np.mean(p <= alpha))
        assert abs(rate - alpha) <= 0.01, (n, bins, alpha, rate, methods)


def test_p_values_are_calibrated_with_rare_categories_by_monte_carlo() -> None:
    """Categorical shares with rare categories: expected counts below 5, the Monte-Carlo test."""
    shares = np.array([0.6, 0.25, 0.1, 0.03, 0.015, 0.005])
    p, methods = _simulate(shares, n=100, n_reference=5_000, windows=4_000, seed=3)
    assert methods == {"monte_carlo"}
    for alpha in (0.01, 0.05):
        assert abs(float(np.mean(p <= alpha)) - alpha) <= 0.01


def test_window_as_large_as_the_reference_stays_calibrated() -> None:
    """The reference is a sample too: testing against its shares as exact would reject ~2x too often."""
    p, _ = _simulate(np.full(10, 0.1), n=5_000, n_reference=5_000, windows=4_000, seed=9)
    assert abs(float(np.mean(p <= 0.05)) - 0.05) <= 0.01


def test_monte_carlo_only_below_the_expected_count_rule() -> None:
    shares = np.full(10, 0.1)
    assert homogeneity_test(shares, 10_000, [5] * 10)[1] == "chi2"  # n = 50: expected 5.0 per window cell
    small = [4] * 10  # n = 40: expected 4 per window cell
    assert homogeneity_test(shares, 10_000, small)[1] == "monte_carlo"
    assert MIN_EXPECTED == 5


def test_monte_carlo_p_value_is_a_function_of_the_counts() -> None:
    shares = np.array([0.7, 0.2, 0.1])
    first = homogeneity_test(shares, 1000, [12, 2, 1])
    assert first == homogeneity_test(shares, 1000, [12, 2, 1])
    assert first[1] == "monte_carlo"


def test_strong_drift_is_significant_at_small_n() -> None:
    p, _, _ = homogeneity_test(np.full(10, 0.1), 20_000, [60, 40, 0, 0, 0, 0, 0, 0, 0, 0])
    assert p < 1e-3


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_bh_matches_scipy(p_values: list[float]) -> None:
    np.testing.assert_allclose(bh_qvalues(p_values), false_discovery_control(p_values, method="bh"), rtol=1e-12)


def test_mean_shift_p_is_the_two_sided_normal_tail() -> None:
    for shift, n in [(0.1, 100), (0.3, 50), (0.02, 10_000)]:
        assert mean_shift_p(shift, n) == pytest.approx(2 * norm.sf(abs(shift) * math.sqrt(n)), rel=1e-12)


def test_judge_keeps_significant_effects_and_quiets_the_rest() -> None:
    severities = [Severity.ALERT, Severity.WARN, Severity.OK, Severity.ALERT]
    judged, q = judge(severities, [1e-6, 0.3, 0.9, None], Significance(q=0.01))
    assert judged == [Severity.ALERT, Severity.OK, Severity.OK, Severity.ALERT]  # untested keeps its severity
    assert q[3] is None and q[0] == pytest.approx(3e-6)
    assert judge(severities, [1e-6, 0.3, 0.9, None], "none")[0] == severities


def _psi_findings(counts: list[int], significance: Significance | str) -> list:
    rng = np.random.default_rng(0)
    profile = build_reference("m", {"x": rng.normal(size=20_000)}, {"x": "numeric"}, {"x": 10}, "t", 20_000)
    edges = profile.features["x"].edges
    mids = [edges[0] - 1, *((a + b) / 2 for a, b in zip(edges, edges[1:])), edges[-1] + 1]
    from drift.events import InferenceEvent, RawMessage

    events = [
        InferenceEvent(event_id=str(i), ts=T0, model="m", model_version=None, tenant=None, region=None,
                       route=None, segment={}, entity_id=None, features={"x": mids[b]}, prediction=None,
                       embedding=None, raw=RawMessage(b"", "t", 0, i))
        for b, c in enumerate(counts) for i in range(c)
    ]
    summary = summarise(events, profile)
    config = PsiConfig.model_validate({"significance": significance, "min_samples": 10})
    return PsiDetector(config).score(summary, profile, Cohort("m"), Window(T0, T0))


def test_psi_above_warn_by_chance_at_small_n_is_ok_with_the_reason() -> None:
    # n = 20: PSI 0.35 but a table like this is common by chance alone.
    counts = [3, 1, 2, 3, 1, 2, 3, 1, 2, 2]
    quiet = _psi_findings(counts, {"method": "bh", "q": 0.01})[0]
    loud = _psi_findings(counts, "none")[0]
    assert loud.severity is not Severity.OK and loud.value >= 0.1
    assert quiet.severity is Severity.OK and quiet.value == loud.value
    assert quiet.p_value is not None and quiet.q_value is not None and quiet.q_value > 0.01
    assert "not_significant" in quiet.evidence and quiet.evidence["p_method"] == "monte_carlo"
    assert quiet.to_dict()["p_value"] == quiet.p_value


def test_psi_with_real_drift_still_alerts_and_says_p_and_q() -> None:
    finding = _psi_findings([60, 40, 0, 0, 0, 0, 0, 0, 0, 0], {"method": "bh", "q": 0.01})[0]
    assert finding.severity is Severity.ALERT
    assert finding.p_value < 1e-6 and finding.q_value < 1e-6
    assert finding.evidence["significance"] == "bh q<=0.01" and "not_significant" not in finding.evidence


def test_a_strong_shift_in_a_sparse_table_gets_a_p_value_below_the_monte_carlo_floor() -> None:
    """A new category in a 200-event window: Monte-Carlo alone would stop at 1/2000, which
    Benjamini-Hochberg over 25 features would turn into q = 0.0125 > 0.01."""
    shares = np.array([0.4, 0.3, 0.2, 0.07, 0.03, 0.0])  # the last bin: __unseen__
    current = np.array([50, 40, 25, 3, 2, 80])
    p, method, _ = homogeneity_test(shares, 20_000, current)
    assert method == "monte_carlo"
    assert p < 1e-10
    q = bh_qvalues([p, *[0.5] * 24])
    assert q[0] <= 0.01


def test_the_merged_table_is_used_only_below_the_floor() -> None:
    from detectors.significance import _collapsed_chi2_p

    shares = np.full(10, 0.1)
    rng = np.random.default_rng(8)
    for _ in range(50):  # no-drift sparse tables: the Monte-Carlo value, never the merged one
        current = rng.multinomial(30, shares)
        p, method, _ = homogeneity_test(shares, 20_000, current)
        assert method == "monte_carlo" and p >= 1 / 2000
    # Merging keeps every expected count at 5 or more and the p-value in [0, 1].
    assert 0 <= _collapsed_chi2_p(shares * 20_000, np.array([30.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 20_000, 30) < 1e-6
