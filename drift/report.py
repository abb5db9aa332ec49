"""Backtest reports: what a detector config would have done on history, in numbers and plots.

Everything here is a pure function of its inputs: a run's findings and ticket
events (the same values ``drift replay`` prints) give the "what if" table of alert
counts at other alert levels, the timelines and the reference vs current
histograms; windows of the history re-read by ``flows.backtest`` give the two
sections the findings alone cannot draw:

- :func:`seasonal_series`: for a numeric feature of a model with a seasonal
  baseline, each window's observed median and quartiles against what the baseline
  expected for that window's slot (the same :mod:`drift.baselines` steps as the
  flow, replayed window by window);
- :func:`project_embeddings`: reference and current embeddings of a top
  ``embedding`` finding, projected on the reference's first two principal components.

The HTML page embeds every figure as a PNG data URI, so the report opens offline
and nothing is fetched.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from drift.baselines import SeasonalBaseline, baseline_profile, resume, score_window
from drift.config import BaselineConfig, Config
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import NumericProfile, ReferenceProfile
from drift.summary import WindowSummary
from drift.tickets import TicketEvent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from detectors.base import Detector

WHAT_IF_FACTORS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0)
"""Strictness factors of the "what if" table: 1 is the configured alert level,
2 twice as strict, 0.5 half as strict."""

TOP_FINDINGS = 6
"""Findings whose reference vs current histograms the report draws."""

_SEVERITY_COLOUR = {Severity.WARN: "#f0a30a", Severity.ALERT: "#d62728"}
_RANK = {Severity.OK: 0, Severity.WARN: 1, Severity.ALERT: 2}


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


# --------------------------------------------------------------------------- seasonal baseline vs observed

SEASONAL_COHORTS = 4
"""Cohorts per feature whose seasonal baseline the report draws (the worst first)."""

QUANTILES: tuple[float, float, float] = (0.25, 0.5, 0.75)
"""Quantiles drawn for observed and expected values: the median and the quartiles around it."""


@dataclass(slots=True)
class HistoryWindow:
    """One closed cohort window re-read from the history: the flow's summary of it and
    the raw values of the features the report plots."""

    cohort: Cohort
    window: Window
    summary: WindowSummary
    """Flushed (:func:`drift.summary.flush`), as the flow scores it."""
    values: Mapping[str, npt.NDArray[np.float64]]
    """Finite numeric values of each plotted feature in the window, in event order."""


def binned_quantiles(
    profile: NumericProfile, shares: npt.ArrayLike, qs: Sequence[float] = QUANTILES,
) -> tuple[float, ...]:
    """Quantiles of a distribution known only by its shares over ``profile``'s bins.

    Read as a histogram is read: the values of a bin are taken as spread evenly
    between its edges, so the ``q`` quantile lies in the first bin whose cumulative
    share reaches ``q``, at the matching fraction of its width. The open outer bins
    are closed at the reference's smallest and largest values (``low``, ``high``).
    With quantile bins of the reference (PSI's) each bin holds about ``1 / bins`` of
    the training data, so the error is at most one bin's width.

    >>> p = NumericProfile(edges=(10.0, 20.0, 30.0), shares=(0.25,) * 4, n=100, low=0.0, high=40.0)
    >>> binned_quantiles(p, p.shares)
    (10.0, 20.0, 30.0)
    >>> binned_quantiles(p, (0.0, 0.5, 0.5, 0.0), qs=(0.25, 0.5))
    (15.0, 20.0)
    """
    weights = np.asarray(shares, dtype=np.float64)
    if weights.shape != (profile.n_bins,) or not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"shares must be {profile.n_bins} finite non-negative numbers; got {weights.tolist()!r}")
    total = float(weights.sum())
    if total <= 0:
        raise ValueError("shares must not all be zero")
    cumulative = np.cumsum(weights) / total
    edges = profile.edges
    low = min(profile.low, edges[0]) if edges else profile.low
    high = max(profile.high, edges[-1]) if edges else profile.high
    bounds = np.array([low, *edges, high], dtype=np.float64)
    out: list[float] = []
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantiles must be in [0, 1]; got {q!r}")
        index = min(int(np.searchsorted(cumulative, q, side="left")), profile.n_bins - 1)
        before = float(cumulative[index - 1]) if index > 0 else 0.0
        share = float(cumulative[index]) - before
        fraction = min(max((q - before) / share, 0.0), 1.0) if share > 0 else 0.0
        out.append(float(bounds[index] + fraction * (bounds[index + 1] - bounds[index])))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SeasonalPoint:
    """One window of a :class:`SeasonalSeries`: what was seen, and what the baseline expected."""

    window: Window
    slot: int
    """The window's seasonal slot (:meth:`drift.baselines.SlotClock.place` of its start)."""
    slot_label: str
    """The slot as the baseline names it, in its local time: ``hour_of_week=37 Europe/Berlin``,
    ``holiday hour=10``."""
    local_start: str
    """The window start in the baseline's time zone (ISO 8601 with its UTC offset)."""
    holiday: bool
    """Whether the window's local date is a holiday of ``baseline.calendar``."""
    n_observed: int
    observed: tuple[float, ...] | None
    """:data:`QUANTILES` of the window's values (exact); None when it had none."""
    observed_mean: float | None
    expected_shares: tuple[float, ...]
    """The shares the window was compared with (:func:`drift.baselines.baseline_profile`)."""
    expected: tuple[float, ...]
    """:data:`QUANTILES` read from ``expected_shares`` (:func:`binned_quantiles`)."""
    n_expected: int
    """Values behind ``expected_shares``: the slot's history, or the training reference."""
    seasonal: bool
    """True when the slot's history was used; False while it is below ``min_samples``
    (warm-up), when the window was compared with the training reference."""
    baseline: str
    """The baseline's own description, as in the PSI finding's ``baseline``."""
    severity: Severity | None
    """The run's PSI finding on the feature in this window; None without one (or skipped)."""
    psi: float | None

    def to_dict(self) -> dict[str, Any]:
        def named(values: tuple[float, ...] | None) -> dict[str, float] | None:
            if values is None:
                return None
            return {_quantile_name(q): v for q, v in zip(QUANTILES, values)}

        return {
            "window_start": self.window.start.isoformat(), "window_end": self.window.end.isoformat(),
            "slot": self.slot, "slot_label": self.slot_label, "local_start": self.local_start,
            "holiday": self.holiday,
            "observed": {"n": self.n_observed, "mean": self.observed_mean, **(named(self.observed) or {})},
            "expected": {"n": self.n_expected, "source": "seasonal" if self.seasonal else "reference",
                         "baseline": self.baseline, **(named(self.expected) or {}),
                         "shares": list(self.expected_shares)},
            "severity": None if self.severity is None else self.severity.value,
            "psi": self.psi,
        }


def _quantile_name(q: float) -> str:
    return "median" if q == 0.5 else f"p{round(q * 100):02d}"


@dataclass(frozen=True, slots=True)
class SeasonalSeries:
    """A feature of one cohort, window by window: observed values against the seasonal baseline."""

    model: str
    feature: str
    cohort_key: str
    seasonality: str
    points: tuple[SeasonalPoint, ...]
    timezone: str = "UTC"
    """The zone whose local time the slots follow (``baseline.timezone``)."""
    holiday_as: str | None = None
    """``baseline.calendar.holiday_as`` (None without a calendar)."""

    @property
    def holidays(self) -> list[str]:
        """Local dates of the holiday windows, in order."""
        return sorted({p.local_start[:10] for p in self.points if p.holiday})

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "feature": self.feature, "cohort_key": self.cohort_key,
            "seasonality": self.seasonality, "timezone": self.timezone, "holiday_as": self.holiday_as,
            "holidays": self.holidays, "quantiles": list(QUANTILES),
            "n_windows": len(self.points), "n_seasonal_windows": sum(p.seasonal for p in self.points),
            "windows": [p.to_dict() for p in self.points],
        }


def seasonal_series(
    windows: Iterable[HistoryWindow],
    reference: ReferenceProfile,
    config: BaselineConfig,
    features: Sequence[str],
    detectors: Sequence[Detector],
    seeded: SeasonalBaseline | None = None,
    findings: Sequence[Finding] = (),
) -> list[SeasonalSeries]:
    """Replay one cohort's seasonal baseline over its windows; one series per feature.

    The flow's steps, in the flow's order: each window (by start) is compared with
    :func:`drift.baselines.baseline_profile` of the state so far, then fed back with
    :func:`drift.baselines.score_window` (healthy rule included). The state starts
    from ``seeded`` (the stored baseline the flow seeds from, ``drift baseline build
    --history``) or empty; ``detectors`` are the model's PSI detectors, the only ones
    the healthy rule reads. ``findings`` (the run's) give each point its PSI severity.
    """
    ordered = sorted(windows, key=lambda item: item.window.start)
    if not ordered:
        return []
    cohort = ordered[0].cohort
    if any(item.cohort.key != cohort.key for item in ordered):
        keys = sorted({item.cohort.key for item in ordered})
        raise ValueError(f"seasonal_series takes the windows of one cohort; got {keys}")
    for feature in features:
        if not isinstance(reference.features.get(feature), NumericProfile):
            raise ValueError(f"feature {feature!r} of {reference.model!r} is not a profiled numeric feature")
    state = resume(seeded.copy() if seeded is not None else None, reference, config)
    psi_by_window = {
        (f.window.start, f.feature): f for f in findings if f.detector == "psi" and f.cohort.key == cohort.key
    }
    points: dict[str, list[SeasonalPoint]] = {feature: [] for feature in features}
    empty = np.empty(0, dtype=np.float64)
    for item in ordered:
        start = item.window.start
        profile, descriptions = baseline_profile(reference, state, start)
        place = state.clock.place(start)
        slot, period = place.slot, place.period
        zone = state.clock.timezone
        local_start = start.astimezone(timezone.utc if zone == "UTC" else ZoneInfo(zone)).isoformat()
        for feature in features:
            compared = profile.features[feature]
            assert isinstance(compared, NumericProfile)
            values = item.values.get(feature, empty)
            finding = psi_by_window.get((start, feature))
            judged_finding = finding if finding is not None and finding.skipped is None else None
            points[feature].append(SeasonalPoint(
                window=item.window, slot=slot, slot_label=state.clock.slot_text(slot), local_start=local_start,
                holiday=place.holiday, n_observed=int(values.size),
                observed=tuple(float(v) for v in np.quantile(values, QUANTILES)) if values.size else None,
                observed_mean=float(values.mean()) if values.size else None,
                expected_shares=tuple(compared.shares),
                expected=binned_quantiles(compared, compared.shares),
                n_expected=compared.n, seasonal=state.is_warm(feature, slot, period),
                baseline=descriptions[feature],
                severity=None if judged_finding is None else judged_finding.severity,
                psi=None if judged_finding is None else float(judged_finding.value),
            ))
        score_window(state, reference, detectors, item.cohort, item.window, item.summary)
    calendar = state.clock.calendar
    return [
        SeasonalSeries(reference.model, feature, cohort.key, state.seasonality, tuple(points[feature]),
                       state.clock.timezone, None if calendar is None else calendar.holiday_as)
        for feature in features
    ]


def seasonal_features(config: Config) -> list[tuple[str, str]]:
    """(model, feature) of every numeric feature of a model with a seasonal baseline."""
    return [
        (model.name, name) for model in config.models if model.baseline.seasonality != "none"
        for name, spec in model.features.items() if spec.type == "numeric"
    ]


def _psi_rank(finding: Finding) -> tuple[int, float]:
    judgement = judged(finding)
    if judgement is None:
        return (-1, 0.0)
    return (_RANK[finding.severity], _excess(judgement, finding.alert))


def top_drifting_feature(config: Config, findings: Sequence[Finding]) -> tuple[str, str] | None:
    """The seasonal model's numeric feature whose worst PSI window is worst (severity, then
    how far past its alert level); the first such feature when none was judged; None
    when no model has a seasonal baseline."""
    candidates = seasonal_features(config)
    if not candidates:
        return None
    wanted = set(candidates)
    best: dict[tuple[str, str], tuple[int, float]] = {}
    for finding in findings:
        key = (finding.cohort.model, finding.feature or "")
        if finding.detector == "psi" and key in wanted:
            rank = _psi_rank(finding)
            if key not in best or rank > best[key]:
                best[key] = rank
    if not best:
        return candidates[0]
    return max(candidates, key=lambda key: best.get(key, (-2, 0.0)))


def top_cohorts(
    findings: Sequence[Finding], model: str, feature: str, traffic: Mapping[str, int],
    n: int = SEASONAL_COHORTS,
) -> list[str]:
    """The ``n`` cohorts of ``model`` to draw for ``feature``: worst PSI window first, then most events.

    ``traffic`` is events per cohort key of the model (the run's windows).
    """
    worst: dict[str, tuple[int, float]] = {}
    for finding in findings:
        if finding.detector == "psi" and finding.cohort.model == model and finding.feature == feature:
            rank = _psi_rank(finding)
            key = finding.cohort.key
            if key not in worst or rank > worst[key]:
                worst[key] = rank
    keys = set(worst) | set(traffic)
    ranked = sorted(keys, key=lambda key: (worst.get(key, (-2, 0.0)), traffic.get(key, 0), key), reverse=True)
    return ranked[:n]


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
    positions, gaps = _window_positions([p.window for s in series for p in s.points])
    fig = _new_figure(10.0, 2.5 * len(series) + 1.0)
    first = series[0]
    fig.suptitle(f"{first.model}: {first.feature} against its {first.seasonality} baseline "
                 "(median and 25-75% per window)", fontsize=10)
    axes = None
    for index, item in enumerate(series):
        ax = fig.add_subplot(len(series), 1, index + 1, sharex=axes)
        axes = axes if axes is not None else ax
        _seasonal_axes(ax, item, positions, gaps)
    # One legend for all panels (a marker seen only in a later panel still gets its entry),
    # in the order the caption reads.
    entries: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    order = [_EXPECTED_LABELS[True], _EXPECTED_LABELS[False], "observed",
             *(f"PSI {severity.value}" for severity in _SEVERITY_COLOUR)]
    labels = [label for label in order if label in entries]
    fig.legend([entries[label] for label in labels], labels, loc="upper center", ncol=len(labels), fontsize=7,
               frameon=False, bbox_to_anchor=(0.5, 0.965))
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.93))
    return fig


_EXPECTED_LABELS = {True: "expected: the slot's history", False: "expected: training reference (slot warming up)"}


def _window_positions(windows: Sequence[Window]) -> tuple[dict[datetime, float], list[float]]:
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


def _seasonal_axes(ax: Any, series: SeasonalSeries, positions: Mapping[datetime, float], gaps: Sequence[float]) -> None:
    xs: list[float] = []
    rows: list[tuple[float, float, float, bool]] = []
    previous: float | None = None
    for point in series.points:
        x = positions[point.window.start]
        if previous is not None and x - previous > 1.0:
            # Not the next window: break the lines instead of drawing across the hole.
            xs.append(previous + 1.0)
            rows.append((math.nan, math.nan, math.nan, False))
        # Each window's expectation is drawn flat over the window, as a step.
        for at in (x, x + 1.0):
            xs.append(at)
            rows.append((point.expected[0], point.expected[1], point.expected[2], point.seasonal))
        previous = x
    for seasonal, colour in ((True, "#1f77b4"), (False, "#9a9a9a")):
        label = _EXPECTED_LABELS[seasonal]
        low = [r[0] if r[3] is seasonal else math.nan for r in rows]
        mid = [r[1] if r[3] is seasonal else math.nan for r in rows]
        high = [r[2] if r[3] is seasonal else math.nan for r in rows]
        if all(math.isnan(v) for v in mid):
            continue
        ax.fill_between(xs, low, high, color=colour, alpha=0.22, linewidth=0)
        ax.plot(xs, mid, color=colour, linewidth=1.3, linestyle="-" if seasonal else "--", label=label)
    seen = [(positions[p.window.start] + 0.5, p.observed, p.severity) for p in series.points if p.observed is not None]
    if seen:
        ax.errorbar([c for c, _, _ in seen], [o[1] for _, o, _ in seen],
                    yerr=[[o[1] - o[0] for _, o, _ in seen], [o[2] - o[1] for _, o, _ in seen]],
                    fmt="o", color="black", markersize=3, elinewidth=0.8, capsize=2,
                    label="observed", zorder=3)
        for severity, colour in _SEVERITY_COLOUR.items():
            marked = [(c, o[1]) for c, o, s in seen if s is severity]
            if marked:
                ax.scatter([c for c, _ in marked], [m for _, m in marked], s=60, color=colour, zorder=4,
                           edgecolors="black", linewidths=0.6, label=f"PSI {severity.value}")
    for gap in gaps:
        ax.axvline(gap, color="#555555", linestyle=":", linewidth=0.8)
    ticks = _window_ticks(positions, gaps)
    ax.set_xticks([x + 0.5 for x, _ in ticks])
    ax.set_xticklabels([label for _, label in ticks], fontsize=7)
    ax.set_xlim(-0.3, max(positions.values(), default=0.0) + 1.3)
    ax.set_title(series.cohort_key, fontsize=8)
    ax.set_ylabel(series.feature, fontsize=8)
    ax.tick_params(labelsize=7)


def _window_ticks(positions: Mapping[datetime, float], gaps: Sequence[float], most: int = 9) -> list[tuple[float, str]]:
    """At most about ``most`` labelled windows: the first after each gap, then evenly spaced."""
    ordered = sorted(positions.items(), key=lambda item: item[1])
    step = max(1, math.ceil(len(ordered) / most))
    firsts = {x for x in (g + 0.25 for g in gaps)}
    picked: list[tuple[float, str]] = []
    for index, (start, x) in enumerate(ordered):
        if index % step == 0 or x in firsts:
            if picked and x - picked[-1][0] < step * 0.6:
                if x not in firsts:
                    continue
                picked.pop()  # a run's first window wins over an evenly spaced one just before it
            picked.append((x, f"{start:%m-%d %H:%M}"))
    return picked


# --------------------------------------------------------------------------- embedding projections

PROJECTION_FINDINGS = 3
"""Embedding findings whose reference vs current projection the report draws."""

PROJECTION_POINTS = 2000
"""Rows of each set (reference, current) projected and drawn at most; more are subsampled."""

PROJECTION_SEED = 0


def is_embedding_finding(finding: Finding) -> bool:
    """Whether ``finding`` comes from the ``embedding`` detector (or a sub-check of it)."""
    return finding.detector == "embedding" or finding.detector.startswith("embedding.")


def top_embedding_findings(findings: Sequence[Finding], n: int = PROJECTION_FINDINGS) -> list[Finding]:
    """The worst window of each alerting (else warning) embedding series, worst first."""
    best: dict[str, tuple[tuple[int, float], Finding]] = {}
    for finding in findings:
        if not is_embedding_finding(finding) or finding.severity is Severity.OK:
            continue
        judgement = judged(finding)
        if judgement is None:
            continue
        rank = (_RANK[finding.severity], _excess(judgement, finding.alert))
        if finding.fingerprint not in best or rank > best[finding.fingerprint][0]:
            best[finding.fingerprint] = (rank, finding)
    ranked = sorted(best.values(), key=lambda item: item[0], reverse=True)
    return [finding for _, finding in ranked[:n]]


@dataclass(frozen=True, slots=True)
class Projection:
    """Two samples on the first two principal components of the first (the reference)."""

    reference: npt.NDArray[np.float64]
    """``(n, 2)``: the reference rows' coordinates (centred: their mean is 0)."""
    current: npt.NDArray[np.float64]
    """``(m, 2)``"""
    components: npt.NDArray[np.float64]
    """``(2, d)``: orthonormal rows; each one's largest entry (in magnitude) is positive."""
    explained_variance_ratio: tuple[float, float]
    """Share of the reference sample's total variance along each component."""


def pca_projection(reference: npt.ArrayLike, current: npt.ArrayLike) -> Projection:
    """Project both samples on the reference's first two principal components.

    The components are those of :func:`detectors.embedding.principal_components` (SVD
    of the centred reference rows, as the embedding detector computes its projection
    evidence), with the sign made deterministic (the largest loading positive). A
    one-dimensional input gets a zero second coordinate.
    """
    from detectors.embedding import principal_components  # detectors import drift: import late

    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.ndim != 2 or cur.ndim != 2 or ref.shape[1] != cur.shape[1]:
        raise ValueError(f"reference and current must be (n, d) and (m, d); got {ref.shape} and {cur.shape}")
    fitted = principal_components(ref, n_components=2)
    vectors = np.zeros((2, ref.shape[1]), dtype=np.float64)
    ratio = np.zeros(2, dtype=np.float64)
    k = fitted.vectors.shape[0]
    vectors[:k] = fitted.vectors
    ratio[:k] = fitted.explained_variance_ratio
    for row in vectors[:k]:
        if row[int(np.argmax(np.abs(row)))] < 0:
            row *= -1
    return Projection(
        reference=(ref - fitted.mean) @ vectors.T, current=(cur - fitted.mean) @ vectors.T,
        components=vectors, explained_variance_ratio=(float(ratio[0]), float(ratio[1])),
    )


def subsample(rows: npt.NDArray[Any], n: int, rng: np.random.Generator) -> npt.NDArray[Any]:
    """At most ``n`` of ``rows``, drawn uniformly without replacement, in their order."""
    if rows.shape[0] <= n:
        return rows
    return rows[np.sort(rng.choice(rows.shape[0], size=n, replace=False))]


@dataclass(frozen=True, slots=True)
class EmbeddingProjection:
    """An embedding finding's window: reference vs current embeddings in the reference's PCA plane."""

    finding: Finding
    projection: Projection
    n_reference_total: int
    n_current_total: int
    """Embeddings of the cohort window in the history (the plotted ones are a sample)."""

    def to_dict(self) -> dict[str, Any]:
        """A summary of the coordinates (not every point): centroid and spread of each set."""
        f, p = self.finding, self.projection

        def described(xy: npt.NDArray[np.float64], total: int) -> dict[str, Any]:
            return {
                "n": int(xy.shape[0]), "n_total": total,
                "centroid": [float(v) for v in xy.mean(axis=0)] if xy.shape[0] else None,
                "std": [float(v) for v in xy.std(axis=0)] if xy.shape[0] else None,
            }

        reference = described(p.reference, self.n_reference_total)
        current = described(p.current, self.n_current_total)
        distance = (math.dist(reference["centroid"], current["centroid"])
                    if reference["centroid"] is not None and current["centroid"] is not None else None)
        return {
            "cohort_key": f.cohort.key, "model": f.cohort.model, "detector": f.detector, "field": f.feature,
            "window_start": f.window.start.isoformat(), "window_end": f.window.end.isoformat(),
            "severity": f.severity.value, "value": f.value, "p_value": f.evidence.get("p_value"),
            "explained_variance_ratio": list(p.explained_variance_ratio),
            "reference": reference, "current": current, "centroid_distance": distance,
        }


def project_embeddings(
    finding: Finding, reference: npt.ArrayLike, current: npt.ArrayLike, *, n_current_total: int | None = None,
    max_points: int = PROJECTION_POINTS, seed: int = PROJECTION_SEED,
) -> EmbeddingProjection:
    """``finding``'s window on the reference's PCA plane; each set subsampled to ``max_points``
    (seeded), the PCA fitted on the reference sample that is drawn."""
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2; got {max_points}")
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[0] < 2:
        raise ValueError(f"need at least 2 reference embeddings; got shape {ref.shape}")
    if cur.ndim != 2 or cur.shape[0] < 1:
        raise ValueError(f"need at least 1 current embedding; got shape {cur.shape}")
    rng = np.random.default_rng(seed)
    ref_sample = subsample(ref, max_points, rng)
    cur_sample = subsample(cur, max_points, rng)
    return EmbeddingProjection(
        finding=finding, projection=pca_projection(ref_sample, cur_sample), n_reference_total=int(ref.shape[0]),
        n_current_total=int(cur.shape[0]) if n_current_total is None else n_current_total,
    )


def projection_figure(item: EmbeddingProjection) -> Figure:
    """Reference (grey) and current (blue) embeddings on the reference's first two principal
    components, each set's centroid marked."""
    f, p = item.finding, item.projection
    fig = _new_figure(5.6, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(p.reference[:, 0], p.reference[:, 1], s=5, color="#8c8c8c", alpha=0.35,
               label=f"reference (n={p.reference.shape[0]} of {item.n_reference_total})")
    ax.scatter(p.current[:, 0], p.current[:, 1], s=9, color="#1f77b4", alpha=0.75,
               label=f"current (n={p.current.shape[0]} of {item.n_current_total})")
    for xy, colour in ((p.reference, "#4d4d4d"), (p.current, "#d62728")):
        centre = xy.mean(axis=0)
        ax.scatter([centre[0]], [centre[1]], marker="X", s=110, color=colour, edgecolors="white", linewidths=1.0,
                   zorder=4)
    ratio = p.explained_variance_ratio
    ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of reference variance)", fontsize=8)
    ax.set_ylabel(f"PC2 ({ratio[1]:.0%})", fontsize=8)
    p_value = f.evidence.get("p_value")
    judged_text = f"p={p_value:.3g}" if isinstance(p_value, (int, float)) else f"{f.value:.3g}"
    what = f.detector if f.feature in (None, f.detector) else f"{f.detector} on {f.feature}"
    ax.set_title(f"{f.cohort.key}\n{what} {judged_text} ({f.severity.value}), "
                 f"{f.window.start:%Y-%m-%d %H:%M}", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


@dataclass(frozen=True, slots=True)
class HistorySections:
    """The report sections drawn from the history re-read (not from the findings alone)."""

    seasonal: Sequence[SeasonalSeries] = ()
    projections: Sequence[EmbeddingProjection] = ()
    notes: Sequence[str] = ()
    """Why a section holds less than asked (no seasonal model, too few embeddings, ...)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "seasonal_baselines": [s.to_dict() for s in self.seasonal],
            "embedding_projections": [p.to_dict() for p in self.projections],
            "report_notes": list(self.notes),
        }


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
    sections: HistorySections | None = None,
) -> str:
    """The self-contained report page.

    ``summary`` is the run's JSON document (``events``, ``dlq``, ``windows``, ...);
    ``findings`` are all of the run's findings (ok ones too: they draw the timelines);
    ``sections`` (from the history, see ``flows.backtest.history_sections``) adds the
    seasonal baseline and embedding projection sections.
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

    if sections is not None:
        parts.extend(_seasonal_html(sections))

    parts.append("<h2>Top findings: reference vs current</h2>")
    top = top_findings(findings)
    if not top:
        parts.append("<p>no finding at warn or alert has bin shares</p>")
    for finding in top:
        label = f"{finding.cohort.key} {finding.detector} {finding.feature or ''}"
        parts.append(f'<img class="chart histogram" alt="histogram {html.escape(label)}" '
                     f'src="{png_data_uri(histogram_figure(finding))}">')

    if sections is not None:
        parts.extend(_projection_html(sections))

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


def _notes_html(notes: Sequence[str], prefix: str) -> list[str]:
    return [f'<p class="note">{html.escape(n)}</p>' for n in notes if n.startswith(prefix)]


def _seasonal_html(sections: HistorySections) -> list[str]:
    parts = ["<h2>Seasonal baseline vs observed</h2>"]
    parts.append("<p>Per window: the median and 25-75% band the baseline expected for the window's slot "
                 "(blue: the slot's history; grey, dashed: the training reference while the slot has fewer than "
                 "<code>min_samples</code> values), read from its bin shares, and the observed median with its "
                 "quartiles (black). Large markers: windows whose PSI on the feature was at warn (amber) or "
                 "alert (red).</p>")
    parts.extend(_notes_html(sections.notes, "seasonal baseline"))
    by_feature: dict[tuple[str, str], list[SeasonalSeries]] = defaultdict(list)
    for series in sections.seasonal:
        by_feature[(series.model, series.feature)].append(series)
    for (model, feature), group in by_feature.items():
        label = f"{model} {feature}"
        parts.append(f"<h3>{html.escape(label)}</h3>")
        first = group[0]
        slots = f"Slots: {first.seasonality}, local time of {first.timezone}"
        holidays = sorted({day for series in group for day in series.holidays})
        if first.holiday_as is not None:
            how = "their own holiday slots" if first.holiday_as == "own" else f"{first.holiday_as}'s slots"
            slots += (f"; holidays ({', '.join(holidays)}) scored against {how}" if holidays
                      else "; no holiday in these windows")
        parts.append(f'<p class="slots">{html.escape(slots)}.</p>')
        parts.append(f'<img class="chart seasonal" alt="seasonal {html.escape(label)}" '
                     f'src="{png_data_uri(seasonal_figure(group))}">')
    return parts


def _projection_html(sections: HistorySections) -> list[str]:
    parts = ["<h2>Embeddings: reference vs current</h2>"]
    parts.append("<p>For the top embedding findings: the reference embeddings and those of the finding's cohort "
                 "window, projected on the first two principal components of the reference (a seeded sample of at "
                 f"most {PROJECTION_POINTS} rows each). Crosses: each set's centroid.</p>")
    parts.extend(_notes_html(sections.notes, "embedding projection"))
    rows = []
    for item in sections.projections:
        d = item.to_dict()
        label = f"{d['cohort_key']} {d['field']} {item.finding.window.start:%Y-%m-%d %H:%M}"
        parts.append(f'<img class="chart projection" alt="projection {html.escape(label)}" '
                     f'src="{png_data_uri(projection_figure(item))}">')
        ratio = d["explained_variance_ratio"]
        rows.append([d["cohort_key"], d["field"] or "-", f"{item.finding.window.start:%Y-%m-%d %H:%M}",
                     d["severity"], f"{ratio[0]:.1%} + {ratio[1]:.1%}", d["reference"]["n"], d["current"]["n"],
                     _xy(d["reference"]["centroid"]), _xy(d["current"]["centroid"]),
                     float(d["centroid_distance"]) if d["centroid_distance"] is not None else "-"])
    if rows:
        parts.append(_table(["cohort", "field", "window", "severity", "explained variance", "reference n",
                             "current n", "reference centroid", "current centroid", "centroid distance"],
                            rows, "projections"))
    return parts


def _xy(point: Sequence[float] | None) -> str:
    return "-" if point is None else f"({point[0]:.3g}, {point[1]:.3g})"

