"""Delayed ground truth: predictions joined to labels that arrive later, and model quality.

:mod:`drift.labels.join` keeps the predictions waiting for their labels (bounded by a
horizon and a cap) and joins batches of labels to them; :mod:`drift.labels.metrics`
accumulates the joined outcomes per cohort window and computes the quality metrics
(precision, recall, F1, accuracy, log-loss, Brier score, calibration, MAE, RMSE, label
coverage). Both are plain arrays with no dataflow, so they test on their own.
"""

from drift.labels.join import Joined, Kind, PendingPredictions, hash_ids
from drift.labels.metrics import OutcomeCounts, Reliability, WindowOutcomes, WindowQuality, window_quality

__all__ = [
    "Joined", "Kind", "OutcomeCounts", "PendingPredictions", "Reliability", "WindowOutcomes", "WindowQuality",
    "hash_ids", "window_quality",
]
