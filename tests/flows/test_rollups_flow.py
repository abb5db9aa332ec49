"""Rollups through the whole flow: a drift spread over many small cohorts, found at the rollup."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.files import write_jsonl
from connectors.ticket_store import open_store
from drift.config import load_config
from flows.runner import run_file

T0 = datetime(2026, 11, 2, tzinfo=timezone.utc)
TENANTS = 60
PER_WINDOW = 40
"""Events of each tenant in each 1-hour window: too few for a shift of 0.4 sd (PSI about
0.15) to be significant in most tenants after the model window's false-discovery control."""

CONFIG = """version: 1
events: {max_future: 100000d}
baselines: {dir: baselines}
tickets: {store: sqlite:///tickets.db}
models:
  - name: m
    cohort: [tenant, region]
    rollups: [[model], [region]]
    window: {size: 1h, allowed_lateness: 1m}
    reference: {parquet: reference.parquet}
    features:
      x: {type: numeric}
      y: {type: numeric}
    detectors:
      - psi: {features: "*", bins: 10, warn: 0.1, alert: 0.12, min_samples: 30}
routing:
  - when: {severity: alert}
    action: ticket
"""


def _write(folder: Path, windows: int = 3, shift_from: int = 1, shift: float = 0.4) -> None:
    rng = np.random.default_rng(4)
    pq.write_table(pa.table({"x": rng.normal(size=20_000), "y": rng.normal(size=20_000)}), folder / "reference.parquet")
    lines = []
    for w in range(windows):
        for k in range(TENANTS * PER_WINDOW):
            tenant = k % TENANTS
            x = rng.normal() + (shift if w >= shift_from else 0.0)
            ts = T0 + timedelta(hours=w, seconds=3599 * k / (TENANTS * PER_WINDOW))
            lines.append(orjson.dumps({
                "event_id": f"e{w}-{k}", "ts": ts.isoformat(), "model": "m", "tenant": f"t{tenant:02d}",
                "region": "eu" if tenant % 2 else "us", "features": {"x": round(x, 4), "y": round(rng.normal(), 4)},
            }))
    write_jsonl(folder / "events.jsonl", lines)
    (folder / "drift.yaml").write_text(CONFIG, encoding="utf-8")


def test_a_shift_of_every_small_cohort_is_found_at_the_rollup_which_names_its_contributors(tmp_path: Path) -> None:
    _write(tmp_path)
    config = load_config(tmp_path / "drift.yaml")
    result = run_file(config, tmp_path / "events.jsonl")
    loud = [f for f in result.findings if f.severity.value != "ok" and f.detector == "psi"]
    rollup = [f for f in loud if f.cohort.key == "m|tenant=*|region=*"]
    # The whole model: x in both shifted windows, y never.
    assert sorted((f.window.start, f.feature) for f in rollup) == [
        (T0 + timedelta(hours=1), "x"), (T0 + timedelta(hours=2), "x")]
    finding = rollup[0]
    assert finding.n_current == TENANTS * PER_WINDOW
    assert finding.evidence["n_members"] == TENANTS
    named = finding.evidence["contributors"]
    assert len(named) == 5 and all(c["n"] == PER_WINDOW and c["cohort"].startswith("m|tenant=t") for c in named)
    assert named == sorted(named, key=lambda c: -c["share"])
    # Every tenant contributes about 1/60 of the rollup's PSI.
    assert all(0.0 < c["share"] < 0.1 for c in named)
    # No finding before the shift, none for y, and hardly any in a single small tenant.
    assert all(f.window.start >= T0 + timedelta(hours=1) and f.feature == "x" for f in loud)
    assert len([f for f in loud if "*" not in f.cohort.key]) <= 3
    # The region rollups (30 tenants each) are cohorts too.
    assert {f.cohort.key for f in loud if "*" in f.cohort.key} == {
        "m|tenant=*|region=*", "m|tenant=*|region=eu", "m|tenant=*|region=us"}
    # The ticket of the model rollup: its traffic is its members', its finding names them.
    store = open_store(config)
    [ticket] = [t for t in store.live() if t.cohort_key == "m|tenant=*|region=*"]
    context = store.context(ticket.id)
    assert context["traffic"]["n_events"] == TENANTS * PER_WINDOW
    assert context["traffic"]["share"] == 1.0
    assert context["findings"][0]["evidence"]["contributors"][0]["cohort"].startswith("m|tenant=t")
    # The cohorts' own traffic: every window of every tenant, and no rollup among them.
    assert context["traffic"]["n_cohorts"] == TENANTS
