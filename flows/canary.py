"""Canary wiring: closed cohort windows → route windows → pairs of routes → ``canary`` findings.

For every model with ``canary:``::

    closed ─ canary_route_windows ─ pair_canary_routes (stateful, keyed by cohort group) ─┬─ findings
                                                                                          └─ canary_halts

``canary_route_windows`` turns each closed cohort window whose route label names the champion
or a compared route into a :class:`~detectors.canary.RouteWindow` (the compared fields' bin
counts, copied out of the :class:`~drift.cohort_arrays.ClosedWindows`), keyed by its *group*:
the model and the cohort's labels without the route. The routes of one group may live in
different shards (a shard is chosen by the full cohort key), so they meet in a step keyed by
the group: :class:`Pairing` holds a group's route windows until their partner arrives.

With ``canary.quality`` (and ``labels:``) the labels step's judged cohort windows take the same
road: ``canary_quality_windows`` turns each into a :class:`~detectors.canary.QualityWindow`
(its labelled and correctly predicted counts), ``pair_canary_quality`` pairs them by group and
window, and the routes' accuracy is compared (:meth:`~detectors.canary.CanaryDetector.compare_quality`).
Windows still waiting for labels at the end of the input are not compared.

The champion's window waits for every compared route of the same window; a compared route's
window waits for the champion's. A window's lone routes are dropped once a window more than
:data:`WAIT_WINDOWS` later arrives for the group, or at the end of the input, so a group holds
at most ``WAIT_WINDOWS + 1`` windows of its routes (``QUALITY_WAIT_WINDOWS + 1`` for the
quality, judged when the labels allow), and a group with nothing waiting holds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Union, cast

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Stream
from bytewax.operators import StatefulLogic

from detectors.canary import HALT, CanaryConfig, CanaryDetector, QualityWindow, RouteWindow
from drift import metrics
from drift.cohort_arrays import ClosedWindows
from drift.findings import Cohort, Finding, Severity
from drift.labels.judging import QualityReport
from drift.windowing import to_micros
from flows.plans import ModelPlan

WAIT_WINDOWS = 1
"""Windows a lone route's window waits for its partner beyond its own (see the module text)."""
QUALITY_WAIT_WINDOWS = 3
"""The same for the routes' judged quality: a window is judged when its labels reach the coverage
gate, and the routes of one window may reach it a few windows apart."""

Routed = Union[RouteWindow, QualityWindow]
"""What is paired: route windows (distributions) or judged route windows (quality)."""


@dataclass(frozen=True)
class CanaryPlan:
    """One model's canary comparison: its settings and the fields compared."""

    model: str
    config: CanaryConfig
    detector: CanaryDetector

    @property
    def routes(self) -> frozenset[str]:
        return frozenset([self.config.champion, *self.config.compare])


def canary_plans(plans: list[ModelPlan]) -> dict[str, CanaryPlan]:
    """The canary comparison of each model plan with ``canary:``, by model name."""
    out = {}
    for plan in plans:
        config = plan.config.canary
        if config is None:
            continue
        profiles = {**plan.profile.features, **plan.profile.predictions}
        names = list(profiles) if config.fields == "*" else [name for name in config.fields if name in profiles]
        detector = CanaryDetector(config, names, [profiles[name].bin_labels() for name in names])
        out[plan.config.name] = CanaryPlan(plan.config.name, config, detector)
    return out


def group_of(cohort: Cohort, label: str) -> Cohort:
    """``cohort`` without its route label: the routes of one group are compared with each other."""
    return Cohort(cohort.model, tuple((k, v) for k, v in cohort.labels if k != label))


def route_windows(plans: dict[str, CanaryPlan]) -> Callable[[ClosedWindows], list[tuple[str, RouteWindow]]]:
    """The route windows of a batch of closed cohort windows, keyed by group (see the module text)."""
    def split(closed: ClosedWindows) -> list[tuple[str, RouteWindow]]:
        plan = plans.get(closed.model)
        if plan is None:
            return []
        label, routes = plan.config.label, plan.routes
        layout = closed.layout
        columns = [layout.index(name) for name in plan.detector.fields]
        out = []
        for i, cohort in enumerate(closed.cohorts):
            route = dict(cohort.labels).get(label)
            if route is None or route not in routes:
                continue
            counts = tuple(np.array(closed.field_counts(f)[i], dtype=np.int64) for f in columns)
            out.append((group_of(cohort, label).key,
                        RouteWindow(cohort, route, closed.window, int(closed.n_events[i]), counts)))
        return out

    return split


@dataclass
class Pairing:
    """One group's route windows waiting for their partner; pure, so tests drive it directly."""

    champion: str
    compare: tuple[str, ...]
    wait: int = WAIT_WINDOWS
    """Windows a lone route's window waits beyond its own."""
    waiting: dict[int, dict[str, Routed]] = field(default_factory=dict)
    """Window start (µs) -> route -> its window."""
    paired: dict[int, set[str]] = field(default_factory=dict)
    """Window start (µs) -> the compared routes already paired with the champion."""
    newest: int | None = None
    """Start (µs) of the newest window seen."""

    def offer(self, item: Routed) -> list[tuple[Routed, Routed]]:
        """The (champion, route) pairs ``item`` completes; it waits when its partner has not come."""
        start = to_micros(item.window.start)
        size = to_micros(item.window.end) - start
        if self.newest is not None and start < self.newest - self.wait * size:
            return []  # its window's routes were dropped already
        if self.newest is None or start > self.newest:
            self.newest = start
            for old in [w for w in {*self.waiting, *self.paired} if w < start - self.wait * size]:
                self._forget(old)
        routes = self.waiting.setdefault(start, {})
        paired = self.paired.setdefault(start, set())
        out: list[tuple[Routed, Routed]] = []
        if item.route == self.champion:
            routes[item.route] = item
            for route in self.compare:
                other = routes.pop(route, None)
                if other is not None:
                    out.append((item, other))
                    paired.add(route)
        elif item.route not in paired:
            champion = routes.get(self.champion)
            if champion is None:
                routes[item.route] = item
            else:
                out.append((champion, item))
                paired.add(item.route)
        if paired.issuperset(self.compare):
            # Every route compared: nothing waits, and what it paired is kept (as long as the
            # window could still arrive) so that a window offered again is not compared twice.
            self.waiting.pop(start, None)
        elif not routes:
            self._forget(start)
        return out

    def _forget(self, start: int) -> None:
        self.waiting.pop(start, None)
        self.paired.pop(start, None)

    def empty(self) -> bool:
        return not self.waiting

    def n_waiting(self) -> int:
        """Route windows held."""
        return sum(len(routes) for routes in self.waiting.values())

    def copy(self) -> Pairing:
        """An independent copy (the route windows themselves are immutable and shared)."""
        return Pairing(self.champion, self.compare, self.wait, {w: dict(r) for w, r in self.waiting.items()},
                       {w: set(p) for w, p in self.paired.items()}, self.newest)


class PairingLogic(StatefulLogic[Routed, Finding, Pairing]):
    """A group's :class:`Pairing` as Bytewax stateful logic; each pair is compared at once.

    ``quality``: the items are judged route windows, compared on their accuracy. The group's
    model (and so its plan) is the first item's: the state is built then."""

    def __init__(self, plans: dict[str, CanaryPlan], resume: Pairing | None, quality: bool = False) -> None:
        self.plans = plans
        self.state = resume
        self.quality = quality

    def on_item(self, value: Routed) -> tuple[Iterable[Finding], bool]:
        plan = self.plans[value.cohort.model]
        if self.state is None:
            self.state = Pairing(plan.config.champion, tuple(plan.config.compare),
                                 QUALITY_WAIT_WINDOWS if self.quality else WAIT_WINDOWS)
        out: list[Finding] = []
        for champion, challenger in self.state.offer(value):
            if isinstance(champion, QualityWindow) and isinstance(challenger, QualityWindow):
                found = plan.detector.compare_quality(champion, challenger)
            elif isinstance(champion, RouteWindow) and isinstance(challenger, RouteWindow):
                found = plan.detector.compare(champion, challenger)
            else:
                raise TypeError(f"cannot compare a {type(champion).__name__} with a {type(challenger).__name__}")
            for finding in found:
                metrics.FINDINGS.labels(plan.model, finding.detector, finding.severity.value).inc()
            metrics.record_findings(challenger.cohort, found)
            out.extend(found)
        return out, StatefulLogic.DISCARD if self.state.empty() else StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Finding], bool]:
        # The input ended: a lone route's partner will not come.
        return [], StatefulLogic.DISCARD

    def snapshot(self) -> Pairing:
        assert self.state is not None
        return self.state.copy()


def canary_findings(plans: dict[str, CanaryPlan], closed: Stream[tuple[str, ClosedWindows]]) -> Stream[Finding]:
    """``canary`` and ``canary.halt`` findings of the models in ``plans``, from the closed cohort windows."""
    keyed = op.flat_map("canary_route_windows", op.key_rm("unkey_canary_windows", closed), route_windows(plans))
    routed = cast(Stream[tuple[str, Routed]], keyed)
    paired = op.stateful("pair_canary_routes", routed, lambda resume: PairingLogic(plans, resume))
    return op.key_rm("unkey_canary_findings", paired)


def quality_windows(plans: dict[str, CanaryPlan]) -> Callable[[QualityReport], list[tuple[str, QualityWindow]]]:
    """The judged route window of a quality record, keyed by group, for the models with ``canary.quality``.

    Windows still waiting for labels at the end of the input (not judged) are not compared."""
    def split(report: QualityReport) -> list[tuple[str, QualityWindow]]:
        plan = plans.get(report.cohort.model)
        if plan is None or plan.config.quality is None or report.judged_by is None:
            return []
        route = dict(report.cohort.labels).get(plan.config.label)
        if route is None or route not in plan.routes:
            return []
        accuracy = report.metrics.get("accuracy")
        n_labelled = report.n_labelled if accuracy is not None else 0
        n_correct = int(round(float(accuracy) * n_labelled)) if accuracy is not None else 0
        return [(group_of(report.cohort, plan.config.label).key, QualityWindow(
            report.cohort, route, report.window, report.n_predictions, n_labelled, n_correct, report.judged_by))]

    return split


def canary_quality_findings(
    plans: dict[str, CanaryPlan], quality: Stream[QualityReport],
) -> Stream[Finding]:
    """``canary.quality`` findings and their ``canary.halt`` verdicts, from the judged cohort windows."""
    keyed = op.flat_map("canary_quality_windows", quality, quality_windows(plans))
    routed = cast(Stream[tuple[str, Routed]], keyed)
    paired = op.stateful("pair_canary_quality", routed, lambda resume: PairingLogic(plans, resume, quality=True))
    return op.key_rm("unkey_canary_quality", paired)


def compares_quality(plans: dict[str, CanaryPlan]) -> bool:
    """Whether some model compares its routes' quality (``canary.quality``)."""
    return any(plan.config.quality is not None for plan in plans.values())


def halts_of(findings: Stream[Finding]) -> Stream[Finding]:
    """The ``canary.halt`` findings at alert: the signals a rollout controller acts on."""
    return op.filter("canary_halts", findings, is_halt)


def is_halt(finding: Finding) -> bool:
    """Whether ``finding`` is a halt signal (a ``canary.halt`` finding at alert)."""
    return finding.detector == HALT and finding.severity is Severity.ALERT
