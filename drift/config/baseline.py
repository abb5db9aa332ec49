"""``models[].baseline``: how the expected distribution of a window is chosen (seasonality,
time zone, holiday calendar).
"""

from __future__ import annotations

import difflib
import zoneinfo
from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, field_validator, model_validator

from drift.config.base import Strict
from drift.duration import Duration, format_duration


def _to_date(value: object) -> object:
    # YAML reads 2026-12-24 as a date already; a quoted one is ISO text.
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be a date like 2026-12-24; got {value!r}") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise ValueError(f"must be a date like 2026-12-24; got {value!r}")


Date = Annotated[date, BeforeValidator(_to_date), PlainSerializer(date.isoformat, return_type=str)]


class CalendarConfig(Strict):
    """``baseline.calendar``: which local dates are holidays, and what they are scored against."""

    country: str | None = None
    """ISO 3166 code whose public holidays count (the ``holidays`` package), e.g. ``DE``."""
    subdivision: str | None = None
    """The country's subdivision as the ``holidays`` package names it, e.g. ``BY``."""
    dates: list[Date] = Field(default_factory=list)
    """Further holidays, e.g. ``[2026-12-24]``."""
    holiday_as: Literal["own", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = "own"
    """``own``: one slot class for all holidays (by local hour); a weekday: that weekday's slot."""

    @model_validator(mode="after")
    def _known_country(self) -> CalendarConfig:
        if self.subdivision is not None and self.country is None:
            raise ValueError("subdivision needs a country")
        if self.country is not None:
            import holidays  # only configs with a calendar pay for its tables

            supported = holidays.list_supported_countries()
            if self.country not in supported:
                close = difflib.get_close_matches(self.country.upper(), list(supported), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ValueError(f"country must be a country code of the holidays package{hint}; got {self.country!r}")
            if self.subdivision is not None and self.subdivision not in supported[self.country]:
                raise ValueError(
                    f"subdivision must be one of {', '.join(supported[self.country])} for {self.country}; "
                    f"got {self.subdivision!r}"
                )
        return self


class BaselineConfig(Strict):
    """How the expected distribution is chosen for a window."""

    seasonality: Literal["none", "hour_of_day", "day_of_week", "hour_of_week"] = "none"
    history: Duration = timedelta(weeks=4)
    """How far back the same slot is pooled: ``4w`` with ``hour_of_week`` is 4 periods."""
    min_samples: int = Field(default=500, ge=1)
    """Below this many values in a slot's history the training reference is used instead."""
    half_life: Duration | None = None
    """Exponential decay of older periods (None: all periods weigh the same)."""
    timezone: str = "UTC"
    """IANA zone (``Europe/Berlin``) whose local time the slots follow, daylight saving included."""
    calendar: CalendarConfig | None = None
    """Holidays, scored against their own slots or a weekday's and never fed to ordinary slots."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value == "UTC":
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"must be an IANA time zone name like 'Europe/Berlin' or 'UTC'; got {value!r}") from None
        return value

    @model_validator(mode="after")
    def _history_covers_a_period(self) -> BaselineConfig:
        if self.calendar is not None:
            if self.seasonality == "none":
                raise ValueError("calendar needs a seasonality (hour_of_day, day_of_week or hour_of_week); got 'none'")
            if self.calendar.holiday_as != "own" and self.seasonality not in ("day_of_week", "hour_of_week"):
                raise ValueError(
                    f"calendar.holiday_as {self.calendar.holiday_as!r} needs seasonality day_of_week or "
                    f"hour_of_week; got {self.seasonality!r} (use holiday_as: own)"
                )
        period = timedelta(days=1) if self.seasonality in ("none", "hour_of_day") else timedelta(weeks=1)
        if self.seasonality != "none" and self.history < period:
            raise ValueError(
                f"history must cover at least one {'day' if period.days == 1 else 'week'} "
                f"for seasonality {self.seasonality}; got {format_duration(self.history)!r}"
            )
        if self.half_life is not None and self.half_life <= timedelta(0):
            raise ValueError(f"half_life must be a positive duration; got {format_duration(self.half_life)!r}")
        return self
