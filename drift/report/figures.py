"""The report's charts as Plotly figures: hover values and zoom in the page, ``display(fig)``
in a notebook.

Every function returns a ``plotly.graph_objects.Figure`` built from the values of
:mod:`drift.report.analysis`, :mod:`drift.report.seasonal` and
:mod:`drift.report.projection`; plotly is imported on first use (the ``report``
extra), so the core imports without it. Axes follow what is drawn: a timeline's x
axis spans the cohort's windows (a cohort of one window gets an axis of that window,
not a default date range), values that cannot be negative (rates, PSI, distances) keep
the y axis at zero or above, p-values run on a reversed log axis (lower is worse, drawn
higher), and few ticks per small panel so their labels do not collide.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from drift.findings import Finding, Severity, Window
from drift.report.analysis import TOP_SERIES, CohortSeries, Series, cohort_series
from drift.report.optional import require
from drift.report.projection import EmbeddingProjection
from drift.report.seasonal import SeasonalSeries
from drift.tickets import TicketEvent

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

SEVERITY_COLOUR = {Severity.OK: "#1f77b4", Severity.WARN: "#f0a30a", Severity.ALERT: "#d62728"}
REFERENCE_COLOUR = "#8c8c8c"
CURRENT_COLOUR = "#1f77b4"
PANEL_HEIGHT = 230
"""Pixels per row of small multiples."""
COLUMNS = 3
"""Small multiples per row."""
FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 11}
P_VALUE_FLOOR = 1e-16
"""p-values drawn no lower than this on their log axis (a p-value of 0 has no place on it)."""


def _go() -> Any:
    return require("plotly.graph_objects")


def _subplots(**kwargs: Any) -> Figure:
    return require("plotly.subplots").make_subplots(**kwargs)


def _base_layout(height: int, **extra: Any) -> dict[str, Any]:
    return {"height": height, "autosize": True, "font": FONT, "margin": {"l": 56, "r": 16, "t": 48, "b": 40},
            "plot_bgcolor": "white", "showlegend": False, **extra}


def _short(value: float) -> float:
    """``value`` to 4 significant digits: the page's JSON stays small, hover still reads true."""
    return float(f"{value:.4g}") if math.isfinite(value) else value


# --------------------------------------------------------------------------- timelines


def timeline_figure(series: Sequence[Series], start: datetime, end: datetime, columns: int = COLUMNS) -> Figure:
    """Small multiples: one panel per series (judged value per window), its warn and alert
    levels as dashed lines, warn/alert windows marked, windows that opened or updated a ticket
    shaded. Every panel's x axis spans ``start`` to ``end`` (the cohort's windows)."""
    if not series:
        raise ValueError("timeline_figure needs at least one series")
    go = _go()
    ncols = min(columns, len(series))
    nrows = math.ceil(len(series) / ncols)
    height = nrows * PANEL_HEIGHT + 30
    fig = _subplots(rows=nrows, cols=ncols, subplot_titles=[s.label for s in series],
                    horizontal_spacing=0.1 if ncols > 1 else 0.02,
                    vertical_spacing=min(0.3, 95 / height) if nrows > 1 else 0.0)
    for index, item in enumerate(series):
        row, col = index // ncols + 1, index % ncols + 1
        _timeline_panel(go, fig, item, start, end, row, col)
    fig.update_layout(_base_layout(height, margin={"l": 56, "r": 16, "t": 36, "b": 30}, hovermode="closest"))
    fig.update_annotations(font={"size": 11})
    return fig


def _timeline_panel(go: Any, fig: Figure, series: Series, start: datetime, end: datetime, row: int, col: int) -> None:
    lower = series.lower_is_worse
    what = "p-value" if lower else "value"
    xs = [_when(p.start + (p.end - p.start) / 2) for p in series.points]
    spans = [f"{p.start:%Y-%m-%d %H:%M}–{p.end:%H:%M}" for p in series.points]
    ys = [_short(max(p.value, P_VALUE_FLOOR) if lower else p.value) for p in series.points]
    for x0, x1 in series.ticket_windows:
        fig.add_vrect(x0=_when(x0), x1=_when(x1), fillcolor=SEVERITY_COLOUR[Severity.ALERT], opacity=0.1,
                      line_width=0, row=row, col=col)
    for warn, alert in series.levels:
        for name, level in (("warn", warn), ("alert", alert)):
            colour = SEVERITY_COLOUR[Severity.WARN if name == "warn" else Severity.ALERT]
            fig.add_trace(go.Scatter(
                x=[_when(start), _when(end)], y=[level, level], mode="lines", name=f"{name} level",
                line={"color": colour, "dash": "dash", "width": 1},
                hovertemplate=f"{name} level {level:.4g}<extra></extra>",
            ), row=row, col=col)
    # One point per window, in the middle of the window; markers are not clipped at the axes
    # (a value of 0 on a rate axis that starts at 0 stays visible).
    fig.add_trace(go.Scatter(
        x=xs, y=ys, text=spans, mode="lines+markers", name=series.label, cliponaxis=False,
        line={"color": SEVERITY_COLOUR[Severity.OK], "width": 1.4}, marker={"size": 5},
        hovertemplate=f"%{{text}}<br>{what} %{{y:.4g}}<extra></extra>",
    ), row=row, col=col)
    for severity in (Severity.WARN, Severity.ALERT):
        marked = [(x, y, t) for x, y, t, p in zip(xs, ys, spans, series.points) if p.severity is severity]
        if marked:
            fig.add_trace(go.Scatter(
                x=[x for x, _, _ in marked], y=[y for _, y, _ in marked], text=[t for _, _, t in marked],
                mode="markers", name=severity.value, cliponaxis=False,
                marker={"color": SEVERITY_COLOUR[severity], "size": 9, "line": {"color": "black", "width": 0.6}},
                hovertemplate=f"%{{text}}<br>{what} %{{y:.4g}} ({severity.value})<extra></extra>",
            ), row=row, col=col)
    fig.update_xaxes(type="date", range=[_when(start), _when(end)], nticks=4, showgrid=True, gridcolor="#eeeeee",
                     showline=True, linecolor="#999999", tickformat="%H:%M\n%b %d", row=row, col=col)
    if lower:
        fig.update_yaxes(type="log", autorange="reversed", title_text="p-value", dtick=1, exponentformat="power",
                         row=row, col=col)
    else:
        nonnegative = all(p.value >= 0 for p in series.points) and all(min(lv) >= 0 for lv in series.levels)
        fig.update_yaxes(rangemode="nonnegative" if nonnegative else "normal", nticks=5, row=row, col=col)
    fig.update_yaxes(showgrid=True, gridcolor="#eeeeee", showline=True, linecolor="#999999",
                     zeroline=False, row=row, col=col)


def _when(at: datetime) -> str:
    """A UTC time as Plotly reads a date (it ignores offsets): short, and shown as written."""
    return f"{at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}"


def timeline_figures(
    findings: Sequence[Finding], tickets: Sequence[TicketEvent] = (), top_k: int = TOP_SERIES,
) -> list[tuple[str, Figure]]:
    """One figure per cohort: its ``top_k`` worst series as small multiples (see
    :func:`drift.report.analysis.cohort_series`). Returns ``(cohort key, figure)`` pairs."""
    return [(c.cohort_key, timeline_figure(c.top, c.start, c.end))
            for c in cohort_series(findings, tickets, top_k) if c.top]


def cohort_timeline_figures(cohort: CohortSeries) -> tuple[Figure | None, Figure | None]:
    """A cohort's top series and the rest, as two figures (None where there is none)."""
    top = timeline_figure(cohort.top, cohort.start, cohort.end) if cohort.top else None
    rest = timeline_figure(cohort.rest, cohort.start, cohort.end) if cohort.rest else None
    return top, rest


# --------------------------------------------------------------------------- histograms


def histogram_figure(finding: Finding) -> Figure:
    """Reference vs current share per bin of one finding (from its evidence)."""
    go = _go()
    bins = [str(b) for b in finding.evidence["bins"]]
    reference = [_short(float(x)) for x in finding.evidence["reference_share"]]
    current = [_short(float(x)) for x in finding.evidence["current_share"]]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=bins, y=reference, name=f"reference (n={finding.n_reference})",
                         marker_color=REFERENCE_COLOUR, hovertemplate="%{x}: %{y:.1%} of the reference<extra></extra>"))
    fig.add_trace(go.Bar(x=bins, y=current, name=f"current (n={finding.n_current})", marker_color=CURRENT_COLOUR,
                         hovertemplate="%{x}: %{y:.1%} of the window<extra></extra>"))
    feature = finding.feature
    what = finding.detector if feature in (None, finding.detector) else f"{feature} · {finding.detector}"
    fig.update_layout(_base_layout(
        340, barmode="group", showlegend=True,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
        title={"text": f"{what} = {finding.value:.3g} ({finding.severity.value}), {finding.window.start:%m-%d %H:%M}",
               "font": {"size": 12}, "x": 0.0, "xanchor": "left", "y": 0.98},
        margin={"l": 56, "r": 16, "t": 70, "b": 40},
    ))
    # Long bin labels stand upright: slanted ones would overlap their neighbours in a narrow chart.
    upright = len(bins) * max((len(b) for b in bins), default=0) > 48
    fig.update_xaxes(type="category", tickangle=-90 if upright else 0, automargin=True)
    fig.update_yaxes(tickformat=".0%", rangemode="nonnegative", title_text="share", gridcolor="#eeeeee")
    return fig


# --------------------------------------------------------------------------- seasonal baseline vs observed

EXPECTED_LABELS = {True: "expected: the slot's history", False: "expected: training reference (slot warming up)"}
_EXPECTED_COLOUR = {True: "#1f77b4", False: "#9a9a9a"}
_BAND_COLOUR = {True: "rgba(31,119,180,0.22)", False: "rgba(154,154,154,0.25)"}


def window_positions(windows: Sequence[Window]) -> tuple[dict[datetime, float], list[float]]:
    """x of each window start (a window is 1 wide) and the x of each compressed gap."""
    starts = sorted({w.start for w in windows})
    size = min((w.end - w.start for w in windows), default=timedelta(0))
    positions: dict[datetime, float] = {}
    gaps: list[float] = []
    x = 0.0
    for index, start in enumerate(starts):
        if index and start - starts[index - 1] > size:
            gaps.append(x + 0.25)
            x += 0.5
        positions[start] = x
        x += 1.0
    return positions, gaps


def window_ticks(positions: Mapping[datetime, float], gaps: Sequence[float], most: int = 8) -> list[tuple[float, str]]:
    """At most about ``most`` labelled windows: the first after each gap, then evenly spaced."""
    ordered = sorted(positions.items(), key=lambda item: item[1])
    step = max(1, math.ceil(len(ordered) / most))
    firsts = {g + 0.25 for g in gaps}
    picked: list[tuple[float, str]] = []
    for index, (start, x) in enumerate(ordered):
        if index % step == 0 or x in firsts:
            if picked and x - picked[-1][0] < step * 0.6:
                if x not in firsts:
                    continue
                picked.pop()  # a run's first window wins over an evenly spaced one just before it
            picked.append((x, f"{start:%m-%d %H:%M}"))
    return picked


def seasonal_figure(series: Sequence[SeasonalSeries]) -> Figure:
    """One model feature's series (one panel per cohort): the expected median and quartile
    band per window (blue: the slot's history; grey: the training reference while the slot
    warms up), the observed median with its quartiles, and the windows at warn or alert.

    The x axis runs window by window; a stretch without any window (no traffic, e.g. a
    history of business hours only) is drawn as one narrow gap with a dotted line, so the
    windows keep their width whatever the history's holes.
    """
    if not series:
        raise ValueError("seasonal_figure needs at least one series")
    go = _go()
    positions, gaps = window_positions([p.window for s in series for p in s.points])
    height = 230 * len(series) + 90
    fig = _subplots(rows=len(series), cols=1, shared_xaxes=True, subplot_titles=[s.cohort_key for s in series],
                    vertical_spacing=min(0.3, 60 / height) if len(series) > 1 else 0.0)
    shown: set[str] = set()
    for index, item in enumerate(series):
        _seasonal_panel(go, fig, item, positions, gaps, index + 1, shown)
    ticks = window_ticks(positions, gaps)
    fig.update_xaxes(tickvals=[x + 0.5 for x, _ in ticks], ticktext=[label for _, label in ticks],
                     range=[-0.3, max(positions.values(), default=0.0) + 1.3], showgrid=False,
                     showline=True, linecolor="#999999")
    fig.update_yaxes(gridcolor="#eeeeee", showline=True, linecolor="#999999", nticks=6)
    first = series[0]
    fig.update_layout(_base_layout(
        height, showlegend=True, hovermode="closest", margin={"l": 64, "r": 16, "t": 80, "b": 40},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0.0, "font": {"size": 10}},
        title={"text": f"{first.model}: {first.feature} against its {first.seasonality} baseline",
               "font": {"size": 12}, "x": 0.0, "xanchor": "left", "y": 0.995, "yanchor": "top"},
    ))
    fig.update_annotations(font={"size": 11})
    return fig


def _seasonal_panel(go: Any, fig: Figure, series: SeasonalSeries, positions: Mapping[datetime, float],
                    gaps: Sequence[float], row: int, shown: set[str]) -> None:
    def legend(label: str) -> dict[str, Any]:
        first = label not in shown
        shown.add(label)
        return {"name": label, "legendgroup": label, "showlegend": first}

    # Each run of consecutive windows of one kind (slot history or reference) is one band,
    # each window's expectation flat over the window, as a step.
    runs: list[tuple[bool, list[tuple[float, tuple[float, ...]]]]] = []
    previous: float | None = None
    for point in series.points:
        x = positions[point.window.start]
        if not runs or runs[-1][0] is not point.seasonal or previous is None or x - previous > 1.0:
            runs.append((point.seasonal, []))
        runs[-1][1].append((x, point.expected))
        previous = x
    for seasonal, run in runs:
        xs = [at for x, _ in run for at in (x, x + 1.0)]
        low, mid, high = ([_short(e[i]) for _, e in run for _ in (0, 1)] for i in range(3))
        label = EXPECTED_LABELS[seasonal]
        fig.add_trace(go.Scatter(x=xs, y=low, mode="lines", line={"width": 0}, hoverinfo="skip", showlegend=False,
                                 legendgroup=label), row=row, col=1)
        fig.add_trace(go.Scatter(x=xs, y=high, mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=_BAND_COLOUR[seasonal], hoverinfo="skip", showlegend=False,
                                 legendgroup=label), row=row, col=1)
        fig.add_trace(go.Scatter(
            x=xs, y=mid, mode="lines", line={"color": _EXPECTED_COLOUR[seasonal], "width": 1.3,
                                             "dash": "solid" if seasonal else "dash"},
            hovertemplate="expected median %{y:.4g}<extra></extra>", **legend(label),
        ), row=row, col=1)
    seen = [p for p in series.points if p.observed is not None]
    if seen:
        observed = [p.observed for p in seen if p.observed is not None]
        fig.add_trace(go.Scatter(
            x=[positions[p.window.start] + 0.5 for p in seen], y=[_short(o[1]) for o in observed], mode="markers",
            marker={"color": "black", "size": 5},
            error_y={"type": "data", "array": [_short(o[2] - o[1]) for o in observed],
                     "arrayminus": [_short(o[1] - o[0]) for o in observed], "thickness": 1, "width": 2,
                     "color": "black"},
            customdata=[[p.local_start[:16].replace("T", " "), p.slot_label, p.n_observed] for p in seen],
            hovertemplate=("%{customdata[0]} (%{customdata[1]})<br>observed median %{y:.4g}, "
                           "n=%{customdata[2]}<extra></extra>"),
            **legend("observed"),
        ), row=row, col=1)
        for severity in (Severity.WARN, Severity.ALERT):
            marked = [(p, o) for p, o in zip(seen, observed) if p.severity is severity]
            if marked:
                fig.add_trace(go.Scatter(
                    x=[positions[p.window.start] + 0.5 for p, _ in marked], y=[_short(o[1]) for _, o in marked],
                    mode="markers", marker={"color": SEVERITY_COLOUR[severity], "size": 10,
                                            "line": {"color": "black", "width": 0.6}},
                    customdata=[p.psi for p, _ in marked], hovertemplate="PSI %{customdata:.3g}<extra></extra>",
                    **legend(f"PSI {severity.value}"),
                ), row=row, col=1)
    for gap in gaps:
        fig.add_vline(x=gap, line={"color": "#555555", "dash": "dot", "width": 1}, row=row, col=1)
    fig.update_yaxes(title_text=series.feature, row=row, col=1)


# --------------------------------------------------------------------------- embedding projections


def projection_figure(item: EmbeddingProjection) -> Figure:
    """Reference (grey) and current (blue) embeddings on the reference's first two principal
    components, each set's centroid marked."""
    go = _go()
    f, p = item.finding, item.projection
    fig = go.Figure()
    for xy, name, colour, size, opacity in (
        (p.reference, f"reference (n={p.reference.shape[0]} of {item.n_reference_total})", REFERENCE_COLOUR, 4, 0.35),
        (p.current, f"current (n={p.current.shape[0]} of {item.n_current_total})", CURRENT_COLOUR, 6, 0.75),
    ):
        fig.add_trace(go.Scatter(x=[_short(v) for v in xy[:, 0]], y=[_short(v) for v in xy[:, 1]], mode="markers",
                                 name=name, marker={"color": colour, "size": size, "opacity": opacity},
                                 hovertemplate="(%{x:.3g}, %{y:.3g})<extra></extra>"))
    centroids = ((p.reference, "reference centroid", "#4d4d4d"), (p.current, "current centroid", "#d62728"))
    for xy, name, colour in centroids:
        centre = xy.mean(axis=0)
        fig.add_trace(go.Scatter(x=[_short(float(centre[0]))], y=[_short(float(centre[1]))], mode="markers", name=name,
                                 showlegend=False, hovertemplate=f"{name} (%{{x:.3g}}, %{{y:.3g}})<extra></extra>",
                                 marker={"symbol": "x", "size": 14, "color": colour,
                                         "line": {"color": "white", "width": 1}}))
    ratio = p.explained_variance_ratio
    p_value = f.evidence.get("p_value")
    judged_text = f"p={p_value:.3g}" if isinstance(p_value, (int, float)) else f"{f.value:.3g}"
    what = f.detector if f.feature in (None, f.detector) else f"{f.detector} on {f.feature}"
    fig.update_layout(_base_layout(
        440, showlegend=True, legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
        title={"text": f"{what} {judged_text} ({f.severity.value}), {f.window.start:%Y-%m-%d %H:%M}",
               "font": {"size": 12}, "x": 0.0, "xanchor": "left", "y": 0.98},
        margin={"l": 56, "r": 16, "t": 80, "b": 48},
    ))
    fig.update_xaxes(title_text=f"PC1 ({ratio[0]:.0%} of reference variance)", gridcolor="#eeeeee", zeroline=False)
    fig.update_yaxes(title_text=f"PC2 ({ratio[1]:.0%})", gridcolor="#eeeeee", zeroline=False)
    return fig


def seasonal_groups(series: Sequence[SeasonalSeries]) -> list[list[SeasonalSeries]]:
    """Seasonal series grouped by (model, feature), one figure each, in first-seen order."""
    groups: dict[tuple[str, str], list[SeasonalSeries]] = defaultdict(list)
    for item in series:
        groups[(item.model, item.feature)].append(item)
    return list(groups.values())
