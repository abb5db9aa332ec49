"""Seasonal baselines against daily and weekly cycles: false alarms and detection delay, as JSON.

    python bench/seasonality.py [--seed 7] [--min-rate 500] [--max-rate 800] [--score-quality]

Five weeks of synthetic traffic for one cohort in Munich, one-hour windows, from Monday
2026-03-09 00:00 local time. People follow the local clock (Europe/Berlin):

- ``amount`` (log-normal) follows the local hour of day and is higher at weekends,
  ``session_length`` (gamma) is longer in the evening and at weekends, and the
  ``channel`` mix moves between mobile (night), web (day) and branch (weekday office
  hours, 09:00-17:00 local); the number of events per window follows the daily cycle too.
- Daylight saving starts on Sunday 2026-03-29 (week three): from then on the whole cycle
  is one hour earlier in UTC.
- Good Friday (2026-04-03, week four) and Easter Monday (2026-04-06, week five) are public
  holidays in Germany: their traffic is a Sunday's.
- ``delay`` (log-normal, a delivery delay that follows the weather) moves by a random
  amount from one day to the next: legitimate day-to-day noise, not drift.
- No drift for four weeks; from Wednesday 13:00 local of week five, ``amount`` shifts up
  by ``--shift`` in log space (x1.35 for the default 0.3).

Every window goes through the objects the flow uses: events are built as
:class:`~drift.events.InferenceEvent` and counted with :func:`drift.summary.summarise`,
and the PSI detector scores each summary, side by side in one run:

- ``reference``: against the training reference (what the flow does without seasonality);
- ``utc_whole_window``: an ``hour_of_week`` baseline (``history: 4w``, ``min_samples: 500``)
  with UTC slots, no calendar, fed only by windows whose PSI findings are *all* ok (the
  rule of slots in UTC with whole-window health);
- ``local_per_feature``: the same baseline with ``timezone: Europe/Berlin`` and
  ``calendar: {country: DE, subdivision: BY, holiday_as: sunday}``, fed per feature
  through :func:`drift.baselines.score_window` (what the flow does now).

``--score-quality`` adds :func:`evaluate_score_quality`: the ``score`` detector on a model
score whose logit follows the local day (and moves with the shift of ``amount``) and the
``quality`` null rate of ``session_length``, left out for 6% of events by a nightly export
from 01:00 to 05:00 local (never in training), against the training reference and against
the local, per-feature baseline.

Both baselines learn online from the same stream; week one is their warm-up. Reported:
the rate of windows with a PSI alert on a *steady* feature (amount, session_length,
channel: not the noisy ``delay``) over weeks 2-4 and week five before the shift, the
windows compared with the training reference for lack of history, the median history
behind each comparison, and the number of windows from the start of the shift until
the comparison alerts on ``amount`` (1 = the first shifted window).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import numpy as np

from detectors.base import Detector
from detectors.psi import PsiConfig, PsiDetector
from detectors.quality import QualityConfig, QualityDetector
from detectors.score import ScoreConfig, ScoreDetector
from drift.baselines import SeasonalBaseline, baseline_profile, is_healthy, score_window
from drift.config import BaselineConfig
from drift.events import InferenceEvent, RawMessage
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import ReferenceProfile, build_reference, numeric_profile
from drift.summary import WindowSummary, summarise

ZONE = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 9, tzinfo=ZONE).astimezone(timezone.utc)
"""Monday 2026-03-09 00:00 in Munich (23:00 UTC the day before)."""
WINDOW = timedelta(hours=1)
WEEK = timedelta(weeks=1)
SHIFT_AT = datetime(2026, 4, 8, 13, tzinfo=ZONE).astimezone(timezone.utc)
"""Wednesday 13:00 local of week five."""
DST_AT = datetime(2026, 3, 29, 1, tzinfo=timezone.utc)
"""Daylight saving time starts: 02:00 CET is 03:00 CEST."""
HOLIDAYS = (date(2026, 4, 3), date(2026, 4, 6))
"""Good Friday and Easter Monday: a Sunday's traffic on a weekday."""
CHANNELS = ("web", "mobile", "branch", "partner")
FEATURE_TYPES = {"amount": "numeric", "session_length": "numeric", "channel": "categorical", "delay": "numeric"}
STEADY = ("amount", "session_length", "channel")
"""The features without outside noise: false alerts are counted on these."""
MODEL = "payments"
COHORT = Cohort(MODEL, (("tenant", "acme"),))
_RAW = RawMessage(value=None, topic="bench", partition=0, offset=0)


@dataclass(frozen=True)
class Scenario:
    seed: int = 7
    weeks: int = 5
    min_rate: int = 500
    """Events in the quietest window (night); the busiest has ``max_rate``."""
    max_rate: int = 800
    shift: float = 0.3
    """Added to amount's log-mean from :data:`SHIFT_AT` on."""
    shift_at: datetime = SHIFT_AT


def _daily(hour: float) -> float:
    """+1 at 15:00, -1 at 03:00."""
    return float(np.sin(2 * np.pi * (hour - 9) / 24))


def _day_noise(day: date, seed: int) -> float:
    """The weather's effect on ``delay`` on a local day: independent from day to day."""
    return float(np.random.default_rng([seed, day.toordinal()]).normal(0.0, 0.35))


def columns(ts: datetime, n: int, rng: np.random.Generator, shift: float = 0.0, seed: int = 7) -> dict[str, Any]:
    """``n`` events' feature values for the hour starting at ``ts`` (vectorised), by local time."""
    local = ts.astimezone(ZONE)
    hour, weekend = local.hour + 0.5, local.weekday() >= 5 or local.date() in HOLIDAYS
    daily = _daily(hour)
    amount = rng.lognormal(3.6 + 0.5 * daily + 0.35 * weekend + shift, 0.45, n)
    evening = np.cos(2 * np.pi * (hour - 21) / 24)
    session = rng.gamma(2.5, 3.0 * (1 + 0.5 * evening) * (1.3 if weekend else 1.0), n)
    branch = 0.15 if (not weekend and 9 <= local.hour < 17) else 0.01
    partner = 0.05
    night = (1 - daily) / 2
    mobile = (0.3 + 0.4 * night) * (1 - branch - partner)
    web = 1 - branch - partner - mobile
    channel = rng.choice(np.asarray(CHANNELS), size=n, p=[web, mobile, branch, partner])
    delay = rng.lognormal(2.0 + 0.2 * daily + _day_noise(local.date(), seed), 0.5, n)
    return {"amount": amount, "session_length": session, "channel": channel, "delay": delay}


def rate(ts: datetime, scenario: Scenario) -> int:
    """Events in the window at ``ts``: the daily cycle between min_rate and max_rate."""
    level = (1 + _daily(ts.astimezone(ZONE).hour + 0.5)) / 2
    return int(round(scenario.min_rate + (scenario.max_rate - scenario.min_rate) * level))


def windows(scenario: Scenario) -> Iterator[tuple[Window, dict[str, Any]]]:
    """Each one-hour window of the stream with its events' columns, in time order."""
    rng = np.random.default_rng(scenario.seed)
    start = START
    end = START + scenario.weeks * WEEK
    while start < end:
        shift = scenario.shift if start >= scenario.shift_at else 0.0
        yield Window(start, start + WINDOW), columns(start, rate(start, scenario), rng, shift, scenario.seed)
        start += WINDOW


def reference_profile(scenario: Scenario, n_rows: int = 60_000, bins: int = 10) -> ReferenceProfile:
    """The training data: a no-drift week drawn at its traffic mix, binned as the flow does."""
    rng = np.random.default_rng(scenario.seed + 1_000_003)
    hours = [START + timedelta(hours=h) for h in range(168)]
    weights = np.asarray([rate(ts, scenario) for ts in hours], dtype=np.float64)
    per_hour = rng.multinomial(n_rows, weights / weights.sum())
    parts = [columns(ts, int(k), rng, seed=scenario.seed) for ts, k in zip(hours, per_hour)]
    data = {name: np.concatenate([p[name] for p in parts]) for name in FEATURE_TYPES}
    data["channel"] = data["channel"].tolist()
    numeric = {name: bins for name, kind in FEATURE_TYPES.items() if kind == "numeric"}
    return build_reference(MODEL, data, FEATURE_TYPES, numeric, "bench", n_rows)


def events(window: Window, data: dict[str, Any]) -> list[InferenceEvent]:
    """The window's rows as decoded events, evenly spread over the hour."""
    n = len(data["amount"])
    names = list(FEATURE_TYPES)
    rows = list(zip(*(data[name].tolist() for name in names)))
    step = (window.end - window.start) / n
    return [
        InferenceEvent(
            event_id=None, ts=window.start + i * step, model=MODEL, model_version=None, tenant="acme",
            region=None, route=None, segment={}, entity_id=None, features=dict(zip(names, row)),
            prediction=None, embedding=None, raw=_RAW,
        )
        for i, row in enumerate(rows)
    ]


def summaries(scenario: Scenario, reference: ReferenceProfile) -> Iterator[tuple[Window, WindowSummary]]:
    for window, data in windows(scenario):
        yield window, summarise(events(window, data), reference, track_event_ids=False)


def _alerts(findings: list[Finding]) -> list[str]:
    return sorted(f.feature or "-" for f in findings if f.severity is Severity.ALERT)


COMPARISONS = ("reference", "utc_whole_window", "local_per_feature")


def baseline_configs() -> dict[str, BaselineConfig]:
    """The two seasonal baselines compared: UTC slots with whole-window health, and local slots with holidays and health per feature."""
    common: dict[str, Any] = {"seasonality": "hour_of_week", "history": "4w", "min_samples": 500}
    return {
        "utc_whole_window": BaselineConfig.model_validate(common),
        "local_per_feature": BaselineConfig.model_validate({
            **common, "timezone": "Europe/Berlin",
            "calendar": {"country": "DE", "subdivision": "BY", "holiday_as": "sunday"},
        }),
    }


def _summary_of(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    n = max(len(rows), 1)
    steady = [sorted(set(r[name]["alerts"]) & set(STEADY)) for r in rows]
    history = [h for r in rows for h in r[name]["history"]]
    return {
        "steady_false_alarm_rate": sum(bool(a) for a in steady) / n,
        "steady_false_alarms_by_feature": {f: sum(f in a for a in steady) for f in STEADY},
        "noisy_alert_rate": sum("delay" in r[name]["alerts"] for r in rows) / n,
        "fallback_findings": sum(r[name]["fallback"] for r in rows),
        "median_history_values": int(np.median(history)) if history else None,
    }


def evaluate(scenario: Scenario = Scenario()) -> dict[str, Any]:
    """Run the stream through the three comparisons; returns the report (see the module docstring)."""
    detector = PsiDetector(PsiConfig(bins=10))
    reference = reference_profile(scenario)
    configs = baseline_configs()
    baselines = {name: SeasonalBaseline.create(reference, config) for name, config in configs.items()}
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    n_events = 0
    for window, summary in summaries(scenario, reference):
        n_events += summary.n_events
        found: dict[str, list[Finding]] = {"reference": detector.score(summary, reference, COHORT, window)}
        # Before: UTC slots, fed only when every PSI finding of the window is ok.
        before = baselines["utc_whole_window"]
        profile, _ = baseline_profile(reference, before, window.start)
        found["utc_whole_window"] = detector.score(summary, profile, COHORT, window)
        before.observe(summary, window.start, is_healthy(found["utc_whole_window"]))
        # Now: the flow's step (local slots, holidays, health per feature).
        found["local_per_feature"] = score_window(
            baselines["local_per_feature"], reference, [detector], COHORT, window, summary,
        )
        row: dict[str, Any] = {"start": window.start, "week": (window.start - START) // WEEK + 1}
        for name, findings in found.items():
            row[name] = {
                "alerts": _alerts(findings),
                "fallback": sum(f.baseline.startswith("reference") for f in findings) if name != "reference" else 0,
                "history": [f.n_reference for f in findings
                            if f.feature in STEADY and not f.baseline.startswith("reference")],
                "amount_baseline": next(f.baseline for f in findings if f.feature == "amount"),
            }
        rows.append(row)
    seconds = time.perf_counter() - t0

    calm = [r for r in rows if 2 <= r["week"] <= 4]
    after = [r for r in rows if r["start"] >= scenario.shift_at]
    before5 = [r for r in rows if r["week"] == 5 and r["start"] < scenario.shift_at]
    holidays = [r for r in rows if r["start"].astimezone(ZONE).date() in HOLIDAYS and r["start"] < scenario.shift_at]
    after_dst = [r for r in rows if DST_AT <= r["start"] < scenario.shift_at]

    def delay(name: str) -> int | None:
        for i, r in enumerate(after):
            if "amount" in r[name]["alerts"]:
                return i + 1
        return None

    def steady_rate(subset: list[dict[str, Any]], name: str) -> float:
        return sum(bool(set(r[name]["alerts"]) & set(STEADY)) for r in subset) / max(len(subset), 1)

    return {
        "scenario": {
            "seed": scenario.seed, "weeks": scenario.weeks, "window": "1h", "start": START.isoformat(),
            "events_per_window": [scenario.min_rate, scenario.max_rate],
            "dst_change": DST_AT.isoformat(), "holidays": [d.isoformat() for d in HOLIDAYS],
            "noisy_feature": "delay: log-mean moves N(0, 0.35) from one local day to the next",
            "shift": f"amount log-mean +{scenario.shift} from {scenario.shift_at.isoformat()}",
            "baselines": {name: config.model_dump(mode="json", exclude_none=True) for name, config in configs.items()},
            "psi": {"bins": 10, "warn": 0.1, "alert": 0.25},
        },
        "events": n_events,
        "windows": len(rows),
        "weeks_2_4": {"windows": len(calm), **{name: _summary_of(calm, name) for name in COMPARISONS}},
        "week_5_before_shift": {"windows": len(before5), **{name: _summary_of(before5, name) for name in COMPARISONS}},
        "after_dst_before_shift": {
            "windows": len(after_dst), **{name: steady_rate(after_dst, name) for name in COMPARISONS},
        },
        "holiday_windows": {"windows": len(holidays), **{name: steady_rate(holidays, name) for name in COMPARISONS}},
        "shift": {
            "windows": len(after),
            **{name: {
                "windows_to_detect": delay(name),
                "detected_rate": sum("amount" in r[name]["alerts"] for r in after) / max(len(after), 1),
                "first_baseline": after[0][name]["amount_baseline"] if after else None,
            } for name in COMPARISONS},
        },
        "baseline_bytes": {name: b.nbytes for name, b in baselines.items()},
        "seconds": round(seconds, 2),
        "python": platform.python_version(),
    }


# -- score drift and a quality rate against the same baseline ----------------------

SCORE_FIELD = "prediction.score"
NIGHT_BATCH = (1, 5)
"""Local hours [1, 5) in which a nightly export sends no ``session_length`` for 6% of events."""


def score_quality_columns(ts: datetime, n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The model's score and ``session_length`` (None where the nightly export left it out) for
    ``n`` events of the hour at ``ts``. The score's logit follows the local day and weekend; a
    drift of ``shift`` in amount's log-mean moves it by ``2 * shift``. A generator of its own
    (seeded by the window start) keeps the features of :func:`evaluate` unchanged."""
    rng = np.random.default_rng([seed, 29, int(ts.timestamp())])
    local = ts.astimezone(ZONE)
    weekend = local.weekday() >= 5 or local.date() in HOLIDAYS
    logit = rng.normal(-1.0 + 0.9 * _daily(local.hour + 0.5) + 0.3 * weekend + 2 * shift, 1.0, n)
    session = rng.gamma(2.5, 3.0, n).astype(object)
    nightly = 0.06 if NIGHT_BATCH[0] <= local.hour < NIGHT_BATCH[1] else 0.0
    session[rng.random(n) < nightly] = None
    return 1 / (1 + np.exp(-logit)), session


def score_quality_reference(scenario: Scenario, n_rows: int = 60_000) -> ReferenceProfile:
    """Training data of the score and ``session_length``: a week at its traffic mix, before the
    nightly export existed (no nulls)."""
    hours = [START + timedelta(hours=h) for h in range(168)]
    weights = np.asarray([rate(ts, scenario) for ts in hours], dtype=np.float64)
    per_hour = np.random.default_rng(scenario.seed + 7).multinomial(n_rows, weights / weights.sum())
    parts = [score_quality_columns(ts, int(k), scenario.seed + 1_000_003) for ts, k in zip(hours, per_hour)]
    scores = np.concatenate([p[0] for p in parts])
    session = np.concatenate([p[1] for p in parts]).astype(np.float64)
    base = build_reference(MODEL, {"session_length": session}, {"session_length": "numeric"},
                           {"session_length": 10}, "bench", n_rows)
    return replace(base, predictions={SCORE_FIELD: numeric_profile(scores, 10)})


def evaluate_score_quality(scenario: Scenario = Scenario()) -> dict[str, Any]:
    """The score detector and the null rate of ``session_length`` over the same five weeks,
    against the training reference and against the local, per-feature seasonal baseline.

    Reported: the share of windows with a ``score.*`` alert and with a
    ``quality.null_rate`` alert (warn or alert for the night batch) in weeks 2-4 and in
    week five before the shift, and the windows from the shift until a ``score.*`` alert.
    """
    reference = score_quality_reference(scenario)
    detectors: list[Detector] = [
        ScoreDetector(ScoreConfig()),
        QualityDetector(QualityConfig(missing_rate=None, type_mismatch=None, out_of_range=None,
                                      unseen_category=None, duplicate_event_id=None, schema_change=None)),
    ]
    baseline = SeasonalBaseline.create(reference, baseline_configs()["local_per_feature"])
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for window, _ in windows(scenario):
        shift = scenario.shift if window.start >= scenario.shift_at else 0.0
        scores, session = score_quality_columns(window.start, rate(window.start, scenario), scenario.seed, shift)
        step = (window.end - window.start) / len(scores)
        batch = [
            InferenceEvent(
                event_id=None, ts=window.start + i * step, model=MODEL, model_version=None, tenant="acme",
                region=None, route=None, segment={}, entity_id=None, features={"session_length": value},
                prediction={"score": float(score)}, embedding=None, raw=_RAW,
            )
            for i, (score, value) in enumerate(zip(scores, session))
        ]
        summary = summarise(batch, reference, track_event_ids=False)
        found = {
            "reference": [f for d in detectors for f in d.score(summary, reference, COHORT, window)],
            "local_per_feature": score_window(baseline, reference, detectors, COHORT, window, summary),
        }
        row: dict[str, Any] = {"start": window.start, "week": (window.start - START) // WEEK + 1}
        for name, findings in found.items():
            row[name] = {
                "score": any(f.detector.startswith("score.") and f.severity is Severity.ALERT for f in findings),
                "null_rate": any(f.detector == "quality.null_rate" and f.severity is not Severity.OK for f in findings),
                "seasonal": sum(not f.baseline.startswith(("reference", "config")) for f in findings),
            }
        rows.append(row)
    seconds = time.perf_counter() - t0
    calm = [r for r in rows if 2 <= r["week"] <= 4]
    before5 = [r for r in rows if r["week"] == 5 and r["start"] < scenario.shift_at]
    after = [r for r in rows if r["start"] >= scenario.shift_at]

    def share(subset: list[dict[str, Any]], name: str, key: str) -> float:
        return sum(bool(r[name][key]) for r in subset) / max(len(subset), 1)

    def detect(name: str) -> int | None:
        return next((i + 1 for i, r in enumerate(after) if r[name]["score"]), None)

    return {
        "scenario": {
            "score": f"logit follows the local day, +{2 * scenario.shift:g} from the shift",
            "null_rate": f"session_length null in 6% of events from {NIGHT_BATCH[0]:02d}:00 to "
                         f"{NIGHT_BATCH[1]:02d}:00 local (none in training)",
            "quality_null_rate": {"warn": 0.01, "alert": 0.05}, "score_psi": {"warn": 0.1, "alert": 0.25},
        },
        **{name: {
            "weeks_2_4": {"score_alert_rate": share(calm, name, "score"), "null_rate_flag_rate": share(calm, name, "null_rate")},
            "week_5_before_shift": {"score_alert_rate": share(before5, name, "score"),
                                    "null_rate_flag_rate": share(before5, name, "null_rate")},
            "windows_to_detect_score_shift": detect(name),
        } for name in ("reference", "local_per_feature")},
        "seasonal_findings_weeks_2_4": sum(r["local_per_feature"]["seasonal"] for r in calm),
        "baseline_bytes": baseline.nbytes,
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--min-rate", type=int, default=500)
    parser.add_argument("--max-rate", type=int, default=800)
    parser.add_argument("--shift", type=float, default=0.3)
    parser.add_argument("--score-quality", action="store_true",
                        help="also run the score detector and a nightly null rate against the same baselines")
    args = parser.parse_args()
    scenario = Scenario(seed=args.seed, min_rate=args.min_rate, max_rate=args.max_rate, shift=args.shift)
    report = evaluate(scenario)
    if args.score_quality:
        report["score_and_quality"] = evaluate_score_quality(scenario)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
