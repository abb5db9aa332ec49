"""Seasonal slots in local time: the seasonalities, public holidays and the calendar, and the clock that places a timestamp in its slot and period."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal, Mapping, NamedTuple, get_args
from zoneinfo import ZoneInfo


from drift.duration import format_duration

if TYPE_CHECKING:
    from drift.config import BaselineConfig


Seasonality = Literal["none", "hour_of_day", "day_of_week", "hour_of_week"]
SEASONALITIES: tuple[Seasonality, ...] = get_args(Seasonality)


N_SLOTS: Mapping[Seasonality, int] = {"none": 1, "hour_of_day": 24, "day_of_week": 7, "hour_of_week": 168}
PERIOD: Mapping[Seasonality, timedelta] = {
    "none": timedelta(days=1), "hour_of_day": timedelta(days=1),
    "day_of_week": timedelta(weeks=1), "hour_of_week": timedelta(weeks=1),
}
"""How long one period is: the slots repeat once per period."""
_UNIT: Mapping[Seasonality, str] = {"none": "day", "hour_of_day": "day", "day_of_week": "week", "hour_of_week": "week"}


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
