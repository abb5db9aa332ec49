"""The array screen never hides a warn or alert finding, and its PSI is the detector's.

Random closed batches (counts, nulls, absent fields, wrong types, values out of range,
unseen categories, duplicate ids, schema changes) are scored in full by the detectors
themselves: every cohort with a finding above ``ok`` must be flagged by
:func:`detectors.screen.screen`. The screen's PSI matrix is checked against
:func:`detectors.psi.psi` cohort by cohort and against a direct formula.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import Detector
from detectors.psi import PsiConfig, PsiDetector, psi
from detectors.quality import QualityConfig, QualityDetector
from detectors.significance import bh_qvalues, homogeneity_test
from detectors.score import ScoreConfig, ScoreDetector
from detectors.screen import bh_rows, chi2_p_values, psi_values, screen
from drift.cohort_arrays import ABSENT, NULLS, OUT_OF_RANGE, WRONG_TYPE, ClosedWindows, RowExtras, layout_of
from drift.findings import Cohort, Severity, Window
from drift.reference import build_reference
from drift.summary import Schema

RNG = np.random.default_rng(5)
PROFILE = build_reference(
    "m",
    {"x": RNG.normal(size=2000), "y": RNG.exponential(size=2000), "c": [["a", "b", "c"][i % 3] for i in range(2000)]},
    {"x": "numeric", "y": "numeric", "c": "categorical"}, {"x": 5, "y": 4}, "test", 2000,
)
LAYOUT = layout_of(PROFILE)
WINDOW = Window(datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 11, 1, 0, 5, tzinfo=timezone.utc))


@st.composite
def closed_batches(draw: st.DrawFn) -> ClosedWindows:
    k = draw(st.integers(1, 6))
    n_fields, n_bins = LAYOUT.n_fields, LAYOUT.n_bins
    counts = np.zeros((k, n_bins), dtype=np.int64)
    cells = np.zeros((4, k, n_fields), dtype=np.int64)
    n_events = np.zeros(k, dtype=np.int64)
    extras: dict[int, RowExtras] = {}
    before: list[Schema | None] = []
    n_event_id = np.zeros(k, dtype=np.int64)
    n_duplicate = np.zeros(k, dtype=np.int64)
    for i in range(k):
        n = draw(st.integers(0, 400))
        n_events[i] = n
        for f in range(n_fields):
            lo, hi = LAYOUT.offsets[f], LAYOUT.offsets[f + 1]
            null = draw(st.integers(0, n // 8))
            absent = draw(st.integers(0, n // 8))
            wrong = draw(st.integers(0, 3)) if LAYOUT.is_numeric(f) else 0
            present = max(n - null - absent - wrong, 0)
            skew = draw(st.floats(0.0, 1.0))
            weights = np.asarray(PROFILE.features[LAYOUT.names[f]].shares) + skew * np.eye(hi - lo)[0]
            counts[i, lo:hi] = np.random.default_rng(draw(st.integers(0, 1 << 30))).multinomial(
                present, weights / weights.sum())
            cells[NULLS, i, f], cells[ABSENT, i, f], cells[WRONG_TYPE, i, f] = null, absent, wrong
            if LAYOUT.is_numeric(f):
                cells[OUT_OF_RANGE, i, f] = draw(st.integers(0, max(present // 20, 0)))
        n_event_id[i] = draw(st.integers(0, n))
        n_duplicate[i] = draw(st.integers(0, n_event_id[i] // 50))
        extra = RowExtras()
        if draw(st.booleans()):
            extra.unknown_fields = {"zip"}
        if draw(st.booleans()):
            extra.unseen = {LAYOUT.index("c"): {f"u{j}" for j in range(draw(st.integers(0, 6)))}}
        extras[i] = extra
        before.append(draw(st.sampled_from([None, Schema(), Schema(frozenset({"zip"}))])))
    return ClosedWindows(
        model="m", window=WINDOW, layout=LAYOUT, cohorts=[Cohort("m", (("tenant", f"t{i}"),)) for i in range(k)],
        n_events=n_events, first_ts=np.zeros(k, np.int64), last_ts=np.zeros(k, np.int64), counts=counts,
        cells=cells, mom_n=np.zeros((k, n_fields), np.int64), mom_mean=np.zeros((k, n_fields)),
        mom_m2=np.zeros((k, n_fields)), n_event_id=n_event_id, n_duplicate=n_duplicate,
        ids_capped=np.zeros(k, np.bool_), extras=extras, tracks_ids=True, schema_before=before,
    )


DETECTORS: list[Detector] = [
    PsiDetector(PsiConfig(warn=0.05, alert=0.2, min_samples=30)),
    QualityDetector(QualityConfig(min_samples=30)),
]


@settings(max_examples=150, deadline=None)
@given(closed_batches())
def test_every_cohort_with_a_warn_or_alert_finding_is_flagged(closed: ClosedWindows) -> None:
    flagged = screen(closed, PROFILE, list(DETECTORS))
    assert flagged is not None and flagged.shape == (len(closed),)
    for i in range(len(closed)):
        summary = closed.summary(i)
        found = [f for d in DETECTORS for f in d.score(summary, PROFILE, closed.cohorts[i], WINDOW)]
        if any(f.severity is not Severity.OK for f in found):
            assert flagged[i], [(f.detector, f.feature, f.value) for f in found if f.severity is not Severity.OK]


@settings(max_examples=100, deadline=None)
@given(closed_batches())
def test_the_screen_psi_is_the_detectors(closed: ClosedWindows) -> None:
    detector = DETECTORS[0]
    assert isinstance(detector, PsiDetector)
    names, values, totals = psi_values(closed, PROFILE, detector)
    for i in range(len(closed)):
        for j, name in enumerate(names):
            current = closed.field_counts(LAYOUT.index(name))[i]
            assert totals[i, j] == current.sum()
            expected = psi(PROFILE.features[name].shares, current, detector.config.epsilon)
            assert math.isclose(values[i, j], expected, rel_tol=1e-12, abs_tol=1e-15)
            # The formula written out: sum of (c - r) ln(c / r) over floored shares.
            if current.sum() > 0:
                r = np.maximum(np.asarray(PROFILE.features[name].shares) / sum(PROFILE.features[name].shares), 1e-4)
                c = np.maximum(current / current.sum(), 1e-4)
                assert math.isclose(values[i, j], float(((c - r) * np.log(c / r)).sum()), rel_tol=1e-12, abs_tol=1e-15)


def healthy_batch(k: int = 3) -> ClosedWindows:
    """``k`` cohorts of 1,000 events in the reference's own shares, nothing else."""
    shares = np.concatenate([np.asarray(PROFILE.features[n].shares) for n in LAYOUT.names])
    counts = np.round(np.tile(shares * 1000, (k, 1))).astype(np.int64)
    return ClosedWindows(
        model="m", window=WINDOW, layout=LAYOUT, cohorts=[Cohort("m", (("tenant", f"t{i}"),)) for i in range(k)],
        n_events=counts[:, : LAYOUT.offsets[1]].sum(axis=1), first_ts=np.zeros(k, np.int64),
        last_ts=np.zeros(k, np.int64), counts=counts, cells=np.zeros((4, k, LAYOUT.n_fields), np.int64),
        mom_n=np.zeros((k, LAYOUT.n_fields), np.int64), mom_mean=np.zeros((k, LAYOUT.n_fields)),
        mom_m2=np.zeros((k, LAYOUT.n_fields)), n_event_id=np.zeros(k, np.int64), n_duplicate=np.zeros(k, np.int64),
        ids_capped=np.zeros(k, np.bool_), extras={}, tracks_ids=True, schema_before=[None] * k,
    )


def test_a_healthy_batch_is_not_flagged() -> None:
    flagged = screen(healthy_batch(), PROFILE, list(DETECTORS))
    assert flagged is not None and not flagged.any()


def test_a_detector_the_screen_does_not_know_scores_everything() -> None:
    assert screen(healthy_batch(), PROFILE, [ScoreDetector(ScoreConfig(field="prediction.score"))]) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 300), min_size=4, max_size=4), min_size=1, max_size=5),
       st.lists(st.floats(0.01, 1.0), min_size=4, max_size=4), st.integers(50, 5000))
def test_chi2_p_values_are_the_homogeneity_tests(rows: list[list[int]], weights: list[float], n_reference: int) -> None:
    shares = np.asarray(weights) / sum(weights)
    counts = np.asarray(rows, dtype=np.int64)
    p = chi2_p_values(shares, n_reference, counts)
    for i, row in enumerate(rows):
        expected, method, _ = homogeneity_test(shares, n_reference, row)
        if method == "chi2":
            assert math.isclose(p[i], expected, rel_tol=1e-9, abs_tol=1e-300)
        elif method == "monte_carlo":
            assert p[i] == 0.0  # the screen leaves these to the detector
        else:
            assert p[i] == 1.0


@settings(max_examples=120, deadline=None)
@given(closed_batches())
def test_problems_only_builds_exactly_the_warn_and_alert_findings(closed: ClosedWindows) -> None:
    for i in range(len(closed)):
        summary = closed.summary(i)
        for detector in DETECTORS:
            assert isinstance(detector, (PsiDetector, QualityDetector))
            everything = detector.score(summary, PROFILE, closed.cohorts[i], WINDOW)
            problems = detector.score(summary, PROFILE, closed.cohorts[i], WINDOW, problems_only=True)
            assert problems == [f for f in everything if f.severity is not Severity.OK]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.floats(0.0, 1.0), st.just(math.inf)), min_size=1, max_size=8),
                min_size=1, max_size=4).filter(lambda rows: len({len(r) for r in rows}) == 1))
def test_bh_rows_is_benjamini_hochberg_per_row(rows: list[list[float]]) -> None:
    p = np.asarray(rows)
    q = bh_rows(p)
    for i, row in enumerate(rows):
        tested = [j for j, v in enumerate(row) if math.isfinite(v)]
        expected = bh_qvalues([row[j] for j in tested])
        assert np.allclose(q[i, tested], expected, rtol=1e-12, atol=0)
        assert all(math.isinf(q[i, j]) for j in range(len(row)) if j not in tested)
