"""``drift backtest`` on the bundled history: JSON against replay, and the report in a real browser.

The report is opened in headless Chromium (Debian's ``chromium``), started here, with
every host name unresolvable (it must draw from its own file), at 1024 and 1400 pixels:
no horizontal overflow, every chart drawn by Plotly, tick labels apart, a screenshot.
A missing browser fails these tests: skipping would hide a broken CI setup
(``deploy/test-deps.sh`` installs it).

The bundled config has no seasonal baseline, so the seasonal section is checked on a
variant written here: the demo's ``credit-risk`` with ``baseline: {seasonality:
hour_of_day}`` over three mornings of history whose income follows the hour (lower at
8:00, higher at 10:00), with globex's income x1.6 from 09:30 on the last morning. The
embedding projection is checked on the bundled history (tenant ``support``'s new topic).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml

from connectors.files import write_jsonl
from detectors.registry import build as build_detector
from drift import demo
from drift.baselines import SeasonalBaseline, period_of, score_window, slot_of
from drift.config import load_config
from drift.events import Decoder, InferenceEvent, RawMessage
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import NumericProfile, load_reference
from drift.report import binned_quantiles, what_if
from drift.summary import summarise
from flows.backtest import history_sections, progress_for, resolve_baseline_features, run_backtest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

REPORT_LIMIT = 5 * 1024 * 1024
"""The report is one file, plotly.js inlined: it stays under 5 MiB."""

# Added to a copy of the report: on load it opens every <details> (whose charts are drawn
# when opened), waits, and writes what the browser made of the page into <pre id="render-check">:
# the document's widths, each chart's box and whether Plotly drew it (an svg with traces),
# its tick labels with their boxes, and any element that sticks out to the right.
RENDER_PROBE = """<script>
window.addEventListener("load", function () {
  Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = true; });
  setTimeout(function () {
    var root = document.documentElement;
    function box(e) { var r = e.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; }
    var charts = Array.prototype.map.call(document.querySelectorAll("div.chart"), function (div) {
      var ticks = Array.prototype.map.call(div.querySelectorAll("g.xaxislayer-above g, g.yaxislayer-above g"), function (g) {
        var text = g.querySelector("text");
        return text ? {axis: g.getAttribute("class"), text: text.textContent, box: box(text)} : null;
      }).filter(function (t) { return t !== null && t.text !== ""; });
      return {id: div.id, kind: div.getAttribute("data-kind"), label: div.getAttribute("data-label"),
              svg: div.querySelectorAll("svg.main-svg").length,
              traces: div.querySelectorAll(".scatterlayer .trace, .barlayer .trace").length,
              box: box(div), ticks: ticks};
    });
    var outside = Array.prototype.filter.call(document.body.querySelectorAll("*"), function (e) {
      return e.getBoundingClientRect().right > root.clientWidth + 0.5 && !e.closest(".scroll") && !e.closest(".chart");
    }).map(function (e) { return e.tagName + "#" + e.id + "." + e.className; });
    var pre = document.createElement("pre");
    pre.id = "render-check";
    pre.textContent = JSON.stringify({scrollWidth: root.scrollWidth, clientWidth: root.clientWidth,
                                      bodyScrollWidth: document.body.scrollWidth, plotly: typeof Plotly,
                                      charts: charts, outside: outside.slice(0, 20)});
    document.body.appendChild(pre);
  }, 2000);
});
</script>"""

# Any host name fails to resolve: the report must draw everything from its own file.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND"


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
    # The backtest kept its tickets in a scratch store, not the config's; so did the replay.
    assert not (report.parent.parent / "drift-tickets.db").exists()
    assert not (tmp_path / "drift-tickets.db").exists()


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
    """The ticket and cohort tables' rows, the headings in order, and the render probe's text,
    from Chromium's dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.headings: list[str] = []
        self.probe = ""
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._heading: list[str] | None = None
        self._in_probe = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._table = attributes.get("id")
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag in ("h2", "h3"):
            self._heading = []
        elif tag == "pre" and attributes.get("id") == "render-check":
            self._in_probe = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._row:
                self.rows.setdefault(self._table, []).append(self._row)
            self._row = None
        elif tag in ("h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None
        elif tag == "pre":
            self._in_probe = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)
        if self._in_probe:
            self.probe += data


def _browser(tmp_path: Path) -> list[str]:
    return [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", OFFLINE,
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000"]


def _self_contained(report: Path) -> str:
    """The page, checked to fetch nothing: no script, style, image or frame from elsewhere,
    plotly.js inlined once, and under the size limit."""
    page = report.read_text(encoding="utf-8")
    assert report.stat().st_size < REPORT_LIMIT, report.stat().st_size
    assert not re.search(r"<(script|img|iframe|link|source)\b[^>]*\b(src|href)\s*=", page, re.IGNORECASE)
    assert "@import" not in page
    assert page.count("<script>") == 2  # plotly.js, then the few lines that draw the charts
    return page


def _render(report: Path, tmp_path: Path, width: int) -> tuple[dict[str, Any], _ReportDom]:
    """Open ``report`` in headless Chromium ``width`` pixels wide, offline, every <details>
    opened: the probe's measurements and the dumped DOM."""
    page = _self_contained(report)
    probed = tmp_path / f"probed-{width}.html"
    probed.write_text(page.replace("</body>", RENDER_PROBE + "</body>"), encoding="utf-8")
    dumped = subprocess.run([*_browser(tmp_path), f"--window-size={width},1200", "--dump-dom", probed.as_uri()],
                            capture_output=True, text=True, timeout=120, check=False)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _ReportDom()
    dom.feed(dumped.stdout)
    assert dom.probe, "the page's load handler did not run: " + dumped.stdout[-500:]
    measured: dict[str, Any] = json.loads(dom.probe)
    assert measured["plotly"] == "object"
    # The window is as wide as asked (less a scrollbar at most), and nothing is wider: tables
    # scroll inside their own box, charts follow their container.
    assert width - 20 <= measured["clientWidth"] <= width
    assert measured["scrollWidth"] <= measured["clientWidth"], measured["outside"]
    assert measured["bodyScrollWidth"] <= measured["clientWidth"], measured["outside"]
    assert measured["outside"] == []
    for chart in measured["charts"]:
        # Plotly drew it (its svg, with traces), inside the page, at a usable size.
        assert chart["svg"] >= 1 and chart["traces"] >= 1, chart["id"]
        assert chart["box"]["left"] >= 0 and chart["box"]["right"] <= measured["clientWidth"] + 0.5, chart
        assert chart["box"]["right"] - chart["box"]["left"] > 250, chart
        assert chart["box"]["bottom"] - chart["box"]["top"] > 150, chart
        _ticks_apart(chart)
    return measured, dom


def _ticks_apart(chart: dict[str, Any]) -> None:
    """No two tick labels of one axis overlap."""
    by_axis: dict[str, list[dict[str, Any]]] = {}
    for tick in chart["ticks"]:
        by_axis.setdefault(tick["axis"], []).append(tick)
    for axis, ticks in by_axis.items():
        for i, a in enumerate(ticks):
            for b in ticks[i + 1:]:
                apart = (a["box"]["right"] <= b["box"]["left"] + 0.5 or b["box"]["right"] <= a["box"]["left"] + 0.5
                         or a["box"]["bottom"] <= b["box"]["top"] + 0.5 or b["box"]["bottom"] <= a["box"]["top"] + 0.5)
                assert apart, (chart["id"], axis, a["text"], b["text"])


def _labels(measured: dict[str, Any], kind: str) -> list[str]:
    return [c["label"] for c in measured["charts"] if c["kind"] == kind]


def _screenshot(report: Path, tmp_path: Path, width: int) -> bytes:
    shot = tmp_path / f"report-{width}.png"
    painted = subprocess.run([*_browser(tmp_path), f"--window-size={width},2400", f"--screenshot={shot}",
                              report.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert painted.returncode == 0, painted.stderr[-2000:]
    png = shot.read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 50_000
    return png


@pytest.mark.parametrize("width", [1024, 1400])
def test_report_renders_in_headless_chromium(
    backtest: tuple[dict[str, Any], Path, str], tmp_path: Path, width: int,
) -> None:
    document, report, _ = backtest
    measured, dom = _render(report, tmp_path, width)

    # First the table of cohorts, then the tickets, their time to detect, the what-if table and the charts.
    assert dom.headings[:5] == ["Cohorts", "Tickets that would have been opened", "Time to detect",
                                "What if: alerts at other alert levels", "Timelines per model and cohort"]
    cohorts = {r[0]: r for r in dom.rows["cohorts"]}
    keys = {f["cohort_key"] for f in document["findings"]}
    assert set(cohorts) >= keys
    globex = "credit-risk|model_version=3.2.0|tenant=globex|region=us-east-1"
    acme = "credit-risk|model_version=3.2.0|tenant=acme|region=eu-west-1"
    stable = f"{demo.DOC_MODEL}|tenant={demo.DOC_STABLE_TENANT}"
    assert dom.rows["cohorts"][0][1].startswith("alert")  # the worst first
    assert cohorts[globex][1].startswith("alert psi · country")
    assert cohorts[globex][2] == "2026-11-02 09:30 alert psi · country"
    assert cohorts[acme][1].startswith("alert quality.null_rate · income")
    last = {t["ticket"]["id"]: t["ticket"] for t in document["tickets"]}
    assert cohorts[globex][4] == ", ".join(f"{t['id']} ({t['status']})" for t in last.values()
                                           if t["cohort_key"] == globex)
    assert cohorts[stable][1].startswith("ok embedding") and cohorts[stable][2:] == ["none", "0 of 6", "-"]

    # Charts: one timeline per cohort (and its other series behind a click), the top findings'
    # histograms and the top embedding finding's projection, every one drawn by Plotly.
    timelines = _labels(measured, "timeline")
    assert set(timelines) >= keys | {stable} and len(timelines) == len(set(timelines)) == len(cohorts)
    assert set(_labels(measured, "timeline-more")) <= set(timelines)
    assert _labels(measured, "histogram")
    support = f"{demo.DOC_MODEL}|tenant={demo.DOC_SHIFTED_TENANT}"
    projections = _labels(measured, "projection")
    assert projections and all(p.startswith(support + " embedding ") for p in projections)
    assert len(projections) == len(document["embedding_projections"])
    # No seasonal model in the bundled config: the section says so and draws nothing.
    assert not _labels(measured, "seasonal")
    assert "seasonal baseline: no model has baseline.seasonality other than none" in report.read_text()

    # Value panels (rates, PSI, distances) never go below zero; p-value panels are log scaled.
    for chart in measured["charts"]:
        if chart["kind"].startswith("timeline"):
            for tick in chart["ticks"]:
                if tick["axis"].startswith("y"):
                    assert not tick["text"].startswith(("-", "\u2212")), (chart["label"], tick["text"])
    # One window only (credit-limit's value skew): its axis spans that window, not a default range.
    single = next(c for c in measured["charts"] if c["label"].startswith("credit-limit|")
                  and c["kind"] == "timeline")
    assert any(t["text"].startswith("08:00") for t in single["ticks"] if t["axis"].startswith("x"))
    assert not any("2000" in t["text"] or "1970" in t["text"] for t in single["ticks"])

    # One row per ticket of the run, in its last state, with routing and status; among
    # them the tickets of the demo's known shifts (and none for the stable cohorts).
    rows_of = dom.rows["tickets"]
    assert [r[:3] for r in rows_of] == [[t["id"], t["action"], t["status"]] for t in last.values()]
    assert [(r[3], r[4], r[5]) for r in rows_of] == \
        [(t["cohort_key"], t["detector"], t["feature"] or "-") for t in last.values()]
    rows = {(r[3], r[4], r[5]): r for r in rows_of}
    assert set(rows) >= {
        (globex, "psi", "income"), (globex, "psi", "country"), (acme, "quality.null_rate", "income"),
        (support, "embedding", "embedding"),
    }
    assert not any(key[0] == stable for key in rows)
    for key in [(globex, "psi", "income"), (globex, "psi", "country")]:
        assert rows[key][0].startswith("DRIFT-") and rows[key][1] == "ticket" and rows[key][2] == "open"
        assert rows[key][6] == "alert"

    # Time to detect: every ticket, in the same order; the bundled config opens a ticket at its
    # first alerting window (consecutive_windows: 1), so each problem started with the ticket's
    # first window and was detected one window later.
    detection = dom.rows["detection"]
    assert [r[:4] for r in detection] == [r[:1] + r[3:6] for r in rows_of]
    for row, ticket_row in zip(detection, rows_of):
        assert row[4] == ticket_row[7] and row[5] > row[4] and row[7] == "1", row
        assert row[6] != "-"

    # And the page paints, offline: a screenshot of it is a real, non-trivial PNG.
    _screenshot(report, tmp_path, width)


def test_report_without_the_report_extra_names_the_install_command(tmp_path: Path) -> None:
    """Without plotly (here: made unimportable), ``drift backtest --report`` stops before the
    run and says which ``pip install`` to run."""
    config = _workspace(tmp_path)
    report = tmp_path / "report.html"
    script = ("import sys; sys.modules['plotly'] = None; from drift.cli import main; "
              "sys.argv = ['drift'] + sys.argv[1:]; main()")
    proc = subprocess.run([sys.executable, "-c", script, "backtest", "--config", str(config), "--events",
                           str(tmp_path / "events.jsonl"), "--report", str(report)],
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 1
    assert "pip install 'drift[report]'" in proc.stderr and "plotly" in proc.stderr
    assert "Traceback" not in proc.stderr and not report.exists()


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
    report = progress_for(events, screen, label="report")
    assert report is not None
    report(10)
    assert "\rreport [" in screen.getvalue() and "10/10 events" in screen.getvalue()


# --------------------------------------------------------------------------- embedding projection


def _window_embeddings(lines: list[bytes], tenant: str, start: datetime, end: datetime) -> np.ndarray:
    """The doc-classifier embeddings of ``tenant`` in [start, end), decoded here from both wire forms."""
    rows = []
    for line in lines:
        if b'"doc-classifier"' not in line:
            continue
        event = orjson.loads(line)
        ts = datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
        if event["tenant"] != tenant or not start <= ts < end:
            continue
        value = event["embedding"]
        if isinstance(value, dict):
            rows.append(np.frombuffer(base64.b64decode(value["b64"]), dtype="<f4"))
        else:
            rows.append(np.asarray(value, dtype=np.float32))
    return np.stack(rows).astype(np.float64)


def test_embedding_projection_is_pca_of_the_reference(backtest: tuple[dict[str, Any], Path, str]) -> None:
    document, _, _ = backtest
    [item] = document["embedding_projections"]
    alerts = [f for f in document["findings"] if f["detector"] == "embedding" and f["severity"] == "alert"]
    worst = min(alerts, key=lambda f: f["evidence"]["p_value"])
    assert (item["cohort_key"], item["window_start"]) == (worst["cohort_key"], worst["window_start"])
    assert item["cohort_key"] == f"{demo.DOC_MODEL}|tenant={demo.DOC_SHIFTED_TENANT}"
    assert item["severity"] == "alert" and item["p_value"] == worst["evidence"]["p_value"]

    # Independently: the reference's covariance, its two leading eigenvectors (largest loading
    # positive), and the window's embeddings decoded from the history file.
    reference = demo.doc_reference_columns()["embedding"].astype(np.float64)
    start = datetime.fromisoformat(item["window_start"])
    current = _window_embeddings(demo.events().lines, demo.DOC_SHIFTED_TENANT, start,
                                 datetime.fromisoformat(item["window_end"]))
    values, vectors = np.linalg.eigh(np.cov(reference, rowvar=False, bias=True))
    order = np.argsort(values)[::-1][:2]
    top = vectors[:, order]
    top *= np.sign(top[np.argmax(np.abs(top), axis=0), [0, 1]])
    mean = reference.mean(axis=0)
    assert item["explained_variance_ratio"] == pytest.approx(list(values[order] / values.sum()), rel=1e-6)
    # Both sets are below the sample bound (2000): every row is projected.
    assert item["reference"]["n"] == item["reference"]["n_total"] == len(reference)
    assert item["current"]["n"] == item["current"]["n_total"] == len(current)
    assert item["reference"]["centroid"] == pytest.approx([0.0, 0.0], abs=1e-6)
    coordinates = (current - mean) @ top
    assert item["current"]["centroid"] == pytest.approx(list(coordinates.mean(axis=0)), rel=1e-5, abs=1e-6)
    assert item["current"]["std"] == pytest.approx(list(coordinates.std(axis=0)), rel=1e-5)
    assert item["reference"]["std"] == pytest.approx(list(np.sqrt(values[order])), rel=1e-5)
    assert item["centroid_distance"] == pytest.approx(float(np.linalg.norm(coordinates.mean(axis=0))), rel=1e-5)


# --------------------------------------------------------------------------- seasonal baseline

SEASONAL_DAYS = 3
SEASONAL_PER_WINDOW = 200
HOURLY_INCOME = {8: 0.75, 9: 1.0, 10: 1.3}
SEASONAL_SHIFT_AT = demo.START + timedelta(minutes=90)
SEASONAL_FIRST_DAY = demo.START - timedelta(days=SEASONAL_DAYS - 1)
GLOBEX = "credit-risk|model_version=3.2.0|tenant=globex|region=us-east-1"
ACME = "credit-risk|model_version=3.2.0|tenant=acme|region=eu-west-1"


def seasonal_config() -> str:
    """The demo's credit-risk (PSI only) with an hour-of-day baseline over two days."""
    raw = yaml.safe_load(demo.config_text(value_skew=False))
    model = next(m for m in raw["models"] if m["name"] == "credit-risk")
    model["baseline"] = {"seasonality": "hour_of_day", "history": "2d", "min_samples": 300}
    model["detectors"] = [d for d in model["detectors"] if "psi" in d]
    raw["models"] = [model]
    return yaml.safe_dump(raw, sort_keys=False)


LATE_ID = "late-1"


def seasonal_events(seed: int = 7) -> list[bytes]:
    """08:00-11:00 on three days, 200 events per tenant and 30-minute window, in time order,
    and at the end one acme event of the first window (income 10 million): late, dead-lettered."""
    rng = np.random.default_rng(seed)
    out: list[tuple[datetime, bytes]] = []
    for day in range(SEASONAL_DAYS):
        for index in range(6):
            window = SEASONAL_FIRST_DAY + timedelta(days=day, minutes=30 * index)
            for tenant, region in (("acme", "eu-west-1"), ("globex", "us-east-1")):
                for offset in rng.uniform(0, 1800, SEASONAL_PER_WINDOW):
                    ts = window + timedelta(seconds=float(offset))
                    income = float(rng.lognormal(8.4, 0.45)) * HOURLY_INCOME[ts.hour]
                    if tenant == "globex" and ts >= SEASONAL_SHIFT_AT:
                        income *= 1.6
                    out.append((ts, orjson.dumps({
                        "event_id": f"s-{len(out)}", "ts": ts.isoformat().replace("+00:00", "Z"),
                        "model": "credit-risk", "model_version": "3.2.0", "tenant": tenant, "region": region,
                        "features": {"age": int(np.clip(round(rng.normal(41, 12)), 18, 95)),
                                     "income": round(income, 2),
                                     "country": str(rng.choice(demo.COUNTRIES, p=demo.COUNTRY_SHARES))},
                    })))
    out.sort(key=lambda item: item[0])
    late = orjson.dumps({
        "event_id": LATE_ID, "ts": (SEASONAL_FIRST_DAY + timedelta(minutes=5)).isoformat(), "model": "credit-risk",
        "model_version": "3.2.0", "tenant": "acme", "region": "eu-west-1",
        "features": {"age": 40, "income": 1e7, "country": "DE"},
    })
    return [line for _, line in out] + [late]


@pytest.fixture(scope="module")
def seasonal(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Path]:
    """``drift backtest --json`` on the seasonal variant: (document, report path, workspace)."""
    folder = tmp_path_factory.mktemp("seasonal")
    (folder / "drift.yaml").write_text(seasonal_config(), encoding="utf-8")
    demo.write_references(folder)
    write_jsonl(folder / "events.jsonl", seasonal_events())
    report = folder / "report.html"
    proc = drift("backtest", "--config", str(folder / "drift.yaml"), "--events", str(folder / "events.jsonl"),
                 "--report", str(report), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), report, folder


def _baselines_replay(folder: Path) -> dict[tuple[str, str], tuple[list[float], bool, str, int]]:
    """What drift.baselines expects for every income window, computed here without the report:
    the events decoded and cut into 30-minute windows per cohort, each window's expectation read
    with ``SeasonalBaseline.expected`` (the reference's shares below ``min_samples``), then fed
    with ``score_window``. Keyed by (cohort key, window start): (shares, seasonal, baseline, n)."""
    config = load_config(folder / "drift.yaml")
    model = config.model("credit-risk")
    reference = load_reference(config.resolve(config.baselines.dir), "credit-risk")
    detectors = [build_detector(name, settings) for name, settings in model.detector_configs()]
    decoder = Decoder(models=frozenset({"credit-risk"}), max_future=timedelta(days=3650))
    windows: dict[tuple[str, datetime], list[InferenceEvent]] = {}
    cohorts: dict[str, Cohort] = {}
    size = model.window.size
    for offset, line in enumerate((folder / "events.jsonl").read_bytes().splitlines()):
        event = decoder(RawMessage(value=line, topic="history", partition=0, offset=offset))
        assert isinstance(event, InferenceEvent)
        if event.event_id == LATE_ID:
            continue  # past the allowed lateness: the flow dead-letters it
        cohort = Cohort("credit-risk", tuple((name, event.label(name) or "-") for name in model.cohort))
        cohorts[cohort.key] = cohort
        start = EPOCH + ((event.ts - EPOCH) // size) * size  # tumbling windows aligned to the epoch
        windows.setdefault((cohort.key, start), []).append(event)
    out: dict[tuple[str, str], tuple[list[float], bool, str, int]] = {}
    for key, cohort in cohorts.items():
        baseline = SeasonalBaseline.create(reference, model.baseline)
        for (k, start), events in sorted(windows.items(), key=lambda item: item[0][1]):
            if k != key:
                continue
            slot, period = slot_of(start, "hour_of_day"), period_of(start, "hour_of_day")
            expected = baseline.expected("income", slot, period)
            profile = reference.features["income"]
            out[(key, start.isoformat())] = (
                list(profile.shares) if expected is None else [float(x) for x in expected.shares],
                expected is not None,
                baseline.fallback_reason("income", slot, period) if expected is None else expected.description,
                profile.n if expected is None else expected.n,
            )
            summary = summarise(events, reference, bounds=model.feature_bounds(), track_event_ids=False)
            score_window(baseline, reference, detectors, cohort, Window(start, start + size), summary)
    return out


def test_seasonal_series_is_what_drift_baselines_computes(seasonal: tuple[dict[str, Any], Path, Path]) -> None:
    document, _, folder = seasonal
    series = document["seasonal_baselines"]
    # By default: the top drifting numeric feature of the seasonal model, for its cohorts
    # (worst first: globex, whose shift alerts hardest).
    assert [(s["model"], s["feature"], s["cohort_key"]) for s in series] == \
        [("credit-risk", "income", GLOBEX), ("credit-risk", "income", ACME)]
    assert document["late"] == 1 and document["dlq"]["by_reason"] == {"late": 1}
    oracle = _baselines_replay(folder)
    profile = load_reference(folder / "baselines", "credit-risk").features["income"]
    assert isinstance(profile, NumericProfile)
    lines = (folder / "events.jsonl").read_bytes().splitlines()
    for item in series:
        assert item["seasonality"] == "hour_of_day" and item["n_windows"] == SEASONAL_DAYS * 6
        for window in item["windows"]:
            shares, warm, baseline, n = oracle[(item["cohort_key"], window["window_start"])]
            expected = window["expected"]
            assert expected["shares"] == pytest.approx(shares, rel=1e-12, abs=1e-15)
            assert (expected["source"] == "seasonal") is warm
            assert (expected["baseline"], expected["n"]) == (baseline, n)
            quartiles = binned_quantiles(profile, shares)
            assert [expected["p25"], expected["median"], expected["p75"]] == pytest.approx(list(quartiles))
            # Observed: the window's own values, exactly (without the late one).
            values = _window_values(lines, item["cohort_key"], window["window_start"], window["window_end"])
            observed = window["observed"]
            assert observed["n"] == len(values) == SEASONAL_PER_WINDOW
            assert [observed["p25"], observed["median"], observed["p75"]] == \
                pytest.approx(list(np.quantile(values, [0.25, 0.5, 0.75])))
            assert observed["mean"] == pytest.approx(float(np.mean(values)))


def _window_values(lines: list[bytes], cohort_key: str, start: str, end: str) -> list[float]:
    tenant = cohort_key.split("tenant=")[1].split("|")[0]
    low, high = datetime.fromisoformat(start), datetime.fromisoformat(end)
    values = []
    for line in lines:
        event = orjson.loads(line)
        if event["event_id"] == LATE_ID:
            continue
        if event["tenant"] == tenant and low <= datetime.fromisoformat(event["ts"].replace("Z", "+00:00")) < high:
            values.append(float(event["features"]["income"]))
    return values


def test_seasonal_series_agrees_with_the_flows_findings(seasonal: tuple[dict[str, Any], Path, Path]) -> None:
    document, _, _ = seasonal
    psi = {(f["cohort_key"], f["window_start"]): f for f in document["findings"]
           if f["detector"] == "psi" and f["feature"] == "income"}
    seen = 0
    for item in document["seasonal_baselines"]:
        for window in item["windows"]:
            finding = psi.get((item["cohort_key"], window["window_start"]))
            if finding is None:  # ok windows are not listed in the document
                assert window["severity"] in ("ok", None)
                continue
            seen += 1
            # The flow compared the window with the very shares the report draws.
            assert window["severity"] == finding["severity"] and window["psi"] == finding["value"]
            assert window["expected"]["baseline"] == finding["baseline"]
            assert window["expected"]["shares"] == pytest.approx(finding["evidence"]["reference_share"], abs=1e-6)
    assert seen >= 6

    def windows(key: str, day: int) -> list[dict[str, Any]]:
        series = next(s for s in document["seasonal_baselines"] if s["cohort_key"] == key)
        first = SEASONAL_FIRST_DAY + timedelta(days=day)
        return [w for w in series["windows"]
                if first <= datetime.fromisoformat(w["window_start"]) < first + timedelta(hours=3)]

    # The first morning is compared with the training reference (the slots warm up), and the
    # hour-of-day cycle alerts there; afterwards each hour is compared with its own history.
    for key in (GLOBEX, ACME):
        assert all(w["expected"]["source"] == "reference" for w in windows(key, 0))
        assert all(w["expected"]["source"] == "seasonal" for w in windows(key, 1) + windows(key, 2))
        assert sum(w["severity"] == "alert" for w in windows(key, 0)) >= 3
    assert not any(w["severity"] == "alert" for w in windows(ACME, 1) + windows(ACME, 2))
    # globex's shift on the last morning alerts against the slot's history, and shows in the values.
    shifted = [w for w in windows(GLOBEX, 2) if datetime.fromisoformat(w["window_start"]) >= SEASONAL_SHIFT_AT]
    assert len(shifted) == 3 and all(w["severity"] == "alert" for w in shifted)
    assert all(w["observed"]["median"] > w["expected"]["p75"] for w in shifted)


def test_seasonal_report_renders_in_headless_chromium(
    seasonal: tuple[dict[str, Any], Path, Path], tmp_path: Path,
) -> None:
    _, report, _ = seasonal
    measured, _ = _render(report, tmp_path, 1024)
    assert _labels(measured, "seasonal") == ["credit-risk income"]
    chart = next(c for c in measured["charts"] if c["kind"] == "seasonal")
    assert chart["box"]["bottom"] - chart["box"]["top"] > 400  # one panel per cohort
    assert chart["traces"] >= 8  # per cohort: expected bands and medians, observed, PSI markers
    assert not _labels(measured, "projection")
    _screenshot(report, tmp_path, 1400)


def test_baseline_feature_option(seasonal: tuple[dict[str, Any], Path, Path]) -> None:
    _, _, folder = seasonal
    config = load_config(folder / "drift.yaml")
    assert resolve_baseline_features(config, ["age", "credit-risk:income", "income"]) == \
        [("credit-risk", "age"), ("credit-risk", "income")]
    for wrong in ("country", "nope", "other-model:income"):
        with pytest.raises(ValueError, match="valid: credit-risk:age, credit-risk:income"):
            resolve_baseline_features(config, [wrong])
    # Checked before the run: exit status 2, naming the valid choices.
    proc = drift("backtest", "--config", str(folder / "drift.yaml"), "--events", str(folder / "events.jsonl"),
                 "--report", str(folder / "unused.html"), "--baseline-feature", "country")
    assert proc.returncode == 2 and "credit-risk:income" in proc.stderr
    assert not (folder / "unused.html").exists()

    result = run_backtest(config, folder / "events.jsonl")
    sections = history_sections(config, result, folder / "events.jsonl", [("credit-risk", "age")])
    assert sorted((s.feature, s.cohort_key) for s in sections.seasonal) == [("age", ACME), ("age", GLOBEX)]
    assert all(len(s.points) == SEASONAL_DAYS * 6 for s in sections.seasonal)
    assert not sections.projections and any(n.startswith("embedding projection:") for n in sections.notes)


def test_top_k_option_draws_fewer_series_at_first(backtest: tuple[dict[str, Any], Path, str]) -> None:
    """``--top-k 2``: each cohort's two worst series are drawn, the rest (four more than with
    the default six) wait behind the cohort's "more series" switch."""
    _, report, _ = backtest
    folder = report.parent.parent
    smaller = folder / "out" / "top2.html"
    proc = drift("backtest", "--config", str(folder / "drift.yaml"), "--events", str(folder / "events.jsonl"),
                 "--report", str(smaller), "--top-k", "2")
    assert proc.returncode == 0, proc.stderr

    def rest(path: Path) -> list[int]:
        return [int(n) for n in re.findall(r"(\d+) more series of this cohort", path.read_text(encoding="utf-8"))]

    default, top2 = rest(report), rest(smaller)
    assert default and len(top2) >= len(default)
    assert sum(top2) - sum(default) >= 4 * len(default)
    proc = drift("backtest", "--config", str(folder / "drift.yaml"), "--events", str(folder / "events.jsonl"),
                 "--report", str(folder / "out" / "unused.html"), "--top-k", "0")
    assert proc.returncode == 2 and "--top-k" in proc.stderr


def test_bundled_config_has_no_seasonal_section(backtest: tuple[dict[str, Any], Path, str]) -> None:
    document, _, _ = backtest
    assert document["seasonal_baselines"] == []
    assert "seasonal baseline: no model has baseline.seasonality other than none" in document["report_notes"]
