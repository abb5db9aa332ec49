"""Data quality of a window: null, missing, wrong-typed, out-of-range, unseen and duplicate values.

Every check is a rate in ``[0, 1]``: offending values over the values that could
offend, both counted by the window summary (:mod:`drift.summary`). The detector
reports one finding per feature and enabled check, named ``quality.<check>`` so
each check has its own fingerprint, ticket and metric label, and one finding per
window for duplicate event ids and for schema changes (``feature`` is None).
Two checks are not rates: ``schema_change`` counts fields that appeared or vanished
since the cohort's previous window, ``cardinality_growth`` is the ratio of distinct
categories in the window to those of the reference.

With a seasonal baseline (:class:`~detectors.seasonal_profile.SeasonalProfile`) each rate is
tested against its slot's rate with Fisher's exact test (:func:`slot_rate_p`) instead of the
reference's rate with a binomial test.

Most production incidents start as broken data rather than a shifted
distribution: a join that drops a column, a producer that sends ``"12"`` instead
of ``12``, a unit change that puts ages in months. These checks catch them
directly, with counts and examples, instead of as a PSI that nobody can read.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from detectors import significance
from detectors.seasonal_profile import SeasonalProfile, SlotRate
from detectors.significance import Draft, Significance, SignificanceSetting, rate_p
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from drift.summary import (
    MAX_EVENT_IDS,
    MAX_UNKNOWN_FIELDS,
    MAX_UNSEEN_DISTINCT,
    FeatureCounts,
    Schema,
    WindowSummary,
    schema_of,
)

CheckName = Literal[
    "null_rate", "missing_rate", "type_mismatch", "out_of_range", "unseen_category", "duplicate_event_id",
]

FEATURE_CHECKS: tuple[CheckName, ...] = (
    "null_rate", "missing_rate", "type_mismatch", "out_of_range", "unseen_category",
)
"""Checks measured per feature, in the order findings are reported (and of :func:`rate_counts`)."""

DEFAULT_THRESHOLDS: dict[CheckName, tuple[float, float]] = {
    "null_rate": (0.01, 0.05),
    "missing_rate": (0.01, 0.05),
    "type_mismatch": (0.001, 0.01),
    "out_of_range": (0.005, 0.01),
    "unseen_category": (0.01, 0.05),
    "duplicate_event_id": (0.001, 0.01),
}
"""(warn, alert) of each check when YAML does not say; see docs/detectors.md for why."""


class Thresholds(BaseModel):
    """``{warn, alert}`` of one check: rates in ``(0, 1]`` with ``warn <= alert``.

    ``warn: null`` means no warn level: the finding is ``ok`` or ``alert``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    warn: float | None = Field(default=None, gt=0, le=1)
    alert: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.warn is not None and self.warn > self.alert:
            raise ValueError(f"warn must be <= alert; got warn={self.warn}, alert={self.alert}")
        return self

    @property
    def warn_level(self) -> float:
        """The warn threshold as a number: ``alert`` itself when there is no warn level."""
        return self.alert if self.warn is None else self.warn


LimitName = Literal["schema_change", "cardinality_growth"]

DEFAULT_LIMITS: dict[LimitName, tuple[float | None, float]] = {
    "schema_change": (None, 1.0),
    "cardinality_growth": (1.5, 2.0),
}
"""(warn, alert) of the checks that are not rates: a count of changed fields, a ratio."""


class Limits(BaseModel):
    """``{warn, alert}`` of a check that is not a rate: non-negative, ``warn <= alert``.

    ``warn: null`` means no warn level.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    warn: float | None = Field(default=None, ge=0)
    alert: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        if self.warn is not None and self.warn > self.alert:
            raise ValueError(f"warn must be <= alert; got warn={self.warn}, alert={self.alert}")
        return self

    @property
    def warn_level(self) -> float:
        return self.alert if self.warn is None else self.warn


def _default_limits(check: LimitName) -> Limits:
    warn, alert = DEFAULT_LIMITS[check]
    return Limits(warn=warn, alert=alert)


def _default(check: CheckName) -> Thresholds:
    warn, alert = DEFAULT_THRESHOLDS[check]
    return Thresholds(warn=warn, alert=alert)


def _is_rate(value: object) -> bool:
    """A valid threshold, so a default may be moved to it (an invalid one is reported as given)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1


class QualityConfig(BaseModel):
    """``quality:`` in YAML.

    Every check is on by default with :data:`DEFAULT_THRESHOLDS`; ``check: null``
    turns it off. A mapping may give ``warn``, ``alert`` or both: an omitted
    ``alert`` is the default raised to at least ``warn``, an omitted ``warn`` the
    default lowered to at most ``alert``, so only an explicit ``warn > alert`` is
    an error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    features: Literal["*"] | list[str] = "*"
    null_rate: Thresholds | None = _default("null_rate")
    missing_rate: Thresholds | None = _default("missing_rate")
    type_mismatch: Thresholds | None = _default("type_mismatch")
    out_of_range: Thresholds | None = _default("out_of_range")
    unseen_category: Thresholds | None = _default("unseen_category")
    duplicate_event_id: Thresholds | None = _default("duplicate_event_id")
    schema_change: Limits | None = _default_limits("schema_change")
    cardinality_growth: Limits | None = _default_limits("cardinality_growth")
    min_samples: int = Field(default=100, ge=1)
    significance: SignificanceSetting = Significance()
    """Rates at warn/alert only when significantly above the reference's own rate (one-sided
    binomial test, Benjamini–Hochberg over the cohort window's rates); ``none``: by value alone."""

    @model_validator(mode="before")
    @classmethod
    def _fill_thresholds(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for check, (warn, alert) in DEFAULT_THRESHOLDS.items():
            given = filled.get(check)
            if not isinstance(given, dict):
                continue
            given = dict(given)
            if "alert" not in given:
                given["alert"] = max(alert, given["warn"]) if _is_rate(given.get("warn")) else alert
            if "warn" not in given:
                given["warn"] = min(warn, given["alert"]) if _is_rate(given["alert"]) else warn
            filled[check] = given
        for limit, (limit_warn, limit_alert) in DEFAULT_LIMITS.items():
            given = filled.get(limit)
            if not isinstance(given, dict) or "alert" in given:
                continue  # an omitted warn stays None (no warn level): there is no rate to lower it to
            given = dict(given)
            warn_given = given.get("warn")
            level = isinstance(warn_given, (int, float)) and not isinstance(warn_given, bool)
            given["alert"] = max(limit_alert, warn_given) if level else limit_alert  # type: ignore[type-var]
            filled[limit] = given
        return filled

    def thresholds(self, check: CheckName) -> Thresholds | None:
        """The thresholds of ``check``, or None when it is turned off."""
        value: Thresholds | None = getattr(self, check)
        return value

    @property
    def tracks_event_ids(self) -> bool:
        """Whether windows must remember event ids (the duplicate check is on)."""
        return self.duplicate_event_id is not None


def rate(numerator: int, denominator: int) -> float:
    """``numerator / denominator``, 0 when there is nothing to count.

    >>> rate(3, 12), rate(0, 0)
    (0.25, 0.0)
    """
    if not 0 <= numerator <= max(denominator, 0):
        raise ValueError(f"a rate needs 0 <= numerator <= denominator; got {numerator} / {denominator}")
    return numerator / denominator if denominator > 0 else 0.0


def rate_counts(counts: FeatureCounts, n_events: int) -> npt.NDArray[np.int64]:
    """``(numerator, denominator)`` of every check of :data:`FEATURE_CHECKS`, shape ``(5, 2)``.

    The one definition of the quality rates, for this detector and the seasonal slots
    that learn them (:mod:`drift.baselines`). ``unseen_category`` counts the last bin (a categorical feature's
    ``__unseen__``; meaningless, and never read, for a numeric one).

    >>> from drift.summary import FeatureCounts
    >>> c = FeatureCounts(np.array([3, 5, 2]), n_null=4, n_missing=1)
    >>> rate_counts(c, 20).tolist()
    [[4, 20], [1, 20], [0, 10], [0, 10], [2, 10]]
    """
    n_binned = int(counts.counts.sum())
    n_values = n_binned + len(counts.pending)
    return np.array([
        [counts.n_null, n_events],
        [counts.n_missing, n_events],
        [counts.n_wrong_type, n_values + counts.n_wrong_type],
        [counts.n_out_of_range, n_values],
        [int(counts.counts[-1]), n_binned],
    ], dtype=np.int64)




def slot_rate_p(k: int, n: int, k_slot: int, n_slot: int) -> float:
    """One-sided p-value that the window's rate ``k / n`` is above the slot's ``k_slot / n_slot``.

    Fisher's exact test of the 2 x 2 table (window, slot) x (offending, not): given the
    ``k + k_slot`` offending values among all ``n + n_slot``, the window's count is
    hypergeometric, and ``p = P(X >= k)``. The slot's rate is a sample too, so a thin
    slot cannot make a small difference significant.

    >>> round(slot_rate_p(10, 100, 100, 1000), 3), slot_rate_p(0, 100, 5, 1000)
    (0.554, 1.0)
    >>> slot_rate_p(30, 100, 100, 1000) < 1e-6
    True
    """
    if k <= 0 or n <= 0:
        return 1.0
    from scipy.stats import hypergeom

    return float(min(1.0, max(0.0, hypergeom.sf(k - 1, n + n_slot, k + k_slot, n))))


def _reference_rate(check: CheckName, feature: NumericProfile | CategoricalProfile, profile: ReferenceProfile) -> float:
    """The rate the training reference itself had, which a window's rate is tested against
    when no seasonal slot gives one.

    ``null_rate``: the reference rows without a value (``1 - n / n_rows``).
    ``unseen_category``: the reference's share of values outside the kept categories. The
    other checks: 0 (the reference had none, or the limit is the config's), so any
    offending value is significant and the threshold decides.
    """
    if check == "null_rate" and not profile.baselines and profile.n_rows > 0:
        return max(0.0, min(1.0, 1.0 - feature.n / profile.n_rows))
    if check == "unseen_category" and isinstance(feature, CategoricalProfile):
        return float(feature.shares[-1])
    return 0.0


def _feature_evidence_of(
    detector: QualityDetector, check: CheckName, counts: FeatureCounts, feature: Any,
) -> Callable[[], tuple[dict[str, Any], str]]:
    """One feature check's evidence and baseline, built when its finding is."""
    def evidence() -> tuple[dict[str, Any], str]:
        found, baseline, _ = detector._feature_evidence(check, counts, feature)
        return found, baseline
    return evidence


def _duplicate_evidence(summary: WindowSummary) -> Callable[[], tuple[dict[str, Any], str]]:
    """The duplicate check's evidence and baseline, built when its finding is."""
    def evidence() -> tuple[dict[str, Any], str]:
        window_evidence: dict[str, Any] = {
            "examples": list(summary.duplicate_examples),
            "event_ids_capped": summary.event_ids_capped,
            "max_event_ids": MAX_EVENT_IDS,
        }
        if summary.event_ids is not None and summary.event_ids_capped:
            window_evidence["note"] = (
                f"more than {MAX_EVENT_IDS} distinct ids: later ids were not remembered, "
                "so the count is a lower bound"
            )
        return window_evidence, "config"
    return evidence


def _built(finding: Finding) -> Callable[[], Finding]:
    """A draft's builder for a finding already built (it carries no p-value)."""
    return lambda: finding


_APPLIES: dict[CheckName, tuple[type, ...]] = {
    "null_rate": (NumericProfile, CategoricalProfile),
    "missing_rate": (NumericProfile, CategoricalProfile),
    # Any scalar is a valid category (numbers and booleans count as text), and the
    # decoder already refuses lists and objects: a categorical value cannot be mistyped.
    "type_mismatch": (NumericProfile,),
    "out_of_range": (NumericProfile,),
    "unseen_category": (CategoricalProfile,),
}


class QualityDetector:
    r"""Data-quality rates of each configured feature of a window.

    Checks (``n`` = events in the window; ``k`` = offending count):

    =====================  ==========================================  ===============================
    check                  numerator ``k``                             denominator
    =====================  ==========================================  ===============================
    ``null_rate``          explicit ``null`` values                     events ``n``
    ``missing_rate``       events without the field                     events ``n``
    ``type_mismatch``      non-numbers (text, booleans) for a numeric   present, non-null values
    ``out_of_range``       numbers outside ``[low, high]``              numbers
    ``unseen_category``    values in the ``__unseen__`` bin             categorical values
    ``duplicate_event_id`` events whose id was seen before in window    events with an ``event_id``
    =====================  ==========================================  ===============================

    Two more checks are not rates: ``schema_change`` (one per window) counts feature
    names that appeared and reference features missing from every event, compared with
    the cohort's previous window (``WindowSummary.schema_before``) or else the
    reference; ``cardinality_growth`` (categorical features) is distinct categories in
    the window over distinct categories in the reference. See docs/detectors.md.

    The value is ``k / denominator`` in ``[0, 1]`` (0 for an empty denominator);
    severity is ``alert`` at ``value >= alert``, ``warn`` at ``value >= warn``.
    Below ``min_samples`` in the denominator the finding is ``ok`` with
    ``skipped`` saying why, and its value is still the exact rate.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from drift.reference import numeric_profile
    >>> from drift.summary import empty_summary
    >>> profile = ReferenceProfile("m", {"age": numeric_profile([18.0, 90.0], 2)}, 2, "t",
    ...                            datetime(2026, 1, 1, tzinfo=timezone.utc))
    >>> summary = empty_summary(profile)
    >>> summary.n_events, summary.features["age"].n_null = 200, 20
    >>> summary.features["age"].counts[:] = [90, 90]
    >>> detector = QualityDetector(QualityConfig(features="*"))
    >>> window = Window(datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, 1, tzinfo=timezone.utc))
    >>> found = detector.score(summary, profile, Cohort("m"), window)
    >>> [(f.detector, f.value, f.severity.value) for f in found][:2]
    [('quality.null_rate', 0.1, 'alert'), ('quality.missing_rate', 0.0, 'ok')]
    """

    name = "quality"

    def __init__(self, config: QualityConfig) -> None:
        self.config = config

    def features(self, profile: ReferenceProfile) -> list[str]:
        if self.config.features == "*":
            return list(profile.features)
        return [f for f in self.config.features if f in profile.features]

    def score(
        self, summary: WindowSummary, profile: ReferenceProfile, cohort: Cohort, window: Window,
        problems_only: bool = False,
    ) -> list[Finding]:
        """The findings of every check; ``problems_only``: only those at warn or alert (the
        others are judged, for the significance family, but not built)."""
        # With a seasonal baseline the expected rates are the slot's; the training
        # reference's rates are read from the reference behind the slot's profile.
        seasonal = profile if isinstance(profile, SeasonalProfile) else None
        if problems_only and seasonal is None:
            return self._problems(summary, profile, cohort, window)
        drafts: list[Draft] = []
        training = seasonal.reference if seasonal is not None and seasonal.reference is not None else profile
        for name in self.features(profile):
            feature = profile.features[name]
            counts = summary.features[name]
            table = rate_counts(counts, summary.n_events)
            for check in FEATURE_CHECKS:
                thresholds = self.config.thresholds(check)
                if thresholds is None or not isinstance(feature, _APPLIES[check]):
                    continue
                k, n = (int(v) for v in table[FEATURE_CHECKS.index(check)])
                skipped = "no bounds were given to the window summary" if (
                    check == "out_of_range" and counts.bounds is None) else None

                extra = _feature_evidence_of(self, check, counts, feature)
                slot = seasonal.rates.get((name, check)) if seasonal is not None else None
                if slot is not None and slot.rate is not None:
                    drafts.append(self._draft(
                        check, thresholds, cohort, window, name, (k, n), slot.n, extra, skipped, slot.rate,
                        slot=slot, baseline=slot.description,
                    ))
                    continue
                drafts.append(self._draft(
                    check, thresholds, cohort, window, name, (k, n), feature.n, extra, skipped,
                    _reference_rate(check, training.features.get(name, feature), training),
                ))
            growth = self.config.cardinality_growth
            if growth is not None and isinstance(feature, CategoricalProfile):
                card = self._cardinality(growth, cohort, window, name, counts, feature)
                drafts.append(Draft(card.severity, None, _built(card)))
        thresholds = self.config.thresholds("duplicate_event_id")
        if thresholds is not None:
            skipped = None
            if summary.event_ids is None:
                skipped = "event ids were not tracked for this window"

            drafts.append(self._draft(
                "duplicate_event_id", thresholds, cohort, window, None,
                (summary.n_duplicate_event_id, summary.n_event_id), profile.n_rows, _duplicate_evidence(summary),
                skipped,
            ))
        if self.config.schema_change is not None:
            schema = self._schema(self.config.schema_change, summary, profile, cohort, window)
            drafts.append(Draft(schema.severity, None, _built(schema)))
        return significance.settle(drafts, self.config.significance, problems_only)

    def _problems(
        self, summary: WindowSummary, profile: ReferenceProfile, cohort: Cohort, window: Window,
    ) -> list[Finding]:
        """:meth:`score` with ``problems_only`` against the training reference: every rate judged
        in a few array operations, then only the findings at warn or alert built, each by the
        same :meth:`_draft` as :meth:`score` (so they are those findings, bit for bit)."""
        rates: list[tuple[Any, ...]] = []  # the arguments of _draft, one per rate check
        order: list[int | Finding] = []  # a rate check's index, or a finding without a p-value
        for name in self.features(profile):
            feature = profile.features[name]
            counts = summary.features[name]
            table = rate_counts(counts, summary.n_events).tolist()
            for position, check in enumerate(FEATURE_CHECKS):
                thresholds = self.config.thresholds(check)
                if thresholds is None or not isinstance(feature, _APPLIES[check]):
                    continue
                skipped = "no bounds were given to the window summary" if (
                    check == "out_of_range" and counts.bounds is None) else None

                extra = _feature_evidence_of(self, check, counts, feature)
                order.append(len(rates))
                rates.append((check, thresholds, cohort, window, name, tuple(table[position]), feature.n, extra,
                              skipped, _reference_rate(check, feature, profile)))
            growth = self.config.cardinality_growth
            if growth is not None and isinstance(feature, CategoricalProfile):
                order.append(self._cardinality(growth, cohort, window, name, counts, feature))
        thresholds = self.config.thresholds("duplicate_event_id")
        if thresholds is not None:
            order.append(len(rates))
            rates.append(("duplicate_event_id", thresholds, cohort, window, None,
                          (summary.n_duplicate_event_id, summary.n_event_id), profile.n_rows,
                          _duplicate_evidence(summary),
                          "event ids were not tracked for this window" if summary.event_ids is None else None, 0.0))
        if self.config.schema_change is not None:
            order.append(self._schema(self.config.schema_change, summary, profile, cohort, window))
        severities, p_values = self._judge_rates(rates)
        drafts = []
        for entry in order:
            if isinstance(entry, Finding):
                drafts.append(Draft(entry.severity, None, _built(entry)))
            else:
                drafts.append(Draft(severities[entry], p_values[entry], self._later(rates[entry])))
        return significance.settle(drafts, self.config.significance, problems_only=True)

    def _later(self, arguments: tuple[Any, ...]) -> Callable[[], Finding]:
        """The builder of one rate check's finding: :meth:`_draft`'s, run only when it is built."""
        return lambda: self._draft(*arguments).build()

    def _judge_rates(self, rates: list[tuple[Any, ...]]) -> tuple[list[Severity], list[float | None]]:
        """Each rate check's severity and binomial p-value, as :meth:`_draft` computes them."""
        if not rates:
            return [], []
        numbers = np.asarray([r[5] for r in rates], dtype=np.int64).reshape(-1, 2)
        k, n = numbers[:, 0], numbers[:, 1]
        if ((k < 0) | (k > np.maximum(n, 0))).any():
            bad = int(np.flatnonzero((k < 0) | (k > np.maximum(n, 0)))[0])
            rate(int(k[bad]), int(n[bad]))  # raises, naming the counts
        value = np.where(n > 0, k / np.maximum(n, 1), 0.0)
        judged = np.asarray([r[8] is None for r in rates]) & (n >= self.config.min_samples)
        warn = np.asarray([r[1].warn_level for r in rates])
        alert = np.asarray([r[1].alert for r in rates])
        p0 = np.asarray([min(float(r[9]), 1.0) for r in rates])
        from scipy.special import bdtrc

        with np.errstate(all="ignore"):
            tail = np.clip(bdtrc(np.maximum(k - 1, 0), np.maximum(n, 1), p0), 0.0, 1.0)
        p = np.where((k <= 0) | (n <= 0), 1.0, np.where(p0 <= 0, 0.0, tail))
        severities = [
            Severity.OK if not ok else (Severity.ALERT if v >= a else Severity.WARN if v >= w else Severity.OK)
            for ok, v, w, a in zip(judged.tolist(), value.tolist(), warn.tolist(), alert.tolist())
        ]
        return severities, [pv if ok else None for ok, pv in zip(judged.tolist(), p.tolist())]

    def _cardinality(
        self, limits: Limits, cohort: Cohort, window: Window, name: str, counts: FeatureCounts,
        feature: CategoricalProfile,
    ) -> Finding:
        """Distinct categories in the window over distinct categories in the reference."""
        n_values = int(counts.counts.sum())
        n_known = int(np.count_nonzero(counts.counts[:-1]))
        n_distinct = n_known + len(counts.unseen)
        value = n_distinct / feature.n_categories
        skipped = None
        if n_values < self.config.min_samples:
            skipped = f"{n_values} values to check in the window; min_samples is {self.config.min_samples}"
        evidence: dict[str, Any] = {
            "check": "cardinality_growth", "n_distinct": n_distinct, "n_distinct_reference": feature.n_categories,
            "n_reference_categories_seen": n_known, "n_unseen_distinct": len(counts.unseen),
            "unseen_capped": counts.unseen_capped, "examples": sorted(counts.unseen)[:5],
        }
        if counts.unseen_capped:
            evidence["note"] = (
                f"more than {MAX_UNSEEN_DISTINCT} distinct unseen values: the count is a lower bound"
            )
        severity = Severity.OK if skipped is not None else Severity.of(value, limits.warn_level, limits.alert)
        return Finding(
            detector=f"{self.name}.cardinality_growth", cohort=cohort, window=window, feature=name,
            value=value, severity=severity, warn=limits.warn_level, alert=limits.alert,
            n_current=n_values, n_reference=feature.n, baseline="reference", evidence=evidence, skipped=skipped,
        )

    def _schema(
        self, limits: Limits, summary: WindowSummary, profile: ReferenceProfile, cohort: Cohort, window: Window,
    ) -> Finding:
        """Fields that appeared or vanished since the cohort's previous window (or the reference)."""
        before = summary.schema_before
        compared = "previous_window" if before is not None else "reference"
        before = before if before is not None else Schema()
        current = schema_of(summary)
        unknown, vanished = current.unknown, current.vanished
        new_fields = sorted(unknown - before.unknown)
        new_vanished = sorted(vanished - before.vanished)
        value = float(len(new_fields) + len(new_vanished))
        evidence: dict[str, Any] = {
            "check": "schema_change", "new_fields": new_fields, "vanished_fields": new_vanished,
            "unknown_fields": sorted(unknown), "missing_fields": sorted(vanished),
            "returned_fields": sorted(before.vanished - vanished), "gone_unknown_fields": sorted(before.unknown - unknown),
            "unknown_fields_capped": summary.unknown_fields_capped, "max_unknown_fields": MAX_UNKNOWN_FIELDS,
        }
        return Finding(
            detector=f"{self.name}.schema_change", cohort=cohort, window=window, feature=None, value=value,
            severity=Severity.of(value, limits.warn_level, limits.alert), warn=limits.warn_level,
            alert=limits.alert, n_current=summary.n_events, n_reference=profile.n_rows, baseline=compared,
            evidence=evidence,
        )

    @staticmethod
    def _feature_evidence(
        check: CheckName, counts: FeatureCounts, feature: NumericProfile | CategoricalProfile,
    ) -> tuple[dict[str, Any], str, str | None]:
        """(evidence beyond the counts, what the window was compared with, why skipped)."""
        if check == "type_mismatch":
            return {"examples": list(counts.examples)}, "config", None
        if check == "out_of_range":
            bounds = counts.bounds
            if bounds is None:
                return {"examples": []}, "config", "no bounds were given to the window summary"
            evidence: dict[str, Any] = {
                "examples": list(counts.out_of_range_examples),
                # JSON has no infinity: an open side is null.
                "bounds": {
                    "low": bounds.low if math.isfinite(bounds.low) else None,
                    "high": bounds.high if math.isfinite(bounds.high) else None,
                    "source": bounds.source,
                },
            }
            return evidence, bounds.source, None
        if check == "unseen_category":
            return {
                "examples": list(counts.examples),
                "reference_unseen_share": round(float(feature.shares[-1]), 6),
            }, "reference", None
        return {}, "config", None

    def _draft(
        self, check: CheckName, thresholds: Thresholds, cohort: Cohort, window: Window, feature: str | None,
        numbers: tuple[int, int], n_reference: int, extra: Callable[[], tuple[dict[str, Any], str]],
        skipped: str | None, reference_rate: float = 0.0, *, slot: SlotRate | None = None,
        baseline: str | None = None,
    ) -> Draft:
        """The finding of one rate check: judged now, its evidence built only when it is built.

        ``extra`` gives the evidence beyond the counts and what the window was compared with;
        ``baseline`` (a seasonal slot's description) overrides the latter."""
        numerator, denominator = numbers
        value = rate(numerator, denominator)
        if skipped is None and denominator < self.config.min_samples:
            skipped = f"{denominator} values to check in the window; min_samples is {self.config.min_samples}"
        severity = Severity.OK if skipped is not None else Severity.of(value, thresholds.warn_level, thresholds.alert)
        p_value = None
        if skipped is None and slot is not None:
            # The slot's rate is a sample of slot.n values: a two-sample test, not a binomial one.
            p_value = slot_rate_p(numerator, denominator, slot.k, slot.n)
        elif skipped is None:
            p_value = rate_p(numerator, denominator, reference_rate)

        def build() -> Finding:
            more, compared = extra()
            evidence = {"check": check, "numerator": numerator, "denominator": denominator, **more}
            if skipped is None and slot is not None:
                evidence.update({"p_method": "fisher", "reference_rate": round(reference_rate, 6),
                                 "n_slot": slot.n, "k_slot": slot.k})
            elif skipped is None:
                evidence.update({"p_method": "binomial", "reference_rate": round(reference_rate, 6)})
            return Finding(
                detector=f"{self.name}.{check}", cohort=cohort, window=window, feature=feature,
                value=value, severity=severity, warn=thresholds.warn_level, alert=thresholds.alert,
                n_current=denominator, n_reference=n_reference, baseline=baseline if baseline is not None else compared,
                evidence=evidence, skipped=skipped, p_value=p_value,
            )

        return Draft(severity, p_value, build)
