"""The dataflow carries the start of a problem from the policy to the ticket it opens."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from connectors.files import write_jsonl
from drift import demo
from drift.config import load_config
from drift.findings import Severity
from flows.runner import run_file

POLICY = "policy: {consecutive_windows: 1, cooldown: 1h}"


def test_a_ticket_opened_after_two_alerting_windows_started_with_the_first(tmp_path: Path) -> None:
    text = demo.config_text()
    assert POLICY in text
    # credit-risk's policy (its block comes first) waits for two alerting windows in a row.
    (tmp_path / "drift.yaml").write_text(text.replace(POLICY, "policy: {consecutive_windows: 2, cooldown: 1h}", 1),
                                         encoding="utf-8")
    demo.write_references(tmp_path)
    write_jsonl(tmp_path / "events.jsonl", demo.events().lines)
    config = load_config(tmp_path / "drift.yaml")
    assert config.models[0].name == "credit-risk" and config.models[0].policy.consecutive_windows == 2

    detect = "drift_ticket_time_to_detect_seconds_count"
    labels = {"model": "credit-risk", "detector": "psi"}
    before = REGISTRY.get_sample_value(detect, labels) or 0.0

    result = run_file(config, tmp_path / "events.jsonl")

    opened = [t.ticket for t in result.tickets if t.ticket.detector == "psi" and t.kind == "opened"]
    assert sorted(t.feature or "" for t in opened) == sorted(demo.SHIFTED_FEATURES)
    for ticket in opened:
        alerting = sorted((f.window for f in result.findings
                           if f.fingerprint == ticket.fingerprint and f.severity is Severity.ALERT),
                          key=lambda window: window.start)
        assert len(alerting) >= 2 and alerting[0].end == alerting[1].start
        # Opened by the second alerting window: the problem started with the first.
        assert ticket.drift_started == alerting[0].start
        # The first window the store recorded is the one that opened the ticket.
        assert (ticket.first_window_start, ticket.detected_at) == (alerting[1].start, alerting[1].end)
        assert ticket.timeline().time_to_detect == alerting[1].end - alerting[0].start
        assert ticket.acknowledged_at is None and ticket.recovered is None
    # The ticket step read the new tickets' timelines into the process's histograms.
    assert (REGISTRY.get_sample_value(detect, labels) or 0.0) - before == len(opened)
