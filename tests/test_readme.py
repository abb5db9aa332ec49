"""The README's account of the demo is checked against what ``drift demo --json`` reports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_readme_says_what_the_demo_does(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "demo", "--json", "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300, check=True,
    )
    document = json.loads(proc.stdout)
    section = _section((ROOT / "README.md").read_text(encoding="utf-8"), "What the demo shows")

    assert _number(re.search(r"([\d,]+) lines of events", section).group(1)) == document["events"]  # type: ignore[union-attr]
    assert int(re.search(r"(\d+) windows", section).group(1)) == document["windows"]  # type: ignore[union-attr]
    malformed, late = map(int, re.search(r"(\d+) malformed messages and (\d+) late event", section).groups())  # type: ignore[union-attr]
    assert (malformed + late, late) == (document["dlq"]["total"], document["late"])
    assert _number(re.search(r"the ([\d,]+) feature events", section).group(1)) == document["feature_events"]  # type: ignore[union-attr]

    rows = re.findall(r"^\| (DRIFT-\d+) \| ([\w-]+) \| tenant `(\w+)` \| `([\w.]+)` \| `(\w+)` \|", section, re.M)
    claimed = {(ticket, model, tenant, detector, feature) for ticket, model, tenant, detector, feature in rows}
    opened = {
        (e["ticket"]["id"], e["ticket"]["model"], dict(p.split("=", 1) for p in e["ticket"]["cohort_key"].split("|")[1:])["tenant"],
         e["ticket"]["detector"], e["ticket"]["feature"])
        for e in document["tickets"] if e["kind"] == "opened"
    }
    assert claimed == opened
    # Every finding at warn or alert belongs to one of those problems: "nothing else alerts".
    problems = {(model, tenant, detector, feature) for _, model, tenant, detector, feature in claimed}
    for finding in document["findings"]:
        key = (finding["model"], finding["cohort"].get("tenant"), finding["detector"], finding["feature"])
        assert key in problems, key


def test_the_commands_the_demo_suggests_work_from_where_it_ran(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "drift.cli", "demo", "--dir", "here"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, check=True)
    steps = run.stdout[run.stdout.index("\nnext:\n"):].splitlines()[2:]
    commands = [line.split("#")[0].split() for line in steps if line.strip().startswith("drift ")]
    assert [c[1] for c in commands] == ["tickets", "tickets", "backtest", "review"]
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", "drift.cli", *command[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, (command, proc.stderr)
    assert (tmp_path / "here" / "report.html").exists()
