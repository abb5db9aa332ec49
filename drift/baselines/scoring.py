"""Scoring a window against the seasonal baseline: the baseline profile of its slot, the health rule, and feeding healthy windows back."""

from __future__ import annotations

from dataclasses import replace
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import numpy.typing as npt

from detectors.seasonal_profile import SeasonalProfile
from drift.findings import Cohort, Finding, Window
from drift.reference import FeatureProfile, NumericProfile, ReferenceProfile
from drift.summary import WindowSummary
from drift.baselines.calendar import SlotClock
from drift.baselines.slots import _half_life_periods, window_health
from drift.baselines.state import SeasonalBaseline

if TYPE_CHECKING:
    from detectors.base import Detector
    from drift.config import BaselineConfig


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
