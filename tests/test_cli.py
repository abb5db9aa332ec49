"""The command line as a user runs it: baseline build, replay, tickets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from connectors.files import write_jsonl, write_parquet
from drift import demo
from drift.reference import load_embeddings, load_reference


def drift(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drift.cli", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd, check=False)


def _workspace(tmp_path: Path) -> Path:
    config = tmp_path / "drift.yaml"
    config.write_text(demo.config_text(), encoding="utf-8")
    demo.write_references(tmp_path)
    write_jsonl(tmp_path / "events.jsonl", demo.events().lines)
    return config


def test_baseline_build_stores_reference_bins(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    proc = drift("baseline", "build", "--config", str(config), "--model", "credit-risk",
                 "--reference", str(tmp_path / "reference.parquet"))
    assert proc.returncode == 0, proc.stderr
    profile = load_reference(tmp_path / "baselines", "credit-risk")
    income = np.asarray(demo.reference_columns()["income"])
    expected = np.unique(np.quantile(income, np.linspace(0, 1, 11)[1:-1]))
    assert np.allclose(profile.features["income"].edges, expected)
    assert profile.features["country"].categories[0] == "DE"
    assert abs(sum(profile.features["country"].shares) - 1) < 1e-9


def test_baseline_build_stores_reference_embeddings_as_npy(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    proc = drift("baseline", "build", "--config", str(config), "--model", demo.DOC_MODEL,
                 "--reference", str(tmp_path / demo.DOC_REFERENCE_FILE))
    assert proc.returncode == 0, proc.stderr
    assert f"embedding: {demo.N_DOC_REFERENCE} reference embeddings of dim {demo.DOC_DIM}" in proc.stdout
    stored = load_embeddings(tmp_path / "baselines", demo.DOC_MODEL, "embedding", demo.DOC_DIM)
    assert np.array_equal(stored, demo.doc_reference_columns()["embedding"])
    # The credit-risk reference has no embedding column: building the text model from it fails clearly.
    wrong = drift("baseline", "build", "--config", str(config), "--model", demo.DOC_MODEL,
                  "--reference", str(tmp_path / "reference.parquet"))
    assert wrong.returncode == 1 and "no column 'n_tokens'" in wrong.stderr


def test_baseline_build_errors_are_clear(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    unknown = drift("baseline", "build", "--config", str(config), "--model", "fraud",
                    "--reference", str(tmp_path / "reference.parquet"))
    assert unknown.returncode == 2 and "'fraud'" in unknown.stderr and "credit-risk" in unknown.stderr
    write_parquet(tmp_path / "narrow.parquet", {"age": [30.0, 40.0]})
    missing = drift("baseline", "build", "--config", str(config), "--model", "credit-risk",
                    "--reference", str(tmp_path / "narrow.parquet"))
    assert missing.returncode == 1 and "no column 'income'" in missing.stderr
    absent = drift("baseline", "build", "--config", str(config), "--model", "credit-risk",
                   "--reference", str(tmp_path / "nope.parquet"))
    assert absent.returncode == 1 and "not found" in absent.stderr


def test_replay_then_tickets_list_and_show(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    replay = drift("replay", "--config", str(config), "--events", str(tmp_path / "events.jsonl"), "--json",
                   "--store", f"sqlite:///{tmp_path / 'drift-tickets.db'}")
    assert replay.returncode == 0, replay.stderr
    document = json.loads(replay.stdout)
    # 12 credit-risk and 12 doc-classifier cohort windows, and 2 credit-limit ones (one per region).
    assert document["windows"] == 26 and document["dlq"]["total"] == 9
    assert document["feature_events"] == len(demo.events().feature_lines)
    assert {f["model"] for f in document["findings"]} == {"credit-risk", demo.DOC_MODEL, demo.SKEW_MODEL}
    listed = drift("tickets", "list", "--config", str(config), "--json")
    tickets = json.loads(listed.stdout)
    assert {t["feature"] for t in tickets if t["detector"] == "psi"} == set(demo.SHIFTED_FEATURES)
    assert {(t["detector"], t["feature"], t["cohort"]["tenant"]) for t in tickets
            if t["detector"].startswith("quality")} == {("quality.null_rate", demo.NULL_FEATURE, demo.NULL_TENANT)}
    assert {(t["model"], t["detector"], t["cohort"]["tenant"]) for t in tickets if t["model"] == demo.DOC_MODEL} == {
        (demo.DOC_MODEL, "embedding", demo.DOC_SHIFTED_TENANT)
    }
    human = drift("tickets", "list", "--config", str(config))
    assert "DRIFT-1" in human.stdout and "globex" in human.stdout
    shown = drift("tickets", "show", tickets[0]["id"], "--config", str(config), "--json")
    assert json.loads(shown.stdout)["id"] == tickets[0]["id"]
    missing = drift("tickets", "show", "DRIFT-999", "--config", str(config))
    assert missing.returncode == 1 and "DRIFT-999" in missing.stderr
    bad_status = drift("tickets", "list", "--config", str(config), "--status", "closed")
    assert bad_status.returncode == 2 and "pending_review" in bad_status.stderr


def test_replay_refuses_an_unknown_file_type(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    (tmp_path / "events.csv").write_text("a,b\n")
    proc = drift("replay", "--config", str(config), "--events", str(tmp_path / "events.csv"))
    assert proc.returncode == 1 and ".jsonl or .parquet" in proc.stderr


# ------------------------------------------------------------------- the event schema as a user meets it

_SMALL_CONFIG = """version: 1
models:
  - name: credit-risk
    cohort: [tenant]
    window: {{size: 30m, allowed_lateness: 2m}}
    reference: {{parquet: reference.parquet}}
{extra}    features:
      age: {{type: numeric}}
      income: {{type: numeric}}
      country: {{type: categorical}}
    detectors:
      - psi: {{features: "*"}}
"""


def _small_workspace(tmp_path: Path, extra: str = "") -> Path:
    """One model (credit-risk) on the demo's reference: a replay of a few seconds."""
    config = tmp_path / "drift.yaml"
    config.write_text(_SMALL_CONFIG.format(extra=extra), encoding="utf-8")
    demo.write_references(tmp_path)
    return config


def _credit_risk_events(n: int = 300) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for line in demo.events().lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the demo's broken lines
        if isinstance(event, dict) and event.get("model") == "credit-risk" and str(event.get("ts", "")).startswith("2026-"):
            out.append(event)
        if len(out) == n:
            break
    return out


def _epoch_seconds(event: dict[str, object]) -> dict[str, object]:
    from datetime import datetime

    return {**event, "ts": int(datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp())}


def test_replay_of_epoch_seconds_names_the_unit_and_ts_unit_reads_them(tmp_path: Path) -> None:
    events = [_epoch_seconds(e) for e in _credit_risk_events()]
    write_jsonl(tmp_path / "seconds.jsonl", [json.dumps(e).encode() for e in events])
    config = _small_workspace(tmp_path)
    proc = drift("replay", "--config", str(config), "--events", str(tmp_path / "seconds.jsonl"))
    assert proc.returncode == 3, proc.stderr
    assert f"dead letters {len(events)} (bad_timestamp={len(events)})" in proc.stdout
    sample = next(line for line in proc.stderr.splitlines() if line.startswith("bad_timestamp"))
    assert sample.split()[:4] == ["bad_timestamp", "line", "1", "ts"]
    assert "as epoch seconds it would be 2026-11-02T" in sample and "set ts_unit: s" in sample
    assert "no event of" in proc.stderr
    fixed = _small_workspace(tmp_path, extra="    ts_unit: s\n")
    proc = drift("replay", "--config", str(fixed), "--events", str(tmp_path / "seconds.jsonl"), "--json")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["decoded"] == len(events) and document["dlq"]["total"] == 0 and document["dlq_samples"] == []


def test_replay_of_events_without_ts_exits_3_with_samples_and_writes_every_dead_letter(tmp_path: Path) -> None:
    events = [{k: v for k, v in e.items() if k != "ts"} for e in _credit_risk_events(50)]
    write_jsonl(tmp_path / "no-ts.jsonl", [json.dumps(e).encode() for e in events])
    config = _small_workspace(tmp_path)
    out = tmp_path / "dlq.jsonl"
    proc = drift("replay", "--config", str(config), "--events", str(tmp_path / "no-ts.jsonl"), "--json",
                 "--dlq-out", str(out))
    assert proc.returncode == 3, proc.stderr
    document = json.loads(proc.stdout)
    assert document["dlq"] == {"total": 50, "by_reason": {"missing_field": 50}}
    assert [(s["reason"], s["line"], s["field"], s["detail"]) for s in document["dlq_samples"]] == [
        ("missing_field", n, "ts", "ts is required") for n in (1, 2, 3)]
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(w["line"] for w in written) == list(range(1, 51))
    assert {(w["reason"], w["field"]) for w in written} == {("missing_field", "ts")}
    assert json.loads(written[0]["value"])["model"] == "credit-risk"  # the original line, whole


def test_replay_with_some_dead_letters_exits_0(tmp_path: Path) -> None:
    events = _credit_risk_events(50)
    lines = [json.dumps(e).encode() for e in events] + [b"not json", b'{"model": "credit-risk"}']
    write_jsonl(tmp_path / "mixed.jsonl", lines)
    proc = drift("replay", "--config", str(_small_workspace(tmp_path)), "--events", str(tmp_path / "mixed.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert "invalid_json   line 51  -      not JSON" in proc.stderr
    assert "missing_field  line 52  ts     ts is required" in proc.stderr


def test_replay_counts_nan_in_parquet_as_non_finite(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    events = _credit_risk_events(100)
    for event in events[:7]:
        event["features"] = {**event["features"], "income": float("nan")}  # type: ignore[dict-item]
    pq.write_table(pa.Table.from_pylist(events), tmp_path / "events.parquet")
    proc = drift("replay", "--config", str(_small_workspace(tmp_path)), "--events", str(tmp_path / "events.parquet"),
                 "--json")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["dlq"]["by_reason"] == {"non_finite": 7} and document["decoded"] == 93
    assert document["dlq_samples"][0]["field"] == "features.income"


def test_replay_of_a_damaged_parquet_file_is_one_line(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pylist(_credit_risk_events(300) * 20), path, row_group_size=1000)
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 500] = b"\x00" * 500
    path.write_bytes(bytes(data))
    config = _small_workspace(tmp_path)
    for events in (path, tmp_path / "cut.parquet"):
        if events.name == "cut.parquet":
            events.write_bytes(bytes(data[: len(data) // 3]))
        proc = drift("replay", "--config", str(config), "--events", str(events))
        assert proc.returncode == 1
        lines = [line for line in proc.stderr.splitlines() if not line.startswith(("building", "reading"))]
        assert len(lines) == 1 and lines[0].startswith(f"drift: error: events file {events} "), proc.stderr


def test_baseline_build_takes_the_reference_from_the_config(tmp_path: Path) -> None:
    config = _small_workspace(tmp_path)
    proc = drift("baseline", "build", "--config", str(config), "--model", "credit-risk")
    assert proc.returncode == 0, proc.stderr
    assert load_reference(tmp_path / "drift-baselines", "credit-risk").source == str(tmp_path / "reference.parquet")
    config.write_text(config.read_text().replace("    reference: {parquet: reference.parquet}\n", ""))
    proc = drift("baseline", "build", "--config", str(config), "--model", "credit-risk")
    assert proc.returncode == 2 and "has no reference.parquet" in proc.stderr and "--reference" in proc.stderr


def test_schema_prints_the_bundled_json_schemas() -> None:
    from drift.schemas import schema

    for args, kind in (((), "inference"), (("inference",), "inference"), (("feature",), "feature")):
        proc = drift("schema", *args)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == schema(kind)
    assert drift("schema", "training").returncode == 2


def test_backtest_shows_dead_letter_samples_and_exits_3_when_nothing_decodes(tmp_path: Path) -> None:
    events = [_epoch_seconds(e) for e in _credit_risk_events(40)]
    write_jsonl(tmp_path / "seconds.jsonl", [json.dumps(e).encode() for e in events])
    config = _small_workspace(tmp_path)
    out = tmp_path / "dlq.jsonl"
    proc = drift("backtest", "--config", str(config), "--events", str(tmp_path / "seconds.jsonl"),
                 "--report", str(tmp_path / "report.html"), "--json", "--dlq-out", str(out))
    assert proc.returncode == 3, proc.stderr
    document = json.loads(proc.stdout)
    assert [s["line"] for s in document["dlq_samples"]] == [1, 2, 3]
    assert {s["field"] for s in document["dlq_samples"]} == {"ts"}
    assert len(out.read_text().splitlines()) == 40 and (tmp_path / "report.html").is_file()
    human = drift("backtest", "--config", str(config), "--events", str(tmp_path / "seconds.jsonl"),
                  "--report", str(tmp_path / "report.html"))
    assert human.returncode == 3 and "bad_timestamp  line 1  ts" in human.stderr


def _replay_on_a_terminal(workspace: Path) -> tuple[int, str]:
    """``drift replay`` with stderr on a pseudo-terminal (stdout a pipe): exit status and what the terminal showed."""
    import os
    import pty
    import select

    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "drift.cli", "replay", "--config", str(workspace / "drift.yaml"),
         "--events", str(workspace / "events.jsonl")],
        cwd=workspace, stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL,
    )
    os.close(terminal)
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        shown += chunk
    proc.wait(timeout=120)
    os.close(controller)
    assert proc.stdout is not None
    proc.stdout.read()
    return proc.returncode, shown.decode("utf-8", "replace")


def test_replay_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    workspace = tmp_path
    _workspace(workspace)
    code, shown = _replay_on_a_terminal(workspace)
    assert code == 0
    assert "replay [" in shown and "events" in shown
    quiet = drift("replay", "--config", str(workspace / "drift.yaml"), "--events", str(workspace / "events.jsonl"))
    assert quiet.returncode == 0 and "replay [" not in quiet.stderr


def test_replay_tables_show_thresholds_p_values_detectors_and_say_when_they_are_cut(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    proc = drift("replay", "--config", str(config), "--events", str(tmp_path / "events.jsonl"), "--all-findings")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    header = next(line for line in out.splitlines() if line.startswith("severity"))
    assert header.split() == ["severity", "detector", "cohort", "feature", "value", "threshold", "p", "/", "q", "window"]
    assert "findings at warn or alert: 12 of 246, all listed" in out
    assert "15 of 246 shown; --json lists them all" in out
    # Without --all-findings: the 12 at warn or alert, all shown. The embedding test's p-value
    # is beside its MMD², and a PSI row has p and q.
    short = drift("replay", "--config", str(config), "--events", str(tmp_path / "events.jsonl")).stdout
    assert "shown;" not in short
    assert any(line.startswith("alert") and " embedding " in line and "p=" in line for line in short.splitlines())
    assert any(line.startswith("alert") and " psi " in line and " q=" in line for line in short.splitlines())
    ticket_header = next(line for line in out.splitlines() if line.startswith("event "))
    assert ticket_header.split() == ["event", "ticket", "status", "detector", "cohort", "feature", "windows", "worst"]


def test_drift_config_names_the_config_of_every_command(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    assert drift("replay", "--config", str(config), "--events", str(tmp_path / "events.jsonl"),
                 "--store", f"sqlite:///{tmp_path / 'drift-tickets.db'}").returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**__import__("os").environ, "DRIFT_CONFIG": str(config)}
    proc = subprocess.run([sys.executable, "-m", "drift.cli", "tickets", "list", "--json"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)
    without = drift("tickets", "list", cwd=elsewhere)
    assert without.returncode != 0 and "drift.yaml" in without.stderr


def test_tickets_show_reads_as_a_summary_and_whole_with_json(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    assert drift("replay", "--config", str(config), "--events", str(tmp_path / "events.jsonl"),
                 "--store", f"sqlite:///{tmp_path / 'drift-tickets.db'}").returncode == 0
    tickets = json.loads(drift("tickets", "list", "--config", str(config), "--json").stdout)
    psi = next(t for t in tickets if t["detector"] == "psi")
    shown = drift("tickets", "show", psi["id"], "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"{psi['id']}  open  alert  psi of {psi['feature']}")
    labels = {line.split()[0] for line in lines[1:]}
    assert {"where", "since", "how", "traffic", "try", "reproduce", "runbook"} <= labels
    assert "tenant=globex" in shown.stdout and " q=" in shown.stdout
    whole = json.loads(drift("tickets", "show", psi["id"], "--config", str(config), "--json").stdout)
    assert whole["id"] == psi["id"] and {"context", "history"} <= set(whole)
    review = next(t for t in tickets if t["status"] == "pending_review")
    assert "approval(s) needed" in drift("tickets", "show", review["id"], "--config", str(config)).stdout
