"""Population stability index (PSI) of a feature against its reference.

The statistic is a pure function of two count vectors over the same bins; the
detector applies it to every configured feature of a window summary.
"""

from __future__ import annotations

import functools

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from detectors import significance
from detectors.significance import Draft, Significance, SignificanceSetting, homogeneity_test
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import NumericProfile, ReferenceProfile
from drift.summary import WindowSummary

DEFAULT_EPSILON = 1e-4


class PsiConfig(BaseModel):
    """``psi:`` in YAML.

    Defaults follow common credit-risk practice: PSI below 0.1 is stable, 0.1 to
    0.25 a moderate shift worth a look, above 0.25 a significant shift.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    features: Literal["*"] | list[str] = "*"
    bins: int = Field(default=10, ge=2, le=1000)
    warn: float = Field(default=0.1, ge=0)
    alert: float = Field(default=0.25, ge=0)
    epsilon: float = Field(default=DEFAULT_EPSILON, gt=0, lt=1)
    min_samples: int = Field(default=100, ge=1)
    significance: SignificanceSetting = Significance()
    """``{method: bh, q: 0.01}``: warn/alert only when significant after Benjamini–Hochberg
    over the features of the cohort window (:mod:`detectors.significance`); ``none``: by value alone."""

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> PsiConfig:
        if self.warn > self.alert:
            raise ValueError(f"warn must be <= alert; got warn={self.warn}, alert={self.alert}")
        return self


def psi(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    epsilon: float = DEFAULT_EPSILON,
) -> float:
    r"""Population stability index between two distributions over the same bins.

    .. math::

        \mathrm{PSI} = \sum_i (c_i - r_i) \ln \frac{c_i}{r_i},
        \qquad r_i = \max(R_i / \textstyle\sum R, \varepsilon),\;
        c_i = \max(C_i / \textstyle\sum C, \varepsilon)

    Parameters
    ----------
    reference, current:
        Counts (or shares) per bin, 1-D, same length, non-negative.
    epsilon:
        Floor for a bin's share. An empty bin would make the log infinite; the
        floor keeps PSI finite and still large for a bin that appears or
        vanishes. Each term ``(c - r) ln(c / r)`` is >= 0 for any positive
        ``c, r``, so flooring without renormalising keeps ``PSI >= 0``, and
        identical inputs give exactly 0.

    Returns
    -------
    float
        PSI >= 0. 0 when either side is empty (nothing to compare).

    Examples
    --------
    >>> round(psi([50, 50], [50, 50]), 12)
    0.0
    >>> round(psi([50, 50], [80, 20]), 4)
    0.4159
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError(f"reference and current must be 1-D of one length; got {ref.shape} and {cur.shape}")
    ref_total, cur_total = ref.sum(), cur.sum()
    if ref_total <= 0 or cur_total <= 0:
        return 0.0
    r = np.maximum(ref / ref_total, epsilon)
    c = np.maximum(cur / cur_total, epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_terms(reference: npt.ArrayLike, current: npt.ArrayLike, epsilon: float = DEFAULT_EPSILON) -> npt.NDArray[np.float64]:
    """Per-bin contributions to :func:`psi` (they sum to it)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError(f"reference and current must be 1-D of one length; got {ref.shape} and {cur.shape}")
    ref_total, cur_total = ref.sum(), cur.sum()
    if ref_total <= 0 or cur_total <= 0:
        return np.zeros(ref.shape, dtype=np.float64)
    r = np.maximum(ref / ref_total, epsilon)
    c = np.maximum(cur / cur_total, epsilon)
    terms: npt.NDArray[np.float64] = (c - r) * np.log(c / r)
    return terms


class PsiDetector:
    """PSI of each configured feature of a window against the reference profile.

    The profile may be a seasonal one (:func:`drift.baselines.baseline_profile`): its
    ``baselines`` text per feature becomes the finding's ``baseline``, else ``reference``.
    """

    name = "psi"

    def __init__(self, config: PsiConfig) -> None:
        self.config = config

    def features(self, profile: ReferenceProfile) -> list[str]:
        if self.config.features == "*":
            return list(profile.features)
        return [f for f in self.config.features if f in profile.features]

    def score(
        self, summary: WindowSummary, profile: ReferenceProfile, cohort: Cohort, window: Window,
        problems_only: bool = False,
    ) -> list[Finding]:
        """One finding per feature; ``problems_only``: only those at warn or alert (the others
        are judged, for the significance family, but not built)."""
        drafts = []
        for name in self.features(profile):
            feature = profile.features[name]
            counts = summary.features[name]
            current = counts.counts
            reference = np.asarray(feature.shares, dtype=np.float64)
            n_current = int(current.sum())
            terms = psi_terms(reference, current, self.config.epsilon)
            skipped = None
            p_value: float | None = None
            method: str | None = None
            if n_current < self.config.min_samples:
                value = 0.0
                severity = Severity.OK
                skipped = f"{n_current} values in the window; min_samples is {self.config.min_samples}"
            else:
                value = float(np.sum(terms))  # psi(reference, current): the same terms, summed
                severity = Severity.of(value, self.config.warn, self.config.alert)
                p_value, method, _ = homogeneity_test(reference, feature.n, current)

            def build(
                name: str = name, feature: Any = feature, counts: Any = counts, terms: Any = terms,
                n_current: int = n_current, value: float = value, severity: Severity = severity,
                skipped: str | None = skipped, p_value: float | None = p_value, method: str | None = method,
            ) -> Finding:
                evidence = _evidence(feature, terms, counts.counts, n_current, counts.examples)
                if method is not None:
                    evidence["p_method"] = method
                return Finding(
                    detector=self.name, cohort=cohort, window=window, feature=name,
                    value=value, severity=severity, warn=self.config.warn, alert=self.config.alert,
                    n_current=n_current, n_reference=feature.n,
                    baseline=profile.baselines.get(name, "reference") if profile.baselines else "reference",
                    evidence=evidence, skipped=skipped, p_value=p_value,
                )

            drafts.append(Draft(severity, p_value, build))
        return significance.settle(drafts, self.config.significance, problems_only)


def _evidence(
    feature: Any, terms: npt.NDArray[np.float64], current: npt.NDArray[np.int64], total: int, examples: list[str],
) -> dict[str, Any]:
    """The bins, both sides' shares and the (up to) three bins contributing most to the PSI."""
    labels = feature.bin_labels()
    current_shares = (current / total).tolist() if total > 0 else [0.0] * len(labels)
    contributions = terms.tolist()
    top = np.argsort(-terms)[:3].tolist()
    evidence: dict[str, Any] = {
        "bins": labels,
        "reference_share": list(_rounded_shares(tuple(feature.shares))),
        "current_share": [round(s, 6) for s in current_shares],
        "top_bins": [{"bin": labels[i], "contribution": round(contributions[i], 6)} for i in top if contributions[i] > 0],
    }
    if examples:
        key = "wrong_type_examples" if isinstance(feature, NumericProfile) else "unseen_examples"
        evidence[key] = list(examples)
    return evidence


@functools.lru_cache(maxsize=4096)
def _rounded_shares(shares: tuple[float, ...]) -> tuple[float, ...]:
    """A profile's shares rounded for evidence (the same for every window of a feature)."""
    return tuple(round(float(s), 6) for s in shares)
