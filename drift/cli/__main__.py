"""``python -m drift.cli``: the ``drift`` command."""

from drift.cli import main

main()
