"""Which cohorts of a closed batch can have a warn or alert finding: one array pass for all.

Scoring a cohort window finding by finding costs the same for a window of twenty events
as for one of twenty thousand. Most cohort windows are healthy, so the flow first takes
every detector's *effect* for all ``k`` cohorts of a :class:`~drift.cohort_arrays.ClosedWindows`
at once, as numpy expressions over ``[cohorts × fields]``: the PSI of every feature, each
quality rate, the cardinality ratio, the duplicate-id rate and the schema change. A cohort
whose every effect is below its warn level, or measured on fewer than ``min_samples``
values, cannot have a finding above ``ok``: the significance test of
:mod:`detectors.significance` only ever lowers a severity. Only the other cohorts are
scored in full, by the detectors themselves.

The effects are compared with the warn levels less a relative ``1e-9``, so rounding can
only send a healthy cohort to full scoring, never hide an unhealthy one. A detector this
module does not know (``score``, ``skew``, ``embedding``) makes :func:`screen` return
None: every cohort is scored in full.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import Detector
from detectors.psi import PsiDetector
from detectors.quality import QualityDetector
from detectors.significance import MIN_EXPECTED
from drift.cohort_arrays import ABSENT, NULLS, OUT_OF_RANGE, WRONG_TYPE, ClosedWindows
from drift.reference import CategoricalProfile, ReferenceProfile

SLACK = 1e-9
"""Relative margin below a warn level that still sends a cohort to full scoring."""


def _at_least(value: npt.NDArray[np.float64], level: float) -> npt.NDArray[np.bool_]:
    return value >= level - SLACK * max(abs(level), 1e-12)


def screen(closed: ClosedWindows, profile: ReferenceProfile, detectors: list[Detector]) -> npt.NDArray[np.bool_] | None:
    """``[k]`` True where a cohort may have a warn/alert finding; None when a detector cannot be screened."""
    flags = screen_detectors(closed, profile, detectors)
    if flags is None:
        return None
    out: npt.NDArray[np.bool_] = np.logical_or.reduce(flags, axis=0) if flags.size else np.zeros(len(closed), np.bool_)
    return out


def screen_detectors(
    closed: ClosedWindows, profile: ReferenceProfile, detectors: list[Detector],
) -> npt.NDArray[np.bool_] | None:
    """``[detectors × k]``: True where detector ``d`` may give cohort ``i`` a warn/alert finding
    (None when a detector cannot be screened)."""
    flags = np.zeros((len(detectors), len(closed)), dtype=np.bool_)
    for d, detector in enumerate(detectors):
        if isinstance(detector, PsiDetector):
            flags[d] = psi_flags(closed, profile, detector)
        elif isinstance(detector, QualityDetector):
            flags[d] = quality_flags(closed, profile, detector)
        else:
            return None
    return flags


def psi_values(
    closed: ClosedWindows, profile: ReferenceProfile, detector: PsiDetector,
    rows: npt.NDArray[np.intp] | None = None,
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(features, ``[rows × features]`` PSI, ``[rows × features]`` values counted) of ``detector``'s
    features, for ``rows`` of ``closed`` (all when None)."""
    layout = closed.layout
    names = detector.features(profile)
    epsilon = detector.config.epsilon
    k = len(closed) if rows is None else rows.size
    values = np.zeros((k, len(names)))
    totals = np.zeros((k, len(names)), dtype=np.int64)
    for j, name in enumerate(names):
        f = layout.index(name)
        counts = closed.field_counts(f) if rows is None else closed.field_counts(f)[rows]
        total = counts.sum(axis=1)
        shares = np.asarray(profile.features[name].shares, dtype=np.float64)
        reference = np.maximum(shares / shares.sum(), epsilon) if shares.sum() > 0 else None
        totals[:, j] = total
        if reference is None:
            continue
        current = np.maximum(counts / np.maximum(total, 1)[:, None], epsilon)
        values[:, j] = np.where(total > 0, ((current - reference) * np.log(current / reference)).sum(axis=1), 0.0)
    return names, values, totals


def chi2_p_values(reference_shares: npt.ArrayLike, n_reference: float, counts: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float64]:
    """``[k]`` p-values of :func:`detectors.significance.homogeneity_test` for each row of ``counts``
    where it takes the chi-square road (every expected count at least 5); 0 where it would draw
    Monte-Carlo tables (a floor: the screen then lets the detector decide), 1 where it has no test."""
    from scipy.special import chdtrc

    r = np.asarray(reference_shares, dtype=np.float64) * float(n_reference)
    c = counts.astype(np.float64)
    n = c.sum(axis=1)
    big_n = float(r.sum())
    total = r[None, :] + c
    used = total > 0
    df = used.sum(axis=1) - 1
    safe_total = np.where(used, total, 1.0)
    safe_n = np.maximum(n, 1.0)
    x2 = np.where(used, (n[:, None] * r[None, :] - big_n * c) ** 2 / safe_total, 0.0).sum(axis=1) / (big_n * safe_n)
    expected_min = np.where(used, total, np.inf).min(axis=1) * np.minimum(big_n, n) / (big_n + n)
    p = np.clip(chdtrc(np.maximum(df, 1), x2), 0.0, 1.0)
    p = np.where(expected_min >= MIN_EXPECTED, p, 0.0)
    out: npt.NDArray[np.float64] = np.where((n <= 0) | (big_n <= 0) | (df < 1), 1.0, p)
    return out


def psi_flags(closed: ClosedWindows, profile: ReferenceProfile, detector: PsiDetector) -> npt.NDArray[np.bool_]:
    flags = np.zeros(len(closed), dtype=np.bool_)
    # A feature counts at most the window's events: smaller windows are skipped by the detector.
    eligible = np.flatnonzero(closed.n_events >= detector.config.min_samples)
    if not eligible.size:
        return flags
    names, values, totals = psi_values(closed, profile, detector, eligible)
    hit = _at_least(values, detector.config.warn) & (totals >= detector.config.min_samples)
    setting = detector.config.significance
    if setting != "none" and hit.any():
        # The detector keeps a warn only when its q-value (Benjamini–Hochberg over the cohort
        # window's tested features) is within the level. Here every tested feature's p-value
        # is exact (chi-square) or a lower bound (0 where the detector would draw Monte-Carlo
        # tables); q-values only fall when p-values fall, so these q-values are at most the
        # detector's, and no cohort it would keep at warn is missed.
        rows = np.flatnonzero(hit.any(axis=1))
        tested = totals[rows] >= detector.config.min_samples
        p = np.full(tested.shape, np.inf)
        for j, name in enumerate(names):
            chosen = np.flatnonzero(tested[:, j])
            if chosen.size:
                feature = profile.features[name]
                counts = closed.field_counts(closed.layout.index(name))[eligible[rows[chosen]]]
                p[chosen, j] = chi2_p_values(feature.shares, feature.n, counts)
        hit[rows] &= bh_rows(p) <= setting.q * (1 + SLACK)
    flags[eligible] = hit.any(axis=1)
    return flags


def bh_rows(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Benjamini–Hochberg q-values of each row of ``p`` as one family (``inf``: not tested).

    >>> bh_rows(np.array([[0.01, 0.04, 0.03, 0.5], [0.2, np.inf, 0.01, np.inf]])).round(3).tolist()
    [[0.04, 0.053, 0.053, 0.5], [0.2, inf, 0.02, inf]]
    """
    order = np.argsort(p, axis=1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=1)
    m = np.isfinite(p).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        scaled = ranked * m / np.arange(1, p.shape[1] + 1)[None, :]
    scaled = np.where(np.isfinite(ranked), scaled, np.inf)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[:, ::-1], axis=1)[:, ::-1])
    adjusted = np.where(np.isfinite(ranked), adjusted, np.inf)
    q = np.empty_like(p)
    np.put_along_axis(q, order, adjusted, axis=1)
    return q


def quality_flags(
    closed: ClosedWindows, profile: ReferenceProfile, detector: QualityDetector,
) -> npt.NDArray[np.bool_]:
    config = detector.config
    layout = closed.layout
    k = len(closed)
    flagged = np.zeros(k, dtype=np.bool_)
    minimum = config.min_samples
    # Every rate's denominator is at most the window's events: smaller windows are skipped.
    eligible = np.flatnonzero(closed.n_events >= minimum)
    hits = np.zeros(eligible.size, dtype=np.bool_)
    n_events = closed.n_events[eligible]
    cells = closed.cells[:, eligible]

    def rate_check(check: str, numerator: npt.NDArray[np.integer[Any]], denominator: npt.NDArray[np.integer[Any]]) -> None:
        nonlocal hits
        thresholds = config.thresholds(check)  # type: ignore[arg-type]
        if thresholds is None:
            return
        rate = numerator / np.maximum(denominator, 1)
        hits |= _at_least(rate, thresholds.warn_level) & (denominator >= minimum)

    if eligible.size:
        position = {int(row): j for j, row in enumerate(eligible.tolist())}
        for name in detector.features(profile):
            f = layout.index(name)
            feature = profile.features[name]
            counts = closed.field_counts(f)[eligible]
            binned = counts.sum(axis=1)
            rate_check("null_rate", cells[NULLS, :, f], n_events)
            rate_check("missing_rate", cells[ABSENT, :, f], n_events)
            if isinstance(feature, CategoricalProfile):
                rate_check("unseen_category", counts[:, -1], binned)
                growth = config.cardinality_growth
                if growth is not None:
                    distinct = np.count_nonzero(counts[:, :-1], axis=1).astype(np.float64)
                    for i, extras in closed.extras.items():
                        if i in position:
                            distinct[position[i]] += len(extras.unseen.get(f, ()))
                    ratio = distinct / feature.n_categories
                    hits |= _at_least(ratio, growth.warn_level) & (binned >= minimum)
            else:
                wrong = cells[WRONG_TYPE, :, f]
                rate_check("type_mismatch", wrong, binned + wrong)
                rate_check("out_of_range", cells[OUT_OF_RANGE, :, f], binned)
        if config.thresholds("duplicate_event_id") is not None and closed.tracks_ids:
            rate_check("duplicate_event_id", closed.n_duplicate[eligible], closed.n_event_id[eligible])
        flagged[eligible] = hits
    limits = config.schema_change
    if limits is not None:
        if limits.warn_level <= 0:
            flagged[:] = True
        else:
            for i, now in closed.schemas().items():
                before = closed.schema_before[i]
                base = before if before is not None else now.__class__()
                changed = len(now.unknown - base.unknown) + len(now.vanished - base.vanished)
                if changed >= limits.warn_level - SLACK:
                    flagged[i] = True
    return flagged
