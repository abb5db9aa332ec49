"""``drift backtest`` on the bundled history: JSON against replay, and the report in a real browser.

The report is opened in headless Chromium (Debian's ``chromium``), started here.
A missing browser fails these tests: skipping would hide a broken CI setup
(``deploy/test-deps.sh`` installs it).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from connectors.files import write_jsonl
from drift import demo
from drift.findings import Cohort, Finding, Severity, Window
from drift.report import what_if
from flows.backtest import progress_for

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Set on window load by the probe the test adds to a copy of the report: what the
# browser made of every <img> once the page (images included) had loaded.
RENDER_PROBE = """<script>
window.addEventListener("load", function () {
  var out = Array.prototype.map.call(document.images, function (img) {
    return {alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight};
  });
  var pre = document.createElement("pre");
  pre.id = "render-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def drift(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drift.cli", *args], capture_output=True, text=True,
                          timeout=240, cwd=cwd, check=False)


def _workspace(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "drift.yaml"
    config.write_text(demo.config_text(), encoding="utf-8")
    demo.write_references(folder)
    write_jsonl(folder / "events.jsonl", demo.events().lines)
    return config


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return str(shutil.which(name))
    pytest.fail("headless Chromium is needed to check the backtest report: apt-get install -y chromium "
                "(deploy/test-deps.sh), or set CHROMIUM to its path")


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    """``drift backtest --json`` on the bundled history: (document, report path, stderr)."""
    folder = tmp_path_factory.mktemp("backtest")
    config = _workspace(folder)
    report = folder / "out" / "report.html"
    proc = drift("backtest", "--config", str(config), "--events", str(folder / "events.jsonl"),
                 "--report", str(report), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), report, proc.stderr


def test_backtest_json_matches_replay(backtest: tuple[dict[str, Any], Path, str], tmp_path: Path) -> None:
    document, report, stderr = backtest
    config = _workspace(tmp_path)
    replay = drift("replay", "--config", str(config), "--events", str(tmp_path / "events.jsonl"), "--json")
    assert replay.returncode == 0, replay.stderr
    expected = json.loads(replay.stdout)
    # Same code, same numbers: every key of replay's document, findings value for value.
    assert document["findings"] == expected["findings"]
    for key in ("events", "decoded", "late", "dlq", "windows", "findings_total"):
        assert document[key] == expected[key], key
    strip = ("at", "context", "id")
    assert [{k: v for k, v in t.items() if k not in strip} | {"ticket": _ticket_core(t["ticket"])}
            for t in document["tickets"]] == \
        [{k: v for k, v in t.items() if k not in strip} | {"ticket": _ticket_core(t["ticket"])}
         for t in expected["tickets"]]
    assert document["report"] == str(report)
    # Not a terminal: no progress line.
    assert "\r" not in stderr and "events]" not in stderr
    # The backtest kept its tickets in a scratch store, not the config's.
    assert not (report.parent.parent / "drift-tickets.db").exists()
    assert (tmp_path / "drift-tickets.db").exists()


def _ticket_core(ticket: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ticket.items() if k not in ("opened_at", "updated_at", "last_finding")}


def test_what_if_at_factor_one_is_the_runs_alert_count(backtest: tuple[dict[str, Any], Path, str]) -> None:
    document, _, _ = backtest
    rows = document["what_if"]
    assert {r["factor"] for r in rows} == {0.5, 0.75, 1.0, 1.5, 2.0}
    for detector in {r["detector"] for r in rows}:
        alerts = [f for f in document["findings"] if f["detector"] == detector and f["severity"] == "alert"]
        by_factor = {r["factor"]: r for r in rows if r["detector"] == detector}
        assert by_factor[1.0]["n_alert_findings"] == len(alerts), detector
        assert by_factor[1.0]["n_series"] == len({f["fingerprint"] for f in alerts}), detector
        counts = [by_factor[f]["n_alert_findings"] for f in sorted(by_factor)]
        assert counts == sorted(counts, reverse=True), detector  # stricter never alerts more
    psi = {r["factor"]: r for r in rows if r["detector"] == "psi"}
    assert psi[1.0]["alert_level"] == 0.25 and psi[2.0]["alert_level"] == 0.5


class _ReportDom(HTMLParser):
    """The ticket table's rows and the render probe's text, from Chromium's dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.ticket_rows: list[list[str]] = []
        self.images: list[str] = []
        self.probe = ""
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_probe = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._table = attributes.get("id")
        elif tag == "tr" and self._table == "tickets":
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(attributes.get("src") or "")
        elif tag == "pre" and attributes.get("id") == "render-check":
            self._in_probe = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.ticket_rows.append(self._row)
            self._row = None
        elif tag == "pre":
            self._in_probe = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_probe:
            self.probe += data


def test_report_renders_in_headless_chromium(backtest: tuple[dict[str, Any], Path, str], tmp_path: Path) -> None:
    document, report, _ = backtest
    page = report.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page  # self-contained: nothing to fetch
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", RENDER_PROBE + "</body>"), encoding="utf-8")
    browser = chromium()
    common = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
              f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dumped = subprocess.run([*common, "--dump-dom", probed.as_uri()], capture_output=True, text=True,
                            timeout=120, check=False)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _ReportDom()
    dom.feed(dumped.stdout)

    # Charts: one timeline per cohort and the top findings' histograms, all decoded by the browser.
    assert dom.probe, "the page's load handler did not run: " + dumped.stdout[-500:]
    rendered = json.loads(dom.probe)
    assert len(rendered) == len(dom.images) >= 5
    timelines = {r["alt"].removeprefix("timeline ") for r in rendered if r["alt"].startswith("timeline ")}
    assert timelines >= {f["cohort_key"] for f in document["findings"]} and len(timelines) >= 4
    assert any(r["alt"].startswith("histogram ") for r in rendered)
    for image in rendered:
        assert image["complete"] and image["width"] > 100 and image["height"] > 100, image
    for src in dom.images:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert data.startswith(PNG_MAGIC) and len(data) > 1000

    # One row per ticket of the run, in its last state, with routing and status; among
    # them the tickets of the demo's known shifts (and none for the stable cohorts).
    last = {t["ticket"]["id"]: t["ticket"] for t in document["tickets"]}
    assert [r[:3] for r in dom.ticket_rows] == [[t["id"], t["action"], t["status"]] for t in last.values()]
    assert [(r[3], r[4], r[5]) for r in dom.ticket_rows] == \
        [(t["cohort_key"], t["detector"], t["feature"] or "-") for t in last.values()]
    globex = "credit-risk|model_version=3.2.0|tenant=globex|region=us-east-1"
    acme = "credit-risk|model_version=3.2.0|tenant=acme|region=eu-west-1"
    rows = {(r[3], r[4], r[5]): r for r in dom.ticket_rows}
    assert set(rows) >= {
        (globex, "psi", "income"), (globex, "psi", "country"), (acme, "quality.null_rate", "income"),
        (f"{demo.DOC_MODEL}|tenant={demo.DOC_SHIFTED_TENANT}", "embedding", "embedding"),
    }
    assert not any(key[0] == f"{demo.DOC_MODEL}|tenant={demo.DOC_STABLE_TENANT}" for key in rows)
    for key in [(globex, "psi", "income"), (globex, "psi", "country")]:
        assert rows[key][0].startswith("DRIFT-") and rows[key][1] == "ticket" and rows[key][2] == "open"
        assert rows[key][6] == "alert"

    # And the page paints: a screenshot of it is a real, non-trivial PNG.
    shot = tmp_path / "report.png"
    painted = subprocess.run([*common, "--window-size=1400,2000", f"--screenshot={shot}", report.as_uri()],
                             capture_output=True, text=True, timeout=120, check=False)
    assert painted.returncode == 0, painted.stderr[-2000:]
    png = shot.read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 50_000


def _finding(detector: str, value: float, warn: float, alert: float, evidence: dict[str, Any] | None = None,
             minutes: int = 0, feature: str = "x") -> Finding:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)
    return Finding(detector, Cohort("m", (("tenant", "t"),)), Window(start, start + timedelta(minutes=30)),
                   feature, value, Severity.of(value, warn, alert), warn, alert, 100, 1000, "reference",
                   evidence or {})


@pytest.mark.parametrize(
    ("factor", "expected_psi", "expected_p"),
    [(0.5, 3, 2), (1.0, 2, 1), (2.0, 1, 0)],
)
def test_what_if_scales_levels_towards_stricter(factor: float, expected_psi: int, expected_p: int) -> None:
    findings = [
        _finding("psi", 0.2, 0.1, 0.25), _finding("psi", 0.3, 0.1, 0.25, minutes=30),
        _finding("psi", 0.6, 0.1, 0.25, minutes=60),
        # p-value levels: smaller is worse; x2 halves the level (0.01 -> 0.005).
        _finding("embedding", 0.1, 0.05, 0.01, {"levels_on": "p_value", "p_value": 0.006}),
        _finding("embedding", 0.1, 0.05, 0.01, {"levels_on": "p_value", "p_value": 0.015}, minutes=30),
        _finding("embedding", 0.1, 0.05, 0.01, {"levels_on": "p_value", "p_value": 0.5}, minutes=60),
    ]
    rows = {(r["detector"], r["factor"]): r for r in what_if(findings, factors=(factor,))}
    assert rows[("psi", factor)]["n_alert_findings"] == expected_psi
    assert rows[("embedding", factor)]["n_alert_findings"] == expected_p
    assert rows[("embedding", factor)]["levels_on"] == "p_value"


def test_progress_only_on_a_terminal(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"{}\n" * 10)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_for(events, io.StringIO()) is None
    screen = Terminal()
    show = progress_for(events, screen)
    assert show is not None
    show(5)
    assert screen.getvalue().startswith("\rbacktest [") and "5/10 events" in screen.getvalue()
