"""`drift.api` against the commands it wraps: the same documents, tables that hold the same
values as the objects, review actions on a real SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from drift import api
from drift.config import Config
from drift.errors import ConfigError, ReviewError, TicketStoreError
from drift.reference import NumericProfile, load_reference
from drift.tickets import TicketStatus


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Config, api.Run]:
    """The demo written once, replayed once into the config's own store."""
    folder = tmp_path_factory.mktemp("api")
    config = api.load_config(api.write_demo(folder))
    run = api.replay(config, folder / "events.jsonl", store=config.tickets.store)
    return folder, config, run


def _drift(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drift.cli", *args], capture_output=True, text=True,
                          timeout=180, check=False, cwd=cwd)


def test_replay_gives_the_document_drift_replay_prints(workspace: tuple[Path, Config, api.Run]) -> None:
    folder, _, run = workspace
    proc = _drift("replay", "--config", str(folder / "drift.yaml"), "--events", str(folder / "events.jsonl"),
                  "--json", "--all-findings")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    printed.pop("dlq_samples")
    ours = run.to_dict(all_findings=True)

    def without_clock(document: dict[str, Any]) -> dict[str, Any]:
        # Ticket events carry the store's wall-clock times, and tickets opened in one window
        # are numbered in the order the flow emits them; everything else is event time.
        return {**document, "tickets": sorted(
            (t["kind"], t["ticket"]["detector"], t["ticket"]["cohort_key"], t["ticket"]["feature"] or "",
             t["ticket"]["status"], t["ticket"]["occurrences"], t["ticket"]["worst_value"])
            for t in document["tickets"])}

    assert without_clock(ours) == without_clock(printed)
    assert ours["events"] == run.n_events == 8309


def test_findings_table_holds_every_finding_as_the_objects_say(workspace: tuple[Path, Config, api.Run]) -> None:
    _, _, run = workspace
    table = run.findings_table()
    assert table.schema == api.FINDINGS_SCHEMA
    assert table.num_rows == len(run.findings) == run.to_dict()["findings_total"]
    for row, finding in zip(table.to_pylist(), run.findings):
        document = finding.to_dict()
        assert row["cohort_key"] == document["cohort_key"]
        assert dict(row["cohort"]) == {k: v for k, v in document["cohort"].items() if k != "model"}
        assert row["window_start"] == finding.window.start and row["window_end"] == finding.window.end
        for name in ("model", "detector", "feature", "severity", "value", "warn", "alert", "p_value", "q_value",
                     "n_current", "n_reference", "baseline", "skipped", "fingerprint"):
            assert row[name] == document[name], name
        assert json.loads(row["evidence"]).keys() == document["evidence"].keys()
    alerts = run.findings_table(at_least="alert")
    assert alerts.num_rows == sum(f.severity.value == "alert" for f in run.findings) > 0
    assert set(alerts.column("severity").to_pylist()) == {"alert"}
    warn_or_worse = run.findings_table(at_least="warn")
    assert warn_or_worse.num_rows == len(run.to_dict()["findings"])


def test_tickets_and_their_table_match_the_store(workspace: tuple[Path, Config, api.Run]) -> None:
    _, config, run = workspace
    stored = api.tickets(config)
    assert [t.id for t in run.tickets] == [t.id for t in stored] == [f"DRIFT-{i}" for i in range(1, 6)]
    assert {t.id: t.occurrences for t in run.tickets} == {t.id: t.occurrences for t in stored}
    table = api.tickets_table(stored)
    assert table.schema == api.TICKETS_SCHEMA and table.num_rows == 5
    rows = {r["id"]: r for r in table.to_pylist()}
    for ticket in stored:
        row = rows[ticket.id]
        assert (row["status"], row["detector"], row["feature"], row["occurrences"], row["worst_value"]) == (
            ticket.status.value, ticket.detector, ticket.feature, ticket.occurrences, ticket.worst_value)
        assert row["first_window_start"] == ticket.first_window_start
        assert dict(row["cohort"]) == {k: v for k, v in ticket.cohort.items() if k != "model"}
    assert [t.detector for t in api.tickets(config, status="pending_review")] == ["embedding"]
    skew = next(t for t in stored if t.detector == "skew.value")
    assert api.ticket(config, skew.id) == skew
    with pytest.raises(TicketStoreError, match="DRIFT-99"):
        api.ticket(config, "DRIFT-99")
    with pytest.raises(ValueError):
        api.tickets(config, status="opened")


def test_a_replay_without_a_store_keeps_no_tickets(tmp_path: Path, workspace: tuple[Path, Config, api.Run]) -> None:
    folder, _, _ = workspace
    config_path = tmp_path / "drift.yaml"
    config_path.write_text((folder / "drift.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    for name in ("reference.parquet", "doc-reference.parquet"):
        (tmp_path / name).symlink_to(folder / name)
    run = api.replay(config_path, folder / "events.jsonl")
    assert len(run.tickets) == 5
    assert not (tmp_path / "drift-tickets.db").exists()


def test_review_through_the_api_follows_the_review_rules(tmp_path: Path) -> None:
    config = api.load_config(api.write_demo(tmp_path))
    store = f"sqlite:///{tmp_path / 'kept.db'}"
    run = api.replay(config, tmp_path / "events.jsonl", store=store)
    ids = {(t.detector, t.feature): t.id for t in run.tickets}
    embedding, income, country = ids["embedding", "embedding"], ids["psi", "income"], ids["psi", "country"]
    assert [p.ticket.id for p in api.review_queue(config, store=store)] == [embedding]
    assert api.review_queue(config) == []  # the config's own store was not written
    first = api.approve(config, embedding, reviewer="alice", store=store)
    assert (first.ticket.status, first.approved_by, first.approvals_missing, first.retrain_request) == (
        TicketStatus.PENDING_REVIEW, ["alice"], 1, None)
    with pytest.raises(ReviewError):
        api.approve(config, embedding, reviewer="alice", store=store)  # one person approves once
    second = api.approve(config, embedding, reviewer="bob", comment="retrain on the new topic", store=store)
    assert second.ticket.status is TicketStatus.APPROVED and second.approvals_missing == 0
    assert second.retrain_request is not None and second.retrain_request.ticket_id == embedding
    # Open tickets: acknowledged, sent to review by one person, rejected by another.
    assert api.move_ticket(config, income, "in_progress", by="carol", store=store).status is TicketStatus.IN_PROGRESS
    requested = api.request_review(config, country, requester="carol", approvals=1, store=store)
    assert requested.status is TicketStatus.PENDING_REVIEW and requested.requester == "carol"
    with pytest.raises(ReviewError):
        api.approve(config, country, reviewer="carol", store=store)  # the requester cannot approve
    rejected = api.reject(config, country, reviewer="dave", comment="seasonal, expected", store=store)
    assert rejected.status is TicketStatus.REJECTED
    # The command line reads the same store; the config's own is still empty.
    proc = _drift("tickets", "list", "--config", str(tmp_path / "drift.yaml"), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout) == []
    listed = subprocess.run(
        [sys.executable, "-c", "import sys, json; from drift import api; "
         f"print(json.dumps({{t.id: t.status.value for t in api.tickets(sys.argv[1], store={store!r})}}))",
         str(tmp_path / "drift.yaml")], capture_output=True, text=True, timeout=60, check=True)
    statuses = json.loads(listed.stdout)
    assert (statuses[embedding], statuses[income], statuses[country]) == ("approved", "in_progress", "rejected")


def test_build_reference_saves_what_the_run_then_reads(tmp_path: Path) -> None:
    config = api.load_config(api.write_demo(tmp_path))
    profile = api.build_reference(config, "doc-classifier", save=True)
    assert profile.n_rows > 0 and set(profile.features) == {"n_tokens", "language"}
    stored = sorted(p.name for p in (tmp_path / "baselines").iterdir())
    assert any(name.startswith("doc-classifier") and name.endswith(".npy") for name in stored)
    again = api.build_reference(str(tmp_path / "drift.yaml"), "doc-classifier", tmp_path / "doc-reference.parquet")
    stored_profile = load_reference(tmp_path / "baselines", "doc-classifier")
    edges = [p.features["n_tokens"].edges for p in (profile, again, stored_profile)
             if isinstance(p.features["n_tokens"], NumericProfile)]
    assert len(edges) == 3 and edges[0] == edges[1] == edges[2]


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: api.build_reference(c, "no-such-model"), "model 'no-such-model' is not in the config"),
    (lambda c: api.replay(c, "events.jsonl", store="mysql://db"), "store 'mysql://db'"),
    (lambda c: api.backtest(c, "events.jsonl", baseline_features=["income"]), "--baseline-feature 'income'"),
])
def test_errors_name_what_was_wrong(tmp_path: Path, call: Any, message: str) -> None:
    config = api.load_config(api.write_demo(tmp_path))
    with pytest.raises(ConfigError) as caught:
        call(config)
    assert message in str(caught.value)


def test_importing_the_api_loads_no_dataflow_or_kafka() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, drift.api; "
         "print(sorted(m for m in ('bytewax', 'confluent_kafka', 'flows', 'connectors') if m in sys.modules))"],
        capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[]"


def test_tables_of_nothing_have_the_schema() -> None:
    assert api.findings_table([]).schema == api.FINDINGS_SCHEMA
    assert isinstance(api.tickets_table([]), pa.Table) and api.tickets_table([]).num_rows == 0
