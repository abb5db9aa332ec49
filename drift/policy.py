"""Alert policy and routing: which findings become tickets, and where they go.

Detectors measure; this module decides. State is a small immutable value per
finding fingerprint, so the flow can keep it keyed and snapshot it.

The policy of a model (``models[].policy`` in the YAML):

* **thresholds**: each detector's own ``warn``/``alert`` set a finding's
  severity; only ``alert`` findings count here.
* **consecutive_windows** (N): a problem becomes *active*, and opens or
  updates a ticket, once N alerting windows follow each other. A window that
  is not alerting, or a gap of one window or more, starts the count again.
* **hysteresis** (``clear_ratio``, ``clear_windows``): an active problem
  stays active, and every alerting window updates its ticket at once, until
  its value stays below ``clear_ratio x alert`` for ``clear_windows`` windows
  in a row. Then it *clears* (the ticket is marked inactive) and must again
  alert N windows in a row. Values between the clear level and the alert
  threshold keep it active without updating the ticket.
* **min_samples**: a finding measured on fewer values, or one a detector
  skipped, is no evidence either way: it neither counts nor resets a count.
* **cooldown**: a resolved ticket does not reopen while its problem recurs
  within the cooldown (:func:`in_cooldown`, event time). The ticket store asks
  this when it records a finding on a resolved fingerprint
  (:meth:`drift.tickets.TicketStore.record`), in the transaction that reads the
  ticket, so concurrent workers decide on the same resolved ticket.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, TypeAlias

from drift.config import ModelConfig, RoutingRule
from drift.findings import Finding, Severity

Verdict: TypeAlias = Literal["alert", "clear"]


@dataclass(frozen=True, slots=True)
class PolicyState:
    """What policy remembers about one fingerprint between windows."""

    consecutive: int = 0
    """Alerting windows in a row so far."""
    last_window_end: datetime | None = None
    active: bool = False
    """The problem has alerted N windows in a row and has not cleared since."""
    n_below_clear: int = 0
    """Windows in a row below the clear level while active."""
    run_start: datetime | None = None
    """When the drift of the current run of alerting windows started (None outside a run): the
    start of the first of the windows at warn or alert, in a row, that led up to the run's first
    alerting window. What a ticket opened by this run records as ``drift_started``."""
    warn_start: datetime | None = None
    """The start of the first of the windows at warn in a row up to the last one seen (None when
    the last window was not at warn): where a run that alerts next looks back to."""

    def __setstate__(self, state: tuple[object, ...]) -> None:
        # A snapshot taken before a field was added holds fewer values: the rest take their defaults.
        defaults = (0, None, False, 0, None, None)
        values = tuple(state) + defaults[len(state):]
        for name, value in zip(("consecutive", "last_window_end", "active", "n_below_clear", "run_start", "warn_start"),
                               values):
            object.__setattr__(self, name, value)


@dataclass(frozen=True, slots=True)
class Decision:
    """A finding that policy turned into a ticket change, and how it is routed.

    ``kind`` is ``alert`` (open or update a ticket) or ``clear`` (hysteresis
    cleared an active problem). ``action`` is the routing rule's action:
    ``ticket``, ``human_review`` or ``alert_only`` (no ticket at all).
    ``drift_started`` (alerts only) is when the drift that led to this one started: the
    start of the first of the windows at warn or alert in a row before it
    (:attr:`PolicyState.run_start`).
    """

    finding: Finding
    action: str
    approvals: int
    kind: Verdict = "alert"
    drift_started: datetime | None = None


def counts(finding: Finding, model: ModelConfig) -> bool:
    """Whether ``finding`` is evidence at all (not skipped, enough samples)."""
    return finding.skipped is None and finding.n_current >= model.policy.min_samples


def evaluate(state: PolicyState | None, finding: Finding, model: ModelConfig) -> tuple[PolicyState, Verdict | None]:
    """Advance the state with one finding; the verdict says what the ticket should do.

    >>> from datetime import UTC, datetime, timedelta
    >>> from drift.config import ModelConfig, PolicyConfig, FeatureSpec
    >>> from drift.findings import Cohort, Window
    >>> model = ModelConfig(name="m", features={"x": FeatureSpec(type="numeric")},
    ...                     policy=PolicyConfig(consecutive_windows=2, clear_windows=2))
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> def f(i, v):
    ...     sev = Severity.of(v, 0.1, 0.25)
    ...     w = Window(t + i * timedelta(minutes=5), t + (i + 1) * timedelta(minutes=5))
    ...     return Finding("psi", Cohort("m"), w, "x", v, sev, 0.1, 0.25, 900, 900, "reference")
    >>> state, out = None, []
    >>> for i, v in enumerate([0.3, 0.3, 0.2, 0.3, 0.05, 0.05, 0.3]):
    ...     state, verdict = evaluate(state, f(i, v), model)
    ...     out.append(verdict)
    >>> out
    [None, 'alert', None, 'alert', None, 'clear', None]
    """
    state = state or PolicyState()
    end = finding.window.end
    later = end if state.last_window_end is None else max(end, state.last_window_end)
    if not counts(finding, model):
        # No evidence either way; moving the end on keeps the next window contiguous.
        return replace(state, last_window_end=later), None
    policy = model.policy
    contiguous = state.last_window_end is not None and finding.window.start <= state.last_window_end
    if finding.severity is Severity.ALERT:
        consecutive = state.consecutive + 1 if contiguous else 1
        if consecutive > 1 and state.run_start is not None:
            run_start = state.run_start
        else:  # a new run: the drift started with the warn windows right before it, if any
            run_start = state.warn_start if contiguous and state.warn_start is not None else finding.window.start
        if state.active or consecutive >= policy.consecutive_windows:
            return PolicyState(consecutive, later, True, 0, run_start), "alert"
        return PolicyState(consecutive, later, False, 0, run_start), None
    warn_start = None
    if finding.severity is Severity.WARN:  # the drift goes on below alert: remember where it started
        if contiguous and state.warn_start is not None:
            warn_start = state.warn_start
        elif contiguous and state.consecutive and state.run_start is not None:
            warn_start = state.run_start
        else:
            warn_start = finding.window.start
    if not state.active:
        return PolicyState(0, later, False, 0, None, warn_start), None
    if finding.value >= policy.clear_ratio * finding.alert:
        return PolicyState(0, later, True, 0, None, warn_start), None
    below = state.n_below_clear + 1
    if below >= policy.clear_windows:
        return PolicyState(0, later, False, 0, None, warn_start), "clear"
    return PolicyState(0, later, True, below, None, warn_start), None


def step(state: PolicyState | None, finding: Finding, model: ModelConfig) -> tuple[PolicyState, bool]:
    """Advance the state with one finding; True when it should open or update a ticket."""
    new_state, verdict = evaluate(state, finding, model)
    return new_state, verdict == "alert"


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


def decide(
    state: PolicyState | None, finding: Finding, model: ModelConfig, rules: list[RoutingRule]
) -> tuple[PolicyState, Decision | None]:
    """:func:`evaluate` then :func:`route`: the flow's one policy step per finding."""
    new_state, verdict = evaluate(state, finding, model)
    if verdict is None:
        return new_state, None
    if verdict == "clear":
        return new_state, Decision(finding, "ticket", 1, kind="clear")
    return new_state, replace(route(finding, model, rules), drift_started=new_state.run_start)


PolicyKey: TypeAlias = tuple[str, str]
"""``(detector, feature)``: a finding's identity within its cohort (``feature`` may be ``""``)."""

CohortPolicy: TypeAlias = dict[PolicyKey, PolicyState]
"""The policy state of one cohort: only the findings that are part of a problem.

A state with no alerting window counted, not active and nothing counted towards a clear
behaves as no state at all (:func:`is_idle`), so it is not kept: a cohort whose findings
are all healthy holds nothing, however many features and detectors it has.
"""


def is_idle(state: PolicyState) -> bool:
    """True when ``state`` decides like a fingerprint never seen before.

    With windows of one fingerprint in time order (the flow closes a cohort's windows in
    order), ``last_window_end`` only matters while alerting windows are being counted or
    warn windows looked back over.
    """
    return state.consecutive == 0 and not state.active and state.n_below_clear == 0 and state.warn_start is None


def decide_cohort(
    states: CohortPolicy | None, findings: list[Finding], model: ModelConfig, rules: list[RoutingRule],
) -> tuple[CohortPolicy | None, list[Decision]]:
    """:func:`decide` for each of one cohort's findings, in order; keeps only non-idle states.

    ``states`` is updated in place. Returns None instead of an empty mapping, so a keyed
    step can forget the cohort.
    """
    states = states if states is not None else {}
    decisions = []
    for finding in findings:
        key = (finding.detector, finding.feature or "")
        before = states.get(key)
        if before is None and finding.severity is Severity.OK:
            continue  # from no state, only a window at warn or alert changes anything
        state, decision = decide(before, finding, model, rules)
        if is_idle(state):
            states.pop(key, None)
        else:
            states[key] = state
        if decision is not None:
            decisions.append(decision)
    return (states or None), decisions


def quiet_until(last_window_end: datetime, cooldown: timedelta) -> datetime:
    """The end of the cooldown of a resolved ticket whose latest window ended at ``last_window_end``.

    Event time, not wall-clock time, so a replay decides as the live run did.
    """
    return last_window_end + cooldown


def in_cooldown(window_start: datetime, last_window_end: datetime, cooldown: timedelta) -> bool:
    """Whether an alerting window starting at ``window_start`` falls in a resolved ticket's cooldown.

    ``last_window_end`` is the end of the latest window the resolved ticket recorded.
    A window starting before :func:`quiet_until` is suppressed (counted on the
    ticket, which stays resolved); one starting at or after it reopens the ticket.
    A late window, older than the ticket's latest, is within any cooldown,
    even ``0``.

    >>> from datetime import UTC, datetime, timedelta
    >>> end = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    >>> hour = timedelta(hours=1)
    >>> in_cooldown(end + timedelta(minutes=55), end, hour), in_cooldown(end + hour, end, hour)
    (True, False)
    """
    return window_start < quiet_until(last_window_end, cooldown)
