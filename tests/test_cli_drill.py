"""``drift drill``: a drift injected into a history, run through the real flow, time to detect and tickets."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from connectors.files import write_jsonl, write_parquet
from drift import demo
from drift.cli import main
from drift.config import load_config
from flows.drill import DrillError, DrillSpec, duration_text, inject, parse_cohort

START = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)
WINDOW = timedelta(minutes=10)
N_WINDOWS = 6
PER_WINDOW = 400
TENANTS = ("a", "b")
CATEGORIES = ("A", "B", "C", "D")
CATEGORY_SHARES = (0.4, 0.3, 0.2, 0.1)
MEAN, STD = 50.0, 10.0

CONFIG = """\
version: 1
models:
  - name: scoring
    cohort: [tenant]
    window: {size: 10m, allowed_lateness: 1m}
    reference: {parquet: reference.parquet}
    features:
      x: {type: numeric}
      c: {type: categorical}
    detectors:
      - psi: {features: "*", bins: 10, warn: 0.1, alert: 0.25}
    policy: {consecutive_windows: 1, cooldown: 1h}
routing:
  - when: {severity: alert}
    action: ticket
tickets:
  store: sqlite:///./tickets.db
baselines:
  dir: baselines
"""


def _workspace(tmp_path: Path) -> tuple[Path, Path]:
    """A one-model config, its reference, and six 10-minute windows of two tenants drawn from it."""
    rng = np.random.default_rng(7)
    (tmp_path / "drift.yaml").write_text(CONFIG, encoding="utf-8")
    write_parquet(tmp_path / "reference.parquet", {
        "x": rng.normal(MEAN, STD, 20_000),
        "c": list(rng.choice(CATEGORIES, 20_000, p=CATEGORY_SHARES)),
    })
    lines = []
    for window in range(N_WINDOWS):
        for k in range(PER_WINDOW * len(TENANTS)):
            ts = START + window * WINDOW + (k + 0.5) * WINDOW / (PER_WINDOW * len(TENANTS))
            lines.append(orjson.dumps({
                "event_id": f"e-{window}-{k}", "ts": ts.isoformat().replace("+00:00", "Z"), "model": "scoring",
                "tenant": TENANTS[k % len(TENANTS)],
                "features": {"x": round(float(rng.normal(MEAN, STD)), 6),
                             "c": str(rng.choice(CATEGORIES, p=CATEGORY_SHARES))},
            }))
    write_jsonl(tmp_path / "events.jsonl", lines)
    return tmp_path / "drift.yaml", tmp_path / "events.jsonl"


def _drill(config: Path, events: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["drill", "--config", str(config), "--events", str(events), *args])
    return result.exit_code, result.stdout, result.stderr


def _json(config: Path, events: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = _drill(config, events, *args, "--json")
    assert code in (0, 1), err
    document: dict[str, Any] = json.loads(out)
    return code, document


def test_a_numeric_drill_in_one_cohort_is_detected_with_a_ticket(tmp_path: Path) -> None:
    config, events = _workspace(tmp_path)
    code, document = _json(config, events, "--at", "+30m", "--cohort", "tenant=a", "--feature", "x", "--shift", "1.5")
    assert code == 0
    injection = document["injection"]
    assert injection["at"] == (START + 3 * WINDOW).isoformat()
    assert injection["cohorts"] == ["scoring|tenant=a"]
    assert injection["n_events"] == injection["n_events_changed"] == 3 * PER_WINDOW
    [detection] = document["detections"]
    assert (detection["cohort_key"], detection["feature"], detection["detected"]) == ("scoring|tenant=a", "x", True)
    # The drift starts with a window: that window alerts, one window and 10 minutes after --at.
    alert = detection["first_alert"]
    assert alert["window_start"] == (START + 3 * WINDOW).isoformat()
    assert (alert["n_windows"], alert["time_to_detect"], alert["time_to_detect_s"]) == (1, "10m", 600.0)
    assert alert["detectors"] == ["psi"] and alert["value"] >= 0.25
    assert detection["first_warn"]["window_start"] == alert["window_start"]
    ticket = detection["ticket"]
    assert ticket["kind"] == "opened" and ticket["action"] == "ticket" and ticket["status"] == "open"
    assert ticket["id"].startswith("DRIFT-") and ticket["window_end"] == alert["window_end"]
    assert ticket["n_windows"] == 1 and ticket["time_to_detect"] == "10m"
    # Tenant b and feature c were not drilled and stay quiet: no false alarm.
    assert document["elsewhere"] == {"findings": [], "tickets": []}
    assert document["undetected"] == []
    assert document["run"]["decoded"] == N_WINDOWS * PER_WINDOW * len(TENANTS)
    assert document["run"]["dlq"]["total"] == 0


def test_the_time_to_detect_counts_from_a_drift_inside_a_window(tmp_path: Path) -> None:
    config, events = _workspace(tmp_path)
    at = START + 2 * WINDOW + timedelta(minutes=5)
    code, out, _ = _drill(config, events, "--at", at.isoformat(), "--cohort", "tenant=b", "--feature", "x",
                          "--shift", "4")
    assert code == 0
    assert "scoring|tenant=b" in out and "DRIFT-1 opened -> ticket (open)" in out
    # Half of window 2 is drilled: it alerts already, 5 minutes after --at.
    assert "00:20-00:30 (1 w, 5m)" in out
    code, document = _json(config, events, "--at", at.isoformat(), "--cohort", "tenant=b", "--feature", "x",
                           "--shift", "0.6")
    # 0.6 std over half a window stays below alert (PSI about 0.08), a whole window passes it (about 0.34).
    assert code == 0
    alert = document["detections"][0]["first_alert"]
    assert (alert["n_windows"], alert["time_to_detect"]) == (2, "15m")


def test_a_drill_with_no_shift_detects_nothing_and_exits_1(tmp_path: Path) -> None:
    config, events = _workspace(tmp_path)
    code, out, err = _drill(config, events, "--at", "+20m", "--feature", "x", "--feature", "c", "--shift", "0")
    assert code == 1
    assert "not detected at alert: 4" in out
    assert "4 of 4 drilled cohort feature(s) not detected at alert" in err
    code, document = _json(config, events, "--at", "+20m", "--feature", "x", "--shift", "0")
    assert code == 1 and document["detected"] is False
    assert document["injection"]["n_events_changed"] == 0
    assert {d["cohort_key"] for d in document["undetected"]} == {"scoring|tenant=a", "scoring|tenant=b"}
    assert all(d["first_warn"] is None and d["ticket"] is None for d in document["detections"])
    assert document["elsewhere"] == {"findings": [], "tickets": []}


def test_a_categorical_drill_replaces_a_share_by_the_rarest_category(tmp_path: Path) -> None:
    config, events = _workspace(tmp_path)
    code, document = _json(config, events, "--at", "+10m", "--cohort", "tenant=a", "--feature", "c",
                           "--shift", "0.5")
    assert code == 0
    [feature] = document["injection"]["features"]
    assert feature["replacement"] == "D"
    # Half of the values are drawn; those already D stay as they are (about 10%).
    assert feature["n_carried"] == 5 * PER_WINDOW
    assert 0.5 * 0.8 * 5 * PER_WINDOW < feature["n_changed"] < 0.5 * 0.95 * 5 * PER_WINDOW
    detection = document["detections"][0]
    assert detection["first_alert"]["n_windows"] == 1 and detection["ticket"]["time_to_detect"] == "10m"


def test_inject_shifts_by_reference_std_only_the_chosen_events(tmp_path: Path) -> None:
    config_path, events = _workspace(tmp_path)
    config = load_config(config_path)
    at = START + 4 * WINDOW
    spec = DrillSpec(model="scoring", at=at, features=("x", "c"), shift=0.5, cohorts=({"tenant": "a"},), seed=3)
    injection = inject(config, spec, events, tmp_path / "drilled.jsonl")
    before = [orjson.loads(line) for line in events.read_bytes().splitlines()]
    after = [orjson.loads(line) for line in (tmp_path / "drilled.jsonl").read_bytes().splitlines()]
    assert len(before) == len(after)
    reference = pq.read_table(tmp_path / "reference.parquet")
    std = float(np.std(reference.column("x").to_numpy()))  # population std, the oracle
    [x, c] = injection.features
    assert x.std == pytest.approx(std, rel=1e-12) and x.delta == pytest.approx(0.5 * std, rel=1e-12)
    counts = {k: list(reference.column("c").to_pylist()).count(k) for k in CATEGORIES}
    assert c.replacement == min(counts, key=lambda k: counts[k]) == "D"
    replaced = 0
    for old, new in zip(before, after):
        chosen = old["tenant"] == "a" and datetime.fromisoformat(old["ts"]) >= at
        assert {k: v for k, v in old.items() if k != "features"} == {k: v for k, v in new.items() if k != "features"}
        if not chosen:
            assert old == new
            continue
        assert new["features"]["x"] == pytest.approx(old["features"]["x"] + 0.5 * std, abs=1e-9)
        if new["features"]["c"] != old["features"]["c"]:
            assert new["features"]["c"] == "D"
            replaced += 1
    assert replaced == c.n_changed and injection.n_events == 2 * PER_WINDOW
    assert 0.3 * 2 * PER_WINDOW < replaced < 0.5 * 2 * PER_WINDOW
    # Seeded: the same spec writes the same bytes, another seed other draws.
    inject(config, spec, events, tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "drilled.jsonl").read_bytes()
    inject(config, DrillSpec(**{**spec.__dict__, "seed": 4}), events, tmp_path / "other.jsonl")
    assert (tmp_path / "other.jsonl").read_bytes() != (tmp_path / "drilled.jsonl").read_bytes()
    # --scale share: x * (1 + shift).
    share = DrillSpec(model="scoring", at=at, features=("x",), shift=0.25, scale="share")
    inject(config, share, events, tmp_path / "share.jsonl")
    scaled = [orjson.loads(line) for line in (tmp_path / "share.jsonl").read_bytes().splitlines()]
    for old, new in zip(before, scaled):
        factor = 1.25 if datetime.fromisoformat(old["ts"]) >= at else 1.0
        assert new["features"]["x"] == pytest.approx(old["features"]["x"] * factor, rel=1e-12)


def test_a_parquet_history_is_drilled_like_its_jsonl(tmp_path: Path) -> None:
    config, events = _workspace(tmp_path)
    rows = [orjson.loads(line) for line in events.read_bytes().splitlines()]
    write_parquet(tmp_path / "events.parquet", {
        "event_id": [r["event_id"] for r in rows],
        "ts": [datetime.fromisoformat(r["ts"]).replace(tzinfo=None) for r in rows],
        "model": [r["model"] for r in rows], "tenant": [r["tenant"] for r in rows],
        "features": [r["features"] for r in rows],
    })
    args = ("--at", "+30m", "--cohort", "tenant=a", "--feature", "x", "--shift", "1.5")
    _, from_jsonl = _json(config, events, *args)
    code, from_parquet = _json(config, tmp_path / "events.parquet", *args)
    assert code == 0
    assert from_parquet["detections"] == from_jsonl["detections"]
    assert from_parquet["injection"] == from_jsonl["injection"]


@pytest.mark.parametrize(("args", "message"), [
    (("--at", "2026-03-03T00:00:00Z", "--feature", "x", "--shift", "1"), "outside the history's time range"),
    (("--at", "2026-03-01T23:00:00Z", "--feature", "x", "--shift", "1"), "outside the history's time range"),
    (("--at", "+2h", "--feature", "x", "--shift", "1"), "outside the history's time range"),
    (("--at", "2026-03-02T00:30:00", "--feature", "x", "--shift", "1"), "--at needs a UTC offset"),
    (("--at", "soon", "--feature", "x", "--shift", "1"), "--at must be an RFC 3339 time"),
    (("--at", "+10m", "--feature", "y", "--shift", "1"), "--feature 'y' is not a feature of model 'scoring'"),
    (("--at", "+10m", "--cohort", "tenant=z", "--feature", "x", "--shift", "1"),
     "--cohort tenant=z matches no event of model 'scoring'"),
    (("--at", "+10m", "--cohort", "region=eu", "--feature", "x", "--shift", "1"),
     "--cohort label 'region' is not a cohort label of model 'scoring'"),
    (("--at", "+10m", "--cohort", "tenant", "--feature", "x", "--shift", "1"), "--cohort must be LABEL=VALUE"),
    (("--at", "+10m", "--feature", "c", "--shift", "1.5"), "between 0 and 1"),
    (("--at", "+10m", "--feature", "x", "--shift", "nan"), "--shift must be a finite number"),
    (("--model", "fraud", "--at", "+10m", "--feature", "x", "--shift", "1"), "--model 'fraud' is not a model"),
    (("--at", "+10m", "--feature", "x", "--shift", "1", "--store", "redis://x"), "--store"),
])
def test_usage_errors_exit_2_with_a_clear_message(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    config, events = _workspace(tmp_path)
    code, out, err = _drill(config, events, *args)
    assert code == 2, (out, err)
    # After the line that builds the reference profile, if any.
    assert "drift: error: " + message in err or ("drift: error: " in err and message in err.split("drift: error: ")[1])


def test_a_feature_no_drilled_event_carries_is_an_error(tmp_path: Path) -> None:
    config, events = _workspace(tmp_path)
    lines = [orjson.loads(line) for line in events.read_bytes().splitlines()]
    for line in lines:
        if line["tenant"] == "b":
            del line["features"]["c"]
    write_jsonl(events, [orjson.dumps(line) for line in lines])
    code, _, err = _drill(config, events, "--at", "+10m", "--cohort", "tenant=b", "--feature", "c", "--shift", "0.5")
    assert code == 2 and "--feature 'c': none of the" in err


def test_a_history_without_the_model_exits_3(tmp_path: Path) -> None:
    config, _ = _workspace(tmp_path)
    write_jsonl(tmp_path / "other.jsonl", [b'{"ts": "2026-03-02T00:00:00Z", "model": "other", "features": {}}'])
    code, _, err = _drill(config, tmp_path / "other.jsonl", "--at", "+0m", "--feature", "x", "--shift", "1")
    assert code == 3 and "no event of model 'scoring'" in err


def test_parse_cohort_and_duration_text() -> None:
    assert parse_cohort("tenant=acme, region=eu-west-1") == {"tenant": "acme", "region": "eu-west-1"}
    with pytest.raises(ValueError, match="twice"):
        parse_cohort("tenant=a,tenant=b")
    assert duration_text(timedelta(hours=1, minutes=5)) == "1h5m"
    assert duration_text(timedelta(0)) == "0s"
    assert issubclass(DrillError, Exception)


def test_a_drill_of_the_demo_history_as_docs_operations_tells_it(tmp_path: Path) -> None:
    (tmp_path / "drift.yaml").write_text(demo.config_text(), encoding="utf-8")
    demo.write_references(tmp_path)
    write_jsonl(tmp_path / "events.jsonl", demo.events().lines)
    base = [sys.executable, "-m", "drift.cli", "drill", "--config", str(tmp_path / "drift.yaml"),
            "--events", str(tmp_path / "events.jsonl"), "--model", "credit-risk", "--cohort", "tenant=acme", "--json"]
    proc = subprocess.run([*base, "--at", "2026-11-02T08:30:00Z", "--feature", "age", "--shift", "1"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    [age] = document["detections"]
    assert age["cohort_key"] == "credit-risk|model_version=3.2.0|tenant=acme|region=eu-west-1"
    assert (age["first_alert"]["n_windows"], age["first_alert"]["time_to_detect"]) == (1, "30m")
    assert round(age["first_alert"]["value"], 2) == 1.19
    assert (age["ticket"]["id"], age["ticket"]["action"]) == ("DRIFT-1", "ticket")
    # The demo's own drift (globex, from 09:30) is elsewhere: not drilled, but found all the same.
    assert {(f["cohort_key"].split("|")[2], f["feature"]) for f in document["elsewhere"]["findings"]
            if f["detector"] == "psi"} == {("tenant=globex", "income"), ("tenant=globex", "country")}
    proc = subprocess.run([*base, "--at", "+45m", "--feature", "country", "--shift", "0.3"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    [country] = json.loads(proc.stdout)["detections"]
    assert country["first_warn"]["n_windows"] == 1 and country["first_warn"]["severity"] == "warn"
    assert (country["first_alert"]["n_windows"], country["first_alert"]["time_to_detect"]) == (2, "45m")


def test_a_rollup_that_sums_a_drilled_cohort_is_not_a_false_alarm(tmp_path: Path) -> None:
    config, events = _workspace(tmp_path)
    config.write_text(CONFIG.replace("cohort: [tenant]", "cohort: [tenant, region]\n    rollups: [[region]]"),
                      encoding="utf-8")
    lines = [orjson.loads(line) for line in events.read_bytes().splitlines()]
    write_jsonl(events, [orjson.dumps({**line, "region": "eu"}) for line in lines])
    code, document = _json(config, events, "--at", "+30m", "--cohort", "tenant=a", "--feature", "x", "--shift", "2")
    assert code == 0
    assert document["injection"]["cohorts"] == ["scoring|tenant=a|region=eu"]
    # Half of the rollup's events moved by 2 standard deviations: it alerts too, as the drift summed.
    rollup = [f for f in document["elsewhere"]["findings"] if f["cohort_key"] == "scoring|tenant=*|region=eu"]
    assert rollup and {(f["feature"], f["relation"]) for f in rollup} == {("x", "rollup_of_drilled")}
    assert all(t["relation"] == "rollup_of_drilled" for t in document["elsewhere"]["tickets"])
    assert not [f for f in document["elsewhere"]["findings"] if f["relation"] == "other"]
