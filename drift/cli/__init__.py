"""The ``drift`` command line.

Dataflow and connector modules are imported inside the commands that run them,
so ``drift validate`` and the core stay free of Bytewax and Kafka.
"""

from __future__ import annotations

import drift.early_signals  # noqa: F401 - first: `drift run` exits 0 on SIGTERM/SIGINT while it loads

from drift.cli import baseline, drill, runs, tickets  # noqa: F401 - each registers its commands on main
from drift.cli.app import EXIT_CONFIG, EXIT_NOTHING_DECODED, main

__all__ = ["EXIT_CONFIG", "EXIT_NOTHING_DECODED", "main"]
