"""Feature freshness through the whole dataflow, on one JSONL file with inference and feature events.

Two feature sets are materialised every 5 minutes from 08:00. ``orders`` stops after its
08:45 run and resumes at 09:40; ``customer_profile`` never stops. With 10-minute windows,
``max_lag: 30m`` and ``warn_lag: 20m`` the lag of ``orders`` at each window end is
(09:00) 15m ok, (09:10) 25m warn, (09:20) 35m, (09:30) 45m, (09:40) 55m alert, then 5m again.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson

from connectors.files import write_jsonl, write_parquet
from drift.config import load_config
from drift.findings import Severity
from flows.runner import run_file

START = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
END = START + timedelta(hours=2)
STOP, RESUME = START + timedelta(minutes=50), START + timedelta(minutes=100)

CONFIG = """\
version: 1
models:
  - name: credit-risk
    cohort: [tenant]
    window: {size: 10m, allowed_lateness: 1m}
    reference: {parquet: reference.parquet}
    features:
      age: {type: numeric}
    detectors:
      - freshness: {feature_set: customer_profile, max_lag: 30m, warn_lag: 20m}
      - freshness: {feature_set: orders, max_lag: 30m, warn_lag: 20m}
routing:
  - when: {severity: alert}
    action: ticket
tickets:
  store: sqlite:///./drift-tickets.db
baselines:
  dir: baselines
"""


def _z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _lines() -> list[bytes]:
    timed: list[tuple[datetime, bytes]] = []
    t = START
    i = 0
    while t < END:
        for minute_offset in (0, 30):
            ts = t + timedelta(seconds=minute_offset)
            timed.append((ts, orjson.dumps({
                "ts": _z(ts), "model": "credit-risk", "event_id": f"e{i}-{minute_offset}",
                "tenant": "acme" if minute_offset else "globex", "features": {"age": 30 + i % 40},
            })))
        if t.minute % 5 == 0:
            for feature_set in ("customer_profile", "orders"):
                if feature_set == "orders" and STOP <= t < RESUME:
                    continue
                timed.append((t, orjson.dumps({
                    "ts": _z(t - timedelta(minutes=2)), "feature_set": feature_set, "entity_id": f"c{i}",
                    "values": {"age": 41}, "materialized_at": _z(t),
                })))
        t += timedelta(minutes=1)
        i += 1
    timed.sort(key=lambda item: item[0])
    return [line for _, line in timed]


def test_a_feature_set_going_stale_alerts_in_those_windows_only(tmp_path: Path) -> None:
    (tmp_path / "drift.yaml").write_text(CONFIG, encoding="utf-8")
    write_parquet(tmp_path / "reference.parquet", {"age": np.arange(18, 90, dtype=float)})
    write_jsonl(tmp_path / "events.jsonl", _lines())
    result = run_file(load_config(tmp_path / "drift.yaml"), tmp_path / "events.jsonl")

    fresh = [f for f in result.findings if f.detector == "freshness"]
    by_set = {s: sorted((f for f in fresh if f.feature == s), key=lambda f: f.window.start)
              for s in ("customer_profile", "orders")}
    # One finding per (model, feature set) and 10-minute window, for the model as a whole.
    assert all(len(found) == 12 for found in by_set.values())
    assert {f.cohort.key for f in fresh} == {"credit-risk"}
    assert all(f.severity is Severity.OK and f.value == 300.0 for f in by_set["customer_profile"])

    lags = [(f.window.end - START, f.value / 60, f.severity.value) for f in by_set["orders"]]
    expected = {
        timedelta(minutes=60): (15, "ok"), timedelta(minutes=70): (25, "warn"),
        timedelta(minutes=80): (35, "alert"), timedelta(minutes=90): (45, "alert"),
        timedelta(minutes=100): (55, "alert"),
    }
    for end, minutes, severity in lags:
        assert (minutes, severity) == expected.get(end, (5, "ok")), (end, minutes, severity)
    stale = [f for f in by_set["orders"] if f.evidence["n_feature_events"] == 0]
    assert [f.window.start for f in stale] == [START + timedelta(minutes=m) for m in (50, 60, 70, 80, 90)]
    assert all(f.evidence["newest_materialized_at"] == _z(START + timedelta(minutes=45)).replace("Z", "+00:00")
               for f in stale)
    assert all(f.n_current == 20 for f in fresh)  # the model's traffic in each window

    # Alerts reach the ticket path, with the materialisation countermeasure.
    opened = [t for t in result.tickets if t.ticket.detector == "freshness" and t.kind == "opened"]
    assert [t.ticket.feature for t in opened] == ["orders"]
    advice = [c["action"] for c in opened[0].context["countermeasures"]]
    assert "check the feature materialisation jobs" in advice
    assert result.dlq == []


def test_without_freshness_or_value_skew_feature_lines_are_not_read_as_features(tmp_path: Path) -> None:
    (tmp_path / "drift.yaml").write_text(CONFIG.replace("      - freshness: {feature_set: orders, max_lag: 30m, warn_lag: 20m}\n", "")
                                         .replace("      - freshness: {feature_set: customer_profile, max_lag: 30m, warn_lag: 20m}\n",
                                                  "      - psi: {}\n"), encoding="utf-8")
    write_parquet(tmp_path / "reference.parquet", {"age": np.arange(18, 90, dtype=float)})
    write_jsonl(tmp_path / "events.jsonl", _lines())
    result = run_file(load_config(tmp_path / "drift.yaml"), tmp_path / "events.jsonl")
    assert not [f for f in result.findings if f.detector == "freshness"]
    # Not split off: the feature lines reach the inference decoder and are refused there.
    assert result.dlq and all(d.step_id != "decode_feature" for d in result.dlq)
