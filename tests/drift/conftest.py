"""A real PostgreSQL server for the ticket store tests, one per test session.

The server comes from the Debian ``postgresql`` package (``initdb``/``pg_ctl``
under ``/usr/lib/postgresql/<version>/bin``, or ``PG_BIN``), is initialised in a
temporary folder and listens on a free port of 127.0.0.1 with password
authentication, so the store's "password from the environment" path is the one
tested. Set ``DRIFT_TEST_POSTGRES_URL`` (no password; ``PGPASSWORD`` in the
environment) to use a running server instead. A missing PostgreSQL fails the
tests that need it: skipping would hide a broken CI image.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "drift-test-" + uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def _pg_bin() -> Path | None:
    explicit = os.environ.get("PG_BIN")
    if explicit:
        return Path(explicit)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    external = os.environ.get("DRIFT_TEST_POSTGRES_URL", "").strip()
    if external:
        from urllib.parse import urlsplit

        parts = urlsplit(external)
        yield PostgresServer(parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres",
                             os.environ.get("PGPASSWORD", ""))
        return
    bin_dir = _pg_bin()
    problem = ""
    if bin_dir is None or not (bin_dir / "initdb").exists():
        problem = ("PostgreSQL is not installed: no initdb under /usr/lib/postgresql/*/bin or on PATH "
                   "(install the Debian package 'postgresql', or set PG_BIN or DRIFT_TEST_POSTGRES_URL)")
    if problem:
        pytest.fail(problem, pytrace=False)
    assert bin_dir is not None
    # initdb refuses to run as root: run the server as the package's user then.
    run_as: dict[str, Any] = {}
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root and there is no 'postgres' user to run the test server as",
                        pytrace=False)
        run_as = {"user": owner.pw_uid, "group": owner.pw_gid}
    folder = Path(tempfile.mkdtemp(prefix="drift-pg-"))
    data, pwfile = folder / "data", folder / "pw"
    pwfile.write_text(PASSWORD)
    if owner is not None:
        for path in (folder, pwfile):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C"}

    def run(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, **run_as)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr or done.stdout}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "drift", "--pwfile", str(pwfile),
            "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(folder / "log"),
            "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        problem = f"could not start PostgreSQL for the tests: {exc}"
    if problem:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(problem, pytrace=False)
    try:
        yield PostgresServer("127.0.0.1", port, "drift", PASSWORD)
    finally:
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, env=env, timeout=60, **run_as)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty database; its URL has no password (PGPASSWORD is set for the test)."""
    import psycopg

    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.url(name)


StoreFactory = Callable[..., Any]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """``open_any_store(now=clock) -> TicketStore`` on SQLite and on a real PostgreSQL.

    Every call opens another connection to the same database, as a second
    worker or the CLI would.
    """
    from drift.tickets import TicketStore

    opened: list[Any] = []
    if request.param == "sqlite":
        path = tmp_path / "tickets.db"

        def factory(**kwargs: Any) -> Any:
            store = TicketStore.open(path, **kwargs)
            opened.append(store)
            return store
    else:
        url = request.getfixturevalue("postgres_url")
        from drift.tickets.postgres import open_postgres

        def factory(**kwargs: Any) -> Any:
            store = open_postgres(url, **kwargs)
            opened.append(store)
            return store

    yield factory
    for store in opened:
        # A SQLite store opened in a test's thread can only be closed there.
        with contextlib.suppress(Exception):
            store.close()
