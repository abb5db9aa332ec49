"""The webhook spool: one file per ticket event, written atomically, claimed by renaming before
its POST, removed once sent (its key kept in ``sent.log``) or moved to ``rejected/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final


_HOST: Final = socket.gethostname().replace("~", "-")

# Claimed files held by a live sender of this process: another sender of this process
# (a later flow in the same process) must not take them back while the POST is running.
_IN_FLIGHT: Counter[str] = Counter()
_IN_FLIGHT_LOCK = threading.Lock()


def _release_in_flight(name: str) -> None:
    # A count, not a set: senders of one process share the owner name of their claims, so a
    # sender that lost the race for a file must not clear the mark of the one that won it.
    _IN_FLIGHT[name] -= 1
    if _IN_FLIGHT[name] <= 0:
        del _IN_FLIGHT[name]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class Spool:
    """The folder of ticket events that wait for the receiver, shared by the whole job.

    Pending events are ``<time_ns>-<key digest>.json`` in the folder itself (the name
    sorts oldest first); ``claimed/<owner>~<name>`` is an event being sent by
    ``owner`` (``pid@host``); ``rejected/`` holds what the receiver refused, next to a
    ``.reason``; ``sent.log`` lists the keys delivered, one a line.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.claimed = self.root / "claimed"
        self.rejected = self.root / "rejected"
        self.claimed.mkdir(parents=True, exist_ok=True)
        self.rejected.mkdir(parents=True, exist_ok=True)
        self._sent_log = self.root / "sent.log"
        self._sent: set[str] = set()
        self._sent_offset = 0
        self._lock = threading.Lock()
        self.owner = f"{os.getpid()}@{_HOST}"
        self.adopt_legacy()

    # ---------------------------------------------------------------- layout

    def adopt_legacy(self) -> int:
        """Move the events of ``worker-N/`` folders (the earlier layout) into this spool."""
        moved = 0
        for folder in sorted(self.root.glob("worker-*")):
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.json")):
                try:
                    os.replace(path, self.root / path.name)
                    moved += 1
                except FileNotFoundError:
                    continue  # another process took it first
            log = folder / "sent.log"
            taking = folder / f"sent.log.adopting-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                os.replace(log, taking)
            except FileNotFoundError:
                pass
            else:
                with open(self._sent_log, "ab") as handle:
                    text = taking.read_bytes()
                    handle.write(text if not text or text.endswith(b"\n") else text + b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                taking.unlink()
            for path in sorted((folder / "rejected").glob("*")):
                try:
                    os.replace(path, self.rejected / path.name)
                except FileNotFoundError:
                    continue
            for empty in (folder / "rejected", folder):
                try:
                    empty.rmdir()
                except OSError:
                    pass
        return moved

    # ---------------------------------------------------------------- reading

    def pending(self) -> list[Path]:
        """Events not yet claimed, oldest first."""
        return sorted(self.root.glob("*.json"))

    def _claimed(self) -> list[Path]:
        return sorted(self.claimed.glob("*~*.json"))

    def depth(self) -> int:
        """Events waiting: pending and claimed (being sent)."""
        return len(self.pending()) + len(self._claimed())

    def oldest_age_s(self, now_ns: int | None = None) -> float:
        """Seconds since the oldest waiting event was spooled; 0 when none waits."""
        names = [path.name for path in self.pending()] + [path.name.split("~", 1)[1] for path in self._claimed()]
        stamps = [int(name.split("-", 1)[0]) for name in names if name.split("-", 1)[0].isdigit()]
        if not stamps:
            return 0.0
        now = time.time_ns() if now_ns is None else now_ns
        return max(0.0, (now - min(stamps)) / 1e9)

    def sent(self, key: str) -> bool:
        """Whether ``key`` was delivered (by any process of the job)."""
        with self._lock:
            try:
                with open(self._sent_log, "rb") as handle:
                    handle.seek(self._sent_offset)
                    data = handle.read()
            except FileNotFoundError:
                data = b""
            end = data.rfind(b"\n") + 1  # only whole lines: another process may be writing one
            self._sent.update(line for line in data[:end].decode("utf-8", "replace").splitlines() if line)
            self._sent_offset += end
            return key in self._sent

    def has(self, key: str) -> bool:
        """Whether ``key`` waits in the spool (pending or claimed)."""
        tail = f"-{_digest(key)}.json"
        return any(path.name.endswith(tail) for path in self.pending() + self._claimed())

    # ---------------------------------------------------------------- writing

    def add(self, key: str, document: dict[str, Any]) -> Path | None:
        """Write ``document`` under ``key``; None when the key was sent or spooled before."""
        if self.sent(key) or self.has(key):
            return None
        name = f"{time.time_ns():020d}-{_digest(key)}.json"
        tmp = self.root / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        _fsync_write(tmp, json.dumps({"key": key, "document": document}, sort_keys=True).encode())
        target = self.root / name
        os.replace(tmp, target)
        return target

    def claim_path(self, path: Path) -> Path:
        """Where :meth:`claim` puts ``path``."""
        return self.claimed / f"{self.owner}~{path.name}"

    def claim(self, path: Path) -> Path | None:
        """Take ``path`` for sending; None when another sender took it first."""
        target = self.claim_path(path)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return None
        os.utime(target)  # the claim's age is the lease
        return target

    def unclaim(self, claimed: Path) -> None:
        """Put a claimed event back, in its place in the order."""
        try:
            os.replace(claimed, self.root / claimed.name.split("~", 1)[1])
        except FileNotFoundError:
            pass

    def mark_sent(self, key: str, claimed: Path) -> None:
        """Record ``key`` as delivered, then drop its file."""
        with open(self._sent_log, "ab") as handle:
            handle.write(key.encode() + b"\n")  # one write of an O_APPEND file: lines never interleave
            handle.flush()
            os.fsync(handle.fileno())
        claimed.unlink(missing_ok=True)

    def reject(self, claimed: Path, reason: str) -> Path:
        """Set a claimed event aside in ``rejected/`` with ``reason``; returns where it is."""
        name = claimed.name.split("~", 1)[1]
        target = self.rejected / name
        os.replace(claimed, target)
        target.with_suffix(".reason").write_text(reason + "\n", encoding="utf-8")
        return target

    def reclaim(self, lease_s: float) -> int:
        """Put back claims whose sender is gone: a dead process of this host, a closed
        sender of this process, or any claim older than ``lease_s``."""
        returned = 0
        now = time.time()
        for path in self._claimed():
            owner = path.name.split("~", 1)[0]
            pid_text, _, host = owner.partition("@")
            with _IN_FLIGHT_LOCK:
                held_here = _IN_FLIGHT[str(path)] > 0
            if held_here:
                continue
            gone = host == _HOST and pid_text.isdigit() and (
                int(pid_text) == os.getpid() or not _pid_alive(int(pid_text))
            )
            try:
                stale = now - path.stat().st_mtime > lease_s
            except FileNotFoundError:
                continue
            if gone or stale:
                self.unclaim(path)
                returned += 1
        return returned
