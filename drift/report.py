"""Backtest reports: what a detector config would have done on history, in numbers and plots.

Everything here is a pure function of a run's findings and ticket events (the
same values ``drift replay`` prints): the "what if" table of alert counts at
other alert levels, matplotlib figures (timelines, reference vs current
histograms) and one self-contained HTML page with the figures embedded as PNG
data URIs, so the report opens offline and nothing is fetched.

matplotlib is imported inside the functions that draw, and figures are bare
``Figure`` objects (Agg canvas, no pyplot state), so the core imports without it
and a report renders without a display.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from drift.findings import Finding, Severity
from drift.tickets import TicketEvent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WHAT_IF_FACTORS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0)
"""Strictness factors of the "what if" table: 1 is the configured alert level,
2 twice as strict, 0.5 half as strict."""

TOP_FINDINGS = 6
"""Findings whose reference vs current histograms the report draws."""

_SEVERITY_COLOUR = {Severity.WARN: "#f0a30a", Severity.ALERT: "#d62728"}


@dataclass(frozen=True, slots=True)
class Judged:
    """The number a finding's levels apply to, and which way is worse."""

    value: float
    lower_is_worse: bool
    """True for p-values (``evidence["levels_on"] == "p_value"``): smaller is worse."""


def judged(finding: Finding) -> Judged | None:
    """The value ``finding``'s warn/alert levels were applied to; None when it was not judged.

    Most detectors judge ``value`` (greater is worse). The ``embedding`` detector
    reports the test statistic as ``value`` but levels its p-value, which it keeps
    in the evidence. Skipped findings and non-finite values give None.

    >>> from datetime import datetime, timezone
    >>> from drift.findings import Cohort, Window
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> f = Finding("psi", Cohort("m"), Window(t, t), "x", 0.3, Severity.ALERT, 0.1, 0.25, 10, 10, "reference")
    >>> judged(f)
    Judged(value=0.3, lower_is_worse=False)
    """
    if finding.skipped is not None:
        return None
    if finding.evidence.get("levels_on") == "p_value":
        p_value = finding.evidence.get("p_value")
        if not isinstance(p_value, (int, float)) or not math.isfinite(p_value):
            return None
        return Judged(float(p_value), lower_is_worse=True)
    if not math.isfinite(finding.value):
        return None
    return Judged(float(finding.value), lower_is_worse=False)


def scaled_level(alert: float, factor: float, lower_is_worse: bool) -> float:
    """The alert level made ``factor`` times as strict.

    >>> scaled_level(0.25, 2.0, lower_is_worse=False), scaled_level(0.01, 2.0, lower_is_worse=True)
    (0.5, 0.005)
    """
    return alert / factor if lower_is_worse else alert * factor


def alerts_at(judgement: Judged, level: float) -> bool:
    """Whether a judged value alerts at ``level`` (the detectors' own comparison)."""
    return judgement.value < level if judgement.lower_is_worse else judgement.value >= level


def what_if(findings: Sequence[Finding], factors: Sequence[float] = WHAT_IF_FACTORS) -> list[dict[str, Any]]:
    """How many alerts each detector would have raised at other alert levels.

    For every detector name and factor: the finding (cohort, feature, window) alerts
    when its judged value is past its own alert level made ``factor`` times as strict
    (see :func:`scaled_level`). Factor 1 gives the run's own alert count. Rows hold
    ``n_alert_findings`` (cohort windows that alert), ``n_series`` (distinct cohort and
    feature pairs among them, the tickets a policy of one window would open) and
    ``alert_level`` (the scaled level when the detector has one level, else None).
    """
    by_detector: dict[str, list[tuple[Finding, Judged]]] = defaultdict(list)
    for finding in findings:
        judgement = judged(finding)
        if judgement is not None:
            by_detector[finding.detector].append((finding, judgement))
    rows: list[dict[str, Any]] = []
    for detector in sorted(by_detector):
        items = by_detector[detector]
        levels = {f.alert for f, _ in items}
        lower = items[0][1].lower_is_worse
        for factor in factors:
            hits = [f for f, j in items if alerts_at(j, scaled_level(f.alert, factor, j.lower_is_worse))]
            rows.append({
                "detector": detector,
                "levels_on": "p_value" if lower else "value",
                "factor": factor,
                "alert_level": scaled_level(next(iter(levels)), factor, lower) if len(levels) == 1 else None,
                "n_findings": len(items),
                "n_alert_findings": len(hits),
                "n_series": len({f.fingerprint for f in hits}),
            })
    return rows


def top_findings(findings: Sequence[Finding], n: int = TOP_FINDINGS) -> list[Finding]:
    """The worst window of each alerting (else warning) series that has bin shares, worst first."""
    best: dict[str, tuple[tuple[int, float], Finding]] = {}
    for finding in findings:
        if finding.severity is Severity.OK or not _has_bins(finding):
            continue
        judgement = judged(finding)
        if judgement is None:
            continue
        # Rank by severity, then by how far past the alert level (relative).
        rank = (2 if finding.severity is Severity.ALERT else 1,
                _excess(judgement, finding.alert))
        key = finding.fingerprint
        if key not in best or rank > best[key][0]:
            best[key] = (rank, finding)
    ranked = sorted(best.values(), key=lambda item: item[0], reverse=True)
    return [finding for _, finding in ranked[:n]]


def _excess(judgement: Judged, alert: float) -> float:
    if alert == 0:
        return judgement.value
    ratio = judgement.value / alert
    return 1 / ratio if judgement.lower_is_worse and ratio > 0 else ratio


def _has_bins(finding: Finding) -> bool:
    evidence = finding.evidence
    return (isinstance(evidence.get("bins"), list) and isinstance(evidence.get("reference_share"), list)
            and isinstance(evidence.get("current_share"), list))


# --------------------------------------------------------------------------- figures


def _new_figure(width: float, height: float) -> Figure:
    # A bare Figure (no pyplot): no global figure registry to leak into, and it
    # renders with the Agg canvas whatever backend the session (or notebook) uses.
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("drift's backtest report needs matplotlib: pip install matplotlib") from exc
    return Figure(figsize=(width, height))


def _window_size(findings: Sequence[Finding]) -> timedelta:
    sizes = [f.window.end - f.window.start for f in findings if f.window.end > f.window.start]
    return min(sizes) if sizes else timedelta(0)


def timeline_figures(
    findings: Sequence[Finding], tickets: Sequence[TicketEvent] = (),
) -> list[tuple[str, Figure]]:
    """One figure per cohort: every detector's judged value per window (one line per
    feature), its warn and alert levels, warn/alert windows marked, and the windows that
    opened or updated a ticket shaded. Returns ``(cohort key, figure)`` pairs."""
    by_cohort: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_cohort[finding.cohort.key].append(finding)
    out: list[tuple[str, Figure]] = []
    for key in sorted(by_cohort):
        cohort_findings = by_cohort[key]
        size = _window_size(cohort_findings)
        detectors = sorted({f.detector for f in cohort_findings})
        ncols = 2 if len(detectors) > 1 else 1
        nrows = math.ceil(len(detectors) / ncols)
        fig = _new_figure(6.4 * ncols, 2.7 * nrows + 0.6)
        fig.suptitle(key, fontsize=11)
        for index, detector in enumerate(detectors):
            ax = fig.add_subplot(nrows, ncols, index + 1)
            _detector_axes(ax, detector, [f for f in cohort_findings if f.detector == detector],
                           [t for t in tickets if t.ticket.cohort_key == key and t.ticket.detector == detector],
                           size)
        fig.tight_layout()
        out.append((key, fig))
    return out


def _detector_axes(ax: Any, detector: str, findings: Sequence[Finding], tickets: Sequence[TicketEvent],
                   size: timedelta) -> None:
    series: dict[str, list[tuple[datetime, float, Severity]]] = defaultdict(list)
    lower = False
    levels: set[tuple[float, float]] = set()
    for finding in findings:
        judgement = judged(finding)
        if judgement is None:
            continue
        lower = judgement.lower_is_worse
        levels.add((finding.warn, finding.alert))
        series[finding.feature or "-"].append((finding.window.start + size / 2, judgement.value, finding.severity))
    for ticket in tickets:
        end = ticket.ticket.last_window_end
        ax.axvspan(end - size, end, color="#d62728", alpha=0.08, linewidth=0)
    for feature in sorted(series):
        points = sorted(series[feature])
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", linewidth=1.2, label=feature)
        for severity, colour in _SEVERITY_COLOUR.items():
            marked = [p for p in points if p[2] is severity]
            if marked:
                ax.scatter([p[0] for p in marked], [p[1] for p in marked], s=46, color=colour, zorder=3,
                           edgecolors="black", linewidths=0.5)
    for warn, alert in sorted(levels):
        ax.axhline(warn, color=_SEVERITY_COLOUR[Severity.WARN], linestyle="--", linewidth=0.9)
        ax.axhline(alert, color=_SEVERITY_COLOUR[Severity.ALERT], linestyle="--", linewidth=0.9)
    if lower:
        ax.set_yscale("log")
        ax.invert_yaxis()
    ax.set_title(f"{detector} ({'p-value, lower is worse' if lower else 'value'})", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.xaxis.set_major_formatter(_time_formatter())
    if 1 < len(series) <= 8:
        ax.legend(fontsize=6, loc="upper left")


def _time_formatter() -> Any:
    from matplotlib.dates import DateFormatter

    return DateFormatter("%m-%d %H:%M")  # type: ignore[no-untyped-call]


def histogram_figure(finding: Finding) -> Figure:
    """Reference vs current share per bin of one finding (from its evidence)."""
    bins = [str(b) for b in finding.evidence["bins"]]
    reference = [float(x) for x in finding.evidence["reference_share"]]
    current = [float(x) for x in finding.evidence["current_share"]]
    fig = _new_figure(max(5.0, 0.55 * len(bins) + 2), 3.2)
    ax = fig.add_subplot(1, 1, 1)
    positions = list(range(len(bins)))
    ax.bar([p - 0.2 for p in positions], reference, width=0.4, label=f"reference (n={finding.n_reference})",
           color="#7f7f7f")
    ax.bar([p + 0.2 for p in positions], current, width=0.4, label=f"current (n={finding.n_current})",
           color="#1f77b4")
    ax.set_xticks(positions)
    ax.set_xticklabels(bins, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("share")
    ax.set_title(
        f"{finding.cohort.key}\n{finding.detector} {finding.feature or ''} = {finding.value:.3f} "
        f"({finding.severity.value}), {finding.window.start:%Y-%m-%d %H:%M}", fontsize=8,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def png_data_uri(fig: Figure, dpi: int = 90) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; }
.alert { color: #d62728; font-weight: bold; } .warn { color: #b8860b; }
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f'<td class="num">{value:.4g}</td>'
        if isinstance(value, int):
            return f'<td class="num">{value}</td>'
        return f"<td>{html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _what_if_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One row per detector, one column per factor: alerting windows (series)."""
    factors = sorted({float(r["factor"]) for r in rows})
    by_detector: dict[str, dict[float, Mapping[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_detector[str(row["detector"])][float(row["factor"])] = row

    def level(row: Mapping[str, Any] | None) -> str:
        if row is None:
            return "-"
        return "per feature" if row["alert_level"] is None else f"{row['alert_level']:.4g}"

    table_rows: list[list[Any]] = []
    for detector, by_factor in by_detector.items():
        first = next(iter(by_factor.values()))
        table_rows.append([
            detector, first["levels_on"], level(by_factor.get(1.0)), first["n_findings"],
            *(f"{r['n_alert_findings']} ({r['n_series']})" if (r := by_factor.get(f)) is not None else "-"
              for f in factors),
        ])
    return _table(["detector", "levels on", "alert level", "findings", *(f"x{f:g}" for f in factors)],
                  table_rows, "what-if")


def ticket_rows(tickets: Sequence[TicketEvent]) -> list[dict[str, Any]]:
    """The last state of every ticket the run opened or touched, in order of first event."""
    last: dict[str, TicketEvent] = {}
    for event in tickets:
        last[event.ticket.id] = event
    rows = []
    for event in last.values():
        t = event.ticket
        rows.append({
            "id": t.id, "action": t.action, "status": t.status.value, "cohort_key": t.cohort_key,
            "detector": t.detector, "feature": t.feature, "severity": t.severity.value,
            "first_window_start": t.first_window_start.isoformat(), "last_window_end": t.last_window_end.isoformat(),
            "occurrences": t.occurrences, "worst_value": t.worst_value,
            "approvals_required": t.approvals_required, "last_event": event.kind,
        })
    return rows


def render_html(
    summary: Mapping[str, Any], findings: Sequence[Finding], tickets: Sequence[TicketEvent],
    title: str = "drift backtest", what_if_rows: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The self-contained report page.

    ``summary`` is the run's JSON document (``events``, ``dlq``, ``windows``, ...);
    ``findings`` are all of the run's findings (ok ones too: they draw the timelines).
    """
    rows = list(what_if_rows) if what_if_rows is not None else what_if(findings)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    dlq = summary.get("dlq", {})
    shown = [f for f in findings if f.severity is not Severity.OK]
    n_alert = sum(1 for f in findings if f.severity is Severity.ALERT)
    parts.append(
        f'<p id="summary">events {summary.get("events", 0)}, decoded {summary.get("decoded", 0)}, '
        f'late {summary.get("late", 0)}, dead letters {dlq.get("total", 0)}, windows {summary.get("windows", 0)}, '
        f"findings {len(findings)} ({len(shown)} at warn or alert, {n_alert} at alert), "
        f"tickets {len(ticket_rows(tickets))}</p>"
    )

    parts.append("<h2>Tickets that would have been opened</h2>")
    trows = ticket_rows(tickets)
    if trows:
        parts.append(_table(
            ["ticket", "routing", "status", "cohort", "detector", "feature", "severity", "first window",
             "last window end", "windows", "worst", "approvals", "last event"],
            [[r["id"], r["action"], r["status"], r["cohort_key"], r["detector"], r["feature"] or "-",
              r["severity"], r["first_window_start"], r["last_window_end"], r["occurrences"],
              float(r["worst_value"]), r["approvals_required"], r["last_event"]] for r in trows],
            "tickets",
        ))
    else:
        parts.append('<p id="tickets">no tickets</p>')

    parts.append("<h2>What if: alerts at other alert levels</h2>")
    parts.append("<p>Factor 1 is the configured alert level; 2 is twice as strict (value levels doubled, "
                 "p-value levels halved), 0.5 half as strict. Each cell: alerting windows (distinct cohort and "
                 "feature pairs among them).</p>")
    parts.append(_what_if_table(rows))

    parts.append("<h2>Timelines per model and cohort</h2>")
    parts.append("<p>Dashed lines: warn (amber) and alert (red) levels. Marked points: windows at warn or "
                 "alert. Shaded: windows that opened or updated a ticket.</p>")
    for key, fig in timeline_figures(findings, tickets):
        parts.append(f"<h3>{html.escape(key)}</h3>")
        parts.append(f'<img class="chart timeline" alt="timeline {html.escape(key)}" src="{png_data_uri(fig)}">')

    parts.append("<h2>Top findings: reference vs current</h2>")
    top = top_findings(findings)
    if not top:
        parts.append("<p>no finding at warn or alert has bin shares</p>")
    for finding in top:
        label = f"{finding.cohort.key} {finding.detector} {finding.feature or ''}"
        parts.append(f'<img class="chart histogram" alt="histogram {html.escape(label)}" '
                     f'src="{png_data_uri(histogram_figure(finding))}">')

    parts.append("<h2>Findings at warn or alert</h2>")
    shown.sort(key=lambda f: (f.window.start, f.cohort.key, f.detector, f.feature or ""))
    parts.append(_table(
        ["window", "cohort", "detector", "feature", "value", "severity", "warn", "alert"],
        [[f"{f.window.start:%Y-%m-%d %H:%M}", f.cohort.key, f.detector, f.feature or "-", float(f.value),
          f.severity.value, float(f.warn), float(f.alert)] for f in shown],
        "findings",
    ))
    parts.append("</body></html>")
    return "\n".join(parts)
