"""Significance across the cohorts of a model window: calibration by simulation, and the
streaming rule against the batch Benjamini–Bogomolov procedure written out here."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import false_discovery_control

from detectors.significance import CohortFamilies, Significance, judge
from drift.findings import Cohort, Finding, Severity, Window

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
WINDOW = Window(T0, T0)
Q = 0.01


def _findings(cohort: int, p_values: list[float], setting: Significance | str = Significance(q=Q)) -> list[Finding]:
    """One cohort window's findings of one detector, every value past warn, judged within the cohort."""
    severities, q_values = judge([Severity.WARN] * len(p_values), p_values, setting)  # type: ignore[arg-type]
    return [
        Finding("psi", Cohort("m", (("tenant", f"t{cohort}"),)), WINDOW, f"f{j}", 0.2, severity, 0.1, 0.25,
                1000, 1000, "reference", {}, None, p, q)
        for j, (p, severity, q) in enumerate(zip(p_values, severities, q_values))
    ]


def _stream(p_values: np.ndarray, setting: Significance = Significance(q=Q)) -> list[list[Finding]]:
    """Each cohort's findings after the cross-cohort judgement, cohorts judged in row order."""
    families = CohortFamilies()
    families.count(0, 0, p_values.shape[0])
    return [families.judge(_findings(c, row.tolist(), setting), setting, 0, -1, 0)
            for c, row in enumerate(p_values)]


def test_under_no_drift_a_model_window_of_many_cohorts_has_a_false_finding_at_most_q_of_the_time() -> None:
    # 300 cohorts × 10 features, every p-value uniform (no drift), 1,000 model windows.
    rng = np.random.default_rng(3)
    windows, cohorts, features = 1000, 300, 10
    within_only = across = 0
    for _ in range(windows):
        p = rng.uniform(size=(cohorts, features))
        # A cohort without a finding significant within it changes nothing across cohorts
        # (CohortFamilies.judge returns it as it is): only the others are built and judged.
        fired = np.flatnonzero(false_discovery_control(p, axis=1, method="bh").min(axis=1) <= Q)
        within_only += fired.size > 0
        families = CohortFamilies()
        families.count(0, 0, cohorts)
        across += any(f.severity is not Severity.OK for c in fired.tolist()
                      for f in families.judge(_findings(c, p[c].tolist()), Significance(q=Q), 0, -1, 0))
    # Within-cohort control alone: about 1 - (1 - q)^300 ≈ 95% of the windows have a false finding.
    assert within_only / windows > 0.8
    # Across cohorts: at most q (+ 3 standard errors of the simulation).
    assert across / windows <= Q + 3 * np.sqrt(Q * (1 - Q) / windows)


def _batch_benjamini_bogomolov(p_values: np.ndarray, q: float) -> set[tuple[int, int]]:
    """Benjamini & Bogomolov (2014) with Simes selection, in one pass over a whole model window:
    cohorts selected by BH at q over their Simes p-values, then BH at q·R/K within each."""
    k = p_values.shape[0]
    simes = np.array([false_discovery_control(row, method="bh").min() for row in p_values])
    selected = np.flatnonzero(false_discovery_control(simes, method="bh") <= q)
    r = selected.size
    out = set()
    for c in selected.tolist():
        q_within = false_discovery_control(p_values[c], method="bh")
        out |= {(c, j) for j in np.flatnonzero(q_within <= q * r / k).tolist()}
    return out


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 8), st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_the_streaming_rule_raises_no_finding_the_batch_procedure_would_not(
    cohorts: int, features: int, seed: int, drifted: float,
) -> None:
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=(cohorts, features))
    # Some cohorts with strong signals in some features.
    strong = rng.uniform(size=(cohorts, features)) < drifted * 0.5
    p[strong] *= 10.0 ** -rng.uniform(2, 12, size=int(strong.sum()))
    kept = {(c, j) for c, found in enumerate(_stream(p)) for j, f in enumerate(found) if f.severity is not Severity.OK}
    assert kept <= _batch_benjamini_bogomolov(p, Q)


def test_cohorts_judged_best_first_are_found_as_the_batch_procedure_finds_them() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(size=(200, 10))
    p[:20, :3] = 1e-9  # 20 drifted cohorts, three features each
    simes = np.array([false_discovery_control(row, method="bh").min() for row in p])
    order = np.argsort(simes, kind="stable")
    found = _stream(p[order])
    kept = {(int(order[c]), j) for c, fs in enumerate(found) for j, f in enumerate(fs) if f.severity is not Severity.OK}
    assert kept == _batch_benjamini_bogomolov(p, Q)
    assert {(c, j) for c in range(20) for j in range(3)} <= kept


def test_a_finding_carries_its_q_across_cohorts_and_says_why_it_did_not_fire() -> None:
    families = CohortFamilies()
    families.count(0, 0, 1000)
    [strong, weak] = [families.judge(_findings(c, [p, 0.5]), Significance(q=Q), 0, -1, 0)
                      for c, p in ((0, 1e-9), (1, 1e-4))]
    assert strong[0].severity is Severity.WARN
    assert strong[0].q_value == min(1.0, 2e-9 * 1000 / 1)
    assert strong[0].evidence["cohort_windows"] == 1000 and strong[0].evidence["cohort_rank"] == 1
    # 1e-4 is significant within its cohort (q = 2e-4), not among 1,000 cohort windows (q = 0.1).
    assert weak[0].severity is Severity.OK
    assert weak[0].q_value == 2e-4 * 1000 / 2
    assert "not across the model's 1000 cohort windows" in weak[0].evidence["not_significant"]
    assert weak[1].severity is Severity.OK and "cohort_rank" not in weak[1].evidence


def test_the_family_size_is_the_larger_of_this_window_and_the_last_times_the_shards() -> None:
    families = CohortFamilies()
    families.count(-1, 0, 500)  # the previous window: 500 cohort windows tested
    families.count(0, 0, 20)  # this one so far: 20
    [f] = families.judge(_findings(0, [1e-6]), Significance(q=Q), 0, -1, 0, shards=4)
    assert f.evidence["cohort_windows"] == 2000
    families.forget_before(0)
    assert (-1, 0) not in families.tested and (0, 0) in families.tested


def test_significance_none_is_judged_by_the_value_alone() -> None:
    families = CohortFamilies()
    families.count(0, 0, 10_000)
    found = _findings(0, [0.2, 0.9], "none")
    assert families.judge(found, "none", 0, -1, 0) == found
