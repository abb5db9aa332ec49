"""A ticket's timeline (drift started, detected, acknowledged, recovered, resolved) and its histograms.

Real SQLite and PostgreSQL stores, the real policy, and the process's own Prometheus registry.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

import drift.metrics
from drift.config import FeatureSpec, ModelConfig, PolicyConfig
from drift.errors import TicketStoreError
from drift.findings import Cohort, Finding, Severity, Window
from drift.policy import Decision, PolicyState, decide
from drift.report.detection import detection_rows
from drift.tickets import Database, TicketEvent, TicketStore
from drift.tickets.schema import DIALECTS, MIGRATIONS
from drift.tickets.sqlite import SqliteDatabase

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
COHORT = Cohort("credit-risk", (("tenant", "acme"),))
MODEL = ModelConfig(
    name="credit-risk", features={"age": FeatureSpec(type="numeric")},
    policy=PolicyConfig(consecutive_windows=3, clear_ratio=0.5, clear_windows=2, cooldown=timedelta(0)),
)
HISTOGRAMS = {name: attribute for name, attribute, _ in drift.metrics.TIMINGS}


class Clock:
    """The store's wall clock, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def window(i: int) -> Window:
    return Window(T0 + i * STEP, T0 + (i + 1) * STEP)


def finding(i: int, value: float, *, model: str = "credit-risk", feature: str = "age") -> Finding:
    return Finding("psi", Cohort(model, COHORT.labels), window(i), feature, value,
                   Severity.of(value, 0.1, 0.25), 0.1, 0.25, 900, 5000, "reference")


def count(name: str, le: str | None = None, model: str = "credit-risk") -> float:
    """A sample of one timing histogram in the process's registry (0 before any)."""
    labels = {"model": model, "detector": "psi"}
    if le is None:
        value = REGISTRY.get_sample_value(f"{name}_count", labels)
    else:
        value = REGISTRY.get_sample_value(f"{name}_bucket", {**labels, "le": le})
    return 0.0 if value is None else value


def total(name: str, model: str = "credit-risk") -> float:
    value = REGISTRY.get_sample_value(f"{name}_sum", {"model": model, "detector": "psi"})
    return 0.0 if value is None else value


def counts(model: str = "credit-risk") -> dict[str, float]:
    return {attribute: count(name, model=model) for name, attribute in HISTOGRAMS.items()}


def run_policy(store: TicketStore, values: dict[int, float], state: PolicyState | None = None,
               action: str = "human_review") -> tuple[PolicyState | None, list[tuple[Decision, TicketEvent | None]]]:
    """Windows through the policy and, as the flow's ticket step does, into the store."""
    out = []
    for i, value in sorted(values.items()):
        state, decision = decide(state, finding(i, value), MODEL, [])
        if decision is None:
            continue
        if decision.kind == "clear":
            event = store.clear(decision.finding)
        else:
            event = store.record(decision.finding, action=action, approvals=1, cooldown=MODEL.policy.cooldown,
                                 drift_started=decision.drift_started)
        out.append((decision, event))
    return state, out


def test_a_ticket_through_its_life_records_each_moment_once_and_each_histogram_once(
    open_any_store: Callable[..., TicketStore],
) -> None:
    clock = Clock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    store = open_any_store(now=clock, audit_key=None)
    timings = drift.metrics.TICKET_TIMINGS
    timings.read(store)
    before = counts()
    buckets = {(name, le): count(name, le) for name in HISTOGRAMS for le in ("900.0", "1800.0", "3600.0", "+Inf")}
    detect_sum = total("drift_ticket_time_to_detect_seconds")

    # Windows 0-1 healthy, 2-4 alerting: the third alerting window opens the ticket.
    state, made = run_policy(store, {0: 0.02, 1: 0.03, 2: 0.3, 3: 0.35, 4: 0.4})
    [(decision, opened)] = made
    assert decision.drift_started == window(2).start
    assert opened is not None and opened.kind == "opened"
    ticket = opened.ticket
    assert (ticket.drift_started, ticket.detected_at) == (window(2).start, window(4).end)
    assert ticket.opened_at == clock.now
    assert (ticket.acknowledged_at, ticket.recovered, ticket.resolved_at) == (None, None, None)
    document = opened.to_dict()["ticket"]
    assert document["drift_started"] == window(2).start.isoformat()
    assert document["detected_at"] == window(4).end.isoformat()
    assert document["acknowledged_at"] is None and document["recovered"] is None
    assert store.pending_events()[-1].document["ticket"]["detected_at"] == window(4).end.isoformat()

    timings.read(store)
    timings.read(store)  # nothing new: nothing counted twice
    assert counts() == {**before, "time_to_detect": before["time_to_detect"] + 1}
    # 3 windows of 5 minutes, from the start of the first to the end of the third
    assert total("drift_ticket_time_to_detect_seconds") - detect_sum == 900.0

    # A person acts: the first review verdict acknowledges; later ones change nothing.
    clock.now += timedelta(minutes=42)
    store.approve(ticket.id, "alice", "seen it")
    acknowledged = clock.now
    clock.now += timedelta(hours=1)
    store.set_status(ticket.id, "in_progress", actor="bob")
    assert store.get(ticket.id).acknowledged_at == acknowledged

    # The problem goes on (updates keep the timeline), then stays under the clear level for 2 windows.
    state, made = run_policy(store, {5: 0.5, 6: 0.05, 7: 0.04}, state)
    assert [(d.kind, e.kind if e else None) for d, e in made] == [("alert", "updated"), ("clear", "cleared")]
    cleared = store.get(ticket.id)
    assert (cleared.drift_started, cleared.detected_at) == (window(2).start, window(4).end)
    assert cleared.recovered == window(7).end
    # It alerts again and clears again: the first recovery stays.
    state, made = run_policy(store, {8: 0.4, 9: 0.4, 10: 0.45, 11: 0.01, 12: 0.01}, state)
    assert [e.kind for _, e in made if e] == ["updated", "cleared"]
    assert store.get(ticket.id).recovered == window(7).end

    clock.now += timedelta(hours=3)
    resolved = store.set_status(ticket.id, "resolved", actor="bob")
    assert resolved.resolved_at == clock.now
    timeline = resolved.timeline()
    assert timeline.time_to_detect == 3 * STEP
    assert timeline.time_to_acknowledge == timedelta(minutes=42)
    assert timeline.time_to_recover == window(7).end - window(2).start
    assert timeline.time_to_resolve == timedelta(minutes=42, hours=4)

    timings.read(store)
    timings.read(store)
    after = counts()
    assert after == {attribute: n + 1 for attribute, n in before.items()}
    grown = {key: count(*key) - n for key, n in buckets.items()}
    assert grown == {
        # detect: 15 minutes; acknowledge: 42 minutes; recover: 30 minutes; resolve: 4h42m
        ("drift_ticket_time_to_detect_seconds", "900.0"): 1, ("drift_ticket_time_to_detect_seconds", "1800.0"): 1,
        ("drift_ticket_time_to_detect_seconds", "3600.0"): 1, ("drift_ticket_time_to_detect_seconds", "+Inf"): 1,
        ("drift_ticket_time_to_acknowledge_seconds", "900.0"): 0,
        ("drift_ticket_time_to_acknowledge_seconds", "1800.0"): 0,
        ("drift_ticket_time_to_acknowledge_seconds", "3600.0"): 1,
        ("drift_ticket_time_to_acknowledge_seconds", "+Inf"): 1,
        ("drift_ticket_time_to_recover_seconds", "900.0"): 0, ("drift_ticket_time_to_recover_seconds", "1800.0"): 1,
        ("drift_ticket_time_to_recover_seconds", "3600.0"): 1, ("drift_ticket_time_to_recover_seconds", "+Inf"): 1,
        ("drift_ticket_time_to_resolve_seconds", "900.0"): 0, ("drift_ticket_time_to_resolve_seconds", "1800.0"): 0,
        ("drift_ticket_time_to_resolve_seconds", "3600.0"): 0, ("drift_ticket_time_to_resolve_seconds", "+Inf"): 1,
    }
    assert store.verify_audit().ok


def test_a_process_starting_again_counts_the_stores_tickets_again(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    with TicketStore.open(tmp_path / "t.db", now=clock, audit_key=None) as store:
        run_policy(store, {0: 0.3, 1: 0.3, 2: 0.3}, action="ticket")
        fresh = drift.metrics.TicketTimings(registry=None)
        fresh.read(store)
        again = drift.metrics.TicketTimings(registry=None)
        again.read(store)
    first, second = ([(m.name, [(s.name, s.labels, s.value) for s in m.samples]) for m in timings.collect()]
                     for timings in (fresh, again))
    assert first == second
    assert ("drift_ticket_time_to_detect_seconds_count", {"model": "credit-risk", "detector": "psi"}, 1.0) \
        in first[0][1]


def test_a_late_drift_start_or_none_falls_back_to_the_window_and_naive_times_are_refused(tmp_path: Path) -> None:
    with TicketStore.open(tmp_path / "t.db", audit_key=None) as store:
        event = store.record(finding(3, 0.4), drift_started=None)
        assert event is not None and event.ticket.drift_started == window(3).start
        event = store.record(finding(3, 0.4, feature="income"), drift_started=window(9).start)
        assert event is not None and event.ticket.drift_started == window(3).start
        with pytest.raises(TicketStoreError, match="timezone-aware"):
            store.record(finding(3, 0.4, feature="debt"), drift_started=datetime(2026, 11, 27, 10, 0))


# --------------------------------------------------------------------------- policy


def test_the_policy_carries_the_start_of_the_alerting_run() -> None:
    state: PolicyState | None = None
    started = []
    # 0-1 alert, 2 warn (the alerting run starts again, the drift goes on), 3 alert, 4 skipped by
    # min_samples (no evidence: the run goes on through it), 5-7 alert: the third alerting window in
    # a row opens the ticket, and the drift started with window 0.
    for i, value in enumerate([0.3, 0.3, 0.2, 0.3, None, 0.3, 0.3, 0.3]):
        f = finding(i, 0.3 if value is None else value)
        if value is None:
            f = Finding(f.detector, f.cohort, f.window, f.feature, f.value, f.severity, f.warn, f.alert, 0, 5000,
                        f.baseline)
            model = MODEL.model_copy(update={"policy": MODEL.policy.model_copy(update={"min_samples": 10})})
        else:
            model = MODEL
        state, decision = decide(state, f, model, [])
        started.append(None if decision is None else decision.drift_started)
    assert started == [None, None, None, None, None, None, window(0).start, window(0).start]


@pytest.mark.parametrize(("values", "start"), [
    ({0: 0.02, 1: 0.15, 2: 0.2, 3: 0.3, 4: 0.3, 5: 0.3}, 1),  # warn windows creep up to the alerting run
    ({0: 0.15, 1: 0.02, 2: 0.3, 3: 0.3, 4: 0.3}, 2),  # a window at ok ends the look-back
    ({0: 0.15, 1: 0.2, 3: 0.3, 4: 0.3, 5: 0.3}, 3),  # so does a gap (window 2 not scored: healthy)
    ({0: 0.3, 1: 0.15, 2: 0.3, 3: 0.3, 4: 0.3}, 0),  # alert, warn, then alerts: one drift from window 0
])
def test_drift_started_looks_back_over_the_warn_windows_before_the_alerting_run(
        values: dict[int, float], start: int) -> None:
    state: PolicyState | None = None
    started = []
    for i, value in sorted(values.items()):
        state, decision = decide(state, finding(i, value), MODEL, [])
        if decision is not None:
            started.append(decision.drift_started)
    assert started and set(started) == {window(start).start}


def test_a_policy_state_snapshot_taken_before_the_run_start_loads() -> None:
    state = PolicyState(2, window(1).end, False, 0, window(0).start)
    assert pickle.loads(pickle.dumps(state)) == state

    def old_layout(self: PolicyState) -> tuple[object, ...]:
        return (self.consecutive, self.last_window_end, self.active, self.n_below_clear)

    original = PolicyState.__getstate__
    PolicyState.__getstate__ = old_layout  # type: ignore[method-assign, assignment]
    try:
        old = pickle.dumps(PolicyState(2, window(1).end, False, 0))
    finally:
        PolicyState.__getstate__ = original  # type: ignore[method-assign]
    loaded = pickle.loads(old)
    assert loaded == PolicyState(2, window(1).end, False, 0, None)
    # The run goes on from the old state; its start is then the window it resumes with.
    _, decision = decide(loaded, finding(2, 0.3), MODEL, [])
    assert decision is not None and decision.drift_started == window(2).start


# --------------------------------------------------------------------------- migration


@pytest.fixture(params=["sqlite", "postgresql"])
def connect(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Database]]:
    if request.param == "sqlite":
        yield lambda: SqliteDatabase(tmp_path / "tickets.db")
        return
    url = request.getfixturevalue("postgres_url")
    from drift.tickets.postgres import PostgresDatabase

    yield lambda: PostgresDatabase(url)


def test_a_version_4_store_upgrades_with_an_empty_timeline(connect: Callable[[], Database]) -> None:
    db = connect()
    with db.write("migrate") as tx:
        assert tx.schema_version() == 0
        for migration in MIGRATIONS[:4]:
            for statement in migration.statements(DIALECTS[db.dialect]):
                tx.run(statement)
        tx.set_schema_version(4)
        tx.run(
            "INSERT INTO tickets (fingerprint, status, action, model, cohort, cohort_key, detector, feature,"
            " severity, first_window_start, last_window_end, opened_at, updated_at, occurrences,"
            " worst_value, last_value, last_finding, resolved_at, audit_id)"
            " VALUES (?, 'resolved', 'ticket', 'credit-risk', '{}', 'credit-risk', 'psi', 'age', 'alert',"
            " ?, ?, ?, ?, 1, 0.3, 0.3, '{}', ?, 1)",
            (finding(0, 0.4).fingerprint, T0.isoformat(), window(0).end.isoformat(), T0.isoformat(),
             T0.isoformat(), (T0 + timedelta(hours=1)).isoformat()),
        )
    db.close()

    with TicketStore(connect(), audit_key=None) as store:
        old = store.get("DRIFT-1")
        assert (old.drift_started, old.detected_at, old.acknowledged_at, old.recovered) == (None,) * 4
        assert old.resolved_at == T0 + timedelta(hours=1)
        document: dict[str, Any] = old.to_dict()
        assert [document[k] for k in ("drift_started", "detected_at", "acknowledged_at", "recovered")] == [None] * 4
        _, [line] = store.timelines()
        assert (line.time_to_detect, line.time_to_acknowledge, line.time_to_recover) == (None, None, None)
        assert line.time_to_resolve == timedelta(hours=1)
        # A new ticket in the upgraded store has its timeline.
        event = store.record(finding(5, 0.4, feature="income"), drift_started=window(3).start)
        assert event is not None and event.ticket.timeline().time_to_detect == 3 * STEP


# --------------------------------------------------------------------------- report


def test_the_report_lists_each_tickets_time_to_detect(tmp_path: Path) -> None:
    with TicketStore.open(tmp_path / "t.db", audit_key=None) as store:
        _, made = run_policy(store, {0: 0.3, 1: 0.3, 2: 0.3, 3: 0.01, 4: 0.01}, action="ticket")
    events = [event for _, event in made if event is not None]
    [row] = detection_rows(events)
    assert (row.drift_started, row.detected_at, row.recovered) == (window(0).start, window(2).end, window(4).end)
    assert (row.time_to_detect, row.windows_to_detect, row.time_to_recover) == (3 * STEP, 3.0, 5 * STEP)
    assert row.to_dict()["time_to_detect_seconds"] == 900.0

    # plotly and jinja2 come with the report extra the test command installs: no skip.
    from drift.report import render_html

    page = render_html({"events": 1}, [finding(i, 0.3) for i in range(3)], events)
    section = page[page.index("<h2>Time to detect</h2>"):]
    section = section[:section.index("</table>")]
    assert "DRIFT-1" in section and "2026-11-27 10:00" in section and "2026-11-27 10:15" in section
    assert "15m" in section and "25m" in section and ">3<" in section


def test_tickets_show_prints_the_timeline(tmp_path: Path) -> None:
    from drift.cli.tickets import _ticket_summary

    with TicketStore.open(tmp_path / "t.db", audit_key=None) as store:
        _, [(_, event)] = run_policy(store, {0: 0.3, 1: 0.3, 2: 0.3}, action="ticket")
        assert event is not None
        text = _ticket_summary({**store.get(event.ticket.id).to_dict(), "context": {}}, "drift.yaml")
    [line] = [line for line in text.splitlines() if line.split()[0] == "timeline"]
    assert f"drift started {window(0).start.isoformat()}, detected {window(2).end.isoformat()}, recovered -" in line
    assert "acknowledged -, resolved -" in line
