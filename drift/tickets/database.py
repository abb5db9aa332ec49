"""What the ticket store needs from a database: a transaction (:class:`Tx`) and a :class:`Database`.

The store's SQL is written once, with ``?`` placeholders, for both dialects;
:mod:`drift.tickets.sqlite` and :mod:`drift.tickets.postgres` implement these protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, TypeAlias

__all__ = ["Database", "Dialect", "Row", "Tx"]

Row: TypeAlias = dict[str, Any]
Dialect: TypeAlias = Literal["sqlite", "postgresql"]


class Tx(Protocol):
    """One open transaction (or autocommit reader) on the store's database.

    SQL uses ``?`` placeholders; a PostgreSQL backend translates them. Rows
    come back as plain dicts keyed by column name.
    """

    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None: ...

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Row]: ...

    def run(self, sql: str, params: Sequence[object] = ()) -> None: ...

    def run_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """:meth:`run` once per row of parameters, as one batch."""
        ...

    def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run an ``INSERT ... RETURNING <id column>`` and return the id."""
        ...

    def schema_version(self) -> int: ...

    def set_schema_version(self, version: int) -> None: ...


class Database(Protocol):
    """What the store needs from SQLite or PostgreSQL."""

    dialect: Dialect
    location: str
    """For messages: a path or a URL without its password."""

    def write(self, doing: str) -> AbstractContextManager[Tx]:
        """A transaction holding the store's write lock from its first statement."""
        ...

    def read(self, doing: str) -> AbstractContextManager[Tx]:
        """A consistent read (no lock held against writers)."""
        ...

    def close(self) -> None: ...
