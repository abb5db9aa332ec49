"""The ticket store on PostgreSQL (psycopg 3), for production.

The same :class:`drift.tickets.TicketStore` runs on it: this module only
provides the :class:`drift.tickets.database.Database` it needs. Writers serialise on
one transaction-scoped advisory lock, the PostgreSQL counterpart of SQLite's
``BEGIN IMMEDIATE``, so "is there a live ticket?" and the insert that follows
never interleave between workers, and audit entries chain in one order.

The URL (``tickets.store: postgresql://drift@db:5432/drift``) carries no
password: libpq reads it from ``PGPASSWORD`` or a ``PGPASSFILE``. psycopg is imported
only when a store is opened, so SQLite users need not install it (the ``postgres`` extra).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from drift.errors import TicketStoreError
from drift.tickets.audit import AuditKey
from drift.tickets.database import Dialect, Row
from drift.tickets.store import TicketStore

__all__ = ["PostgresDatabase", "open_postgres"]

# Any constant works, as long as every drift writer of one database uses it.
_WRITE_LOCK: Final = 0x64726966  # "drif"

_PLACEHOLDER: Final = re.compile(r"\?")


def _redact(url: str) -> str:
    """The URL without a password, for messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


class _PgTx:
    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def _exec(self, sql: str, params: Sequence[object]) -> Any:
        # The store's SQL uses `?`; psycopg wants `%s` (and `%` escaped).
        text = _PLACEHOLDER.sub("%s", sql.replace("%", "%%")) if params else sql
        return self._conn.execute(text, tuple(params) if params else None)

    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        row = self._exec(sql, params).fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return [dict(row) for row in self._exec(sql, params).fetchall()]

    def run(self, sql: str, params: Sequence[object] = ()) -> None:
        self._exec(sql, params)

    def run_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            with self._conn.cursor() as cursor:
                cursor.executemany(_PLACEHOLDER.sub("%s", sql.replace("%", "%%")), [tuple(r) for r in rows])

    def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        row = self._exec(sql, params).fetchone()
        return int(next(iter(row.values())))

    def schema_version(self) -> int:
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS drift_schema (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " version INTEGER NOT NULL)"
        )
        row = self._conn.execute("SELECT version FROM drift_schema WHERE id = 1").fetchone()
        return 0 if row is None else int(row["version"])

    def set_schema_version(self, version: int) -> None:
        self._conn.execute(
            "INSERT INTO drift_schema (id, version) VALUES (1, %s)"
            " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            (int(version),),
        )


class PostgresDatabase:
    """One psycopg connection to the ticket database."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, connect_timeout: int = 10) -> None:
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise TicketStoreError(
                "tickets.store is a postgresql:// URL but psycopg is not installed; "
                "install it with: pip install 'psycopg[binary]>=3.1'"
            ) from exc
        self._psycopg = psycopg
        self.location = _redact(url)
        try:
            self._conn = psycopg.connect(url, autocommit=True, row_factory=dict_row,
                                         connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise TicketStoreError(f"cannot open ticket store {self.location!r}: {exc}") from exc

    @contextmanager
    def write(self, doing: str) -> Iterator[_PgTx]:
        psycopg = self._psycopg
        try:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                yield _PgTx(self._conn)
        except psycopg.Error as exc:
            raise TicketStoreError(f"cannot {doing} ticket store {self.location!r}: {exc}") from exc

    @contextmanager
    def read(self, doing: str) -> Iterator[_PgTx]:
        psycopg = self._psycopg
        try:
            with self._conn.transaction():
                self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield _PgTx(self._conn)
        except psycopg.Error as exc:
            raise TicketStoreError(f"cannot {doing} ticket store {self.location!r}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def open_postgres(url: str, now: Callable[[], datetime] = _utc_now, *,
                  audit_key: AuditKey | None | Literal["env"] = "env",
                  head_file: str | Path | None = None) -> TicketStore:
    """The ticket store in the PostgreSQL database at ``url`` (schema created if needed).

    ``audit_key``: as :class:`TicketStore` (default ``DRIFT_AUDIT_KEY``). ``head_file``: where
    the audit head is published (``tickets.audit_head``); none by default.
    """
    return TicketStore(PostgresDatabase(url), now, audit_key=audit_key, head_file=head_file)
