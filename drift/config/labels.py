"""``models[].labels:``: the model's delayed ground truth (docs/labels.md).

A model with ``labels:`` keeps its predictions until their labels arrive (on
``kafka.labels_topic``, or as label lines of an events file) and measures its quality per
cohort window of the prediction's time: precision, recall, F1, accuracy, log-loss, Brier
score and calibration for classifiers, MAE and RMSE for regression, and label coverage.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from drift.config.base import Strict
from drift.duration import Duration, format_duration

DEFAULT_THRESHOLD = 0.5
"""A binary score at or above it is a positive prediction (the metrics' default)."""
DEFAULT_HORIZON = timedelta(days=7)
DEFAULT_CAP = 10_000_000
MAX_CAP = (2**31 - 1) // 2
"""The join state numbers its slots with 32-bit integers."""

_PREDICTION_PATH = re.compile(r"^prediction\.[^.\s]+$")
_NAME = re.compile(r"^[A-Za-z_][\w-]*$")


class LabelsConfig(Strict):
    """How a model's predictions are joined to their labels and judged.

    ``prediction`` is the path of the prediction in the inference event (one field of
    ``prediction``); ``join_key`` the field that predictions and labels share (the event's
    ``event_id``, or a categorical feature of the model).
    """

    kind: Literal["binary", "multiclass", "regression"]
    prediction: str = "prediction.score"
    join_key: str = "event_id"
    horizon: Duration = DEFAULT_HORIZON
    """How long after a prediction's ``ts`` its label may arrive; older predictions are evicted."""
    cap: int = Field(default=DEFAULT_CAP, ge=1, le=MAX_CAP)
    """Predictions held at most while waiting for their labels; beyond it the oldest are evicted."""
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """``binary``: a score at or above it is a positive prediction (0.5 when not given)."""
    n_classes: int | None = Field(default=None, ge=2, le=10_000)
    """``multiclass``: classes are ``0 .. n_classes - 1`` (required)."""
    calibration_bins: int = Field(default=10, ge=1, le=1000)
    """``binary``: equal-width bins of the score for the calibration error and reliability table."""

    @field_validator("prediction")
    @classmethod
    def _prediction_field(cls, value: str) -> str:
        if not _PREDICTION_PATH.match(value):
            raise ValueError(f"must be one field of the event's prediction, like 'prediction.score'; got {value!r}")
        return value

    @field_validator("join_key")
    @classmethod
    def _join_key_name(cls, value: str) -> str:
        if not _NAME.match(value) or value in ("model", "ts", "label"):
            raise ValueError(f"must be a field name other than model, ts and label, like 'event_id'; got {value!r}")
        return value

    @field_validator("horizon")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be a positive duration; got {format_duration(value)!r}")
        return value

    @model_validator(mode="after")
    def _kind_settings(self) -> LabelsConfig:
        if self.kind == "multiclass" and self.n_classes is None:
            raise ValueError("n_classes is required for a multiclass model (classes 0 .. n_classes - 1)")
        if self.kind != "multiclass" and self.n_classes is not None:
            raise ValueError(f"n_classes applies to multiclass models only; this one is {self.kind}")
        if self.kind != "binary" and self.threshold is not None:
            raise ValueError(f"threshold applies to binary models only; this one is {self.kind}")
        return self

    @property
    def score_threshold(self) -> float:
        """The binary threshold in use."""
        return DEFAULT_THRESHOLD if self.threshold is None else self.threshold

    @property
    def prediction_field(self) -> str:
        """The prediction's name under ``prediction`` (``score`` for ``prediction.score``)."""
        return self.prediction.split(".", 1)[1]
