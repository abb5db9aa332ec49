"""Tamper-evident audit for real: an insider with write access to the store cannot rewrite the
log (HMAC), drop its newest entries (published head), or change tickets, reviews or retraining
requests behind it (replay). The same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from drift.tickets.audit import AuditKey
from drift.cli import main
from drift.config import ImpactConfig
from drift.findings import Cohort, Finding, Severity, Window
from drift.tickets import GENESIS_HASH, TicketStatus, TicketStore, audit_hash

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
ACME = Cohort("credit-risk", (("tenant", "acme"),))
KEY = AuditKey("k1", b"k" * 32)
NEW_KEY = AuditKey("k2", b"n" * 40)


def finding(i: int, feature: str = "age", value: float = 0.4) -> Finding:
    window = Window(T0 + i * timedelta(minutes=5), T0 + (i + 1) * timedelta(minutes=5))
    return Finding("psi", ACME, window, feature, value, Severity.ALERT, 0.1, 0.25, 900, 5000, "reference")


def busy(store: TicketStore) -> None:
    store.record(finding(0), action="human_review", approvals=2, impact=ImpactConfig(tier="high"))
    store.record(finding(1, value=0.6), action="human_review", approvals=2)
    store.record(finding(0, feature="income"))
    store.approve("DRIFT-1", "alice")
    store.approve("DRIFT-1", "bob")
    store.set_status("DRIFT-2", TicketStatus.RESOLVED, actor="carol")


@pytest.fixture
def open_store(open_any_store: Any, tmp_path: Path) -> Any:
    def factory(**kwargs: Any) -> TicketStore:
        kwargs.setdefault("audit_key", KEY)
        kwargs.setdefault("head_file", tmp_path / "audit-head")
        store: TicketStore = open_any_store(**kwargs)
        return store
    return factory


def unguarded(store: TicketStore) -> Any:
    with store._db.write("tamper with") as tx:
        if store._db.dialect == "sqlite":
            tx.run("DROP TRIGGER IF EXISTS audit_log_no_update")
            tx.run("DROP TRIGGER IF EXISTS audit_log_no_delete")
        else:
            tx.run("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    return store._db.write("tamper with")


def rewrite_chain(store: TicketStore, entry_id: int, **changes: Any) -> None:
    """What an insider without the key does: edit an entry and recompute every hash after it."""
    with unguarded(store) as tx:
        rows = tx.all("SELECT * FROM audit_log ORDER BY id")
        prev = GENESIS_HASH
        for row in rows:
            if int(row["id"]) == entry_id:
                row.update(changes)
            entry = {"id": int(row["id"]), "at": row["at"], "actor": row["actor"], "action": row["action"],
                     "ticket_id": row["ticket_id"], "detail": json.loads(row["detail"])}
            digest = audit_hash(prev, entry)
            tx.run("UPDATE audit_log SET actor = ?, detail = ?, prev_hash = ?, hash = ? WHERE id = ?",
                   (row["actor"], row["detail"], prev, digest, row["id"]))
            prev = digest


def test_an_intact_keyed_log_verifies_authenticated(open_store: Any) -> None:
    store = open_store()
    busy(store)
    report = store.verify_audit()
    assert report.ok, report.problem
    assert report.authenticated and report.n_authenticated == report.n_entries == report.n_published == 8
    assert all(e.key_id == "k1" and e.mac for e in store.audit_log())


def test_an_edited_entry_with_a_recomputed_chain_fails_the_mac(open_store: Any) -> None:
    store = open_store(head_file=None)
    busy(store)
    rewrite_chain(store, 4, actor="mallory")
    report = store.verify_audit()
    assert not report.ok and report.entry_id == 4 and "MAC does not match" in (report.problem or "")


def test_an_edited_entry_with_a_recomputed_chain_fails_the_head_without_a_key(open_store: Any) -> None:
    store = open_store(audit_key=None)
    busy(store)
    rewrite_chain(store, 4, actor="mallory")
    report = store.verify_audit()
    assert not report.ok and report.entry_id == 4 and "published head" in (report.problem or "")


def test_dropping_the_newest_entry_and_moving_the_pointer_back_is_seen(open_store: Any) -> None:
    store = open_store()
    busy(store)
    with unguarded(store) as tx:
        tx.run("DELETE FROM audit_log WHERE id = 8")
        tx.run("UPDATE tickets SET audit_id = 3, status = 'open', resolved_at = NULL WHERE seq = 2")
    report = store.verify_audit()
    assert not report.ok and report.entry_id == 8 and "published head" in (report.problem or "")


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (["UPDATE tickets SET status = 'approved' WHERE seq = 2"], "DRIFT-2 was edited outside drift: its status"),
        (["UPDATE tickets SET approvals_required = 3 WHERE seq = 2"], "its approvals_required"),
        (["UPDATE tickets SET requester = 'bob' WHERE seq = 1"], "its requester"),
        (["UPDATE tickets SET worst_value = 9.5 WHERE seq = 2"], "its worst_value"),
        (["INSERT INTO ticket_reviews (ticket_seq, round, reviewer, verdict, comment, at)"
          " VALUES (2, 1, 'mallory', 'approve', NULL, '2026-11-27T12:00:00+00:00')"], "a review row was written"),
        (["UPDATE ticket_reviews SET reviewer = 'dave' WHERE reviewer = 'bob'"], "has no matching audit entry"),
        (["INSERT INTO retrain_outbox (request_key, ticket_seq, created_at, payload)"
          " VALUES ('DRIFT-2/review-1', 2, '2026-11-27T12:00:00+00:00', '{}')"], "written into the outbox"),
        (["INSERT INTO tickets (fingerprint, status, action, model, cohort, cohort_key, detector, severity,"
          " first_window_start, last_window_end, opened_at, updated_at, occurrences, worst_value, last_value,"
          " last_finding) VALUES ('x', 'approved', 'ticket', 'm', '{}', 'm', 'psi', 'alert',"
          " '2026-11-27T10:00:00+00:00', '2026-11-27T10:05:00+00:00', '2026-11-27T10:05:00+00:00',"
          " '2026-11-27T10:05:00+00:00', 1, 1.0, 1.0, '{}')"], "DRIFT-3 has no audit entries"),
    ],
    ids=["status", "approvals", "requester", "worst", "fake-review", "renamed-review", "fake-request", "fake-ticket"],
)
def test_the_store_is_checked_against_a_replay_of_the_log(open_store: Any, tamper: list[str], message: str) -> None:
    store = open_store()
    busy(store)
    with store._db.write("tamper with") as tx:
        for statement in tamper:
            tx.run(statement)
    report = store.verify_audit()
    assert not report.ok and message in (report.problem or ""), report.problem


def test_a_rotated_key_still_verifies_the_entries_it_wrote(open_store: Any) -> None:
    store = open_store()
    busy(store)
    rotated = open_store(audit_key=NEW_KEY)
    rotated.record(finding(2), action="human_review")
    entries = rotated.audit_log()
    assert {e.key_id for e in entries} == {"k1", "k2"}
    assert rotated.verify_audit(keys={"k1": KEY.secret, "k2": NEW_KEY.secret}).authenticated
    partial = rotated.verify_audit(keys={"k2": NEW_KEY.secret})
    assert partial.ok and not partial.authenticated and partial.unchecked_key_ids == ("k1",)
    # An insider who drops the key cannot append unauthenticated entries after keyed ones.
    open_store(audit_key=None).set_status("DRIFT-1", TicketStatus.IN_PROGRESS, actor="carol")
    report = rotated.verify_audit(keys={"k1": KEY.secret, "k2": NEW_KEY.secret})
    assert not report.ok and "has no MAC" in (report.problem or "")


def test_verify_on_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "drift.yaml"
    config.write_text("version: 1\nmodels:\n  - name: credit-risk\n    features: {age: {type: numeric}}\n"
                      "tickets: {store: 'sqlite:///./tickets.db'}\n", encoding="utf-8")
    with TicketStore.open(tmp_path / "tickets.db", audit_key=None) as store:
        busy(store)
    plain = CliRunner().invoke(main, ["audit", "verify", "--config", str(config)], env={"DRIFT_AUDIT_KEY": ""})
    assert plain.exit_code == 0 and "8 written without a key" in plain.stdout
    assert "not authenticated" in plain.stderr and "tickets.db.audit-head (8 entries)" in plain.stdout
    strict = CliRunner().invoke(main, ["audit", "verify", "--require-key", "--config", str(config)],
                                env={"DRIFT_AUDIT_KEY": ""})
    assert strict.exit_code == 1

    keyed = tmp_path / "keyed"
    keyed.mkdir()
    (keyed / "drift.yaml").write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
    env = {"DRIFT_AUDIT_KEY": "s3cret-" + "x" * 32, "DRIFT_AUDIT_KEY_ID": "2026a"}
    with TicketStore.open(keyed / "tickets.db", audit_key=AuditKey("2026a", env["DRIFT_AUDIT_KEY"].encode())) as store:
        busy(store)
    good = CliRunner().invoke(main, ["audit", "verify", "--require-key", "--json", "--config",
                                     str(keyed / "drift.yaml")], env=env)
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout)["authenticated"] is True
    assert env["DRIFT_AUDIT_KEY"] not in good.output
    wrong = CliRunner().invoke(main, ["audit", "verify", "--config", str(keyed / "drift.yaml")],
                               env={**env, "DRIFT_AUDIT_KEY": "y" * 32})
    assert wrong.exit_code == 1 and "MAC does not match" in wrong.stderr
