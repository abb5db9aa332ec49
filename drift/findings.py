"""Findings: what a detector measured for one cohort in one window."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Mapping


class Severity(StrEnum):
    """How far a measured value is past its thresholds."""

    OK = "ok"
    WARN = "warn"
    ALERT = "alert"

    @classmethod
    def of(cls, value: float, warn: float, alert: float) -> Severity:
        """Severity of ``value`` against ``warn <= alert`` (greater is worse).

        >>> Severity.of(0.3, warn=0.1, alert=0.25)
        <Severity.ALERT: 'alert'>
        """
        if value >= alert:
            return cls.ALERT
        if value >= warn:
            return cls.WARN
        return cls.OK


@dataclass(frozen=True, slots=True)
class Cohort:
    """A model and the labels that split its traffic (``tenant``, ``region``, ...)."""

    model: str
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """A stable string key: ``credit-risk|region=eu|tenant=acme``."""
        return "|".join([self.model, *(f"{k}={v}" for k, v in self.labels)])

    def to_dict(self) -> dict[str, str]:
        return {"model": self.model, **dict(self.labels)}


@dataclass(frozen=True, slots=True)
class Window:
    """A closed event-time window: [start, end)."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector's result for one feature of one cohort in one window."""

    detector: str
    cohort: Cohort
    window: Window
    feature: str | None
    value: float
    severity: Severity
    warn: float
    alert: float
    n_current: int
    n_reference: int
    baseline: str
    """What the window was compared with, e.g. ``reference`` (training data)."""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    """Why the value could not be judged (e.g. too few samples), or None."""
    p_value: float | None = None
    """p-value of "the window comes from the baseline's distribution", where the detector tests it."""
    q_value: float | None = None
    """Benjamini–Hochberg adjusted p-value among the detector's tests of the cohort window."""

    @property
    def fingerprint(self) -> str:
        """Identity of an ongoing problem: model, cohort, detector and feature.

        Windows are left out on purpose: the same drift in the next window is the
        same problem and updates one ticket.
        """
        text = "\x1f".join([self.cohort.key, self.detector, self.feature or ""])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping, the shape written to the findings topic."""
        return {
            "fingerprint": self.fingerprint,
            "detector": self.detector,
            "model": self.cohort.model,
            "cohort": self.cohort.to_dict(),
            "cohort_key": self.cohort.key,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "feature": self.feature,
            "value": self.value,
            "severity": self.severity.value,
            "warn": self.warn,
            "alert": self.alert,
            "n_current": self.n_current,
            "n_reference": self.n_reference,
            "baseline": self.baseline,
            "evidence": dict(self.evidence),
            "skipped": self.skipped,
            "p_value": self.p_value,
            "q_value": self.q_value,
        }
