"""Score drift, quality rates and embeddings against the seasonal baseline inside the dataflow:
a daily cycle in each pages against the training reference and stays quiet against the
same hour of previous days; the state the flow keeps per cohort is the seasonal baseline."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson

from connectors.files import write_jsonl, write_parquet
from drift.config import load_config
from drift.findings import Finding, Severity
from flows.runner import run_file

START = datetime(2026, 11, 2, tzinfo=timezone.utc)
DAYS = 4
PER_HOUR = 240
DIM = 3


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
      - score: {{field: prediction.score, mean_shift: null}}
      - quality: {{features: [load], missing_rate: null, out_of_range: null, type_mismatch: null,
                   duplicate_event_id: null, schema_change: null}}
      - embedding: {{field: vec, dim: {DIM}, method: centroid, sample: 240, permutations: 200,
                     min_samples: 60, seasonal_rows: 240}}
tickets: {{store: "sqlite:///tickets-{seasonality}.db"}}
baselines: {{dir: baselines-{seasonality}}}
metrics: {{port: 0}}
"""


def _cycle(hour: int) -> float:
    return math.sin(2 * math.pi * hour / 24)


def _centre(hour: int) -> np.ndarray:
    return np.array([3.0 * _cycle(hour), 3.0 * math.cos(2 * math.pi * hour / 24), 0.0])


def _workspace(tmp_path: Path) -> Path:
    """Scores whose logit follows the hour, ``load`` null in 10% of night events (00:00-06:00),
    embeddings whose centre circles with the hour; the reference mixes all hours, without nulls."""
    rng = np.random.default_rng(5)
    hours = rng.integers(0, 24, 12_000)
    write_parquet(tmp_path / "reference.parquet", {
        "load": rng.normal(10, 1, hours.size),
        "score": 1 / (1 + np.exp(-rng.normal(1.5 * np.sin(2 * np.pi * hours / 24), 1.0))),
        "vec": (np.stack([_centre(int(h)) for h in hours]) + rng.normal(0, 1, (hours.size, DIM))).astype(np.float32),
    })
    lines = []
    for hour_index in range(DAYS * 24):
        start = START + timedelta(hours=hour_index)
        night = start.hour < 6
        for i, offset in enumerate(np.sort(rng.uniform(0, 3600, PER_HOUR))):
            load = None if night and rng.random() < 0.10 else round(float(rng.normal(10, 1)), 4)
            score = 1 / (1 + math.exp(-rng.normal(1.5 * _cycle(start.hour), 1.0)))
            vec = _centre(start.hour) + rng.normal(0, 1, DIM)
            lines.append(orjson.dumps({
                "event_id": f"{hour_index}-{i}", "ts": (start + timedelta(seconds=float(offset))).isoformat(),
                "model": "ranker", "tenant": "t1", "features": {"load": load},
                "prediction": {"score": round(score, 6)}, "vec": [round(float(v), 5) for v in vec],
            }))
    write_jsonl(tmp_path / "events.jsonl", lines)
    return tmp_path / "events.jsonl"


def _flagged(findings: list[Finding]) -> int:
    return sum(f.severity is Severity.ALERT for f in findings)


def test_score_null_rate_and_embedding_cycles_are_quiet_against_the_seasonal_baseline(tmp_path: Path) -> None:
    events = _workspace(tmp_path)
    kinds = {"score": "score.psi", "null_rate": "quality.null_rate", "embedding": "embedding"}
    alerts: dict[str, dict[str, int]] = {}
    for seasonality in ("none", "hour_of_day"):
        path = tmp_path / f"drift-{seasonality}.yaml"
        path.write_text(_config(seasonality), encoding="utf-8")
        result = run_file(load_config(path), events)
        late = [f for f in result.findings if f.window.start >= START + timedelta(days=2)]
        alerts[seasonality] = {
            kind: _flagged([f for f in late if f.detector == name]) for kind, name in kinds.items()
        }
        if seasonality == "hour_of_day":
            for name in kinds.values():
                of_detector = [f for f in late if f.detector == name]
                assert len(of_detector) == 2 * 24
                assert all(f.baseline.startswith("hour_of_day=") for f in of_detector), of_detector[0].baseline
    assert alerts["none"]["score"] >= 20 and alerts["none"]["embedding"] >= 40
    assert alerts["none"]["null_rate"] >= 10  # the night hours of the last two days
    assert alerts["hour_of_day"]["score"] == alerts["hour_of_day"]["null_rate"] == 0
    assert alerts["hour_of_day"]["embedding"] <= 2  # p < 0.01 by chance: about 0.5 in 48 windows


def test_baseline_build_from_history_seeds_every_detector_and_the_flow_starts_from_it(tmp_path: Path) -> None:
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
         "--history", str(history)],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    stored = orjson.loads((tmp_path / "baselines-hour_of_day" / "ranker.seasonal.json").read_bytes())
    assert stored["format"] == 3
    cohort = stored["cohorts"]["ranker|tenant=t1"]
    assert set(cohort["predictions"]) == {"prediction.score"} and cohort["rates"] == ["load"]
    assert cohort["embeddings"]["vec"] == {"dim": DIM, "rows_per_period": 120, "min_rows": 60, "seed": 0}
    seen = sum(cell["embeddings"]["vec"]["n_seen"] for cell in cohort["cells"])
    assert 2 * 24 * PER_HOUR - 3 * PER_HOUR <= seen <= 2 * 24 * PER_HOUR  # a window not ok keeps its rows out
    # Seeded with two days, the first live windows already compare with the slot's history.
    result = run_file(load_config(config), live)
    first = [f for f in result.findings if f.window.start == START + timedelta(days=2)]
    named = {f.detector: f.baseline for f in first if f.detector in ("score.psi", "quality.null_rate", "embedding")}
    assert len(named) == 3 and all(text.startswith("hour_of_day=0 over 2 days") for text in named.values()), named
