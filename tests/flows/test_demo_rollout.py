"""``drift demo --scenario rollout``: labels arriving late, an SLO breach ticket and a canary halt.

The scenario (drift/demo/rollout.py) plants two problems: ``north``'s champion misses a new
kind of fraud from 10:00 (no feature or score moves; only the labels show it), and ``south``'s
canary scores higher than its champion. The run must find exactly those, each by the part of
the loop that can see it, and nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sklearn.metrics import recall_score

from drift.demo import rollout


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("rollout") / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "demo", "--scenario", "rollout", "--json", "--dir", str(folder)],
        capture_output=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_labels_arrive_late_and_are_joined(document: dict[str, Any]) -> None:
    data = rollout.events()
    assert document["events"] == len(data.lines) == len(data.predictions) + len(data.labels)
    assert document["decoded"] == len(data.predictions) and document["label_events"] == len(data.labels)
    assert document["dlq"]["total"] == 0
    # Every label is stamped after its prediction: 20 minutes to 3 hours later.
    sent = {}
    for line in data.predictions:
        event = orjson.loads(line)
        sent[event["event_id"]] = datetime.fromisoformat(event["ts"])
    lags = [(datetime.fromisoformat(label["ts"]) - sent[label["event_id"]]).total_seconds()
            for label in map(orjson.loads, data.labels)]
    assert min(lags) >= rollout.LABEL_DELAY[0].total_seconds() and max(lags) <= rollout.LABEL_DELAY[1].total_seconds()
    judged = [q for q in document["quality"] if q["judged"]]
    assert judged and all(q["label_coverage"] >= 0.5 for q in judged)  # the SLO's coverage gate
    # The first windows are judged as soon as half their labels are in, not at the end.
    first = [q for q in judged if q["window_start"].startswith("2026-11-02T08:00")]
    assert first and all(q["judged_by"] == "coverage" and q["label_coverage"] < 0.6 for q in first)


def _recall_of(tenant: str, route: str, start: str, end: str, upto: int | None = None) -> float:
    """The recall of one cohort window from the scenario's own lines (the oracle)."""
    data = rollout.events()
    served = {}
    for line in data.predictions:
        event = orjson.loads(line)
        if event["tenant"] == tenant and event["route"] == route and start <= event["ts"] < end:
            served[event["event_id"]] = event["prediction"]["score"] >= 0.5
    truth, predicted = [], []
    for label in map(orjson.loads, data.labels):
        if label["event_id"] in served:
            truth.append(label["label"])
            predicted.append(int(served[label["event_id"]]))
    return float(recall_score(truth[:upto], predicted[:upto]))


def test_one_slo_breach_ticket_for_the_champion_that_misses_fraud(document: dict[str, Any]) -> None:
    breaches = [f for f in document["findings"] if f["detector"] == "slo" and f["severity"] != "ok"]
    assert [(f["cohort"]["tenant"], f["cohort"]["route"], f["severity"], f["window_start"][:16]) for f in breaches] == [
        (rollout.SLO_TENANT, "champion", "alert", "2026-11-02T10:00")]
    evidence = breaches[0]["evidence"]
    assert evidence["sli"] < 0.8 and evidence["budget_remaining"] < 0 and evidence["p_value"] < 1e-6
    record = next(q for q in document["quality"] if q["cohort_key"] == breaches[0]["cohort_key"]
                  and q["window_start"] == breaches[0]["window_start"])
    # The window's recall on the labels that had arrived when it was judged (every label of the
    # window here: judged at the end of the file) against scikit-learn on the scenario's lines.
    assert record["recall"] == pytest.approx(
        _recall_of(rollout.SLO_TENANT, "champion", "2026-11-02T10:00", "2026-11-02T11:00", record["n_labelled"]))
    tickets = [t["ticket"] for t in document["tickets"] if t["ticket"]["detector"] == "slo"]
    assert {(t["id"], t["cohort"]["tenant"], t["cohort"]["route"]) for t in tickets} == {
        (tickets[0]["id"], rollout.SLO_TENANT, "champion")}
    # Nothing else sees it: no feature of north moved, and its scores did not either.
    assert not [f for f in document["findings"] if f["cohort"]["tenant"] == rollout.SLO_TENANT
                and f["detector"] != "slo" and f["severity"] != "ok"]


def test_the_canary_that_scores_higher_is_halted_and_no_other(document: dict[str, Any]) -> None:
    halts = document["halts"]
    assert len(halts) == 4  # each of the four windows
    assert {(h["cohort"]["tenant"], h["cohort"]["route"]) for h in halts} == {(rollout.CANARY_TENANT, "canary")}
    assert all(h["detector"] == "canary.halt" and h["evidence"]["decision"] == "halt"
               and [f["field"] for f in h["evidence"]["fields"] if f["severity"] == "alert"] == ["prediction.score"]
               for h in halts)
    assert {t["ticket"]["detector"] for t in document["tickets"]
            if t["ticket"]["cohort"]["tenant"] == rollout.CANARY_TENANT} == {
        "canary", "canary.halt", "score.psi", "score.mean_shift"}
    # Inputs are the same on both routes: no feature is compared past its threshold.
    moved = {f["feature"] for f in document["findings"] if f["detector"] == "canary" and f["severity"] != "ok"}
    assert moved == {"prediction.score"}
    assert not [f for f in document["findings"] if f["detector"] == "psi" and f["severity"] != "ok"]


def test_the_rollout_demo_prints_its_next_steps(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "drift.cli", "demo", "--scenario", "rollout", "--dir", str(tmp_path / "demo")],
        capture_output=True, timeout=300, check=False, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "canary halts: 4" in proc.stdout and "--halts-out" in proc.stdout
    assert "DRIFT-5" in proc.stdout and "slo" in proc.stdout


def test_the_readme_says_what_the_rollout_scenario_does(document: dict[str, Any]) -> None:
    import re

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = text.index("`drift demo --scenario rollout` closes the loop")
    section = text[start:text.index("\n## ", start)]
    lines, payments, labels = (int(n.replace(",", "")) for n in re.search(
        r"Its ([\d,]+) lines hold ([\d,]+) payments and ([\d,]+) fraud labels", section).groups())  # type: ignore[union-attr]
    assert (lines, payments, labels) == (document["events"], document["decoded"], document["label_events"])
    opened = {e["ticket"]["id"]: (e["ticket"]["detector"], e["ticket"]["cohort"]["tenant"], e["ticket"]["cohort"]["route"])
              for e in document["tickets"] if e["kind"] == "opened"}
    flat = " ".join(section.split())
    claimed = {
        "DRIFT-5": ("slo", "north", "champion"), "DRIFT-4": ("canary.halt", "south", "canary"),
        "DRIFT-3": ("canary", "south", "canary"), "DRIFT-1": ("score.psi", "south", "canary"),
        "DRIFT-2": ("score.mean_shift", "south", "canary"),
    }
    assert opened == claimed
    for ticket, (detector, tenant, route) in claimed.items():
        assert ticket in flat and f"`{detector}`" in flat and f"`{tenant}`" in flat and f"`{route}`" in flat
    assert "(DRIFT-5, `slo`, `north` / `champion`" in flat and "(DRIFT-4, `canary.halt`, `south` / `canary`" in flat
    assert f"{['No', 'One', 'Two', 'Three', 'Four', 'Five'][len(document['halts'])]} halt signals" in flat
