"""Durations written in config as ``30s``, ``5m``, ``1h``, ``2d`` or ``4w``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``5m`` into a :class:`~datetime.timedelta`.

    >>> parse_duration("5m")
    datetime.timedelta(seconds=300)
    >>> parse_duration("4w").days
    28
    """
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(
            f"must be a duration like '30s', '5m', '1h', '2d' or '4w'; got {text!r}"
        )
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def format_duration(value: timedelta) -> str:
    """Format a duration with the largest unit that divides it.

    >>> format_duration(timedelta(minutes=5))
    '5m'
    """
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


def _to_timedelta(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        return value
    raise ValueError(f"must be a duration like '30s', '5m', '1h', '2d' or '4w'; got {value!r}")


Duration = Annotated[timedelta, BeforeValidator(_to_timedelta), PlainSerializer(format_duration, return_type=str)]
"""A duration field of a config model: written as ``30s``, ``5m``, ``1h``, ``2d`` or ``4w``, read
as a :class:`~datetime.timedelta`, written back in the same form."""
