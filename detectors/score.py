"""Prediction monitoring: is the model's output still distributed as in training?

A shift in what the model predicts is often the first visible sign of drift in
features nobody monitors, and the one closest to the business. Three checks, each
its own finding named ``score.<check>``:

- ``score.psi``: PSI of the score (``prediction.score``) over quantile bins of the
  reference scores, the same statistic and binning as the ``psi`` detector;
- ``score.mean_shift``: ``|mean_window - mean_reference| / std_reference``, the
  shift of the mean score in reference standard deviations;
- ``score.label_shift``: the largest absolute difference between a label's share
  in the window and in the reference (L-infinity distance of the label shares).

The reference's score and label columns are profiled when the baseline is built
(``ReferenceProfile.predictions``); windows count the prediction fields into those
bins, batched like features (:mod:`drift.summary`). With a seasonal baseline the profile's
shares, ``n``, mean and std are the slot's (:mod:`drift.baselines`), and the mean shift's
z test counts the slot's own size.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from detectors.quality import Limits
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detectors import significance
from detectors.psi import DEFAULT_EPSILON, psi, psi_terms
from detectors.seasonal_profile import SeasonalProfile
from detectors.significance import Significance, SignificanceSetting, homogeneity_test, mean_shift_p
from drift.findings import Cohort, Finding, Severity, Window
from drift.moments import Moments
from drift.reference import CategoricalProfile, NumericProfile, PredictionColumn, ReferenceProfile
from drift.summary import FeatureCounts, WindowSummary

Check = Literal["psi", "mean_shift", "label_shift"]

DEFAULT_LEVELS: dict[Check, tuple[float, float]] = {
    "psi": (0.1, 0.25),
    "mean_shift": (0.25, 0.5),
    "label_shift": (0.1, 0.2),
}
"""(warn, alert) of each check when YAML does not say; see docs/detectors.md for why."""


# The same {warn, alert} shape as the quality checks' non-rate limits.
Levels = Limits


def _default(check: Check) -> Levels:
    warn, alert = DEFAULT_LEVELS[check]
    return Levels(warn=warn, alert=alert)


def _is_level(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _field_path(value: str) -> str:
    parts = value.split(".")
    if len(parts) < 2 or parts[0] != "prediction" or not all(parts):
        raise ValueError(f"must be a field of the event's prediction, like 'prediction.score'; got {value!r}")
    return value


class ScoreConfig(BaseModel):
    """``score:`` in YAML.

    ``field`` is the score's path in the event (``prediction.score``), ``column``
    the reference Parquet column it is compared with (default: the path's last
    part, ``score``). ``label_field``/``label_column`` likewise for the predicted
    label; without ``label_field`` there is no label check. ``check: null`` turns
    a check off; a mapping may give ``warn``, ``alert`` or both, filled from
    :data:`DEFAULT_LEVELS` as in ``quality``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    field: str = "prediction.score"
    column: str | None = None
    bins: int = Field(default=10, ge=2, le=1000)
    psi: Levels | None = _default("psi")
    mean_shift: Levels | None = _default("mean_shift")
    label_field: str | None = None
    label_column: str | None = None
    label_shift: Levels | None = _default("label_shift")
    epsilon: float = Field(default=DEFAULT_EPSILON, gt=0, lt=1)
    min_samples: int = Field(default=100, ge=1)
    significance: SignificanceSetting = Significance()
    """Checks at warn/alert only when significant after Benjamini–Hochberg over the cohort
    window's checks (:mod:`detectors.significance`); ``none``: by value alone."""

    @field_validator("field", "label_field")
    @classmethod
    def _prediction_path(cls, value: str | None) -> str | None:
        return None if value is None else _field_path(value)

    @model_validator(mode="before")
    @classmethod
    def _fill_levels(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for check, (warn, alert) in DEFAULT_LEVELS.items():
            given = filled.get(check)
            if not isinstance(given, dict):
                continue
            given = dict(given)
            if "alert" not in given:
                given["alert"] = max(alert, given["warn"]) if _is_level(given.get("warn")) else alert
            if "warn" not in given:
                given["warn"] = min(warn, given["alert"]) if _is_level(given["alert"]) else warn
            filled[check] = given
        return filled

    @model_validator(mode="after")
    def _label_column_needs_field(self) -> ScoreConfig:
        if self.label_column is not None and self.label_field is None:
            raise ValueError("label_column needs label_field")
        return self

    def reference_columns(self) -> dict[str, PredictionColumn]:
        """The prediction fields to profile from the reference, by path."""
        columns: dict[str, PredictionColumn] = {}
        if self.psi is not None or self.mean_shift is not None:
            columns[self.field] = PredictionColumn(self.column or self.field.rsplit(".", 1)[-1], "numeric", self.bins)
        if self.label_field is not None and self.label_shift is not None:
            columns[self.label_field] = PredictionColumn(
                self.label_column or self.label_field.rsplit(".", 1)[-1], "categorical",
            )
        return columns


def mean_shift(moments: Moments, reference_mean: float, reference_std: float) -> tuple[float, float, float]:
    r"""Shift of the window mean in reference standard deviations.

    .. math::

        \mathrm{shift} = \frac{|\bar x - \mu_{ref}|}{\sigma_{ref}}

    Parameters
    ----------
    moments:
        Count, mean and squared deviations of the window's values (``n > 0``), merged
        slice by slice (:mod:`drift.moments`), so the window's std holds for values
        far from zero (amounts, ids, epoch times).
    reference_mean, reference_std:
        Mean and population standard deviation of the reference (``std > 0``).

    Returns
    -------
    (shift, window mean, window population std)

    >>> from drift.moments import of
    >>> tuple(round(v, 9) for v in mean_shift(of(np.array([0.25, 0.25, 0.75, 0.75])), 0.4, 0.2))
    (0.5, 0.5, 0.25)
    """
    if moments.n <= 0:
        raise ValueError(f"mean_shift needs values; got n={moments.n}")
    if not reference_std > 0:
        raise ValueError(f"mean_shift needs a reference std > 0; got {reference_std}")
    return abs(moments.mean - reference_mean) / reference_std, moments.mean, moments.std


def label_shift(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    r"""Largest absolute difference between label shares: :math:`\max_i |c_i - r_i|`.

    ``reference`` are shares (or counts) per label, ``current`` the window's counts
    over the same labels; 0 when either side is empty.

    >>> label_shift([0.5, 0.5, 0.0], [30, 60, 10])
    0.2
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError(f"reference and current must be 1-D of one length; got {ref.shape} and {cur.shape}")
    if ref.sum() <= 0 or cur.sum() <= 0:
        return 0.0
    return round(float(np.max(np.abs(cur / cur.sum() - ref / ref.sum()))), 12)


class ScoreDetector:
    r"""PSI and mean shift of the score, and label-rate shift, of a window against the reference.

    ==================  ===============================================  ===========  ==========
    finding             value                                            unit         warn/alert
    ==================  ===============================================  ===========  ==========
    ``score.psi``       :func:`detectors.psi.psi` over reference bins    PSI          0.1 / 0.25
    ``score.mean_shift`` ``|mean - mean_ref| / std_ref``                 ref. stds    0.25 / 0.5
    ``score.label_shift`` ``max_i |share_i - share_ref_i|``              share        0.1 / 0.2
    ==================  ===============================================  ===========  ==========

    ``feature`` of each finding is the field path. Below ``min_samples`` numbers
    (labels) in the window a finding is ``ok`` with ``skipped`` saying why; also
    when the reference has no profile of the field (a baseline built before the
    detector was configured: rebuild it) or, for the mean, a constant reference
    score (std 0). Nulls, missing fields and wrong-typed values are not counted
    in any value; the evidence reports them.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from drift.reference import numeric_profile
    >>> from drift.summary import empty_summary
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> profile = ReferenceProfile("m", {}, 4, "t", t,
    ...     predictions={"prediction.score": numeric_profile([0.2, 0.4, 0.6, 0.8], 2)})
    >>> summary = empty_summary(profile)
    >>> counts = summary.predictions["prediction.score"]
    >>> counts.counts[:], counts.moments = [0, 200], Moments(n=200, mean=0.8, m2=2.0)
    >>> found = ScoreDetector(ScoreConfig()).score(summary, profile, Cohort("m"), Window(t, t))
    >>> [(f.detector, round(f.value, 4), f.severity.value) for f in found]
    [('score.psi', 4.6043, 'alert'), ('score.mean_shift', 1.3416, 'alert')]
    """

    name = "score"

    def __init__(self, config: ScoreConfig) -> None:
        self.config = config

    def score(
        self, summary: WindowSummary, profile: ReferenceProfile, cohort: Cohort, window: Window
    ) -> list[Finding]:
        findings: list[Finding] = []
        config = self.config
        for check, levels in (("psi", config.psi), ("mean_shift", config.mean_shift)):
            if levels is not None:
                findings.append(self._numeric(check, levels, summary, profile, cohort, window))  # type: ignore[arg-type]
        if config.label_field is not None and config.label_shift is not None:
            findings.append(self._label(config.label_field, config.label_shift, summary, profile, cohort, window))
        return significance.apply(findings, config.significance)

    def _numeric(
        self, check: Check, levels: Levels, summary: WindowSummary, profile: ReferenceProfile,
        cohort: Cohort, window: Window,
    ) -> Finding:
        path = self.config.field
        reference = profile.predictions.get(path)
        counts = summary.predictions.get(path)
        if not isinstance(reference, NumericProfile) or counts is None:
            return self._unprofiled(check, levels, path, cohort, window)
        n = int(counts.counts.sum())
        evidence = {**_quality(counts), "check": check}
        value, skipped = 0.0, None
        if n < self.config.min_samples:
            skipped = f"{n} scores in the window; min_samples is {self.config.min_samples}"
        p_value: float | None = None
        if check == "psi":
            shares = np.asarray(reference.shares, dtype=np.float64)
            if skipped is None:
                value = psi(shares, counts.counts, self.config.epsilon)
                p_value, evidence["p_method"], _ = homogeneity_test(shares, reference.n, counts.counts)
            terms = psi_terms(shares, counts.counts, self.config.epsilon)
            labels = reference.bin_labels()
            evidence.update({
                "bins": labels,
                "reference_share": [round(float(s), 6) for s in shares],
                "current_share": [round(float(c) / n, 6) if n else 0.0 for c in counts.counts],
                "top_bins": [
                    {"bin": labels[i], "contribution": round(float(terms[i]), 6)}
                    for i in np.argsort(-terms)[:3] if terms[i] > 0
                ],
            })
        else:
            evidence.update({"reference_mean": reference.mean, "reference_std": reference.std})
            if reference.mean is None or reference.std is None:
                skipped = skipped or "the stored baseline has no score mean/std: rebuild it"
            elif not reference.std > 0:
                skipped = skipped or "the reference score is constant (std 0): a mean shift has no unit"
            elif n > 0:
                shift, mean, std = mean_shift(counts.moments, reference.mean, reference.std)
                evidence.update({"current_mean": round(mean, 6), "current_std": round(std, 6)})
                if skipped is None:
                    value = shift
                    if isinstance(profile, SeasonalProfile) and path in profile.seasonal:
                        # The slot's mean is itself a sample of reference.n values: the z
                        # statistic's variance is std² (1/n + 1/N), not std²/n.
                        scaled = shift * math.sqrt(reference.n / (n + reference.n))
                        p_value, evidence["p_method"] = mean_shift_p(scaled, n), "z"
                    else:
                        p_value, evidence["p_method"] = mean_shift_p(shift, n), "z"
        severity = Severity.OK if skipped is not None else Severity.of(value, levels.warn_level, levels.alert)
        return Finding(
            detector=f"{self.name}.{check}", cohort=cohort, window=window, feature=path, value=value,
            severity=severity, warn=levels.warn_level, alert=levels.alert, n_current=n,
            n_reference=reference.n, baseline=_baseline(profile, path), evidence=evidence, skipped=skipped,
            p_value=p_value,
        )

    def _label(
        self, path: str, levels: Levels, summary: WindowSummary, profile: ReferenceProfile,
        cohort: Cohort, window: Window,
    ) -> Finding:
        reference = profile.predictions.get(path)
        counts = summary.predictions.get(path)
        if not isinstance(reference, CategoricalProfile) or counts is None:
            return self._unprofiled("label_shift", levels, path, cohort, window)
        n = int(counts.counts.sum())
        shares = np.asarray(reference.shares, dtype=np.float64)
        current = counts.counts / n if n else np.zeros_like(shares)
        labels = reference.bin_labels()
        gaps = np.abs(current - shares)
        value, skipped = 0.0, None
        p_value: float | None = None
        tested: dict[str, Any] = {}
        if n < self.config.min_samples:
            skipped = f"{n} labels in the window; min_samples is {self.config.min_samples}"
        else:
            value = label_shift(shares, counts.counts)
            p_value, tested["p_method"], _ = homogeneity_test(shares, reference.n, counts.counts)
        evidence = {
            **tested,
            **_quality(counts), "check": "label_shift",
            "labels": [
                {"label": labels[i], "reference_share": round(float(shares[i]), 6),
                 "current_share": round(float(current[i]), 6)}
                for i in np.argsort(-gaps, kind="stable")[:5]
            ],
        }
        severity = Severity.OK if skipped is not None else Severity.of(value, levels.warn_level, levels.alert)
        return Finding(
            detector=f"{self.name}.label_shift", cohort=cohort, window=window, feature=path, value=value,
            severity=severity, warn=levels.warn_level, alert=levels.alert, n_current=n,
            n_reference=reference.n, baseline=_baseline(profile, path), evidence=evidence, skipped=skipped,
            p_value=p_value,
        )

    def _unprofiled(self, check: Check, levels: Levels, path: str, cohort: Cohort, window: Window) -> Finding:
        return Finding(
            detector=f"{self.name}.{check}", cohort=cohort, window=window, feature=path, value=0.0,
            severity=Severity.OK, warn=levels.warn_level, alert=levels.alert, n_current=0, n_reference=0,
            baseline="reference", evidence={"check": check},
            skipped=f"the reference profile has no {path!r}: rebuild the baseline with the score detector configured",
        )


def _baseline(profile: ReferenceProfile, path: str) -> str:
    """What ``path`` was compared with: its seasonal slot's text, else ``reference``."""
    return profile.baselines.get(path, "reference") if profile.baselines else "reference"


def _quality(counts: FeatureCounts) -> dict[str, Any]:
    """Values that could not be used: reported, never scored."""
    return {
        "n_null": counts.n_null, "n_missing": counts.n_missing, "n_wrong_type": counts.n_wrong_type,
        "examples": list(counts.examples),  # wrong-typed values; for labels also unseen ones
    }
