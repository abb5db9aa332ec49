"""Seasonal baselines: slots, the per-slot history, decay, fallback, the healthy rule,
storage, the offline build, and the five-week evaluation of bench/seasonality.py."""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from detectors.psi import PsiConfig, PsiDetector, psi
from drift.baselines import (
    N_SLOTS,
    BuildStats,
    Calendar,
    SeasonalBaseline,
    SlotClock,
    baseline_profile,
    build_from_history,
    healthy_features,
    is_healthy,
    load_seasonal,
    n_periods_of,
    period_of,
    period_start,
    resume,
    save_seasonal,
    score_window,
    seasonal_detectors,
    seasonal_path,
    slot_of,
)
from drift.config import BaselineConfig, ModelConfig
from drift.errors import BaselineError
from drift.events import InferenceEvent, RawMessage
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import ReferenceProfile, build_reference
from drift.summary import empty_summary, summarise

REPO_ROOT = Path(__file__).resolve().parents[2]
UTC = timezone.utc
MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)
COHORT = Cohort("m")
RAW = RawMessage(value=None, topic="t", partition=0, offset=0)


def _bench() -> ModuleType:
    """bench/seasonality.py by path: bench/ holds scripts, not a package."""
    name = "drift_bench_seasonality"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / "seasonality.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def make_events(start: datetime, columns: dict[str, Any], model: str = "m", tenant: str | None = None,
                span: timedelta = HOUR) -> list[InferenceEvent]:
    names = list(columns)
    rows = list(zip(*(np.asarray(columns[n]).tolist() for n in names)))
    step = span / max(len(rows), 1)
    return [
        InferenceEvent(
            event_id=None, ts=start + i * step, model=model, model_version=None, tenant=tenant, region=None,
            route=None, segment={}, entity_id=None, features=dict(zip(names, row)), prediction=None,
            embedding=None, raw=RAW,
        )
        for i, row in enumerate(rows)
    ]


def numeric_reference(rng: np.random.Generator, n: int = 20_000) -> ReferenceProfile:
    return build_reference("m", {"x": rng.normal(0, 1, n)}, {"x": "numeric"}, {"x": 10}, "test", n)


def two_feature_reference() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    return build_reference(
        "m", {"x": rng.normal(0, 1, 5000), "c": rng.choice(["a", "b", "c"], 5000).tolist()},
        {"x": "numeric", "c": "categorical"}, {"x": 5}, "test", 5000,
    )


def window_summary(reference: ReferenceProfile, start: datetime, columns: dict[str, Any]) -> Any:
    return summarise(make_events(start, columns), reference, track_event_ids=False)


# --------------------------------------------------------------------------
# Slots and periods
# --------------------------------------------------------------------------

SLOT_CASES = [
    # ts, hour_of_day, day_of_week, hour_of_week
    (datetime(2026, 1, 5, 0, 0, tzinfo=UTC), 0, 0, 0),            # Monday midnight
    (datetime(2026, 1, 6, 13, 30, tzinfo=UTC), 13, 1, 37),        # Tuesday 13:30
    (datetime(2026, 1, 11, 23, 59, 59, tzinfo=UTC), 23, 6, 167),  # Sunday, last second
    (datetime(2026, 1, 11, 23, 30), 23, 6, 167),                  # naive: taken as UTC
    (datetime(2026, 1, 6, 1, 0, tzinfo=timezone(timedelta(hours=2))), 23, 0, 23),  # +02:00 -> Monday 23:00 UTC
]


@pytest.mark.parametrize(("ts", "hod", "dow", "how"), SLOT_CASES)
def test_slot_of_table(ts: datetime, hod: int, dow: int, how: int) -> None:
    assert slot_of(ts, "none") == 0
    assert (slot_of(ts, "hour_of_day"), slot_of(ts, "day_of_week"), slot_of(ts, "hour_of_week")) == (hod, dow, how)


def test_periods_change_at_midnight_and_monday() -> None:
    sunday_late = datetime(2026, 1, 11, 23, 59, tzinfo=UTC)
    monday = datetime(2026, 1, 12, tzinfo=UTC)
    assert period_of(monday, "hour_of_day") == period_of(sunday_late, "hour_of_day") + 1
    assert period_of(monday, "hour_of_week") == period_of(sunday_late, "hour_of_week") + 1
    assert period_of(monday, "day_of_week") == period_of(monday + timedelta(days=6, hours=23), "day_of_week")
    for seasonality in ("none", "hour_of_day", "day_of_week", "hour_of_week"):
        p = period_of(monday, seasonality)
        assert period_start(p, seasonality) <= monday < period_start(p + 1, seasonality)
    # every (slot, period) of a week of hours is distinct: the ring key is well defined
    hours = [MONDAY + i * HOUR for i in range(168 * 2)]
    keys = {(slot_of(t, "hour_of_week"), period_of(t, "hour_of_week")) for t in hours}
    assert len(keys) == len(hours)


def test_n_periods_of() -> None:
    assert n_periods_of(timedelta(weeks=4), "hour_of_week") == 4
    assert n_periods_of(timedelta(weeks=4), "hour_of_day") == 28
    assert n_periods_of(timedelta(days=10), "day_of_week") == 1
    with pytest.raises(ValueError, match="at least one period of hour_of_week .1w.; got 3d"):
        n_periods_of(timedelta(days=3), "hour_of_week")


# --------------------------------------------------------------------------
# History: current period excluded, ring, decay, fallback
# --------------------------------------------------------------------------


def feed(baseline: SeasonalBaseline, reference: ReferenceProfile, start: datetime, counts: dict[str, list[int]],
         healthy: bool = True) -> tuple[str, ...]:
    summary = empty_summary(reference, track_event_ids=False)
    for name, row in counts.items():
        summary.features[name].counts += np.asarray(row, dtype=np.int64)
    return baseline.observe(summary, start, healthy)


def test_expected_pools_previous_periods_and_excludes_the_current_one() -> None:
    reference = two_feature_reference()
    baseline = SeasonalBaseline.empty(reference, "hour_of_week", n_periods=2, min_samples=10)
    slot = slot_of(MONDAY + 9 * HOUR, "hour_of_week")
    week = period_of(MONDAY, "hour_of_week")
    feed(baseline, reference, MONDAY + 9 * HOUR, {"x": [10, 0, 0, 0, 0]})
    feed(baseline, reference, MONDAY + 9 * HOUR + timedelta(weeks=1), {"x": [0, 10, 0, 0, 0]})
    feed(baseline, reference, MONDAY + 9 * HOUR + timedelta(weeks=2), {"x": [0, 0, 30, 0, 0]})
    got = baseline.expected("x", slot, week + 2)  # week + 2 itself is excluded
    assert got is not None
    np.testing.assert_allclose(got.shares, [0.5, 0.5, 0, 0, 0])
    assert got.n == 20 and got.description == "hour_of_week=9 over 2 weeks (n=20)"
    got = baseline.expected("x", slot, week + 3)  # weeks +1, +2; week +0 has left the history
    assert got is not None and got.n == 40
    np.testing.assert_allclose(got.shares, [0, 0.25, 0.75, 0, 0])
    # another slot has nothing
    assert baseline.expected("x", slot + 1, week + 3) is None
    # the feature fed nothing (c) is below min_samples, with its reason
    assert baseline.expected("c", slot, week + 3) is None
    assert baseline.fallback_reason("c", slot, week + 3) == (
        "reference (hour_of_week=9 has no samples in the previous 2 weeks)"
    )


def test_ring_overwrites_old_periods_and_ignores_windows_older_than_the_history() -> None:
    reference = two_feature_reference()
    baseline = SeasonalBaseline.empty(reference, "hour_of_day", n_periods=2, min_samples=1)
    day = timedelta(days=1)
    feed(baseline, reference, MONDAY + 10 * day, {"x": [1, 0, 0, 0, 0]})
    assert feed(baseline, reference, MONDAY + 7 * day, {"x": [0, 9, 0, 0, 0]}) == ()  # 3 days older: dropped
    assert feed(baseline, reference, MONDAY + 5 * day, {"x": [0, 9, 0, 0, 0]}) == ()  # empty cell, still too old
    feed(baseline, reference, MONDAY + 9 * day, {"x": [0, 1, 0, 0, 0]})
    got = baseline.expected("x", 0, period_of(MONDAY + 11 * day, "hour_of_day"))
    assert got is not None and got.n == 2
    feed(baseline, reference, MONDAY + 12 * day, {"x": [0, 0, 5, 0, 0]})  # takes day 9's cell
    assert int((baseline.periods >= 0).sum()) <= 3
    got = baseline.expected("x", 0, period_of(MONDAY + 13 * day, "hour_of_day"))
    assert got is not None and got.n == 5 and got.description == "hour_of_day=0 over 1 day (n=5)"


def test_observe_needs_a_flushed_summary_over_the_same_bins() -> None:
    reference = two_feature_reference()
    baseline = SeasonalBaseline.empty(reference, "hour_of_day", n_periods=1)
    summary = empty_summary(reference, track_event_ids=False)
    summary.features["x"].pending.append(1.0)
    with pytest.raises(ValueError, match="flushed"):
        baseline.observe(summary, MONDAY, healthy=True)
    other = build_reference("m", {"x": np.arange(100.0), "c": ["a"] * 100}, {"x": "numeric", "c": "categorical"},
                            {"x": 10}, "t", 100)
    with pytest.raises(ValueError, match="10 bins, the baseline 5"):
        baseline.observe(empty_summary(other, track_event_ids=False), MONDAY, healthy=True)


@pytest.mark.parametrize("half_life", [0.5, 1.0, 3.0])
def test_decay_matches_the_direct_formula(half_life: float) -> None:
    reference = two_feature_reference()
    baseline = SeasonalBaseline.empty(reference, "day_of_week", n_periods=4, min_samples=1, half_life=half_life)
    rng = np.random.default_rng(5)
    rows = {age: rng.integers(0, 50, 5) for age in (1, 2, 4)}  # age 3 missing: a week without traffic
    now = period_of(MONDAY, "day_of_week")
    for age, row in rows.items():
        feed(baseline, reference, MONDAY + timedelta(days=2) - timedelta(weeks=age), {"x": row.tolist()})
    got = baseline.expected("x", 2, now)
    assert got is not None
    # direct: sum_j w_j c_j / sum_j w_j n_j with w_j = 2^-((age_j - 1) / half_life)
    num = [sum(0.5 ** ((age - 1) / half_life) * float(row[i]) for age, row in rows.items()) for i in range(5)]
    np.testing.assert_allclose(got.shares, [v / sum(num) for v in num], rtol=1e-12)
    assert got.n == sum(int(r.sum()) for r in rows.values())
    unit = "week" if half_life == 1 else "weeks"
    assert got.description.endswith(f"over 3 weeks, half-life {half_life:g} {unit} (n={got.n})")


def test_fallback_below_min_samples_keeps_reference_shares_and_says_so_in_the_finding() -> None:
    reference = two_feature_reference()
    baseline = SeasonalBaseline.empty(reference, "hour_of_week", n_periods=4, min_samples=500)
    start = MONDAY + timedelta(days=1, hours=13)  # hour_of_week 37
    feed(baseline, reference, start - timedelta(weeks=1), {"x": [30, 30, 30, 30, 0], "c": [40, 40, 40, 0]})
    profile, descriptions = baseline_profile(reference, baseline, start)
    assert descriptions["x"] == "reference (hour_of_week=37 has 120 < 500 samples over 1 week)"
    assert profile.features["x"].shares == reference.features["x"].shares
    assert profile.features["x"].n == reference.features["x"].n
    summary = window_summary(reference, start, {"x": np.linspace(-2, 2, 200), "c": ["a"] * 200})
    finding = next(f for f in PsiDetector(PsiConfig()).score(summary, profile, COHORT, Window(start, start + HOUR))
                   if f.feature == "x")
    assert finding.baseline == "reference (hour_of_week=37 has 120 < 500 samples over 1 week)"
    # the plain reference still reads "reference"
    plain = PsiDetector(PsiConfig()).score(summary, reference, COHORT, Window(start, start + HOUR))
    assert {f.baseline for f in plain} == {"reference"}


def test_seasonal_profile_has_the_same_bins_and_the_slot_shares() -> None:
    reference = two_feature_reference()
    baseline = SeasonalBaseline.empty(reference, "hour_of_week", n_periods=4, min_samples=100)
    start = MONDAY + timedelta(days=1, hours=13)
    for weeks in (1, 2):
        feed(baseline, reference, start - timedelta(weeks=weeks), {"x": [0, 100, 100, 0, 0], "c": [50, 0, 0, 0]})
    profile, descriptions = baseline_profile(reference, baseline, start)
    assert descriptions == {
        "x": "hour_of_week=37 over 2 weeks (n=400)",
        "c": "hour_of_week=37 over 2 weeks (n=100)",  # n == min_samples is enough
    }
    x = profile.features["x"]
    assert x.shares == (0.0, 0.5, 0.5, 0.0, 0.0) and x.n == 400
    assert x.edges == reference.features["x"].edges  # type: ignore[union-attr]
    assert profile.baselines == descriptions and reference.baselines is None
    summary = window_summary(reference, start, {"x": np.full(200, -5.0), "c": ["a"] * 200})
    found = {f.feature: f for f in PsiDetector(PsiConfig()).score(summary, profile, COHORT, Window(start, start + HOUR))}
    assert found["x"].baseline == "hour_of_week=37 over 2 weeks (n=400)" and found["x"].n_reference == 400
    assert found["x"].value == pytest.approx(psi(x.shares, summary.features["x"].counts))


# --------------------------------------------------------------------------
# The healthy rule
# --------------------------------------------------------------------------


def finding(detector: str, severity: Severity) -> Finding:
    return Finding(detector=detector, cohort=COHORT, window=Window(MONDAY, MONDAY + HOUR), feature="x",
                   value=0.0, severity=severity, warn=0.1, alert=0.25, n_current=1, n_reference=1,
                   baseline="reference")


HEALTHY_CASES = [
    # findings, healthy (default: all ok), healthy when warn is tolerated
    ([], True, True),
    ([("psi", Severity.OK), ("psi", Severity.OK)], True, True),
    ([("psi", Severity.OK), ("psi", Severity.WARN)], False, True),
    ([("psi", Severity.ALERT)], False, False),
    ([("psi", Severity.OK), ("quality.null_rate", Severity.ALERT)], True, True),  # not a baseline comparison
]


@pytest.mark.parametrize(("items", "strict", "lenient"), HEALTHY_CASES)
def test_is_healthy_table(items: list[tuple[str, Severity]], strict: bool, lenient: bool) -> None:
    findings = [finding(d, s) for d, s in items]
    assert is_healthy(findings) is strict
    assert is_healthy(findings, tolerate=Severity.WARN) is lenient


def test_unhealthy_window_feeds_only_features_still_warming_up() -> None:
    reference = two_feature_reference()
    baseline = SeasonalBaseline.empty(reference, "hour_of_day", n_periods=3, min_samples=50)
    feed(baseline, reference, MONDAY - timedelta(days=1), {"x": [25, 25, 25, 25, 0]})  # x warm, c cold
    assert feed(baseline, reference, MONDAY, {"x": [100, 0, 0, 0, 0], "c": [10, 10, 10, 0]}, healthy=False) == ("c",)
    got = baseline.expected("x", 0, period_of(MONDAY, "hour_of_day") + 1)
    assert got is not None and got.n == 100 and got.description == "hour_of_day=0 over 1 day (n=100)"
    assert feed(baseline, reference, MONDAY + timedelta(days=1), {"x": [1, 0, 0, 0, 0], "c": [1, 0, 0, 0]}) == ("x", "c")


def _ramp(rate_per_day: float, seed: int = 1) -> dict[str, list[Finding]]:
    """A slow drift: x's mean climbs ``rate_per_day`` sigmas a day for 14 days after a clean week.

    x has a strong daily cycle; baselines are hour_of_day over 7 days. Three feeding rules
    see the same windows: only all-ok windows (the rule), ok and warn, and every window.
    """
    rng = np.random.default_rng(seed)

    def cycle(hour: int) -> float:
        return float(1.5 * np.sin(2 * np.pi * (hour + 0.5) / 24))

    train = np.concatenate([rng.normal(cycle(h), 1, 2000) for h in range(24)])
    reference = build_reference("m", {"x": train}, {"x": "numeric"}, {"x": 10}, "train", train.size)
    config = BaselineConfig(seasonality="hour_of_day", history=timedelta(days=7), min_samples=500)
    detector = PsiDetector(PsiConfig())
    rules: dict[str, Severity | None] = {"ok_only": Severity.OK, "ok_and_warn": Severity.WARN, "every_window": None}
    baselines = {name: SeasonalBaseline.create(reference, config) for name in rules}
    out: dict[str, list[Finding]] = {name: [] for name in rules}
    for w in range(21 * 24):
        start = MONDAY + w * HOUR
        drift = rate_per_day * max(0.0, (w - 7 * 24) / 24)
        summary = window_summary(reference, start, {"x": rng.normal(cycle(start.hour) + drift, 1, 500)})
        window = Window(start, start + HOUR)
        for name, tolerate in rules.items():
            profile, _ = baseline_profile(reference, baselines[name], start)
            found = detector.score(summary, profile, COHORT, window)
            healthy = True if tolerate is None else is_healthy(found, tolerate=tolerate)
            baselines[name].observe(summary, start, healthy)
            if w >= 7 * 24:
                out[name].extend(found)
    return out


def test_healthy_rule_flags_a_slow_ramp_that_feeding_every_window_absorbs() -> None:
    # 0.07 sigma a day: about 1 sigma over the 14 days, yet each day's step is small
    # enough that a baseline which keeps learning stays within the warn band.
    found = _ramp(0.07)
    alerts = {name: [f for f in fs if f.severity is Severity.ALERT] for name, fs in found.items()}
    assert alerts["every_window"] == []  # absorbed: the baseline walked along with the drift
    assert alerts["ok_and_warn"] == []   # feeding warn windows absorbs it too
    assert len(alerts["ok_only"]) >= 10  # the rule: the slot stops learning at warn, PSI climbs to alert
    first = alerts["ok_only"][0]
    assert first.window.start < MONDAY + timedelta(days=19)
    assert first.baseline.startswith("hour_of_day=")  # flagged against the frozen seasonal history
    absorbed = [f.value for f in found["every_window"]]
    assert max(absorbed) < 0.25 and np.mean(absorbed[-24:]) >= 0.05


# --------------------------------------------------------------------------
# State: pickle, JSON, the store, memory
# --------------------------------------------------------------------------


def filled_baseline() -> tuple[ReferenceProfile, SeasonalBaseline]:
    reference = two_feature_reference()
    baseline = SeasonalBaseline.empty(reference, "hour_of_week", n_periods=2, min_samples=5, half_life=1.5)
    rng = np.random.default_rng(2)
    for h in range(0, 3 * 168, 7):
        feed(baseline, reference, MONDAY + h * HOUR, {"x": rng.integers(0, 9, 5).tolist(),
                                                       "c": rng.integers(0, 9, 4).tolist()})
    return reference, baseline


def test_pickle_and_json_round_trip() -> None:
    reference, baseline = filled_baseline()
    again = pickle.loads(pickle.dumps(baseline))
    assert again.to_dict() == baseline.to_dict()
    text = baseline.to_json()
    loaded = SeasonalBaseline.from_json(text)
    assert loaded.to_dict() == baseline.to_dict()
    for name in baseline.counts:
        np.testing.assert_array_equal(loaded.counts[name], baseline.counts[name])
    np.testing.assert_array_equal(loaded.periods, baseline.periods)
    now = period_of(MONDAY + 3 * 168 * HOUR, "hour_of_week")
    for slot in range(0, 168, 11):
        a, b = baseline.expected("x", slot, now), loaded.expected("x", slot, now)
        assert (a is None and b is None) or (a is not None and b is not None and a.description == b.description)
    assert json.loads(text)["cells"][0]["period_start"].startswith("2026-01-05")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(seasonality="hourly"), "unknown seasonality 'hourly'"),
    (lambda d: d["cells"][0].update(slot=168), "out of range"),
    (lambda d: d["cells"][0]["counts"].update(x=[1, 2]), "must be 5 non-negative integers"),
    (lambda d: d["cells"][0]["counts"].update(x=[1, -2, 0, 0, 0]), "must be 5 non-negative integers"),
    (lambda d: d.pop("n_periods"), "KeyError"),
])
def test_from_dict_rejects_bad_state(edit: Any, message: str) -> None:
    _, baseline = filled_baseline()
    data = baseline.to_dict()
    edit(data)
    with pytest.raises(BaselineError, match=message):
        SeasonalBaseline.from_dict(data, "seasonal.json")


def test_store_round_trip_and_mismatch(tmp_path: Path) -> None:
    reference, baseline = filled_baseline()
    config = BaselineConfig(seasonality="hour_of_week", history=timedelta(weeks=2), min_samples=7)
    assert load_seasonal(tmp_path, "m", reference, config) == {}
    path = save_seasonal({"m|tenant=a": baseline}, tmp_path, "m")
    assert path == seasonal_path(tmp_path, "m") and path.name == "m.seasonal.json"
    loaded = load_seasonal(tmp_path, "m", reference, config)
    assert list(loaded) == ["m|tenant=a"]
    assert loaded["m|tenant=a"].min_samples == 7  # retuned from the config, history kept
    assert loaded["m|tenant=a"].to_dict()["cells"] == baseline.to_dict()["cells"]
    with pytest.raises(BaselineError, match="history is 2 periods, the config says 4; rebuild it with"):
        load_seasonal(tmp_path, "m", reference, BaselineConfig(seasonality="hour_of_week", history=timedelta(weeks=4)))
    rebuilt = build_reference("m", {"x": np.arange(50.0), "c": ["a", "b"] * 25}, {"x": "numeric", "c": "categorical"},
                              {"x": 4}, "t", 50)
    with pytest.raises(BaselineError, match=r"reference bins of \['c', 'x'\] differ"):
        load_seasonal(tmp_path, "m", rebuilt, config)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(BaselineError, match="not a valid seasonal baseline file"):
        load_seasonal(tmp_path, "m", reference, config)


def test_resume_keeps_history_when_only_reading_settings_change() -> None:
    reference, baseline = filled_baseline()
    config = BaselineConfig(seasonality="hour_of_week", history=timedelta(weeks=2), min_samples=42)
    assert resume(baseline, reference, config) is baseline and baseline.min_samples == 42
    assert baseline.half_life is None  # BaselineConfig without half_life: no decay
    fresh = resume(baseline, reference, BaselineConfig(seasonality="hour_of_day", history=timedelta(weeks=2)))
    assert fresh is not baseline and int((fresh.periods >= 0).sum()) == 0 and fresh.n_periods == 14
    assert resume(None, reference, config).to_dict()["cells"] == []


def test_memory_is_fixed_by_slots_periods_and_bins_not_by_traffic() -> None:
    reference = two_feature_reference()  # x: 5 bins, c: 4 bins
    baseline = SeasonalBaseline.empty(reference, "hour_of_week", n_periods=4)
    expected_bytes = 8 * 168 * 5 * (1 + 5 + 4)  # periods + counts, int64, K + 1 = 5 cells per slot
    assert baseline.nbytes == expected_bytes
    sizes = []
    for week in range(6):
        for h in range(168):
            feed(baseline, reference, MONDAY + timedelta(weeks=week) + h * HOUR,
                 {"x": [1000 * (week + 1)] * 5, "c": [7, 7, 7, 7]})
        sizes.append((baseline.nbytes, len(baseline.to_dict()["cells"])))
    assert {s for s, _ in sizes} == {expected_bytes}
    assert sizes[-1][1] == 168 * 5  # cells written to JSON are capped too
    assert len(pickle.dumps(baseline)) < 2 * expected_bytes


# --------------------------------------------------------------------------
# Offline build: same windows, same step as online
# --------------------------------------------------------------------------


def history_model() -> ModelConfig:
    return ModelConfig.model_validate({
        "name": "m", "cohort": ["tenant"],
        "window": {"size": "1h", "allowed_lateness": "10m"},
        "baseline": {"seasonality": "hour_of_day", "history": "2d", "min_samples": 50},
        "features": {"x": {"type": "numeric"}},
        "detectors": [{"psi": {"bins": 10, "min_samples": 50}}, {"quality": {}}],
    })


def test_build_from_history_equals_the_online_step() -> None:
    rng = np.random.default_rng(11)
    reference = numeric_reference(rng)
    model = history_model()
    events: list[InferenceEvent] = []
    online: dict[str, SeasonalBaseline] = {}
    detectors = seasonal_detectors(model, reference)  # psi and quality: bins and rates
    assert [d.name for d in detectors] == ["psi", "quality"]
    for h in range(5 * 24):
        start = MONDAY + h * HOUR
        for tenant, loc in (("a", 0.0), ("b", 0.5 if h < 3 * 24 else 2.0)):  # b drifts on day 4
            x = rng.normal(loc + 0.8 * np.sin(2 * np.pi * start.hour / 24), 1, 80)
            batch = make_events(start, {"x": x}, tenant=tenant)
            events.extend(batch)
            cohort = Cohort("m", (("tenant", tenant),))
            baseline = online.setdefault(cohort.key, SeasonalBaseline.create(reference, model.baseline))
            summary = summarise(batch, reference, track_event_ids=False)
            score_window(baseline, reference, detectors, cohort, Window(start, start + HOUR), summary)
    # a little disorder within the allowed lateness, one event far too late, another model
    order = np.arange(len(events)) + rng.integers(0, 6, len(events))
    shuffled = [events[i] for i in np.argsort(order, kind="stable")]
    late = make_events(MONDAY + 2 * HOUR, {"x": [0.1]}, tenant="a")[0]
    other = make_events(MONDAY, {"x": [0.1]}, model="other")[0]
    stream = shuffled[:4000] + [late, other] + shuffled[4000:]
    stats = BuildStats()
    built = build_from_history(stream, reference, model, lambda e: Cohort(e.model, (("tenant", e.tenant or "-"),)),
                               stats=stats)
    assert sorted(built) == ["m|tenant=a", "m|tenant=b"]
    for key in built:
        assert built[key].to_dict() == online[key].to_dict()
    assert (stats.n_events, stats.n_late, stats.n_other_model, stats.n_windows) == (len(events), 1, 1, 2 * 5 * 24)
    assert stats.n_unhealthy > 0  # tenant b's jump on day 4 was kept out
    day5 = period_of(MONDAY + timedelta(days=4), "hour_of_day")
    got = built["m|tenant=b"].expected("x", 12, day5)
    assert got is not None and got.description == "hour_of_day=12 over 1 day (n=80)"


# --------------------------------------------------------------------------
# The evaluation (bench/seasonality.py)
# --------------------------------------------------------------------------


def test_bench_events_count_as_the_summary_code_counts() -> None:
    bench = _bench()
    scenario = bench.Scenario(seed=3, weeks=1)
    reference = bench.reference_profile(scenario)
    window, data = next(iter(bench.windows(scenario)))
    events = bench.events(window, data)
    assert len(events) == bench.rate(window.start, scenario) and all(window.start <= e.ts < window.end for e in events)
    summary = summarise(events, reference, track_event_ids=False)
    edges = np.asarray(reference.features["amount"].edges)
    direct = np.bincount(np.searchsorted(edges, data["amount"], side="right"), minlength=edges.size + 1)
    np.testing.assert_array_equal(summary.features["amount"].counts, direct)


def test_seasonal_baseline_removes_cycle_false_alarms_and_still_catches_the_shift() -> None:
    """One run, side by side: local slots with holidays and health per feature against UTC
    slots fed by all-ok windows, over a DST change, two holidays and a noisy feature."""
    bench = _bench()
    report = bench.evaluate()
    calm, week5 = report["weeks_2_4"], report["week_5_before_shift"]
    assert calm["windows"] == 3 * 168
    assert calm["reference"]["steady_false_alarm_rate"] >= 0.20
    now, before = calm["local_per_feature"], calm["utc_whole_window"]
    assert now["steady_false_alarm_rate"] <= 0.01 and week5["local_per_feature"]["steady_false_alarm_rate"] <= 0.01
    assert now["fallback_findings"] == 0
    assert now["noisy_alert_rate"] >= 0.2  # the noise is there, and kept out of the other features' slots
    # the old behaviour pays for the DST change, the holidays and the starving noisy feature
    assert before["steady_false_alarm_rate"] >= 3 * max(now["steady_false_alarm_rate"], 0.01)
    assert now["median_history_values"] > before["median_history_values"]
    assert report["holiday_windows"]["local_per_feature"] <= 0.05 < report["holiday_windows"]["utc_whole_window"]
    assert report["after_dst_before_shift"]["local_per_feature"] <= 0.01
    shift = report["shift"]["local_per_feature"]
    assert shift["windows_to_detect"] is not None and shift["windows_to_detect"] <= 2
    assert shift["first_baseline"].startswith("hour_of_week=") and "Europe/Berlin" in shift["first_baseline"]
    assert report["baseline_bytes"]["local_per_feature"] == 8 * N_SLOTS["hour_of_week"] * 5 * (1 + 10 + 10 + 5 + 10)


# --------------------------------------------------------------------------
# Health per feature
# --------------------------------------------------------------------------


def _finding(feature: str | None, severity: Severity, detector: str = "psi", skipped: str | None = None) -> Finding:
    window = Window(MONDAY, MONDAY + HOUR)
    return Finding(detector, COHORT, window, feature, 0.0, severity, 0.1, 0.25, 100, 100, "reference", skipped=skipped)


@pytest.mark.parametrize(("findings", "healthy"), [
    ([], {"x", "y"}),
    ([_finding("x", Severity.OK), _finding("y", Severity.ALERT)], {"x"}),
    ([_finding("x", Severity.WARN), _finding("y", Severity.OK)], {"y"}),
    ([_finding("y", Severity.ALERT, skipped="too few values")], {"x", "y"}),     # skipped judges nothing
    ([_finding("y", Severity.ALERT, detector="quality")], {"x", "y"}),          # not a baseline detector
    ([_finding(None, Severity.ALERT)], set()),                                  # about the whole window
    ([_finding("x", Severity.OK), _finding("x", Severity.ALERT)], {"y"}),       # every finding about x must be ok
])
def test_healthy_features_table(findings: list[Finding], healthy: set[str]) -> None:
    assert healthy_features(findings, ["x", "y"]) == healthy
    assert is_healthy(findings) is (healthy == {"x", "y"})


def test_a_noisy_feature_cannot_starve_another_features_slot_nor_poison_its_own() -> None:
    """x is steady; y moves by a lot every day after warm-up (a delay that follows the
    weather). Through score_window, x's slot keeps learning every day while y's stops at
    its warm history; the old whole-window rule would have starved x as well."""
    rng = np.random.default_rng(5)
    n = 20_000
    reference = build_reference("m", {"x": rng.normal(0, 1, n), "y": rng.normal(0, 1, n)},
                                {"x": "numeric", "y": "numeric"}, {"x": 10, "y": 10}, "test", n)
    detector = PsiDetector(PsiConfig(bins=10))
    baseline = SeasonalBaseline.empty(reference, "hour_of_day", n_periods=7, min_samples=400)
    whole_window = SeasonalBaseline.empty(reference, "hour_of_day", n_periods=7, min_samples=400)
    day = timedelta(days=1)
    for d in range(6):
        start = MONDAY + d * day  # hour 0 only: one slot is enough
        noise = 0.0 if d < 2 else (2.0 if d % 2 else -2.0)
        columns = {"x": rng.normal(0, 1, 500), "y": rng.normal(noise, 1, 500)}
        summary = window_summary(reference, start, columns)
        found = score_window(baseline, reference, [detector], COHORT, Window(start, start + HOUR), summary)
        profile, _ = baseline_profile(reference, whole_window, start)
        whole_window.observe(summary, start, is_healthy(detector.score(summary, profile, COHORT,
                                                                        Window(start, start + HOUR))))
        if d >= 2:
            severity = {f.feature: f.severity for f in found}
            assert severity["y"] is Severity.ALERT and severity["x"] is Severity.OK
    now = period_of(MONDAY + 6 * day, "hour_of_day")
    x, y = baseline.expected("x", 0, now), baseline.expected("y", 0, now)
    assert x is not None and x.n == 6 * 500  # fed every day
    assert y is not None and y.n == 2 * 500  # only its warm-up days: the noise never entered
    starved = whole_window.expected("x", 0, now)
    assert starved is not None and starved.n == 2 * 500  # the whole-window rule starves x too


# --------------------------------------------------------------------------
# Local time: baseline.timezone
# --------------------------------------------------------------------------

BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(("utc", "local_hour", "weekday"), [
    (datetime(2026, 3, 29, 0, 0, tzinfo=UTC), 1, 6),     # 01:00 CET, the last hour before spring forward
    (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), 3, 6),     # 03:00 CEST: 02:00 does not exist that day
    (datetime(2026, 3, 30, 11, 0, tzinfo=UTC), 13, 0),   # Monday 13:00 CEST
    (datetime(2026, 3, 23, 12, 0, tzinfo=UTC), 13, 0),   # the Monday before: 13:00 CET, same slot
    (datetime(2026, 10, 25, 0, 0, tzinfo=UTC), 2, 6),    # 02:00 CEST, first time
    (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), 2, 6),    # 02:00 CET, the repeated hour
    (datetime(2026, 10, 25, 2, 0, tzinfo=UTC), 3, 6),
])
def test_slots_follow_local_time_across_both_dst_changes(utc: datetime, local_hour: int, weekday: int) -> None:
    assert slot_of(utc, "hour_of_day", BERLIN) == local_hour
    assert slot_of(utc, "hour_of_week", BERLIN) == weekday * 24 + local_hour
    assert SlotClock("hour_of_week", BERLIN).place(utc).local.hour == local_hour


def test_a_23_hour_day_skips_a_slot_and_a_25_hour_day_feeds_one_twice() -> None:
    reference = numeric_reference(np.random.default_rng(1))
    clock = SlotClock("hour_of_day", BERLIN)
    spring = [datetime(2026, 3, 28, 23, tzinfo=UTC) + i * HOUR for i in range(23)]  # local 2026-03-29, 00:00..23:00
    assert {clock.place(t).period for t in spring} == {period_of(spring[0], "hour_of_day", BERLIN)}
    assert sorted(clock.place(t).slot for t in spring) == [h for h in range(24) if h != 2]
    autumn = [datetime(2026, 10, 24, 22, tzinfo=UTC) + i * HOUR for i in range(25)]  # local 2026-10-25
    assert len({clock.place(t).period for t in autumn}) == 1
    slots = [clock.place(t).slot for t in autumn]
    assert slots.count(2) == 2 and sorted(set(slots)) == list(range(24))
    baseline = SeasonalBaseline.empty(reference, "hour_of_day", n_periods=2, min_samples=1, clock=clock)
    for t in autumn:
        feed(baseline, reference, t, {"x": [1] * 10})
    got = baseline.expected("x", 2, clock.place(autumn[0]).period + 1)
    assert got is not None and got.n == 20 and got.description.startswith("hour_of_day=2 Europe/Berlin over 1 day")
    assert baseline.expected("x", 3, clock.place(autumn[0]).period + 1).n == 10  # type: ignore[union-attr]


def _local_cycle_alerts(timezone_name: str) -> tuple[int, int]:
    """Hourly windows from 2026-10-15 to 2026-11-05 whose values follow the Berlin clock
    (a step at 09:00 local: office hours), hour_of_day baselines over 7 days: PSI alerts in
    the two weeks after the October change, and windows compared with their slot's history."""
    rng = np.random.default_rng(11)
    reference = numeric_reference(rng)
    detector = PsiDetector(PsiConfig(bins=10))
    config = BaselineConfig(seasonality="hour_of_day", history=timedelta(days=7), min_samples=300,
                            timezone=timezone_name)
    baseline = SeasonalBaseline.create(reference, config)
    zone = SlotClock("hour_of_day", BERLIN)
    alerts = seasonal = 0
    start = datetime(2026, 10, 15, tzinfo=UTC)
    while start < datetime(2026, 11, 5, tzinfo=UTC):
        hour = zone.place(start).local.hour
        mean = 1.5 if 9 <= hour < 17 else -1.0 + 0.1 * hour / 24
        summary = window_summary(reference, start, {"x": rng.normal(mean, 0.5, 400)})
        found = score_window(baseline, reference, [detector], COHORT, Window(start, start + HOUR), summary)
        if start >= datetime(2026, 10, 25, 3, tzinfo=UTC):
            alerts += sum(f.severity is Severity.ALERT for f in found)
            seasonal += sum(not f.baseline.startswith("reference") for f in found)
        start += HOUR
    return alerts, seasonal


def test_local_slots_keep_a_local_cycle_quiet_after_the_dst_change_where_utc_slots_alert() -> None:
    local_alerts, local_seasonal = _local_cycle_alerts(BERLIN)
    utc_alerts, _ = _local_cycle_alerts("UTC")
    assert local_seasonal > 0.95 * (11 * 24 - 3)
    assert local_alerts == 0
    assert utc_alerts >= 7 * 2  # 08:00 and 16:00 UTC meet the other side of the office-hours step every day


# --------------------------------------------------------------------------
# Holidays: baseline.calendar
# --------------------------------------------------------------------------

GOOD_FRIDAY = datetime(2026, 4, 3, 10, tzinfo=UTC)  # 12:00 in Berlin


def test_calendar_reads_public_holidays_by_subdivision_and_explicit_dates() -> None:
    bavaria = Calendar(country="DE", subdivision="BY", dates=frozenset({date(2026, 12, 24)}))
    berlin = Calendar(country="DE", subdivision="BE")
    assert bavaria.is_holiday(date(2026, 4, 3)) and bavaria.is_holiday(date(2026, 12, 24))
    assert bavaria.is_holiday(date(2026, 1, 6)) and not berlin.is_holiday(date(2026, 1, 6))  # Epiphany: BY only
    assert not bavaria.is_holiday(date(2026, 4, 2)) and not berlin.is_holiday(date(2026, 12, 24))
    # by local date: 23:30 UTC on Thursday is already Good Friday in Berlin
    clock = SlotClock("hour_of_week", BERLIN, bavaria)
    assert clock.place(datetime(2026, 4, 2, 22, 30, tzinfo=UTC)).holiday
    assert not SlotClock("hour_of_week", "UTC", bavaria).place(datetime(2026, 4, 2, 22, 30, tzinfo=UTC)).holiday


def test_holiday_as_sunday_scores_in_sundays_slot_and_feeds_nothing() -> None:
    reference = numeric_reference(np.random.default_rng(2))
    clock = SlotClock("hour_of_week", BERLIN, Calendar(country="DE", holiday_as="sunday"))
    place = clock.place(GOOD_FRIDAY)
    assert place.holiday and not place.feeds and place.slot == 6 * 24 + 12
    assert clock.n_slots == 168
    baseline = SeasonalBaseline.empty(reference, "hour_of_week", n_periods=2, min_samples=1, clock=clock)
    last_sunday = datetime(2026, 3, 29, 10, tzinfo=UTC)  # 12:00 CEST
    feed(baseline, reference, last_sunday, {"x": [3] * 10})
    assert feed(baseline, reference, GOOD_FRIDAY, {"x": [50] * 10}) == ()
    assert int((baseline.periods >= 0).sum()) == 1
    profile, descriptions = baseline_profile(reference, baseline, GOOD_FRIDAY)
    assert descriptions["x"] == ("hour_of_week=156 Europe/Berlin over 1 week (n=30); holiday 2026-04-03 as sunday")
    assert profile.features["x"].n == 30


def test_holiday_as_own_has_its_own_slot_class_fed_by_holidays_only() -> None:
    reference = numeric_reference(np.random.default_rng(3))
    calendar = Calendar(country="DE", subdivision="BY", dates=frozenset({date(2026, 12, 24)}))
    clock = SlotClock("hour_of_week", BERLIN, calendar)
    assert clock.n_holiday_slots == 24 and clock.n_slots == 192
    baseline = SeasonalBaseline.empty(reference, "hour_of_week", n_periods=2, min_samples=1, clock=clock)
    noon = [datetime(2026, 1, 6, 11, tzinfo=UTC), datetime(2026, 4, 3, 10, tzinfo=UTC),   # 12:00 local:
            datetime(2026, 4, 6, 10, tzinfo=UTC), datetime(2026, 5, 1, 10, tzinfo=UTC)]   # CET, then CEST
    for i, t in enumerate(noon):
        place = clock.place(t)
        assert place.holiday and place.feeds and place.slot == 168 + 12
        assert feed(baseline, reference, t, {"x": [i + 1] * 10}) == ("x",)
    ordinary = baseline.periods[:168]
    assert (ordinary == -1).all()  # holidays never feed ordinary slots
    # May 1st is compared with the two holidays before it (K = 2), not with Epiphany
    got = baseline.expected("x", 168 + 12, clock.place(noon[3]).period)
    assert got is not None and got.n == (2 + 3) * 10
    assert got.description == "holiday hour=12 Europe/Berlin over 2 holidays (n=50)"
    _, descriptions = baseline_profile(reference, baseline, noon[3])
    assert descriptions["x"].endswith("; holiday 2026-05-01")
    # an ordinary Friday noon does not see holiday counts
    assert baseline.expected("x", 4 * 24 + 12, period_of(noon[3], "hour_of_week", BERLIN) + 1) is None
    # stored and read back, holiday slots included
    again = SeasonalBaseline.from_json(baseline.to_json())
    assert again.to_dict() == baseline.to_dict()
    assert again.clock.n_holiday_slots == 24 and again.clock.timezone == BERLIN


def test_holiday_slots_and_timezone_are_structure(tmp_path: Path) -> None:
    reference, baseline = filled_baseline()  # UTC, no calendar: what format 1 stored
    config = BaselineConfig(seasonality="hour_of_week", history=timedelta(weeks=2))
    path = save_seasonal({"k": baseline}, tmp_path, "m")
    assert json.loads(path.read_text())["format"] == 3
    # a format-1 file (no timezone, no holiday slots) still loads as UTC
    old = json.loads(path.read_text())
    old["format"] = 1
    for item in old["cohorts"].values():
        del item["timezone"], item["n_holiday_slots"]
    path.write_text(json.dumps(old), encoding="utf-8")
    assert load_seasonal(tmp_path, "m", reference, config)["k"].to_dict()["cells"] == baseline.to_dict()["cells"]
    berlin = config.model_copy(update={"timezone": BERLIN})
    with pytest.raises(BaselineError, match="slots are in UTC, the config says timezone Europe/Berlin"):
        load_seasonal(tmp_path, "m", reference, berlin)
    own = BaselineConfig.model_validate({"seasonality": "hour_of_week", "history": "2w", "calendar": {"country": "DE"}})
    with pytest.raises(BaselineError, match="0 holiday slots, the config asks for 24"):
        load_seasonal(tmp_path, "m", reference, own)
    # the holidays themselves are read from the config: a resumed state takes them
    sunday = BaselineConfig.model_validate({"seasonality": "hour_of_week", "history": "2w",
                                            "calendar": {"country": "DE", "holiday_as": "sunday"}})
    resumed = load_seasonal(tmp_path, "m", reference, sunday)["k"]
    assert resumed.clock.place(GOOD_FRIDAY).holiday


@pytest.mark.parametrize(("baseline", "message"), [
    ({"seasonality": "hour_of_week", "timezone": "Europe/Berlín"}, "must be an IANA time zone name"),
    ({"seasonality": "hour_of_week", "calendar": {"country": "XX"}}, "country must be a country code"),
    ({"seasonality": "hour_of_week", "calendar": {"country": "DE", "subdivision": "ZZ"}}, "subdivision must be one of"),
    ({"seasonality": "hour_of_week", "calendar": {"subdivision": "BY"}}, "subdivision needs a country"),
    ({"seasonality": "hour_of_day", "calendar": {"country": "DE", "holiday_as": "sunday"}},
     "needs seasonality day_of_week or hour_of_week"),
    ({"seasonality": "none", "calendar": {"country": "DE"}}, "calendar needs a seasonality"),
    ({"seasonality": "hour_of_week", "calendar": {"dates": ["24.12.2026"]}}, "must be a date like 2026-12-24"),
])
def test_baseline_config_rejects(baseline: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BaselineConfig.model_validate(baseline)


def test_calendar_config_from_yaml_dates() -> None:
    import yaml

    data = yaml.safe_load("seasonality: hour_of_week\ntimezone: Europe/Berlin\n"
                          "calendar: {country: DE, subdivision: BY, dates: [2026-12-24, '2026-12-31'], "
                          "holiday_as: sunday}\n")
    config = BaselineConfig.model_validate(data)
    assert config.calendar is not None and config.calendar.dates == [date(2026, 12, 24), date(2026, 12, 31)]
    clock = SlotClock.from_config(config)
    assert clock.place(datetime(2026, 12, 31, 12, tzinfo=UTC)).slot == 6 * 24 + 13
