"""The contract every detector keeps, and the registry keyed by the YAML name."""

from __future__ import annotations

from typing import Protocol

from drift.findings import Cohort, Finding, Window
from drift.reference import ReferenceProfile
from drift.summary import WindowSummary


class Detector(Protocol):
    """Measures a window summary against a baseline; policy decides what to do."""

    name: str

    def score(
        self, summary: WindowSummary, profile: ReferenceProfile, cohort: Cohort, window: Window
    ) -> list[Finding]:
        """One finding per measured feature (or one for the whole window)."""
        ...
