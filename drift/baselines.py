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

The same ring cells keep what the other detectors compare with: the ``score`` detector's
prediction bins and moments, the ``quality`` rates (numerator and denominator per check and
feature) and, per embedding field, a bounded uniform sample of rows per slot and period
(:class:`EmbeddingRing`). :func:`baseline_profile` hands them over in a
:class:`~detectors.seasonal_profile.SeasonalProfile`.

Only healthy features of a window feed it (:func:`healthy_features`, per kind of history
:func:`window_health`): a feature whose baseline-comparing findings (PSI) are all ``ok``
(or skipped); likewise a prediction field by its ``score.*`` findings, a quality rate by
its own check's finding and the embedding rows by the ``embedding`` finding. A feature at ``warn`` or
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

import base64
import binascii
import copy
import functools
import hashlib
import json
from collections.abc import Set
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, NamedTuple, Sequence, get_args
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from detectors.quality import FEATURE_CHECKS, rate_counts
from detectors.seasonal_profile import SeasonalProfile, SlotRate
from drift.duration import format_duration
from drift.errors import BaselineError
from drift.events import InferenceEvent
from drift.findings import Cohort, Finding, Severity, Window
from drift.moments import Moments
from drift.moments import merge as merge_moments
from drift.reference import FeatureProfile, NumericProfile, ReferenceProfile, baseline_path
from drift.summary import WindowSummary, add_event, embedding_sample, empty_summary, flush
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
"""Detectors that compare a window's feature bins with the baseline's shares: only their
findings decide whether a feature's bins may feed its slot (a null-rate alert says nothing
about whether the distribution of the values present is fit to learn from)."""

SCORE_DETECTORS = frozenset({"score.psi", "score.mean_shift", "score.label_shift"})
"""Findings that judge a prediction field's bins and moments (``feature`` is the field path)."""

RATE_CHECKS: tuple[str, ...] = FEATURE_CHECKS
"""The quality rates a slot keeps (numerator, denominator) of, in this order
(:func:`detectors.quality.rate_counts`); a window's ``quality.<check>`` finding about a
feature decides whether that rate may feed its slot."""

EMBEDDING_DETECTORS = frozenset({"embedding"})
"""Findings that judge a window's embedding sample (``feature`` is the embedding field)."""

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


def _ring_rng(seed: int, field_name: str, slot: int, period: int, n_seen: int) -> np.random.Generator:
    """The generator of one offer to an embedding cell: seeded from where the rows go, so a
    restarted flow or a rebuilt baseline keeps the same rows, with no generator in the state.
    SHA-256, not ``hash()`` (salted per process), as :func:`drift.summary.reservoir_rng`."""
    digest = hashlib.sha256(f"seasonal\x1f{field_name}\x1f{slot}\x1f{period}\x1f{n_seen}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


@dataclass(eq=False, slots=True)
class EmbeddingRing:
    """Per-(slot, ring cell) uniform samples of healthy windows' embedding rows.

    A cell holds at most ``rows_per_period`` rows of its slot and period (Algorithm R over
    the rows of the windows offered to it, each window's own sample), so a slot's history
    is at most ``rows_per_period * K`` rows and the state at most ``slots * (K + 1) *
    rows_per_period * dim * 4`` bytes whatever the traffic. Cells share
    :attr:`SeasonalBaseline.periods`: a cell is cleared when its ring cell moves on.
    """

    field_name: str
    dim: int
    rows_per_period: int
    min_rows: int
    """Rows a slot needs before a window is compared with it (the detector's ``min_samples``)."""
    seed: int
    n_seen: npt.NDArray[np.int64]
    """``(slots, K + 1)``: rows offered to each cell (its sample keeps at most ``rows_per_period``)."""
    rows: dict[tuple[int, int], npt.NDArray[np.float32]] = field(default_factory=dict)

    @classmethod
    def empty(
        cls, field_name: str, dim: int, rows_per_period: int, min_rows: int, seed: int, slots: int, n_periods: int,
    ) -> EmbeddingRing:
        if dim < 1 or rows_per_period < 1 or min_rows < 1:
            raise ValueError(f"need dim, rows_per_period and min_rows >= 1; got {dim}, {rows_per_period}, {min_rows}")
        return cls(field_name, dim, rows_per_period, min_rows, seed, np.zeros((slots, n_periods + 1), dtype=np.int64))

    def clear(self, slot: int, cell: int) -> None:
        self.n_seen[slot, cell] = 0
        self.rows.pop((slot, cell), None)

    def offer(self, slot: int, cell: int, period: int, new: npt.NDArray[np.float32]) -> None:
        """Add a window's rows to the cell's sample (Algorithm R, later rows win a shared place)."""
        new = np.asarray(new, dtype=np.float32)
        if new.ndim != 2 or new.shape[1] != self.dim:
            raise ValueError(f"embedding rows of {self.field_name!r} must have shape (n, {self.dim}); got {new.shape}")
        if not new.shape[0]:
            return
        held = self.rows.get((slot, cell), np.empty((0, self.dim), dtype=np.float32))
        seen, cap = int(self.n_seen[slot, cell]), self.rows_per_period
        fill = min(new.shape[0], cap - held.shape[0])
        out = np.concatenate([held, new[:fill]]) if fill > 0 else held.copy()
        rest = new[max(fill, 0):]
        if rest.shape[0]:
            first = seen + max(fill, 0)
            rng = _ring_rng(self.seed, self.field_name, slot, period, first)
            # Row i of the stream (0-based) replaces a uniform place in 0..i when that is < cap.
            place = rng.integers(0, first + np.arange(rest.shape[0]) + 1)
            kept = np.flatnonzero(place < cap)
            # The last row to land on a place is the one the sequential algorithm keeps.
            places, last = np.unique(place[kept][::-1], return_index=True)
            out[places] = rest[kept[::-1][last]]
        self.rows[(slot, cell)] = out
        self.n_seen[slot, cell] = seen + new.shape[0]

    @property
    def nbytes(self) -> int:
        return int(self.n_seen.nbytes + sum(a.nbytes for a in self.rows.values()))

    def max_nbytes(self) -> int:
        """The most bytes the ring can hold: every cell full."""
        slots, cells = self.n_seen.shape
        return int(self.n_seen.nbytes + slots * cells * self.rows_per_period * self.dim * 4)


class Health(NamedTuple):
    """What a scored window may feed, per kind of history (:func:`window_health`)."""

    features: frozenset[str]
    """Features whose bins feed their slot (PSI findings ok)."""
    predictions: frozenset[str]
    """Prediction fields whose bins and moments feed their slot (score findings ok)."""
    rates: Mapping[str, frozenset[str]]
    """Per quality check, the features whose rate feeds its slot (that check's finding ok)."""
    embeddings: frozenset[str]
    """Embedding fields whose rows feed their slot (embedding finding ok)."""


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

    The same ring cells hold what the other detectors compare with: ``predictions``
    (bin counts of the ``score`` detector's prediction fields) and ``moments`` (their
    ``(n, mean, m2)``, numeric fields), ``rates`` (per feature, ``(numerator,
    denominator)`` of each :data:`RATE_CHECKS` quality rate, shape ``(slots, K + 1, 5,
    2)``; kept once a ``quality`` detector scores the cohort) and ``embeddings``
    (an :class:`EmbeddingRing` per embedding field; once an ``embedding`` detector does).
    """

    clock: SlotClock
    n_periods: int
    min_samples: int
    half_life: float | None
    bins: dict[str, str]
    """Feature -> :func:`bins_fingerprint` of the reference bins the counts are over."""
    periods: npt.NDArray[np.int64]
    counts: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    prediction_bins: dict[str, str] = field(default_factory=dict)
    """Prediction field -> :func:`bins_fingerprint` of its reference bins."""
    predictions: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    moments: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    """Numeric prediction field -> ``(slots, K + 1, 3)``: n, mean and m2 of each cell's values."""
    rates: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    embeddings: dict[str, EmbeddingRing] = field(default_factory=dict)

    @property
    def seasonality(self) -> Seasonality:
        return self.clock.seasonality

    def __getstate__(self) -> list[Any]:
        return [getattr(self, f.name) for f in dataclass_fields(self)]

    def __setstate__(self, state: list[Any]) -> None:
        # A recovery snapshot of a version that kept feature bins only has the first seven
        # fields: the other histories start empty (resume adds the prediction fields' rings).
        names = [f.name for f in dataclass_fields(self)]
        for name, value in zip(names, state):
            object.__setattr__(self, name, value)
        for name in names[len(state):]:
            object.__setattr__(self, name, {})

    # -- construction -------------------------------------------------------------

    @classmethod
    def empty(
        cls, reference: ReferenceProfile, seasonality: Seasonality, n_periods: int,
        min_samples: int = 500, half_life: float | None = None, clock: SlotClock | None = None,
    ) -> SeasonalBaseline:
        """No history yet, over every feature and prediction field of ``reference``
        (slots in UTC unless ``clock``)."""
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
        baseline = cls(
            clock=clock, n_periods=n_periods, min_samples=min_samples, half_life=half_life,
            bins={name: bins_fingerprint(p) for name, p in reference.features.items()},
            periods=np.full((slots, n_periods + 1), -1, dtype=np.int64),
            counts={
                name: np.zeros((slots, n_periods + 1, p.n_bins), dtype=np.int64)
                for name, p in reference.features.items()
            },
        )
        baseline.sync_predictions(reference)
        return baseline

    @classmethod
    def create(cls, reference: ReferenceProfile, config: BaselineConfig) -> SeasonalBaseline:
        """An empty baseline as the model's ``baseline:`` YAML asks."""
        return cls.empty(
            reference, config.seasonality, n_periods_of(config.history, config.seasonality),
            config.min_samples, _half_life_periods(config), SlotClock.from_config(config),
        )

    def _cells_shape(self) -> tuple[int, int]:
        return int(self.periods.shape[0]), int(self.periods.shape[1])

    def sync_predictions(self, reference: ReferenceProfile) -> None:
        """Keep a ring for every prediction field of ``reference`` (the ``score`` detector's):
        new fields start empty, fields no longer profiled are dropped. A field whose bins
        changed is structure (:meth:`mismatch`)."""
        slots, cells = self._cells_shape()
        for path in set(self.predictions) - set(reference.predictions):
            del self.predictions[path], self.prediction_bins[path]
            self.moments.pop(path, None)
        for path, profile in reference.predictions.items():
            if path in self.predictions:
                continue
            self.prediction_bins[path] = bins_fingerprint(profile)
            self.predictions[path] = np.zeros((slots, cells, profile.n_bins), dtype=np.int64)
            if isinstance(profile, NumericProfile):
                self.moments[path] = np.zeros((slots, cells, 3), dtype=np.float64)

    def track(self, detectors: Sequence[Detector]) -> None:
        """Keep the histories that ``detectors`` compare with: quality rates of every
        feature for a ``quality`` detector, an :class:`EmbeddingRing` for an ``embedding``
        detector (rebuilt when its ``dim`` or rows per period changed; ``min_samples`` and
        ``seed`` are read)."""
        from detectors.embedding import EmbeddingDetector  # detectors import drift: import late

        slots, cells = self._cells_shape()
        for detector in detectors:
            if detector.name == "quality" and not self.rates and self.counts:
                self.rates = {name: np.zeros((slots, cells, len(RATE_CHECKS), 2), dtype=np.int64) for name in self.counts}
            if isinstance(detector, EmbeddingDetector):
                config = detector.config
                per_period = -(-config.slot_rows // self.n_periods)  # ceil: K periods hold seasonal_rows
                ring = self.embeddings.get(config.field)
                if ring is None or ring.dim != config.dim or ring.rows_per_period != per_period:
                    self.embeddings[config.field] = EmbeddingRing.empty(
                        config.field, config.dim, per_period, config.min_samples, config.seed, slots, self.n_periods,
                    )
                else:
                    ring.min_rows, ring.seed = config.min_samples, config.seed

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
        changed = sorted(
            path for path, profile in reference.predictions.items()
            if self.prediction_bins.get(path, bins_fingerprint(profile)) != bins_fingerprint(profile)
        )
        if changed:
            return f"the reference bins of the prediction fields {changed} differ (reference rebuilt)"
        return None

    def compatible(self, reference: ReferenceProfile, config: BaselineConfig) -> bool:
        """Whether this state's structure (slots, K, bins) matches the config and reference."""
        return self.mismatch(reference, config) is None

    def copy(self) -> SeasonalBaseline:
        return copy.deepcopy(self)

    # -- reading ------------------------------------------------------------------

    def _check_slot(self, feature: str, slot: int, store: Mapping[str, Any] | None = None) -> None:
        store = self.counts if store is None else store
        if feature not in store:
            raise KeyError(f"no seasonal baseline for {feature!r}; kept: {sorted(store)}")
        if not 0 <= slot < self.clock.n_slots:
            raise ValueError(f"{self.seasonality} slot must be in 0..{self.clock.n_slots - 1}; got {slot}")

    def _pool(
        self, slot: int, now_period: int, filled: npt.NDArray[np.bool_],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(ring cells, decay weights) of the previous K periods of ``slot`` among ``filled`` cells."""
        held = self.periods[slot]
        # The current period is excluded: a window is never compared with itself or with
        # the windows just before it in the same slot. A period fed for other features
        # only (see observe) has no values of this one and does not count.
        filled = filled & (held >= 0)
        if self.clock.is_holiday_slot(slot):
            # The K most recent earlier holidays, however far back; age 1 is the latest.
            earlier = np.flatnonzero(filled & (held < now_period))
            cells = earlier[np.argsort(-held[earlier], kind="stable")][: self.n_periods]
            age = np.arange(1, cells.size + 1, dtype=np.int64)
        else:
            ages = now_period - held
            cells = np.flatnonzero(filled & (ages >= 1) & (ages <= self.n_periods))
            age = ages[cells]
        if self.half_life is None:
            weights = np.ones(age.size, dtype=np.float64)
        else:
            # The most recent previous period weighs 1, one half-life earlier 1/2.
            weights = 0.5 ** ((age - 1) / self.half_life)
        return cells.astype(np.int64), weights

    def _pooled_counts(
        self, rows: npt.NDArray[np.int64], slot: int, now_period: int,
    ) -> tuple[npt.NDArray[np.float64], int, int]:
        """(decay-weighted counts, raw sample count, periods present) of one slot's ``(K + 1, bins)`` rows."""
        cells, weights = self._pool(slot, now_period, rows.sum(axis=1) > 0)
        counts = rows[cells]
        weighted: npt.NDArray[np.float64] = weights @ counts.astype(np.float64)
        return weighted, int(counts.sum()), int(cells.size)

    def _history(self, feature: str, slot: int, now_period: int) -> tuple[npt.NDArray[np.float64], int, int]:
        """(decay-weighted counts, raw sample count, periods present) of the previous K periods."""
        self._check_slot(feature, slot)
        return self._pooled_counts(self.counts[feature][slot], slot, now_period)

    def _slot_text(self, slot: int) -> str:
        return self.clock.slot_text(slot)

    def _unit(self, slot: int) -> str:
        return "holiday" if self.clock.is_holiday_slot(slot) else _UNIT[self.seasonality]

    def _periods_text(self, count: int, slot: int = 0) -> str:
        return f"{count} {self._unit(slot)}{'' if count == 1 else 's'}"

    def _describe(self, slot: int, used: int, n: int, what: str = "") -> str:
        decay = ""
        if self.half_life is not None:
            unit = self._unit(slot) + ("" if self.half_life == 1 else "s")
            decay = f", half-life {self.half_life:g} {unit}"
        return f"{self._slot_text(slot)} over {self._periods_text(used, slot)}{decay} (n={n}{what})"

    def _fallback(self, slot: int, used: int, n: int, least: int, what: str = "samples") -> str:
        if n == 0:
            return (f"reference ({self._slot_text(slot)} has no {what} in the previous "
                    f"{self._periods_text(self.n_periods, slot)})")
        return f"reference ({self._slot_text(slot)} has {n} < {least} {what} over {self._periods_text(used, slot)})"

    def expected(self, feature: str, slot: int, now_period: int) -> Expected | None:
        """The slot's shares over the previous ``n_periods`` periods, or None below ``min_samples``.

        Counts of the periods present are added with weights ``0.5 ** ((age - 1) / half_life)``
        (all 1 without decay; ``age`` 1 is the previous period), then normalised.
        ``n`` is the raw number of values behind them, compared with ``min_samples``.
        """
        weighted, n, used = self._history(feature, slot, now_period)
        if n == 0 or n < self.min_samples:
            return None
        return Expected(weighted / weighted.sum(), n, self._describe(slot, used, n))

    def fallback_reason(self, feature: str, slot: int, now_period: int) -> str:
        """Why :meth:`expected` gives None, as the finding's ``baseline`` text."""
        _, n, used = self._history(feature, slot, now_period)
        return self._fallback(slot, used, n, self.min_samples)

    def is_warm(self, feature: str, slot: int, now_period: int) -> bool:
        """Whether ``feature`` at ``slot`` is compared with its seasonal history (not the reference)."""
        _, n, _ = self._history(feature, slot, now_period)
        return n > 0 and n >= self.min_samples

    def expected_prediction(self, path: str, slot: int, now_period: int) -> tuple[Expected | None, str]:
        """A prediction field's slot shares (None below ``min_samples``) and the ``baseline`` text."""
        self._check_slot(path, slot, self.predictions)
        weighted, n, used = self._pooled_counts(self.predictions[path][slot], slot, now_period)
        if n == 0 or n < self.min_samples:
            return None, self._fallback(slot, used, n, self.min_samples)
        return Expected(weighted / weighted.sum(), n, self._describe(slot, used, n)), self._describe(slot, used, n)

    def expected_moments(self, path: str, slot: int, now_period: int) -> tuple[float, float, int] | None:
        """(mean, population std, n) of a numeric prediction field's slot, decay-weighted, or None.

        Cells merge as weighted samples: with ``W = sum w_j n_j``, ``mean = sum w_j n_j
        mean_j / W`` and ``std² = sum w_j (m2_j + n_j (mean_j - mean)²) / W``.
        """
        self._check_slot(path, slot, self.moments)
        rows = self.moments[path][slot]
        cells, weights = self._pool(slot, now_period, rows[:, 0] > 0)
        n_j, mean_j, m2_j = rows[cells, 0], rows[cells, 1], rows[cells, 2]
        n = int(n_j.sum())
        if n == 0 or n < self.min_samples:
            return None
        total = float(weights @ n_j)
        mean = float(weights @ (n_j * mean_j)) / total
        m2 = float(weights @ (m2_j + n_j * (mean_j - mean) ** 2))
        return mean, float(np.sqrt(max(m2 / total, 0.0))), n

    def expected_rate(self, feature: str, check: str, slot: int, now_period: int) -> SlotRate:
        """One quality rate of the slot's previous periods: decay-weighted ``sum k / sum n``
        where ``n`` (raw) reaches ``min_samples``, else ``rate`` None and why."""
        self._check_slot(feature, slot, self.rates)
        rows = self.rates[feature][slot, :, RATE_CHECKS.index(check)]
        cells, weights = self._pool(slot, now_period, rows[:, 1] > 0)
        n = int(rows[cells, 1].sum())
        if n == 0 or n < self.min_samples:
            return SlotRate(None, 0, n, self._fallback(slot, cells.size, n, self.min_samples, "values"))
        rate = float(weights @ rows[cells, 0]) / float(weights @ rows[cells, 1])
        k = int(round(rate * n))
        return SlotRate(rate, k, n, self._describe(slot, int(cells.size), n, f", rate={rate:.4g}"))

    def expected_rates(self, slot: int, now_period: int) -> dict[tuple[str, str], SlotRate]:
        """:meth:`expected_rate` of every kept (feature, check), in one pass over the slot's cells."""
        if not self.rates:
            return {}
        if self.clock.is_holiday_slot(slot):  # holidays pick their cells per history: one at a time
            return {(name, check): self.expected_rate(name, check, slot, now_period)
                    for name in self.rates for check in RATE_CHECKS}
        self._check_slot(next(iter(self.rates)), slot, self.rates)
        names = list(self.rates)
        table = np.stack([self.rates[name][slot] for name in names])  # (features, K + 1, checks, 2)
        held = self.periods[slot]
        ages = now_period - held
        valid = (held >= 0) & (ages >= 1) & (ages <= self.n_periods)
        weights = np.ones(held.size) if self.half_life is None else 0.5 ** ((ages - 1) / self.half_life)
        weights = np.where(valid, weights, 0.0)
        k, d = table[..., 0], table[..., 1]
        n_raw = np.einsum("c,fcj->fj", valid.astype(np.int64), d)
        used = np.einsum("c,fcj->fj", valid.astype(np.int64), (d > 0).astype(np.int64))
        weighted_k = np.einsum("c,fcj->fj", weights, k.astype(np.float64))
        weighted_d = np.einsum("c,fcj->fj", weights, d.astype(np.float64))
        out: dict[tuple[str, str], SlotRate] = {}
        for i, name in enumerate(names):
            for j, check in enumerate(RATE_CHECKS):
                n, periods = int(n_raw[i, j]), int(used[i, j])
                if n == 0 or n < self.min_samples:
                    out[(name, check)] = SlotRate(None, 0, n, self._fallback(slot, periods, n, self.min_samples, "values"))
                    continue
                rate = float(weighted_k[i, j] / weighted_d[i, j])
                out[(name, check)] = SlotRate(
                    rate, int(round(rate * n)), n, self._describe(slot, periods, n, f", rate={rate:.4g}"))
        return out

    def expected_embeddings(
        self, field_name: str, slot: int, now_period: int,
    ) -> tuple[npt.NDArray[np.float32] | None, str]:
        """The slot's embedding rows of the previous K periods (None below the ring's
        ``min_rows``) and the ``baseline`` text. Every kept period weighs the same (its
        sample has at most ``rows_per_period`` rows); ``half_life`` does not apply."""
        self._check_slot(field_name, slot, self.embeddings)
        ring = self.embeddings[field_name]
        cells, _ = self._pool(slot, now_period, ring.n_seen[slot] > 0)
        parts = [ring.rows[(slot, int(c))] for c in cells if (slot, int(c)) in ring.rows]
        n = sum(p.shape[0] for p in parts)
        if n == 0 or n < ring.min_rows:
            return None, self._fallback(slot, int(cells.size), n, ring.min_rows, "embeddings")
        return np.concatenate(parts), self._describe(slot, int(cells.size), n, " embeddings")

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

    def _claim(self, slot: int, cell: int, period: int) -> None:
        """Give ring cell ``cell`` of ``slot`` to ``period``, clearing what an older period left."""
        if int(self.periods[slot, cell]) == period:
            return
        self.periods[slot, cell] = period
        for store in (self.counts, self.predictions, self.moments, self.rates):
            for ring in store.values():
                ring[slot, cell] = 0
        for embeddings in self.embeddings.values():
            embeddings.clear(slot, cell)

    def _rate_warm(self, feature: str, check: int, slot: int, period: int) -> bool:
        rows = self.rates[feature][slot, :, check]
        cells, _ = self._pool(slot, period, rows[:, 1] > 0)
        n = int(rows[cells, 1].sum())
        return n > 0 and n >= self.min_samples

    def observe(
        self, summary: WindowSummary, window_start: datetime, healthy: bool | Set[str] | Health,
    ) -> tuple[str, ...]:
        """Add a flushed window to its slot and period; returns the features whose bins were fed.

        ``healthy`` says what the findings allow (:func:`window_health`): a :class:`Health`,
        ``True`` (all) or ``False`` (none), or the names of the healthy features (their bins
        and rates; prediction fields and embeddings are then fed). A healthy item is fed; an
        unhealthy one only while it is still warming up at its slot (compared with the
        training reference, which cannot judge a seasonal slot); the rest keep their
        history clean. A window older than the periods kept, or a holiday scored as a
        weekday, feeds nothing.
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
        for path, counts in summary.predictions.items():
            if path in self.predictions and counts.counts.shape != self.predictions[path].shape[2:]:
                raise ValueError(
                    f"prediction field {path!r}: the summary has {counts.counts.size} bins, "
                    f"the baseline {self.predictions[path].shape[2]}"
                )
        health = _as_health(healthy, summary)

        def ok(name: str, allowed: Set[str], warm: Callable[[], bool]) -> bool:
            return name in allowed or not warm()

        fed = [name for name in summary.features if ok(name, health.features, lambda: self.is_warm(name, slot, period))]
        paths = [
            path for path in summary.predictions if path in self.predictions
            and ok(path, health.predictions, lambda: self.expected_prediction(path, slot, period)[0] is not None)
        ]
        rates = [
            (name, i) for name in summary.features if name in self.rates for i, check in enumerate(RATE_CHECKS)
            if ok(name, health.rates.get(check, frozenset()), lambda: self._rate_warm(name, i, slot, period))
        ]
        sample = summary.embedding
        embedded = (
            sample is not None and sample.field_name in self.embeddings and sample.n_seen > 0
            and ok(sample.field_name, health.embeddings,
                   lambda: self.expected_embeddings(sample.field_name, slot, period)[0] is not None)
        )
        if not (fed or paths or rates or embedded):
            return ()
        self._claim(slot, cell, period)
        for name in fed:
            self.counts[name][slot, cell] += summary.features[name].counts
        for path in paths:
            counts = summary.predictions[path]
            self.predictions[path][slot, cell] += counts.counts
            if path in self.moments and counts.moments.n > 0:
                cell_moments = self.moments[path][slot, cell]
                merged = merge_moments(
                    Moments(int(cell_moments[0]), float(cell_moments[1]), float(cell_moments[2])), counts.moments,
                )
                cell_moments[:] = (merged.n, merged.mean, merged.m2)
        for name, i in rates:
            counts = summary.features[name]
            table = rate_counts(counts, summary.n_events)
            self.rates[name][slot, cell, i] += table[i]
        if embedded and sample is not None:
            sample.flush()
            self.embeddings[sample.field_name].offer(slot, cell, period, sample.reservoir.rows)
        return tuple(fed)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays: fixed by slots, K, bins and rows per period, not by traffic
        (embedding rings grow to :meth:`EmbeddingRing.max_nbytes` as their cells fill)."""
        arrays = [self.periods, *self.counts.values(), *self.predictions.values(), *self.moments.values(),
                  *self.rates.values()]
        return int(sum(a.nbytes for a in arrays) + sum(r.nbytes for r in self.embeddings.values()))

    # -- storage ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping; only the filled (slot, period) cells are written.

        Embedding rows are little-endian float32 bytes in base64 (exact and a third of
        the size of decimal text)."""
        cells = []
        for slot, cell in zip(*np.nonzero(self.periods >= 0)):
            period = int(self.periods[slot, cell])
            item: dict[str, Any] = {
                "slot": int(slot), "period": period,
                "period_start": self.clock.period_start(period, int(slot)).isoformat(),
                "counts": {name: [int(c) for c in ring[slot, cell]] for name, ring in self.counts.items()},
            }
            if self.predictions:
                item["predictions"] = {p: [int(c) for c in ring[slot, cell]] for p, ring in self.predictions.items()}
            if self.moments:
                item["moments"] = {p: [float(v) for v in ring[slot, cell]] for p, ring in self.moments.items()}
            if self.rates:
                item["rates"] = {name: ring[slot, cell].tolist() for name, ring in self.rates.items()}
            if self.embeddings:
                item["embeddings"] = {
                    name: {
                        "n_seen": int(ring.n_seen[slot, cell]),
                        "rows": base64.b64encode(
                            ring.rows.get((int(slot), int(cell)), np.empty((0, ring.dim), np.float32))
                            .astype("<f4").tobytes()).decode("ascii"),
                    }
                    for name, ring in self.embeddings.items()
                }
            cells.append(item)
        cells.sort(key=lambda item: (item["slot"], item["period"]))
        out: dict[str, Any] = {
            "seasonality": self.seasonality, "n_periods": self.n_periods,
            "timezone": self.clock.timezone, "n_holiday_slots": self.clock.n_holiday_slots,
            "min_samples": self.min_samples, "half_life": self.half_life,
            "features": {name: {"bins": fp, "n_bins": int(self.counts[name].shape[2])} for name, fp in self.bins.items()},
            "cells": cells,
        }
        if self.predictions:
            out["predictions"] = {
                path: {"bins": self.prediction_bins[path], "n_bins": int(ring.shape[2]), "moments": path in self.moments}
                for path, ring in self.predictions.items()
            }
        if self.rates:
            out["rates"] = sorted(self.rates)
        if self.embeddings:
            out["embeddings"] = {
                name: {"dim": r.dim, "rows_per_period": r.rows_per_period, "min_rows": r.min_rows, "seed": r.seed}
                for name, r in self.embeddings.items()
            }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "<seasonal baseline>") -> SeasonalBaseline:
        """Read :meth:`to_dict`'s mapping (also those of formats 1 and 2: UTC slots and no
        holiday slots in format 1; feature bins only, the other histories start empty).

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
            shape = (slots, n_periods + 1)
            features = data["features"]
            bins = {str(name): str(item["bins"]) for name, item in features.items()}
            counts = {str(name): np.zeros((*shape, int(item["n_bins"])), dtype=np.int64) for name, item in features.items()}
            fields = data.get("predictions", {})
            prediction_bins = {str(path): str(item["bins"]) for path, item in fields.items()}
            predictions = {str(p): np.zeros((*shape, int(item["n_bins"])), dtype=np.int64) for p, item in fields.items()}
            moments = {str(p): np.zeros((*shape, 3), dtype=np.float64) for p, item in fields.items() if item["moments"]}
            rates = {str(name): np.zeros((*shape, len(RATE_CHECKS), 2), dtype=np.int64) for name in data.get("rates", [])}
            if set(rates) - set(counts):
                raise ValueError(f"rates of {sorted(set(rates) - set(counts))}, which are not features")
            embeddings = {
                str(name): EmbeddingRing.empty(
                    str(name), int(item["dim"]), int(item["rows_per_period"]), int(item["min_rows"]),
                    int(item["seed"]), slots, n_periods,
                )
                for name, item in data.get("embeddings", {}).items()
            }
            periods = np.full(shape, -1, dtype=np.int64)
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
                for key, store, what in (("counts", counts, "features"), ("predictions", predictions, "predictions"),
                                         ("moments", moments, "moments"), ("rates", rates, "rates")):
                    given = item.get(key, {})
                    if store and set(given) != set(store):
                        raise ValueError(f"cell {what} {sorted(given)} != {sorted(store)}")
                    for name, values in given.items():
                        row = np.asarray(values, dtype=store[name].dtype)
                        # A cell's moments are (n, mean, m2): only the mean may be negative.
                        signed = row[[0, 2]] if key == "moments" and row.shape == (3,) else row
                        if row.shape != store[name].shape[2:] or (signed < 0).any() or not np.isfinite(row).all():
                            size = " x ".join(str(d) for d in store[name].shape[2:])
                            kind = "numbers" if key == "moments" else "integers"
                            raise ValueError(f"{key} of {name!r} must be {size} non-negative {kind}")
                        store[name][slot, cell] = row
                for name, sample in item.get("embeddings", {}).items():
                    ring = embeddings[name]
                    rows = np.frombuffer(base64.b64decode(sample["rows"]), dtype="<f4").astype(np.float32)
                    rows = rows.reshape(-1, ring.dim)
                    n_seen = int(sample["n_seen"])
                    if rows.shape[0] != min(n_seen, ring.rows_per_period) or not np.isfinite(rows).all():
                        raise ValueError(f"embedding rows of {name!r}: {rows.shape[0]} finite rows for {n_seen} seen")
                    ring.n_seen[slot, cell] = n_seen
                    if rows.shape[0]:
                        ring.rows[(slot, cell)] = rows
            return cls(
                clock=clock, n_periods=n_periods, min_samples=int(data["min_samples"]),
                half_life=half_life, bins=bins, periods=periods, counts=counts, prediction_bins=prediction_bins,
                predictions=predictions, moments=moments, rates=rates, embeddings=embeddings,
            )
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
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
    kept. A prediction field profiled since (a ``score`` detector added) starts an empty
    history of its own.
    """
    if state is None or not state.compatible(reference, config):
        return SeasonalBaseline.create(reference, config)
    state.min_samples = config.min_samples
    state.half_life = _half_life_periods(config)
    state.clock = SlotClock.from_config(config)
    state.sync_predictions(reference)
    return state


def _seasonal_profile(reference: ReferenceProfile, **changes: Any) -> SeasonalProfile:
    base = reference.reference if isinstance(reference, SeasonalProfile) and reference.reference else reference
    kept = {f.name: getattr(reference, f.name) for f in dataclass_fields(ReferenceProfile)}
    return SeasonalProfile(**{**kept, "reference": base, **changes})


def baseline_profile(
    reference: ReferenceProfile, baseline: SeasonalBaseline, window_start: datetime,
) -> tuple[SeasonalProfile, dict[str, str]]:
    """The profile a window starting at ``window_start`` is compared with.

    Same bins as ``reference``; each feature's shares (and ``n``) are its seasonal slot's
    over the previous periods, or the reference's own when the slot has fewer than
    ``min_samples`` values. Returns the profile and, per feature, the description also
    set as its ``baselines`` (``hour_of_week=37 over 4 weeks (n=2412)`` or
    ``reference (hour_of_week=37 has 120 < 500 samples over 1 week)``); a holiday
    adds ``; holiday 2026-04-06`` (and ``as sunday`` when scored as a weekday).

    Prediction fields (shares, ``n``, and a numeric field's mean and std) and embedding
    fields get theirs the same way, named in ``baselines`` too; the slot's quality rates
    are in :attr:`SeasonalProfile.rates`, its embedding rows in
    :attr:`SeasonalProfile.slot_embeddings`.
    """
    place = baseline.clock.place(window_start)
    slot, period = place.slot, place.period
    features: dict[str, FeatureProfile] = {}
    descriptions: dict[str, str] = {}
    seasonal: set[str] = set()
    for name, feature in reference.features.items():
        got = baseline.expected(name, slot, period)
        if got is None:
            features[name] = feature
            descriptions[name] = baseline.fallback_reason(name, slot, period)
        else:
            features[name] = replace(feature, shares=tuple(float(s) for s in got.shares), n=got.n)
            descriptions[name] = got.description
            seasonal.add(name)
    predictions: dict[str, FeatureProfile] = dict(reference.predictions)
    for path, column in reference.predictions.items():
        if path not in baseline.predictions:
            continue
        expected, descriptions[path] = baseline.expected_prediction(path, slot, period)
        if expected is None:
            continue
        changed: dict[str, Any] = {"shares": tuple(float(s) for s in expected.shares), "n": expected.n}
        moments = baseline.expected_moments(path, slot, period) if path in baseline.moments else None
        if isinstance(column, NumericProfile) and moments is not None:
            changed.update(mean=moments[0], std=moments[1])
        predictions[path] = replace(column, **changed)
        seasonal.add(path)
    rates = {key: got for key, got in baseline.expected_rates(slot, period).items() if key[0] in reference.features}
    slot_embeddings: dict[str, npt.NDArray[np.float32]] = {}
    for name in baseline.embeddings:
        rows, descriptions[name] = baseline.expected_embeddings(name, slot, period)
        if rows is not None:
            slot_embeddings[name] = rows
            seasonal.add(name)
    if place.holiday and baseline.clock.calendar is not None:
        how = baseline.clock.calendar.holiday_as
        suffix = f"; holiday {place.local.date().isoformat()}" + ("" if how == "own" else f" as {how}")
        descriptions = {name: text + suffix for name, text in descriptions.items()}
        rates = {key: got._replace(description=got.description + suffix) for key, got in rates.items()}
    profile = _seasonal_profile(
        reference, features=features, predictions=predictions, baselines=descriptions,
        seasonal=frozenset(seasonal), rates=rates, slot_embeddings=slot_embeddings,
    )
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


def window_health(findings: Iterable[Finding], summary: WindowSummary) -> Health:
    """What a scored window may feed, per (detector, feature) (:func:`healthy_features`):

    - a feature's bins: its PSI findings (:data:`BASELINE_DETECTORS`);
    - a prediction field's bins and moments: its ``score.*`` findings;
    - a feature's quality rate ``check``: its ``quality.<check>`` finding only (a null-rate
      spike keeps the null rate out of the slot, not the missing rate);
    - an embedding field's rows: its ``embedding`` finding.
    """
    found = list(findings)
    fields = [summary.embedding.field_name] if summary.embedding is not None else []
    return Health(
        features=healthy_features(found, summary.features),
        predictions=healthy_features(found, summary.predictions, SCORE_DETECTORS),
        rates={check: healthy_features(found, summary.features, frozenset({f"quality.{check}"}))
               for check in RATE_CHECKS},
        embeddings=healthy_features(found, fields, EMBEDDING_DETECTORS),
    )


def _as_health(healthy: bool | Set[str] | Health, summary: WindowSummary) -> Health:
    if isinstance(healthy, Health):
        return healthy
    everything = frozenset(summary.features)
    if isinstance(healthy, bool):
        features = everything if healthy else frozenset()
        others = healthy
    else:
        features, others = frozenset(healthy), True
    fields = [summary.embedding.field_name] if summary.embedding is not None else []
    return Health(
        features=features,
        predictions=frozenset(summary.predictions) if others else frozenset(),
        rates={check: features for check in RATE_CHECKS},
        embeddings=frozenset(fields) if others else frozenset(),
    )


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
    ``baseline`` keeps the histories ``detectors`` compare with (:meth:`SeasonalBaseline.track`),
    is updated in place (per-(detector, feature) healthy rule of :func:`window_health`)
    and the findings returned.
    """
    baseline.track(detectors)
    profile, _ = baseline_profile(reference, baseline, window.start)
    findings = [finding for detector in detectors for finding in detector.score(summary, profile, cohort, window)]
    baseline.observe(summary, window.start, window_health(findings, summary))
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


def seasonal_detectors(model_config: ModelConfig, reference: ReferenceProfile) -> list[Detector]:
    """The model's detectors that learn from and compare with the seasonal baseline: ``psi``,
    ``score``, ``quality`` and ``embedding`` (bound to ``reference.embeddings``; left out
    when the reference has none of its field, as a profile without embeddings loaded)."""
    from detectors.embedding import EmbeddingDetector  # detectors import drift: import late
    from detectors.registry import build as build_detector

    out: list[Detector] = []
    for name, settings in model_config.detector_configs():
        if name not in ("psi", "score", "quality", "embedding"):
            continue
        detector = build_detector(name, settings)
        if isinstance(detector, EmbeddingDetector):
            rows = reference.embeddings.get(detector.config.field)
            if rows is None:
                continue
            detector = detector.bind(rows)
        out.append(detector)
    return out


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
    file sorted by ``ts``. ``detectors`` defaults to :func:`seasonal_detectors`.
    """
    if detectors is None:
        detectors = seasonal_detectors(model_config, reference)
    sampling = model_config.embedding_sampling() if any(d.name == "embedding" for d in detectors) else None
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
            summary = windows[index] = empty_summary(
                reference, cohort, bounds=bounds, track_event_ids=False,
                embedding=None if sampling is None else embedding_sample(sampling, cohort.key, window_at(index, size).start),
            )
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

SEASONAL_FORMAT = 3
"""Format 2 adds each cohort's ``timezone`` and ``n_holiday_slots`` (format 1: UTC, none);
format 3 the histories of prediction fields, quality rates and embeddings (formats 1 and 2
load with those empty: they fill online, or rebuild with ``--history``)."""


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
        if data.get("format") not in (1, 2, SEASONAL_FORMAT) or data.get("model") != model or not isinstance(cohorts, dict):
            raise ValueError(f"expected format 1 to {SEASONAL_FORMAT} for model {model!r}")
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
