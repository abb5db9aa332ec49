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

The package: :mod:`~drift.baselines.calendar` (slots in local time, holidays),
:mod:`~drift.baselines.slots` (what a slot keeps, the health rule), :mod:`~drift.baselines.state`
(one cohort's :class:`SeasonalBaseline`), :mod:`~drift.baselines.scoring` (a window against its slot),
:mod:`~drift.baselines.history` (built from history) and :mod:`~drift.baselines.store` (on disk).
Snapshots taken before the package split name ``drift.baselines.SeasonalBaseline`` and the like:
the names below keep them loadable.
"""

from __future__ import annotations

from drift.baselines.calendar import (
    Calendar,
    HolidayAs,
    N_SLOTS,
    PERIOD,
    Place,
    SEASONALITIES,
    Seasonality,
    SlotClock,
    WEEKDAYS,
    Weekday,
    n_periods_of,
    period_of,
    period_start,
    public_holidays,
    slot_of,
)
from drift.baselines.slots import (
    BASELINE_DETECTORS,
    EMBEDDING_DETECTORS,
    EmbeddingRing,
    Expected,
    Health,
    RATE_CHECKS,
    SCORE_DETECTORS,
    _ring_rng,
    bins_fingerprint,
    healthy_features,
    is_healthy,
    window_health,
)
from drift.baselines.state import (
    SeasonalBaseline,
)
from drift.baselines.scoring import (
    baseline_profile,
    resume,
    score_window,
)
from drift.baselines.history import (
    BuildStats,
    build_from_history,
    seasonal_detectors,
)
from drift.baselines.store import (
    SEASONAL_FORMAT,
    load_seasonal,
    save_seasonal,
    seasonal_path,
)

__all__ = [
    "BASELINE_DETECTORS",
    "BuildStats",
    "Calendar",
    "EMBEDDING_DETECTORS",
    "EmbeddingRing",
    "Expected",
    "Health",
    "HolidayAs",
    "N_SLOTS",
    "PERIOD",
    "Place",
    "RATE_CHECKS",
    "SCORE_DETECTORS",
    "SEASONALITIES",
    "SEASONAL_FORMAT",
    "SeasonalBaseline",
    "Seasonality",
    "SlotClock",
    "WEEKDAYS",
    "Weekday",
    "_ring_rng",
    "baseline_profile",
    "bins_fingerprint",
    "build_from_history",
    "healthy_features",
    "is_healthy",
    "load_seasonal",
    "n_periods_of",
    "period_of",
    "period_start",
    "public_holidays",
    "resume",
    "save_seasonal",
    "score_window",
    "seasonal_detectors",
    "seasonal_path",
    "slot_of",
    "window_health",
]
