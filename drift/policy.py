"""Alert policy and routing: which findings become tickets, and where they go.

Detectors measure; this module decides. State is a small immutable value per
finding fingerprint, so the flow can keep it keyed and snapshot it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drift.config import ModelConfig, RoutingRule
from drift.findings import Finding, Severity


@dataclass(frozen=True, slots=True)
class PolicyState:
    """Consecutive alerting windows seen for one fingerprint."""

    consecutive: int = 0
    last_window_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """A finding that policy turned into a ticket, and how it is routed."""

    finding: Finding
    action: str
    approvals: int


def step(state: PolicyState | None, finding: Finding, model: ModelConfig) -> tuple[PolicyState, bool]:
    """Advance the state with one finding; True when it should open or update a ticket.

    A finding counts when it is at alert severity and was not skipped. It opens a
    ticket once ``policy.consecutive_windows`` alerting windows follow each other
    (a gap of one window or more resets the count).
    """
    state = state or PolicyState()
    alerting = finding.severity is Severity.ALERT and finding.skipped is None
    if not alerting:
        return PolicyState(0, finding.window.end), False
    contiguous = state.last_window_end is not None and finding.window.start <= state.last_window_end
    consecutive = state.consecutive + 1 if contiguous else 1
    return PolicyState(consecutive, finding.window.end), consecutive >= model.policy.consecutive_windows


def route(finding: Finding, model: ModelConfig, rules: list[RoutingRule]) -> Decision:
    """The first routing rule whose ``when`` holds; ``ticket`` when none does."""
    for rule in rules:
        when = rule.when
        if when.impact is not None and when.impact != model.impact.tier:
            continue
        if when.regulated is not None and when.regulated != model.impact.regulated:
            continue
        if when.severity is not None and when.severity != finding.severity.value:
            continue
        if when.model is not None and when.model != model.name:
            continue
        return Decision(finding, rule.action, rule.approvals)
    return Decision(finding, "ticket", 1)
