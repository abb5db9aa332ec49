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
from typing import Any
from urllib.parse import urlsplit

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


PLACEHOLDER_BASE = "https://runbooks.example.invalid/drift/operations.md"
TICKET_ALERTS = ("DriftAlert", "TrainingServingSkew", "DataQualityAlert")


def _rules(path: Path = RULES) -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]


def _alerts(path: Path = RULES) -> list[dict[str, Any]]:
    return [r for r in _rules(path) if "alert" in r]


def test_every_alert_has_an_absolute_runbook_url_with_a_section() -> None:
    anchors = _anchors(RUNBOOK.read_text(encoding="utf-8"))
    alerts = _alerts()
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        base, _, anchor = url.partition("#")
        # The placeholder base, replaced at deploy time by render.sh: absolute, never relative.
        assert base == PLACEHOLDER_BASE, f"{rule['alert']}: {url}"
        assert urlsplit(url).scheme == "https" and urlsplit(url).netloc, url
        assert anchor == rule["alert"].lower()
        assert anchor in anchors, f"docs/operations.md has no section '{rule['alert']}' for {url}"
    names = {r["alert"] for r in alerts}
    assert {*TICKET_ALERTS, "DeadLetterGrowth", "ConsumerLagHigh", "FlowStalled"} <= names


def test_render_sets_the_runbook_base(tmp_path: Path) -> None:
    base = "https://git.example.com/ml/drift/blob/main/docs/operations.md"
    done = subprocess.run([str(RULES.parent / "render.sh"), str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "RUNBOOK_BASE": base}, timeout=60)
    assert done.returncode == 0, done.stderr
    rendered = _alerts(tmp_path / "alerts.yml")
    assert [r["alert"] for r in rendered] == [r["alert"] for r in _alerts()]
    for rule in rendered:
        assert rule["annotations"]["runbook_url"] == f"{base}#{rule['alert'].lower()}"
    checked = run("check", "rules", str(tmp_path / "alerts.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (tmp_path / "prometheus.yml").read_text() == (RULES.parent / "prometheus.yml").read_text()


@pytest.mark.parametrize("base", ["", "docs/operations.md", "ftp://host/ops.md", "https://host/ops.md#x"])
def test_render_refuses_a_base_that_is_not_an_absolute_url(tmp_path: Path, base: str) -> None:
    done = subprocess.run([str(RULES.parent / "render.sh"), str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "RUNBOOK_BASE": base}, timeout=60)
    assert done.returncode == 2 and "RUNBOOK_BASE" in done.stderr
    assert not (tmp_path / "alerts.yml").exists()


def test_detection_alerts_page_on_ticket_state_not_on_findings() -> None:
    """Drift, skew and quality alerts read the ticket-state recording rule, hold with for: and
    keep_firing_for:, take their severity from the ticket and name cohorts and features."""
    rules = {r.get("record") or r["alert"]: r for r in _rules()}
    problems = rules["drift:problems_open"]["expr"]
    assert "drift:tickets_open:latest" in problems and "drift_alert_only_active" in problems
    assert "drift_tickets_open" in rules["drift:tickets_open:latest"]["expr"]
    for name in TICKET_ALERTS:
        rule = rules[name]
        assert rule["expr"].startswith("drift:problems_open{"), name
        assert "drift_findings_total" not in rule["expr"]
        assert rule["for"] and rule["keep_firing_for"], name
        # The severity label comes from the ticket (drift:problems_open), never fixed per detector.
        assert "severity" not in rule.get("labels", {}), name
        assert "drift:ticket_info:latest" in rule["annotations"]["description"]
        assert ".Labels.cohort" in rule["annotations"]["description"]
        assert ".Labels.feature" in rule["annotations"]["description"]
    # Every detector lands in exactly one of the three alerts.
    selectors = {name: rules[name]["expr"] for name in TICKET_ALERTS}
    assert selectors["DriftAlert"] == 'drift:problems_open{detector!~"skew.*|quality\\\\..*"}'
    assert selectors["TrainingServingSkew"] == 'drift:problems_open{detector=~"skew.*"}'
    assert selectors["DataQualityAlert"] == 'drift:problems_open{detector=~"quality\\\\..*"}'
