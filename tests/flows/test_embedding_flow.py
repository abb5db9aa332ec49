"""Embedding drift through the whole flow: decoding, per-window reservoirs, reference
embeddings from Parquet, scoring at window close, findings and tickets."""

from __future__ import annotations

import base64
import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bytewax.testing import TestingSource, cluster_main, run_main

from connectors.files import write_jsonl, write_parquet
from connectors.memory import ListSink
from connectors.reference import read_embeddings
from drift.backend import BackendError
from drift.config import Config, load_config
from drift.errors import BaselineError, ReferenceDataError
from drift.events import RawMessage
from drift.findings import Severity
from drift.reference import embeddings_path, load_embeddings
from flows.pipeline import Outputs, build_flow
from flows.runner import load_profiles, run_file

DIM = 8
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SHIFT_AT = START + timedelta(minutes=20)
WINDOW = timedelta(minutes=10)
N_PER_WINDOW = 120
"""Events per tenant and window."""

CONFIG = """\
version: 1
models:
  - name: docs
    cohort: [tenant]
    window: {size: 10m, allowed_lateness: 1m}
    reference: {parquet: docs.parquet}
    features:
      length: {type: numeric}
    detectors:
      - embedding: {field: vec, dim: 8, sample: 200, permutations: 200, min_samples: 30, seed: 3, device: DEVICE}
      - embedding: {field: vec, dim: 8, method: knn, sample: 100, min_samples: 30, device: DEVICE}
routing:
  - when: {severity: alert}
    action: ticket
tickets: {store: "sqlite:///./tickets.db"}
baselines: {dir: baselines}
"""


def _reference(rng: np.random.Generator, n: int = 1500) -> np.ndarray:
    return rng.normal(0.0, 1.0, (n, DIM)).astype(np.float32)


def _events(rng: np.random.Generator) -> list[bytes]:
    """Tenants a and b over 40 minutes; from SHIFT_AT on, b's embeddings move along one direction."""
    direction = np.zeros(DIM)
    direction[2] = 1.0
    lines = []
    n = 4 * 2 * N_PER_WINDOW
    offsets = np.sort(rng.uniform(0, 40 * 60, n))
    for i, offset in enumerate(offsets):
        ts = START + timedelta(seconds=float(offset))
        tenant = "ab"[i % 2]
        shifted = tenant == "b" and ts >= SHIFT_AT
        vector = (rng.normal(0.0, 1.0, DIM) + (1.5 * direction if shifted else 0.0)).astype(np.float32)
        vec: Any = (vector.tolist() if i % 3 else
                    {"dtype": "float32", "b64": base64.b64encode(vector.astype("<f4").tobytes()).decode()})
        lines.append(orjson.dumps({
            "event_id": f"{tenant}-{i}{'-moved' if shifted else ''}", "ts": ts.isoformat(), "model": "docs",
            "tenant": tenant, "features": {"length": float(rng.integers(10, 500))}, "vec": vec,
        }))
    # Unusable embeddings go to the DLQ; an event without one is kept but not sampled.
    at = (START + timedelta(seconds=float(offsets[49]))).isoformat()  # in time with the stream
    body = {"ts": at, "model": "docs", "tenant": "a", "features": {"length": 10.0}}
    lines[50:50] = [  # arriving while their window is open
        orjson.dumps({**body, "event_id": "bad-dim", "vec": [0.0] * (DIM - 1)}),
        orjson.dumps({**body, "event_id": "bad-b64", "vec": {"dtype": "float32", "b64": "%%%"}}),
        orjson.dumps({**body, "event_id": "no-vec"}),
    ]
    return lines


def _workspace(tmp_path: Path, device: str = "cpu", fixed_size: bool = True) -> Config:
    rng = np.random.default_rng(42)
    reference = _reference(rng)
    columns: dict[str, Any] = {"length": rng.integers(10, 500, len(reference)).astype(float)}
    if fixed_size:
        columns["vec"] = reference
        write_parquet(tmp_path / "docs.parquet", columns)
    else:  # list<double>: the layout pandas and most loggers write
        pq.write_table(pa.table({**columns, "vec": [row.tolist() for row in reference.astype(np.float64)]}),
                       tmp_path / "docs.parquet")
    write_jsonl(tmp_path / "events.jsonl", _events(rng))
    (tmp_path / "drift.yaml").write_text(CONFIG.replace("DEVICE", device), encoding="utf-8")
    return load_config(tmp_path / "drift.yaml")


@pytest.mark.parametrize("fixed_size", [True, False], ids=["fixed-size-list", "list"])
def test_only_the_shifted_cohort_alerts_and_names_the_moved_events(tmp_path: Path, fixed_size: bool) -> None:
    config = _workspace(tmp_path, fixed_size=fixed_size)
    result = run_file(config, tmp_path / "events.jsonl")

    assert sorted((d.reason.value, orjson.loads(d.value or b"{}")["event_id"]) for d in result.dlq) == [
        ("bad_embedding", "bad-b64"), ("wrong_dimension", "bad-dim"),
    ]
    findings = [f for f in result.findings if f.detector == "embedding"]
    # Two detectors x two tenants x four windows, none skipped.
    assert len(findings) == 16 and all(f.skipped is None for f in findings)
    # Alerts (p < 0.01) for the moved cohort's windows only; a drift-free window may warn
    # (p < 0.05) about once in twenty, so warnings are not asserted on.
    alerts = {(f.cohort.key, f.window.start, f.evidence["method"]) for f in findings if f.severity is Severity.ALERT}
    shifted = {START + 2 * WINDOW, START + 3 * WINDOW}
    assert alerts == {("docs|tenant=b", start, method) for start in shifted for method in ("mmd", "knn")}
    n_events = {(w.cohort.key, w.window.start): w.n_events for w in result.windows}
    for finding in findings:
        tenant = dict(finding.cohort.labels)["tenant"]
        expected_missing = 1 if (tenant, finding.window.start) == ("a", START) else 0
        assert finding.evidence["n_without_embedding"] == expected_missing
        # Every embedding of the window was offered to the reservoir; n counts those tested.
        assert finding.n_current == n_events[(finding.cohort.key, finding.window.start)] - expected_missing
        assert finding.evidence["n"] == min(finding.n_current, 100 if finding.evidence["method"] == "knn" else 200)
        assert finding.n_reference == 1500
        if finding.severity is not Severity.ALERT:
            continue
        farthest = [row["event_id"] for row in finding.evidence["farthest"]]
        assert len(farthest) == 5 and all(e.endswith("-moved") for e in farthest)
        (advice,) = finding.evidence["countermeasures"]
        assert advice["action"].startswith("inspect new content clusters") and advice["event_ids"] == farthest

    # Tickets (routing: alerts only) for the moved cohort only; both detectors share the
    # name and feature, so their findings update one ticket.
    assert all(("countermeasures" in f.evidence) == (f.severity is not Severity.OK) for f in findings)
    tickets = [t for t in result.tickets if t.ticket.detector == "embedding"]
    assert {t.ticket.cohort_key for t in tickets} == {"docs|tenant=b"}
    assert tickets[0].kind == "opened"
    (advice,) = tickets[-1].context["countermeasures"]
    assert "inspect new content clusters" in advice["action"] and all(e.endswith("-moved") for e in advice["event_ids"])

    # The reference embeddings were stored as .npy (no pickle) and are read back on the next start.
    stored = embeddings_path(config.resolve(config.baselines.dir), "docs", "vec")
    assert stored.exists() and np.load(stored, allow_pickle=False).shape == (1500, DIM)


def _run_with_workers(config: Config, lines: list[bytes], workers: int) -> list[tuple[Any, ...]]:
    profiles = load_profiles(config)
    raw = [RawMessage(value=line, topic="t", partition=0, offset=i) for i, line in enumerate(lines)]
    outputs = Outputs(findings=ListSink(), tickets=ListSink(), dlq=ListSink(), windows=ListSink())
    flow = build_flow(config, profiles, TestingSource(raw, batch_size=64), outputs,
                      now=lambda: START + timedelta(hours=2))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, addresses=[], proc_id=0, worker_count_per_proc=workers)
    return sorted(
        (f.cohort.key, f.window.start, f.evidence.get("method"), f.severity.value, f.n_current)
        for f in outputs.findings.items  # type: ignore[attr-defined]
    )


def test_one_and_two_workers_agree(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    assert _run_with_workers(config, lines, 1) == _run_with_workers(config, lines, 2)


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="cupy is installed here")
def test_device_gpu_without_cupy_fails_at_start_with_the_install_hint(tmp_path: Path) -> None:
    config = _workspace(tmp_path, device="gpu")
    with pytest.raises(BackendError, match=r"device: gpu needs cupy.*pip install 'drift\[gpu\]'"):
        load_profiles(config)
    # Also when the flow is built from profiles loaded elsewhere.
    with pytest.raises(BackendError, match="pip install"):
        build_flow(config, load_profiles(_workspace(tmp_path / "cpu", device="cpu")),
                   TestingSource([]), Outputs(ListSink(), ListSink(), ListSink()))


def test_stored_embeddings_win_and_are_checked(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    profiles = load_profiles(config)
    directory = config.resolve(config.baselines.dir)
    assert np.array_equal(profiles["docs"].embeddings["vec"], load_embeddings(directory, "docs", "vec", DIM))
    (tmp_path / "docs.parquet").unlink()  # the stored profile and embeddings are enough now
    again = load_profiles(config)
    assert np.array_equal(again["docs"].embeddings["vec"], profiles["docs"].embeddings["vec"])
    with pytest.raises(BaselineError, match=r"must be \(n, 16\) float32; got \(1500, 8\)"):
        load_embeddings(directory, "docs", "vec", 16)
    with pytest.raises(BaselineError, match="no reference embeddings for model 'docs'"):
        load_embeddings(directory, "docs", "other", DIM)
    # An object array would need pickle to load: refused.
    np.save(embeddings_path(directory, "docs", "vec"), np.array([{"a": 1}], dtype=object))
    with pytest.raises(BaselineError, match="not a valid embeddings file"):
        load_embeddings(directory, "docs", "vec", DIM)


def test_too_few_reference_embeddings_fail_at_start(tmp_path: Path) -> None:
    write_parquet(tmp_path / "docs.parquet", {"length": np.ones(10), "vec": np.zeros((10, DIM), np.float32)})
    (tmp_path / "drift.yaml").write_text(CONFIG.replace("DEVICE", "cpu"), encoding="utf-8")
    config = load_config(tmp_path / "drift.yaml")
    with pytest.raises(ReferenceDataError, match=r"'docs' \(vec\): reference needs at least min_samples=30"):
        build_flow(config, load_profiles(config), TestingSource([]), Outputs(ListSink(), ListSink(), ListSink()))


def _parquet(tmp_path: Path, column: Any, name: str = "vec") -> Path:
    path = tmp_path / "ref.parquet"
    pq.write_table(pa.table({name: column, "other": list(range(len(column)))}), path)
    return path


@pytest.mark.parametrize(
    ("column", "message"),
    [
        pytest.param(pa.array([[0.0, 1.0], [1.0, 2.0, 3.0]]), "row 1 has 3", id="ragged"),
        pytest.param(pa.array([[0.0, 1.0], None]), "1 null rows; first at row 1", id="null-row"),
        pytest.param(pa.array([[0.0, None], [1.0, 2.0]]), "null values inside rows", id="null-value"),
        pytest.param(pa.array([[0.0, float("nan")], [1.0, 2.0]]), "row 0 is not finite", id="nan"),
        pytest.param(pa.array([[0.0, 1e300], [1.0, 2.0]]), "row 0 is not finite (as float32)", id="float32-overflow"),
        pytest.param(pa.array(["a", "b"]), "must be a (fixed-size) list of numbers; got string", id="not-a-list"),
        pytest.param(pa.array([["a", "b"]]), "list of numbers; got list<", id="list-of-text"),
    ],
)
def test_bad_reference_embeddings_are_refused(tmp_path: Path, column: Any, message: str) -> None:
    with pytest.raises(ReferenceDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_embeddings(_parquet(tmp_path, column), "vec", 2)


def test_reference_embeddings_layouts_and_missing_column(tmp_path: Path) -> None:
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), 3)
    assert np.array_equal(read_embeddings(_parquet(tmp_path, fixed), "vec", 3), rows)
    integers = pa.array([[int(v) for v in row] for row in rows])
    out = read_embeddings(_parquet(tmp_path, integers), "vec", 3)
    assert out.dtype == np.float32 and np.array_equal(out, rows)
    with pytest.raises(ReferenceDataError, match="no embedding column 'emb'; columns: \\['other', 'vec'\\]"):
        read_embeddings(_parquet(tmp_path, fixed), "emb", 3)
    with pytest.raises(ReferenceDataError, match="not found"):
        read_embeddings(tmp_path / "nope.parquet", "vec", 3)
