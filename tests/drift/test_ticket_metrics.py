"""The ticket-state gauges (drift/metrics.py TicketState), read from a real SQLite ticket store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import drift.metrics
from drift.findings import Cohort, Finding, Severity, Window
from drift.metrics import TicketState
from drift.tickets import TicketStatus, TicketStore

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
ACME = Cohort("credit-risk", (("region", "eu-west-1"), ("tenant", "acme")))
GLOBEX = Cohort("credit-risk", (("region", "us-east-1"), ("tenant", "globex")))


def finding(cohort: Cohort, detector: str = "psi", feature: str | None = "income") -> Finding:
    window = Window(T0, T0 + timedelta(minutes=30))
    return Finding(detector=detector, cohort=cohort, window=window, feature=feature, value=0.4,
                   severity=Severity.ALERT, warn=0.1, alert=0.25, n_current=900, n_reference=5000,
                   baseline="reference", evidence={"bins": 10})


def samples(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


@pytest.fixture
def store(tmp_path: Path) -> TicketStore:
    return TicketStore.open(tmp_path / "tickets.db")


def test_gauges_count_active_live_tickets_by_routing_and_list_cohort_and_feature(store: TicketStore) -> None:
    store.record(finding(ACME), action="ticket")
    store.record(finding(GLOBEX), action="ticket")
    store.record(finding(ACME, "quality.null_rate"), action="ticket")
    reviewed = store.record(finding(GLOBEX, "skew.jensen_shannon", None), action="human_review", approvals=2)
    cleared = store.record(finding(ACME, "psi", "age"), action="ticket")
    resolved = store.record(finding(GLOBEX, "psi", "age"), action="ticket")
    assert reviewed is not None and cleared is not None and resolved is not None
    later = Window(T0 + timedelta(minutes=30), T0 + timedelta(minutes=60))
    # hysteresis, in a later window: live but no longer active
    assert store.clear(replace(finding(ACME, "psi", "age"), window=later)) is not None
    store.set_status(resolved.ticket.id, TicketStatus.RESOLVED, actor="oncall")

    registry = CollectorRegistry()
    state = TicketState(registry=registry)
    assert "drift_tickets_open" not in samples(registry)  # nothing read yet: no series at all
    state.update(store.live(), models=["credit-risk", "fraud"], now=1234.0)
    got = samples(registry)

    assert sorted((labels["detector"], labels["routing"], labels["severity"], value)
                  for labels, value in got["drift_tickets_open"]) == [
        ("psi", "ticket", "alert", 2.0),
        ("quality.null_rate", "ticket", "alert", 1.0),
        ("skew.jensen_shannon", "human_review", "alert", 1.0),
    ]
    assert sorted((labels["model"], value) for labels, value in got["drift_review_queue"]) == [
        ("credit-risk", 1.0), ("fraud", 0.0)]
    info = {labels["ticket"]: labels for labels, value in got["drift_ticket_info"] if value == 1}
    assert reviewed.ticket.id in info and cleared.ticket.id not in info and resolved.ticket.id not in info
    assert info[reviewed.ticket.id]["cohort"] == "region=us-east-1|tenant=globex"
    assert info[reviewed.ticket.id]["feature"] == "-"
    assert {labels["feature"] for labels in info.values()} == {"income", "-"}
    assert got["drift_ticket_state_timestamp_seconds"] == [({}, 1234.0)]
    assert all(value == 0 for _, value in got["drift_ticket_info_omitted"])

    # A review moved by a person (the CLI) shows at the next read; a resolved ticket is gone.
    store.set_status(info[next(iter(sorted(info)))]["ticket"], TicketStatus.RESOLVED, actor="oncall")
    state.update(store.live(), models=["credit-risk"], now=1300.0)
    assert sum(value for _, value in samples(registry)["drift_tickets_open"]) == 3


def test_ticket_info_is_capped_and_the_rest_counted(store: TicketStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drift.metrics, "MAX_TICKET_INFO", 3)
    for i in range(5):
        store.record(finding(Cohort("credit-risk", (("tenant", f"t{i}"),))), action="ticket")
    registry = CollectorRegistry()
    state = TicketState(registry=registry)
    state.update(store.live(), models=["credit-risk"])
    got = samples(registry)
    listed = sorted(labels["ticket"] for labels, _ in got["drift_ticket_info"])
    assert listed == sorted(t.id for t in store.live())[:3]  # the oldest ids
    assert got["drift_ticket_info_omitted"] == [({"model": "credit-risk"}, 2.0)]
    assert got["drift_tickets_open"] == [
        ({"model": "credit-risk", "detector": "psi", "severity": "alert", "routing": "ticket"}, 5.0)]


def test_alert_only_problems_are_counted_until_they_clear() -> None:
    registry = CollectorRegistry()
    state = TicketState(registry=registry)
    state.alert_only("f1", "credit-risk", "embedding.mmd", "alert", active=True)
    state.alert_only("f1", "credit-risk", "embedding.mmd", "alert", active=True)  # the next alerting window
    state.alert_only("f2", "credit-risk", "embedding.mmd", "alert", active=True)
    assert samples(registry)["drift_alert_only_active"] == [
        ({"model": "credit-risk", "detector": "embedding.mmd", "severity": "alert"}, 2.0)]
    state.alert_only("f1", "credit-risk", "embedding.mmd", "alert", active=False)
    state.alert_only("f2", "credit-risk", "embedding.mmd", "alert", active=False)
    assert "drift_alert_only_active" not in samples(registry)
