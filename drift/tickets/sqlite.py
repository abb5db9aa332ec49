"""The ticket store on SQLite: the embedded default, one file in WAL mode.

Writers serialise on ``BEGIN IMMEDIATE``, so every worker process of the stream
job and the CLI can share one file. Only the standard library is used.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from drift.errors import TicketStoreError
from drift.tickets.database import Dialect, Row, Tx

__all__ = ["SqliteDatabase"]

# How long a writer waits for another worker's transaction before failing.
# Writes are a handful of small statements, so seconds of waiting means a
# stuck process, not ordinary contention.
_BUSY_TIMEOUT_MS: Final = 30_000


class _SqliteTx:
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        row = self._conn.execute(sql, tuple(params)).fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return [dict(row) for row in self._conn.execute(sql, tuple(params)).fetchall()]

    def run(self, sql: str, params: Sequence[object] = ()) -> None:
        self._conn.execute(sql, tuple(params))

    def run_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._conn.executemany(sql, rows)

    def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        row = self._conn.execute(sql, tuple(params)).fetchone()
        return int(row[0])

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        self._conn.execute(f"PRAGMA user_version = {int(version)}")


class SqliteDatabase:
    """One SQLite file in WAL mode; one connection, used from the thread that opened it."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None turns off the module's implicit
            # transactions, so `write` alone decides where one starts.
            self._conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except (OSError, sqlite3.Error) as exc:
            raise TicketStoreError(f"cannot open ticket store {self.location!r}: {exc}") from exc
        self._conn.row_factory = sqlite3.Row
        try:
            # The busy timeout comes first: switching to WAL needs a lock that
            # another worker opening the same file may hold for a moment.
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            # WAL lets readers (the CLI, other workers) run beside the one
            # writer. `synchronous` keeps its default (FULL): a committed window
            # must survive a power cut, or the stream could resume past events
            # whose tickets were lost.
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            self._conn.close()
            raise TicketStoreError(f"cannot open ticket store {self.location!r}: {exc}") from exc

    @contextmanager
    def write(self, doing: str) -> Iterator[Tx]:
        # BEGIN IMMEDIATE takes the write lock before the first read, so the
        # "is there a live ticket?" check and the insert that follows cannot
        # interleave with another worker's: there is no window for a duplicate.
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise TicketStoreError(f"cannot {doing} ticket store {self.location!r}: {exc}") from exc
        try:
            yield _SqliteTx(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the failed statement may have rolled back already
            if isinstance(exc, sqlite3.Error):
                raise TicketStoreError(
                    f"cannot {doing} ticket store {self.location!r}: {exc}"
                ) from exc
            raise

    @contextmanager
    def read(self, doing: str) -> Iterator[Tx]:
        # A deferred transaction reads one snapshot in WAL mode and takes no
        # write lock, so the CLI never blocks the stream job.
        conn = self._conn
        try:
            conn.execute("BEGIN")
            try:
                yield _SqliteTx(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise TicketStoreError(f"cannot {doing} ticket store {self.location!r}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()
