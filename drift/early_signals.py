"""SIGTERM and SIGINT while ``drift run`` is still loading: exit 0 at once.

Imported first by :mod:`drift.cli`. Loading the command's modules (numpy, scipy,
pyarrow, pydantic) takes a second or two; a signal then would otherwise end the
process with a traceback (SIGINT) or by the signal (SIGTERM), not with status 0.
Nothing has started yet, so there is nothing to stop: the handlers installed here
exit at once, until the run command installs its own (``flows/shutdown.py``).
Other commands keep Python's defaults.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType


def _exit_before_start(signum: int, _frame: FrameType | None) -> None:
    os.write(2, f"drift: {signal.Signals(signum).name} received while starting; exiting\n".encode())
    os._exit(0)


def install(argv: list[str]) -> bool:
    """Install the handlers when ``argv`` runs ``drift run`` (in the main thread); whether it did."""
    if argv[1:2] != ["run"] or threading.current_thread() is not threading.main_thread():
        return False
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_before_start)
    return True


install(sys.argv)
