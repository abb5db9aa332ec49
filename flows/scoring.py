"""Scoring closed cohort windows and applying the policy, one shard's cohorts at a time.

The step after the cohort arrays (flows/shard_windows.py) is keyed like them, by
``model#shard``; its state holds each cohort's seasonal baseline (models with
``baseline.seasonality``) and policy state (:data:`drift.policy.CohortPolicy`, only for
cohorts with a problem under way).

For a model whose window detectors are all ``psi`` and ``quality`` and that has no
seasonal baseline, :func:`detectors.screen.screen` first finds, in one pass of array
expressions, the cohorts that may have a warn or alert finding. Those, the cohorts
with a policy state, and those that had one in their previous window (so their
per-cohort gauges come back to their healthy values) are scored in full by the
detectors, as :class:`~drift.findings.Finding` objects; every other cohort window is
healthy and is counted only in the aggregates (``drift_findings_total{severity="ok"}``
with the number of findings a window has, and ``drift_windows_screened_total``).
Other models score every cohort in full.

The findings sink receives the warn and alert findings; with ``engine.ok_findings``
(``drift replay`` and ``drift backtest`` turn it on: their reports draw every window)
every cohort is scored in full and every finding is written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from detectors.screen import screen
from drift import metrics
from drift.baselines import SeasonalBaseline, resume, score_window
from drift.cohort_arrays import ClosedWindows
from drift.config import Config
from drift.findings import Cohort, Finding, Severity, Window
from drift.policy import CohortPolicy, Decision, decide_cohort
from drift.summary import empty_summary
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


@dataclass(frozen=True)
class Scored:
    """One closed batch's outcome: findings for the sink and decisions for the ticket store."""

    findings: list[Finding]
    decisions: list[Decision]


class Scorer:
    """Scores :class:`ClosedWindows` against each model's detectors, then applies the policy."""

    def __init__(
        self, config: Config, plans: dict[str, ModelPlan], seeded: dict[str, dict[str, SeasonalBaseline]],
        ok_findings: bool,
    ) -> None:
        self._config = config
        self._plans = plans
        self._seeded = seeded
        self.ok_findings = ok_findings
        self._per_window: dict[str, Counter[str]] = {}

    def findings_per_window(self, model: str) -> Counter[str]:
        """How many findings each detector gives per cohort window of ``model`` (for the ok aggregate)."""
        tally = self._per_window.get(model)
        if tally is None:
            plan = self._plans[model]
            epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
            blank = empty_summary(plan.profile, track_event_ids=plan.config.tracks_event_ids())
            found = [f for d in plan.detectors for f in d.score(blank, plan.profile, Cohort(model), Window(epoch, epoch))]
            tally = self._per_window[model] = Counter(f.detector for f in found)
        return tally

    def __call__(self, state: ShardScores | None, closed: ClosedWindows) -> tuple[ShardScores, Scored]:
        state = state if state is not None else ShardScores()
        plan = self._plans[closed.model]
        model = plan.config
        seasonal = model.baseline.seasonality != "none"
        metrics.WINDOWS_CLOSED.labels(closed.model).inc(len(closed))
        flagged = None if seasonal or self.ok_findings else screen(closed, plan.profile, plan.detectors)
        if flagged is None:
            chosen = list(range(len(closed)))
        else:
            recent = state.recent
            for i, cohort in enumerate(closed.cohorts):
                key = cohort.key
                if key in recent:
                    flagged[i] = True
                    recent.discard(key)
                elif key in state.policy:
                    flagged[i] = True
            chosen = np.flatnonzero(flagged).tolist()
            healthy = len(closed) - len(chosen)
            if healthy:
                metrics.WINDOWS_SCREENED.labels(closed.model).inc(healthy)
                for detector, n in self.findings_per_window(closed.model).items():
                    metrics.FINDINGS.labels(closed.model, detector, Severity.OK.value).inc(n * healthy)
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
            else:
                found = [f for d in plan.detectors for f in d.score(summary, plan.profile, cohort, closed.window)]
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


def scorer(
    config: Config, plans: dict[str, ModelPlan], seeded: dict[str, dict[str, SeasonalBaseline]], ok_findings: bool,
) -> Callable[[ShardScores | None, ClosedWindows], tuple[ShardScores, Scored]]:
    """The function of the ``score_windows`` step (``op.stateful_map`` keyed by ``model#shard``)."""
    return Scorer(config, plans, seeded, ok_findings)
