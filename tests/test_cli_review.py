"""`drift review`, `drift tickets move/show` and `drift audit verify` on a real SQLite store."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from drift.cli import main
from drift.config import ImpactConfig
from drift.findings import Cohort, Finding, Severity, Window
from drift.tickets import TicketStore

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
COHORT = Cohort("credit-risk", (("tenant", "acme"),))


def write_config(folder: Path, bootstrap: str) -> Path:
    path = folder / "drift.yaml"
    path.write_text(
        "version: 1\n"
        f"kafka: {{bootstrap: '{bootstrap}', retrain_topic: retrain-test}}\n"
        "models:\n"
        "  - name: credit-risk\n"
        "    features: {age: {type: numeric}}\n"
        "tickets: {store: 'sqlite:///./tickets.db'}\n",
        encoding="utf-8",
    )
    return path


def seed(folder: Path, approvals: int = 2) -> None:
    finding = Finding("psi", COHORT, Window(T0, T0 + timedelta(minutes=5)), "age", 0.4, Severity.ALERT,
                      0.1, 0.25, 900, 5000, "reference")
    with TicketStore.open(folder / "tickets.db") as store:
        store.record(finding, action="human_review", approvals=approvals, impact=ImpactConfig(tier="high"))
        store.record(Finding("quality.null_rate", COHORT, Window(T0, T0 + timedelta(minutes=5)), "income",
                             0.3, Severity.ALERT, 0.02, 0.05, 900, 5000, "config"))


def cli(*args: str) -> tuple[int, str, str]:
    """Run ``drift ARGS``; ``--reviewer``/``--requester``/``--by NAME`` become ``DRIFT_REVIEWER=NAME``."""
    rest, env = list(args), {"DRIFT_REVIEWER": "operator"}
    for option in ("--reviewer", "--requester", "--by"):
        if option in rest:
            i = rest.index(option)
            env["DRIFT_REVIEWER"] = rest[i + 1]
            del rest[i:i + 2]
    result = CliRunner().invoke(main, rest, env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def config(tmp_path: Path) -> str:
    # Nothing listens on port 9: publishing fails fast and the request stays in the outbox.
    path = write_config(tmp_path, "127.0.0.1:9")
    seed(tmp_path)
    return str(path)


def test_review_flow_with_dual_control(config: str) -> None:
    code, out, _ = cli("review", "list", "--config", config)
    assert code == 0 and "DRIFT-1" in out and "0/2" in out and "DRIFT-2" not in out

    code, _, err = cli("review", "approve", "DRIFT-1", "--reviewer", "drift", "--config", config)
    assert code == 1 and "'drift' is the stream job's identity" in err and "cannot approve" in err

    code, out, _ = cli("review", "approve", "DRIFT-1", "--reviewer", "alice", "--config", config)
    assert code == 0 and "1 more approval(s) needed" in out
    code, _, err = cli("review", "approve", "DRIFT-1", "--reviewer", "alice", "--config", config)
    assert code == 1 and "already approved" in err

    code, out, err = cli("review", "approve", "DRIFT-1", "--reviewer", "bob", "--config", config)
    assert code == 0, err
    assert "retraining request DRIFT-1/review-1 written to the outbox" in out
    assert "kept in the store's outbox" in err

    code, out, _ = cli("review", "list", "--config", config, "--json")
    assert json.loads(out) == []
    code, out, _ = cli("tickets", "show", "DRIFT-1", "--config", config, "--json")
    shown = json.loads(out)
    assert shown["status"] == "approved"
    assert [r["reviewer"] for r in shown["context"]["reviews"]] == ["alice", "bob"]
    assert [h["action"] for h in shown["history"]][-3:] == ["approval", "status", "retrain_requested"]


def test_requester_named_on_the_command_line_cannot_approve(config: str) -> None:
    code, out, _ = cli("review", "request", "DRIFT-2", "--requester", "carol", "--approvals", "1",
                       "--config", config)
    assert code == 0 and "requested by carol" in out
    code, _, err = cli("review", "approve", "DRIFT-2", "--reviewer", "carol", "--config", config)
    assert code == 1 and "cannot approve" in err
    code, out, _ = cli("review", "reject", "DRIFT-2", "--reviewer", "dave", "--comment", "known outage",
                       "--config", config)
    assert code == 0 and "rejected by dave" in out


def test_tickets_move_enforces_the_lifecycle(config: str) -> None:
    code, _, err = cli("tickets", "move", "DRIFT-1", "in_progress", "--by", "bob", "--config", config)
    assert code == 1 and "cannot move DRIFT-1 from pending_review to in_progress" in err
    code, out, _ = cli("tickets", "move", "DRIFT-2", "in_progress", "--by", "bob", "--config", config)
    assert code == 0 and "DRIFT-2: in_progress" in out


def test_audit_verify_exit_status(config: str, tmp_path: Path) -> None:
    cli("review", "approve", "DRIFT-1", "--reviewer", "alice", "--config", config)
    code, out, _ = cli("audit", "verify", "--config", config)
    assert code == 0 and "audit log intact: 3 entries" in out

    conn = sqlite3.connect(tmp_path / "tickets.db")
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 3")
    conn.commit()
    conn.close()
    code, out, err = cli("audit", "verify", "--config", config)
    assert code == 1 and "audit entry 3 was edited" in err
    code, out, _ = cli("audit", "verify", "--config", config, "--json")
    assert code == 1 and json.loads(out)["entry_id"] == 3


@pytest.mark.kafka
def test_approval_publishes_the_retraining_request(tmp_path: Path, kafka_bootstrap: str, kafka_topics) -> None:  # type: ignore[no-untyped-def]
    from confluent_kafka import Consumer

    topic = kafka_topics("retrain")
    path = tmp_path / "drift.yaml"
    write_config(tmp_path, kafka_bootstrap)
    path.write_text(path.read_text().replace("retrain-test", topic), encoding="utf-8")
    seed(tmp_path, approvals=1)
    code, out, err = cli("review", "approve", "DRIFT-1", "--reviewer", "alice", "--config", str(path))
    assert code == 0, err
    assert f"published to {topic}" in out
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "t", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        message = None
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None
        request = json.loads(message.value())
        assert message.key() == b"DRIFT-1/review-1"
        assert request["approved_by"] == ["alice"] and request["ticket"]["status"] == "approved"
        actions = [c["action"] for c in request["context"]["countermeasures"]]
        assert "retrain on recent data for this cohort" in actions
    finally:
        consumer.close()
    with TicketStore.open(tmp_path / "tickets.db") as store:
        assert store.retrain_requests(pending_only=True) == []
