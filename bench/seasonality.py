"""Seasonal baselines against daily and weekly cycles: false alarms and detection delay, as JSON.

    python bench/seasonality.py [--seed 7] [--min-rate 500] [--max-rate 800]

Five weeks of synthetic traffic for one cohort, one-hour windows, starting on a Monday:

- ``amount`` (log-normal) follows the hour of day and is higher at weekends,
  ``session_length`` (gamma) is longer in the evening and at weekends, and the
  ``channel`` mix moves between mobile (night), web (day) and branch (weekday office
  hours); the number of events per window follows the daily cycle too.
- No drift for four weeks; from Wednesday 13:00 of week five, ``amount`` shifts up by
  ``--shift`` in log space (x1.35 for the default 0.3).

Every window goes through the objects the flow uses: events are built as
:class:`~drift.events.InferenceEvent` and counted with :func:`drift.summary.summarise`;
the PSI detector scores each summary against the training reference (what the flow does
without seasonality) and, through :func:`drift.baselines.score_window`, against the
``hour_of_week`` baseline with ``history: 4w`` and ``min_samples: 500`` (learned online
from the same stream; week one is its warm-up).

Reported: the rate of windows with any PSI alert over weeks 2-4 for both baselines,
and the number of windows from the start of the shift until the seasonal comparison
alerts on ``amount`` (1 = the first shifted window).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import numpy as np

from detectors.psi import PsiConfig, PsiDetector
from drift.baselines import SeasonalBaseline, score_window
from drift.config import BaselineConfig
from drift.events import InferenceEvent, RawMessage
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import ReferenceProfile, build_reference
from drift.summary import WindowSummary, summarise

START = datetime(2026, 1, 5, tzinfo=timezone.utc)
"""A Monday 00:00 UTC."""
WINDOW = timedelta(hours=1)
WEEK = timedelta(weeks=1)
SHIFT_AT = START + 4 * WEEK + timedelta(days=2, hours=13)
"""Wednesday 13:00 of week five."""
CHANNELS = ("web", "mobile", "branch", "partner")
FEATURE_TYPES = {"amount": "numeric", "session_length": "numeric", "channel": "categorical"}
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


def columns(ts: datetime, n: int, rng: np.random.Generator, shift: float = 0.0) -> dict[str, Any]:
    """``n`` events' feature values for the hour starting at ``ts`` (vectorised)."""
    hour, weekend = ts.hour + 0.5, ts.weekday() >= 5
    daily = _daily(hour)
    amount = rng.lognormal(3.6 + 0.5 * daily + 0.35 * weekend + shift, 0.45, n)
    evening = np.cos(2 * np.pi * (hour - 21) / 24)
    session = rng.gamma(2.5, 3.0 * (1 + 0.5 * evening) * (1.3 if weekend else 1.0), n)
    branch = 0.15 if (not weekend and 9 <= ts.hour < 17) else 0.01
    partner = 0.05
    night = (1 - daily) / 2
    mobile = (0.3 + 0.4 * night) * (1 - branch - partner)
    web = 1 - branch - partner - mobile
    channel = rng.choice(np.asarray(CHANNELS), size=n, p=[web, mobile, branch, partner])
    return {"amount": amount, "session_length": session, "channel": channel}


def rate(ts: datetime, scenario: Scenario) -> int:
    """Events in the window at ``ts``: the daily cycle between min_rate and max_rate."""
    level = (1 + _daily(ts.hour + 0.5)) / 2
    return int(round(scenario.min_rate + (scenario.max_rate - scenario.min_rate) * level))


def windows(scenario: Scenario) -> Iterator[tuple[Window, dict[str, Any]]]:
    """Each one-hour window of the stream with its events' columns, in time order."""
    rng = np.random.default_rng(scenario.seed)
    start = START
    end = START + scenario.weeks * WEEK
    while start < end:
        shift = scenario.shift if start >= scenario.shift_at else 0.0
        yield Window(start, start + WINDOW), columns(start, rate(start, scenario), rng, shift)
        start += WINDOW


def reference_profile(scenario: Scenario, n_rows: int = 60_000, bins: int = 10) -> ReferenceProfile:
    """The training data: a no-drift week drawn at its traffic mix, binned as the flow does."""
    rng = np.random.default_rng(scenario.seed + 1_000_003)
    hours = [START + timedelta(hours=h) for h in range(168)]
    weights = np.asarray([rate(ts, scenario) for ts in hours], dtype=np.float64)
    per_hour = rng.multinomial(n_rows, weights / weights.sum())
    parts = [columns(ts, int(k), rng) for ts, k in zip(hours, per_hour)]
    data = {name: np.concatenate([p[name] for p in parts]) for name in FEATURE_TYPES}
    data["channel"] = data["channel"].tolist()
    return build_reference(MODEL, data, FEATURE_TYPES, {"amount": bins, "session_length": bins}, "bench", n_rows)


def events(window: Window, data: dict[str, Any]) -> list[InferenceEvent]:
    """The window's rows as decoded events, evenly spread over the hour."""
    n = len(data["amount"])
    amount, session, channel = data["amount"].tolist(), data["session_length"].tolist(), data["channel"].tolist()
    step = (window.end - window.start) / n
    return [
        InferenceEvent(
            event_id=None, ts=window.start + i * step, model=MODEL, model_version=None, tenant="acme",
            region=None, route=None, segment={}, entity_id=None,
            features={"amount": amount[i], "session_length": session[i], "channel": channel[i]},
            prediction=None, embedding=None, raw=_RAW,
        )
        for i in range(n)
    ]


def summaries(scenario: Scenario, reference: ReferenceProfile) -> Iterator[tuple[Window, WindowSummary]]:
    for window, data in windows(scenario):
        yield window, summarise(events(window, data), reference, track_event_ids=False)


def _alerts(findings: list[Finding]) -> list[str]:
    return sorted(f.feature or "-" for f in findings if f.severity is Severity.ALERT)


def evaluate(scenario: Scenario = Scenario(), config: BaselineConfig | None = None) -> dict[str, Any]:
    """Run the stream through both comparisons; returns the report (see the module docstring)."""
    config = config or BaselineConfig(seasonality="hour_of_week", history=timedelta(weeks=4), min_samples=500)
    detector = PsiDetector(PsiConfig(bins=10))
    reference = reference_profile(scenario)
    baseline = SeasonalBaseline.create(reference, config)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    n_events = 0
    for window, summary in summaries(scenario, reference):
        n_events += summary.n_events
        plain = detector.score(summary, reference, COHORT, window)
        seasonal = score_window(baseline, reference, [detector], COHORT, window, summary)
        rows.append({
            "start": window.start, "week": (window.start - START) // WEEK + 1,
            "reference_alerts": _alerts(plain), "seasonal_alerts": _alerts(seasonal),
            "seasonal_warns": sum(f.severity is Severity.WARN for f in seasonal),
            "fallback": sum(f.baseline.startswith("reference") for f in seasonal),
            "amount_baseline": next(f.baseline for f in seasonal if f.feature == "amount"),
        })
    seconds = time.perf_counter() - t0

    calm = [r for r in rows if 2 <= r["week"] <= 4]
    after = [r for r in rows if r["start"] >= scenario.shift_at]
    before5 = [r for r in rows if r["week"] == 5 and r["start"] < scenario.shift_at]

    def delay(key: str) -> int | None:
        for i, r in enumerate(after):
            if "amount" in r[key]:
                return i + 1
        return None

    return {
        "scenario": {
            "seed": scenario.seed, "weeks": scenario.weeks, "window": "1h",
            "events_per_window": [scenario.min_rate, scenario.max_rate],
            "shift": f"amount log-mean +{scenario.shift} from {scenario.shift_at.isoformat()}",
            "baseline": {"seasonality": config.seasonality, "history": "4w", "min_samples": config.min_samples},
            "psi": {"bins": 10, "warn": 0.1, "alert": 0.25},
        },
        "events": n_events,
        "windows": len(rows),
        "weeks_2_4": {
            "windows": len(calm),
            "reference_false_alarm_rate": sum(bool(r["reference_alerts"]) for r in calm) / len(calm),
            "seasonal_false_alarm_rate": sum(bool(r["seasonal_alerts"]) for r in calm) / len(calm),
            "seasonal_warn_rate": sum(r["seasonal_warns"] > 0 for r in calm) / len(calm),
            "seasonal_fallback_findings": sum(r["fallback"] for r in calm),
        },
        "week_5_before_shift": {
            "windows": len(before5),
            "seasonal_false_alarm_rate": sum(bool(r["seasonal_alerts"]) for r in before5) / max(len(before5), 1),
        },
        "shift": {
            "windows": len(after),
            "seasonal_windows_to_detect": delay("seasonal_alerts"),
            "seasonal_detected_rate": sum("amount" in r["seasonal_alerts"] for r in after) / max(len(after), 1),
            "first_baseline": after[0]["amount_baseline"] if after else None,
        },
        "baseline_bytes": baseline.nbytes,
        "seconds": round(seconds, 2),
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--min-rate", type=int, default=500)
    parser.add_argument("--max-rate", type=int, default=800)
    parser.add_argument("--shift", type=float, default=0.3)
    args = parser.parse_args()
    scenario = Scenario(seed=args.seed, min_rate=args.min_rate, max_rate=args.max_rate, shift=args.shift)
    print(json.dumps(evaluate(scenario), indent=2, default=str))


if __name__ == "__main__":
    main()
