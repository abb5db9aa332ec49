"""Training–serving skew: distribution skew against the reference, value skew against the feature store.

*Distribution skew* compares each feature's serving distribution in a cohort window with
its training distribution, over the reference profile's fixed bins (numeric: reference
quantile bins; categorical: reference categories plus ``__unseen__``):

- Jensen–Shannon divergence, **base 2**, so it lies in ``[0, 1]``; it is the square of
  ``scipy.spatial.distance.jensenshannon(p, q, base=2)``. JS needs no epsilon: a bin
  empty on one side contributes a finite amount, unlike PSI or KL.
- L-infinity distance ``max_i |p_i - q_i|`` (in ``[0, 1]``), for categorical features only;
  with ``method: linf`` numeric features are still measured with JS, because the largest
  share difference between quantile bins depends mostly on how many bins there are.

*Value skew* compares, per example, the value a model was served with the value the
offline feature store holds for the same entity at that time. The point-in-time join is
:mod:`drift.join`; this module scores its per-window counts (:class:`drift.join.ValueSkewSummary`).

Skew findings carry ``countermeasures`` in their evidence: what to check first when the
serving path and the training path disagree.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from detectors import significance
from detectors.significance import Significance, SignificanceSetting, homogeneity_test
from drift.duration import Duration, format_duration
from drift.findings import Cohort, Finding, Severity, Window
from drift.join import FeatureValueCounts, ValueSkewSummary
from drift.reference import CategoricalProfile, FeatureProfile, ReferenceProfile
from drift.summary import WindowSummary

Method = Literal["jensen_shannon", "linf"]

DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "jensen_shannon": (0.05, 0.1),
    "linf": (0.1, 0.2),
}
"""(warn, alert) of each statistic when YAML does not say; see docs/detectors.md."""

MAX_TOP = 3
"""Bins or categories named in the evidence as contributing most."""

COUNTERMEASURES = {
    "transform": "check that serving and training compute the feature with the same code "
                 "(one feature definition, one transformation, one version)",
    "units": "check units and scaling of the served value against the offline store "
             "(cents vs dollars, ms vs s, percent vs fraction)",
    "freshness": "check feature freshness: materialization lag of the offline and online stores "
                 "against max_age, and the feature events' ts",
    "backfill": "backfill the offline store for the missing entities and time range",
    "training_data": "check that the training (reference) data covers this cohort and is recent",
}
"""Skew-specific advice, keyed so tests and tickets can refer to one."""



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SkewThresholds(_Strict):
    """``{warn, alert}`` of one feature; an omitted one takes the detector's."""

    warn: float | None = Field(default=None, ge=0, le=1)
    alert: float | None = Field(default=None, ge=0, le=1)


class Tolerance(_Strict):
    """When two numbers count as the same value: ``|served - offline| <= abs + rel * |offline|``."""

    abs: float = Field(default=1e-9, ge=0)
    rel: float = Field(default=1e-6, ge=0)


class ValuesConfig(_Strict):
    """``values:`` of ``skew:``: the per-example join with the offline feature store."""

    feature_set: str = Field(min_length=1)
    """The ``feature_set`` of the feature events that hold this model's offline values."""
    key: Literal["entity_id"] = "entity_id"
    """The inference event field naming the entity (the feature events' ``entity_id``)."""
    features: Literal["*"] | list[str] = "*"
    """Features compared; ``*``: every model feature that the offline values carry."""
    max_age: Duration = timedelta(hours=1)
    """An offline value older than this at the inference ``ts`` does not count (stale)."""
    grace: Duration = timedelta(minutes=1)
    """How long an inference event without an offline value waits for one to arrive."""
    tolerance: Tolerance = Tolerance()
    warn: float | None = Field(default=0.01, ge=0, le=1)
    alert: float = Field(default=0.05, ge=0, le=1)
    """Thresholds on the mismatch rate (mismatches over compared pairs)."""
    min_samples: int = Field(default=30, ge=1)
    max_entities: int = Field(default=100_000, ge=1)
    """Entities whose offline values the join keeps, per feature set; least recently used
    ones are evicted past it (``drift_join_evictions_total{reason="cap"}``)."""

    @model_validator(mode="after")
    def _ordered(self) -> ValuesConfig:
        if self.warn is not None and self.warn > self.alert:
            raise ValueError(f"warn must be <= alert; got warn={self.warn}, alert={self.alert}")
        if self.max_age <= timedelta(0):
            raise ValueError(f"max_age must be a positive duration; got {format_duration(self.max_age)!r}")
        return self


class SkewConfig(_Strict):
    """``skew:`` in YAML.

    ``method`` picks the distribution statistic (``null`` turns distribution skew off and
    keeps only ``values``); ``warn``/``alert`` default by method (:data:`DEFAULT_THRESHOLDS`),
    ``thresholds`` overrides them per feature.
    """

    method: Method | None = "jensen_shannon"
    features: Literal["*"] | list[str] = "*"
    bins: int = Field(default=10, ge=2, le=1000)
    warn: float | None = Field(default=None, ge=0, le=1)
    alert: float | None = Field(default=None, ge=0, le=1)
    thresholds: dict[str, SkewThresholds] = Field(default_factory=dict)
    min_samples: int = Field(default=100, ge=1)
    significance: SignificanceSetting = Significance()
    """Distribution skew at warn/alert only when significant (:mod:`detectors.significance`); ``none``: by value."""
    values: ValuesConfig | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SkewConfig:
        pairs = [("", self.warn, self.alert)] + [(f"thresholds.{n}: ", t.warn, t.alert) for n, t in self.thresholds.items()]
        for where, warn, alert in pairs:
            if warn is not None and alert is not None and warn > alert:
                raise ValueError(f"{where}warn must be <= alert; got warn={warn}, alert={alert}")
        return self

    def levels(self, feature: str | None, statistic: Method) -> tuple[float, float]:
        """(warn, alert) of ``statistic`` for ``feature``: per feature, else the detector's, else defaults.

        The detector-level ``warn``/``alert`` are in the unit of ``method``; a numeric feature
        measured with JS under ``method: linf`` takes JS defaults unless its own thresholds say.
        """
        warn, alert = DEFAULT_THRESHOLDS[statistic]
        if statistic == (self.method or "jensen_shannon"):
            warn, alert = _resolve(warn, alert, self.warn, self.alert)
        own = self.thresholds.get(feature or "")
        if own is not None:
            warn, alert = _resolve(warn, alert, own.warn, own.alert)
        return warn, alert


def _resolve(warn: float, alert: float, given_warn: float | None, given_alert: float | None) -> tuple[float, float]:
    """Given levels over defaults: an omitted ``warn`` is lowered to at most ``alert``, an
    omitted ``alert`` raised to at least ``warn``.

    >>> _resolve(0.05, 0.1, None, 0.02), _resolve(0.05, 0.1, 0.3, None)
    ((0.02, 0.02), (0.3, 0.3))
    """
    if given_warn is not None and given_alert is not None:
        return given_warn, given_alert
    if given_alert is not None:
        return min(warn, given_alert), given_alert
    if given_warn is not None:
        return given_warn, max(alert, given_warn)
    return warn, alert

# ----------------------------------------------------------------------------- statistics


def _shares(counts: npt.ArrayLike, name: str) -> tuple[npt.NDArray[np.float64], float]:
    array = np.asarray(counts, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {array.shape}")
    if np.any(array < 0) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite and non-negative")
    total = float(array.sum())
    return (array / total if total > 0 else array), total


def js_terms(reference: npt.ArrayLike, current: npt.ArrayLike) -> npt.NDArray[np.float64]:
    r"""Per-bin contributions to :func:`jensen_shannon` (each ``>= 0``; they sum to it).

    .. math:: t_i = \tfrac12 p_i \log_2 \frac{p_i}{m_i} + \tfrac12 q_i \log_2 \frac{q_i}{m_i},
              \qquad m_i = \tfrac12 (p_i + q_i),\quad 0 \log 0 = 0

    Each term is ``>= 0`` by the log-sum inequality, so a bin's term says how much it
    contributes. Zeros when either side has no counts.
    """
    p, p_total = _shares(reference, "reference")
    q, q_total = _shares(current, "current")
    if p.shape != q.shape:
        raise ValueError(f"reference and current must have one length; got {p.shape} and {q.shape}")
    if p_total <= 0 or q_total <= 0:
        return np.zeros(p.shape, dtype=np.float64)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0) / np.where(m > 0, m, 1.0)), 0.0)
        right = np.where(q > 0, q * np.log2(np.where(q > 0, q, 1.0) / np.where(m > 0, m, 1.0)), 0.0)
    terms: npt.NDArray[np.float64] = np.maximum((left + right) / 2, 0.0)  # rounding can give -1e-17
    return terms


def jensen_shannon(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    r"""Jensen–Shannon divergence (base 2) between two distributions over the same bins.

    .. math::

        \mathrm{JS}(P, Q) = \tfrac12 \mathrm{KL}(P \,\|\, M) + \tfrac12 \mathrm{KL}(Q \,\|\, M),
        \qquad M = \tfrac12 (P + Q),\quad \mathrm{KL}(P\|M) = \sum_i p_i \log_2 \frac{p_i}{m_i}

    Parameters
    ----------
    reference, current:
        Counts or shares per bin, 1-D, same length, finite and non-negative; each is
        normalised to sum 1. Empty bins need no epsilon: ``m_i > 0`` wherever
        ``p_i > 0`` or ``q_i > 0``, and ``0 log 0 = 0``.

    Returns
    -------
    float
        In ``[0, 1]`` (base 2; ``ln 2`` would be the bound in nats): 0 for identical
        distributions, 1 for disjoint supports. 0 when either side is empty. Equals
        ``scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2``.

    Examples
    --------
    >>> jensen_shannon([50, 50], [50, 50])
    0.0
    >>> jensen_shannon([1, 0], [0, 1])
    1.0
    >>> round(jensen_shannon([50, 50], [80, 20]), 4)
    0.0731
    """
    return float(min(1.0, float(js_terms(reference, current).sum())))


def linf_terms(reference: npt.ArrayLike, current: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``|p_i - q_i|`` per bin (shares); zeros when either side is empty."""
    p, p_total = _shares(reference, "reference")
    q, q_total = _shares(current, "current")
    if p.shape != q.shape:
        raise ValueError(f"reference and current must have one length; got {p.shape} and {q.shape}")
    if p_total <= 0 or q_total <= 0:
        return np.zeros(p.shape, dtype=np.float64)
    terms: npt.NDArray[np.float64] = np.abs(p - q)
    return terms


def linf(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    r"""L-infinity distance between two category distributions: :math:`\max_i |p_i - q_i|`.

    In ``[0, 1]``; 0 for identical shares, 0 when either side is empty.

    >>> linf([50, 30, 20], [30, 30, 40])
    0.2
    """
    terms = linf_terms(reference, current)
    return round(float(terms.max()), 15) if terms.size else 0.0


# ----------------------------------------------------------------------------- the detector


class SkewDetector:
    """Distribution skew of each configured feature, and value skew from the offline join.

    Distribution skew (:meth:`score`) gives one finding per feature, named
    ``skew.jensen_shannon`` or ``skew.linf`` after its statistic; severity is ``alert`` at
    ``value >= alert``, ``warn`` at ``value >= warn``; below ``min_samples`` values the
    finding is ``ok`` with ``skipped`` set. Value skew (:meth:`score_values`) gives one
    ``skew.value`` finding per compared feature whose value is the mismatch rate.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from drift.reference import categorical_profile
    >>> from drift.summary import empty_summary
    >>> profile = ReferenceProfile("m", {"country": categorical_profile(["DE"] * 60 + ["FR"] * 40)},
    ...                            100, "t", datetime(2026, 1, 1, tzinfo=timezone.utc))
    >>> summary = empty_summary(profile)
    >>> summary.features["country"].counts[:] = [10, 80, 10]
    >>> window = Window(datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, 1, tzinfo=timezone.utc))
    >>> found = SkewDetector(SkewConfig(method="linf")).score(summary, profile, Cohort("m"), window)
    >>> [(f.detector, f.value, f.severity.value, f.evidence["top_bins"][0]["bin"]) for f in found]
    [('skew.linf', 0.5, 'alert', 'DE')]
    """

    name = "skew"

    def __init__(self, config: SkewConfig) -> None:
        self.config = config

    def features(self, profile: ReferenceProfile) -> list[str]:
        if self.config.features == "*":
            return list(profile.features)
        return [f for f in self.config.features if f in profile.features]

    def statistic(self, feature: FeatureProfile) -> Method:
        """The statistic a feature is measured with: L∞ only for categorical features."""
        if self.config.method == "linf" and isinstance(feature, CategoricalProfile):
            return "linf"
        return "jensen_shannon"

    def score(
        self, summary: WindowSummary, profile: ReferenceProfile, cohort: Cohort, window: Window
    ) -> list[Finding]:
        if self.config.method is None:
            return []
        findings = []
        for name in self.features(profile):
            feature = profile.features[name]
            counts = summary.features[name].counts
            reference = np.asarray(feature.shares, dtype=np.float64)
            statistic = self.statistic(feature)
            warn, alert = self.config.levels(name, statistic)
            n_current = int(counts.sum())
            terms = js_terms(reference, counts) if statistic == "jensen_shannon" else linf_terms(reference, counts)
            skipped = None
            p_value: float | None = None
            tested: dict[str, Any] = {}
            if n_current < self.config.min_samples:
                value, severity = 0.0, Severity.OK
                skipped = f"{n_current} values in the window; min_samples is {self.config.min_samples}"
            else:
                value = jensen_shannon(reference, counts) if statistic == "jensen_shannon" else linf(reference, counts)
                severity = Severity.of(value, warn, alert)
                p_value, tested["p_method"], _ = homogeneity_test(reference, feature.n, counts)
            findings.append(Finding(
                detector=f"{self.name}.{statistic}", cohort=cohort, window=window, feature=name,
                value=value, severity=severity, warn=warn, alert=alert, n_current=n_current,
                n_reference=feature.n, baseline="reference",
                evidence={**_distribution_evidence(feature, reference, counts, terms, statistic, severity), **tested},
                skipped=skipped, p_value=p_value,
            ))
        return significance.apply(findings, self.config.significance)

    def value_features(self, served: list[str]) -> list[str]:
        """The features value skew compares, among the model's ``served`` ones."""
        values = self.config.values
        if values is None:
            return []
        if values.features == "*":
            return list(served)
        return [f for f in values.features if f in served]

    def score_values(self, summary: ValueSkewSummary, cohort: Cohort, window: Window) -> list[Finding]:
        """One ``skew.value`` finding per feature of a window's join outcomes."""
        values = self.config.values
        if values is None:
            return []
        findings = []
        for name, counts in summary.features.items():
            n_compared = counts.n_match + counts.n_mismatch
            value = counts.n_mismatch / n_compared if n_compared else 0.0
            warn = values.alert if values.warn is None else values.warn
            skipped = None
            if n_compared < values.min_samples:
                severity = Severity.OK
                skipped = f"{n_compared} served values had an offline value; min_samples is {values.min_samples}"
            else:
                severity = Severity.of(value, warn, values.alert)
            findings.append(Finding(
                detector=f"{self.name}.value", cohort=cohort, window=window, feature=name, value=value,
                severity=severity, warn=warn, alert=values.alert, n_current=counts.n_lookups,
                n_reference=n_compared, baseline=f"offline:{values.feature_set}",
                evidence=_value_evidence(counts, values, severity), skipped=skipped,
            ))
        return findings


def _distribution_evidence(
    feature: FeatureProfile, reference: npt.NDArray[np.float64], counts: npt.NDArray[np.int64],
    terms: npt.NDArray[np.float64], statistic: Method, severity: Severity,
) -> dict[str, Any]:
    labels = feature.bin_labels()
    total = counts.sum()
    current = counts / total if total > 0 else np.zeros_like(reference)
    top = [int(i) for i in np.argsort(-terms, kind="stable")[:MAX_TOP] if terms[i] > 0]
    evidence: dict[str, Any] = {
        "method": statistic,
        "log_base": 2 if statistic == "jensen_shannon" else None,
        "bins": labels,
        "reference_share": [round(float(s), 6) for s in reference],
        "current_share": [round(float(s), 6) for s in current],
        # JS: the bin's term of the sum; L∞: the bin's |share difference| (the first is the value).
        "top_bins": [
            {"bin": labels[i], "reference_share": round(float(reference[i]), 6),
             "current_share": round(float(current[i]), 6), "contribution": round(float(terms[i]), 6)}
            for i in top
        ],
    }
    if severity is not Severity.OK:
        evidence["countermeasures"] = [
            COUNTERMEASURES["transform"], COUNTERMEASURES["units"], COUNTERMEASURES["training_data"],
        ]
    return evidence


_UNIT_FACTORS = (
    (100.0, "served ≈ 100 × offline: cents vs dollars, or percent vs fraction?"),
    (0.01, "served ≈ offline / 100: dollars vs cents, or fraction vs percent?"),
    (1000.0, "served ≈ 1000 × offline: ms vs s, or g vs kg?"),
    (0.001, "served ≈ offline / 1000: s vs ms, or kg vs g?"),
    (60.0, "served ≈ 60 × offline: minutes vs hours, or seconds vs minutes?"),
    (1 / 60.0, "served ≈ offline / 60: hours vs minutes, or minutes vs seconds?"),
    (10.0, "served ≈ 10 × offline: a decimal shift?"),
    (0.1, "served ≈ offline / 10: a decimal shift?"),
)


def unit_suspect(ratio: float | None, tolerance: float = 0.05) -> str | None:
    """Names a unit bug when the typical served/offline ratio is near a common conversion factor.

    >>> unit_suspect(99.2)
    'served ≈ 100 × offline: cents vs dollars, or percent vs fraction?'
    >>> unit_suspect(1.0) is None, unit_suspect(None) is None
    (True, True)
    """
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return None
    for factor, text in _UNIT_FACTORS:
        if abs(math.log(ratio / factor)) <= math.log1p(tolerance):
            return text
    return None


def _value_evidence(counts: FeatureValueCounts, values: ValuesConfig, severity: Severity) -> dict[str, Any]:
    n = counts.n_lookups

    def share(k: int) -> float:
        return round(k / n, 6) if n else 0.0

    evidence: dict[str, Any] = {
        "feature_set": values.feature_set,
        "n_lookups": n, "n_match": counts.n_match, "n_mismatch": counts.n_mismatch,
        "n_missing_offline": counts.n_missing, "n_stale_offline": counts.n_stale,
        "match_rate": share(counts.n_match), "mismatch_rate": share(counts.n_mismatch),
        "missing_offline_rate": share(counts.n_missing),
        "tolerance": {"abs": values.tolerance.abs, "rel": values.tolerance.rel},
        "max_age": format_duration(values.max_age),
        "examples": [dict(example) for example in counts.examples],
    }
    suspect = None
    if counts.n_numeric:
        evidence["mean_difference"] = counts.sum_difference / counts.n_numeric
    if counts.n_ratio:
        evidence["mean_ratio"] = counts.sum_ratio / counts.n_ratio
    if counts.n_log_ratio:
        typical = math.exp(counts.sum_log_ratio / counts.n_log_ratio)
        evidence["geometric_mean_ratio"] = typical
        if counts.n_mismatch:
            suspect = unit_suspect(typical)
    if suspect is not None:
        evidence["unit_suspect"] = suspect
    if severity is not Severity.OK or counts.n_missing:
        advice = []
        if suspect is not None:
            advice.append(COUNTERMEASURES["units"])
        if counts.n_mismatch:
            advice.append(COUNTERMEASURES["transform"])
            if suspect is None:
                advice.append(COUNTERMEASURES["units"])
        if counts.n_missing or counts.n_stale:
            advice += [COUNTERMEASURES["freshness"], COUNTERMEASURES["backfill"]]
        evidence["countermeasures"] = advice
    return evidence
