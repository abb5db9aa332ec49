"""Reviewer identity and roles: who acts comes from the environment, names compare as people,
declared reviewers act within their roles (drift/identity.py, drift/tickets/review.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from drift.cli import main
from drift.config import ImpactConfig, load_config
from drift.errors import ConfigError, ReviewError
from drift.findings import Cohort, Finding, Severity, Window
from drift.identity import canonical, same_person
from drift.tickets import TicketStore

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
ACME = Cohort("credit-risk", (("tenant", "acme"),))

REVIEWERS = """review:
  reviewers:
    alice: {roles: [approve_retraining, resolve]}
    bob: {roles: [approve_retraining]}
    carol: {roles: [approve_retraining, approve_sensitive]}
    root: {roles: [admin]}
  sensitive_features: [income]
"""


def _finding(feature: str = "age") -> Finding:
    return Finding("psi", ACME, Window(T0, T0 + timedelta(minutes=5)), feature, 0.4, Severity.ALERT,
                   0.1, 0.25, 900, 5000, "reference")


def _folder(tmp_path: Path, review: str = "") -> str:
    path = tmp_path / "drift.yaml"
    path.write_text("version: 1\nkafka: {bootstrap: '127.0.0.1:9'}\nmodels:\n  - name: credit-risk\n"
                    "    features: {age: {type: numeric}, income: {type: numeric}}\n"
                    "tickets: {store: 'sqlite:///./tickets.db'}\n" + review, encoding="utf-8")
    with TicketStore.open(tmp_path / "tickets.db") as store:
        store.record(_finding("age"), action="human_review", approvals=2, impact=ImpactConfig(tier="high"))
        store.record(_finding("income"), action="human_review", approvals=1, impact=ImpactConfig(tier="high"))
    return str(path)


def cli(who: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"DRIFT_REVIEWER": who})
    return result.exit_code, result.stdout + result.stderr


# --- names compare as people -----------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [("Bob", "bob", True), ("ＡＬＩＣＥ", "alice", True), ("alicé", "alice", True),
     ("аӏісе", "alice", True),  # every letter Cyrillic: one script, and it looks like "alice"
     ("a1ice", "alice", True), ("b0b", "bob", True), ("alice", "alicia", False), ("bob", "rob", False)],
)
def test_same_person(a: str, b: str, same: bool) -> None:
    assert same_person(a, b) is same


@pytest.mark.parametrize("name", ["alіce", "pаypal", "a lice", "bob\x1b[2J", "", "  ", "bob\u202e"])
def test_ill_formed_or_mixed_script_names_are_refused(name: str) -> None:
    with pytest.raises(ReviewError):
        canonical(name)


def test_store_counts_one_person_once_whatever_the_spelling(tmp_path: Path) -> None:
    with TicketStore.open(tmp_path / "t.db") as store:
        store.record(_finding(), action="human_review", approvals=2)
        ticket = store.list()[0]
        store.set_status(ticket.id, "resolved")
        store.record(Finding("psi", ACME, Window(T0 + timedelta(hours=3), T0 + timedelta(hours=3, minutes=5)),
                             "age", 0.4, Severity.ALERT, 0.1, 0.25, 900, 5000, "reference"), action="ticket")
        store.request_review(ticket.id, "bob", approvals=2)
        with pytest.raises(ReviewError, match="requested the review"):
            store.approve(ticket.id, "Bob")
        store.approve(ticket.id, "alice")
        for alias in ("ALICE", "ａｌｉｃｅ", "аӏісе"):
            with pytest.raises(ReviewError, match="already approved"):
                store.approve(ticket.id, alias)
        with pytest.raises(ReviewError, match="mixes scripts"):
            store.approve(ticket.id, "alіce")
        assert store.get(ticket.id).status.value == "pending_review"
        assert [r.reviewer for r in store.reviews(ticket.id)] == ["alice"]


# --- the command line: identity from the environment ---------------------------------


def test_identity_comes_from_the_environment_and_naming_another_needs_admin(tmp_path: Path) -> None:
    config = _folder(tmp_path)
    code, out = cli("bob", "review", "approve", "DRIFT-1", "--reviewer", "alice", "--config", config)
    assert code == 1 and "acting for 'alice' needs --as-admin" in out
    code, out = cli("Bob", "review", "approve", "DRIFT-1", "--reviewer", "bob", "--config", config)
    assert code == 0, out  # naming yourself is fine
    code, out = cli("bob", "review", "approve", "DRIFT-1", "--config", config)
    assert code == 1 and "already approved" in out
    code, out = cli("alіce", "review", "approve", "DRIFT-1", "--config", config)
    assert code == 1 and "mixes scripts" in out
    code, out = cli("drift", "review", "approve", "DRIFT-1", "--config", config)
    assert code == 1 and "stream job's identity" in out
    # Without declared reviewers an administrator may act for anyone; the audit says who did.
    code, out = cli("ops", "review", "approve", "DRIFT-1", "--reviewer", "dave", "--as-admin", "--config", config)
    assert code == 0, out
    with TicketStore.open(tmp_path / "tickets.db") as store:
        approval = [e for e in store.audit_log("DRIFT-1") if e.action == "approval"][-1]
        assert approval.actor == "dave" and approval.detail["as_admin"] == "ops"
        assert store.get("DRIFT-1").status.value == "approved"


def test_declared_reviewers_act_within_their_roles(tmp_path: Path) -> None:
    config = _folder(tmp_path, REVIEWERS)
    code, out = cli("mallory", "review", "approve", "DRIFT-1", "--config", config)
    assert code == 1 and "'mallory' is not a declared reviewer" in out
    # income is a sensitive feature: approve_retraining is not enough.
    code, out = cli("alice", "review", "approve", "DRIFT-2", "--config", config)
    assert code == 1 and "needs the role 'approve_sensitive'" in out
    code, out = cli("alice", "review", "reject", "DRIFT-2", "--comment", "no", "--config", config)
    assert code == 1 and "approve_sensitive" in out
    code, out = cli("carol", "review", "approve", "DRIFT-2", "--config", config)
    assert code == 0, out
    # Acting for another needs the admin role, and the named person needs the action's role.
    code, out = cli("alice", "review", "approve", "DRIFT-1", "--reviewer", "bob", "--as-admin", "--config", config)
    assert code == 1 and "needs the role 'admin'" in out
    code, out = cli("root", "review", "approve", "DRIFT-1", "--reviewer", "mallory", "--as-admin", "--config", config)
    assert code == 1 and "not a declared reviewer" in out
    code, out = cli("root", "review", "approve", "DRIFT-1", "--reviewer", "BOB", "--as-admin", "--config", config)
    assert code == 0, out
    code, out = cli("alice", "review", "approve", "DRIFT-1", "--config", config)
    assert code == 0 and "retraining request DRIFT-1/review-1" in out
    # Moving tickets needs resolve.
    code, out = cli("bob", "tickets", "move", "DRIFT-1", "in_progress", "--config", config)
    assert code == 1 and "needs the role 'resolve'" in out
    code, out = cli("alice", "tickets", "move", "DRIFT-1", "in_progress", "--config", config)
    assert code == 0, out


@pytest.mark.parametrize(
    ("reviewers", "message"),
    [("    alice: {roles: [resolve]}\n    ALICE: {roles: [resolve]}\n", "one person"),
     ("    alice: {roles: [resolve]}\n    аӏісе: {roles: [resolve]}\n", "one person"),
     ("    alіce: {roles: [resolve]}\n", "mixes scripts"),
     ("    alice: {roles: [approver]}\n", "approve_retraining"),
     ("    alice: {roles: []}\n", "review.reviewers.alice.roles")],
)
def test_reviewer_config_is_validated(tmp_path: Path, reviewers: str, message: str) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text("version: 1\nmodels:\n  - name: m\n    features: {age: {type: numeric}}\n"
                    "review:\n  reviewers:\n" + reviewers, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in "\n".join(caught.value.messages)
