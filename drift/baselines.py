"""Seasonal baselines: what a cohort's window is expected to look like at this hour or day.

A window at 3 a.m. on a Sunday is compared with earlier Sunday 3 a.m. windows, not
with the all-day training data. Time is cut into *slots* (``hour_of_day`` 0..23,
``day_of_week`` 0..6 from Monday, ``hour_of_week`` 0..167, ``none``: one slot), and
into *periods* (a day for ``hour_of_day`` and ``none``, a week otherwise) so that "the
same slot in the previous K periods" is well defined. All in UTC.

:class:`SeasonalBaseline` is the state of one cohort: for every (feature, slot) a ring
of ``K + 1`` per-period bin-count vectors over the reference profile's fixed bins (the
current period and the K before it), so its size is ``slots x (K + 1) x bins`` integers
whatever the traffic. :func:`baseline_profile` turns it into a
:class:`~drift.reference.ReferenceProfile` with the same bins and the slot's shares,
which every detector scores against unchanged; :func:`score_window` is the one step
that scores a window and then feeds it back, online (the flow) and offline
(:func:`build_from_history`) alike.

Only healthy windows feed it (:func:`is_healthy`): a window whose baseline-comparing
findings (PSI) are all ``ok``. A window at ``warn`` or ``alert`` is kept out, so a
drift that creeps up by less than the alert threshold per period cannot drag the
baseline along with it. Warm-up is the exception: a feature whose slot has fewer than
``min_samples`` values was compared with the training reference, which cannot judge
a seasonal slot, so it is fed whatever its findings say.

State is plain numpy arrays, ints and dicts (picklable for Bytewax snapshots) and is
stored on disk as JSON (:func:`save_seasonal`), never pickled.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, NamedTuple, Sequence, get_args

import numpy as np
import numpy.typing as npt

from drift.duration import format_duration
from drift.errors import BaselineError
from drift.events import InferenceEvent
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import FeatureProfile, NumericProfile, ReferenceProfile, baseline_path
from drift.summary import WindowSummary, add_event, empty_summary, flush

if TYPE_CHECKING:
    from detectors.base import Detector
    from drift.config import BaselineConfig, ModelConfig

Seasonality = Literal["none", "hour_of_day", "day_of_week", "hour_of_week"]
SEASONALITIES: tuple[Seasonality, ...] = get_args(Seasonality)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
WEEK_EPOCH = datetime(1969, 12, 29, tzinfo=timezone.utc)
"""A Monday: weeks run from Monday 00:00 UTC, so ``day_of_week`` 0 is Monday."""

N_SLOTS: Mapping[Seasonality, int] = {"none": 1, "hour_of_day": 24, "day_of_week": 7, "hour_of_week": 168}
PERIOD: Mapping[Seasonality, timedelta] = {
    "none": timedelta(days=1), "hour_of_day": timedelta(days=1),
    "day_of_week": timedelta(weeks=1), "hour_of_week": timedelta(weeks=1),
}
"""How long one period is: the slots repeat once per period."""
_UNIT: Mapping[Seasonality, str] = {"none": "day", "hour_of_day": "day", "day_of_week": "week", "hour_of_week": "week"}

BASELINE_DETECTORS = frozenset({"psi"})
"""Detectors that compare a window with the baseline's shares: only their findings
decide whether a window is healthy (a null-rate alert says nothing about whether the
distribution of the values present is fit to learn from)."""

_RANK = {Severity.OK: 0, Severity.WARN: 1, Severity.ALERT: 2}


def _utc(ts: datetime) -> datetime:
    # Decoded events are aware; a naive datetime is taken as UTC, not as local time.
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def slot_of(ts: datetime, seasonality: Seasonality) -> int:
    """The seasonal slot of ``ts`` (UTC).

    >>> ts = datetime(2026, 1, 6, 13, 30, tzinfo=timezone.utc)  # a Tuesday
    >>> [slot_of(ts, s) for s in ("none", "hour_of_day", "day_of_week", "hour_of_week")]
    [0, 13, 1, 37]
    """
    ts = _utc(ts)
    if seasonality == "hour_of_day":
        return ts.hour
    if seasonality == "day_of_week":
        return ts.weekday()
    if seasonality == "hour_of_week":
        return ts.weekday() * 24 + ts.hour
    if seasonality == "none":
        return 0
    raise ValueError(f"seasonality must be one of {', '.join(SEASONALITIES)}; got {seasonality!r}")


def period_of(ts: datetime, seasonality: Seasonality) -> int:
    """Index of the period (day or week since the epoch) that ``ts``'s slot belongs to.

    >>> monday = datetime(2026, 1, 5, tzinfo=timezone.utc)
    >>> period_of(monday, "hour_of_week") - period_of(monday - timedelta(seconds=1), "hour_of_week")
    1
    """
    if seasonality not in PERIOD:
        raise ValueError(f"seasonality must be one of {', '.join(SEASONALITIES)}; got {seasonality!r}")
    ts = _utc(ts)
    origin = EPOCH if PERIOD[seasonality] == timedelta(days=1) else WEEK_EPOCH
    return (ts - origin) // PERIOD[seasonality]


def period_start(period: int, seasonality: Seasonality) -> datetime:
    """First instant of ``period`` (inverse of :func:`period_of`)."""
    origin = EPOCH if PERIOD[seasonality] == timedelta(days=1) else WEEK_EPOCH
    return origin + period * PERIOD[seasonality]


def n_periods_of(history: timedelta, seasonality: Seasonality) -> int:
    """K: how many whole periods ``history`` spans (``4w`` of ``hour_of_week`` is 4).

    >>> n_periods_of(timedelta(weeks=4), "hour_of_week"), n_periods_of(timedelta(weeks=1), "hour_of_day")
    (4, 7)
    """
    k = history // PERIOD[seasonality]
    if k < 1:
        raise ValueError(
            f"history must span at least one period of {seasonality} "
            f"({format_duration(PERIOD[seasonality])}); got {format_duration(history)}"
        )
    return k


def bins_fingerprint(profile: FeatureProfile) -> str:
    """A short hash of a feature's bins: counts are only comparable over the same bins."""
    if isinstance(profile, NumericProfile):
        key: list[Any] = ["numeric", list(profile.edges)]
    else:
        key = ["categorical", list(profile.categories)]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def _half_life_periods(config: BaselineConfig) -> float | None:
    half_life = config.half_life
    if half_life is None:
        return None
    if not isinstance(half_life, timedelta) or half_life <= timedelta(0):
        raise ValueError(f"half_life must be a positive duration or None; got {half_life!r}")
    return half_life / PERIOD[config.seasonality]


class Expected(NamedTuple):
    """What a slot's history expects: shares per bin, samples behind them, and how."""

    shares: npt.NDArray[np.float64]
    n: int
    description: str


@dataclass(eq=False, slots=True)
class SeasonalBaseline:
    """Per-(feature, slot) ring of per-period bin counts for one cohort.

    ``periods[slot, i]`` is the period whose counts ring cell ``i`` holds (-1: empty);
    period ``p`` lives in cell ``p % (n_periods + 1)``, so the current period and the
    ``n_periods`` before it are kept and older ones are overwritten. ``counts[feature]``
    has shape ``(slots, n_periods + 1, bins)``. ``min_samples`` and ``half_life`` (in
    periods) only affect reading and may be retuned; the rest is structure.
    """

    seasonality: Seasonality
    n_periods: int
    min_samples: int
    half_life: float | None
    bins: dict[str, str]
    """Feature -> :func:`bins_fingerprint` of the reference bins the counts are over."""
    periods: npt.NDArray[np.int64]
    counts: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------

    @classmethod
    def empty(
        cls, reference: ReferenceProfile, seasonality: Seasonality, n_periods: int,
        min_samples: int = 500, half_life: float | None = None,
    ) -> SeasonalBaseline:
        """No history yet, over every feature of ``reference``."""
        if seasonality not in N_SLOTS:
            raise ValueError(f"seasonality must be one of {', '.join(SEASONALITIES)}; got {seasonality!r}")
        if n_periods < 1 or min_samples < 1 or (half_life is not None and half_life <= 0):
            raise ValueError(
                f"need n_periods >= 1, min_samples >= 1, half_life > 0 or None; "
                f"got {n_periods}, {min_samples}, {half_life}"
            )
        slots = N_SLOTS[seasonality]
        return cls(
            seasonality=seasonality, n_periods=n_periods, min_samples=min_samples, half_life=half_life,
            bins={name: bins_fingerprint(p) for name, p in reference.features.items()},
            periods=np.full((slots, n_periods + 1), -1, dtype=np.int64),
            counts={
                name: np.zeros((slots, n_periods + 1, p.n_bins), dtype=np.int64)
                for name, p in reference.features.items()
            },
        )

    @classmethod
    def create(cls, reference: ReferenceProfile, config: BaselineConfig) -> SeasonalBaseline:
        """An empty baseline as the model's ``baseline:`` YAML asks."""
        return cls.empty(
            reference, config.seasonality, n_periods_of(config.history, config.seasonality),
            config.min_samples, _half_life_periods(config),
        )

    def mismatch(self, reference: ReferenceProfile, config: BaselineConfig) -> str | None:
        """Why this state's structure (slots, K, bins) does not fit the config and reference, or None."""
        if self.seasonality != config.seasonality:
            return f"seasonality is {self.seasonality}, the config says {config.seasonality}"
        wanted = n_periods_of(config.history, config.seasonality)
        if self.n_periods != wanted:
            return f"history is {self.n_periods} periods, the config says {wanted}"
        bins = {name: bins_fingerprint(p) for name, p in reference.features.items()}
        if self.bins != bins:
            changed = sorted(set(bins) ^ set(self.bins) | {n for n in bins if self.bins.get(n, bins[n]) != bins[n]})
            return f"the reference bins of {changed} differ (reference rebuilt or features changed)"
        return None

    def compatible(self, reference: ReferenceProfile, config: BaselineConfig) -> bool:
        """Whether this state's structure (slots, K, bins) matches the config and reference."""
        return self.mismatch(reference, config) is None

    def copy(self) -> SeasonalBaseline:
        return copy.deepcopy(self)

    # -- reading ------------------------------------------------------------------

    def _check_slot(self, feature: str, slot: int) -> None:
        if feature not in self.counts:
            raise KeyError(f"no seasonal baseline for feature {feature!r}; features: {sorted(self.counts)}")
        if not 0 <= slot < N_SLOTS[self.seasonality]:
            raise ValueError(f"{self.seasonality} slot must be in 0..{N_SLOTS[self.seasonality] - 1}; got {slot}")

    def _history(self, feature: str, slot: int, now_period: int) -> tuple[npt.NDArray[np.float64], int, int]:
        """(decay-weighted counts, raw sample count, periods present) of the previous K periods."""
        self._check_slot(feature, slot)
        held = self.periods[slot]
        rows = self.counts[feature][slot]
        age = now_period - held
        # The current period is excluded: a window is never compared with itself or with
        # the windows just before it in the same slot. A period fed for other features
        # only (see observe) has no values of this one and does not count.
        use = (held >= 0) & (age >= 1) & (age <= self.n_periods) & (rows.sum(axis=1) > 0)
        counts, age = rows[use], age[use]
        if self.half_life is None:
            weights = np.ones(age.size, dtype=np.float64)
        else:
            # The most recent previous period weighs 1, one half-life earlier 1/2.
            weights = 0.5 ** ((age - 1) / self.half_life)
        weighted: npt.NDArray[np.float64] = weights @ counts.astype(np.float64)
        return weighted, int(counts.sum()), int(age.size)

    def _slot_text(self, slot: int) -> str:
        return "all hours" if self.seasonality == "none" else f"{self.seasonality}={slot}"

    def _periods_text(self, count: int) -> str:
        unit = _UNIT[self.seasonality]
        return f"{count} {unit}{'' if count == 1 else 's'}"

    def expected(self, feature: str, slot: int, now_period: int) -> Expected | None:
        """The slot's shares over the previous ``n_periods`` periods, or None below ``min_samples``.

        Counts of the periods present are added with weights ``0.5 ** ((age - 1) / half_life)``
        (all 1 without decay; ``age`` 1 is the previous period), then normalised.
        ``n`` is the raw number of values behind them, compared with ``min_samples``.
        """
        weighted, n, used = self._history(feature, slot, now_period)
        if n == 0 or n < self.min_samples:
            return None
        shares = weighted / weighted.sum()
        decay = ""
        if self.half_life is not None:
            unit = _UNIT[self.seasonality] + ("" if self.half_life == 1 else "s")
            decay = f", half-life {self.half_life:g} {unit}"
        return Expected(shares, n, f"{self._slot_text(slot)} over {self._periods_text(used)}{decay} (n={n})")

    def fallback_reason(self, feature: str, slot: int, now_period: int) -> str:
        """Why :meth:`expected` gives None, as the finding's ``baseline`` text."""
        _, n, used = self._history(feature, slot, now_period)
        if n == 0:
            return (f"reference ({self._slot_text(slot)} has no samples in the previous "
                    f"{self._periods_text(self.n_periods)})")
        return (f"reference ({self._slot_text(slot)} has {n} < {self.min_samples} samples "
                f"over {self._periods_text(used)})")

    def is_warm(self, feature: str, slot: int, now_period: int) -> bool:
        """Whether ``feature`` at ``slot`` is compared with its seasonal history (not the reference)."""
        _, n, _ = self._history(feature, slot, now_period)
        return n > 0 and n >= self.min_samples

    # -- learning -----------------------------------------------------------------

    def observe(self, summary: WindowSummary, window_start: datetime, healthy: bool) -> tuple[str, ...]:
        """Add a flushed window's bin counts to its slot and period; returns the features fed.

        A healthy window feeds every feature. An unhealthy one feeds only the features
        still warming up at its slot (compared with the training reference, which cannot
        judge a seasonal slot); the rest keep their history clean. A window older than
        the periods kept is ignored.
        """
        slot, period = slot_of(window_start, self.seasonality), period_of(window_start, self.seasonality)
        cell = period % (self.n_periods + 1)
        held = int(self.periods[slot, cell])
        if held > period or period < int(self.periods[slot].max()) - self.n_periods:
            return ()
        for name, counts in summary.features.items():  # check all first: feed all or nothing
            if name not in self.counts:
                raise KeyError(f"summary feature {name!r} has no seasonal baseline; features: {sorted(self.counts)}")
            if counts.pending:
                raise ValueError("observe needs a flushed summary (drift.summary.flush)")
            if counts.counts.shape != self.counts[name].shape[2:]:
                raise ValueError(
                    f"feature {name!r}: the summary has {counts.counts.size} bins, "
                    f"the baseline {self.counts[name].shape[2]}"
                )
        fed: list[str] = []
        for name, counts in summary.features.items():
            if not healthy and self.is_warm(name, slot, period):
                continue
            ring = self.counts[name]
            if held != period:
                # The cell still holds period - K - 1 (or older): no longer in any history.
                self.periods[slot, cell] = period
                for other in self.counts.values():
                    other[slot, cell] = 0
                held = period
            ring[slot, cell] += counts.counts
            fed.append(name)
        return tuple(fed)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays: fixed by slots, K and bins, not by traffic."""
        return int(self.periods.nbytes + sum(a.nbytes for a in self.counts.values()))

    # -- storage ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping; only the filled (slot, period) cells are written."""
        cells = []
        for slot, cell in zip(*np.nonzero(self.periods >= 0)):
            period = int(self.periods[slot, cell])
            cells.append({
                "slot": int(slot), "period": period,
                "period_start": period_start(period, self.seasonality).isoformat(),
                "counts": {name: [int(c) for c in ring[slot, cell]] for name, ring in self.counts.items()},
            })
        cells.sort(key=lambda item: (item["slot"], item["period"]))
        return {
            "seasonality": self.seasonality, "n_periods": self.n_periods,
            "min_samples": self.min_samples, "half_life": self.half_life,
            "features": {name: {"bins": fp, "n_bins": int(self.counts[name].shape[2])} for name, fp in self.bins.items()},
            "cells": cells,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "<seasonal baseline>") -> SeasonalBaseline:
        try:
            seasonality = data["seasonality"]
            if seasonality not in N_SLOTS:
                raise ValueError(f"unknown seasonality {seasonality!r}")
            n_periods = int(data["n_periods"])
            half_life = None if data["half_life"] is None else float(data["half_life"])
            slots = N_SLOTS[seasonality]
            if n_periods < 1:
                raise ValueError(f"n_periods must be >= 1; got {n_periods}")
            features = data["features"]
            bins = {str(name): str(item["bins"]) for name, item in features.items()}
            counts = {
                str(name): np.zeros((slots, n_periods + 1, int(item["n_bins"])), dtype=np.int64)
                for name, item in features.items()
            }
            periods = np.full((slots, n_periods + 1), -1, dtype=np.int64)
            for item in data["cells"]:
                slot, period = int(item["slot"]), int(item["period"])
                if not 0 <= slot < slots or period < 0:
                    raise ValueError(f"cell slot {slot} / period {period} out of range")
                cell = period % (n_periods + 1)
                if periods[slot, cell] != -1:
                    raise ValueError(f"two cells for slot {slot} in ring cell {cell}")
                periods[slot, cell] = period
                if set(item["counts"]) != set(counts):
                    raise ValueError(f"cell features {sorted(item['counts'])} != {sorted(counts)}")
                for name, values in item["counts"].items():
                    row = np.asarray(values, dtype=np.int64)
                    if row.shape != counts[name].shape[2:] or (row < 0).any():
                        raise ValueError(f"counts of {name!r} must be {counts[name].shape[2]} non-negative integers")
                    counts[name][slot, cell] = row
            return cls(
                seasonality=seasonality, n_periods=n_periods, min_samples=int(data["min_samples"]),
                half_life=half_life, bins=bins, periods=periods, counts=counts,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BaselineError(f"{where}: not a valid seasonal baseline ({type(exc).__name__}: {exc})") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "<seasonal baseline>") -> SeasonalBaseline:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BaselineError(f"{where}: not valid JSON ({exc})") from None
        return cls.from_dict(data, where)


def resume(
    state: SeasonalBaseline | None, reference: ReferenceProfile, config: BaselineConfig,
) -> SeasonalBaseline:
    """The state to go on with: ``state`` retuned to the config, or a fresh one.

    A state whose slots, K or bins no longer match (edited YAML, rebuilt reference)
    starts fresh; ``min_samples`` and ``half_life`` are only read, so they are updated
    in place and the history is kept.
    """
    if state is None or not state.compatible(reference, config):
        return SeasonalBaseline.create(reference, config)
    state.min_samples = config.min_samples
    state.half_life = _half_life_periods(config)
    return state


def baseline_profile(
    reference: ReferenceProfile, baseline: SeasonalBaseline, window_start: datetime,
) -> tuple[ReferenceProfile, dict[str, str]]:
    """The profile a window starting at ``window_start`` is compared with.

    Same bins as ``reference``; each feature's shares (and ``n``) are its seasonal slot's
    over the previous periods, or the reference's own when the slot has fewer than
    ``min_samples`` values. Returns the profile and, per feature, the description also
    set as its ``baselines`` (``hour_of_week=37 over 4 weeks (n=2412)`` or
    ``reference (hour_of_week=37 has 120 < 500 samples over 1 week)``).
    """
    slot = slot_of(window_start, baseline.seasonality)
    period = period_of(window_start, baseline.seasonality)
    features: dict[str, FeatureProfile] = {}
    descriptions: dict[str, str] = {}
    for name, feature in reference.features.items():
        got = baseline.expected(name, slot, period)
        if got is None:
            features[name] = feature
            descriptions[name] = baseline.fallback_reason(name, slot, period)
        else:
            features[name] = replace(feature, shares=tuple(float(s) for s in got.shares), n=got.n)
            descriptions[name] = got.description
    profile = replace(reference, features=features, baselines=descriptions)
    return profile, descriptions


def is_healthy(
    findings: Iterable[Finding],
    detectors: frozenset[str] = BASELINE_DETECTORS,
    tolerate: Severity = Severity.OK,
) -> bool:
    """Whether a window may feed the baseline: no finding of ``detectors`` above ``tolerate``.

    The default feeds only all-``ok`` windows. ``tolerate=Severity.WARN`` (feed warn too)
    lets a drift that grows by less than the alert threshold per period be absorbed;
    tests/drift/test_baselines.py shows it.
    """
    limit = _RANK[tolerate]
    return all(_RANK[f.severity] <= limit for f in findings if f.detector in detectors)


def score_window(
    baseline: SeasonalBaseline,
    reference: ReferenceProfile,
    detectors: Sequence[Detector],
    cohort: Cohort,
    window: Window,
    summary: WindowSummary,
) -> list[Finding]:
    """Score one closed, flushed window against its seasonal baseline, then feed it back.

    The one step shared by the flow and :func:`build_from_history`: ``baseline`` is
    updated in place (healthy rule of :func:`is_healthy`) and the findings returned.
    """
    profile, _ = baseline_profile(reference, baseline, window.start)
    findings = [finding for detector in detectors for finding in detector.score(summary, profile, cohort, window)]
    baseline.observe(summary, window.start, is_healthy(findings))
    return findings


@dataclass(slots=True)
class BuildStats:
    """What :func:`build_from_history` went through."""

    n_events: int = 0
    n_other_model: int = 0
    n_late: int = 0
    """Events for a window already closed (later than ``allowed_lateness``): skipped, as online."""
    n_windows: int = 0
    n_unhealthy: int = 0


def build_from_history(
    events: Iterable[InferenceEvent],
    reference: ReferenceProfile,
    model_config: ModelConfig,
    cohort_fn: Callable[[InferenceEvent], Cohort],
    *,
    detectors: Sequence[Detector] | None = None,
    stats: BuildStats | None = None,
) -> dict[str, SeasonalBaseline]:
    """Seasonal baselines per cohort key from historical events, with the online code.

    Events are cut into the model's tumbling windows (aligned to the epoch, as the flow
    does), summarised with :mod:`drift.summary`, and each window is passed through
    :func:`score_window` in time order, so the healthy rule applies as it would have
    live. Windows close when the newest timestamp seen passes their end by the
    model's ``allowed_lateness``; feed events in (roughly) time order, e.g. a history
    file sorted by ``ts``. ``detectors`` defaults to the model's PSI detectors.
    """
    if detectors is None:
        from detectors.registry import build as build_detector  # detectors import drift: import late

        detectors = [
            build_detector(name, settings) for name, settings in model_config.detector_configs()
            if name in BASELINE_DETECTORS
        ]
    stats = stats if stats is not None else BuildStats()
    size, lateness = model_config.window.size, model_config.window.allowed_lateness
    bounds = model_config.feature_bounds()
    open_windows: dict[tuple[int, str], WindowSummary] = {}
    baselines: dict[str, SeasonalBaseline] = {}
    closed_before = -(2**62)  # windows with index < this are closed
    newest: datetime | None = None

    def close(index: int, key: str) -> None:
        summary = flush(open_windows.pop((index, key)), reference)
        cohort = summary.cohort if summary.cohort is not None else Cohort(model_config.name)
        start = EPOCH + index * size
        baseline = baselines.get(key)
        if baseline is None:
            baseline = baselines[key] = SeasonalBaseline.create(reference, model_config.baseline)
        findings = score_window(baseline, reference, detectors, cohort, Window(start, start + size), summary)
        stats.n_windows += 1
        stats.n_unhealthy += not is_healthy(findings)

    for event in events:
        if event.model != model_config.name:
            stats.n_other_model += 1
            continue
        ts = _utc(event.ts)
        index = (ts - EPOCH) // size
        if index < closed_before:
            stats.n_late += 1
            continue
        stats.n_events += 1
        cohort = cohort_fn(event)
        summary = open_windows.get((index, cohort.key))
        if summary is None:
            summary = open_windows[(index, cohort.key)] = empty_summary(
                reference, cohort, bounds=bounds, track_event_ids=False,
            )
        add_event(summary, event, reference)
        if newest is None or ts > newest:
            newest = ts
            # Every window ending at or before newest - lateness is complete.
            boundary = (newest - lateness - EPOCH) // size
            if boundary > closed_before:
                for item in sorted(k for k in open_windows if k[0] < boundary):
                    close(*item)
                closed_before = boundary
    for item in sorted(open_windows):
        close(*item)
    return baselines


# -- the store on disk ------------------------------------------------------------


def seasonal_path(directory: Path, model: str) -> Path:
    """Where the seasonal baselines of ``model`` are stored, next to its reference profile."""
    reference = baseline_path(directory, model)
    return reference.with_name(reference.name.removesuffix(".reference.json") + ".seasonal.json")


def save_seasonal(baselines: Mapping[str, SeasonalBaseline], directory: Path, model: str) -> Path:
    """Write every cohort's baseline of ``model`` as one JSON file (atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = seasonal_path(directory, model)
    text = json.dumps(
        {"format": 1, "model": model, "cohorts": {key: b.to_dict() for key, b in sorted(baselines.items())}},
        sort_keys=True,
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def load_seasonal(
    directory: Path, model: str, reference: ReferenceProfile, config: BaselineConfig,
) -> dict[str, SeasonalBaseline]:
    """The stored baselines of ``model`` by cohort key; empty when none were built.

    Raises :class:`~drift.errors.BaselineError` when the file is unreadable or was built
    for other slots, history or reference bins than ``config`` and ``reference``.
    """
    path = seasonal_path(directory, model)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
        cohorts = data["cohorts"]
        if data.get("format") != 1 or data.get("model") != model or not isinstance(cohorts, dict):
            raise ValueError(f"expected format 1 for model {model!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BaselineError(f"{path}: not a valid seasonal baseline file ({type(exc).__name__}: {exc})") from None
    out: dict[str, SeasonalBaseline] = {}
    for key, item in cohorts.items():
        baseline = SeasonalBaseline.from_dict(item, f"{path} cohort {key!r}")
        problem = baseline.mismatch(reference, config)
        if problem is not None:
            raise BaselineError(
                f"{path} cohort {key!r}: does not match the config: {problem}; rebuild it with "
                f"'drift baseline build --config CONFIG --model {model} --reference PATH.parquet --history PATH'"
            )
        out[str(key)] = resume(baseline, reference, config)
    return out
