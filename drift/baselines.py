"""Seasonal baselines: what a cohort's window is expected to look like at this hour or day.

A window at 3 a.m. on a Sunday is compared with earlier Sunday 3 a.m. windows, not
with the all-day training data. Time is cut into *slots* (``hour_of_day`` 0..23,
``day_of_week`` 0..6 from Monday, ``hour_of_week`` 0..167, ``none``: one slot), and
into *periods* (a day for ``hour_of_day`` and ``none``, a week otherwise) so that "the
same slot in the previous K periods" is well defined. Both are read in the local time
of ``baseline.timezone`` (UTC by default): :class:`SlotClock` is the one place that
turns a window start into its slot and period, holidays of ``baseline.calendar``
included (:class:`Calendar`).

:class:`SeasonalBaseline` is the state of one cohort: for every (feature, slot) a ring
of ``K + 1`` per-period bin-count vectors over the reference profile's fixed bins (the
current period and the K before it), so its size is ``slots x (K + 1) x bins`` integers
whatever the traffic. :func:`baseline_profile` turns it into a
:class:`~drift.reference.ReferenceProfile` with the same bins and the slot's shares,
which every detector scores against unchanged; :func:`score_window` is the one step
that scores a window and then feeds it back, online (the flow) and offline
(:func:`build_from_history`) alike.

Only healthy features of a window feed it (:func:`healthy_features`): a feature whose
baseline-comparing findings (PSI) are all ``ok`` (or skipped). A feature at ``warn`` or
``alert`` is kept out of its own slot, so a drift that creeps up by less than the alert
threshold per period cannot drag the baseline along with it, while the window's other
features still feed theirs: one noisy feature cannot starve the rest. Warm-up is the
exception: a feature whose slot has fewer than ``min_samples`` values was compared with
the training reference, which cannot judge a seasonal slot, so it is fed whatever its
findings say.

State is plain numpy arrays, ints and dicts (picklable for Bytewax snapshots) and is
stored on disk as JSON (:func:`save_seasonal`), never pickled.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Set
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, NamedTuple, Sequence, get_args
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from drift.duration import format_duration
from drift.errors import BaselineError
from drift.events import InferenceEvent
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import FeatureProfile, NumericProfile, ReferenceProfile, baseline_path
from drift.summary import WindowSummary, add_event, empty_summary, flush
from drift.windowing import EventClock, window_at, window_index

if TYPE_CHECKING:
    from detectors.base import Detector
    from drift.config import BaselineConfig, ModelConfig

Seasonality = Literal["none", "hour_of_day", "day_of_week", "hour_of_week"]
SEASONALITIES: tuple[Seasonality, ...] = get_args(Seasonality)


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


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
HolidayAs = Literal["own", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
"""How a holiday is scored: against one slot class of its own (``own``) or as that weekday."""

_LOCAL_EPOCH = datetime(1970, 1, 1)
_LOCAL_WEEK_EPOCH = datetime(1969, 12, 29)
"""A Monday: weeks run from Monday 00:00 local time, so ``day_of_week`` 0 is Monday."""
_HOURLY: frozenset[Seasonality] = frozenset({"hour_of_day", "hour_of_week"})


def _utc(ts: datetime) -> datetime:
    # Decoded events are aware; a naive datetime is taken as UTC, not as local time.
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _local(ts: datetime, zone: str) -> datetime:
    """The wall-clock time of ``ts`` in ``zone``, naive (both 02:30 of a 25-hour day read 02:30)."""
    ts = _utc(ts)
    return ts.replace(tzinfo=None) if zone == "UTC" else ts.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


@functools.lru_cache(maxsize=1024)
def public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """The public holidays of ``country`` (ISO 3166-1 alpha-2; ``subdivision`` as the
    ``holidays`` package names it, e.g. ``BY``) in ``year``, from the ``holidays`` package."""
    import holidays  # its country tables load on first use, not at import of drift

    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))


@dataclass(frozen=True, slots=True)
class Calendar:
    """Which local dates are holidays, and how a holiday window is scored.

    >>> c = Calendar(country="DE", subdivision="BY", dates=frozenset({date(2026, 12, 24)}))
    >>> [c.is_holiday(date(2026, 12, d)) for d in (23, 24, 25)]
    [False, True, True]
    """

    country: str | None = None
    subdivision: str | None = None
    dates: frozenset[date] = frozenset()
    holiday_as: HolidayAs = "own"

    def is_holiday(self, day: date) -> bool:
        if day in self.dates:
            return True
        return self.country is not None and day in public_holidays(self.country, self.subdivision, day.year)


class Place(NamedTuple):
    """Where a window start falls: its slot and period, and whether it may feed them."""

    slot: int
    period: int
    local: datetime
    """Wall-clock time in the clock's zone, naive."""
    holiday: bool
    feeds: bool
    """False for a holiday scored as a weekday: it never feeds that weekday's slot."""


@dataclass(frozen=True, slots=True)
class SlotClock:
    """Turns a window start into its slot and period: the one place that does (the flow,
    ``drift baseline build --history`` and the backtest all call :meth:`place`).

    Local time of ``timezone`` (IANA name): a local hour keeps its slot across daylight
    saving changes. In a 25-hour day both occurrences of the repeated hour are that hour's
    slot (both are scored against it and both feed it); in a 23-hour day the skipped hour's
    slot gets no window that day. A window belongs to the local time of its start.

    Holidays of ``calendar`` (by local date) are scored as ``holiday_as``: ``own`` puts
    them in holiday slots after the ordinary ones (``N_SLOTS + hour`` with hours, one slot
    otherwise), whose period is the local day, so a holiday slot's history is the previous
    holidays; a weekday scores them in that weekday's slot at the same hour, which they
    do not feed.

    >>> clock = SlotClock("hour_of_week", "Europe/Berlin")
    >>> summer = datetime(2026, 7, 7, 11, tzinfo=timezone.utc)  # a Tuesday, 13:00 in Berlin
    >>> winter = datetime(2026, 1, 6, 12, tzinfo=timezone.utc)  # a Tuesday, 13:00 in Berlin
    >>> clock.place(summer).slot == clock.place(winter).slot == 37
    True
    """

    seasonality: Seasonality
    timezone: str = "UTC"
    calendar: Calendar | None = None

    def __post_init__(self) -> None:
        if self.seasonality not in N_SLOTS:
            raise ValueError(f"seasonality must be one of {', '.join(SEASONALITIES)}; got {self.seasonality!r}")
        if self.timezone != "UTC":
            ZoneInfo(self.timezone)  # raises for an unknown zone
        if (self.calendar is not None and self.calendar.holiday_as != "own"
                and self.seasonality not in ("day_of_week", "hour_of_week")):
            raise ValueError(
                f"holiday_as {self.calendar.holiday_as!r} needs a weekly seasonality (day_of_week or "
                f"hour_of_week); got {self.seasonality!r}"
            )

    @classmethod
    def from_config(cls, config: BaselineConfig) -> SlotClock:
        calendar = None
        if config.calendar is not None:
            c = config.calendar
            calendar = Calendar(c.country, c.subdivision, frozenset(c.dates), c.holiday_as)
        return cls(config.seasonality, config.timezone, calendar)

    @property
    def n_ordinary_slots(self) -> int:
        return N_SLOTS[self.seasonality]

    @property
    def n_holiday_slots(self) -> int:
        """24 (one per local hour) or 1 with ``holiday_as: own``, else 0."""
        if self.calendar is None or self.calendar.holiday_as != "own":
            return 0
        return 24 if self.seasonality in _HOURLY else 1

    @property
    def n_slots(self) -> int:
        return self.n_ordinary_slots + self.n_holiday_slots

    def is_holiday_slot(self, slot: int) -> bool:
        return slot >= self.n_ordinary_slots

    def place(self, ts: datetime) -> Place:
        """The slot and period of a window starting at ``ts``."""
        local = _local(ts, self.timezone)
        calendar = self.calendar
        holiday = calendar is not None and calendar.is_holiday(local.date())
        hourly = self.seasonality in _HOURLY
        if holiday and calendar is not None and calendar.holiday_as == "own":
            slot = self.n_ordinary_slots + (local.hour if hourly else 0)
            return Place(slot, (local - _LOCAL_EPOCH).days, local, True, True)
        weekday = WEEKDAYS.index(calendar.holiday_as) if holiday and calendar is not None else local.weekday()
        if self.seasonality == "hour_of_day":
            slot = local.hour
        elif self.seasonality == "day_of_week":
            slot = weekday
        elif self.seasonality == "hour_of_week":
            slot = weekday * 24 + local.hour
        else:
            slot = 0
        origin = _LOCAL_EPOCH if PERIOD[self.seasonality] == timedelta(days=1) else _LOCAL_WEEK_EPOCH
        return Place(slot, (local - origin) // PERIOD[self.seasonality], local, holiday, not holiday)

    def period_start(self, period: int, slot: int = 0) -> datetime:
        """First instant of ``period`` (local midnight, aware; a holiday slot's period is a day)."""
        if self.is_holiday_slot(slot):
            naive = _LOCAL_EPOCH + timedelta(days=period)
        else:
            origin = _LOCAL_EPOCH if PERIOD[self.seasonality] == timedelta(days=1) else _LOCAL_WEEK_EPOCH
            naive = origin + period * PERIOD[self.seasonality]
        return naive.replace(tzinfo=timezone.utc if self.timezone == "UTC" else ZoneInfo(self.timezone))

    def slot_text(self, slot: int) -> str:
        """``hour_of_week=37``, ``hour_of_week=37 Europe/Berlin``, ``holiday hour=10``, ``all hours``."""
        if self.is_holiday_slot(slot):
            text = "holiday" + (f" hour={slot - self.n_ordinary_slots}" if self.seasonality in _HOURLY else "")
        elif self.seasonality == "none":
            text = "all hours"
        else:
            text = f"{self.seasonality}={slot}"
        return text if self.timezone == "UTC" else f"{text} {self.timezone}"


def slot_of(ts: datetime, seasonality: Seasonality, timezone_name: str = "UTC") -> int:
    """The seasonal slot of ``ts`` (local time of ``timezone_name``; no holidays).

    >>> ts = datetime(2026, 1, 6, 13, 30, tzinfo=timezone.utc)  # a Tuesday
    >>> [slot_of(ts, s) for s in ("none", "hour_of_day", "day_of_week", "hour_of_week")]
    [0, 13, 1, 37]
    """
    return SlotClock(seasonality, timezone_name).place(ts).slot


def period_of(ts: datetime, seasonality: Seasonality, timezone_name: str = "UTC") -> int:
    """Index of the period (local day or week since 1970) that ``ts``'s slot belongs to.

    >>> monday = datetime(2026, 1, 5, tzinfo=timezone.utc)
    >>> period_of(monday, "hour_of_week") - period_of(monday - timedelta(seconds=1), "hour_of_week")
    1
    """
    return SlotClock(seasonality, timezone_name).place(ts).period


def period_start(period: int, seasonality: Seasonality) -> datetime:
    """First instant of ``period`` in UTC (inverse of :func:`period_of`)."""
    return SlotClock(seasonality).period_start(period)


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
    ``n_periods`` before it are kept and older ones are overwritten. A holiday slot
    (``clock.n_holiday_slots``, after the ordinary ones) keeps the ``n_periods + 1`` most
    recent holiday days instead, whatever their distance. ``counts[feature]`` has shape
    ``(slots, n_periods + 1, bins)``. ``min_samples``, ``half_life`` (in periods) and the
    clock's calendar dates only affect reading and placing and may be retuned; the
    rest (seasonality, time zone, holiday slots, K, bins) is structure.
    """

    clock: SlotClock
    n_periods: int
    min_samples: int
    half_life: float | None
    bins: dict[str, str]
    """Feature -> :func:`bins_fingerprint` of the reference bins the counts are over."""
    periods: npt.NDArray[np.int64]
    counts: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)

    @property
    def seasonality(self) -> Seasonality:
        return self.clock.seasonality

    # -- construction -------------------------------------------------------------

    @classmethod
    def empty(
        cls, reference: ReferenceProfile, seasonality: Seasonality, n_periods: int,
        min_samples: int = 500, half_life: float | None = None, clock: SlotClock | None = None,
    ) -> SeasonalBaseline:
        """No history yet, over every feature of ``reference`` (slots in UTC unless ``clock``)."""
        if seasonality not in N_SLOTS:
            raise ValueError(f"seasonality must be one of {', '.join(SEASONALITIES)}; got {seasonality!r}")
        clock = clock if clock is not None else SlotClock(seasonality)
        if clock.seasonality != seasonality:
            raise ValueError(f"the clock's seasonality is {clock.seasonality}, not {seasonality}")
        if n_periods < 1 or min_samples < 1 or (half_life is not None and half_life <= 0):
            raise ValueError(
                f"need n_periods >= 1, min_samples >= 1, half_life > 0 or None; "
                f"got {n_periods}, {min_samples}, {half_life}"
            )
        slots = clock.n_slots
        return cls(
            clock=clock, n_periods=n_periods, min_samples=min_samples, half_life=half_life,
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
            config.min_samples, _half_life_periods(config), SlotClock.from_config(config),
        )

    def mismatch(self, reference: ReferenceProfile, config: BaselineConfig) -> str | None:
        """Why this state's structure (slots, K, bins) does not fit the config and reference, or None."""
        if self.seasonality != config.seasonality:
            return f"seasonality is {self.seasonality}, the config says {config.seasonality}"
        wanted = n_periods_of(config.history, config.seasonality)
        if self.n_periods != wanted:
            return f"history is {self.n_periods} periods, the config says {wanted}"
        if self.clock.timezone != config.timezone:
            return f"the slots are in {self.clock.timezone}, the config says timezone {config.timezone}"
        holiday_slots = SlotClock.from_config(config).n_holiday_slots
        if self.clock.n_holiday_slots != holiday_slots:
            return (f"{self.clock.n_holiday_slots} holiday slots, the config asks for {holiday_slots} "
                    f"(calendar.holiday_as: own adds them)")
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
        if not 0 <= slot < self.clock.n_slots:
            raise ValueError(f"{self.seasonality} slot must be in 0..{self.clock.n_slots - 1}; got {slot}")

    def _history(self, feature: str, slot: int, now_period: int) -> tuple[npt.NDArray[np.float64], int, int]:
        """(decay-weighted counts, raw sample count, periods present) of the previous K periods."""
        self._check_slot(feature, slot)
        held = self.periods[slot]
        rows = self.counts[feature][slot]
        # The current period is excluded: a window is never compared with itself or with
        # the windows just before it in the same slot. A period fed for other features
        # only (see observe) has no values of this one and does not count.
        filled = (held >= 0) & (rows.sum(axis=1) > 0)
        if self.clock.is_holiday_slot(slot):
            # The K most recent earlier holidays, however far back; age 1 is the latest.
            earlier = np.flatnonzero(filled & (held < now_period))
            earlier = earlier[np.argsort(-held[earlier], kind="stable")][: self.n_periods]
            counts, age = rows[earlier], np.arange(1, earlier.size + 1, dtype=np.int64)
        else:
            age = now_period - held
            use = filled & (age >= 1) & (age <= self.n_periods)
            counts, age = rows[use], age[use]
        if self.half_life is None:
            weights = np.ones(age.size, dtype=np.float64)
        else:
            # The most recent previous period weighs 1, one half-life earlier 1/2.
            weights = 0.5 ** ((age - 1) / self.half_life)
        weighted: npt.NDArray[np.float64] = weights @ counts.astype(np.float64)
        return weighted, int(counts.sum()), int(age.size)

    def _slot_text(self, slot: int) -> str:
        return self.clock.slot_text(slot)

    def _unit(self, slot: int) -> str:
        return "holiday" if self.clock.is_holiday_slot(slot) else _UNIT[self.seasonality]

    def _periods_text(self, count: int, slot: int = 0) -> str:
        return f"{count} {self._unit(slot)}{'' if count == 1 else 's'}"

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
            unit = self._unit(slot) + ("" if self.half_life == 1 else "s")
            decay = f", half-life {self.half_life:g} {unit}"
        return Expected(shares, n, f"{self._slot_text(slot)} over {self._periods_text(used, slot)}{decay} (n={n})")

    def fallback_reason(self, feature: str, slot: int, now_period: int) -> str:
        """Why :meth:`expected` gives None, as the finding's ``baseline`` text."""
        _, n, used = self._history(feature, slot, now_period)
        if n == 0:
            return (f"reference ({self._slot_text(slot)} has no samples in the previous "
                    f"{self._periods_text(self.n_periods, slot)})")
        return (f"reference ({self._slot_text(slot)} has {n} < {self.min_samples} samples "
                f"over {self._periods_text(used, slot)})")

    def is_warm(self, feature: str, slot: int, now_period: int) -> bool:
        """Whether ``feature`` at ``slot`` is compared with its seasonal history (not the reference)."""
        _, n, _ = self._history(feature, slot, now_period)
        return n > 0 and n >= self.min_samples

    # -- learning -----------------------------------------------------------------

    def _cell(self, slot: int, period: int) -> int | None:
        """The ring cell that ``period`` of ``slot`` is counted in, or None when too old."""
        held = self.periods[slot]
        if self.clock.is_holiday_slot(slot):
            same = np.flatnonzero(held == period)
            if same.size:
                return int(same[0])
            oldest = int(np.argmin(held))  # an empty cell (-1) first
            return None if 0 <= int(held[oldest]) > period else oldest
        cell = period % (self.n_periods + 1)
        if int(held[cell]) > period or period < int(held.max()) - self.n_periods:
            return None
        return cell

    def observe(
        self, summary: WindowSummary, window_start: datetime, healthy: bool | Set[str],
    ) -> tuple[str, ...]:
        """Add a flushed window's bin counts to its slot and period; returns the features fed.

        ``healthy`` names the features whose findings allow it (:func:`healthy_features`;
        ``True``: all, ``False``: none). A healthy feature is fed; an unhealthy one only
        while it is still warming up at its slot (compared with the training reference,
        which cannot judge a seasonal slot); the rest keep their history clean. A window
        older than the periods kept, or a holiday scored as a weekday, feeds nothing.
        """
        place = self.clock.place(window_start)
        if not place.feeds:
            return ()
        slot, period = place.slot, place.period
        cell = self._cell(slot, period)
        if cell is None:
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
        held = int(self.periods[slot, cell])
        fed: list[str] = []
        for name, counts in summary.features.items():
            ok = healthy if isinstance(healthy, bool) else name in healthy
            if not ok and self.is_warm(name, slot, period):
                continue
            ring = self.counts[name]
            if held != period:
                # The cell still holds an older period, no longer in any history.
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
                "period_start": self.clock.period_start(period, int(slot)).isoformat(),
                "counts": {name: [int(c) for c in ring[slot, cell]] for name, ring in self.counts.items()},
            })
        cells.sort(key=lambda item: (item["slot"], item["period"]))
        return {
            "seasonality": self.seasonality, "n_periods": self.n_periods,
            "timezone": self.clock.timezone, "n_holiday_slots": self.clock.n_holiday_slots,
            "min_samples": self.min_samples, "half_life": self.half_life,
            "features": {name: {"bins": fp, "n_bins": int(self.counts[name].shape[2])} for name, fp in self.bins.items()},
            "cells": cells,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "<seasonal baseline>") -> SeasonalBaseline:
        """Read :meth:`to_dict`'s mapping (also the format-1 one: UTC slots, no holiday slots).

        The calendar's dates are not stored: :func:`resume` sets them from the config.
        """
        try:
            seasonality = data["seasonality"]
            if seasonality not in N_SLOTS:
                raise ValueError(f"unknown seasonality {seasonality!r}")
            n_periods = int(data["n_periods"])
            half_life = None if data["half_life"] is None else float(data["half_life"])
            n_holiday = int(data.get("n_holiday_slots", 0))
            clock = SlotClock(
                seasonality, str(data.get("timezone", "UTC")),
                Calendar(holiday_as="own") if n_holiday else None,
            )
            if clock.n_holiday_slots != n_holiday:
                raise ValueError(f"{seasonality} has {clock.n_holiday_slots} holiday slots; got {n_holiday}")
            slots = clock.n_slots
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
                if clock.is_holiday_slot(slot):
                    free = np.flatnonzero(periods[slot] == -1)
                    if not free.size or (periods[slot] == period).any():
                        raise ValueError(f"more than {n_periods + 1} holidays, or one twice, in slot {slot}")
                    cell = int(free[0])
                else:
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
                clock=clock, n_periods=n_periods, min_samples=int(data["min_samples"]),
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

    A state whose slots, time zone, holiday slots, K or bins no longer match (edited
    YAML, rebuilt reference) starts fresh; ``min_samples``, ``half_life`` and the
    calendar's holidays are only read, so they are updated in place and the history is
    kept.
    """
    if state is None or not state.compatible(reference, config):
        return SeasonalBaseline.create(reference, config)
    state.min_samples = config.min_samples
    state.half_life = _half_life_periods(config)
    state.clock = SlotClock.from_config(config)
    return state


def baseline_profile(
    reference: ReferenceProfile, baseline: SeasonalBaseline, window_start: datetime,
) -> tuple[ReferenceProfile, dict[str, str]]:
    """The profile a window starting at ``window_start`` is compared with.

    Same bins as ``reference``; each feature's shares (and ``n``) are its seasonal slot's
    over the previous periods, or the reference's own when the slot has fewer than
    ``min_samples`` values. Returns the profile and, per feature, the description also
    set as its ``baselines`` (``hour_of_week=37 over 4 weeks (n=2412)`` or
    ``reference (hour_of_week=37 has 120 < 500 samples over 1 week)``); a holiday
    adds ``; holiday 2026-04-06`` (and ``as sunday`` when scored as a weekday).
    """
    place = baseline.clock.place(window_start)
    slot, period = place.slot, place.period
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
        if place.holiday and baseline.clock.calendar is not None:
            how = baseline.clock.calendar.holiday_as
            descriptions[name] += f"; holiday {place.local.date().isoformat()}" + ("" if how == "own" else f" as {how}")
    profile = replace(reference, features=features, baselines=descriptions)
    return profile, descriptions


def is_healthy(
    findings: Iterable[Finding],
    detectors: frozenset[str] = BASELINE_DETECTORS,
    tolerate: Severity = Severity.OK,
) -> bool:
    """Whether every feature of a window is healthy: no judged finding of ``detectors`` above
    ``tolerate`` (skipped findings judge nothing). The rule that feeds the baseline is
    per feature (:func:`healthy_features`); this is the whole-window view.

    The default feeds only all-``ok`` windows. ``tolerate=Severity.WARN`` (feed warn too)
    lets a drift that grows by less than the alert threshold per period be absorbed;
    tests/drift/test_baselines.py shows it.
    """
    limit = _RANK[tolerate]
    return all(_RANK[f.severity] <= limit for f in findings if f.detector in detectors and f.skipped is None)


def healthy_features(
    findings: Iterable[Finding],
    features: Iterable[str],
    detectors: frozenset[str] = BASELINE_DETECTORS,
    tolerate: Severity = Severity.OK,
) -> frozenset[str]:
    """The ``features`` that may feed their slot: no judged finding of ``detectors`` about
    the feature above ``tolerate``.

    Health is per feature, so a feature that moves for outside reasons (a delay that
    follows the weather) keeps only its own slot from learning, never another feature's.
    A skipped finding (too few values) judges nothing; a finding of ``detectors`` about
    no feature in particular (``feature`` None) judges them all.

    >>> from drift.findings import Cohort, Window
    >>> w = Window(datetime(2026, 1, 5, tzinfo=timezone.utc), datetime(2026, 1, 5, 1, tzinfo=timezone.utc))
    >>> def psi(feature: str, severity: Severity) -> Finding:
    ...     return Finding("psi", Cohort("m"), w, feature, 0.0, severity, 0.1, 0.25, 500, 500, "reference")
    >>> found = [psi("delay", Severity.ALERT), psi("amount", Severity.OK)]
    >>> sorted(healthy_features(found, ["amount", "delay", "channel"]))
    ['amount', 'channel']
    """
    limit = _RANK[tolerate]
    unhealthy: set[str] = set()
    for finding in findings:
        if finding.detector not in detectors or finding.skipped is not None or _RANK[finding.severity] <= limit:
            continue
        if finding.feature is None:
            return frozenset()
        unhealthy.add(finding.feature)
    return frozenset(features) - unhealthy


def score_window(
    baseline: SeasonalBaseline,
    reference: ReferenceProfile,
    detectors: Sequence[Detector],
    cohort: Cohort,
    window: Window,
    summary: WindowSummary,
) -> list[Finding]:
    """Score one closed, flushed window against its seasonal baseline, then feed it back.

    The one step shared by the flow, :func:`build_from_history` and the backtest:
    ``baseline`` is updated in place (per-feature healthy rule of
    :func:`healthy_features`) and the findings returned.
    """
    profile, _ = baseline_profile(reference, baseline, window.start)
    findings = [finding for detector in detectors for finding in detector.score(summary, profile, cohort, window)]
    baseline.observe(summary, window.start, healthy_features(findings, summary.features))
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
    """Windows with at least one unhealthy feature (its other features still fed)."""


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
    live. Windows close and events are late by the flow's rules (:mod:`drift.windowing`,
    per cohort, event time only); feed events in (roughly) time order, e.g. a history
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
    open_windows: dict[str, dict[int, WindowSummary]] = {}
    clocks: dict[str, EventClock] = {}
    baselines: dict[str, SeasonalBaseline] = {}

    def close(key: str, index: int) -> None:
        summary = flush(open_windows[key].pop(index), reference)
        cohort = summary.cohort if summary.cohort is not None else Cohort(model_config.name)
        baseline = baselines.get(key)
        if baseline is None:
            baseline = baselines[key] = SeasonalBaseline.create(reference, model_config.baseline)
        findings = score_window(baseline, reference, detectors, cohort, window_at(index, size), summary)
        stats.n_windows += 1
        stats.n_unhealthy += not is_healthy(findings)

    for event in events:
        if event.model != model_config.name:
            stats.n_other_model += 1
            continue
        ts = _utc(event.ts)
        cohort = cohort_fn(event)
        clock = clocks.get(cohort.key)
        if clock is None:
            clock = clocks[cohort.key] = EventClock(size, lateness)
        closed_before = clock.closed_below
        if clock.observe(ts):
            stats.n_late += 1
            continue
        stats.n_events += 1
        windows = open_windows.setdefault(cohort.key, {})
        index = window_index(ts, size)
        summary = windows.get(index)
        if summary is None:
            summary = windows[index] = empty_summary(reference, cohort, bounds=bounds, track_event_ids=False)
        add_event(summary, event, reference)
        if clock.closed_below > closed_before:
            # The cohort's watermark passed the end of these windows: they are complete.
            for done in sorted(i for i in windows if i < clock.closed_below):
                close(cohort.key, done)
    for key in sorted(open_windows):
        for index in sorted(open_windows[key]):
            close(key, index)
    return baselines


# -- the store on disk ------------------------------------------------------------

SEASONAL_FORMAT = 2
"""Format 2 adds each cohort's ``timezone`` and ``n_holiday_slots`` (format 1: UTC, none)."""


def seasonal_path(directory: Path, model: str) -> Path:
    """Where the seasonal baselines of ``model`` are stored, next to its reference profile."""
    reference = baseline_path(directory, model)
    return reference.with_name(reference.name.removesuffix(".reference.json") + ".seasonal.json")


def save_seasonal(baselines: Mapping[str, SeasonalBaseline], directory: Path, model: str) -> Path:
    """Write every cohort's baseline of ``model`` as one JSON file (atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = seasonal_path(directory, model)
    text = json.dumps(
        {"format": SEASONAL_FORMAT, "model": model, "cohorts": {key: b.to_dict() for key, b in sorted(baselines.items())}},
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
        if data.get("format") not in (1, SEASONAL_FORMAT) or data.get("model") != model or not isinstance(cohorts, dict):
            raise ValueError(f"expected format 1 or {SEASONAL_FORMAT} for model {model!r}")
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
