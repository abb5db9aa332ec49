"""Ticket content, lifecycle, cooldown, review and audit: the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drift.config import ImpactConfig
from drift.errors import ReviewError, TicketStoreError, TransitionError
from drift.findings import Cohort, Finding, Severity, Window
from drift.tickets import SYSTEM_IDENTITY, TicketEvent, TicketStatus, TicketStore
from drift.tickets.review import pending_reviews, publish_outbox

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)
ACME = Cohort("credit-risk", (("region", "eu-west-1"), ("tenant", "acme")))
GLOBEX = Cohort("credit-risk", (("region", "us-east-1"), ("tenant", "globex")))
HIGH = ImpactConfig(tier="high", regulated=True, weight=2.0)


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


def window(i: int) -> Window:
    return Window(T0 + i * WINDOW, T0 + (i + 1) * WINDOW)


def finding(i: int = 0, value: float = 0.31, *, detector: str = "psi", feature: str | None = "age",
            cohort: Cohort = ACME, alert: float = 0.25) -> Finding:
    return Finding(detector, cohort, window(i), feature, value,
                   Severity.of(value, alert * 0.4, alert), alert * 0.4, alert, 900, 5000, "reference",
                   {"current": [0.1, 0.9], "reference": [0.5, 0.5]})


def recorded(event: TicketEvent | None) -> TicketEvent:
    assert event is not None
    return event


@pytest.fixture
def store(open_any_store: Any) -> TicketStore:
    opened: TicketStore = open_any_store(now=Clock())
    return opened


# --- content -------------------------------------------------------------------


def test_context_has_traffic_share_ranked_findings_impact_and_countermeasures(store: TicketStore) -> None:
    for i in range(2):
        store.record_traffic("credit-risk", ACME.key, window(i).start, window(i).end, 300)
        store.record_traffic("credit-risk", GLOBEX.key, window(i).start, window(i).end, 900)
        store.record_traffic("other-model", "other-model", window(i).start, window(i).end, 5000)
    store.record(finding(0, 0.3), impact=HIGH)
    event = recorded(store.record(finding(1, 0.5), impact=HIGH))
    store.record(finding(1, 0.2, detector="quality.null_rate", feature="income", alert=0.05), impact=HIGH)

    assert event.id == f"DRIFT-1:{store.audit_log('DRIFT-1')[-1].id}"
    context = store.context("DRIFT-1")
    assert context["cohort"] == {"model": "credit-risk", "region": "eu-west-1", "tenant": "acme"}
    assert [w["window_start"] for w in context["windows"]] == [window(0).start.isoformat(), window(1).start.isoformat()]
    assert [w["n_events"] for w in context["windows"]] == [300, 300]
    traffic = context["traffic"]
    assert (traffic["n_events"], traffic["n_model_events"], traffic["n_cohorts"]) == (300, 1200, 2)
    assert traffic["share"] == pytest.approx(0.25)
    assert traffic["share_all_windows"] == pytest.approx(0.25)
    # Ranked by value over alert threshold: null rate 0.2/0.05 = 4 beats PSI 0.5/0.25 = 2.
    ranked = context["findings"]
    assert [(f["rank"], f["ticket_id"], f["detector"]) for f in ranked] == [
        (1, "DRIFT-2", "quality.null_rate"), (2, "DRIFT-1", "psi")]
    assert ranked[1]["value"] == 0.5 and ranked[1]["alert"] == 0.25
    assert ranked[1]["evidence"] == {"current": [0.1, 0.9], "reference": [0.5, 0.5]}
    assert context["baseline"] == {"name": "reference", "n_reference": 5000}
    assert context["impact"] == {"tier": "high", "regulated": True, "weight": 2.0,
                                 "traffic_share": pytest.approx(0.25), "estimate": pytest.approx(0.5)}
    actions = [c["action"] for c in context["countermeasures"]]
    assert actions[0].startswith("check the upstream pipeline")
    assert "retrain on recent data for this cohort" in actions
    assert all(c["reason"] for c in context["countermeasures"])
    json.dumps(event.to_dict(), allow_nan=False)


def test_unknown_traffic_leaves_share_and_estimate_unknown(store: TicketStore) -> None:
    event = recorded(store.record(finding(0), impact=HIGH))
    assert event.context["traffic"]["share"] is None
    assert event.context["impact"]["estimate"] is None


# --- lifecycle -------------------------------------------------------------------


def test_the_whole_lifecycle_with_review(store: TicketStore) -> None:
    ticket = recorded(store.record(finding(0), action="human_review", approvals=1)).ticket
    assert (ticket.status, ticket.requester, ticket.review_round) == (TicketStatus.PENDING_REVIEW, SYSTEM_IDENTITY, 1)
    ticket, request = store.approve("DRIFT-1", "alice")
    assert ticket.status is TicketStatus.APPROVED and request is not None
    assert store.set_status("DRIFT-1", TicketStatus.IN_PROGRESS, actor="bob").status is TicketStatus.IN_PROGRESS
    resolved = store.set_status("DRIFT-1", TicketStatus.RESOLVED, actor="bob")
    assert resolved.status is TicketStatus.RESOLVED and resolved.resolved_at is not None


@pytest.mark.parametrize(
    ("moves", "target", "message"),
    [
        ([], TicketStatus.APPROVED, "from open to approved directly: use 'drift review approve'"),
        ([], TicketStatus.REJECTED, "from open to rejected directly: use 'drift review reject'"),
        ([TicketStatus.RESOLVED], TicketStatus.IN_PROGRESS, "from resolved to in_progress"),
        ([TicketStatus.IN_PROGRESS], TicketStatus.OPEN, "from in_progress to open: allowed from in_progress: resolved"),
        ([], TicketStatus.PENDING_REVIEW, "use 'drift review request'"),
    ],
    ids=["approve-directly", "reject-directly", "out-of-resolved", "back-to-open", "review-directly"],
)
def test_illegal_moves_name_from_and_to(store: TicketStore, moves: list[TicketStatus],
                                        target: TicketStatus, message: str) -> None:
    store.record(finding(0))
    for move in moves:
        store.set_status("DRIFT-1", move)
    with pytest.raises(TransitionError, match=message):
        store.set_status("DRIFT-1", target)


def test_approve_needs_pending_review(store: TicketStore) -> None:
    store.record(finding(0))
    with pytest.raises(TransitionError, match="cannot approve DRIFT-1: it is open, not pending_review"):
        store.approve("DRIFT-1", "alice")


def test_recurrence_within_cooldown_is_suppressed_then_reopens_with_history(store: TicketStore) -> None:
    cooldown = timedelta(minutes=30)
    store.record(finding(0, 0.4), cooldown=cooldown)
    store.record(finding(1, 0.6), cooldown=cooldown)
    store.set_status("DRIFT-1", TicketStatus.RESOLVED, actor="bob")
    # Windows 2..7 start before last_window_end (10:10) + 30 min = 10:40.
    for i in range(2, 8):
        assert store.record(finding(i, 0.3), cooldown=cooldown) is None
    ticket = store.get("DRIFT-1")
    assert (ticket.status, ticket.suppressed, ticket.occurrences) == (TicketStatus.RESOLVED, 6, 2)
    event = recorded(store.record(finding(8, 0.3), cooldown=cooldown))
    assert event.kind == "reopened"
    assert (event.ticket.id, event.ticket.status, event.ticket.occurrences) == ("DRIFT-1", TicketStatus.OPEN, 3)
    assert event.ticket.worst_value == 0.6
    # A replayed suppressed window stays counted once.
    assert store.record(finding(3, 0.3), cooldown=cooldown) is None
    assert store.get("DRIFT-1").suppressed == 6
    actions = [e.action for e in store.audit_log("DRIFT-1")]
    assert actions == ["opened", "updated", "status", *["suppressed"] * 6, "reopened"]


def test_reopened_review_is_a_new_round_requested_by_drift(store: TicketStore) -> None:
    store.record(finding(0), action="human_review", approvals=1)
    store.approve("DRIFT-1", "alice")
    store.set_status("DRIFT-1", TicketStatus.RESOLVED)
    ticket = recorded(store.record(finding(20), action="human_review", approvals=2)).ticket
    assert (ticket.status, ticket.review_round, ticket.approvals_required) == (TicketStatus.PENDING_REVIEW, 2, 2)
    # alice approved round 1; in round 2 her approval counts again, once.
    ticket, request = store.approve("DRIFT-1", "alice")
    assert request is None and ticket.status is TicketStatus.PENDING_REVIEW


def test_clear_marks_inactive_and_the_next_alert_reactivates(store: TicketStore) -> None:
    store.record(finding(0))
    event = recorded(store.clear(finding(1, 0.01)))
    assert (event.kind, event.ticket.active, event.ticket.status) == ("cleared", False, TicketStatus.OPEN)
    assert store.clear(finding(2, 0.01)) is None
    assert recorded(store.record(finding(3))).ticket.active


# --- review ----------------------------------------------------------------------


def test_requester_can_never_approve(store: TicketStore) -> None:
    store.record(finding(0))
    store.request_review("DRIFT-1", "carol", approvals=1)
    with pytest.raises(ReviewError, match="'carol' requested the review of DRIFT-1 and cannot approve it"):
        store.approve("DRIFT-1", "carol")
    # Nor can the system identity approve what the stream job sent to review.
    store.record(finding(0, feature="income"), action="human_review")
    with pytest.raises(ReviewError, match="'drift' requested"):
        store.approve("DRIFT-2", SYSTEM_IDENTITY)


def test_dual_control_needs_two_distinct_approvers(store: TicketStore) -> None:
    store.record(finding(0), action="human_review", approvals=2, impact=HIGH)
    ticket, request = store.approve("DRIFT-1", "alice", "looks real")
    assert request is None and ticket.status is TicketStatus.PENDING_REVIEW
    [pending] = pending_reviews(store)
    assert pending.approved_by == ["alice"] and pending.to_dict()["approvals_missing"] == 1
    with pytest.raises(ReviewError, match="'alice' already approved DRIFT-1"):
        store.approve("DRIFT-1", "alice")
    with pytest.raises(ReviewError, match="must name a person"):
        store.approve("DRIFT-1", "  ")
    ticket, request = store.approve("DRIFT-1", "bob")
    assert ticket.status is TicketStatus.APPROVED and request is not None
    assert request.key == "DRIFT-1/review-1"
    payload = request.payload
    assert payload["approved_by"] == ["alice", "bob"] and payload["requested_by"] == SYSTEM_IDENTITY
    assert payload["ticket"]["id"] == "DRIFT-1" and payload["ticket"]["status"] == "approved"
    assert payload["context"]["impact"]["tier"] == "high"
    assert payload["context"]["countermeasures"][0]["action"] == "retrain on recent data for this cohort"
    assert [r.reviewer for r in store.reviews("DRIFT-1")] == ["alice", "bob"]


def test_reject_needs_a_comment_and_one_reviewer(store: TicketStore) -> None:
    store.record(finding(0), action="human_review", approvals=2)
    with pytest.raises(ReviewError, match="needs a comment"):
        store.reject("DRIFT-1", "alice", " ")
    ticket = store.reject("DRIFT-1", "alice", "seasonal, expected")
    assert ticket.status is TicketStatus.REJECTED
    assert store.context("DRIFT-1")["reviews"][0]["comment"] == "seasonal, expected"
    assert store.retrain_requests() == []


def test_outbox_keeps_requests_until_delivered(store: TicketStore) -> None:
    store.record(finding(0), action="human_review")
    store.approve("DRIFT-1", "alice")

    def down(records: Any) -> set[str]:
        raise ConnectionError("broker unreachable")

    failed = publish_outbox(store, down, "kafka:retrain")
    assert failed.published == [] and failed.pending == ["DRIFT-1/review-1"]
    assert "broker unreachable" in (failed.error or "")
    sent: list[tuple[str, bytes]] = []

    def up(records: Any) -> set[str]:
        sent.extend(records)
        return {key for key, _ in records}

    assert publish_outbox(store, up, "kafka:retrain").published == ["DRIFT-1/review-1"]
    assert publish_outbox(store, up, "kafka:retrain").published == []
    assert len(sent) == 1 and json.loads(sent[0][1])["ticket_id"] == "DRIFT-1"
    assert store.retrain_requests()[0].published_at is not None


def test_concurrent_stores_count_each_approver_once(open_any_store: Any) -> None:
    first, second = open_any_store(now=Clock()), open_any_store(now=Clock())
    first.record(finding(0), action="human_review", approvals=2)
    first.approve("DRIFT-1", "alice")
    with pytest.raises(ReviewError):
        second.approve("DRIFT-1", "alice")
    assert second.approve("DRIFT-1", "bob")[0].status is TicketStatus.APPROVED


# --- audit ---------------------------------------------------------------------


def _busy_store(store: TicketStore) -> None:
    store.record(finding(0), action="human_review", approvals=2)
    store.record(finding(1))
    store.record(finding(0, feature="income"))
    store.approve("DRIFT-1", "alice")
    store.approve("DRIFT-1", "bob")
    store.set_status("DRIFT-2", TicketStatus.RESOLVED, actor="bob")


def test_every_action_is_audited_and_the_chain_verifies(store: TicketStore) -> None:
    _busy_store(store)
    entries = store.audit_log()
    assert [e.action for e in entries] == [
        "opened", "updated", "opened", "approval", "approval", "status", "retrain_requested", "status"]
    assert [e.actor for e in entries][3:6] == ["alice", "bob", "bob"]
    assert entries[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    report = store.verify_audit()
    assert report.ok and report.n_entries == 8


def test_the_audit_log_refuses_updates_and_deletes(store: TicketStore) -> None:
    _busy_store(store)
    with pytest.raises(TicketStoreError, match="append-only"):
        with store._db.write("tamper with") as tx:
            tx.run("UPDATE audit_log SET actor = 'mallory' WHERE id = 4")
    with pytest.raises(TicketStoreError, match="append-only"):
        with store._db.write("tamper with") as tx:
            tx.run("DELETE FROM audit_log WHERE id = 4")
    assert store.verify_audit().ok


def _drop_guard(store: TicketStore) -> None:
    with store._db.write("tamper with") as tx:
        if store._db.dialect == "sqlite":
            tx.run("DROP TRIGGER audit_log_no_update")
            tx.run("DROP TRIGGER audit_log_no_delete")
        else:
            tx.run("DROP TRIGGER audit_log_append_only ON audit_log")


@pytest.mark.parametrize(
    ("tamper", "entry_id", "message"),
    [
        (["UPDATE audit_log SET actor = 'mallory' WHERE id = 4"], 4, "entry 4 was edited"),
        (["UPDATE audit_log SET detail = '{\"round\":1}' WHERE id = 5"], 5, "entry 5 was edited"),
        (["DELETE FROM audit_log WHERE id = 3"], 3, "entry 3 is missing"),
        # Deleting the newest entry leaves a valid chain; the ticket's pointer catches it.
        (["DELETE FROM audit_log WHERE id = 8"], 8, "latest entry of DRIFT-2"),
        # Re-hashing an edited entry breaks the link to the next one.
        (["UPDATE audit_log SET hash = '" + "a" * 64 + "' WHERE id = 2"], 2, "entry 2 was edited"),
        (["UPDATE audit_log SET prev_hash = '" + "b" * 64 + "' WHERE id = 6"], 6, "does not chain"),
    ],
    ids=["actor", "detail", "delete-middle", "delete-last", "hash", "prev-hash"],
)
def test_verify_names_the_tampered_entry(store: TicketStore, tamper: list[str], entry_id: int, message: str) -> None:
    _busy_store(store)
    _drop_guard(store)
    with store._db.write("tamper with") as tx:
        for statement in tamper:
            tx.run(statement)
    report = store.verify_audit()
    assert not report.ok
    assert report.entry_id == entry_id
    assert message in (report.problem or "")


def test_concurrent_writers_keep_one_ticket_and_one_chain(open_any_store: Any) -> None:
    import threading

    open_any_store().close()  # schema first, so the threads race on records only
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work() -> None:
        try:
            # A SQLite connection belongs to its thread, as in the flow's workers.
            worker = open_any_store()
            start.wait()
            for i in range(10):
                worker.record(finding(i), action="human_review")
                worker.record_traffic("credit-risk", ACME.key, window(i).start, window(i).end, 100)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    reader = open_any_store()
    [ticket] = reader.list()
    assert ticket.occurrences == 10
    report = reader.verify_audit()
    assert (report.ok, report.n_entries) == (True, 10)


def test_a_postgresql_password_in_the_config_is_refused_without_echoing_it() -> None:
    from drift.config import parse_config
    from drift.errors import ConfigError

    text = ("version: 1\nmodels:\n  - name: m\n    features: {x: {type: numeric}}\n"
            "tickets: {store: 'postgresql://drift:hunter2@db:5432/drift'}\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text, "drift.yaml")
    assert "tickets.store: must not contain a password" in str(info.value)
    assert "PGPASSWORD" in str(info.value) and "hunter2" not in str(info.value)
    ok = parse_config(text.replace("drift:hunter2@", "drift@"), "drift.yaml")
    assert ok.ticket_store_path() is None
