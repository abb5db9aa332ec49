"""Alert policy (consecutive windows, hysteresis, min samples) and routing, on constructed findings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.config import FeatureSpec, ImpactConfig, ModelConfig, PolicyConfig, RoutingRule, RoutingWhen
from drift.findings import Cohort, Finding, Severity, Window
from drift.policy import (
    CohortPolicy,
    PolicyState,
    decide,
    decide_cohort,
    evaluate,
    in_cooldown,
    is_idle,
    quiet_until,
    route,
)

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


def model(**policy: object) -> ModelConfig:
    return ModelConfig(name="credit-risk", features={"age": FeatureSpec(type="numeric")},
                       impact=ImpactConfig(tier="high"), policy=PolicyConfig.model_validate(policy))


def finding(i: int, value: float, *, n: int = 900, skipped: str | None = None) -> Finding:
    window = Window(T0 + i * WINDOW, T0 + (i + 1) * WINDOW)
    return Finding("psi", Cohort("credit-risk"), window, "age", value, Severity.of(value, 0.1, 0.25),
                   0.1, 0.25, n, 5000, "reference", skipped=skipped)


def run(config: ModelConfig, values: list[tuple[int, float] | tuple[int, float, int]]) -> list[str | None]:
    state: PolicyState | None = None
    out: list[str | None] = []
    for item in values:
        i, value, *rest = item
        state, verdict = evaluate(state, finding(i, value, n=rest[0] if rest else 900), config)
        out.append(verdict)
    return out


@pytest.mark.parametrize(
    ("policy", "values", "expected"),
    [
        ({}, [(0, 0.3), (1, 0.3), (2, 0.05), (3, 0.3)], ["alert", "alert", "clear", "alert"]),
        ({"consecutive_windows": 2}, [(0, 0.3), (1, 0.3), (2, 0.3)], [None, "alert", "alert"]),
        # A gap of one window restarts the count.
        ({"consecutive_windows": 2}, [(0, 0.3), (2, 0.3), (3, 0.3)], [None, None, "alert"]),
        # Hysteresis: 0.2 (warn) stays above 0.8 x 0.25 = 0.2, so the problem stays active
        # and the next alert updates at once, without two windows in a row.
        ({"consecutive_windows": 2, "clear_ratio": 0.8, "clear_windows": 2},
         [(0, 0.3), (1, 0.3), (2, 0.2), (3, 0.3), (4, 0.1), (5, 0.3), (6, 0.1), (7, 0.1), (8, 0.3)],
         [None, "alert", None, "alert", None, "alert", None, "clear", None]),
        # Too few samples: no evidence, neither counted nor breaking the run.
        ({"consecutive_windows": 2, "min_samples": 100}, [(0, 0.3), (1, 0.9, 10), (2, 0.3)],
         [None, None, "alert"]),
        ({"min_samples": 100}, [(0, 0.3), (1, 0.01, 10)], ["alert", None]),
    ],
    ids=["defaults", "consecutive", "gap", "hysteresis", "min-samples", "no-clear-on-few-samples"],
)
def test_policy_verdicts(policy: dict[str, object], values: list[tuple[int, float]], expected: list[str | None]) -> None:
    assert run(model(**policy), values) == expected  # type: ignore[arg-type]


def test_skipped_findings_never_count() -> None:
    config = model()
    state, verdict = evaluate(None, finding(0, 0.9, skipped="too few values"), config)
    assert verdict is None and not state.active


def test_routing_first_match_wins_and_clears_are_not_routed() -> None:
    rules = [RoutingRule(when=RoutingWhen(impact="high"), action="human_review", approvals=2),
             RoutingRule(action="ticket")]
    decision = route(finding(0, 0.3), model(), rules)
    assert (decision.action, decision.approvals, decision.kind) == ("human_review", 2, "alert")
    state, first = decide(None, finding(0, 0.3), model(), rules)
    _, cleared = decide(state, finding(1, 0.01), model(), rules)
    assert first is not None and cleared is not None
    assert (cleared.kind, cleared.action) == ("clear", "ticket")


@st.composite
def cohort_streams(draw: st.DrawFn) -> tuple[dict[str, object], list[list[Finding]]]:
    """Policy settings and one cohort's windows (in time order, with gaps) of findings."""
    policy = {
        "consecutive_windows": draw(st.integers(1, 3)), "clear_windows": draw(st.integers(1, 3)),
        "clear_ratio": draw(st.sampled_from([0.5, 0.8, 1.0])), "min_samples": draw(st.sampled_from([0, 100])),
    }
    windows = draw(st.lists(st.integers(0, 3), min_size=1, max_size=25))  # step to the next window
    features = ["age", "income", ""]
    stream, index = [], 0
    for step in windows:
        index += step
        found = []
        for feature in draw(st.lists(st.sampled_from(features), max_size=3, unique=True)):
            value = draw(st.sampled_from([0.01, 0.15, 0.21, 0.3, 0.9]))
            n = draw(st.sampled_from([10, 900]))
            skipped = draw(st.sampled_from([None, None, None, "too few values"]))
            window = Window(T0 + index * WINDOW, T0 + (index + 1) * WINDOW)
            found.append(Finding("psi", Cohort("credit-risk"), window, feature or None, value,
                                 Severity.of(value, 0.1, 0.25), 0.1, 0.25, n, 5000, "reference", skipped=skipped))
        stream.append(found)
    return policy, stream


@settings(max_examples=300, deadline=None)
@given(cohort_streams())
def test_cohort_policy_decides_as_one_state_per_fingerprint(case: tuple[dict[str, object], list[list[Finding]]]) -> None:
    """Keeping only non-idle states per cohort gives the same decisions as a state per fingerprint."""
    policy, stream = case
    config = model(**policy)
    rules = [RoutingRule(when=RoutingWhen(impact="high"), action="human_review", approvals=2)]
    by_fingerprint: dict[str, PolicyState] = {}
    expected = []
    for found in stream:
        for f in found:
            by_fingerprint[f.fingerprint], decision = decide(by_fingerprint.get(f.fingerprint), f, config, rules)
            if decision is not None:
                expected.append(decision)
    states: CohortPolicy | None = None
    got = []
    for found in stream:
        states, decisions = decide_cohort(states, found, config, rules)
        got.extend(decisions)
        assert states is None or (states and not any(is_idle(s) for s in states.values()))
    assert got == expected
    # Nothing is kept for a fingerprint whose last state is idle.
    kept = {f.feature or "" for found in stream for f in found if not is_idle(by_fingerprint[f.fingerprint])}
    assert {feature for _, feature in (states or {})} == kept


# --- cooldown --------------------------------------------------------------------

RESOLVED_END = T0 + 3 * WINDOW
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("window_start", "cooldown", "expected"),
    [
        (RESOLVED_END + timedelta(minutes=55), HOUR, True),
        (RESOLVED_END + HOUR, HOUR, False),  # the first window starting at the end reopens
        (RESOLVED_END + timedelta(minutes=61), HOUR, False),
        (RESOLVED_END, timedelta(0), False),  # no cooldown: the next window reopens
        (RESOLVED_END - WINDOW, timedelta(0), True),  # a late window, older than the ticket's latest
        (RESOLVED_END - WINDOW, HOUR, True),
        # The same instant in another offset decides the same.
        ((RESOLVED_END + HOUR).astimezone(timezone(timedelta(hours=2))), HOUR, False),
        ((RESOLVED_END + timedelta(minutes=30)).astimezone(timezone(timedelta(hours=-5))), HOUR, True),
    ],
    ids=["inside", "at-the-end", "after", "zero-next", "zero-late", "late", "offset-at-end", "offset-inside"],
)
def test_in_cooldown_edges(window_start: datetime, cooldown: timedelta, expected: bool) -> None:
    assert in_cooldown(window_start, RESOLVED_END, cooldown) is expected
    assert quiet_until(RESOLVED_END, cooldown) == RESOLVED_END + cooldown


@settings(max_examples=200, deadline=None)
@given(st.integers(-10_000, 10_000), st.integers(-10_000, 10_000), st.integers(0, 5_000), st.integers(0, 5_000))
def test_in_cooldown_is_the_formula_and_monotone(a: int, b: int, c: int, d: int) -> None:
    """Suppressed exactly when the window starts less than the cooldown after the resolved end;
    an earlier start or a longer cooldown never turns a suppression into a reopening."""
    start_a, start_b = RESOLVED_END + timedelta(seconds=a), RESOLVED_END + timedelta(seconds=b)
    short, long = sorted((timedelta(seconds=c), timedelta(seconds=d)))
    assert in_cooldown(start_a, RESOLVED_END, short) == (a < short.total_seconds())
    if a <= b and in_cooldown(start_b, RESOLVED_END, short):
        assert in_cooldown(start_a, RESOLVED_END, short)
    if in_cooldown(start_a, RESOLVED_END, short):
        assert in_cooldown(start_a, RESOLVED_END, long)
