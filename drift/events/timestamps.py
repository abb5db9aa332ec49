"""The ``ts`` of an event: RFC 3339 text with an offset, or an epoch number in the model's
``ts_unit``, read as an aware UTC datetime; an implausible epoch is refused with the unit it
would fit.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Literal, Mapping

from drift.events import DlqReason, _Reject
from drift.windowing import EPOCH


TsUnit = Literal["s", "ms", "us", "ns"]
"""The unit of an epoch ``ts`` (a model's ``ts_unit``)."""

TS_UNITS: tuple[TsUnit, ...] = ("s", "ms", "us", "ns")

TS_UNIT_WORDS: Mapping[str, str] = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}

MICROS_PER_UNIT: Mapping[str, int] = {"s": 1_000_000, "ms": 1000, "us": 1}
"""Microseconds per epoch unit (nanoseconds are divided by 1000)."""

EPOCH_MIN = datetime(2000, 1, 1, tzinfo=timezone.utc)
"""An epoch ``ts`` before this is refused (``bad_timestamp``): most likely a wrong unit."""

EPOCH_MIN_MICROS = (EPOCH_MIN - EPOCH) // timedelta(microseconds=1)

_MICROS_MAX = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc) - EPOCH) // timedelta(microseconds=1)
_MICROS_MIN = (datetime(1, 1, 1, tzinfo=timezone.utc) - EPOCH) // timedelta(microseconds=1)


def epoch_micros(value: int | float, unit: str = "ms") -> int | None:
    """Microseconds since 1970 of an epoch ``value`` in ``unit``; None when not finite.

    Integers are scaled exactly (nanoseconds are floored to the microsecond); floats are
    floored to the microsecond after scaling.

    >>> epoch_micros(1764237600, "s"), epoch_micros(1764237600123456789, "ns")
    (1764237600000000, 1764237600123456)
    """
    if isinstance(value, int):
        return value // 1000 if unit == "ns" else value * MICROS_PER_UNIT[unit]
    scaled = value / 1000 if unit == "ns" else value * MICROS_PER_UNIT[unit]
    return math.floor(scaled) if math.isfinite(scaled) else None


def _micros_text(micros: int) -> str:
    return (EPOCH + timedelta(microseconds=micros)).isoformat()


def _likely_unit(value: int | float, unit: str, latest: int) -> str | None:
    """The other unit in which ``value`` lands between 2000 and ``latest`` (at most one can)."""
    for other in TS_UNITS:
        if other == unit:
            continue
        micros = epoch_micros(value, other)
        if micros is not None and EPOCH_MIN_MICROS <= micros <= latest:
            return other
    return None


def _epoch_timestamp(value: int | float, unit: str, latest: int | None, model: str | None) -> datetime:
    """An epoch ``ts`` in ``unit`` as a UTC datetime; refused when implausible for the unit.

    Before 2000, or after ``latest`` (microseconds, when given) where another unit would
    land between 2000 and ``latest``: ``bad_timestamp`` whose detail names that unit.
    After ``latest`` in no other unit either, the caller's future check decides.
    """
    words = TS_UNIT_WORDS[unit]
    micros = epoch_micros(value, unit)
    if micros is None:
        raise _Reject(DlqReason.BAD_TIMESTAMP, f"ts epoch {words} out of range; got {value!r}")
    bound = _MICROS_MAX if latest is None else latest
    if EPOCH_MIN_MICROS <= micros <= bound:
        return EPOCH + timedelta(microseconds=micros)
    guess = _likely_unit(value, unit, bound)
    where = f" of model {model!r}" if model is not None else ""
    hint = ""
    if guess is not None:
        guessed = epoch_micros(value, guess)
        assert guessed is not None
        hint = (f"; as epoch {TS_UNIT_WORDS[guess]} it would be {_micros_text(guessed)}: "
                f"set ts_unit: {guess} on the model" if model is not None else
                f"; as epoch {TS_UNIT_WORDS[guess]} it would be {_micros_text(guessed)}")
    if micros < EPOCH_MIN_MICROS:
        shown = _micros_text(micros) if micros >= _MICROS_MIN else "before year 1"
        raise _Reject(
            DlqReason.BAD_TIMESTAMP,
            f"ts {value!r} read as epoch {words}{where} is {shown}, before 2000{hint}",
        )
    if guess is not None:
        shown = _micros_text(micros) if micros <= _MICROS_MAX else "after year 9999"
        raise _Reject(DlqReason.BAD_TIMESTAMP, f"ts {value!r} read as epoch {words}{where} is {shown}{hint}")
    if micros > _MICROS_MAX:
        raise _Reject(DlqReason.BAD_TIMESTAMP, f"ts epoch {words} out of range; got {value!r}")
    return EPOCH + timedelta(microseconds=micros)


def parse_timestamp(
    value: object, unit: str = "ms", latest: int | None = None, model: str | None = None,
) -> datetime:
    """An RFC 3339 string with offset, or an epoch number in ``unit``, as an aware UTC datetime.

    An epoch value before 2000 is refused as a likely wrong unit (``bad_timestamp``, the
    detail naming the unit it would fit); so is one after ``latest`` (microseconds since
    1970, when given) that another unit would place between 2000 and ``latest``.
    ``model`` is named in those details.

    >>> parse_timestamp("2026-11-27T10:00:00.123Z").isoformat()
    '2026-11-27T10:00:00.123000+00:00'
    >>> parse_timestamp(1764237600000).isoformat()
    '2025-11-27T10:00:00+00:00'
    >>> parse_timestamp(1764237600, "s").isoformat()
    '2025-11-27T10:00:00+00:00'
    """
    if isinstance(value, bool):
        raise _Reject(
            DlqReason.BAD_TIMESTAMP, f"ts must be RFC 3339 text or epoch {TS_UNIT_WORDS[unit]}; got {value!r}")
    if isinstance(value, (int, float)):
        return _epoch_timestamp(value, unit, latest, model)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Reject(DlqReason.BAD_TIMESTAMP, f"ts is not RFC 3339; got {value[:64]!r}") from None
        if parsed.tzinfo is None:
            raise _Reject(DlqReason.BAD_TIMESTAMP, f"ts has no UTC offset; got {value[:64]!r}")
        try:
            return parsed.astimezone(timezone.utc)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
            raise _Reject(DlqReason.BAD_TIMESTAMP, f"ts is out of range in UTC; got {value[:64]!r}") from None
    raise _Reject(DlqReason.WRONG_TYPE, f"ts must be a string or integer; got {type(value).__name__}")
