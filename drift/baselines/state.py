"""The seasonal baseline of one cohort: per-slot ring histories of bins, prediction fields, quality rates and embeddings (a Bytewax snapshot's state)."""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Set
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from detectors.quality import rate_counts
from detectors.seasonal_profile import SlotRate
from drift.errors import BaselineError
from drift.moments import Moments
from drift.moments import merge as merge_moments
from drift.reference import NumericProfile, ReferenceProfile
from drift.summary import WindowSummary
from drift.baselines.calendar import N_SLOTS, SEASONALITIES, _UNIT, Calendar, Seasonality, SlotClock, n_periods_of
from drift.baselines.slots import (
    RATE_CHECKS, EmbeddingRing, Expected, Health, _as_health, _half_life_periods, bins_fingerprint,
)

if TYPE_CHECKING:
    from detectors.base import Detector
    from drift.config import BaselineConfig


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
