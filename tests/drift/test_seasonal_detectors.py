"""Score drift, quality rates and embeddings against the seasonal baseline.

A daily cycle in the score distribution, in a null rate or in embeddings is not flagged
with a seasonal baseline but is against the training reference (``seasonality: none``);
an injected drift is still found; health is per (detector, feature); and the slot
histories (rates, moments, embedding reservoirs, two-sample tests) are checked against
direct computations.
"""

from __future__ import annotations

import importlib.util
import json
import math
import pickle
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.embedding import EmbeddingConfig, EmbeddingDetector
from detectors.quality import FEATURE_CHECKS, QualityConfig, QualityDetector, rate_counts, slot_rate_p
from detectors.score import ScoreConfig, ScoreDetector
from detectors.seasonal_profile import SeasonalProfile
from drift.baselines import (
    RATE_CHECKS,
    EmbeddingRing,
    Health,
    SeasonalBaseline,
    baseline_profile,
    build_from_history,
    load_seasonal,
    period_of,
    save_seasonal,
    score_window,
    seasonal_detectors,
    window_health,
)
from drift.config import BaselineConfig, ModelConfig
from drift.errors import BaselineError
from drift.events import InferenceEvent, RawMessage
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import NumericProfile, ReferenceProfile, build_reference, numeric_profile
from drift.summary import EmbeddingSampling, WindowSummary, embedding_sample, summarise

UTC = timezone.utc
MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)
COHORT = Cohort("m")
RAW = RawMessage(value=None, topic="t", partition=0, offset=0)
DAILY = BaselineConfig.model_validate({"seasonality": "hour_of_day", "history": "3d", "min_samples": 300})


def events_of(start: datetime, n: int, features: dict[str, list[Any]] | None = None,
              scores: np.ndarray | None = None, embeddings: np.ndarray | None = None) -> list[InferenceEvent]:
    step = HOUR / max(n, 1)
    out = []
    for i in range(n):
        out.append(InferenceEvent(
            event_id=f"e{start.timestamp():.0f}-{i}", ts=start + i * step, model="m", model_version=None,
            tenant=None, region=None, route=None, segment={}, entity_id=None,
            features={name: values[i] for name, values in (features or {}).items()},
            prediction=None if scores is None else {"score": float(scores[i])},
            embedding=None if embeddings is None else embeddings[i].astype(np.float32),
            raw=RAW,
        ))
    return out


def cycle(hour: int) -> float:
    return math.sin(2 * math.pi * hour / 24)


def judged(findings: list[Finding], prefix: str) -> list[Finding]:
    return [f for f in findings if f.detector.startswith(prefix) and f.skipped is None]


def alerting(findings: list[Finding], prefix: str) -> bool:
    return any(f.severity is not Severity.OK for f in judged(findings, prefix))


# --------------------------------------------------------------------------
# Score drift: a daily cycle in the score, then an injected shift
# --------------------------------------------------------------------------


def score_reference(rng: np.random.Generator) -> ReferenceProfile:
    hours = rng.integers(0, 24, 40_000)
    logits = rng.normal(1.2 * np.sin(2 * np.pi * hours / 24), 1.0)
    scores = 1 / (1 + np.exp(-logits))
    base = build_reference("m", {"x": rng.normal(0, 1, 2000)}, {"x": "numeric"}, {"x": 5}, "test", 2000)
    return replace(base, predictions={"prediction.score": numeric_profile(scores, 10)})


def score_windows(seed: int, shift_from: int | None = None) -> list[tuple[Window, WindowSummary]]:
    """Five days of hourly windows whose score follows the hour; from hour ``shift_from`` on
    (counted from Monday 00:00) the score's logit moves up by 1."""
    rng = np.random.default_rng(seed)
    reference = score_reference(np.random.default_rng(0))
    out = []
    for h in range(5 * 24):
        start = MONDAY + h * HOUR
        logits = rng.normal(1.2 * cycle(start.hour) + (1.0 if shift_from is not None and h >= shift_from else 0.0),
                            1.0, 400)
        summary = summarise(events_of(start, 400, {"x": rng.normal(0, 1, 400).tolist()},
                                      scores=1 / (1 + np.exp(-logits))), reference, track_event_ids=False)
        out.append((Window(start, start + HOUR), summary))
    return out


def run(detectors: list[Any], reference: ReferenceProfile, windows: list[tuple[Window, WindowSummary]],
        config: BaselineConfig | None) -> tuple[list[list[Finding]], SeasonalBaseline | None]:
    """Every window scored as the flow's detect step does: against the seasonal baseline
    through score_window, or (config None, ``seasonality: none``) against the reference."""
    baseline = None if config is None else SeasonalBaseline.create(reference, config)
    found = []
    for window, summary in windows:
        if baseline is None:
            found.append([f for d in detectors for f in d.score(summary, reference, COHORT, window)])
        else:
            found.append(score_window(baseline, reference, detectors, COHORT, window, summary))
    return found, baseline


def test_a_daily_score_cycle_is_quiet_against_its_slot_and_flagged_against_the_reference() -> None:
    reference = score_reference(np.random.default_rng(0))
    windows = score_windows(seed=3)
    detector = ScoreDetector(ScoreConfig())
    seasonal, baseline = run([detector], reference, windows, DAILY)
    plain, _ = run([detector], reference, windows, None)
    last_two_days = range(3 * 24, 5 * 24)
    assert sum(alerting(plain[i], "score.") for i in last_two_days) >= 24  # the cycle alerts against the reference
    assert sum(alerting(seasonal[i], "score.") for i in last_two_days) <= 1
    for i in last_two_days:  # compared with the slot: shares, n and moments are the slot's
        for f in judged(seasonal[i], "score."):
            assert f.baseline.startswith(f"hour_of_day={windows[i][0].start.hour} over 3 days"), f.baseline
            assert f.n_reference >= 3 * 400 - 2
    assert baseline is not None and baseline.predictions["prediction.score"].sum() > 0


def test_a_score_shift_is_found_within_two_windows_and_kept_out_of_its_slot() -> None:
    reference = score_reference(np.random.default_rng(0))
    shift_at = 4 * 24 + 10  # day five, 10:00
    windows = score_windows(seed=4, shift_from=shift_at)
    found, baseline = run([ScoreDetector(ScoreConfig())], reference, windows, DAILY)
    first = next(i for i in range(shift_at, len(found)) if alerting(found[i], "score."))
    assert first - shift_at + 1 <= 2
    assert all(alerting(found[i], "score.") for i in range(shift_at, len(found)))
    # the shifted windows were never fed: day five's cells of the shifted hours hold nothing
    assert baseline is not None
    day5 = period_of(MONDAY + timedelta(days=4), "hour_of_day")
    for hour in range(11, 24):
        cells = np.flatnonzero(baseline.periods[hour] == day5)
        assert cells.size == 0 or baseline.predictions["prediction.score"][hour, cells[0]].sum() == 0


def test_seasonal_mean_shift_p_value_is_the_two_sample_z_test() -> None:
    reference = score_reference(np.random.default_rng(0))
    windows = score_windows(seed=5)
    baseline = SeasonalBaseline.create(reference, DAILY)
    detector = ScoreDetector(ScoreConfig(psi=None, significance="none"))
    for window, summary in windows[: 4 * 24]:
        score_window(baseline, reference, [detector], COHORT, window, summary)
    window, summary = windows[4 * 24 + 7]
    profile, _ = baseline_profile(reference, baseline, window.start)
    finding = detector.score(summary, profile, COHORT, window)[0]
    slot = profile.predictions["prediction.score"]
    moments = summary.predictions["prediction.score"].moments
    assert isinstance(slot, NumericProfile) and slot.mean is not None and slot.std is not None
    z = abs(moments.mean - slot.mean) / (slot.std * math.sqrt(1 / moments.n + 1 / slot.n))
    assert finding.value == pytest.approx(abs(moments.mean - slot.mean) / slot.std, rel=1e-12)
    assert finding.p_value == pytest.approx(2 * scipy.stats.norm.sf(z), rel=1e-9, abs=1e-300)


# --------------------------------------------------------------------------
# Quality rates: a null rate with a daily cycle
# --------------------------------------------------------------------------


def null_windows(seed: int, spike_from: int | None = None) -> tuple[ReferenceProfile, list[tuple[Window, WindowSummary]]]:
    """``x`` is null in 8% of the events from 00:00 to 06:00 and never by day (a nightly batch
    that sends no value); ``y`` is never null. From hour ``spike_from`` on x is null in 30%."""
    rng = np.random.default_rng(seed)
    reference = build_reference("m", {"x": rng.normal(0, 1, 5000), "y": rng.normal(0, 1, 5000)},
                                {"x": "numeric", "y": "numeric"}, {"x": 5, "y": 5}, "test", 5000)
    out = []
    for h in range(5 * 24):
        start = MONDAY + h * HOUR
        rate = 0.08 if start.hour < 6 else 0.0
        if spike_from is not None and h >= spike_from:
            rate = 0.3
        x: list[Any] = [None if u < rate else v for u, v in zip(rng.random(600), rng.normal(0, 1, 600))]
        summary = summarise(events_of(start, 600, {"x": x, "y": rng.normal(0, 1, 600).tolist()}), reference,
                            track_event_ids=False)
        out.append((Window(start, start + HOUR), summary))
    return reference, out


def nulls(findings: list[Finding], feature: str = "x") -> list[Finding]:
    return [f for f in findings if f.detector == "quality.null_rate" and f.feature == feature]


def test_a_nightly_null_rate_is_quiet_against_its_slot_and_flagged_against_the_reference() -> None:
    reference, windows = null_windows(seed=1)
    detector = QualityDetector(QualityConfig(duplicate_event_id=None))
    seasonal, baseline = run([detector], reference, windows, DAILY)
    plain, _ = run([detector], reference, windows, None)
    nights = [i for i in range(3 * 24, 5 * 24) if windows[i][0].start.hour < 6]
    assert all(nulls(plain[i])[0].severity is Severity.ALERT for i in nights)
    for i in nights:
        finding = nulls(seasonal[i])[0]
        assert finding.severity is Severity.OK and finding.evidence["p_method"] == "fisher"
        assert finding.baseline.startswith(f"hour_of_day={windows[i][0].start.hour} over 3 days")
        assert finding.evidence["n_slot"] == finding.n_reference == 3 * 600
        assert 0.05 < finding.evidence["reference_rate"] < 0.11
    assert not any(f.severity is not Severity.OK for i in range(3 * 24, 5 * 24) for f in seasonal[i])
    assert baseline is not None and baseline.rates["x"].sum() > 0


def test_a_null_spike_alerts_and_feeds_only_what_stayed_healthy() -> None:
    spike_at = 4 * 24 + 2  # day five, 02:00: a night hour whose slot expects 8%
    reference, windows = null_windows(seed=2, spike_from=spike_at)
    detector = QualityDetector(QualityConfig(duplicate_event_id=None))
    found, baseline = run([detector], reference, windows, DAILY)
    assert nulls(found[spike_at])[0].severity is Severity.ALERT
    p_value = nulls(found[spike_at])[0].p_value
    assert p_value is not None and p_value < 1e-9
    assert all(nulls(found[i])[0].severity is Severity.ALERT for i in range(spike_at, len(found)))
    # health per (check, feature): x's null rate is kept out of its slot, x's other rates
    # and y's null rate are fed, and x's bins are fed (no PSI finding judges them)
    assert baseline is not None
    day5 = period_of(windows[spike_at][0].start, "hour_of_day")
    cell = int(np.flatnonzero(baseline.periods[2] == day5)[0])
    null, missing = RATE_CHECKS.index("null_rate"), RATE_CHECKS.index("missing_rate")
    assert baseline.rates["x"][2, cell, null].tolist() == [0, 0]
    assert baseline.rates["x"][2, cell, missing].tolist() == [0, 600]
    assert baseline.rates["y"][2, cell, null].tolist() == [0, 600]
    assert baseline.counts["x"][2, cell].sum() == windows[spike_at][1].features["x"].counts.sum()


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(0, 60), n=st.integers(1, 200), k_slot=st.integers(0, 300), n_slot=st.integers(1, 3000),
)
def test_slot_rate_p_is_fishers_one_sided_exact_test(k: int, n: int, k_slot: int, n_slot: int) -> None:
    k, k_slot = min(k, n), min(k_slot, n_slot)
    expected = scipy.stats.fisher_exact([[k, n - k], [k_slot, n_slot - k_slot]], alternative="greater").pvalue
    assert slot_rate_p(k, n, k_slot, n_slot) == pytest.approx(expected, rel=1e-7, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    cells=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 400)), min_size=1, max_size=4),
    half_life=st.one_of(st.none(), st.floats(0.5, 4.0)),
)
def test_expected_rate_matches_the_direct_weighted_formula(cells: list[tuple[int, int]], half_life: float | None) -> None:
    reference = build_reference("m", {"x": np.arange(100.0)}, {"x": "numeric"}, {"x": 4}, "test", 100)
    baseline = SeasonalBaseline.empty(reference, "hour_of_day", n_periods=4, min_samples=1, half_life=half_life)
    baseline.track([QualityDetector(QualityConfig())])
    now = 100
    for age, (k, n) in enumerate(cells, start=1):
        k = min(k, n)
        period = now - age
        cell = period % 5
        baseline.periods[7, cell] = period
        baseline.rates["x"][7, cell, 0] = (k, n)
    got = baseline.expected_rate("x", "null_rate", 7, now)
    pairs = [(min(k, n), n, 1.0 if half_life is None else 0.5 ** ((age - 1) / half_life))
             for age, (k, n) in enumerate(cells, start=1) if n > 0]
    total = sum(n for _, n, _ in pairs)
    if total == 0:
        assert got.rate is None and "has no values" in got.description
        assert baseline.expected_rates(7, now)[("x", "null_rate")] == got
        return
    rate = sum(w * k for k, _, w in pairs) / sum(w * n for _, n, w in pairs)
    assert got.rate == pytest.approx(rate, rel=1e-12) and got.n == total and got.k == round(rate * total)
    together = baseline.expected_rates(7, now)[("x", "null_rate")]  # the one-pass reading agrees
    assert together.rate == pytest.approx(rate, rel=1e-12) and together[1:] == got[1:]


def test_rate_counts_follow_the_quality_checks() -> None:
    assert RATE_CHECKS == FEATURE_CHECKS
    reference, windows = null_windows(seed=9)
    summary = windows[3][1]
    table = rate_counts(summary.features["x"], summary.n_events)
    found = QualityDetector(QualityConfig(significance="none")).score(summary, reference, COHORT, windows[3][0])
    for f in found:
        if f.feature == "x" and f.detector.removeprefix("quality.") in RATE_CHECKS:
            k, n = table[RATE_CHECKS.index(f.detector.removeprefix("quality."))]
            assert (f.evidence["numerator"], f.evidence["denominator"]) == (k, n)


# --------------------------------------------------------------------------
# Moments of a prediction field's slot
# --------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    half_life=st.one_of(st.none(), st.floats(0.5, 4.0)),
    seed=st.integers(0, 2**16),
)
def test_expected_moments_match_the_weighted_mean_and_std_of_the_values(
    sizes: list[int], half_life: float | None, seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    reference = score_reference(np.random.default_rng(0))
    baseline = SeasonalBaseline.empty(reference, "hour_of_day", n_periods=4, min_samples=1, half_life=half_life)
    now = period_of(MONDAY + timedelta(days=10), "hour_of_day")
    values = []
    for age, size in enumerate(sizes, start=1):
        start = MONDAY + timedelta(days=10 - age, hours=5)
        scores = rng.beta(2, 5, size) * 1e3 + 1e6  # far from zero: merged moments must hold there
        summary = summarise(events_of(start, size, scores=scores), reference, track_event_ids=False)
        baseline.observe(summary, start, True)
        values.append((scores, 1.0 if half_life is None else 0.5 ** ((age - 1) / half_life)))
    got = baseline.expected_moments("prediction.score", 5, now)
    if sum(sizes) == 0:
        assert got is None
        return
    assert got is not None
    weights = np.concatenate([np.full(v.size, w) for v, w in values])
    x = np.concatenate([v for v, _ in values])
    mean = float(np.average(x, weights=weights))
    std = float(np.sqrt(np.average((x - mean) ** 2, weights=weights)))
    assert got[0] == pytest.approx(mean, rel=1e-12)
    assert got[1] == pytest.approx(std, rel=1e-6, abs=1e-9)
    assert got[2] == x.size


# --------------------------------------------------------------------------
# Embeddings: per-slot bounded reservoirs
# --------------------------------------------------------------------------

DIM = 4
EMBEDDING = EmbeddingConfig(dim=DIM, sample=200, permutations=200, min_samples=60, seasonal_rows=180,
                            device="cpu", method="mmd")


def embedding_rows(rng: np.random.Generator, hours: np.ndarray, shift: float = 0.0) -> np.ndarray:
    centre = np.stack([2.0 * np.sin(2 * np.pi * hours / 24), 2.0 * np.cos(2 * np.pi * hours / 24),
                       np.full(hours.shape, shift), np.zeros(hours.shape)], axis=1)
    return (centre + rng.normal(0, 1, (hours.size, DIM))).astype(np.float32)


def embedding_windows(seed: int, shift_from: int | None = None) -> tuple[
        ReferenceProfile, EmbeddingDetector, list[tuple[Window, WindowSummary]]]:
    """Four days of hourly windows whose embeddings circle with the hour of day; from hour
    ``shift_from`` on they move by 1.5 along a direction the cycle never takes."""
    rng = np.random.default_rng(seed)
    reference = build_reference("m", {"x": rng.normal(0, 1, 500)}, {"x": "numeric"}, {"x": 4}, "test", 500)
    reference_rows = embedding_rows(rng, rng.integers(0, 24, 3000))
    reference = replace(reference, embeddings={"embedding": reference_rows})
    detector = EmbeddingDetector(EMBEDDING).bind(reference_rows)
    sampling = EmbeddingSampling("embedding", DIM, EMBEDDING.sample, EMBEDDING.seed)
    out = []
    for h in range(4 * 24):
        start = MONDAY + h * HOUR
        shift = 1.5 if shift_from is not None and h >= shift_from else 0.0
        rows = embedding_rows(rng, np.full(120, start.hour), shift)
        summary = summarise(events_of(start, 120, {"x": rng.normal(0, 1, 120).tolist()}, embeddings=rows),
                            reference, track_event_ids=False, embedding=embedding_sample(sampling, COHORT.key, start))
        out.append((Window(start, start + HOUR), summary))
    return reference, detector, out


def embedding_finding(findings: list[Finding]) -> Finding:
    return next(f for f in findings if f.detector == "embedding")


def test_a_daily_embedding_cycle_is_quiet_against_its_slot_and_flagged_against_the_reference() -> None:
    reference, detector, windows = embedding_windows(seed=1)
    seasonal, baseline = run([detector], reference, windows, DAILY)
    plain, _ = run([detector], reference, windows, None)
    days_3_4 = range(2 * 24, 4 * 24)
    assert all(embedding_finding(plain[i]).severity is Severity.ALERT for i in days_3_4)
    quiet = [embedding_finding(seasonal[i]) for i in days_3_4]
    assert sum(f.severity is Severity.ALERT for f in quiet) <= 2  # p < 0.01 by chance in 48 windows
    for i, f in zip(days_3_4, quiet):
        assert f.baseline.startswith(f"hour_of_day={windows[i][0].start.hour} over ")
        assert f.baseline.endswith(" embeddings)") and f.n_reference >= EMBEDDING.min_samples
    assert baseline is not None
    ring = baseline.embeddings["embedding"]
    assert ring.rows_per_period == 60  # ceil(180 / 3 periods)
    assert ring.nbytes <= ring.max_nbytes() == ring.n_seen.nbytes + 24 * 4 * 60 * DIM * 4
    # the first day compared with the reference, and said so
    assert embedding_finding(seasonal[5]).baseline.startswith("reference (hour_of_day=5 has no embeddings")


def test_an_embedding_shift_is_found_and_kept_out_of_its_slot() -> None:
    shift_at = 3 * 24 + 9
    reference, detector, windows = embedding_windows(seed=2, shift_from=shift_at)
    found, baseline = run([detector], reference, windows, DAILY)
    first = next(i for i in range(shift_at, len(found)) if embedding_finding(found[i]).severity is Severity.ALERT)
    assert first - shift_at + 1 <= 2
    assert sum(embedding_finding(found[i]).severity is Severity.ALERT for i in range(shift_at, len(found))) >= 12
    assert baseline is not None
    ring = baseline.embeddings["embedding"]
    day4 = period_of(MONDAY + timedelta(days=3), "hour_of_day")
    alerted = [windows[i][0].start.hour for i in range(shift_at, len(found))
               if embedding_finding(found[i]).severity is not Severity.OK]
    for hour in alerted:
        cells = np.flatnonzero(baseline.periods[hour] == day4)
        assert cells.size == 0 or ring.n_seen[hour, cells[0]] == 0


def sequential_reservoir(held: np.ndarray, seen: int, cap: int, new: np.ndarray, places: np.ndarray) -> np.ndarray:
    """Algorithm R one row at a time, with the given draws for the rows past the fill."""
    out = [row for row in held]
    draws = iter(places)
    for i, row in enumerate(new):
        if seen + i < cap:
            out.append(row)
            continue
        j = next(draws)
        if j < cap:
            out[j] = row
    return np.array(out, dtype=np.float32).reshape(-1, new.shape[1])


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.integers(0, 40), min_size=1, max_size=6), cap=st.integers(1, 25), seed=st.integers(0, 99))
def test_embedding_ring_offer_is_algorithm_r_and_bounded(batches: list[int], cap: int, seed: int) -> None:
    from drift.baselines import _ring_rng

    ring = EmbeddingRing.empty("e", 1, cap, 1, seed, slots=2, n_periods=3)
    offered = 0
    for size in batches:
        new = (offered + np.arange(size, dtype=np.float32)).reshape(-1, 1)
        held = ring.rows.get((1, 2), np.empty((0, 1), np.float32)).copy()
        seen = int(ring.n_seen[1, 2])
        fill = min(size, cap - held.shape[0])
        first = seen + max(fill, 0)
        rest = size - max(fill, 0)
        places = (_ring_rng(seed, "e", 1, 9, first).integers(0, first + np.arange(rest) + 1)
                  if rest > 0 else np.empty(0, np.int64))
        expected = sequential_reservoir(held, seen, cap, new, places)
        ring.offer(1, 2, 9, new)
        offered += size
        got = ring.rows.get((1, 2), np.empty((0, 1), np.float32))
        np.testing.assert_array_equal(got, expected)
        assert got.shape[0] == min(offered, cap) and int(ring.n_seen[1, 2]) == offered
        assert len(set(got[:, 0].tolist())) == got.shape[0]  # distinct rows of the stream
        assert ring.nbytes <= ring.max_nbytes()


def test_embedding_ring_keeps_every_row_with_equal_chance() -> None:
    n, cap, runs = 50, 10, 600
    hits = np.zeros(n)
    for seed in range(runs):
        ring = EmbeddingRing.empty("e", 1, cap, 1, seed, slots=1, n_periods=1)
        for start in range(0, n, 7):  # windows of 7 rows
            ring.offer(0, 0, 3, np.arange(start, min(start + 7, n), dtype=np.float32).reshape(-1, 1))
        hits[ring.rows[(0, 0)][:, 0].astype(int)] += 1
    expected = runs * cap / n
    statistic, p = scipy.stats.chisquare(hits, np.full(n, expected))
    assert p > 1e-3, (statistic, hits)


# --------------------------------------------------------------------------
# Health, storage, and the offline build
# --------------------------------------------------------------------------


def test_window_health_is_per_detector_and_feature() -> None:
    reference, windows = null_windows(seed=3)
    window, summary = windows[0]

    def f(detector: str, feature: str | None, severity: Severity, skipped: str | None = None) -> Finding:
        return Finding(detector, COHORT, window, feature, 0.0, severity, 0.1, 0.2, 10, 10, "reference",
                       skipped=skipped)

    health = window_health([
        f("psi", "x", Severity.ALERT), f("quality.null_rate", "y", Severity.WARN),
        f("quality.missing_rate", "x", Severity.ALERT, skipped="few"), f("quality.duplicate_event_id", None, Severity.ALERT),
    ], summary)
    assert health.features == {"y"}
    assert health.rates["null_rate"] == {"x"} and health.rates["missing_rate"] == {"x", "y"}
    assert health.predictions == frozenset() and health.embeddings == frozenset()
    assert isinstance(health, Health)


def full_baseline() -> tuple[ReferenceProfile, SeasonalBaseline, list[Any]]:
    """Score, quality and embedding histories filled for two days."""
    reference, detector, windows = embedding_windows(seed=5)
    score_ref = score_reference(np.random.default_rng(0))
    reference = replace(reference, predictions=score_ref.predictions)
    rng = np.random.default_rng(6)
    detectors: list[Any] = [ScoreDetector(ScoreConfig()), QualityDetector(QualityConfig()), detector]
    baseline = SeasonalBaseline.create(reference, DAILY)
    sampling = EmbeddingSampling("embedding", DIM, EMBEDDING.sample, EMBEDDING.seed)
    for h in range(2 * 24):
        start = MONDAY + h * HOUR
        summary = summarise(
            events_of(start, 100, {"x": rng.normal(0, 1, 100).tolist()}, scores=rng.random(100),
                      embeddings=embedding_rows(rng, np.full(100, start.hour))),
            reference, track_event_ids=False, embedding=embedding_sample(sampling, COHORT.key, start))
        score_window(baseline, reference, detectors, COHORT, Window(start, start + HOUR), summary)
    return reference, baseline, detectors


def test_every_history_survives_json_and_pickle_and_an_older_file_still_loads(tmp_path: Path) -> None:
    reference, baseline, _ = full_baseline()
    assert baseline.predictions and baseline.moments and baseline.rates and baseline.embeddings
    for again in (SeasonalBaseline.from_json(baseline.to_json()), pickle.loads(pickle.dumps(baseline))):
        assert again.to_dict() == baseline.to_dict()
        for name in baseline.rates:
            np.testing.assert_array_equal(again.rates[name], baseline.rates[name])
        np.testing.assert_array_equal(again.moments["prediction.score"], baseline.moments["prediction.score"])
        ring, copy = baseline.embeddings["embedding"], again.embeddings["embedding"]
        assert ring.rows.keys() == copy.rows.keys()
        for key in ring.rows:
            np.testing.assert_array_equal(ring.rows[key], copy.rows[key])
    path = save_seasonal({"m": baseline}, tmp_path, "m")
    loaded = load_seasonal(tmp_path, "m", reference, DAILY)["m"]
    assert loaded.to_dict() == baseline.to_dict()
    # a format-2 file (feature bins only) loads; the other histories start empty and fill
    old = json.loads(path.read_text())
    old["format"] = 2
    for item in old["cohorts"].values():
        for top in ("predictions", "rates", "embeddings"):
            del item[top]
        for cell in item["cells"]:
            for part in ("predictions", "moments", "rates", "embeddings"):
                del cell[part]
    path.write_text(json.dumps(old), encoding="utf-8")
    older = load_seasonal(tmp_path, "m", reference, DAILY)["m"]
    assert older.to_dict()["cells"][0]["counts"] == baseline.to_dict()["cells"][0]["counts"]
    assert set(older.predictions) == {"prediction.score"} and older.predictions["prediction.score"].sum() == 0
    assert older.rates == {} and older.embeddings == {}
    # a rebuilt score reference changes the bins: refused with the rebuild command
    save_seasonal({"m": baseline}, tmp_path, "m")
    other = replace(reference, predictions={"prediction.score": numeric_profile(np.arange(100.0), 4)})
    with pytest.raises(BaselineError, match=r"prediction fields \['prediction.score'\] differ.*rebuild it with"):
        load_seasonal(tmp_path, "m", other, DAILY)


def test_a_profile_names_what_every_detector_compares_with() -> None:
    reference, baseline, detectors = full_baseline()
    start = MONDAY + timedelta(days=2, hours=5)
    profile, descriptions = baseline_profile(reference, baseline, start)
    assert isinstance(profile, SeasonalProfile) and profile.reference is reference
    assert {"x", "prediction.score", "embedding"} <= set(descriptions)
    # min_samples 300: two days of 100 values are too few for bins and rates, the embeddings
    # (min_samples 60 rows, 60 per period) have enough
    assert descriptions["x"].startswith("reference (hour_of_day=5 has 200 < 300 samples over 2 days)")
    assert profile.rates[("x", "null_rate")].rate is None
    assert "embedding" in profile.seasonal and profile.slot_embeddings["embedding"].shape == (120, DIM)
    summary = summarise(events_of(start, 10), reference, track_event_ids=False)
    found = [f for d in detectors[:2] for f in d.score(summary, profile, COHORT, Window(start, start + HOUR))]
    assert {f.baseline for f in found if f.detector.startswith("score.")} == {descriptions["prediction.score"]}


def test_build_from_history_seeds_scores_rates_and_embeddings() -> None:
    model = ModelConfig.model_validate({
        "name": "m", "window": {"size": "1h", "allowed_lateness": "10m"},
        "baseline": {"seasonality": "hour_of_day", "history": "3d", "min_samples": 300},
        "features": {"x": {"type": "numeric"}},
        "detectors": [{"psi": {}}, {"quality": {}}, {"score": {}},
                      {"embedding": EMBEDDING.model_dump(exclude={"seasonal_rows"}) | {"seasonal_rows": 180}}],
    })
    reference, _, windows = embedding_windows(seed=8)
    reference = replace(reference, predictions=score_reference(np.random.default_rng(0)).predictions)
    detectors = seasonal_detectors(model, reference)
    assert [d.name for d in detectors] == ["psi", "quality", "score", "embedding"]
    rng = np.random.default_rng(9)
    events: list[InferenceEvent] = []
    for h in range(2 * 24):
        start = MONDAY + h * HOUR
        events += events_of(start, 80, {"x": rng.normal(0, 1, 80).tolist()}, scores=rng.random(80),
                            embeddings=embedding_rows(rng, np.full(80, start.hour)))
    built = build_from_history(events, reference, model, lambda e: COHORT)["m"]
    assert built.predictions["prediction.score"].sum() == 2 * 24 * 80
    assert built.rates["x"][:, :, RATE_CHECKS.index("null_rate"), 1].sum() == 2 * 24 * 80
    # day one warms up (all fed); on day two a window whose embedding finding is not ok
    # (a chance p < 0.05 against its slot) keeps its rows out
    assert 2 * 24 * 80 - 3 * 80 <= int(built.embeddings["embedding"].n_seen.sum()) <= 2 * 24 * 80
    assert int(built.embeddings["embedding"].n_seen.sum()) % 80 == 0
    # without reference embeddings (a profile loaded without them) the embedding is left out
    assert [d.name for d in seasonal_detectors(model, replace(reference, embeddings={}))] == ["psi", "quality", "score"]


def test_bench_score_and_null_rate_cycles_are_quiet_with_the_seasonal_baseline() -> None:
    """bench/seasonality.py --score-quality: five weeks, local time, holidays, DST."""
    path = Path(__file__).resolve().parents[2] / "bench" / "seasonality.py"
    spec = importlib.util.spec_from_file_location("drift_bench_seasonality_score", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    report = bench.evaluate_score_quality()
    plain, seasonal = report["reference"], report["local_per_feature"]
    assert plain["weeks_2_4"]["score_alert_rate"] >= 0.3 and plain["weeks_2_4"]["null_rate_flag_rate"] >= 0.1
    for part in ("weeks_2_4", "week_5_before_shift"):
        assert seasonal[part]["score_alert_rate"] <= 0.01 and seasonal[part]["null_rate_flag_rate"] <= 0.01
    assert seasonal["windows_to_detect_score_shift"] is not None and seasonal["windows_to_detect_score_shift"] <= 2
    assert report["seasonal_findings_weeks_2_4"] == 3 * 3 * 168  # score.psi, score.mean_shift, null_rate


def test_embedding_seasonal_rows_default_and_bounds() -> None:
    assert EmbeddingConfig(dim=4).slot_rows == 256
    assert EmbeddingConfig(dim=4, sample=2000, min_samples=600).slot_rows == 600
    assert EmbeddingConfig(dim=4, seasonal_rows=100).slot_rows == 100
    with pytest.raises(ValueError, match="seasonal_rows must be >= min_samples"):
        EmbeddingConfig(dim=4, seasonal_rows=50)


def test_a_snapshot_of_the_bins_only_state_resumes_with_empty_new_histories() -> None:
    reference, baseline, detectors = full_baseline()
    state = baseline.__getstate__()[:7]  # clock ... counts: what earlier snapshots held
    old = SeasonalBaseline.__new__(SeasonalBaseline)
    old.__setstate__(state)
    assert old.predictions == {} and old.rates == {} and old.embeddings == {}
    resumed = pickle.loads(pickle.dumps(old))
    from drift.baselines import resume

    resumed = resume(resumed, reference, DAILY)
    assert set(resumed.predictions) == {"prediction.score"}
    np.testing.assert_array_equal(resumed.counts["x"], baseline.counts["x"])
    start = MONDAY + timedelta(days=2)
    rng = np.random.default_rng(1)
    sampling = EmbeddingSampling("embedding", DIM, EMBEDDING.sample, EMBEDDING.seed)
    summary = summarise(
        events_of(start, 100, {"x": rng.normal(0, 1, 100).tolist()}, scores=rng.random(100),
                  embeddings=embedding_rows(rng, np.full(100, 0))),
        reference, track_event_ids=False, embedding=embedding_sample(sampling, COHORT.key, start))
    score_window(resumed, reference, detectors, COHORT, Window(start, start + HOUR), summary)
    assert resumed.rates and resumed.embeddings and resumed.predictions["prediction.score"].sum() == 100
