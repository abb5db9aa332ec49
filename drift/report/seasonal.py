"""The seasonal baseline against what was observed: a cohort's windows re-read from the
history, replayed through :mod:`drift.baselines` window by window (the flow's steps, in the
flow's order), and which model feature and cohorts to draw."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from drift.baselines import SeasonalBaseline, baseline_profile, resume, score_window
from drift.config import BaselineConfig, Config
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import NumericProfile, ReferenceProfile
from drift.report.analysis import rank
from drift.summary import WindowSummary

if TYPE_CHECKING:
    from detectors.base import Detector

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
            found = rank(finding)
            if key not in best or found > best[key]:
                best[key] = found
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
            found = rank(finding)
            key = finding.cohort.key
            if key not in worst or found > worst[key]:
                worst[key] = found
    keys = set(worst) | set(traffic)
    ranked = sorted(keys, key=lambda key: (worst.get(key, (-2, 0.0)), traffic.get(key, 0), key), reverse=True)
    return ranked[:n]

