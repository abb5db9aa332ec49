"""Feature freshness: how old the feature store's newest values are at the end of a window.

Feature events (:mod:`drift.feature_events`) carry no model or tenant, so freshness is
measured per **model × feature set** and window: the model's ``freshness`` detector names
the feature set it is served from, and the windows are the model's (``window.size``,
epoch-aligned, closed ``allowed_lateness`` after their end like the cohort windows). The
finding's cohort is the model alone (``Cohort(model)``) and its ``feature`` is the feature
set, so each (model, feature set) is one fingerprint and one ticket.

A feature event is *available* from ``t_i = materialized_at`` (its ``ts`` when it has no
``materialized_at``), and belongs to the window ``[start, end)`` that holds ``t_i``. For a
window ending at ``end``:

- ``lag_newest = end - max(t_i)`` over every event of the set available before ``end``
  (this window's and all earlier ones): the time since the feature set was last
  materialised. A window without feature events still gets it, from the last event seen.
- ``lag_max`` and ``lag_p95`` over the window's own events, of ``max(0, end - ts_i)``:
  how old the values materialised in this window are (a job that runs on time but on
  stale source data). p95 is the nearest rank: the ``ceil(0.95 n)``-th smallest.

The finding's value is ``statistic`` (default ``newest``) in seconds; ``p95`` and ``max``
fall back to ``lag_newest`` in a window without events. Before any event of the set was
seen, the value is the time watched (``end`` minus the start of the key's first window),
a lower bound of the true lag, and the evidence says ``no_feature_events``. Severity:
``alert`` at ``value >= max_lag``, ``warn`` at ``value >= warn_lag``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drift.duration import Duration, format_duration
from drift.findings import Cohort, Finding, Severity, Window

DEFAULT_MAX_LAG = timedelta(hours=1)
MAX_TS_BUCKETS = 4096
"""Distinct ``ts`` buckets a window keeps for the p95; past it the buckets coarsen (1 s → 1 m → 1 h → 1 d)."""
_RESOLUTIONS = (1, 60, 3600, 86400)



class FreshnessConfig(BaseModel):
    """``freshness:`` in YAML: ``{feature_set: customer_profile, max_lag: 1h, warn_lag: 30m}``.

    ``warn_lag`` omitted is half of ``max_lag``; ``warn_lag: null`` means no warn level.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    feature_set: str = Field(min_length=1)
    max_lag: Duration = DEFAULT_MAX_LAG
    warn_lag: Duration | None = None
    statistic: Literal["newest", "p95", "max"] = "newest"
    source: Literal["offline", "online"] | None = None
    """Only feature events of this source count; ``null`` (default): both."""

    @model_validator(mode="after")
    def _ordered(self) -> FreshnessConfig:
        if self.max_lag <= timedelta(0):
            raise ValueError(f"max_lag must be a positive duration; got {format_duration(self.max_lag)!r}")
        if "warn_lag" not in self.model_fields_set:
            object.__setattr__(self, "warn_lag", self.max_lag / 2)
        if self.warn_lag is not None:
            if self.warn_lag <= timedelta(0):
                raise ValueError(f"warn_lag must be a positive duration; got {format_duration(self.warn_lag)!r}")
            if self.warn_lag > self.max_lag:
                raise ValueError(
                    f"warn_lag must be <= max_lag; got warn_lag={format_duration(self.warn_lag)!r}, "
                    f"max_lag={format_duration(self.max_lag)!r}"
                )
        return self

    def wants(self, feature_set: str, source: str) -> bool:
        """Whether a feature event of ``feature_set`` from ``source`` counts."""
        return feature_set == self.feature_set and (self.source is None or source == self.source)


@dataclass(slots=True)
class FreshnessWindow:
    """What one (model, feature set) window saw: bounded whatever the number of events."""

    n_feature_events: int = 0
    n_inference_events: int = 0
    newest: datetime | None = None
    """Latest availability time (``materialized_at`` or ``ts``) of the window's events."""
    oldest_ts: datetime | None = None
    resolution: int = 1
    """Seconds per ``ts`` bucket."""
    ts_buckets: dict[int, int] = field(default_factory=dict)
    """``floor(epoch seconds of ts / resolution) -> events``."""

    def add_feature(self, ts: datetime, available: datetime) -> None:
        self.n_feature_events += 1
        self.newest = available if self.newest is None else max(self.newest, available)
        self.oldest_ts = ts if self.oldest_ts is None else min(self.oldest_ts, ts)
        bucket = math.floor(ts.timestamp()) // self.resolution
        self.ts_buckets[bucket] = self.ts_buckets.get(bucket, 0) + 1
        while len(self.ts_buckets) > MAX_TS_BUCKETS and self.resolution < _RESOLUTIONS[-1]:
            coarser = _RESOLUTIONS[_RESOLUTIONS.index(self.resolution) + 1]
            merged: dict[int, int] = {}
            for key, count in self.ts_buckets.items():
                new = (key * self.resolution) // coarser
                merged[new] = merged.get(new, 0) + count
            self.ts_buckets, self.resolution = merged, coarser

    def lags(self, end: datetime) -> tuple[float, float] | None:
        """(max, p95) of ``max(0, end - ts_i)`` in seconds over the window's events; None without events.

        The max is exact; the p95 takes each bucket's oldest ``ts`` (exact at 1 s buckets
        for whole-second timestamps, else at most one bucket width too high).
        """
        if self.oldest_ts is None or not self.ts_buckets:
            return None
        lag_max = max(0.0, (end - self.oldest_ts).total_seconds())
        rank = math.ceil(0.95 * self.n_feature_events)
        seen = 0
        end_s = end.timestamp()
        # Newest ts first = smallest lag first.
        for key in sorted(self.ts_buckets, reverse=True):
            seen += self.ts_buckets[key]
            if seen >= rank:
                return lag_max, min(lag_max, max(0.0, end_s - key * self.resolution))
        return lag_max, lag_max


class FreshnessDetector:
    """Scores closed (model, feature set) windows; the cohort windows have nothing for it.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> t = lambda m: datetime(2026, 1, 1, 0, m, tzinfo=timezone.utc)
    >>> w = FreshnessWindow()
    >>> w.add_feature(ts=t(0), available=t(2))
    >>> f = FreshnessDetector(FreshnessConfig(feature_set="p", max_lag=timedelta(minutes=5))).score_window(
    ...     w, newest_before=None, first_start=t(0), cohort=Cohort("m"), window=Window(t(0), t(10)))
    >>> f.detector, f.feature, f.value, f.severity.value
    ('freshness', 'p', 480.0, 'alert')
    """

    name = "freshness"

    def __init__(self, config: FreshnessConfig) -> None:
        self.config = config

    def score_window(
        self, stats: FreshnessWindow, newest_before: datetime | None, first_start: datetime,
        cohort: Cohort, window: Window, n_late: int = 0,
    ) -> Finding:
        """The finding of one closed window.

        ``newest_before`` is the latest availability time of the set's events before this
        window (None if none was seen); ``first_start`` the start of the first window of
        this (model, feature set).
        """
        config = self.config
        end = window.end
        candidates = [t for t in (newest_before, stats.newest) if t is not None]
        newest = max(candidates) if candidates else None
        lag_newest = None if newest is None else (end - newest).total_seconds()
        lags = stats.lags(end)
        evidence: dict[str, Any] = {
            "feature_set": config.feature_set,
            "statistic": config.statistic,
            "source": config.source or "any",
            "n_feature_events": stats.n_feature_events,
            "n_inference_events": stats.n_inference_events,
            "newest_materialized_at": None if newest is None else newest.isoformat(),
            "lag_newest_s": lag_newest,
            "lag_max_s": None if lags is None else lags[0],
            "lag_p95_s": None if lags is None else lags[1],
            "max_lag_s": config.max_lag.total_seconds(),
            "warn_lag_s": None if config.warn_lag is None else config.warn_lag.total_seconds(),
            "n_late_feature_events": n_late,
        }
        if lag_newest is None:
            value = (end - first_start).total_seconds()
            evidence["no_feature_events"] = True
            evidence["note"] = (
                f"no feature events of {config.feature_set!r} seen since {first_start.isoformat()}: "
                "the lag is at least the time watched"
            )
        elif lags is None or config.statistic == "newest":
            value = lag_newest
            if lags is None:
                evidence["note"] = f"no feature events of {config.feature_set!r} in this window"
        else:
            value = lags[0] if config.statistic == "max" else lags[1]
        alert = config.max_lag.total_seconds()
        warn = alert if config.warn_lag is None else config.warn_lag.total_seconds()
        return Finding(
            detector=self.name, cohort=cohort, window=window, feature=config.feature_set, value=value,
            severity=Severity.of(value, warn, alert), warn=warn, alert=alert,
            n_current=stats.n_inference_events, n_reference=0, baseline="config", evidence=evidence,
        )
