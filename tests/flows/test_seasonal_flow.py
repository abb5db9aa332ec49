"""Seasonal baselines inside the dataflow: a daily cycle pages with the training reference
and stays quiet against the same hour of previous days."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson

from connectors.files import write_jsonl, write_parquet
from drift.config import load_config
from drift.findings import Severity
from flows.runner import run_file

START = datetime(2026, 11, 2, tzinfo=timezone.utc)
DAYS = 4
PER_HOUR = 300


def _config(seasonality: str) -> str:
    return f"""
version: 1
models:
  - name: ranker
    cohort: [tenant]
    window: {{size: 1h, allowed_lateness: 1m}}
    reference: {{parquet: reference.parquet}}
    baseline: {{seasonality: {seasonality}, history: 2d, min_samples: 200}}
    features:
      load: {{type: numeric}}
    detectors:
      - psi: {{features: [load], bins: 10, warn: 0.1, alert: 0.25, min_samples: 100}}
tickets: {{store: "sqlite:///tickets-{seasonality}.db"}}
baselines: {{dir: baselines-{seasonality}}}
metrics: {{port: 0}}
"""


def _hourly_mean(hour: int) -> float:
    return 10.0 + 6.0 * math.sin(2 * math.pi * hour / 24)


def _workspace(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    hours = rng.integers(0, 24, 20000)
    write_parquet(tmp_path / "reference.parquet", {
        "load": np.array([rng.normal(_hourly_mean(int(h)), 1.0) for h in hours]),
    })
    lines = []
    for hour_index in range(DAYS * 24):
        start = START + timedelta(hours=hour_index)
        for i, offset in enumerate(np.sort(rng.uniform(0, 3600, PER_HOUR))):
            value = rng.normal(_hourly_mean(start.hour), 1.0)
            lines.append(orjson.dumps({
                "event_id": f"{hour_index}-{i}", "ts": (start + timedelta(seconds=float(offset))).isoformat(),
                "model": "ranker", "tenant": "t1", "features": {"load": round(float(value), 4)},
            }))
    write_jsonl(tmp_path / "events.jsonl", lines)
    return tmp_path / "events.jsonl"


def test_daily_cycle_alerts_against_reference_but_not_against_the_seasonal_baseline(tmp_path: Path) -> None:
    events = _workspace(tmp_path)
    alerts = {}
    for seasonality in ("none", "hour_of_day"):
        path = tmp_path / f"drift-{seasonality}.yaml"
        path.write_text(_config(seasonality), encoding="utf-8")
        result = run_file(load_config(path), events)
        psi = [f for f in result.findings if f.detector == "psi"]
        assert len(psi) == DAYS * 24
        late_days = [f for f in psi if f.window.start >= START + timedelta(days=2)]
        alerts[seasonality] = sum(f.severity is Severity.ALERT for f in late_days)
        if seasonality == "hour_of_day":
            assert all(f.baseline.startswith("hour_of_day=") for f in late_days), late_days[0].baseline
            first_day = [f for f in psi if f.window.start < START + timedelta(days=1)]
            assert all(f.baseline.startswith("reference") for f in first_day)
        else:
            assert all(f.baseline == "reference" for f in psi)
    # Each hour's distribution is narrow compared with the all-day reference.
    assert alerts["none"] >= 40
    assert alerts["hour_of_day"] == 0


def test_baseline_build_from_history_seeds_the_flow(tmp_path: Path) -> None:
    import subprocess
    import sys

    events = _workspace(tmp_path)
    lines = events.read_bytes().splitlines()
    split = len(lines) // 2  # days 1-2 are history, days 3-4 are replayed
    history, live = tmp_path / "history.jsonl", tmp_path / "live.jsonl"
    write_jsonl(history, lines[:split])
    write_jsonl(live, lines[split:])
    config = tmp_path / "drift-hour_of_day.yaml"
    config.write_text(_config("hour_of_day"), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "baseline", "build", "--config", str(config), "--model", "ranker",
         "--reference", str(tmp_path / "reference.parquet"), "--history", str(history)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "seasonal baselines (hour_of_day) of 1 cohort(s)" in proc.stdout
    assert (tmp_path / "baselines-hour_of_day" / "ranker.seasonal.json").is_file()
    # Seeded with two days of history, the very first live window compares with earlier days.
    result = run_file(load_config(config), live)
    psi = [f for f in result.findings if f.detector == "psi"]
    assert len(psi) == 2 * 24
    assert all(f.baseline.startswith("hour_of_day=") and "over 2 days" in f.baseline for f in psi), psi[0].baseline
    assert sum(f.severity is Severity.ALERT for f in psi) == 0

    none_config = tmp_path / "drift-none.yaml"
    none_config.write_text(_config("none"), encoding="utf-8")
    refused = subprocess.run(
        [sys.executable, "-m", "drift.cli", "baseline", "build", "--config", str(none_config), "--model", "ranker",
         "--reference", str(tmp_path / "reference.parquet"), "--history", str(events)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert refused.returncode == 2 and "seasonality: none" in refused.stderr
