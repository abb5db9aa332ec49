"""The audit log's chain: hashes, keyed MACs, the published head, and verification.

Every change to a ticket appends one entry to ``audit_log`` in the transaction of the
change. Three things make the log tamper-evident:

* **Hash chain.** ``hash = sha256(prev_hash + canonical JSON of the entry)``
  (:func:`audit_hash`), the first entry chaining to :data:`GENESIS_HASH`.
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

:func:`verify` works on plain rows, so it needs no store
(:meth:`drift.tickets.TicketStore.verify_audit` reads them); only the standard library is used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from drift.errors import TicketStoreError
from drift.tickets.model import SYSTEM_IDENTITY, canonical_json

__all__ = [
    "GENESIS_HASH",
    "KEY_ENV",
    "KEY_ID_ENV",
    "AuditEntry",
    "AuditKey",
    "AuditReport",
    "HeadFile",
    "audit_hash",
    "audit_mac",
    "default_head_file",
    "key_lookup",
    "replay_problems",
    "verify",
]

GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of the first audit entry."""
KEY_ENV: Final = "DRIFT_AUDIT_KEY"
"""The secret that authenticates new audit entries (at least 32 characters)."""
KEY_ID_ENV: Final = "DRIFT_AUDIT_KEY_ID"
"""The name stored with each entry the key writes; ``1`` when unset."""
_KEY_ID: Final = re.compile(r"[A-Za-z0-9_]{1,32}")
MIN_KEY_LENGTH: Final = 32


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


def default_head_file(path: str | Path) -> Path:
    """Where a SQLite store at ``path`` publishes its audit head: ``PATH.audit-head``."""
    return Path(f"{path}.audit-head")


def audit_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """``sha256(prev_hash + canonical JSON of the entry)`` as hex."""
    return hashlib.sha256((prev_hash + canonical_json(dict(entry))).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log, as stored."""

    id: int
    at: str
    actor: str
    action: str
    ticket_id: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str
    key_id: str | None = None
    mac: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
            "ticket_id": self.ticket_id, "detail": self.detail,
            "prev_hash": self.prev_hash, "hash": self.hash, "key_id": self.key_id, "mac": self.mac,
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What :meth:`TicketStore.verify_audit` found."""

    ok: bool
    n_entries: int
    entry_id: int | None = None
    problem: str | None = None
    n_authenticated: int = 0
    """Entries whose MAC was checked with their key."""
    n_unauthenticated: int = 0
    """Entries without a MAC (no key was set when they were written)."""
    unchecked_key_ids: tuple[str, ...] = ()
    """Key ids of entries with a MAC whose key this verifier does not have."""
    head: str | None = None
    """The published head file that was compared, or None when there is none."""
    n_published: int = 0

    @property
    def authenticated(self) -> bool:
        """Every entry's MAC checked, and the head published."""
        return (self.ok and self.n_authenticated == self.n_entries and self.head is not None)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "n_entries": self.n_entries, "entry_id": self.entry_id,
                "problem": self.problem, "authenticated": self.authenticated,
                "n_authenticated": self.n_authenticated, "n_unauthenticated": self.n_unauthenticated,
                "unchecked_key_ids": list(self.unchecked_key_ids), "head": self.head,
                "n_published": self.n_published}


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
        state.requester = SYSTEM_IDENTITY
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
    ticket_id: Callable[[int], str],
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


def verify(
    rows: Sequence[Mapping[str, Any]],
    tickets: Sequence[Mapping[str, Any]],
    reviews: Sequence[Mapping[str, Any]],
    outbox: Sequence[Mapping[str, Any]],
    ticket_id: Callable[[int], str],
    keys: Mapping[str, bytes],
    head_file: HeadFile | None,
) -> AuditReport:
    """Check the audit log ``rows`` (by id) and the tables against it; report the first problem.

    In id order: ids are 1, 2, 3, ... (a gap is a deleted entry); each
    ``prev_hash`` is the hash of the entry before; each ``hash`` matches the
    entry's content; each ``mac`` matches, for every key id in ``keys``, and
    once an entry has a MAC every later one has. Then every head published in
    ``head_file`` must still be in the log with its hash, each ticket's latest
    entry must exist, and a replay of the log must give every ticket's state,
    every review verdict and every retraining request as stored
    (:func:`replay_problems`). ``ticket_id(seq)`` names a ticket.
    """
    heads = None if head_file is None else head_file.read()
    head = None if head_file is None or heads is None else str(head_file.path)
    n = len(rows)
    n_auth = n_unauth = 0
    unchecked: set[str] = set()
    keyed_since: int | None = None

    def failed(entry_id: int | None, problem: str) -> AuditReport:
        return AuditReport(False, n, entry_id, problem, n_auth, n_unauth, tuple(sorted(unchecked)), head,
                           0 if heads is None else len(heads))

    prev = GENESIS_HASH
    by_id: dict[int, Mapping[str, Any]] = {}
    entries: list[dict[str, Any]] = []
    for expected, row in enumerate(rows, start=1):
        entry_id = int(row["id"])
        if entry_id != expected:
            return failed(expected, f"audit entry {expected} is missing: it was deleted")
        if row["prev_hash"] != prev:
            return failed(entry_id, f"audit entry {entry_id} does not chain to entry {entry_id - 1}: "
                                    f"one of them was edited")
        try:
            detail = json.loads(row["detail"])
        except ValueError:
            return failed(entry_id, f"audit entry {entry_id} was edited: its detail is not JSON")
        entry = {"id": entry_id, "at": row["at"], "actor": row["actor"], "action": row["action"],
                 "ticket_id": row["ticket_id"], "detail": detail}
        if audit_hash(prev, entry) != row["hash"]:
            return failed(entry_id, f"audit entry {entry_id} was edited: its hash does not match its content")
        key_id, mac = row.get("key_id"), row.get("mac")
        if mac is None:
            if keyed_since is not None:
                return failed(entry_id, f"audit entry {entry_id} has no MAC, but entry {keyed_since} and "
                                        f"later ones have: it was written or rewritten without the key")
            n_unauth += 1
        else:
            keyed_since = entry_id if keyed_since is None else keyed_since
            secret = keys.get(str(key_id))
            if secret is None:
                unchecked.add(str(key_id))
            elif not hmac.compare_digest(audit_mac(secret, str(key_id), str(row["hash"])), str(mac)):
                return failed(entry_id, f"audit entry {entry_id} was edited: its MAC does not match "
                                        f"(key {key_id!r}); the chain was recomputed without the key")
            else:
                n_auth += 1
        prev = str(row["hash"])
        by_id[entry_id] = row
        entries.append(entry)
    if heads is None and head_file is not None and any(r.get("key_id") is not None for r in rows):
        return failed(None, f"the published audit head {head_file.path} is missing, but the log was "
                            f"written with it: it was deleted or the store was moved without it")
    for ticket in tickets:
        if ticket.get("audit_id") is None:
            continue
        entry_id = int(ticket["audit_id"])
        tid = ticket_id(int(ticket["seq"]))
        found = by_id.get(entry_id)
        if found is None:
            return failed(entry_id, f"audit entry {entry_id} is missing: it was the latest entry of "
                                    f"{tid} and was deleted")
        if found["ticket_id"] != tid:
            return failed(entry_id, f"audit entry {entry_id} does not belong to {tid}, whose "
                                    f"latest entry it should be")
    for published in heads or []:
        entry_id = int(published["id"])
        found = by_id.get(entry_id)
        if found is None:
            return failed(entry_id, f"audit entry {entry_id} is missing: the published head "
                                    f"{head} names it; it was deleted")
        if found["hash"] != published["hash"]:
            return failed(entry_id, f"audit entry {entry_id} was rewritten: its hash differs from the "
                                    f"published head {head}")
    difference = replay_problems(entries, tickets, reviews, outbox, ticket_id)
    if difference is not None:
        return failed(*difference)
    return AuditReport(True, n, None, None, n_auth, n_unauth, tuple(sorted(unchecked)), head,
                       0 if heads is None else len(heads))
