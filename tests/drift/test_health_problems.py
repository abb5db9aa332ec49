"""/readyz reports a dependency the running job lost (Kafka) and is ready again once it is back."""

from __future__ import annotations

from drift.health import Health


def test_a_problem_makes_the_job_not_ready_until_it_clears() -> None:
    health = Health()
    for check in ("config", "baselines", "flow"):
        health.passed(check)
    assert health.readiness() == (True, {"ready": True, "stopping": False,
                                         "checks": {"config": True, "baselines": True, "flow": True}})
    health.problem("kafka", "lost Kafka at 127.0.0.1:9092 (Connection refused)")
    ready, document = health.readiness()
    assert not ready and document["problems"] == {"kafka": "lost Kafka at 127.0.0.1:9092 (Connection refused)"}
    health.problem("kafka", None)
    assert health.readiness()[0]
