"""The import contracts of .importlinter hold: layers, no cycles, frameworks only where they belong.

``lint-imports`` (import-linter) reads the contracts from the repository root; a
broken contract fails here with import-linter's own report of the offending imports.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_the_contracts_cover_every_package() -> None:
    text = (ROOT / ".importlinter").read_text(encoding="utf-8")
    for package in ("drift", "detectors", "flows", "connectors"):
        assert f"    {package}\n" in text
