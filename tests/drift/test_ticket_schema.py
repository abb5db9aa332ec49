"""The versioned migrations: a store left at any version upgrades to the current schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drift.errors import TicketStoreError
from drift.findings import Cohort, Finding, Severity, Window
from drift.tickets import SCHEMA_VERSION, Database, TicketStatus, TicketStore, Tx, schema
from drift.tickets.schema import MIGRATIONS, DIALECTS
from drift.tickets.sqlite import SqliteDatabase

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

# What the store's SQL reads and writes, table by table, in column order: written out
# here rather than derived from the migrations, so a migration that loses or reorders a
# column fails.
COLUMNS = {
    "tickets": ["seq", "fingerprint", "status", "action", "model", "cohort", "cohort_key", "detector",
                "feature", "severity", "first_window_start", "last_window_end", "opened_at", "updated_at",
                "occurrences", "worst_value", "last_value", "last_finding", "active", "suppressed",
                "resolved_at", "requester", "approvals_required", "review_round", "impact", "audit_id",
                "drift_started", "detected_at", "acknowledged_at", "recovered"],
    "ticket_windows": ["fingerprint", "window_start", "window_end", "ticket_seq", "value", "severity",
                       "recorded_at"],
    "window_traffic": ["model", "window_start", "cohort_key", "window_end", "n_events"],
    "ticket_reviews": ["ticket_seq", "round", "reviewer", "verdict", "comment", "at"],
    "retrain_outbox": ["id", "request_key", "ticket_seq", "created_at", "payload", "published_at"],
    "audit_log": ["id", "at", "actor", "action", "ticket_id", "detail", "prev_hash", "hash", "key_id", "mac"],
    "ticket_outbox": ["id", "audit_id", "kind", "ticket_id", "event", "created_at", "published_at"],
}


def columns(tx: Tx, dialect: str, table: str) -> list[str]:
    if dialect == "sqlite":
        rows = tx.all("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))
        return [str(r["name"]) for r in rows]
    rows = tx.all("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                  " AND table_name = ? ORDER BY ordinal_position", (table,))
    return [str(r["column_name"]) for r in rows]


@pytest.fixture(params=["sqlite", "postgresql"])
def connect(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Database]:
    """Opens a new connection to one empty database each call."""
    if request.param == "sqlite":
        return lambda: SqliteDatabase(tmp_path / "tickets.db")
    url = request.getfixturevalue("postgres_url")
    from drift.tickets.postgres import PostgresDatabase

    return lambda: PostgresDatabase(url)


def leave_at(db: Database, version: int) -> None:
    """Run the migrations up to ``version`` only, as a drift of that version would have."""
    with db.write("migrate") as tx:
        assert tx.schema_version() == 0  # also creates PostgreSQL's version table, as opening does
        for migration in MIGRATIONS[:version]:
            for statement in migration.statements(DIALECTS[db.dialect]):
                tx.run(statement)
        tx.set_schema_version(version)


def alert(i: int, value: float = 0.4) -> Finding:
    window = Window(T0 + i * timedelta(minutes=5), T0 + (i + 1) * timedelta(minutes=5))
    return Finding("psi", Cohort("credit-risk"), window, "age", value, Severity.ALERT, 0.1, 0.25, 900, 5000,
                   "reference")


def test_versions_are_numbered_one_by_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))
    for dialect in DIALECTS:
        assert schema(dialect, SCHEMA_VERSION) == []
        assert len(schema(dialect, 0)) == sum(len(m.statements(DIALECTS[dialect])) for m in MIGRATIONS)


@pytest.mark.parametrize("version", range(SCHEMA_VERSION + 1))
def test_a_store_left_at_any_version_upgrades_and_works(connect: Callable[[], Database], version: int) -> None:
    db = connect()
    leave_at(db, version)
    if version >= 1:
        # A ticket written by the first version: the columns added later take their defaults.
        with db.write("seed") as tx:
            tx.run(
                "INSERT INTO tickets (fingerprint, status, action, model, cohort, cohort_key, detector, feature,"
                " severity, first_window_start, last_window_end, opened_at, updated_at, occurrences,"
                " worst_value, last_value, last_finding)"
                " VALUES ('old', 'open', 'ticket', 'credit-risk', '{}', 'credit-risk', 'psi', 'age', 'alert',"
                " ?, ?, ?, ?, 1, 0.3, 0.3, '{}')",
                (T0.isoformat(), (T0 + timedelta(minutes=5)).isoformat(), T0.isoformat(), T0.isoformat()),
            )
    db.close()

    db = connect()
    with TicketStore(db, audit_key=None) as store:
        with db.write("inspect") as tx:
            assert tx.schema_version() == SCHEMA_VERSION
            assert {table: columns(tx, db.dialect, table) for table in COLUMNS} == COLUMNS
        if version >= 1:
            old = store.get("DRIFT-1")
            assert (old.active, old.suppressed, old.resolved_at, old.requester) == (True, 0, None, None)
            assert (old.approvals_required, old.review_round, old.impact) == (1, 0, {})
        event = store.record(alert(3))
        assert event is not None and event.kind == "opened"
        store.set_status(event.ticket.id, TicketStatus.RESOLVED)
        assert store.record(alert(4), cooldown=timedelta(minutes=30)) is None  # within the cooldown
        reopened = store.record(alert(12), cooldown=timedelta(minutes=30))
        assert reopened is not None and reopened.kind == "reopened" and reopened.ticket.suppressed == 1
        assert len(store.pending_events()) == 2
        if version == 0:
            assert store.verify_audit().ok
        with pytest.raises(TicketStoreError, match="append-only"), db.write("edit") as tx:
            tx.run("UPDATE audit_log SET actor = 'mallory'")


def test_opening_again_runs_nothing(connect: Callable[[], Database]) -> None:
    TicketStore(connect(), audit_key=None).close()
    with TicketStore(connect(), audit_key=None) as store:
        assert store.record(alert(0)) is not None
        assert store.list()[0].id == "DRIFT-1"
