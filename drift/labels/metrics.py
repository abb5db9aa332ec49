"""Model quality per cohort window, from predictions joined to their delayed labels.

:class:`WindowOutcomes` accumulates, for every (cohort row, window id) of a model, what
the quality metrics need, in numpy arrays indexed by slot (one slot per cohort window,
given back when the window is taken out with :meth:`WindowOutcomes.pop`): a batch of
joined labels (:class:`drift.labels.join.Joined`) is added with one scatter-add per
array, not a loop per cohort. A (cohort row, window id) pair finds its slot through a
64-bit key (:func:`group_keys`) in the same open-addressing index as the join state
(:class:`drift.labels.join.SlotIndex`), looked up for a whole batch at once. What is kept depends on the model's kind:

``binary`` (a positive-class score ``p`` in [0, 1], a label ``y`` in {0, 1})
    the 2 × 2 confusion counts at a threshold (predicted positive when ``p >= threshold``,
    0.5 by default), the sums of the log-loss and Brier terms, and per calibration bin
    (``n_bins`` equal-width bins of ``p`` over [0, 1], 10 by default) the count, the sum of
    scores and the sum of labels;
``multiclass`` (a predicted class index, a true class index, both below ``n_classes``)
    the ``n_classes × n_classes`` confusion counts (true class × predicted class);
``regression`` (a predicted value, a true value)
    the sums of absolute and squared errors;

and for every kind the number of predictions (:meth:`WindowOutcomes.add_predictions`)
and of labels joined, for the label coverage.

:func:`window_quality` turns the counts of ``k`` cohort windows (:class:`OutcomeCounts`)
into the metrics, as arrays of ``k`` (:class:`WindowQuality`); each metric is also a
pure function of count arrays (:func:`precision`, :func:`expected_calibration_error`, …).
Formulas (``n``: labels joined in the window; ``tp, fp, fn``: confusion counts of the
positive class; bins ``b`` of the calibration):

- precision ``tp / (tp + fp)``, recall ``tp / (tp + fn)``, F1 ``2tp / (2tp + fp + fn)``;
  for multiclass, their unweighted mean over the classes present in the window (among
  its labels or its predictions), per class as for the positive class (macro average);
- accuracy: correct predictions / ``n``;
- log-loss ``−(1/n) Σ [y log p + (1 − y) log(1 − p)]`` with ``p`` clipped to
  ``[ε, 1 − ε]``, ``ε`` the float64 machine epsilon (scikit-learn's ``log_loss`` since
  release 1.2; earlier releases clipped at 1e-15); Brier score ``(1/n) Σ (p − y)²``;
- expected calibration error ``Σ_b (n_b / n) |mean p_b − mean y_b| = Σ_b |Σp_b − Σy_b| / n``
  and the reliability table (per bin: count, mean score, mean label);
- MAE ``(1/n) Σ |ŷ − y|``, RMSE ``√((1/n) Σ (ŷ − y)²)``;
- label coverage: labels joined / predictions.

Undefined values are NaN, never 0: a ratio whose denominator is 0 (precision with no
positive prediction, recall with no positive label, F1 when ``tp + fp + fn = 0``, any
mean over no label, coverage with no prediction), a class whose precision or recall is
undefined is left out of the macro mean (NaN when no class has one), and metrics that do
not apply to the kind (log-loss for regression, MAE for a classifier; log-loss, Brier and
calibration for multiclass, whose prediction is a class, not probabilities) are NaN.
This is scikit-learn's behaviour with ``zero_division=np.nan``; its default (0 with a
warning) would make a window without positives look like a window with recall 0, and an
SLO would judge it breached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from drift.labels.join import KINDS, Joined, Kind, SlotIndex, check_values, mix

DEFAULT_THRESHOLD = 0.5
"""A binary score at or above it is a positive prediction."""
DEFAULT_BINS = 10
"""Calibration bins (equal width over [0, 1])."""
EPSILON = float(np.finfo(np.float64).eps)
"""Scores are clipped to ``[EPSILON, 1 − EPSILON]`` in the log-loss (as scikit-learn since 1.2)."""

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def group_keys(rows: npt.ArrayLike, windows: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """The 64-bit key of each (cohort row, window id) pair: the row in the high 32 bits, the
    window id modulo 2³² in the low ones, mixed. Distinct pairs get distinct keys as long
    as rows are below 2³² and the window ids held at once span less than 2³² windows."""
    rows, windows = np.asarray(rows, dtype=np.int64), np.asarray(windows, dtype=np.int64)
    if rows.shape != windows.shape or rows.ndim != 1:
        raise ValueError(f"cohort rows and window ids must be 1-d arrays of one shape; got {rows.shape} and "
                         f"{windows.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= 2**32):
        raise ValueError(f"cohort rows must be in [0, 2**32); got {int(rows.min())} .. {int(rows.max())}")
    low = windows.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    return mix((rows.astype(np.uint64) << np.uint64(32)) | low)


def calibration_edges(n_bins: int = DEFAULT_BINS) -> Floats:
    """The ``n_bins + 1`` edges of the calibration bins; bin ``b`` holds ``edges[b] <= p <
    edges[b + 1]``, the last one also ``p = 1``."""
    return np.linspace(0.0, 1.0, n_bins + 1)


def calibration_bin(scores: Floats, edges: Floats) -> Ints:
    """The calibration bin of each score in [0, 1]."""
    out: Ints = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, edges.size - 2).astype(np.int64)
    return out


def _ratio(num: npt.NDArray[Any], den: npt.NDArray[Any]) -> Floats:
    """``num / den``, NaN where ``den`` is 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def precision(tp: Ints, fp: Ints) -> Floats:
    """``tp / (tp + fp)``; NaN without positive predictions.

    >>> precision(np.array([3, 0]), np.array([1, 0])).tolist()
    [0.75, nan]
    """
    return _ratio(tp, tp + fp)


def recall(tp: Ints, fn: Ints) -> Floats:
    """``tp / (tp + fn)``; NaN without positive labels."""
    return _ratio(tp, tp + fn)


def f1(tp: Ints, fp: Ints, fn: Ints) -> Floats:
    """``2tp / (2tp + fp + fn)`` (the harmonic mean of precision and recall, 0 when one of
    them is 0 and the other undefined); NaN when ``tp + fp + fn = 0``."""
    return _ratio(2 * tp, 2 * tp + fp + fn)


def accuracy(confusion: Ints) -> Floats:
    """Share of correct predictions of each ``[k × C × C]`` confusion matrix; NaN when empty."""
    return _ratio(np.trace(confusion, axis1=1, axis2=2), confusion.sum(axis=(1, 2)))


def mean(sums: Floats, n: Ints) -> Floats:
    """``sums / n`` (a mean loss or error); NaN where ``n`` is 0."""
    return _ratio(sums, n)


def root_mean(sums: Floats, n: Ints) -> Floats:
    """``√(sums / n)`` (RMSE from the sum of squared errors); NaN where ``n`` is 0."""
    out: Floats = np.sqrt(_ratio(sums, n))
    return out


def label_coverage(n_labelled: Ints, n_predictions: Ints) -> Floats:
    """Share of a window's predictions whose label joined; NaN without predictions."""
    return _ratio(n_labelled, n_predictions)


def expected_calibration_error(bin_count: Ints, bin_score_sum: Floats, bin_label_sum: Floats) -> Floats:
    """``Σ_b (n_b / n) |mean score_b − mean label_b|`` per row of ``[k × bins]`` arrays.

    Equal to ``Σ_b |Σ scores_b − Σ labels_b| / n``; empty bins add nothing; NaN when ``n = 0``.

    >>> ece = expected_calibration_error(np.array([[2, 2]]), np.array([[0.4, 1.6]]), np.array([[0.0, 2.0]]))
    >>> round(float(ece[0]), 12)
    0.2
    """
    return _ratio(np.abs(bin_score_sum - bin_label_sum).sum(axis=1), bin_count.sum(axis=1))


def _macro(per_class: Floats, present: npt.NDArray[np.bool_]) -> Floats:
    """Mean over the present classes with a defined value (NaN when there is none)."""
    use = present & ~np.isnan(per_class)
    return _ratio(np.where(use, per_class, 0.0).sum(axis=1), use.sum(axis=1))


@dataclass(frozen=True)
class Reliability:
    """The reliability table of ``k`` windows: ``[k × bins]`` arrays (NaN means for empty bins)."""

    edges: Floats
    count: Ints
    mean_score: Floats
    mean_label: Floats


@dataclass(frozen=True)
class OutcomeCounts:
    """What :class:`WindowOutcomes` accumulated for ``k`` cohort windows (arrays of ``k`` rows).

    ``confusion`` is ``[k × C × C]`` (true class × predicted class; ``C = 2`` for binary)
    for classifiers; the sums and bins are None where the kind does not use them.
    """

    kind: Kind
    threshold: float
    edges: Floats
    cohort_rows: Ints
    window_ids: Ints
    n_predictions: Ints
    n_labelled: Ints
    confusion: Ints | None = None
    log_loss_sum: Floats | None = None
    brier_sum: Floats | None = None
    bin_count: Ints | None = None
    bin_score_sum: Floats | None = None
    bin_label_sum: Floats | None = None
    abs_error_sum: Floats | None = None
    squared_error_sum: Floats | None = None

    def __len__(self) -> int:
        return int(self.cohort_rows.size)


@dataclass(frozen=True)
class WindowQuality:
    """The quality metrics of ``k`` cohort windows (arrays of ``k``; NaN: undefined or not
    applicable, see the module text)."""

    cohort_rows: Ints
    window_ids: Ints
    n_predictions: Ints
    n_labelled: Ints
    label_coverage: Floats
    precision: Floats
    recall: Floats
    f1: Floats
    accuracy: Floats
    log_loss: Floats
    brier: Floats
    ece: Floats
    mae: Floats
    rmse: Floats
    reliability: Reliability | None
    """Binary models only."""


def window_quality(counts: OutcomeCounts) -> WindowQuality:
    """Every metric of ``counts``' windows (formulas and undefined values: the module text)."""
    k = len(counts)
    nan = np.full(k, np.nan)
    n = counts.n_labelled
    prec, rec, f1_, acc, loss, brier, ece, mae, rmse = (nan,) * 9
    table = None
    if counts.confusion is not None:
        c = counts.confusion
        acc = accuracy(c)
        if counts.kind == "binary":
            tp, fp, fn = c[:, 1, 1], c[:, 0, 1], c[:, 1, 0]
            prec, rec, f1_ = precision(tp, fp), recall(tp, fn), f1(tp, fp, fn)
        else:
            tp = np.diagonal(c, axis1=1, axis2=2)
            predicted, actual = c.sum(axis=1), c.sum(axis=2)
            fp, fn = predicted - tp, actual - tp
            present = (predicted + actual) > 0
            prec, rec, f1_ = (_macro(precision(tp, fp), present), _macro(recall(tp, fn), present),
                              _macro(f1(tp, fp, fn), present))
    if counts.log_loss_sum is not None and counts.brier_sum is not None:
        loss, brier = mean(counts.log_loss_sum, n), mean(counts.brier_sum, n)
    if counts.bin_count is not None and counts.bin_score_sum is not None and counts.bin_label_sum is not None:
        ece = expected_calibration_error(counts.bin_count, counts.bin_score_sum, counts.bin_label_sum)
        table = Reliability(
            edges=counts.edges, count=counts.bin_count,
            mean_score=_ratio(counts.bin_score_sum, counts.bin_count),
            mean_label=_ratio(counts.bin_label_sum, counts.bin_count),
        )
    if counts.abs_error_sum is not None and counts.squared_error_sum is not None:
        mae, rmse = mean(counts.abs_error_sum, n), root_mean(counts.squared_error_sum, n)
    return WindowQuality(
        cohort_rows=counts.cohort_rows, window_ids=counts.window_ids, n_predictions=counts.n_predictions,
        n_labelled=n, label_coverage=label_coverage(n, counts.n_predictions),
        precision=prec, recall=rec, f1=f1_, accuracy=acc, log_loss=loss, brier=brier, ece=ece, mae=mae, rmse=rmse,
        reliability=table,
    )


_BINARY = ("confusion", "log_loss_sum", "brier_sum", "bin_count", "bin_score_sum", "bin_label_sum")
_MULTICLASS = ("confusion",)
_REGRESSION = ("abs_error_sum", "squared_error_sum")


class WindowOutcomes:
    """Per cohort window, what the quality metrics of one model need (see the module text).

    Parameters
    ----------
    kind
        ``binary``, ``multiclass`` or ``regression``.
    n_classes
        Number of classes (multiclass only): classes are ``0 .. n_classes − 1``.
    threshold
        A binary score at or above it is a positive prediction.
    n_bins
        Calibration bins of the binary score.

    >>> outcomes = WindowOutcomes("binary")
    >>> outcomes.add_predictions(np.array([0, 0, 0]), np.array([5, 5, 5]))
    >>> joined = Joined(np.array([0, 0]), np.array([5, 5]), np.array([0.8, 0.3]), np.array([1.0, 1.0]),
    ...                 np.array([0, 0]), np.array([0, 1]))
    >>> outcomes.add(joined)
    >>> quality = window_quality(outcomes.counts())
    >>> quality.recall.tolist(), quality.precision.tolist(), round(float(quality.label_coverage[0]), 3)
    ([0.5], [1.0], 0.667)
    """

    def __init__(self, kind: Kind, n_classes: int | None = None, threshold: float = DEFAULT_THRESHOLD,
                 n_bins: int = DEFAULT_BINS) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        if kind == "multiclass" and (n_classes is None or n_classes < 2):
            raise ValueError(f"n_classes must be an integer >= 2 for a multiclass model; got {n_classes!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1]; got {threshold!r}")
        if n_bins < 1:
            raise ValueError(f"n_bins must be an integer >= 1; got {n_bins!r}")
        self.kind: Kind = kind
        self.n_classes = 2 if kind == "binary" else (n_classes or 0)
        self.threshold = threshold
        self.edges = calibration_edges(n_bins)
        self.n_bins = n_bins
        self.index = SlotIndex()
        """Group key (:func:`group_keys`) -> slot."""
        self.group_keys = np.zeros(0, dtype=np.uint64)
        self.live = np.zeros(0, dtype=np.bool_)
        self.slots = 0
        self.used = 0
        self.free_slots: list[int] = []
        self.arrays: dict[str, npt.NDArray[Any]] = {
            "cohort_rows": np.zeros(0, dtype=np.int64), "window_ids": np.zeros(0, dtype=np.int64),
            "n_predictions": np.zeros(0, dtype=np.int64), "n_labelled": np.zeros(0, dtype=np.int64),
        }
        c, b = self.n_classes, n_bins
        shapes: dict[str, tuple[tuple[int, ...], type[Any]]] = {
            "confusion": ((c, c), np.int64), "log_loss_sum": ((), np.float64), "brier_sum": ((), np.float64),
            "bin_count": ((b,), np.int64), "bin_score_sum": ((b,), np.float64), "bin_label_sum": ((b,), np.float64),
            "abs_error_sum": ((), np.float64), "squared_error_sum": ((), np.float64),
        }
        for name in {"binary": _BINARY, "multiclass": _MULTICLASS, "regression": _REGRESSION}[kind]:
            shape, dtype = shapes[name]
            self.arrays[name] = np.zeros((0, *shape), dtype=dtype)

    def __len__(self) -> int:
        """Cohort windows held."""
        return self.index.n_live

    # -- slots -----------------------------------------------------------------------------

    def _grow(self, slots: int) -> None:
        for name, a in self.arrays.items():
            grown = np.zeros((slots, *a.shape[1:]), dtype=a.dtype)
            grown[: a.shape[0]] = a
            self.arrays[name] = grown
        for name in ("group_keys", "live"):
            a = getattr(self, name)
            grown = np.zeros(slots, dtype=a.dtype)
            grown[: a.size] = a
            setattr(self, name, grown)
        self.slots = slots

    def _slots(self, rows: npt.ArrayLike, windows: npt.ArrayLike) -> Ints:
        """The slot of each (row, window) pair; new pairs get one."""
        keys = group_keys(rows, windows)
        if keys.size == 0:
            return np.zeros(0, dtype=np.int64)
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        found = self.index.lookup(unique, self.group_keys)
        new = np.flatnonzero(found < 0)
        if new.size:
            reused = [self.free_slots.pop() for _ in range(min(new.size, len(self.free_slots)))]
            fresh = new.size - len(reused)
            if self.used + fresh > self.slots:
                self._grow(max(16, 2 * self.slots, self.used + fresh))
            given = np.asarray([*reused, *range(self.used, self.used + fresh)], dtype=np.int64)
            self.used += fresh
            found[new] = given
            at = first[new]
            self.group_keys[given], self.live[given] = unique[new], True
            self.arrays["cohort_rows"][given] = np.asarray(rows, dtype=np.int64)[at]
            self.arrays["window_ids"][given] = np.asarray(windows, dtype=np.int64)[at]
            self.index.insert(unique[new], given, self.group_keys)
        out: Ints = found[inverse.reshape(-1)]
        return out

    def _lookup(self, rows: npt.ArrayLike, windows: npt.ArrayLike) -> Ints:
        """The slot of each held (row, window) pair; KeyError names the first one not held."""
        slots = self.index.lookup(group_keys(rows, windows), self.group_keys)
        if (slots < 0).any():
            i = int(np.flatnonzero(slots < 0)[0])
            row, window = int(np.asarray(rows)[i]), int(np.asarray(windows)[i])
            raise KeyError(f"no outcomes held for cohort row {row} in window {window}")
        return slots

    # -- counting --------------------------------------------------------------------------

    def add_predictions(self, cohort_rows: npt.ArrayLike, window_ids: npt.ArrayLike) -> None:
        """Count predictions made in each cohort window (the denominator of the label coverage)."""
        slots = self._slots(cohort_rows, window_ids)
        np.add.at(self.arrays["n_predictions"], slots, 1)

    def add(self, joined: Joined) -> None:
        """Count a batch of joined predictions and labels into their cohort windows."""
        if len(joined) == 0:
            return
        p, y = joined.predictions, joined.labels
        check_values(self.kind, p, "predictions")
        check_values(self.kind, y, "labels", labels=True)
        if self.kind == "multiclass":
            for values, name in ((p, "predictions"), (y, "labels")):
                if (values >= self.n_classes).any():
                    i = int(np.flatnonzero(values >= self.n_classes)[0])
                    raise ValueError(f"{name}[{i}] must be a class below n_classes={self.n_classes}; got {float(values[i])!r}")
        slots = self._slots(joined.cohort_rows, joined.window_ids)
        a = self.arrays
        np.add.at(a["n_labelled"], slots, 1)
        if self.kind == "regression":
            error = p - y
            np.add.at(a["abs_error_sum"], slots, np.abs(error))
            np.add.at(a["squared_error_sum"], slots, error * error)
            return
        c = self.n_classes
        truth = y.astype(np.int64)
        predicted = (p >= self.threshold).astype(np.int64) if self.kind == "binary" else p.astype(np.int64)
        np.add.at(a["confusion"].reshape(-1), (slots * c + truth) * c + predicted, 1)
        if self.kind == "binary":
            positive = truth == 1
            loss = -np.log(np.where(positive, np.clip(p, EPSILON, 1 - EPSILON), np.clip(1 - p, EPSILON, 1 - EPSILON)))
            np.add.at(a["log_loss_sum"], slots, loss)
            np.add.at(a["brier_sum"], slots, (p - y) ** 2)
            cell = slots * self.n_bins + calibration_bin(p, self.edges)
            np.add.at(a["bin_count"].reshape(-1), cell, 1)
            np.add.at(a["bin_score_sum"].reshape(-1), cell, p)
            np.add.at(a["bin_label_sum"].reshape(-1), cell, y)

    # -- reading ---------------------------------------------------------------------------

    def keys(self) -> tuple[Ints, Ints]:
        """``(cohort rows, window ids)`` of the cohort windows held, in slot order."""
        slots = np.flatnonzero(self.live[: self.used])
        return self.arrays["cohort_rows"][slots], self.arrays["window_ids"][slots]

    def _counts(self, slots: Ints) -> OutcomeCounts:
        a = {name: array[slots] for name, array in self.arrays.items()}
        return OutcomeCounts(kind=self.kind, threshold=self.threshold, edges=self.edges, **a)

    def counts(self, cohort_rows: npt.ArrayLike | None = None, window_ids: npt.ArrayLike | None = None) -> OutcomeCounts:
        """The counts of the given cohort windows (all held ones by default), kept held."""
        if cohort_rows is None or window_ids is None:
            cohort_rows, window_ids = self.keys()
        return self._counts(self._lookup(cohort_rows, window_ids))

    def pop(self, cohort_rows: npt.ArrayLike, window_ids: npt.ArrayLike) -> OutcomeCounts:
        """The counts of the given cohort windows, which are then forgotten (slots reused)."""
        slots = self._lookup(cohort_rows, window_ids)
        out = self._counts(slots)
        slots = np.unique(slots)
        for array in self.arrays.values():
            array[slots] = 0
        self.index.remove(slots)
        self.live[slots] = False
        self.free_slots.extend(slots.tolist())
        return out

    # -- snapshots -------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The held cohort windows only, packed."""
        slots = np.flatnonzero(self.live[: self.used])
        return {
            "kind": self.kind, "n_classes": self.n_classes, "threshold": self.threshold, "n_bins": self.n_bins,
            "arrays": {name: array[slots] for name, array in self.arrays.items()},
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["kind"], state["n_classes"], state["threshold"], state["n_bins"])  # type: ignore[misc]
        n = int(state["arrays"]["cohort_rows"].size)
        if n:
            self._grow(max(16, n))
            for name, array in state["arrays"].items():
                self.arrays[name][:n] = array
            self.used = n
            self.group_keys[:n] = group_keys(self.arrays["cohort_rows"][:n], self.arrays["window_ids"][:n])
            self.live[:n] = True
            self.index.insert(self.group_keys[:n].copy(), np.arange(n, dtype=np.int64), self.group_keys)
