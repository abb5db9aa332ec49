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
    replay = drift("replay", "--config", str(config), "--events", str(tmp_path / "events.jsonl"), "--json")
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
    shown = drift("tickets", "show", tickets[0]["id"], "--config", str(config))
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
