"""The alert rules in deploy/prometheus/, checked and unit-tested with promtool.

promtool comes from the Debian package ``prometheus`` (or set PROMTOOL). A
missing promtool fails: skipping would let broken rules reach production.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
RUNBOOK = ROOT / "docs" / "operations.md"


def promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not found:
        pytest.fail("promtool is not installed (Debian package 'prometheus', or set PROMTOOL)", pytrace=False)
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=RULES.parent, timeout=120)


def test_promtool_check_rules() -> None:
    done = run("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_test_rules() -> None:
    done = run("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def _anchors(markdown: str) -> set[str]:
    # GitHub's anchors: lower case, punctuation dropped, spaces to dashes.
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", markdown, flags=re.M)}


def test_every_alert_has_a_runbook_section() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    anchors = _anchors(RUNBOOK.read_text(encoding="utf-8"))
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md", rule["alert"]
        assert anchor == rule["alert"].lower()
        assert anchor in anchors, f"docs/operations.md has no section '{rule['alert']}' for {url}"
    alerts = {r["alert"] for r in rules}
    assert {"DriftAlert", "TrainingServingSkew", "DataQualityAlert", "DeadLetterGrowth",
            "ConsumerLagHigh", "FlowStalled"} <= alerts
