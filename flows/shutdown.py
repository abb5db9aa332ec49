"""How ``drift run`` stops: SIGTERM or SIGINT ends it with status 0 within seconds, in every state.

Python runs a signal handler only between two bytecodes of the main thread. While
that thread waits in C (a librdkafka call, Bytewax's engine between two Python
steps) the handler would wait too. So the handler is only half of it: the signal
module also writes the signal's number to a pipe from the C-level handler
(``signal.set_wakeup_fd``), and a thread reading that pipe reacts at once: it
sets ``stop`` (which the sources and sinks check), reports the job as stopping
and starts a deadline. A dataflow that ends in time ends as usual; one that does
not is cut short when the deadline passes: what the output partitions have not
seen delivered is spilled, and the process exits with status 0. Either way the
next start with the same ``--recovery-dir`` resumes from the last snapshot, as
after a crash.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import Any, Callable

STOP_DEADLINE_SECONDS = 4.0
"""From the signal to the exit of the process at the latest."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """Raised by the signal handler where Bytewax's main thread polls for signals (several workers)."""


class Shutdown:
    """SIGTERM and SIGINT handling of one ``drift run`` process, as a context manager.

    ``stop`` is set by the first signal. With ``interrupt`` true (set while
    Bytewax runs several workers, whose main thread only polls for signals) the
    handler also raises :class:`Interrupted` there, which stops every worker;
    the context manager swallows it. Outside the main thread it does nothing.
    """

    def __init__(self, deadline: float = STOP_DEADLINE_SECONDS,
                 exit_now: Callable[[int], Any] = os._exit) -> None:
        self.stop = threading.Event()
        self.interrupt = False
        self.deadline = deadline
        self._exit_now = exit_now
        self._lock = threading.Lock()
        self._on_stop: list[Callable[[], object]] = []
        self._before_exit: list[Callable[[], object]] = []
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1
        self._pipe: tuple[int, int] | None = None

    def on_stop(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` at the first signal (now, if it came already)."""
        with self._lock:
            self._on_stop.append(callback)
            stopped = self.stop.is_set()
        if stopped:
            callback()

    def before_exit(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` when the deadline passes, just before the process exits."""
        self._before_exit.append(callback)

    def request(self, signum: int) -> None:
        """What the first SIGTERM/SIGINT does (later ones do nothing more)."""
        with self._lock:
            if self.stop.is_set():
                return
            self.stop.set()
            callbacks = list(self._on_stop)
        print(f"drift: {signal.Signals(signum).name} received; stopping", file=sys.stderr, flush=True)
        for callback in callbacks:
            callback()
        threading.Thread(target=self._watchdog, name="drift-stop-deadline", daemon=True).start()

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        self.request(signum)
        if self.interrupt:
            raise Interrupted()

    def _read_wakeups(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 64)
            except OSError:
                return
            if not data:
                os.close(fd)
                return
            for signum in data:
                if signum in STOP_SIGNALS:
                    self.request(signum)

    def _watchdog(self) -> None:
        time.sleep(self.deadline)
        for callback in self._before_exit:
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - exiting anyway; say why nothing more was saved
                print(f"drift: while exiting: {exc}", file=sys.stderr)
        print(f"drift: stopped (the dataflow had not ended {self.deadline:g}s after the signal; "
              "exiting without it)", file=sys.stderr, flush=True)
        sys.stdout.flush()
        self._exit_now(0)

    def __enter__(self) -> Shutdown:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._previous = {sig: signal.signal(sig, self._handler) for sig in STOP_SIGNALS}
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        self._pipe = (read_end, write_end)
        self._previous_wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        threading.Thread(target=self._read_wakeups, args=(read_end,), name="drift-signals", daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None,
    ) -> bool:
        if self._pipe is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            os.close(self._pipe[1])  # the reading thread sees the end and closes its side
            self._pipe = None
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}
        return isinstance(value, Interrupted)
