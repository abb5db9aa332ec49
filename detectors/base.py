"""The contract of the detectors that score closed cohort windows.

Every detector configured under a model's ``detectors:`` is one of three kinds, each with
its own entry point, called by its own step of the flow:

* **window detectors** (``psi``, ``quality``, ``score``, ``skew``, ``embedding``): keep
  :class:`Detector`, scored on a cohort window's :class:`~drift.summary.WindowSummary`
  when the window closes (``flows/pipeline.py``, and the seasonal baselines);
* **value skew** (``skew`` with ``values:``): ``SkewDetector.score_values`` on a window of
  the online–offline join's outcomes (``flows/value_skew.py``);
* **freshness** (``freshness``): ``FreshnessDetector.score_window`` on a window of a
  feature set's events (``flows/freshness.py``); it is not a window detector.
"""

from __future__ import annotations

from typing import Protocol

from drift.findings import Cohort, Finding, Window
from drift.reference import ReferenceProfile
from drift.summary import WindowSummary


class Detector(Protocol):
    """Measures a cohort window's summary against a baseline; the policy decides what to do."""

    name: str

    def score(
        self, summary: WindowSummary, profile: ReferenceProfile, cohort: Cohort, window: Window
    ) -> list[Finding]:
        """One finding per measured feature (or one for the whole window)."""
        ...
