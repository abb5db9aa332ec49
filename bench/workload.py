"""The benchmark workload: one model, 20 numeric + 5 categorical features, N cohorts.

Shared by the throughput, Kafka and memory benchmarks so they measure the same work:

* ``config_text(...)``: the YAML (PSI on every feature, the quality checks, 5-minute
  windows keyed by ``tenant``);
* ``write_reference(folder)``: a reference Parquet file of the same distributions;
* ``events(n, ...)``: JSON lines in time order (a few nulls so quality has work);
* ``arrow_batches(n, ...)``: the same events as Arrow IPC stream messages.

Numbers are rounded to 4 decimals, as feature values usually are (amounts, rates).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson

from drift.batch import encode_arrow

MODEL = "bench-model"
NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
CATEGORIES = [f"c{i:02d}" for i in range(12)]
START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def config_text(cohorts: int = 10, window: str = "5m", quality: bool = True) -> str:
    """The benchmark's drift.yaml (reference at ``reference.parquet`` next to it)."""
    numeric = "\n".join(f"      {name}: {{type: numeric}}" for name in NUMERIC)
    categorical = "\n".join(f"      {name}: {{type: categorical}}" for name in CATEGORICAL)
    detectors = ["      - psi: {features: \"*\", bins: 10, warn: 0.1, alert: 0.25}"]
    if quality:
        detectors.append("      - quality: {}")
    return f"""version: 1
events:
  max_future: 100000d
baselines:
  dir: baselines
tickets:
  store: sqlite:///drift-tickets.db
metrics:
  max_cohorts: {max(cohorts, 1000)}
models:
  - name: {MODEL}
    cohort: [tenant]
    window: {{size: {window}, allowed_lateness: 30s}}
    reference: {{parquet: reference.parquet}}
    features:
{numeric}
{categorical}
    detectors:
{chr(10).join(detectors)}
"""


def write_reference(folder: Path, rows: int = 100_000, seed: int = 1) -> Path:
    """The reference Parquet file: the same distributions as :func:`events` without drift."""
    from connectors.files import write_parquet

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {name: _numeric(rng, j, rows) for j, name in enumerate(NUMERIC)}
    for name in CATEGORICAL:
        columns[name] = [CATEGORIES[i] for i in rng.integers(0, len(CATEGORIES), rows)]
    path = folder / "reference.parquet"
    write_parquet(path, columns)
    return path


def _numeric(rng: np.random.Generator, j: int, n: int) -> Any:
    return np.round(rng.normal(10.0 * j, 1.0 + j / 10, n), 4)


def records(n: int, cohorts: int = 10, seed: int = 2, rate_per_s: float = 1000.0,
            null_rate: float = 0.002) -> Iterator[dict[str, Any]]:
    """``n`` events in time order, ``rate_per_s`` events per second of event time."""
    rng = np.random.default_rng(seed)
    chunk = 10_000
    done = 0
    while done < n:
        size = min(chunk, n - done)
        numeric = np.stack([_numeric(rng, j, size) for j in range(len(NUMERIC))], axis=1)
        cats = rng.integers(0, len(CATEGORIES), (size, len(CATEGORICAL)))
        tenants = rng.integers(0, cohorts, size)
        nulls = rng.random((size, len(NUMERIC))) < null_rate
        for k in range(size):
            i = done + k
            features: dict[str, Any] = {
                name: (None if nulls[k, j] else float(numeric[k, j])) for j, name in enumerate(NUMERIC)}
            features.update({name: CATEGORIES[cats[k, j]] for j, name in enumerate(CATEGORICAL)})
            ts = START + timedelta(seconds=i / rate_per_s)
            yield {
                "event_id": f"ev-{i}", "ts": ts.isoformat().replace("+00:00", "Z"), "model": MODEL,
                "model_version": "v1", "tenant": f"tenant-{tenants[k]:05d}", "features": features,
            }
        done += size


def events(n: int, **kwargs: Any) -> list[bytes]:
    """The events as JSON lines."""
    return [orjson.dumps(r) for r in records(n, **kwargs)]


def arrow_batches(n: int, batch: int = 10_000, **kwargs: Any) -> list[bytes]:
    """The events as Arrow IPC stream messages of ``batch`` events each."""
    out: list[bytes] = []
    pending: list[dict[str, Any]] = []
    for record in records(n, **kwargs):
        pending.append(record)
        if len(pending) == batch:
            out.append(encode_arrow(pending))
            pending = []
    if pending:
        out.append(encode_arrow(pending))
    return out


def prepare(folder: Path, cohorts: int = 10, reference_rows: int = 100_000, quality: bool = True) -> Path:
    """Write drift.yaml and the reference into ``folder``; return the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    write_reference(folder, reference_rows)
    path = folder / "drift.yaml"
    path.write_text(config_text(cohorts, quality=quality), encoding="utf-8")
    return path


def machine() -> dict[str, Any]:
    """Where a benchmark ran."""
    import os
    import platform

    import pyarrow

    return {
        "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
        "numpy": np.__version__, "pyarrow": pyarrow.__version__,
    }
