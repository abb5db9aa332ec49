"""The SQLite ticket store, on real database files."""

from __future__ import annotations

import json
import math
import multiprocessing
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drift.errors import TicketStoreError
from drift.findings import Cohort, Finding, Severity, Window
from drift.tickets import Ticket, TicketEvent, TicketStatus, TicketStore

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)
COHORT = Cohort("credit-risk", (("region", "eu-west-1"), ("tenant", "acme")))


class FixedClock:
    """A wall clock that only moves when the test says so."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta = timedelta(minutes=1)) -> None:
        self.at += delta


def window(i: int) -> Window:
    return Window(T0 + i * WINDOW, T0 + (i + 1) * WINDOW)


def finding(
    i: int = 0,
    value: float = 0.31,
    *,
    severity: Severity = Severity.ALERT,
    feature: str | None = "age",
    detector: str = "psi",
    cohort: Cohort = COHORT,
    evidence: dict[str, Any] | None = None,
) -> Finding:
    return Finding(
        detector=detector,
        cohort=cohort,
        window=window(i),
        feature=feature,
        value=value,
        severity=severity,
        warn=0.1,
        alert=0.25,
        n_current=900,
        n_reference=5000,
        baseline="reference",
        evidence=evidence or {"bins": 10},
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 27, 12, 0, tzinfo=UTC))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "tickets.db"


@pytest.fixture
def store(open_any_store: Any, clock: FixedClock) -> TicketStore:
    """The store under test, on SQLite and on a real PostgreSQL (tests/drift/conftest.py)."""
    opened: TicketStore = open_any_store(now=clock)
    return opened


@pytest.fixture
def sqlite_store(db_path: Path, clock: FixedClock) -> Iterator[TicketStore]:
    with TicketStore.open(db_path, now=clock) as opened:
        yield opened


def recorded(event: TicketEvent | None) -> TicketEvent:
    assert event is not None
    return event


# --- opening -----------------------------------------------------------------


def test_open_creates_folders_and_schema(db_path: Path, clock: FixedClock) -> None:
    with TicketStore.open(str(db_path), now=clock) as opened:
        assert opened.path == db_path
        assert opened.list() == []
    assert db_path.is_file()
    conn = sqlite3.connect(db_path)
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"tickets", "ticket_windows", "tickets_live_fingerprint", "window_traffic",
                "ticket_reviews", "retrain_outbox", "audit_log", "ticket_outbox"} <= names
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
    finally:
        conn.close()


def test_open_a_directory_names_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-file"
    folder.mkdir()
    with pytest.raises(TicketStoreError) as info:
        TicketStore.open(folder)
    assert str(folder) in str(info.value)
    assert "cannot open ticket store" in str(info.value)


def test_open_under_a_file_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(TicketStoreError, match="blocker"):
        TicketStore.open(blocker / "tickets.db")


def test_open_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "tickets.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TicketStoreError) as info:
        TicketStore.open(path)
    assert str(path) in str(info.value)
    assert "not a database" in str(info.value)


def test_open_refuses_a_newer_schema(db_path: Path) -> None:
    TicketStore.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(TicketStoreError, match="schema version 99"):
        TicketStore.open(db_path)


# --- recording ---------------------------------------------------------------


def test_first_alert_opens_a_ticket(store: TicketStore, clock: FixedClock) -> None:
    f = finding(0, 0.31)
    event = recorded(store.record(f))

    assert event.kind == "opened"
    assert event.at == clock.at
    ticket = event.ticket
    assert ticket.id == "DRIFT-1"
    assert ticket.fingerprint == f.fingerprint
    assert ticket.status is TicketStatus.OPEN
    assert ticket.action == "ticket"
    assert ticket.model == "credit-risk"
    assert ticket.cohort == {"model": "credit-risk", "region": "eu-west-1", "tenant": "acme"}
    assert ticket.cohort_key == COHORT.key
    assert (ticket.detector, ticket.feature) == ("psi", "age")
    assert ticket.severity is Severity.ALERT
    assert ticket.first_window_start == window(0).start
    assert ticket.last_window_end == window(0).end
    assert ticket.opened_at == ticket.updated_at == clock.at
    assert ticket.first_window_start.tzinfo is not None
    assert ticket.opened_at.tzinfo is not None
    assert ticket.occurrences == 1
    assert ticket.worst_value == ticket.last_value == 0.31
    assert ticket.last_finding == f.to_dict()
    assert store.get("DRIFT-1") == ticket
    assert store.list() == [ticket]


def test_next_window_updates_the_same_ticket(store: TicketStore, clock: FixedClock) -> None:
    opened = recorded(store.record(finding(0, 0.5)))
    clock.advance()
    event = recorded(store.record(finding(1, 0.2, severity=Severity.WARN)))

    assert event.kind == "updated"
    ticket = event.ticket
    assert ticket.id == opened.ticket.id
    assert ticket.occurrences == 2
    assert ticket.worst_value == 0.5
    assert ticket.last_value == 0.2
    assert ticket.severity is Severity.ALERT  # worst seen, not latest
    assert ticket.first_window_start == window(0).start
    assert ticket.last_window_end == window(1).end
    assert ticket.opened_at == opened.ticket.opened_at
    assert ticket.updated_at == clock.at > ticket.opened_at
    assert ticket.last_finding["window_start"] == window(1).start.isoformat()
    assert len(store.list()) == 1


def test_worse_severity_later_raises_the_ticket(store: TicketStore) -> None:
    store.record(finding(0, 0.15, severity=Severity.WARN))
    ticket = recorded(store.record(finding(1, 0.4))).ticket
    assert ticket.severity is Severity.ALERT
    assert ticket.worst_value == 0.4


def test_same_window_twice_is_idempotent(store: TicketStore, clock: FixedClock) -> None:
    store.record(finding(0, 0.3))
    store.record(finding(1, 0.4))
    before = store.get("DRIFT-1")
    clock.advance()

    # A replay after a crash sees the same windows again, possibly with a
    # value computed from slightly different data; it must change nothing.
    assert store.record(finding(0, 0.3)) is None
    assert store.record(finding(1, 0.9)) is None
    assert store.get("DRIFT-1") == before
    assert before.occurrences == 2


def test_late_window_does_not_replace_the_latest(store: TicketStore) -> None:
    store.record(finding(5, 0.4))
    ticket = recorded(store.record(finding(2, 0.6))).ticket

    assert ticket.occurrences == 2
    assert ticket.first_window_start == window(2).start
    assert ticket.last_window_end == window(5).end
    assert ticket.last_value == 0.4
    assert ticket.last_finding["window_start"] == window(5).start.isoformat()
    assert ticket.worst_value == 0.6


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(finding(0, feature="income"), id="feature"),
        pytest.param(finding(0, feature=None), id="no-feature"),
        pytest.param(finding(0, detector="quality"), id="detector"),
        pytest.param(finding(0, cohort=Cohort("credit-risk", (("tenant", "zeta"),))), id="cohort"),
        pytest.param(finding(0, cohort=Cohort("fraud", COHORT.labels)), id="model"),
    ],
)
def test_a_different_problem_gets_its_own_ticket(store: TicketStore, other: Finding) -> None:
    first = recorded(store.record(finding(0)))
    second = recorded(store.record(other))

    assert second.kind == "opened"
    assert second.ticket.id == "DRIFT-2"
    assert second.ticket.fingerprint != first.ticket.fingerprint
    assert second.ticket.feature == other.feature
    assert second.ticket.cohort == other.cohort.to_dict()
    assert [t.occurrences for t in store.list()] == [1, 1]


def test_human_review_action_waits_for_review(store: TicketStore) -> None:
    event = recorded(store.record(finding(0), action="human_review"))
    assert event.ticket.status is TicketStatus.PENDING_REVIEW
    assert event.ticket.action == "human_review"
    assert store.list(TicketStatus.PENDING_REVIEW) == [event.ticket]
    assert store.list(TicketStatus.OPEN) == []


def test_resolved_problem_that_recurs_is_reopened(store: TicketStore, clock: FixedClock) -> None:
    store.record(finding(0, 0.5))
    store.record(finding(1, 0.3))
    clock.advance()
    resolved = store.set_status("DRIFT-1", TicketStatus.RESOLVED)
    assert resolved.status is TicketStatus.RESOLVED
    assert resolved.updated_at == clock.at

    # A replayed window from before the resolution is already known.
    assert store.record(finding(1, 0.3)) is None
    assert store.get("DRIFT-1").status is TicketStatus.RESOLVED

    clock.advance()
    event = recorded(store.record(finding(7, 0.4), action="human_review"))
    assert event.kind == "reopened"
    ticket = event.ticket
    assert ticket.id == "DRIFT-1"
    assert ticket.status is TicketStatus.PENDING_REVIEW
    assert ticket.occurrences == 3
    assert ticket.worst_value == 0.5
    assert ticket.last_value == 0.4
    assert ticket.first_window_start == window(0).start
    assert ticket.last_window_end == window(7).end
    assert ticket.opened_at < ticket.updated_at == clock.at
    assert len(store.list()) == 1

    # Live again, so the next window is an ordinary update.
    assert recorded(store.record(finding(8, 0.2))).kind == "updated"
    assert store.get("DRIFT-1").status is TicketStatus.PENDING_REVIEW


def test_reopen_after_resolution_with_ticket_action_is_open(store: TicketStore) -> None:
    store.record(finding(0), action="human_review")
    store.set_status("DRIFT-1", TicketStatus.RESOLVED)
    ticket = recorded(store.record(finding(1))).ticket
    assert (ticket.status, ticket.action) == (TicketStatus.OPEN, "ticket")


@pytest.mark.parametrize(
    ("bad", "action", "message"),
    [
        (finding(0, math.nan), "ticket", "value is NaN"),
        (finding(0), "page-someone", "action must be one of ticket, human_review"),
        (
            Finding("psi", COHORT, Window(datetime(2026, 1, 1), datetime(2026, 1, 2)), "age",
                    0.3, Severity.ALERT, 0.1, 0.25, 10, 10, "reference"),
            "ticket",
            "timezone-aware",
        ),
        (finding(0, evidence={"raw": object()}), "ticket", "not JSON serialisable"),
    ],
    ids=["nan", "action", "naive-window", "evidence"],
)
def test_unusable_findings_are_refused_and_leave_no_trace(
    store: TicketStore, bad: Finding, action: str, message: str
) -> None:
    with pytest.raises(TicketStoreError, match=message):
        store.record(bad, action=action)
    assert store.list() == []


def test_numpy_evidence_is_stored_as_json(store: TicketStore) -> None:
    evidence = {"current": np.array([0.1, 0.9]), "n_bins": np.int64(2)}
    ticket = recorded(store.record(finding(0, evidence=evidence))).ticket
    assert ticket.last_finding["evidence"] == {"current": [0.1, 0.9], "n_bins": 2}


def test_to_dict_is_json_ready(store: TicketStore, clock: FixedClock) -> None:
    event = recorded(store.record(finding(0, 0.31)))
    doc = json.loads(json.dumps(event.to_dict(), allow_nan=False))

    assert doc["kind"] == "opened"
    assert doc["at"] == clock.at.isoformat()
    ticket = doc["ticket"]
    assert ticket["id"] == "DRIFT-1"
    assert ticket["status"] == "open"
    assert ticket["severity"] == "alert"
    assert ticket["first_window_start"] == "2026-11-27T10:00:00+00:00"
    assert ticket["last_window_end"] == "2026-11-27T10:05:00+00:00"
    assert ticket["occurrences"] == 1
    assert ticket["last_finding"]["value"] == 0.31
    assert set(ticket) == set(Ticket.__dataclass_fields__)


# --- reading and status ------------------------------------------------------


@pytest.mark.parametrize("missing", ["DRIFT-99", "DRIFT-0", "JIRA-1", "drift-1", ""])
def test_get_missing_ticket_names_the_id(store: TicketStore, missing: str) -> None:
    store.record(finding(0))
    with pytest.raises(TicketStoreError) as info:
        store.get(missing)
    assert repr(missing) in str(info.value)


def test_set_status_on_missing_ticket_names_the_id(store: TicketStore) -> None:
    with pytest.raises(TicketStoreError, match="DRIFT-4"):
        store.set_status("DRIFT-4", TicketStatus.RESOLVED)


def test_set_status_refuses_an_unknown_status(store: TicketStore) -> None:
    store.record(finding(0))
    with pytest.raises(TicketStoreError, match="status must be one of"):
        store.set_status("DRIFT-1", "closed")  # type: ignore[arg-type]


def test_list_filters_by_status_in_id_order(store: TicketStore) -> None:
    for feature in ["a", "b", "c"]:
        store.record(finding(0, feature=feature))
    store.set_status("DRIFT-2", TicketStatus.IN_PROGRESS)

    assert [t.id for t in store.list()] == ["DRIFT-1", "DRIFT-2", "DRIFT-3"]
    assert [t.id for t in store.list(TicketStatus.OPEN)] == ["DRIFT-1", "DRIFT-3"]
    assert [t.id for t in store.list(TicketStatus.IN_PROGRESS)] == ["DRIFT-2"]
    assert store.list(TicketStatus.APPROVED) == []


def test_the_database_allows_one_live_ticket_per_fingerprint(
    sqlite_store: TicketStore, db_path: Path
) -> None:
    sqlite_store.record(finding(0))
    conn = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO tickets (fingerprint, status, action, model, cohort, cohort_key,"
                " detector, feature, severity, first_window_start, last_window_end, opened_at,"
                " updated_at, occurrences, worst_value, last_value, last_finding)"
                " SELECT fingerprint, 'open', action, model, cohort,"
                " cohort_key, detector, feature, severity, first_window_start,"
                " last_window_end, opened_at, updated_at, occurrences, worst_value,"
                " last_value, last_finding FROM tickets"
            )
    finally:
        conn.close()


# --- durability and several workers ------------------------------------------


def test_reopening_the_file_keeps_everything(db_path: Path, clock: FixedClock) -> None:
    with TicketStore.open(db_path, now=clock) as first:
        first.record(finding(0, 0.5))
        first.record(finding(1, 0.3))
        first.record(finding(0, feature="income"), action="human_review")
        first.approve("DRIFT-2", "alice")
        before = first.list()

    clock.advance(timedelta(hours=1))
    with TicketStore.open(db_path, now=clock) as second:
        assert second.list() == before
        assert second.record(finding(1, 0.3)) is None  # windows survive too
        event = recorded(second.record(finding(2, 0.7)))
        assert (event.kind, event.ticket.id, event.ticket.occurrences) == ("updated", "DRIFT-1", 3)
        assert recorded(second.record(finding(0, detector="skew"))).ticket.id == "DRIFT-3"


def test_two_stores_on_one_file_make_one_ticket(db_path: Path, clock: FixedClock) -> None:
    with (
        TicketStore.open(db_path, now=clock) as worker_a,
        TicketStore.open(db_path, now=clock) as worker_b,
    ):
        events: list[TicketEvent | None] = []
        for i in range(6):
            # Both workers see every window (e.g. a rebalance replays a
            # partition); they alternate who sees it first.
            pair = (worker_a, worker_b) if i % 2 == 0 else (worker_b, worker_a)
            for worker in pair:
                events.append(worker.record(finding(i, 0.3 + i / 100)))
        assert worker_a.list() == worker_b.list()
        tickets = worker_a.list()

    kinds = [e.kind for e in events if e is not None]
    assert kinds == ["opened"] + ["updated"] * 5
    assert len(tickets) == 1
    assert tickets[0].occurrences == 6
    assert tickets[0].worst_value == pytest.approx(0.35)


N_CONCURRENT_WINDOWS = 25


def _record_stream(path: str, start: threading.Barrier | None = None) -> list[str]:
    with TicketStore.open(path) as worker:
        if start is not None:
            start.wait()
        kinds: list[str] = []
        for i in range(N_CONCURRENT_WINDOWS):
            for feature in ["age", "income"]:
                event = worker.record(finding(i, 0.3, feature=feature))
                if event is not None:
                    kinds.append(event.kind)
        return kinds


def _check_one_ticket_per_feature(path: Path, kinds: list[str]) -> None:
    assert sorted(kinds).count("opened") == 2
    assert len(kinds) == 2 * N_CONCURRENT_WINDOWS
    with TicketStore.open(path) as reader:
        tickets = reader.list()
    assert sorted(t.feature or "" for t in tickets) == ["age", "income"]
    assert [t.occurrences for t in tickets] == [N_CONCURRENT_WINDOWS] * 2


def test_concurrent_threads_make_one_ticket_per_problem(db_path: Path) -> None:
    n_workers = 4
    start = threading.Barrier(n_workers)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(_record_stream(str(db_path), start))
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)
            start.abort()

    TicketStore.open(db_path).close()
    threads = [threading.Thread(target=work) for _ in range(n_workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    _check_one_ticket_per_feature(db_path, [kind for kinds in results for kind in kinds])


def _process_worker(path: str, queue: Any) -> None:
    queue.put(_record_stream(path))


def test_concurrent_processes_make_one_ticket_per_problem(db_path: Path) -> None:
    # Fork keeps the test module importable in the child without packaging it.
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    # No schema yet: the workers also race to create it.
    workers = [context.Process(target=_process_worker, args=(str(db_path), queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    _check_one_ticket_per_feature(db_path, [kind for kinds in results for kind in kinds])


# --- properties --------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=st.lists(
        st.tuples(st.integers(0, 8), st.floats(0.0, 5.0, allow_nan=False)),
        min_size=1,
        max_size=20,
    )
)
def test_any_order_and_replay_count_each_window_once(
    tmp_path_factory: pytest.TempPathFactory, stream: list[tuple[int, float]]
) -> None:
    path = tmp_path_factory.mktemp("prop") / "tickets.db"
    with TicketStore.open(path, now=FixedClock(T0)) as prop_store:
        for i, value in stream:
            prop_store.record(finding(i, value))
        (ticket,) = prop_store.list()

    first_value: dict[int, float] = {}
    for i, value in stream:
        first_value.setdefault(i, value)  # a replayed window keeps its first value
    latest = max(first_value)
    assert ticket.occurrences == len(first_value)
    assert ticket.worst_value == max(first_value.values())
    assert ticket.last_value == first_value[latest]
    assert ticket.first_window_start == window(min(first_value)).start
    assert ticket.last_window_end == window(latest).end
