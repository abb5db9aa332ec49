"""Alert policy (consecutive windows, hysteresis, min samples) and routing, on constructed findings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drift.config import FeatureSpec, ImpactConfig, ModelConfig, PolicyConfig, RoutingRule, RoutingWhen
from drift.findings import Cohort, Finding, Severity, Window
from drift.policy import PolicyState, decide, evaluate, route

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
