"""Quality metrics per cohort window against scikit-learn and a direct calibration computation.

Random outcomes are spread over a few (cohort row, window id) pairs and added in random
batch cuts; every window's metrics must equal scikit-learn's on that window's rows
(``zero_division=np.nan``, the rule of :mod:`drift.labels.metrics`), the calibration error
and the reliability table a per-bin loop written here. A snapshot taken midway, and
windows popped and their slots reused, must not change a value.
"""

from __future__ import annotations

import math
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (  # type: ignore[import-untyped]
    accuracy_score, brier_score_loss, f1_score, log_loss, mean_absolute_error, mean_squared_error, precision_score,
    recall_score,
)

from drift.labels.join import Joined, Kind
from drift.labels.metrics import (
    WindowOutcomes, WindowQuality, calibration_edges, expected_calibration_error, window_quality,
)

GROUPS = [(0, 100), (0, 101), (3, 100), (7, 55)]


def joined(rows: np.ndarray[Any, Any], windows: np.ndarray[Any, Any], p: np.ndarray[Any, Any],
           y: np.ndarray[Any, Any]) -> Joined:
    n = p.size
    return Joined(rows.astype(np.int64), windows.astype(np.int64), p.astype(np.float64), y.astype(np.float64),
                  np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64))


def accumulate(outcomes: WindowOutcomes, group: np.ndarray[Any, Any], p: np.ndarray[Any, Any],
               y: np.ndarray[Any, Any], cuts: list[int], snapshot_after: int) -> WindowOutcomes:
    """Add the outcomes in batches cut at ``cuts``, pickling the state after batch ``snapshot_after``."""
    rows = np.asarray([GROUPS[g][0] for g in group.tolist()], dtype=np.int64)
    windows = np.asarray([GROUPS[g][1] for g in group.tolist()], dtype=np.int64)
    bounds = [0, *sorted(c % (p.size + 1) for c in cuts), p.size]
    for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        outcomes.add(joined(rows[lo:hi], windows[lo:hi], p[lo:hi], y[lo:hi]))
        if b == snapshot_after:
            outcomes = pickle.loads(pickle.dumps(outcomes))
    return outcomes


def by_group(quality: WindowQuality) -> dict[tuple[int, int], int]:
    return {(r, w): i for i, (r, w) in enumerate(zip(quality.cohort_rows.tolist(), quality.window_ids.tolist()))}


def same(got: float, expected: float) -> bool:
    if math.isnan(expected):
        return math.isnan(got)
    return math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)


def sk(metric: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a window with one class present
        return float(metric(*args, **kwargs))


scores = st.floats(0.0, 1.0, allow_nan=False)
draws = st.integers(1, 80).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, len(GROUPS) - 1), min_size=n, max_size=n),
    st.lists(st.one_of(scores, st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 1.0, 1e-300, 1 - 1e-16])), min_size=n,
             max_size=n),
    st.lists(st.integers(0, 1), min_size=n, max_size=n),
))
cut_lists = st.lists(st.integers(0, 1_000), max_size=4)


@settings(max_examples=150, deadline=None)
@given(draw=draws, cuts=cut_lists, snapshot_after=st.integers(-1, 4),
       threshold=st.sampled_from([0.5, 0.3, 0.9]))
def test_binary_metrics_match_scikit_learn(
    draw: tuple[list[int], list[float], list[int]], cuts: list[int], snapshot_after: int, threshold: float,
) -> None:
    group, p, y = np.asarray(draw[0]), np.asarray(draw[1]), np.asarray(draw[2])
    outcomes = accumulate(WindowOutcomes("binary", threshold=threshold), group, p, y, cuts, snapshot_after)
    quality = window_quality(outcomes.counts())
    at = by_group(quality)
    assert set(at) == {GROUPS[g] for g in set(group.tolist())}
    for g, key in enumerate(GROUPS):
        if key not in at:
            continue
        i, mine = at[key], group == g
        p_g, y_g = p[mine], y[mine]
        y_hat = (p_g >= threshold).astype(int)
        kw: dict[str, Any] = {"labels": [0, 1], "zero_division": np.nan}
        expected = {
            "precision": sk(precision_score, y_g, y_hat, **kw),
            "recall": sk(recall_score, y_g, y_hat, **kw),
            "f1": sk(f1_score, y_g, y_hat, **kw),
            "accuracy": sk(accuracy_score, y_g, y_hat),
            "log_loss": sk(log_loss, y_g, p_g, labels=[0, 1]),
            "brier": sk(brier_score_loss, y_g, p_g, pos_label=1),
        }
        got = {name: float(getattr(quality, name)[i]) for name in expected}
        assert all(same(got[name], expected[name]) for name in expected), (got, expected)
        assert quality.n_labelled[i] == mine.sum()
        assert math.isnan(quality.mae[i]) and math.isnan(quality.rmse[i])


def direct_calibration(p: np.ndarray[Any, Any], y: np.ndarray[Any, Any], n_bins: int) -> tuple[float, list[Any]]:
    """ECE and (count, mean score, mean label) per bin, bin by bin."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece, table = 0.0, []
    for b in range(n_bins):
        inside = (p >= edges[b]) & ((p < edges[b + 1]) if b < n_bins - 1 else (p <= edges[b + 1]))
        n_b = int(inside.sum())
        if n_b == 0:
            table.append((0, math.nan, math.nan))
            continue
        mean_score, mean_label = float(p[inside].mean()), float(y[inside].mean())
        ece += n_b / p.size * abs(mean_score - mean_label)
        table.append((n_b, mean_score, mean_label))
    return ece, table


@settings(max_examples=150, deadline=None)
@given(draw=draws, cuts=cut_lists, n_bins=st.sampled_from([10, 1, 3, 15]))
def test_calibration_matches_a_direct_per_bin_computation(
    draw: tuple[list[int], list[float], list[int]], cuts: list[int], n_bins: int,
) -> None:
    group, p, y = np.asarray(draw[0]), np.asarray(draw[1]), np.asarray(draw[2])
    outcomes = accumulate(WindowOutcomes("binary", n_bins=n_bins), group, p, y, cuts, -1)
    quality = window_quality(outcomes.counts())
    assert quality.reliability is not None
    at = by_group(quality)
    for g, key in enumerate(GROUPS):
        if key not in at:
            continue
        i, mine = at[key], group == g
        ece, table = direct_calibration(p[mine], y[mine], n_bins)
        assert math.isclose(quality.ece[i], ece, rel_tol=1e-9, abs_tol=1e-12)
        got = list(zip(quality.reliability.count[i].tolist(), quality.reliability.mean_score[i].tolist(),
                       quality.reliability.mean_label[i].tolist()))
        assert [c for c, _, _ in got] == [c for c, _, _ in table]
        assert all(same(a, b) and same(c, d) for (_, a, c), (_, b, d) in zip(got, table))


@settings(max_examples=100, deadline=None)
@given(n_classes=st.integers(2, 5), data=st.data(), cuts=cut_lists, snapshot_after=st.integers(-1, 4))
def test_multiclass_metrics_match_scikit_learns_macro_average(
    n_classes: int, data: st.DataObject, cuts: list[int], snapshot_after: int,
) -> None:
    n = data.draw(st.integers(1, 60))
    group = np.asarray(data.draw(st.lists(st.integers(0, len(GROUPS) - 1), min_size=n, max_size=n)))
    y = np.asarray(data.draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)))
    y_hat = np.asarray(data.draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)))
    outcomes = accumulate(WindowOutcomes("multiclass", n_classes=n_classes), group, y_hat, y, cuts, snapshot_after)
    quality = window_quality(outcomes.counts())
    at = by_group(quality)
    for g, key in enumerate(GROUPS):
        if key not in at:
            continue
        i, mine = at[key], group == g
        kw: dict[str, Any] = {"average": "macro", "zero_division": np.nan}
        expected = {
            "precision": sk(precision_score, y[mine], y_hat[mine], **kw),
            "recall": sk(recall_score, y[mine], y_hat[mine], **kw),
            "f1": sk(f1_score, y[mine], y_hat[mine], **kw),
            "accuracy": sk(accuracy_score, y[mine], y_hat[mine]),
        }
        got = {name: float(getattr(quality, name)[i]) for name in expected}
        assert all(same(got[name], expected[name]) for name in expected), (got, expected)
        assert all(math.isnan(getattr(quality, name)[i]) for name in ("log_loss", "brier", "ece", "mae"))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), cuts=cut_lists, snapshot_after=st.integers(-1, 4))
def test_regression_errors_match_scikit_learn(data: st.DataObject, cuts: list[int], snapshot_after: int) -> None:
    n = data.draw(st.integers(1, 60))
    values = st.floats(-1e6, 1e6, allow_nan=False)
    group = np.asarray(data.draw(st.lists(st.integers(0, len(GROUPS) - 1), min_size=n, max_size=n)))
    y = np.asarray(data.draw(st.lists(values, min_size=n, max_size=n)))
    y_hat = np.asarray(data.draw(st.lists(values, min_size=n, max_size=n)))
    outcomes = accumulate(WindowOutcomes("regression"), group, y_hat, y, cuts, snapshot_after)
    quality = window_quality(outcomes.counts())
    at = by_group(quality)
    for g, key in enumerate(GROUPS):
        if key not in at:
            continue
        i, mine = at[key], group == g
        mae = mean_absolute_error(y[mine], y_hat[mine])
        rmse = math.sqrt(mean_squared_error(y[mine], y_hat[mine]))
        assert math.isclose(quality.mae[i], mae, rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(quality.rmse[i], rmse, rel_tol=1e-9, abs_tol=1e-9)
        assert all(math.isnan(getattr(quality, name)[i]) for name in ("precision", "accuracy", "log_loss", "ece"))


# -- coverage, undefined values, slots ------------------------------------------------------


def test_label_coverage_counts_predictions_and_labels_per_window() -> None:
    outcomes = WindowOutcomes("binary")
    outcomes.add_predictions(np.array([1, 1, 1, 1, 2]), np.array([9, 9, 9, 9, 9]))
    outcomes.add(joined(np.array([1, 1, 5]), np.array([9, 9, 9]), np.array([0.9, 0.1, 0.5]), np.array([1, 0, 1])))
    quality = window_quality(outcomes.counts())
    at = by_group(quality)
    assert quality.label_coverage[at[(1, 9)]] == 0.5
    assert quality.label_coverage[at[(2, 9)]] == 0.0
    assert math.isnan(quality.label_coverage[at[(5, 9)]])  # labels for a window with no prediction counted
    assert quality.n_predictions.tolist() == [4, 1, 0] and quality.n_labelled.tolist() == [2, 0, 1]


@pytest.mark.parametrize(("p", "y", "undefined"), [
    ([0.1, 0.2], [1, 1], {"precision"}),                  # no positive prediction
    ([0.9, 0.8], [0, 0], {"recall"}),                     # no positive label
    ([0.1, 0.2], [0, 0], {"precision", "recall", "f1"}),  # neither
    ([0.9, 0.1], [1, 0], set()),
])
def test_undefined_ratios_are_nan_not_zero(p: list[float], y: list[int], undefined: set[str]) -> None:
    outcomes = WindowOutcomes("binary")
    outcomes.add(joined(np.zeros(2), np.zeros(2), np.asarray(p), np.asarray(y)))
    quality = window_quality(outcomes.counts())
    for name in ("precision", "recall", "f1", "accuracy", "log_loss", "brier", "ece"):
        assert math.isnan(getattr(quality, name)[0]) == (name in undefined), name


def test_a_window_without_labels_has_only_its_prediction_count() -> None:
    outcomes = WindowOutcomes("regression")
    outcomes.add_predictions(np.array([4]), np.array([2]))
    quality = window_quality(outcomes.counts())
    assert quality.n_predictions.tolist() == [1] and quality.label_coverage.tolist() == [0.0]
    assert math.isnan(quality.mae[0]) and math.isnan(quality.rmse[0])


def test_popped_windows_give_their_slots_back() -> None:
    outcomes = WindowOutcomes("binary")
    for window in range(50):
        rows = np.arange(20)
        outcomes.add_predictions(rows, np.full(20, window))
        outcomes.add(joined(rows, np.full(20, window), np.full(20, 0.75), np.ones(20)))
        popped = window_quality(outcomes.pop(rows, np.full(20, window)))
        assert popped.recall.tolist() == [1.0] * 20 and popped.label_coverage.tolist() == [1.0] * 20
        assert len(outcomes) == 0
    assert outcomes.slots <= 32
    with pytest.raises(KeyError, match="no outcomes held for cohort row 0 in window 3"):
        outcomes.counts(np.array([0]), np.array([3]))


def test_a_snapshot_holds_only_the_windows_held() -> None:
    outcomes = WindowOutcomes("multiclass", n_classes=3)
    outcomes.add_predictions(np.arange(10), np.zeros(10))
    outcomes.pop(np.arange(9), np.zeros(9))
    state = outcomes.__getstate__()
    assert state["arrays"]["confusion"].shape == (1, 3, 3)
    copy: WindowOutcomes = pickle.loads(pickle.dumps(outcomes))
    copy.add(joined(np.array([9]), np.array([0]), np.array([2]), np.array([2])))
    assert window_quality(copy.counts()).accuracy.tolist() == [1.0]


@pytest.mark.parametrize(("kind", "p", "y", "message"), [
    ("binary", [0.5], [2.0], r"labels\[0\] must be 0 or 1 for a binary model; got 2\.0"),
    ("multiclass", [1.0], [3.0], r"labels\[0\] must be a class below n_classes=3; got 3\.0"),
    ("multiclass", [1.5], [1.0], r"predictions\[0\] must be a class index"),
    ("regression", [math.inf], [1.0], r"predictions\[0\] must be a finite number"),
])
def test_invalid_outcomes_are_refused(kind: Kind, p: list[float], y: list[float], message: str) -> None:
    outcomes = WindowOutcomes(kind, n_classes=3 if kind == "multiclass" else None)
    with pytest.raises(ValueError, match=message):
        outcomes.add(joined(np.zeros(1), np.zeros(1), np.asarray(p), np.asarray(y)))


def test_expected_calibration_error_of_an_empty_window_is_nan() -> None:
    edges = calibration_edges()
    zeros = np.zeros((1, edges.size - 1))
    assert math.isnan(expected_calibration_error(zeros.astype(np.int64), zeros, zeros)[0])
