"""The report's optional dependencies (the ``report`` extra): imported on use, with the
install command in the error when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from drift.errors import DriftError

INSTALL_HINT = "pip install 'drift[report]' (in a checkout of drift: pip install -e '.[report]')"


class ReportDependencyError(DriftError, ImportError):
    """A library the HTML report needs (plotly, jinja2) is not installed."""


def require(module: str) -> ModuleType:
    """Import ``module`` (e.g. ``plotly.graph_objects``), or raise naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ReportDependencyError(
            f"the backtest report needs plotly and jinja2 (the 'report' extra), and {module.split('.')[0]} "
            f"cannot be imported ({exc}): {INSTALL_HINT}"
        ) from exc


def require_report_dependencies() -> None:
    """Raise :class:`ReportDependencyError` now, before a long run, when the report could not be written."""
    for module in ("jinja2", "plotly.graph_objects", "plotly.subplots", "plotly.offline"):
        require(module)
