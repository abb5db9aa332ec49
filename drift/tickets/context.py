"""A ticket's context: what a reviewer needs, computed from the store when read.

``{"cohort", "windows", "traffic", "findings", "baseline", "impact", "countermeasures",
"reviews"}`` (docs/tickets.md describes each field). Ticket events carry it as it stood
when they happened; ``drift tickets show``, the review queue and retraining requests
compute it again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from drift.countermeasures import suggest
from drift.findings import Severity
from drift.rollups import ALL
from drift.tickets.database import Tx
from drift.tickets.model import (
    SEVERITY_RANK,
    Ticket,
    TicketStatus,
    format_ticket_id,
    parse_ticket_id,
    parse_time,
    time_text,
)

__all__ = ["ticket_context"]


def _rank_key(finding: Mapping[str, Any]) -> tuple[int, float]:
    # How far past its own alert threshold: values of different detectors
    # (PSI, rates, distances) only compare as multiples of their thresholds.
    alert = float(finding.get("alert") or 0.0)
    value = float(finding.get("value") or 0.0)
    ratio = value / alert if alert > 0 else value
    return (SEVERITY_RANK.get(Severity(finding.get("severity", "ok")), 0), ratio)


def _labels(cohort_key: str) -> dict[str, str]:
    """The labels of a cohort key ``model|name=value|...``."""
    return dict(part.split("=", 1) for part in cohort_key.split("|")[1:] if "=" in part)


def ticket_context(tx: Tx, ticket: Ticket) -> dict[str, Any]:
    """The context of ``ticket``, read in ``tx``."""
    seq = parse_ticket_id(ticket.id)
    windows = tx.all(
        "SELECT window_start, window_end, value, severity FROM ticket_windows"
        " WHERE ticket_seq = ? ORDER BY window_start", (seq,),
    )
    # Traffic of the latest window and of all the ticket's windows together.
    starts = [str(w["window_start"]) for w in windows]
    marks = ", ".join("?" for _ in starts) or "NULL"
    # The model's totals summed by the database (a model may have many thousand cohorts), the
    # cohort's own windows read by key.
    n_cohort: dict[str, int] = {}
    n_model: dict[str, int] = {}
    n_cohorts: dict[str, int] = {}
    for t in tx.all(
        "SELECT window_start, SUM(n_events) AS n, COUNT(*) AS k FROM window_traffic WHERE model = ?"
        f" AND window_start IN ({marks}) GROUP BY window_start", (ticket.model, *starts),
    ):
        n_model[str(t["window_start"])] = int(t["n"])
        n_cohorts[str(t["window_start"])] = int(t["k"])
    # A rollup's traffic is its members': the cohorts whose labels match its own (``*``: any).
    summed = {k: v for k, v in ticket.cohort.items() if k != "model" and v != ALL}
    if summed != {k: v for k, v in ticket.cohort.items() if k != "model"}:
        for t in tx.all(
            "SELECT window_start, cohort_key, n_events FROM window_traffic WHERE model = ?"
            f" AND window_start IN ({marks})", (ticket.model, *starts),
        ):
            if _labels(str(t["cohort_key"])).items() >= summed.items():
                start = str(t["window_start"])
                n_cohort[start] = n_cohort.get(start, 0) + int(t["n_events"])
    else:
        for t in tx.all(
            "SELECT window_start, n_events FROM window_traffic WHERE model = ? AND cohort_key = ?"
            f" AND window_start IN ({marks})", (ticket.model, ticket.cohort_key, *starts),
        ):
            n_cohort[str(t["window_start"])] = int(t["n_events"])
    latest = str(ticket.last_finding.get("window_start", starts[-1] if starts else ""))
    latest = time_text(parse_time(latest), "latest window") if latest else latest

    def share(num: int | None, den: int | None) -> float | None:
        return None if num is None or not den else num / den

    known = [s for s in starts if s in n_cohort]
    total_cohort = sum(n_cohort[s] for s in known)
    total_model = sum(n_model[s] for s in known)
    traffic = {
        "window_start": latest or None,
        "n_events": n_cohort.get(latest),
        "n_model_events": n_model.get(latest),
        "n_cohorts": n_cohorts.get(latest),
        "share": share(n_cohort.get(latest), n_model.get(latest)),
        "n_events_all_windows": total_cohort if known else None,
        "share_all_windows": share(total_cohort, total_model) if known else None,
    }
    # The findings of this cohort that have live tickets, worst first:
    # this ticket's latest finding and those of its neighbours.
    related = tx.all(
        "SELECT seq, last_finding FROM tickets WHERE cohort_key = ? AND status != ? AND seq != ?",
        (ticket.cohort_key, TicketStatus.RESOLVED.value, seq),
    )
    findings = [{**ticket.last_finding, "ticket_id": ticket.id}]
    findings += [{**json.loads(r["last_finding"]), "ticket_id": format_ticket_id(int(r["seq"]))} for r in related]
    findings.sort(key=_rank_key, reverse=True)
    ranked = [
        {"rank": i, "ticket_id": f["ticket_id"], "detector": f.get("detector"),
         "feature": f.get("feature"), "value": f.get("value"), "severity": f.get("severity"),
         "warn": f.get("warn"), "alert": f.get("alert"),
         "window_start": f.get("window_start"), "window_end": f.get("window_end"),
         "n_current": f.get("n_current"), "evidence": f.get("evidence", {})}
        for i, f in enumerate(findings, start=1)
    ]
    countermeasures: list[dict[str, Any]] = []
    for f in ranked:
        suggestion: dict[str, Any] = {"detector": str(f["detector"]), **suggest(str(f["detector"])).to_dict()}
        # Embedding findings name the window's samples farthest from the reference: what to inspect.
        farthest = (f["evidence"] or {}).get("farthest") if isinstance(f["evidence"], dict) else None
        if farthest:
            suggestion["event_ids"] = [row.get("event_id") for row in farthest if row.get("event_id") is not None]
        if not any(c["action"] == suggestion["action"] for c in countermeasures):
            countermeasures.append(suggestion)
    impact = dict(ticket.impact)
    weight = impact.get("weight")
    traffic_share = traffic["share"]
    impact["traffic_share"] = traffic_share
    impact["estimate"] = (
        None if weight is None or traffic_share is None else float(weight) * float(traffic_share)
    )
    reviews = tx.all(
        "SELECT * FROM ticket_reviews WHERE ticket_seq = ? ORDER BY at, reviewer", (seq,)
    )
    return {
        "cohort": dict(ticket.cohort),
        "windows": [
            {"window_start": w["window_start"], "window_end": w["window_end"],
             "value": float(w["value"]), "severity": w["severity"],
             "n_events": n_cohort.get(str(w["window_start"]))}
            for w in windows
        ],
        "traffic": traffic,
        "findings": ranked,
        "baseline": {
            "name": ticket.last_finding.get("baseline"),
            "n_reference": ticket.last_finding.get("n_reference"),
        },
        "impact": impact,
        "countermeasures": countermeasures,
        "reviews": [
            {"round": int(r["round"]), "reviewer": r["reviewer"], "verdict": r["verdict"],
             "comment": r["comment"], "at": r["at"]}
            for r in reviews
        ],
    }
