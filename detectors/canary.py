r"""Champion–challenger comparison: a challenger or canary route's window against the champion's.

Events carry the route that served them (a cohort label, ``route`` by default). Within one
cohort (the same labels except the route) and one window, each compared route's bin counts
are set against the champion's, field by field, in the bins the windows already count:

* **PSI** of the two histograms, the champion's taken as the reference
  (:func:`detectors.psi.psi_terms`);
* the **chi-square test of homogeneity** of the ``2 × B`` table of champion and challenger
  counts for the p-value (:func:`detectors.significance.homogeneity_test`, which draws
  Monte-Carlo tables when an expected count is under 5);
* **Benjamini–Hochberg** over the fields of one comparison, at ``alpha``.

A field is at warn or alert when its PSI crosses the threshold *and* its q-value is at
most ``alpha``. The comparison's verdict is one more finding, ``canary.halt``: at alert
when any field is at alert, naming those fields, the routes, the cohort and the window,
so that a rollout controller can stop the rollout; ``ok`` otherwise.

Both routes need ``min_samples`` events in the window; a smaller one is reported as
skipped (``ok``), since a handful of canary requests says nothing either way.

With ``quality:``, the routes' cohort windows judged on their delayed labels are compared too
(:meth:`CanaryDetector.compare_quality`): the drop of the route's accuracy below the
champion's, with a one-sided two-proportion test (:func:`accuracy_drop`); a significant drop
past ``quality.alert`` is a ``canary.halt`` whose feature is the metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from detectors import significance
from detectors.psi import DEFAULT_EPSILON, psi_terms
from detectors.significance import Draft, Significance, homogeneity_test
from drift.findings import Cohort, Finding, Severity, Window

DETECTOR = "canary"
HALT = "canary.halt"
QUALITY = "canary.quality"
TOP_BINS = 3
"""Bins named in a field's evidence: those contributing most to its PSI."""


class CanaryPsi(BaseModel):
    """``canary.psi:``: PSI thresholds of a route against the champion.

    The defaults are PSI's usual ones (0.1 a moderate shift, 0.25 a significant one).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    warn: float = Field(default=0.1, ge=0)
    alert: float = Field(default=0.25, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> CanaryPsi:
        if self.warn > self.alert:
            raise ValueError(f"warn must be <= alert; got warn={self.warn}, alert={self.alert}")
        return self


class CanaryQuality(BaseModel):
    """``canary.quality:``: a route's accuracy against the champion's, on the delayed labels.

    ``warn`` and ``alert`` bound the *drop*, champion's accuracy less the route's (0.03: three
    points of accuracy); ``min_labels`` the labelled predictions each route needs in the window.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    metric: Literal["accuracy"] = "accuracy"
    warn: float = Field(default=0.01, ge=0, le=1)
    alert: float = Field(default=0.03, ge=0, le=1)
    min_labels: int = Field(default=200, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> CanaryQuality:
        if self.warn > self.alert:
            raise ValueError(f"warn must be <= alert; got warn={self.warn}, alert={self.alert}")
        return self


class CanaryConfig(BaseModel):
    """``canary:`` of a model in YAML: which routes are compared with the champion, and how.

    ``alpha`` is the false-discovery level of one comparison's fields (Benjamini–Hochberg);
    ``min_samples`` the events each route needs in a window before it is compared.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    label: str = Field(default="route", min_length=1)
    """The cohort label that carries the route."""
    champion: str = Field(default="champion", min_length=1)
    compare: list[str] = Field(default_factory=lambda: ["challenger", "canary"], min_length=1)
    """Routes compared with the champion (``shadow`` too, when its predictions are logged)."""
    fields: Literal["*"] | list[str] = "*"
    """Features and prediction fields (``prediction.score``) compared; ``*``: every profiled one."""
    psi: CanaryPsi = CanaryPsi()
    alpha: float = Field(default=0.01, gt=0, lt=1)
    min_samples: int = Field(default=200, ge=1)
    quality: CanaryQuality | None = None
    """Also compare the routes' accuracy once their labels are in (the model needs ``labels:``)."""

    @model_validator(mode="after")
    def _routes(self) -> CanaryConfig:
        if self.champion in self.compare:
            raise ValueError(f"compare must not name the champion {self.champion!r}; got {self.compare}")
        if len(set(self.compare)) != len(self.compare):
            raise ValueError(f"compare must name distinct routes; got {self.compare}")
        if isinstance(self.fields, list) and (not self.fields or len(set(self.fields)) != len(self.fields)):
            raise ValueError(f"fields must be '*' or a list of distinct names; got {self.fields}")
        return self


@dataclass(frozen=True, slots=True)
class RouteWindow:
    """One route's cohort window: its event count and bin counts of each compared field."""

    cohort: Cohort
    """The cohort, its route label included."""
    route: str
    window: Window
    n_events: int
    counts: tuple[npt.NDArray[np.int64], ...]
    """Per compared field (:attr:`CanaryDetector.fields`), the window's bin counts."""


@dataclass(frozen=True, slots=True)
class QualityWindow:
    """One route's cohort window as judged on its labels: how many of its labelled predictions were right."""

    cohort: Cohort
    """The cohort, its route label included."""
    route: str
    window: Window
    n_predictions: int
    n_labelled: int
    n_correct: int
    judged_by: str | None
    """``coverage`` or ``horizon`` (see the labels' judging rule)."""

    @property
    def accuracy(self) -> float | None:
        return self.n_correct / self.n_labelled if self.n_labelled else None


def accuracy_drop(
    champion_correct: int, champion_n: int, challenger_correct: int, challenger_n: int,
) -> tuple[float, float]:
    r"""The drop of the challenger's accuracy below the champion's, and its one-sided p-value.

    With :math:`\hat a_h = k_h / n_h`, :math:`\hat a_c = k_c / n_c` and the pooled
    :math:`\hat a = (k_h + k_c) / (n_h + n_c)`, the two-proportion z statistic is

    .. math::

        z = \frac{\hat a_h - \hat a_c}{\sqrt{\hat a (1 - \hat a) (1/n_h + 1/n_c)}}

    and ``p = P(Z >= z)`` tests H0 "the challenger is at least as accurate" against "it is
    less accurate" (``z²`` is Pearson's X² of the 2 × 2 table of right and wrong predictions).
    ``(drop, 1.0)`` when both routes are all right or all wrong; ``(0.0, 1.0)`` when a side
    has no labels.

    >>> drop, p = accuracy_drop(900, 1000, 800, 1000)
    >>> round(drop, 3), p < 1e-9
    (0.1, True)
    """
    if champion_n <= 0 or challenger_n <= 0:
        return 0.0, 1.0
    from scipy.special import ndtr

    drop = champion_correct / champion_n - challenger_correct / challenger_n
    pooled = (champion_correct + challenger_correct) / (champion_n + challenger_n)
    variance = pooled * (1 - pooled) * (1 / champion_n + 1 / challenger_n)
    if variance <= 0:
        return drop, 1.0
    return drop, float(ndtr(-drop / np.sqrt(variance)))


def route_psi(
    champion: npt.ArrayLike, challenger: npt.ArrayLike, epsilon: float = DEFAULT_EPSILON,
) -> tuple[float, npt.NDArray[np.float64]]:
    r"""PSI of the challenger's histogram against the champion's, and its per-bin terms.

    .. math::

        \mathrm{PSI} = \sum_i (c_i - h_i) \ln \frac{c_i}{h_i},\qquad
        h_i = \max(H_i / \textstyle\sum H, \varepsilon),\;
        c_i = \max(C_i / \textstyle\sum C, \varepsilon)

    with ``H`` the champion's counts and ``C`` the challenger's over the same bins. 0 when
    either side is empty.

    >>> value, _ = route_psi([50, 50], [80, 20])
    >>> round(value, 4)
    0.4159
    """
    terms = psi_terms(champion, challenger, epsilon)
    return float(np.sum(terms)), terms


def route_test(champion: npt.ArrayLike, challenger: npt.ArrayLike) -> tuple[float, significance.Method, float]:
    """p-value, method and X² of the chi-square test of homogeneity of the two routes' counts.

    H0: both routes' values come from one distribution over the bins. Bins empty on both
    sides are left out; an expected count under 5 makes it a Monte-Carlo test
    (:func:`detectors.significance.homogeneity_test`). ``(1.0, "none", 0.0)`` when a side is
    empty or one bin holds every value.

    >>> p, method, x2 = route_test([500, 500], [500, 500])
    >>> round(p, 6), method, round(x2, 6)
    (1.0, 'chi2', 0.0)
    """
    h = np.asarray(champion, dtype=np.float64)
    n_champion = float(h.sum())
    if n_champion <= 0:
        return 1.0, "none", 0.0
    return homogeneity_test(h / n_champion, n_champion, challenger)


class CanaryDetector:
    """Compares a route's cohort window with the champion's (see the module text).

    ``fields`` are the compared fields, in the order of :attr:`RouteWindow.counts`;
    ``bin_labels`` each field's bin labels, for the evidence.
    """

    name = DETECTOR

    def __init__(self, config: CanaryConfig, fields: Sequence[str], bin_labels: Sequence[Sequence[str]]) -> None:
        if len(fields) != len(bin_labels):
            raise ValueError(f"one list of bin labels per field; got {len(fields)} fields, {len(bin_labels)} lists")
        self.config = config
        self.fields = tuple(fields)
        self.bin_labels = tuple(tuple(labels) for labels in bin_labels)

    def compare(self, champion: RouteWindow, challenger: RouteWindow) -> list[Finding]:
        """One ``canary`` finding per field, then the ``canary.halt`` verdict of the comparison."""
        config = self.config
        if champion.window != challenger.window:
            raise ValueError(f"routes compared in different windows: {champion.window} and {challenger.window}")
        baseline = f"{config.label}={champion.route}"
        small = min(champion.n_events, challenger.n_events)
        skipped = None
        if small < config.min_samples:
            skipped = (f"{champion.route} has {champion.n_events} and {challenger.route} {challenger.n_events} "
                       f"events in the window; min_samples is {config.min_samples}")
        drafts = []
        for f, name in enumerate(self.fields):
            drafts.append(self._draft(f, name, champion, challenger, baseline, skipped))
        found = significance.settle(drafts, Significance(q=config.alpha))
        return [*found, self._halt(found, champion, challenger, baseline, skipped)]

    def compare_quality(self, champion: QualityWindow, challenger: QualityWindow) -> list[Finding]:
        """The ``canary.quality`` finding of the route's accuracy against the champion's, then its
        ``canary.halt`` verdict (feature: the metric). Needs ``canary.quality`` in the config."""
        config, quality = self.config, self.config.quality
        if quality is None:
            raise ValueError("compare_quality needs canary.quality in the config")
        if champion.window != challenger.window:
            raise ValueError(f"routes compared in different windows: {champion.window} and {challenger.window}")
        baseline = f"{config.label}={champion.route}"
        n_h, n_c = champion.n_labelled, challenger.n_labelled
        drop, p_value = accuracy_drop(champion.n_correct, n_h, challenger.n_correct, n_c)
        skipped = None
        severity = Severity.OK
        p: float | None = None
        if min(n_h, n_c) < quality.min_labels:
            skipped = (f"{champion.route} has {n_h} and {challenger.route} {n_c} labelled predictions in the "
                       f"window; min_labels is {quality.min_labels}")
            drop = 0.0
        else:
            severity, p = Severity.of(drop, quality.warn, quality.alert), p_value
        evidence: dict[str, Any] = {
            "label": config.label, "champion": champion.route, "route": challenger.route,
            "champion_accuracy": champion.accuracy, "challenger_accuracy": challenger.accuracy,
            "n_champion": n_h, "n_challenger": n_c,
            "champion_label_coverage": n_h / champion.n_predictions if champion.n_predictions else None,
            "challenger_label_coverage": n_c / challenger.n_predictions if challenger.n_predictions else None,
            "judged_by": {champion.route: champion.judged_by, challenger.route: challenger.judged_by},
            "p_method": "z",
        }
        finding = Finding(
            detector=QUALITY, cohort=challenger.cohort, window=challenger.window, feature=quality.metric,
            value=drop, severity=severity, warn=quality.warn, alert=quality.alert, n_current=n_c, n_reference=n_h,
            baseline=baseline, evidence=evidence, skipped=skipped, p_value=p,
        )
        judged = significance.apply([finding], Significance(q=config.alpha))[0]
        halting = judged.severity is Severity.ALERT
        group = Cohort(challenger.cohort.model, tuple((k, v) for k, v in challenger.cohort.labels if k != config.label))
        halt = Finding(
            detector=HALT, cohort=challenger.cohort, window=challenger.window, feature=quality.metric,
            value=judged.value, severity=Severity.ALERT if halting else Severity.OK, warn=quality.warn,
            alert=quality.alert, n_current=n_c, n_reference=n_h, baseline=baseline, skipped=skipped,
            p_value=judged.p_value, q_value=judged.q_value,
            evidence={
                "decision": "halt" if halting else "continue", "basis": "quality",
                "label": config.label, "champion": champion.route, "route": challenger.route,
                "cohort": group.to_dict(), "cohort_key": group.key,
                "window_start": challenger.window.start.isoformat(), "window_end": challenger.window.end.isoformat(),
                "n_champion": n_h, "n_challenger": n_c,
                "fields": [{
                    "field": quality.metric, "drop": judged.value, "champion": champion.accuracy,
                    "challenger": challenger.accuracy, "p_value": judged.p_value, "q_value": judged.q_value,
                    "severity": judged.severity.value,
                }] if halting else [],
            },
        )
        return [judged, halt]

    def _draft(
        self, f: int, name: str, champion: RouteWindow, challenger: RouteWindow, baseline: str, skipped: str | None,
    ) -> Draft:
        config = self.config
        h, c = champion.counts[f], challenger.counts[f]
        n_h, n_c = int(h.sum()), int(c.sum())
        value, terms = route_psi(h, c)
        p_value: float | None = None
        method: str | None = None
        severity = Severity.OK
        why = skipped
        if why is None and min(n_h, n_c) < config.min_samples:
            why = (f"{name} has {n_h} values on {champion.route} and {n_c} on {challenger.route}; "
                   f"min_samples is {config.min_samples}")
        if why is None:
            severity = Severity.of(value, config.psi.warn, config.psi.alert)
            p_value, method, _ = route_test(h, c)
        else:
            value = 0.0

        def build() -> Finding:
            evidence: dict[str, Any] = {
                "label": config.label, "champion": champion.route, "route": challenger.route,
                "n_champion": n_h, "n_challenger": n_c,
                "top_bins": _top_bins(self.bin_labels[f], h, c, terms),
            }
            if method is not None:
                evidence["p_method"] = method
            return Finding(
                detector=DETECTOR, cohort=challenger.cohort, window=challenger.window, feature=name,
                value=value, severity=severity, warn=config.psi.warn, alert=config.psi.alert,
                n_current=n_c, n_reference=n_h, baseline=baseline, evidence=evidence, skipped=why, p_value=p_value,
            )

        return Draft(severity, p_value, build)

    def _halt(
        self, found: list[Finding], champion: RouteWindow, challenger: RouteWindow, baseline: str,
        skipped: str | None,
    ) -> Finding:
        config = self.config
        halting = [f for f in found if f.severity is Severity.ALERT]
        considered = halting or [f for f in found if f.skipped is None]
        value = max((f.value for f in considered), default=0.0)
        group = Cohort(challenger.cohort.model, tuple((k, v) for k, v in challenger.cohort.labels if k != config.label))
        evidence: dict[str, Any] = {
            "decision": "halt" if halting else "continue", "basis": "distributions",
            "label": config.label, "champion": champion.route, "route": challenger.route,
            "cohort": group.to_dict(), "cohort_key": group.key,
            "window_start": challenger.window.start.isoformat(), "window_end": challenger.window.end.isoformat(),
            "n_champion": champion.n_events, "n_challenger": challenger.n_events,
            "fields": [
                {"field": f.feature, "psi": f.value, "p_value": f.p_value, "q_value": f.q_value,
                 "severity": f.severity.value, "top_bins": f.evidence.get("top_bins", [])}
                for f in halting
            ],
        }
        p_values = [f.p_value for f in halting if f.p_value is not None]
        q_values = [f.q_value for f in halting if f.q_value is not None]
        return Finding(
            detector=HALT, cohort=challenger.cohort, window=challenger.window, feature=None, value=value,
            severity=Severity.ALERT if halting else Severity.OK, warn=config.psi.warn, alert=config.psi.alert,
            n_current=challenger.n_events, n_reference=champion.n_events, baseline=baseline, evidence=evidence,
            skipped=skipped, p_value=min(p_values) if p_values else None, q_value=min(q_values) if q_values else None,
        )


def _top_bins(
    labels: Sequence[str], champion: npt.NDArray[np.int64], challenger: npt.NDArray[np.int64],
    terms: npt.NDArray[np.float64],
) -> list[dict[str, Any]]:
    """The bins contributing most to the PSI, with both routes' shares."""
    n_h, n_c = int(champion.sum()), int(challenger.sum())
    out = []
    for i in np.argsort(-terms, kind="stable")[:TOP_BINS].tolist():
        if terms[i] <= 0:
            break
        out.append({
            "bin": labels[i] if i < len(labels) else str(i),
            "champion_share": round(int(champion[i]) / n_h, 6) if n_h else 0.0,
            "challenger_share": round(int(challenger[i]) / n_c, 6) if n_c else 0.0,
            "contribution": round(float(terms[i]), 6),
        })
    return out
