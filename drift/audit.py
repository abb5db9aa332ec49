"""What makes the audit log tamper-evident: a keyed MAC per entry, a head published outside the
store, and a replay of the log against the tables (used by :meth:`drift.tickets.TicketStore.verify_audit`).

* **MAC.** With ``DRIFT_AUDIT_KEY`` set, each entry also stores ``key_id`` and
  ``mac = HMAC-SHA256(key, canonical JSON of {"hash", "key_id"})``. The entry's
  ``hash`` already covers its content and the previous entry's hash, so the MAC
  authenticates the whole chain up to it: whoever edits an entry and recomputes the
  hashes cannot recompute the MACs without the key. The key id names the key, so a
  rotated key still verifies the entries it wrote (``DRIFT_AUDIT_KEY_<ID>``).
* **Published head.** After each commit, every new entry's ``{"id", "hash", "mac",
  "key_id"}`` is appended as one line to the head file, outside the database. Deleting
  the newest entries (and moving ticket pointers back) leaves a valid chain, but not
  the published head: each published entry must still be in the log, with that hash.
* **Replay.** The log is replayed ticket by ticket to rebuild each ticket's status,
  counts, values, review round, requester and verdicts, and every retraining request;
  a ticket, review or outbox row edited or inserted without its audit entry differs.

This module works on plain rows, so it needs no store; only the standard library is used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from drift.errors import TicketStoreError

__all__ = [
    "KEY_ENV",
    "KEY_ID_ENV",
    "AuditKey",
    "HeadFile",
    "audit_mac",
    "key_lookup",
    "replay_problems",
]

KEY_ENV: Final = "DRIFT_AUDIT_KEY"
"""The secret that authenticates new audit entries (at least 32 characters)."""
KEY_ID_ENV: Final = "DRIFT_AUDIT_KEY_ID"
"""The name stored with each entry the key writes; ``1`` when unset."""
_KEY_ID: Final = re.compile(r"[A-Za-z0-9_]{1,32}")
MIN_KEY_LENGTH: Final = 32
SYSTEM: Final = "drift"


@dataclass(frozen=True, slots=True)
class AuditKey:
    """One HMAC key and its id. ``repr`` never shows the secret."""

    key_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r}, secret=***)"

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.key_id):
            raise TicketStoreError(f"{KEY_ID_ENV} must be 1 to 32 letters, digits or _; got {self.key_id!r}")
        if len(self.secret) < MIN_KEY_LENGTH:
            raise TicketStoreError(f"the audit key {self.key_id!r} must be at least {MIN_KEY_LENGTH} bytes; "
                                   f"got {len(self.secret)} (make one with: openssl rand -hex 32)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuditKey | None:
        """The writing key from ``DRIFT_AUDIT_KEY`` / ``DRIFT_AUDIT_KEY_ID``; None when unset."""
        env = os.environ if environ is None else environ
        secret = env.get(KEY_ENV, "")
        if not secret:
            return None
        return cls(env.get(KEY_ID_ENV, "").strip() or "1", secret.encode())


def key_lookup(current: AuditKey | None, environ: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """Every key verify can use: the current one and retired ones (``DRIFT_AUDIT_KEY_<ID>``)."""
    env = os.environ if environ is None else environ
    keys = {name[len(KEY_ENV) + 1:]: value.encode() for name, value in env.items()
            if name.startswith(KEY_ENV + "_") and name != KEY_ID_ENV and value}
    if current is not None:
        keys[current.key_id] = current.secret
    return keys


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def audit_mac(secret: bytes, key_id: str, entry_hash: str) -> str:
    """``HMAC-SHA256(secret, canonical JSON of {"hash", "key_id"})`` as hex."""
    message = _canonical({"hash": entry_hash, "key_id": key_id}).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class HeadFile:
    """The append-only file where each committed entry's hash (and MAC) is published."""

    __slots__ = ("path",)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, heads: Iterable[Mapping[str, Any]]) -> None:
        lines = "".join(_canonical(dict(h)) + "\n" for h in heads)
        if not lines:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND: lines of concurrent writers (workers, the CLI) never interleave.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, lines.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise TicketStoreError(f"cannot publish the audit head to {self.path}: {exc}") from exc

    def read(self) -> list[dict[str, Any]] | None:
        """Every published head, in file order; None when the file does not exist."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise TicketStoreError(f"cannot read the audit head {self.path}: {exc}") from exc
        heads = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                head = json.loads(line)
                int(head["id"]), str(head["hash"])
            except (ValueError, KeyError, TypeError):
                raise TicketStoreError(f"{self.path}:{number}: not an audit head line: {line[:80]!r}") from None
            heads.append(head)
        return heads


# ------------------------------------------------------------------ replay

_RANK: Final = {"ok": 0, "warn": 1, "alert": 2}


@dataclass(slots=True)
class _State:
    status: str
    action: str
    opened_at: str
    occurrences: int
    worst_value: float
    last_value: float
    severity: str
    first_start: datetime
    last_end: datetime
    requester: str | None
    review_round: int
    approvals_required: int | None
    suppressed: int = 0
    active: bool = True
    resolved_at: str | None = None
    last_entry: int = 0


def _window(state: _State, detail: Mapping[str, Any]) -> None:
    value = float(detail["value"])
    start = datetime.fromisoformat(detail["window_start"])
    end = datetime.fromisoformat(detail["window_end"])
    state.occurrences += 1
    state.active = True
    state.worst_value = max(state.worst_value, value)
    if _RANK[str(detail["severity"])] > _RANK[state.severity]:
        state.severity = str(detail["severity"])
    state.first_start = min(state.first_start, start)
    if end >= state.last_end:  # the latest window in event time, as TicketStore.record keeps it
        state.last_end = end
        state.last_value = value


def _review_opened(state: _State, detail: Mapping[str, Any], status: str) -> None:
    state.status = status
    if status == "pending_review":
        state.requester = SYSTEM
        state.review_round += 1
    else:
        state.requester = None
    approvals = detail.get("approvals_required")
    state.approvals_required = None if approvals is None else int(approvals)


def replay_problems(
    entries: Sequence[Mapping[str, Any]],
    tickets: Sequence[Mapping[str, Any]],
    reviews: Sequence[Mapping[str, Any]],
    outbox: Sequence[Mapping[str, Any]],
    ticket_id: Any,
) -> tuple[int | None, str] | None:
    """Replay ``entries`` (rows, detail parsed) and compare with the tables' rows.

    Returns ``(entry id or None, problem)`` for the first difference, None when the
    tables are what the log says. ``ticket_id(seq)`` names a ticket.
    """
    states: dict[str, _State] = {}
    verdicts: dict[tuple[str, int, str], tuple[str, str | None, str]] = {}
    requests: dict[str, dict[str, Any]] = {}
    for entry in entries:
        tid, action, detail = entry["ticket_id"], str(entry["action"]), entry["detail"]
        entry_id = int(entry["id"])
        if tid is None:
            continue
        state = states.get(tid)
        try:
            if action == "opened":
                if state is not None:
                    return entry_id, f"audit entry {entry_id} opens {tid} a second time"
                start = datetime.fromisoformat(detail["window_start"])
                end = datetime.fromisoformat(detail["window_end"])
                value = float(detail["value"])
                state = states[tid] = _State(
                    status=str(detail["status"]), action=str(detail["action"]), opened_at=str(entry["at"]),
                    occurrences=1, worst_value=value, last_value=value, severity=str(detail["severity"]),
                    first_start=start, last_end=end, requester=None, review_round=0, approvals_required=None,
                )
                _review_opened(state, detail, str(detail["status"]))
            elif state is None:
                return entry_id, f"audit entry {entry_id} acts on {tid} before an entry opens it"
            elif action == "updated":
                _window(state, detail)
            elif action == "reopened":
                _window(state, detail)
                state.action = str(detail["action"])
                _review_opened(state, detail, str(detail["status"]))
            elif action == "suppressed":
                state.suppressed += 1
            elif action == "cleared":
                state.active = False
            elif action == "status":
                to = str(detail["to"])
                if to == "rejected":
                    verdicts[(tid, state.review_round, str(entry["actor"]))] = (
                        "reject", detail.get("comment"), str(entry["at"]))
                elif to != "approved":  # set_status: resolved_at follows the move
                    state.resolved_at = str(entry["at"]) if to == "resolved" else None
                state.status = to
            elif action == "review_requested":
                state.status = "pending_review"
                state.requester = str(entry["actor"])
                state.review_round += 1
                state.approvals_required = int(detail["approvals_required"])
            elif action == "approval":
                verdicts[(tid, int(detail["round"]), str(entry["actor"]))] = (
                    "approve", detail.get("comment"), str(entry["at"]))
            elif action == "retrain_requested":
                requests[str(detail["key"])] = {"id": int(detail["outbox_id"]), "ticket_id": tid, "published": False}
            elif action == "retrain_published":
                request = requests.get(str(detail["key"]))
                if request is None:
                    return entry_id, f"audit entry {entry_id} publishes {detail['key']!r}, which no entry requested"
                request["published"] = True
        except (KeyError, TypeError, ValueError) as exc:
            return entry_id, f"audit entry {entry_id} ({action} of {tid}) lacks what it must say: {exc!r}"
        state.last_entry = entry_id

    seen: set[str] = set()
    for row in tickets:
        tid = ticket_id(int(row["seq"]))
        seen.add(tid)
        state = states.get(tid)
        if state is None:
            return None, f"{tid} has no audit entries: it was written into the store, not recorded by drift"
        expected: dict[str, object] = {
            "status": state.status, "action": state.action, "occurrences": state.occurrences,
            "suppressed": state.suppressed, "active": state.active, "worst_value": state.worst_value,
            "last_value": state.last_value, "severity": state.severity, "requester": state.requester,
            "review_round": state.review_round, "opened_at": state.opened_at, "resolved_at": state.resolved_at,
            "first_window_start": state.first_start, "last_window_end": state.last_end,
        }
        if state.approvals_required is not None:
            expected["approvals_required"] = state.approvals_required
        actual = dict(row)
        actual["active"] = bool(actual["active"])
        for name in ("first_window_start", "last_window_end"):
            actual[name] = datetime.fromisoformat(str(actual[name]))
        for name in ("worst_value", "last_value"):
            actual[name] = float(actual[name])
        for name, want in expected.items():
            if actual.get(name) != want:
                return state.last_entry, (f"{tid} was edited outside drift: its {name} is {actual.get(name)!r} "
                                          f"but its audit entries say {want!r}")
    for tid, state in states.items():
        if tid not in seen:
            return state.last_entry, f"{tid} is in the audit log but not in the store: it was deleted"

    stored: dict[tuple[str, int, str], tuple[str, str | None, str]] = {
        (ticket_id(int(r["ticket_seq"])), int(r["round"]), str(r["reviewer"])):
            (str(r["verdict"]), r["comment"], str(r["at"]))
        for r in reviews
    }
    for who, verdict in stored.items():
        if verdicts.get(who) != verdict:
            tid, round_, reviewer = who
            return states[tid].last_entry if tid in states else None, (
                f"the {verdict[0]} of {tid} by {reviewer!r} (round {round_}) has no matching audit entry: "
                f"a review row was written or edited outside drift")
    for who in verdicts.keys() - stored.keys():
        tid, round_, reviewer = who
        return states[tid].last_entry, (f"the {verdicts[who][0]} of {tid} by {reviewer!r} (round {round_}) "
                                        f"is in the audit log but not in the store: it was deleted")

    rows = {str(r["request_key"]): r for r in outbox}
    for key, row in rows.items():
        request = requests.get(key)
        tid = ticket_id(int(row["ticket_seq"]))
        if request is None or request["id"] != int(row["id"]) or request["ticket_id"] != tid:
            return None, (f"retraining request {key!r} has no matching audit entry: it was written into "
                          f"the outbox outside drift")
        if request["published"] != (row["published_at"] is not None):
            return None, f"retraining request {key!r} was marked published or unpublished outside drift"
    for key in requests.keys() - rows.keys():
        return None, f"retraining request {key!r} is in the audit log but not in the outbox: it was deleted"
    return None
