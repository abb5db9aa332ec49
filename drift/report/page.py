"""The report page: one HTML file from the ``templates/report.html`` Jinja2 template
(autoescaped), with plotly.js inlined once so it opens offline, from one file.

Each chart is a ``<div class="chart">`` and the JSON of its Plotly figure next to it
(``<script type="application/json">``, with ``<``, ``>`` and ``&`` written as JSON
escapes so no text of the run can close the script); a small script draws the charts
once plotly.js has loaded, and the ones inside a closed ``<details>`` when it opens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from drift.findings import Finding, Severity
from drift.report.analysis import (
    TOP_SERIES, CohortSeries, CohortSummary, cohort_series, cohort_summaries, judged, ticket_rows, top_findings,
    what_if, what_if_table,
)
from drift.report.detection import detection_rows, duration_text
from drift.report.figures import (
    cohort_timeline_figures, histogram_figure, projection_figure, seasonal_figure, seasonal_groups,
)
from drift.report.optional import require
from drift.report.projection import PROJECTION_POINTS
from drift.report.sections import HistorySections
from drift.tickets import TicketEvent

if TYPE_CHECKING:
    from jinja2 import Environment
    from plotly.graph_objects import Figure

MAX_COHORTS = 30
"""Cohorts whose timelines the page draws (the worst first); every cohort is in the summary table."""


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart as the template places it."""

    id: str
    kind: str
    label: str
    height: int
    spec: Any
    """The figure's JSON, marked safe for the page (see :func:`figure_json`)."""


def figure_json(fig: Figure) -> str:
    """The figure as JSON that is safe inside a ``<script>`` element: ``<``, ``>`` and ``&``
    (only ever inside JSON strings) written as ``\\u003c``, ``\\u003e`` and ``\\u0026``, the
    theme left out."""
    spec = fig.to_plotly_json()
    # The figure's theme (several KB per chart) is left to plotly.js's defaults, which the
    # figures' own colours and grids build on.
    spec["layout"].pop("template", None)
    text: str = require("plotly.io.json").to_json_plotly(spec)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class _Charts:
    def __init__(self) -> None:
        self._markup = require("markupsafe").Markup
        self.n = 0

    def __call__(self, kind: str, label: str, fig: Figure) -> Chart:
        """``fig`` as a chart of the page."""
        self.n += 1
        height = int(fig.layout.height or 400)
        return Chart(f"chart-{self.n}", kind, label, height, self._markup(figure_json(fig)))


@lru_cache(maxsize=1)
def _environment() -> Environment:
    jinja2 = require("jinja2")
    env: Environment = jinja2.Environment(
        loader=jinja2.PackageLoader("drift.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters["cell"] = _cell
    markup = require("markupsafe")
    # Cohort keys (model|label=value|...) may break after each "|" instead of overflowing.
    env.filters["key"] = lambda value: markup.Markup("|<wbr>").join(markup.escape(str(value)).split("|"))
    return env


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    js: str = require("plotly.offline").get_plotlyjs()
    return js


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _captioned(fig: Figure) -> tuple[str, Figure]:
    """The figure's title taken out, for the page's caption: in a narrow chart a title
    would run under Plotly's toolbar."""
    title = str(fig.layout.title.text or "")
    fig.update_layout(title=None, margin={"t": 40})
    return title, fig


def _what(finding: Finding) -> str:
    return finding.detector if finding.feature in (None, "", finding.detector) else \
        f"{finding.detector} · {finding.feature}"


def _cohort_row(row: CohortSummary) -> dict[str, Any]:
    worst = first = None
    if row.worst is not None:
        judgement = judged(row.worst)
        worst = {"severity": row.worst.severity.value, "what": _what(row.worst),
                 "value": None if judgement is None else judgement.value, "alert": row.worst.alert}
    if row.first_past is not None:
        first = {"severity": row.first_past.severity.value, "what": _what(row.first_past),
                 "window": f"{row.first_past.window.start:%Y-%m-%d %H:%M}"}
    return {"cohort_key": row.cohort_key, "worst": worst, "first": first, "n_past": row.n_past,
            "n_findings": row.n_findings, "tickets": row.tickets}


def _timeline(cohort: CohortSeries, charts: _Charts) -> dict[str, Any]:
    top, rest = cohort_timeline_figures(cohort)
    quiet = ""
    if cohort.quiet_quality:
        by_check: dict[str, list[str]] = {}
        for series in cohort.quiet_quality:
            by_check.setdefault(series.detector, []).append(series.feature or "-")
        names = "; ".join(f"{check} ({', '.join(features)})" for check, features in by_check.items())
        quiet = (("All quality checks ok" if not any(s.is_quality for s in cohort.top + cohort.rest)
                  else "The other quality checks ok") + f", flat throughout: {names}.")
    return {
        "cohort_key": cohort.cohort_key,
        "top": None if top is None else charts("timeline", cohort.cohort_key, top),
        "rest": None if rest is None else charts("timeline-more", cohort.cohort_key, rest),
        "n_rest": len(cohort.rest), "quiet": quiet, "not_judged": ", ".join(cohort.not_judged),
    }


def _seasonal(sections: HistorySections, charts: _Charts) -> dict[str, Any]:
    groups = []
    for group in seasonal_groups(sections.seasonal):
        first = group[0]
        slots = f"Slots: {first.seasonality}, local time of {first.timezone}"
        holidays = sorted({day for series in group for day in series.holidays})
        if first.holiday_as is not None:
            how = "their own holiday slots" if first.holiday_as == "own" else f"{first.holiday_as}'s slots"
            slots += (f"; holidays ({', '.join(holidays)}) scored against {how}" if holidays
                      else "; no holiday in these windows")
        label = f"{first.model} {first.feature}"
        groups.append({"label": label, "slots": slots, "chart": charts("seasonal", label, seasonal_figure(group))})
    return {"notes": [n for n in sections.notes if n.startswith("seasonal baseline")], "groups": groups}


def _projections(sections: HistorySections, charts: _Charts) -> dict[str, Any]:
    items, rows = [], []
    for item in sections.projections:
        d = item.to_dict()
        when = f"{item.finding.window.start:%Y-%m-%d %H:%M}"
        label = f"{d['cohort_key']} {d['field']} {when}"
        heading, fig = _captioned(projection_figure(item))
        items.append({"caption": f"{d['cohort_key']}: {heading}", "chart": charts("projection", label, fig)})
        ratio = d["explained_variance_ratio"]
        rows.append([d["cohort_key"], d["field"] or "-", when, d["severity"], f"{ratio[0]:.1%} + {ratio[1]:.1%}",
                     d["reference"]["n"], d["current"]["n"], _xy(d["reference"]["centroid"]),
                     _xy(d["current"]["centroid"]), d["centroid_distance"]])
    return {"notes": [n for n in sections.notes if n.startswith("embedding projection")], "entries": items,
            "rows": rows, "max_points": PROJECTION_POINTS}


def _minute(iso: str) -> str:
    """``2026-11-02T09:30:00+00:00`` as ``2026-11-02 09:30`` (UTC, as the whole page)."""
    return iso[:16].replace("T", " ")


def _moment(value: datetime | None) -> str | None:
    return None if value is None else _minute(value.astimezone(UTC).isoformat())


def _xy(point: Sequence[float] | None) -> str:
    return "-" if point is None else f"({point[0]:.3g}, {point[1]:.3g})"


def render_html(
    summary: Mapping[str, Any], findings: Sequence[Finding], tickets: Sequence[TicketEvent],
    title: str = "drift backtest", what_if_rows: Sequence[Mapping[str, Any]] | None = None,
    sections: HistorySections | None = None, *, top_k: int = TOP_SERIES, max_cohorts: int = MAX_COHORTS,
) -> str:
    """The self-contained report page.

    ``summary`` is the run's JSON document (``events``, ``dlq``, ``windows``, ...);
    ``findings`` are all of the run's findings (ok ones too: they draw the timelines);
    ``sections`` (from the history, see ``flows.backtest.history_sections``) adds the
    seasonal baseline and embedding projection sections. Each cohort's ``top_k`` worst
    series are drawn at first, the rest one click away; the timelines of at most
    ``max_cohorts`` cohorts (the worst first) are drawn.

    Raises :class:`drift.report.optional.ReportDependencyError` (naming the install
    command) without plotly or jinja2.
    """
    if max_cohorts < 0:
        raise ValueError(f"max_cohorts must be >= 0; got {max_cohorts}")
    env = _environment()
    markup = require("markupsafe").Markup
    charts = _Charts()
    rows = list(what_if_rows) if what_if_rows is not None else what_if(findings)
    header, table = what_if_table(rows)
    trows = ticket_rows(tickets)
    summaries = cohort_summaries(findings, tickets)
    drawn = [s.cohort_key for s in summaries[:max_cohorts]]
    by_key = {c.cohort_key: c for c in cohort_series(findings, tickets, top_k)}
    timelines = [_timeline(by_key[key], charts) for key in drawn if key in by_key]
    left_out = len([key for key in by_key if key not in drawn])
    shown = sorted((f for f in findings if f.severity is not Severity.OK),
                   key=lambda f: (f.window.start, f.cohort.key, f.detector, f.feature or ""))
    histograms = []
    for finding in top_findings(findings):
        label = f"{finding.cohort.key} {finding.detector} {finding.feature or ''}"
        heading, fig = _captioned(histogram_figure(finding))
        histograms.append({"caption": f"{finding.cohort.key}: {heading}", "chart": charts("histogram", label, fig)})
    dlq = summary.get("dlq", {})
    return env.get_template("report.html").render(
        title=title,
        summary={"events": summary.get("events", 0), "decoded": summary.get("decoded", 0),
                 "late": summary.get("late", 0), "dead_letters": dlq.get("total", 0),
                 "windows": summary.get("windows", 0), "findings": len(findings), "past": len(shown),
                 "alerts": sum(1 for f in findings if f.severity is Severity.ALERT), "tickets": len(trows)},
        cohorts=[_cohort_row(s) for s in summaries],
        tickets=[[r["id"], r["action"], r["status"], r["cohort_key"], r["detector"], r["feature"] or "-",
                  r["severity"], _minute(r["first_window_start"]), _minute(r["last_window_end"]), r["occurrences"],
                  float(r["worst_value"]), r["approvals_required"], r["last_event"]] for r in trows],
        detection=[[d.id, d.cohort_key, d.detector, d.feature or "-", _moment(d.drift_started),
                    _moment(d.detected_at), duration_text(d.time_to_detect),
                    None if d.windows_to_detect is None else f"{d.windows_to_detect:g}", _moment(d.recovered),
                    duration_text(d.time_to_recover)] for d in detection_rows(tickets)],
        what_if={"header": header, "rows": table},
        top_k=top_k, timelines=timelines,
        cohorts_left_out=(f"Timelines of {left_out} more cohorts are not drawn (at most {max_cohorts}, the worst "
                          "first); the table of cohorts above lists them all.") if left_out else "",
        seasonal=None if sections is None else _seasonal(sections, charts),
        histograms=histograms,
        projections=None if sections is None else _projections(sections, charts),
        findings=[[f"{f.window.start:%Y-%m-%d %H:%M}", f.cohort.key, f.detector, f.feature or "-", float(f.value),
                   f.severity.value, float(f.warn), float(f.alert)] for f in shown],
        plotly_js=markup(_plotly_js()),
    )
