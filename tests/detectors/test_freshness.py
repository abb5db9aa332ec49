"""Feature freshness against hand-computed windows, the keyed window state, and its YAML errors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from detectors.freshness import FreshnessConfig, FreshnessDetector, FreshnessWindow
from drift.config import parse_config
from drift.errors import ConfigError
from drift.findings import Cohort, Severity, Window
from flows.freshness import FreshnessState

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
WINDOW = Window(T0, T0 + timedelta(minutes=10))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _config(**kwargs: object) -> FreshnessConfig:
    return FreshnessConfig.model_validate({"feature_set": "profile", "max_lag": "30m", "warn_lag": "20m", **kwargs})


# (events as (ts, materialized_at) in minutes from 08:00, newest before the window, statistic,
#  expected value in seconds, lag_max, lag_p95, severity). The window is [08:00, 08:10).
CASES = [
    # One event materialised at 08:05 (ts 08:01): newest lag 10:00-08:05 = 5m; age 10:00-08:01 = 9m.
    ([(1, 5)], None, "newest", 300.0, 540.0, 540.0, "ok"),
    ([(1, 5)], None, "max", 540.0, 540.0, 540.0, "ok"),
    # No materialized_at: ts is the availability time.
    ([(2, None)], None, "newest", 480.0, 480.0, 480.0, "ok"),
    # 20 events with ts 07:00 + i min (ages 70..51 m), all materialised at 08:00: newest lag 10m;
    # p95 = ceil(0.95 * 20) = 19th smallest age = 69m; max = 70m.
    ([(-60 + i, 0) for i in range(20)], None, "newest", 600.0, 4200.0, 4140.0, "ok"),
    ([(-60 + i, 0) for i in range(20)], None, "p95", 4140.0, 4200.0, 4140.0, "alert"),
    ([(-60 + i, 0) for i in range(20)], None, "max", 4200.0, 4200.0, 4140.0, "alert"),
    # Empty window, last event seen at 07:45: lag 25m, warn (>= 20m, < 30m); p95 falls back to it.
    ([], at(-15), "newest", 1500.0, None, None, "warn"),
    ([], at(-15), "p95", 1500.0, None, None, "warn"),
    # Empty window, last seen 07:30: 40m, alert.
    ([], at(-30), "newest", 2400.0, None, None, "alert"),
    # An older event in the window does not hide a newer one seen before: newest = max of both.
    ([(-50, -5)], at(-2), "newest", 720.0, 3600.0, 3600.0, "ok"),
    # ts after the window end (clock skew upstream) counts as age 0, not negative.
    ([(12, 9)], None, "max", 0.0, 0.0, 0.0, "ok"),
]


@pytest.mark.parametrize(("events", "before", "statistic", "value", "lag_max", "lag_p95", "severity"), CASES)
def test_hand_computed_windows(
    events: list[tuple[float, float | None]], before: datetime | None, statistic: str, value: float,
    lag_max: float | None, lag_p95: float | None, severity: str,
) -> None:
    stats = FreshnessWindow()
    for ts, materialized in events:
        stats.add_feature(at(ts), at(materialized) if materialized is not None else at(ts))
    finding = FreshnessDetector(_config(statistic=statistic)).score_window(
        stats, before, T0, Cohort("credit-risk"), WINDOW,
    )
    assert finding.detector == "freshness" and finding.feature == "profile"
    assert finding.cohort == Cohort("credit-risk")
    assert finding.value == pytest.approx(value)
    assert finding.evidence["lag_max_s"] == (None if lag_max is None else pytest.approx(lag_max))
    assert finding.evidence["lag_p95_s"] == (None if lag_p95 is None else pytest.approx(lag_p95))
    assert finding.severity.value == severity
    assert (finding.warn, finding.alert) == (1200.0, 1800.0)
    assert finding.evidence["n_feature_events"] == len(events)


def test_never_seen_is_the_time_watched_and_says_so() -> None:
    detector = FreshnessDetector(_config())
    early = detector.score_window(FreshnessWindow(), None, T0, Cohort("m"), WINDOW)
    assert early.value == 600.0 and early.severity is Severity.OK
    assert early.evidence["no_feature_events"] is True and early.evidence["newest_materialized_at"] is None
    late = detector.score_window(FreshnessWindow(), None, T0 - timedelta(minutes=30), Cohort("m"), WINDOW)
    assert late.value == 2400.0 and late.severity is Severity.ALERT


def test_p95_stays_bounded_and_close_with_many_distinct_timestamps() -> None:
    stats = FreshnessWindow()
    n = 10_000
    for i in range(n):
        ts = T0 - timedelta(seconds=i)
        stats.add_feature(ts, T0)
    assert len(stats.ts_buckets) <= 4096 and stats.resolution == 60
    lags = stats.lags(WINDOW.end)
    assert lags is not None
    lag_max, lag_p95 = lags
    assert lag_max == 600.0 + n - 1
    exact = 600.0 + 9499  # 9500th smallest age
    assert exact <= lag_p95 <= exact + 60


def test_state_closes_windows_in_order_and_reports_gaps_with_traffic() -> None:
    state = FreshnessState(size=timedelta(minutes=10), lateness=timedelta(minutes=1))
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert state.offer_feature(at(1), at(2), now) == []
    assert state.offer_inference(at(5), now) == []
    # 08:11 - 1m lateness = 08:10: the first window closes.
    closed = state.offer_inference(at(11), now)
    assert [(w, s.n_feature_events, s.n_inference_events, before) for w, s, before in closed] == [
        (state.window_of(at(0)), 1, 1, None),
    ]
    # Traffic only in [08:10, 08:20) and [08:40, 08:50); nothing at all in between.
    closed = state.offer_inference(at(45), now) + state.offer_inference(at(52), now)
    assert [state.start_of(w) for w, _, _ in closed] == [at(10), at(40)]
    assert all(before == at(2) for _, _, before in closed)
    # A feature event for a closed window is late: counted, and seen by later windows.
    state.offer_feature(at(3), at(30), now)
    assert state.n_late == 1 and state.last_seen == at(30)
    (_, stats, before), = state.flush()
    assert before == at(30) and stats.n_inference_events == 1


def test_system_time_closes_an_idle_window() -> None:
    state = FreshnessState(size=timedelta(minutes=10), lateness=timedelta(minutes=1))
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    state.offer_inference(at(5), now)
    deadline = state.next_deadline()
    assert deadline == now + timedelta(minutes=6)
    assert state.expire(deadline - timedelta(seconds=1)) == []
    assert len(state.expire(deadline)) == 1


def _yaml(detectors: str) -> str:
    return f"""\
version: 1
models:
  - name: credit-risk
    features:
      age: {{type: numeric}}
    detectors:
{detectors}
"""


@pytest.mark.parametrize(("detectors", "message"), [
    ("      - freshness: {max_lag: 1h}", "models[0].detectors[0].freshness.feature_set: is required"),
    ("      - freshness: {feature_set: p, max_lag: 1x}", "models[0].detectors[0].freshness.max_lag: must be a duration"),
    ("      - freshness: {feature_set: p, max_lag: 0s}",
     "models[0].detectors[0].freshness: max_lag must be a positive duration; got '0ms'"),
    ("      - freshness: {feature_set: p, max_lag: 30m, warn_lag: 1h}",
     "models[0].detectors[0].freshness: warn_lag must be <= max_lag; got warn_lag='1h', max_lag='30m'"),
    ("      - freshness: {feature_set: p, max_lags: 1h}",
     "models[0].detectors[0].freshness.max_lags: unknown key 'max_lags' (did you mean 'max_lag'?)"),
    ("      - freshness: {feature_set: p, statistic: p99}", "models[0].detectors[0].freshness.statistic: must be one of"),
    ("      - freshness: {feature_set: p}\n      - freshness: {feature_set: p, max_lag: 2h}",
     "models[0]: freshness detectors of one model must name distinct feature sets; repeated: ['p']"),
])
def test_config_errors_name_the_yaml_path(detectors: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_yaml(detectors), "drift.yaml")
    assert any(message in problem for problem in info.value.messages), info.value.messages


def test_config_defaults_and_explicit_no_warn(tmp_path: Path) -> None:
    config = parse_config(_yaml("      - freshness: {feature_set: p}\n      - freshness: {feature_set: q, warn_lag: null}"))
    first, second = [s for _, s in config.models[0].detector_configs()]
    assert isinstance(first, FreshnessConfig) and isinstance(second, FreshnessConfig)
    assert (first.max_lag, first.warn_lag, first.statistic, first.source) == (
        timedelta(hours=1), timedelta(minutes=30), "newest", None,
    )
    assert second.warn_lag is None
    finding = FreshnessDetector(second).score_window(FreshnessWindow(), at(-50), T0, Cohort("m"), WINDOW)
    assert (finding.warn, finding.alert, finding.severity) == (3600.0, 3600.0, Severity.ALERT)
