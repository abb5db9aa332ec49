"""Scoring closed cohort windows and applying the policy, one shard's cohorts at a time.

The step after the cohort arrays (flows/shard_windows.py) is keyed like them, by
``model#shard``; its state holds each cohort's seasonal baseline (models with
``baseline.seasonality``) and policy state (:data:`drift.policy.CohortPolicy`, only for
cohorts with a problem under way).

For a model whose window detectors are all ``psi`` and ``quality`` and that has no
seasonal baseline, :func:`detectors.screen.screen` first finds, in one pass of array
expressions, which detectors may give which cohorts a warn or alert finding. Those
detectors are run on those cohorts, as :class:`~drift.findings.Finding` objects; every
detector is run on the cohorts with a policy state and those that had a problem in their
previous window (so their per-cohort gauges come back to their healthy values). The
findings no detector was run for are ok, and counted only in the aggregates
(``drift_findings_total{severity="ok"}``; ``drift_windows_screened_total`` counts the
cohort windows no detector was run on). Other models score every cohort in full.

A cohort window's findings at warn or alert are then judged across the cohorts of the
model window (:class:`detectors.significance.CohortFamilies`, kept in the shard's state),
and a rollup cohort's PSI findings name the member cohorts that contribute most
(:mod:`drift.rollups`).

The findings sink receives the warn and alert findings; with ``engine.ok_findings``
(``drift replay`` and ``drift backtest`` turn it on: their reports draw every window)
every cohort is scored in full and every finding is written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import numpy as np

from detectors.base import Detector
from detectors.psi import DEFAULT_EPSILON, PsiDetector
from detectors.quality import QualityDetector
from detectors.screen import screen_detectors
from detectors.significance import CohortFamilies, SignificanceSetting
from drift import metrics
from drift.baselines import SeasonalBaseline, resume, score_window
from drift.cohort_arrays import ClosedWindows
from drift.config import Config
from drift.findings import Cohort, Finding, Severity, Window
from drift.policy import CohortPolicy, Decision, decide_cohort
from drift.reference import ReferenceProfile
from drift.rollups import contributors
from drift.summary import WindowSummary, empty_summary
from flows.plans import ModelPlan


@dataclass
class ShardScores:
    """What the scoring step keeps per shard (its snapshot)."""

    seasonal: dict[str, SeasonalBaseline] = field(default_factory=dict)
    """Cohort key -> seasonal baseline (models with ``baseline.seasonality``)."""
    policy: dict[str, CohortPolicy] = field(default_factory=dict)
    """Cohort key -> policy state, for cohorts with a problem under way."""
    recent: set[str] = field(default_factory=set)
    """Cohorts scored in full in their previous window."""
    families: CohortFamilies = field(default_factory=CohortFamilies)
    """Significance across the cohorts of each model window (detectors/significance.py)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("families", CohortFamilies())  # snapshots written before it


@dataclass(frozen=True)
class Scored:
    """One closed batch's outcome: findings for the sink and decisions for the ticket store."""

    findings: list[Finding]
    decisions: list[Decision]


class Scorer:
    """Scores :class:`ClosedWindows` against each model's detectors, then applies the policy."""

    def __init__(
        self, config: Config, plans: dict[str, ModelPlan], seeded: dict[str, dict[str, SeasonalBaseline]],
        ok_findings: bool, shards: int = 1,
    ) -> None:
        self._config = config
        self._plans = plans
        self._seeded = seeded
        self.ok_findings = ok_findings
        self._shards = shards
        self._per_window: dict[str, list[Counter[str]]] = {}
        self._owner: dict[str, dict[str, int]] = {}

    def detector_of(self, model: str) -> dict[str, int]:
        """Finding name -> the index of the detector of ``model`` that gives it."""
        owner = self._owner.get(model)
        if owner is None:
            owner = self._owner[model] = {
                name: j for j, tally in reversed(list(enumerate(self.findings_per_window(model)))) for name in tally}
        return owner

    def findings_per_window(self, model: str) -> list[Counter[str]]:
        """How many findings of each name every detector of ``model`` gives per cohort window, in
        the plan's order (for the ok aggregate of the windows a detector is not run on)."""
        tally = self._per_window.get(model)
        if tally is None:
            plan = self._plans[model]
            epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
            blank = empty_summary(plan.profile, track_event_ids=plan.config.tracks_event_ids())
            tally = self._per_window[model] = [
                Counter(f.detector for f in d.score(blank, plan.profile, Cohort(model), Window(epoch, epoch)))
                for d in plan.detectors
            ]
        return tally

    def __call__(self, state: ShardScores | None, closed: ClosedWindows) -> tuple[ShardScores, Scored]:
        state = state if state is not None else ShardScores()
        plan = self._plans[closed.model]
        model = plan.config
        seasonal = model.baseline.seasonality != "none"
        metrics.WINDOWS_CLOSED.labels(closed.model).inc(len(closed))
        families = state.families
        window_us = _micros(closed.window.start)
        previous_us = window_us - model.window.size // timedelta(microseconds=1)
        families.forget_before(window_us - 4 * (window_us - previous_us))
        for j, det in enumerate(plan.detectors):
            least = getattr(det.config, "min_samples", 1) if hasattr(det, "config") else 1
            families.count(window_us, j, int(np.count_nonzero(closed.n_events >= least)))
        by_detector = None if seasonal or self.ok_findings else screen_detectors(closed, plan.profile, plan.detectors)
        flagged = None if by_detector is None else np.logical_or.reduce(by_detector, axis=0)
        whole: set[int] = set()
        """Cohorts scored by every detector (policy state, or a problem in their previous window)."""
        if flagged is None or by_detector is None:
            chosen = list(range(len(closed)))
        else:
            recent = state.recent
            for i, key in enumerate(closed.cohort_keys()):
                if key in recent:
                    whole.add(i)
                    recent.discard(key)
                elif key in state.policy:
                    whole.add(i)
            if whole:
                flagged[list(whole)] = True
            chosen = np.flatnonzero(flagged).tolist()
            healthy = len(closed) - len(chosen)
            if healthy:
                metrics.WINDOWS_SCREENED.labels(closed.model).inc(healthy)
            # Each detector's findings of the cohorts it is not run on are ok: counted, not built.
            per_window = self.findings_per_window(closed.model)
            for d in range(len(plan.detectors)):
                skipped = len(closed) - int(by_detector[d].sum()) - sum(1 for i in whole if not by_detector[d, i])
                for name, n in per_window[d].items():
                    metrics.FINDINGS.labels(closed.model, name, Severity.OK.value).inc(n * skipped)
        findings: list[Finding] = []
        decisions: list[Decision] = []
        rules = list(self._config.routing)
        for i in chosen:
            cohort = closed.cohorts[i]
            summary = closed.summary(i)
            if seasonal:
                baseline = state.seasonal.get(cohort.key)
                if baseline is None and cohort.key in self._seeded.get(cohort.model, {}):
                    baseline = self._seeded[cohort.model][cohort.key].copy()
                baseline = state.seasonal[cohort.key] = resume(baseline, plan.profile, model.baseline)
                found = score_window(baseline, plan.profile, plan.detectors, cohort, closed.window, summary)
            elif by_detector is None or i in whole:
                found = [f for d in plan.detectors for f in d.score(summary, plan.profile, cohort, closed.window)]
            else:
                # No policy state: only warn and alert findings matter, and only they are built.
                found = []
                for j, det in enumerate(plan.detectors):
                    if by_detector[j, i]:
                        problems = _problems(det, summary, plan.profile, cohort, closed.window)
                        found.extend(problems)
                        for name, n in self.findings_per_window(closed.model)[j].items():
                            n_ok = n - sum(1 for f in problems if f.detector == name)
                            if n_ok:
                                metrics.FINDINGS.labels(closed.model, name, Severity.OK.value).inc(n_ok)
            found = self._across_cohorts(found, plan, families, window_us, previous_us)
            if i in closed.members:
                found = _attributed(found, closed, i, plan)
            tally = Counter((f.detector, f.severity.value) for f in found)
            for (detector, severity), n in tally.items():
                metrics.FINDINGS.labels(cohort.model, detector, severity).inc(n)
            metrics.record_findings(cohort, found)
            problems = [f for f in found if f.severity is not Severity.OK]
            if flagged is not None and problems:
                state.recent.add(cohort.key)
            findings.extend(found if self.ok_findings else problems)
            if found:
                policy, made = decide_cohort(state.policy.get(cohort.key), found, model, rules)
                if policy is None:
                    state.policy.pop(cohort.key, None)
                else:
                    state.policy[cohort.key] = policy
                decisions.extend(made)
        return state, Scored(findings, decisions)

    def _across_cohorts(
        self, found: list[Finding], plan: ModelPlan, families: CohortFamilies, window_us: int, previous_us: int,
    ) -> list[Finding]:
        """A cohort window's findings judged across the model window's cohorts, detector by detector."""
        if not any(f.severity is not Severity.OK for f in found):
            return found
        owner = self.detector_of(plan.config.name)
        groups: dict[int, list[int]] = {}
        for k, f in enumerate(found):
            j = owner.get(f.detector)
            if j is not None:
                groups.setdefault(j, []).append(k)
        out = list(found)
        for j, at in groups.items():
            setting: SignificanceSetting = getattr(getattr(plan.detectors[j], "config", None), "significance", "none")
            judged = families.judge([found[k] for k in at], setting, window_us, previous_us, j, self._shards)
            for k, f in zip(at, judged):
                out[k] = f
        return out


def _micros(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _attributed(found: list[Finding], closed: ClosedWindows, i: int, plan: ModelPlan) -> list[Finding]:
    """A rollup cohort's PSI findings at warn or alert with the members contributing most (drift/rollups.py)."""
    table = closed.members[i]
    layout = closed.layout
    out = []
    for f in found:
        name = f.feature
        # Against the reference only: a seasonal slot's shares are not the members' common ground.
        if (f.detector == "psi" and f.severity is not Severity.OK and f.baseline == "reference"
                and name is not None and name in plan.profile.features):
            epsilon = next((d.config.epsilon for d in plan.detectors
                            if isinstance(d, PsiDetector) and name in d.features(plan.profile)), DEFAULT_EPSILON)
            k = layout.index(name)
            shares = plan.profile.features[name].shares
            attribution = contributors(table, int(layout.offsets[k]), int(layout.offsets[k + 1]), shares, epsilon)
            f = replace(f, evidence={**f.evidence, **attribution})
        out.append(f)
    return out


def _problems(detector: Detector, summary: WindowSummary, profile: ReferenceProfile, cohort: Cohort,
              window: Window) -> list[Finding]:
    """The warn and alert findings of ``detector`` (only those built where it can)."""
    if isinstance(detector, (PsiDetector, QualityDetector)):
        return detector.score(summary, profile, cohort, window, problems_only=True)
    return [f for f in detector.score(summary, profile, cohort, window) if f.severity is not Severity.OK]


def scorer(
    config: Config, plans: dict[str, ModelPlan], seeded: dict[str, dict[str, SeasonalBaseline]], ok_findings: bool,
    shards: int = 1,
) -> Callable[[ShardScores | None, ClosedWindows], tuple[ShardScores, Scored]]:
    """The function of the ``score_windows`` step (``op.stateful_map`` keyed by ``model#shard``)."""
    return Scorer(config, plans, seeded, ok_findings, shards)
