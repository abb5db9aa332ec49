"""The command line does not harm what it did not make: scratch stores for history, a demo that
keeps a user's folder, ids that cannot overflow, and tables that print no terminal controls."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.files import write_jsonl
from drift import demo
from drift.cli import main
from drift.findings import Cohort, Finding, Severity, Window
from drift.tickets import TicketStore

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def drift(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drift.cli", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd, check=False)


def _workspace(folder: Path) -> Path:
    config = folder / "drift.yaml"
    config.write_text(demo.config_text(), encoding="utf-8")
    demo.write_references(folder)
    write_jsonl(folder / "events.jsonl", demo.events().lines)
    return config


def _n_tickets(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM tickets").fetchone()[0])


def test_replay_keeps_tickets_in_a_scratch_store_unless_store_names_one(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    live = tmp_path / "drift-tickets.db"
    proc = drift("replay", "--config", str(config), "--events", str(tmp_path / "events.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert "scratch store" in proc.stdout
    assert not live.exists(), "replay wrote into the config's ticket store"

    kept = tmp_path / "history" / "tickets.db"
    proc = drift("replay", "--config", str(config), "--events", "events.jsonl", "--json",
                 "--store", "sqlite:///history/tickets.db", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not live.exists()
    assert _n_tickets(kept) == len({t["ticket"]["id"] for t in json.loads(proc.stdout)["tickets"]}) > 0

    bad = drift("replay", "--config", str(config), "--events", "events.jsonl", "--store", "mysql://x", cwd=tmp_path)
    assert bad.returncode == 2 and "--store" in bad.stderr


def test_backtest_keeps_the_config_store_untouched_unless_store_names_one(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    live = tmp_path / "drift-tickets.db"
    with TicketStore.open(live):
        pass  # an existing, empty live store
    proc = drift("backtest", "--config", str(config), "--events", str(tmp_path / "events.jsonl"),
                 "--report", str(tmp_path / "report.html"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert _n_tickets(live) == 0
    proc = drift("backtest", "--config", str(config), "--events", str(tmp_path / "events.jsonl"),
                 "--report", str(tmp_path / "report.html"), "--json", "--store", f"sqlite:///{tmp_path / 'bt.db'}")
    assert proc.returncode == 0, proc.stderr
    assert _n_tickets(live) == 0 and _n_tickets(tmp_path / "bt.db") > 0


def test_demo_refuses_a_folder_that_is_not_a_demo_folder(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "baselines").mkdir(parents=True)
    (mine / "drift.yaml").write_text("version: 1  # my real config\n", encoding="utf-8")
    (mine / "baselines" / "credit-risk.json").write_text("{}", encoding="utf-8")
    (mine / "drift-tickets.db").write_bytes(b"my tickets")
    proc = drift("demo", "--dir", ".", cwd=mine)
    assert proc.returncode == 1
    assert "not empty and not a drift demo folder" in proc.stderr and "drift.yaml" in proc.stderr
    assert (mine / "drift.yaml").read_text(encoding="utf-8") == "version: 1  # my real config\n"
    assert (mine / "baselines" / "credit-risk.json").exists()
    assert (mine / "drift-tickets.db").read_bytes() == b"my tickets"

    # A new folder, and the same folder again: a demo folder is the demo's to replace.
    fresh = tmp_path / "fresh"
    assert drift("demo", "--json", "--dir", str(fresh)).returncode == 0
    again = drift("demo", "--json", "--dir", str(fresh))
    assert again.returncode == 0, again.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert drift("demo", "--json", "--dir", str(empty)).returncode == 0


def _config_with_store(folder: Path) -> str:
    path = folder / "drift.yaml"
    path.write_text("version: 1\nkafka: {bootstrap: '127.0.0.1:9'}\nmodels:\n  - name: credit-risk\n"
                    "    features: {age: {type: numeric}}\ntickets: {store: 'sqlite:///./tickets.db'}\n",
                    encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("ticket_id", ["DRIFT-99999999999999999999999", "DRIFT-9223372036854775808"])
def test_a_huge_ticket_id_is_an_error_not_a_traceback(tmp_path: Path, ticket_id: str) -> None:
    config = _config_with_store(tmp_path)
    with TicketStore.open(tmp_path / "tickets.db"):
        pass
    for args in (["tickets", "show", ticket_id], ["review", "approve", ticket_id]):
        result = CliRunner().invoke(main, [*args, "--config", config], env={"DRIFT_REVIEWER": "root"})
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert f"no ticket {ticket_id!r}" in result.stderr


def test_tables_escape_terminal_control_characters(tmp_path: Path) -> None:
    config = _config_with_store(tmp_path)
    hostile = Cohort("credit-risk", (("tenant", "acme\x1b[2J\x1b]0;owned\x07"), ("region", "eu\u202eus")))
    finding = Finding("psi", hostile, Window(T0, T0 + timedelta(minutes=5)), "age\x9b31m", 0.4, Severity.ALERT,
                      0.1, 0.25, 900, 5000, "reference")
    with TicketStore.open(tmp_path / "tickets.db") as store:
        store.record(finding, action="human_review")
    for args in (["tickets", "list"], ["review", "list"]):
        result = CliRunner().invoke(main, [*args, "--config", config])
        assert result.exit_code == 0, result.output
        out = result.stdout
        assert not any(ch in out for ch in "\x1b\x07\x9b\u202e"), repr(out)
        assert "acme\\x1b[2J\\x1b]0;owned\\x07" in out and "eu\\u202eus" in out
    # JSON output escapes them as JSON does.
    result = CliRunner().invoke(main, ["tickets", "list", "--json", "--config", config])
    assert "\x1b" not in result.stdout and json.loads(result.stdout)[0]["cohort"]["tenant"].startswith("acme\x1b")
