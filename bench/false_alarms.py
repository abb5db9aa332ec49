"""False alarms and detection with and without significance; prints one JSON document.

    python bench/false_alarms.py [--cohorts 50] [--windows 12] [--features 25] [--max-size 2000]

One model, ``--features`` numeric N(0, 1) features against a N(0, 1) reference of 50,000
rows, PSI on every feature (10 bins, warn 0.1, alert 0.25, ``min_samples`` 30), cohorts by
``tenant`` whose sizes per 1-hour window follow a Zipf law from 10 to ``--max-size`` events.
Three streams, each replayed twice through the whole flow (``drift replay``'s path) in the
same run, once with ``significance: none`` (fixed thresholds) and once with the default
``{method: bh, q: 0.01}``:

* ``no_drift``: every cohort as the reference;
* ``few_drift``: 1% of the cohorts (at least one, the largest excluded) shifted by 0.55
  standard deviations in every feature from the third window on (PSI ≈ 0.3);
* ``all_drift``: every cohort shifted by 0.38 standard deviations (PSI ≈ 0.15).

Reported per stream and setting: scored PSI feature-windows, the share at warn or alert,
tickets opened, and for the drifted streams the share of drifted cohorts found (a PSI
finding at warn or alert) within 2 windows of the shift.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import workload  # noqa: E402

from connectors.files import write_jsonl, write_parquet  # noqa: E402
from drift.config import load_config  # noqa: E402
from flows.runner import run_file  # noqa: E402

START = datetime(2026, 11, 2, tzinfo=timezone.utc)
DRIFT_FROM = 2
"""Window index from which the drifted cohorts are shifted."""


def config_text(features: list[str], significance: str, tag: str) -> str:
    lines = "\n".join(f"      {name}: {{type: numeric}}" for name in features)
    return f"""version: 1
events:
  max_future: 100000d
baselines:
  dir: baselines
tickets:
  store: sqlite:///tickets-{tag}.db
metrics:
  max_cohorts: 100000
models:
  - name: m
    cohort: [tenant]
    window: {{size: 1h, allowed_lateness: 1m}}
    reference: {{parquet: reference.parquet}}
    features:
{lines}
    detectors:
      - psi: {{features: "*", bins: 10, warn: 0.1, alert: 0.25, min_samples: 30, significance: {significance}}}
"""


def sizes(cohorts: int, max_size: int, seed: int) -> np.ndarray:
    """Events per window of each cohort: Zipf-like, from 10 to ``max_size``."""
    rng = np.random.default_rng(seed)
    ranks = rng.permutation(cohorts) + 1
    return np.maximum(10, (max_size / ranks ** 1.1)).astype(int)


def stream(cohorts: int, windows: int, features: int, max_size: int, drifted: set[int], shift: float,
           seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    per_window = sizes(cohorts, max_size, seed)
    names = [f"f{j:02d}" for j in range(features)]
    lines: list[tuple[float, bytes]] = []
    for w in range(windows):
        for c in range(cohorts):
            n = int(per_window[c])
            values = rng.normal(size=(n, features))
            if c in drifted and w >= DRIFT_FROM:
                values += shift
            offsets = np.sort(rng.uniform(0, 3600, n))
            for k in range(n):
                ts = START + timedelta(hours=w, seconds=float(offsets[k]))
                record = {"event_id": f"e-{w}-{c}-{k}", "ts": ts.isoformat().replace("+00:00", "Z"), "model": "m",
                          "tenant": f"t{c:05d}", "features": dict(zip(names, np.round(values[k], 4).tolist()))}
                lines.append((w * 3600 + float(offsets[k]), orjson.dumps(record)))
    lines.sort(key=lambda item: item[0])
    return [line for _, line in lines]


def measure(
    folder: Path, tag: str, significance: str, events: Path, features: list[str], drifted: set[int],
) -> dict[str, Any]:
    config_path = folder / f"drift-{tag}.yaml"
    config_path.write_text(config_text(features, significance, tag), encoding="utf-8")
    config = load_config(config_path)
    start = time.perf_counter()
    result = run_file(config, events)
    seconds = time.perf_counter() - start
    scored = [f for f in result.findings if f.detector == "psi" and f.skipped is None]
    loud = [f for f in scored if f.severity.value != "ok"]
    found_at: dict[int, int] = {}
    for f in loud:
        cohort = int(dict(f.cohort.labels)["tenant"][1:])
        window = int((f.window.start - START) / timedelta(hours=1))
        if cohort in drifted and window >= DRIFT_FROM:
            found_at[cohort] = min(found_at.get(cohort, window), window)
    false_loud = [f for f in loud if int(dict(f.cohort.labels)["tenant"][1:]) not in drifted
                  or int((f.window.start - START) / timedelta(hours=1)) < DRIFT_FROM]
    clean = [f for f in scored if int(dict(f.cohort.labels)["tenant"][1:]) not in drifted
             or int((f.window.start - START) / timedelta(hours=1)) < DRIFT_FROM]
    opened = [t for t in result.tickets if t.kind == "opened"]
    out: dict[str, Any] = {
        "seconds": round(seconds, 1),
        "scored_feature_windows": len(scored),
        "warn_or_alert_rate": round(len(loud) / max(1, len(scored)), 5),
        "false_warn_or_alert_rate": round(len(false_loud) / max(1, len(clean)), 5),
        "tickets_opened": len(opened),
    }
    if drifted:
        within = sum(1 for c in drifted if c in found_at and found_at[c] <= DRIFT_FROM + 1)
        out["drifted_cohorts_found_within_2_windows"] = f"{within} of {len(drifted)}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cohorts", type=int, default=50)
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--features", type=int, default=25)
    parser.add_argument("--max-size", type=int, default=2000)
    args = parser.parse_args()
    names = [f"f{j:02d}" for j in range(args.features)]
    per_window = sizes(args.cohorts, args.max_size, 7)
    smallest_first = [int(c) for c in np.argsort(per_window)]
    n_few = max(1, args.cohorts // 100)
    streams = {
        "no_drift": (set(), 0.0),
        # Drifted cohorts of middling size: neither the largest nor the 10-event ones.
        "few_drift": ({smallest_first[len(smallest_first) // 2 + k] for k in range(n_few)}, 0.55),
        "all_drift": (set(range(args.cohorts)), 0.38),
    }
    report: dict[str, Any] = {
        "benchmark": "false_alarms", "machine": workload.machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cohorts": args.cohorts, "windows": args.windows, "features": args.features,
        "events_per_window": {"min": int(per_window.min()), "median": int(np.median(per_window)),
                              "max": int(per_window.max())},
        "streams": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(1)
        write_parquet(folder / "reference.parquet", {name: rng.normal(size=50_000) for name in names})
        for name, (drifted, shift) in streams.items():
            events = folder / f"{name}.jsonl"
            write_jsonl(events, stream(args.cohorts, args.windows, args.features, args.max_size, drifted, shift, 7))
            report["streams"][name] = {
                "drifted_cohorts": sorted(drifted) if len(drifted) < args.cohorts else "all",
                "significance_none": measure(folder, f"{name}-none", "none", events, names, drifted),
                "significance_bh_q0.01": measure(
                    folder, f"{name}-bh", "{method: bh, q: 0.01}", events, names, drifted),
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
