"""What the run's findings and ticket events say, in numbers: the "what if" table of
alert counts at other alert levels, the per-cohort summary, the series worth drawing
and the top findings. Pure functions of the run's values, no plotting library."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from drift.findings import Finding, Severity
from drift.tickets import TicketEvent

WHAT_IF_FACTORS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0)
"""Strictness factors of the "what if" table: 1 is the configured alert level,
2 twice as strict, 0.5 half as strict."""

TOP_FINDINGS = 6
"""Findings whose reference vs current histograms the report draws."""

TOP_SERIES = 6
"""Series (detector and feature) of a cohort drawn at first; the rest are one click away."""

SEVERITY_RANK = {Severity.OK: 0, Severity.WARN: 1, Severity.ALERT: 2}


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


def excess(judgement: Judged, alert: float) -> float:
    """How far past its alert level a judged value is, as a ratio (1 is at the level,
    greater is worse; for p-values the level over the value)."""
    if alert == 0:
        return judgement.value
    ratio = judgement.value / alert
    return 1 / ratio if judgement.lower_is_worse and ratio > 0 else ratio


def rank(finding: Finding) -> tuple[int, float]:
    """Severity first, then how far past the alert level; (-1, 0) when not judged."""
    judgement = judged(finding)
    if judgement is None:
        return (-1, 0.0)
    return (SEVERITY_RANK[finding.severity], excess(judgement, finding.alert))


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


def what_if_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """The "what if" rows as one row per detector and one column per factor: each cell
    ``alerting windows (series)``. Returns (header, rows)."""
    factors = sorted({float(r["factor"]) for r in rows})
    by_detector: dict[str, dict[float, Mapping[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_detector[str(row["detector"])][float(row["factor"])] = row
    table: list[list[Any]] = []
    for detector, by_factor in by_detector.items():
        first = next(iter(by_factor.values()))
        own = by_factor.get(1.0)
        level = "-" if own is None else "per feature" if own["alert_level"] is None else own["alert_level"]
        table.append([
            detector, first["levels_on"], level, first["n_findings"],
            *(f"{r['n_alert_findings']} ({r['n_series']})" if (r := by_factor.get(f)) is not None else "-"
              for f in factors),
        ])
    return ["detector", "levels on", "alert level", "findings", *(f"x{f:g}" for f in factors)], table


def top_findings(findings: Sequence[Finding], n: int = TOP_FINDINGS) -> list[Finding]:
    """The worst window of each alerting (else warning) series that has bin shares, worst first."""
    return worst_per_series(findings, has_bins, n)


def worst_per_series(findings: Sequence[Finding], keep: Callable[[Finding], bool], n: int) -> list[Finding]:
    """The worst window (by :func:`rank`) of each series (fingerprint) at warn or alert among the
    findings ``keep`` accepts, worst first, at most ``n``."""
    best: dict[str, tuple[tuple[int, float], Finding]] = {}
    for finding in findings:
        if finding.severity is Severity.OK or not keep(finding):
            continue
        key = rank(finding)
        if key[0] < 0:
            continue
        if finding.fingerprint not in best or key > best[finding.fingerprint][0]:
            best[finding.fingerprint] = (key, finding)
    ranked = sorted(best.values(), key=lambda item: item[0], reverse=True)
    return [finding for _, finding in ranked[:n]]


def has_bins(finding: Finding) -> bool:
    """Whether the finding's evidence holds bin labels and both sets' shares."""
    evidence = finding.evidence
    return (isinstance(evidence.get("bins"), list) and isinstance(evidence.get("reference_share"), list)
            and isinstance(evidence.get("current_share"), list))


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


# --------------------------------------------------------------------------- series and cohorts


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One judged window of a series."""

    start: datetime
    end: datetime
    value: float
    """The judged value (:func:`judged`): the p-value where the levels apply to it."""
    severity: Severity


@dataclass(frozen=True, slots=True)
class Series:
    """One detector on one feature of one cohort, window by window."""

    cohort_key: str
    detector: str
    feature: str | None
    points: tuple[SeriesPoint, ...]
    """Judged windows in time order (skipped ones left out)."""
    levels: tuple[tuple[float, float], ...]
    """The distinct (warn, alert) levels of its windows."""
    lower_is_worse: bool
    worst: tuple[int, float]
    """:func:`rank` of its worst window."""
    ticket_windows: tuple[tuple[datetime, datetime], ...] = ()
    """Windows that opened or updated one of its tickets."""

    @property
    def label(self) -> str:
        return self.detector if self.feature in (None, "", self.detector) else f"{self.feature} · {self.detector}"

    @property
    def is_quality(self) -> bool:
        return self.detector.startswith("quality.")

    @property
    def is_quiet(self) -> bool:
        """Never past warn and the same value in every window (a flat line says nothing)."""
        return self.worst[0] <= 0 and len({p.value for p in self.points}) <= 1


@dataclass(frozen=True, slots=True)
class CohortSeries:
    """What a cohort's timelines draw: its top series, the rest, and what is left out."""

    cohort_key: str
    top: tuple[Series, ...]
    rest: tuple[Series, ...]
    quiet_quality: tuple[Series, ...]
    """Quality checks that stayed ok at one value throughout: named, not drawn."""
    not_judged: tuple[str, ...]
    """Series labels whose every window was skipped."""
    start: datetime
    end: datetime
    """The first window start and last window end of the cohort's findings."""


def cohort_series(
    findings: Sequence[Finding], tickets: Sequence[TicketEvent] = (), top_k: int = TOP_SERIES,
) -> list[CohortSeries]:
    """Per cohort (in key order) its series, worst first: the ``top_k`` worst to draw at first,
    the others, and the quiet quality checks (ok and flat) that are only named."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1; got {top_k}")
    grouped: dict[str, dict[tuple[str, str | None], list[Finding]]] = defaultdict(lambda: defaultdict(list))
    for finding in findings:
        grouped[finding.cohort.key][(finding.detector, finding.feature)].append(finding)
    shaded: dict[tuple[str, str, str | None], set[tuple[datetime, datetime]]] = defaultdict(set)
    for event in tickets:
        t = event.ticket
        if event.kind != "cleared":
            size = _window_size(grouped.get(t.cohort_key, {}).get((t.detector, t.feature), []))
            shaded[(t.cohort_key, t.detector, t.feature)].add((t.last_window_end - size, t.last_window_end))
    out = []
    for key in sorted(grouped):
        drawn: list[Series] = []
        quiet: list[Series] = []
        not_judged: list[str] = []
        for (detector, feature), items in grouped[key].items():
            series = _series(key, detector, feature, items, shaded.get((key, detector, feature), set()))
            if not series.points:
                not_judged.append(series.label)
            elif series.is_quality and series.is_quiet:
                quiet.append(series)
            else:
                drawn.append(series)
        drawn.sort(key=lambda s: (s.worst, s.label), reverse=True)
        every = [f for items in grouped[key].values() for f in items]
        out.append(CohortSeries(
            key, tuple(drawn[:top_k]), tuple(drawn[top_k:]), tuple(sorted(quiet, key=lambda s: s.label)),
            tuple(sorted(not_judged)), min(f.window.start for f in every), max(f.window.end for f in every),
        ))
    return out


def _window_size(findings: Sequence[Finding]) -> timedelta:
    sizes = [f.window.end - f.window.start for f in findings if f.window.end > f.window.start]
    return min(sizes) if sizes else timedelta(0)


def _series(cohort_key: str, detector: str, feature: str | None, findings: Sequence[Finding],
            ticket_windows: set[tuple[datetime, datetime]]) -> Series:
    points = []
    levels = set()
    lower = False
    worst = (-1, 0.0)
    for finding in sorted(findings, key=lambda f: f.window.start):
        judgement = judged(finding)
        if judgement is None:
            continue
        lower = judgement.lower_is_worse
        levels.add((finding.warn, finding.alert))
        worst = max(worst, rank(finding))
        points.append(SeriesPoint(finding.window.start, finding.window.end, judgement.value, finding.severity))
    return Series(cohort_key, detector, feature, tuple(points), tuple(sorted(levels)), lower, worst,
                  tuple(sorted(ticket_windows)))


@dataclass(frozen=True, slots=True)
class CohortSummary:
    """One row of the report's first table."""

    cohort_key: str
    worst: Finding | None
    """The worst judged window of the cohort (severity, then how far past its alert level)."""
    first_past: Finding | None
    """The earliest window at warn or alert (the worst of that window's findings)."""
    n_past: int
    """Findings at warn or alert."""
    n_findings: int
    tickets: tuple[tuple[str, str], ...]
    """(ticket id, status) of the tickets the run opened or touched for the cohort."""


def cohort_summaries(findings: Sequence[Finding], tickets: Sequence[TicketEvent] = ()) -> list[CohortSummary]:
    """One row per cohort, the cohorts with the worst findings first."""
    by_cohort: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_cohort[finding.cohort.key].append(finding)
    states: dict[str, dict[str, str]] = defaultdict(dict)
    for row in ticket_rows(tickets):
        states[row["cohort_key"]][row["id"]] = row["status"]
    for key in states:
        by_cohort.setdefault(key, [])
    rows = []
    for key, items in by_cohort.items():
        judged_items = [f for f in items if rank(f)[0] >= 0]
        worst = max(judged_items, key=rank, default=None)
        past = [f for f in judged_items if f.severity is not Severity.OK]
        first_start = min((f.window.start for f in past), default=None)
        first = max((f for f in past if f.window.start == first_start), key=rank, default=None)
        rows.append(CohortSummary(key, worst, first, len(past), len(items), tuple(states[key].items())))
    rows.sort(key=lambda r: r.cohort_key)
    rows.sort(key=lambda r: (rank(r.worst) if r.worst is not None else (-1, 0.0), len(r.tickets)), reverse=True)
    return rows
