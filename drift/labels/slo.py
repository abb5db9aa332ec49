"""Quality SLOs: objectives on a model's quality metrics, judged as acceptance windows.

An SLO (:class:`SloConfig`) is written as one line of text,

``<metric> <op> <target> [over <duration>] [on cohorts <label>=<value|*>[,<label>=...]]``

for example ``recall >= 0.8 over 7d on cohorts tenant=*``, or as the same fields in a
mapping. ``label_coverage >= 0.5 before judging`` is not an objective but the coverage
gate: a cohort window is judged only once that share of its predictions has a label.

:class:`SloBook` holds one model's SLO state. Each time a cohort window is judged, it
keeps the window's outcome counts (:class:`drift.labels.metrics.OutcomeCounts`) and, for
every SLO whose ``cohorts`` selector matches the cohort, sums the counts of the cohort's
windows in the SLO's period (``over``; one window when absent) and computes the metric
on the sums with :func:`drift.labels.metrics.window_quality`. Every metric is a function
of sums (confusion counts, loss and error sums, calibration bins), so the period's value
is exactly the metric of all the period's labelled predictions taken together.

Error budget and burn rate. With ``error = 1 − value`` and ``allowed = 1 − target`` for
a ``>=`` objective (higher is better: precision, recall, f1, accuracy, label_coverage)
and ``error = value``, ``allowed = target`` for a ``<=`` one (lower is better: log_loss,
brier, ece, mae, rmse):

- ``budget_remaining = 1 − error_period / allowed`` (1: no error, 0: the objective is met
  exactly, negative: it is violated);
- ``burn_rate = error_last_window / allowed`` (1: the last window alone spends the budget
  at the rate the objective allows; above 1 it spends it faster).

The finding's ``value`` is the budget spent, ``error_period / allowed = 1 −
budget_remaining`` (greater is worse, 1 at the target), and its ``warn`` and ``alert``
levels are both 1: the severity is decided as below, and the policy's hysteresis
(``clear_ratio``) reads as "clears once the period spends less than ``clear_ratio`` of its
budget". The SLI itself is in the evidence (``sli``) and the ``drift_slo_value`` gauge.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

from drift.duration import Duration, format_duration, parse_duration
from drift.findings import Cohort, Finding, Severity, Window
from drift.labels.join import KINDS, Kind
from drift.labels.metrics import OutcomeCounts, WindowQuality, window_quality


class SloGauges(Protocol):
    """Where an :class:`SloBook` sets its gauges (:class:`drift.metrics.CohortMetrics` is one;
    drift.labels is core and does not import it)."""

    def record_slo(self, cohort: Cohort, slo: str, value: float, budget_remaining: float,
                   burn_rate: float) -> None: ...


Op = Literal[">=", "<="]

HIGHER_IS_BETTER = ("precision", "recall", "f1", "accuracy", "label_coverage")
"""Metrics in [0, 1] whose objective is ``>=``."""
LOWER_IS_BETTER = ("log_loss", "brier", "ece", "mae", "rmse")
"""Metrics whose objective is ``<=``."""
METRICS = tuple(sorted(HIGHER_IS_BETTER + LOWER_IS_BETTER))
METRICS_BY_KIND: dict[Kind, tuple[str, ...]] = {
    "binary": ("precision", "recall", "f1", "accuracy", "log_loss", "brier", "ece", "label_coverage"),
    "multiclass": ("precision", "recall", "f1", "accuracy", "label_coverage"),
    "regression": ("mae", "rmse", "label_coverage"),
}
"""The metrics an SLO may name for each kind of model (multiclass precision, recall and F1
are macro averages; a multiclass prediction is a class, so it has no log-loss, Brier score
or calibration)."""
UNIT_RANGE = ("precision", "recall", "f1", "accuracy", "label_coverage", "brier", "ece")
"""Metrics whose values lie in [0, 1]."""

FORMS = (
    "<metric> <op> <target> [over <duration>] [on cohorts <label>=<value|*>[,<label>=<value|*>...]]",
    "label_coverage >= <target> before judging",
)
"""The accepted forms of an SLO's text."""

DEFAULT_MIN_LABELS = 30
DEFAULT_ALPHA = 0.01
DEFAULT_WARN_BURN_RATE = 2.0
ANY = "*"
"""A selector value matching every cohort that has the label."""
_NO_VALUES = ("-", "*", "")
"""Cohort label values that are no value: ``-`` (absent) and ``*`` (a rollup over the label)."""


class SloSyntaxError(ValueError):
    """An SLO's text does not follow the grammar (:data:`FORMS`)."""


def _fail(text: str, at: int, detail: str) -> SloSyntaxError:
    return SloSyntaxError(
        f"cannot read the SLO {text!r}: at character {at + 1}, {detail}; accepted forms: "
        f"{FORMS[0]!r} or {FORMS[1]!r}"
    )


_HEAD = re.compile(r"\s*(?P<metric>[^\s<>=!]+)\s*(?P<op>[<>=!]*)\s*(?P<target>[^\s<>=!]*)")
_WORD = re.compile(r"\S+")


def parse_slo(text: str) -> dict[str, Any]:
    """The fields of an SLO written as text (only those the text gives).

    >>> parse_slo("recall >= 0.8 over 7d on cohorts tenant=*")
    {'metric': 'recall', 'op': '>=', 'target': 0.8, 'over': datetime.timedelta(days=7), 'cohorts': {'tenant': '*'}}
    >>> parse_slo("label_coverage >= 0.5 before judging")["judging"]
    True

    Raises
    ------
    SloSyntaxError
        Naming the character and the word that does not fit, and the accepted forms.
    """
    head = _HEAD.match(text)
    if head is None or not text.strip():
        raise _fail(text, 0, "expected '<metric> <op> <target>'")
    op, target = head.group("op"), head.group("target")
    if op not in (">=", "<="):
        word = op or (target or "end of text")
        raise _fail(text, head.start("op"), f"expected the comparison '>=' or '<=' after "
                                            f"{head.group('metric')!r}; got {word!r}")
    try:
        value = float(target)
    except ValueError:
        raise _fail(text, head.start("target"), f"expected a number as the target; got "
                                                f"{target or 'end of text'!r}") from None
    if not math.isfinite(value):
        raise _fail(text, head.start("target"), f"the target must be a finite number; got {target!r}")
    out: dict[str, Any] = {"metric": head.group("metric"), "op": op, "target": value}
    words = [(m.start(), m.group()) for m in _WORD.finditer(text, head.end())]
    i = 0

    def _next(after: str) -> tuple[int, str]:
        if i + 1 >= len(words):
            raise _fail(text, len(text), f"expected {after} after {words[i][1]!r}; got end of text")
        return words[i + 1]

    while i < len(words):
        at, word = words[i]
        if word in out.get("_seen", ()):
            raise _fail(text, at, f"{word!r} is given twice")
        out.setdefault("_seen", set()).add(word)
        if word == "over":
            at_d, duration = _next("a duration like '1h', '7d' or '4w'")
            try:
                out["over"] = parse_duration(duration)
            except ValueError as exc:
                raise _fail(text, at_d, f"'over' {exc}") from None
            i += 2
        elif word == "before":
            at_j, judging = _next("'judging'")
            if judging != "judging":
                raise _fail(text, at_j, f"expected 'judging' after 'before'; got {judging!r}")
            out["judging"] = True
            i += 2
        elif word == "on":
            at_c, cohorts = _next("'cohorts'")
            if cohorts != "cohorts":
                raise _fail(text, at_c, f"expected 'cohorts' after 'on'; got {cohorts!r}")
            i += 2
            parts: list[tuple[int, str]] = []
            while i < len(words) and words[i][1] not in ("over", "before", "on"):
                parts.append(words[i])
                i += 1
            if not parts:
                raise _fail(text, len(text), "expected '<label>=<value|*>' after 'on cohorts'; got end of text")
            selector: dict[str, str] = {}
            start = parts[0][0]
            joined = text[start: parts[-1][0] + len(parts[-1][1])]
            offset = 0
            for item in joined.split(","):
                pos = start + offset + (len(item) - len(item.lstrip()))
                offset += len(item) + 1
                label, eq, value_ = item.strip().partition("=")
                if not eq or not label or not value_ or " " in item.strip() or "=" in value_:
                    raise _fail(text, pos, f"expected '<label>=<value|*>' in the cohort selector; got "
                                           f"{item.strip()!r}")
                if label in selector:
                    raise _fail(text, pos, f"the label {label!r} is selected twice")
                selector[label] = value_
            out["cohorts"] = selector
        else:
            raise _fail(text, at, f"unexpected word {word!r}; expected 'over <duration>', "
                                  "'on cohorts <label>=<value|*>,...' or 'before judging'")
    out.pop("_seen", None)
    return out


def _target_text(target: float) -> str:
    return repr(float(target))


def _duration_text(value: timedelta) -> str:
    """A period as SLOs are usually written: whole days in days (``7d``, not ``1w``)."""
    seconds = value.total_seconds()
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    return format_duration(value)


def _normalised(text: str) -> str:
    """An SLO's text (already read) as its default name: single spaces, ``>=``/``<=``
    spaced, the target as a float, no space in the selector; durations as written.

    >>> _normalised("recall>=0.80   over 7d on cohorts tenant=acme, region=*")
    'recall >= 0.8 over 7d on cohorts tenant=acme,region=*'
    """
    head = _HEAD.match(text)
    assert head is not None
    rest = " ".join(text[head.end():].split())
    rest = re.sub(r"\s*,\s*", ",", rest)
    out = f"{head.group('metric')} {head.group('op')} {_target_text(float(head.group('target')))}"
    return f"{out} {rest}" if rest else out


class SloConfig(BaseModel):
    """One quality SLO of a model, or its label-coverage gate (``judging``).

    Read from ``"recall >= 0.8 over 7d on cohorts tenant=*"`` or from a mapping
    (``{metric: recall, op: ">=", target: 0.8, over: 7d, cohorts: {tenant: "*"}}``); a
    mapping may also give the text as ``objective`` with the other keys next to it
    (``{objective: "recall >= 0.8 over 7d", min_labels: 100}``).

    >>> slo = SloConfig.model_validate("recall >= 0.8 over 7d on cohorts tenant=*")
    >>> slo.name, slo.over
    ('recall >= 0.8 over 7d on cohorts tenant=*', datetime.timedelta(days=7))
    >>> SloConfig.model_validate(slo.text) == slo
    True
    """

    # The settings of drift.config.base.Strict, as the detectors' configs have them:
    # drift.config.models imports this module, so importing drift.config here would be circular.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    metric: str
    op: Op
    target: float
    over: Duration | None = None
    """The acceptance period: the judged window and the cohort's windows before it within
    ``over`` (``ceil(over / window size)`` windows); one window when absent."""
    cohorts: dict[str, str] = Field(default_factory=dict)
    """Selector: every cohort when empty; ``label: "*"`` the cohorts with a value for the
    label; ``label: value`` those with that value. All entries must match."""
    name: str = ""
    """The SLO's name in findings (``feature``), gauges and tickets; by default its text as
    written (spacing normalised), or :attr:`text` for a mapping."""
    judging: bool = False
    """True for the coverage gate ``label_coverage >= x before judging``."""
    min_labels: int = Field(default=DEFAULT_MIN_LABELS, ge=1)
    """Fewer labels in the period (predictions, for ``label_coverage``): skipped."""
    alpha: float = Field(default=DEFAULT_ALPHA, gt=0, lt=1)
    """A violated ratio objective alerts only when the binomial p-value of "the true rate
    meets the target" is at most ``alpha``."""
    warn_burn_rate: float = Field(default=DEFAULT_WARN_BURN_RATE, gt=0)
    """The last window's burn rate at which the finding warns."""

    @model_validator(mode="before")
    @classmethod
    def _read_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {**parse_slo(data), "name": _normalised(data)}
        if isinstance(data, Mapping) and "objective" in data:
            rest = {k: v for k, v in data.items() if k != "objective"}
            text = data["objective"]
            if not isinstance(text, str):
                raise ValueError(f"objective must be an SLO's text ({FORMS[0]!r}); got {text!r}")
            parsed = parse_slo(text)
            both = sorted(set(parsed) & set(rest))
            if both:
                raise ValueError(f"{', '.join(both)} given both in objective {text!r} and as keys")
            return {"name": _normalised(text), **parsed, **rest}
        return data

    @model_validator(mode="after")
    def _check(self) -> SloConfig:
        metric, target = self.metric, self.target
        if metric not in METRICS:
            close = difflib.get_close_matches(metric, METRICS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown metric {metric!r}{hint}; accepted: {', '.join(METRICS)}")
        if self.judging:
            if metric != "label_coverage" or self.op != ">=":
                raise ValueError(f"only 'label_coverage >= <target> before judging' is a gate; got {self.text!r}")
            if self.over is not None or self.cohorts:
                raise ValueError(f"the coverage gate takes no 'over' nor 'on cohorts'; got {self.text!r}")
            if not 0.0 < target <= 1.0:
                raise ValueError(f"the coverage gate's target must be in (0, 1]; got {target!r}")
        else:
            if metric in HIGHER_IS_BETTER and self.op != ">=":
                raise ValueError(f"{metric} is better when higher: write '{metric} >= <target>'; got {self.text!r}")
            if metric in LOWER_IS_BETTER and self.op != "<=":
                raise ValueError(f"{metric} is better when lower: write '{metric} <= <target>'; got {self.text!r}")
            if metric in HIGHER_IS_BETTER and not 0.0 <= target < 1.0:
                raise ValueError(f"the target of {metric} >= must be in [0, 1) (at 1 no error is allowed, "
                                 f"so there is no error budget); got {target!r}")
            if metric in LOWER_IS_BETTER and not (target > 0.0 and math.isfinite(target)):
                raise ValueError(f"the target of {metric} <= must be above 0 (at 0 no error is allowed, "
                                 f"so there is no error budget); got {target!r}")
            if metric in UNIT_RANGE and metric in LOWER_IS_BETTER and target > 1.0:
                raise ValueError(f"the target of {metric} <= must be in (0, 1] ({metric} lies in [0, 1]); "
                                 f"got {target!r}")
        if self.over is not None and self.over <= timedelta(0):
            raise ValueError(f"over must be a positive duration; got {format_duration(self.over)!r}")
        for label, value in self.cohorts.items():
            if not label or not value:
                raise ValueError(f"cohorts: a selector needs a label and a value (or '*'); got {label!r}: {value!r}")
        if not self.name:
            # Frozen model: the default name is set once, here, from the validated fields.
            object.__setattr__(self, "name", self.text)
        return self

    @property
    def text(self) -> str:
        """The SLO in the text form (read back to an equal config, ``name`` aside)."""
        out = f"{self.metric} {self.op} {_target_text(self.target)}"
        if self.over is not None:
            out += f" over {_duration_text(self.over)}"
        if self.cohorts:
            out += " on cohorts " + ",".join(f"{k}={v}" for k, v in self.cohorts.items())
        if self.judging:
            out += " before judging"
        return out

    def matches(self, cohort: Cohort) -> bool:
        """Whether the ``cohorts`` selector takes ``cohort``.

        >>> slo = SloConfig.model_validate("recall >= 0.8 on cohorts tenant=*")
        >>> slo.matches(Cohort("m", (("tenant", "acme"),))), slo.matches(Cohort("m", (("tenant", "-"),)))
        (True, False)
        """
        if not self.cohorts:
            return True
        labels = dict(cohort.labels)
        for label, wanted in self.cohorts.items():
            value = labels.get(label)
            if value is None or value in _NO_VALUES:
                return False
            if wanted != ANY and value != wanted:
                return False
        return True

    def windows(self, window_size: timedelta) -> int:
        """Windows in the period: ``ceil(over / window_size)``, 1 without ``over``."""
        if self.over is None:
            return 1
        return max(1, math.ceil(self.over / window_size - 1e-9))


def min_coverage(slos: Sequence[SloConfig]) -> float:
    """The coverage gate's target (``label_coverage >= x before judging``); 0.0 when none is given."""
    return max((s.target for s in slos if s.judging), default=0.0)


def check_slos(kind: Kind, slos: Sequence[SloConfig], window_size: timedelta | None = None,
               cohort_labels: Sequence[str] | None = None) -> None:
    """Check a model's SLOs against what the model is: its kind, its window size and its
    cohort labels (each optional but ``kind``).

    Raises
    ------
    ValueError
        Listing every problem, each with the SLO's position (``slo[1] 'log_loss <= 0.3':
        log_loss is not measured for a multiclass model; ...``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    problems: list[str] = []
    names: dict[str, int] = {}
    gates = [i for i, s in enumerate(slos) if s.judging]
    if len(gates) > 1:
        problems.append(f"slo: one coverage gate ('before judging') at most; got {len(gates)} "
                        f"(slo[{gates[0]}] and slo[{gates[1]}])")
    for i, slo in enumerate(slos):
        where = f"slo[{i}] {slo.name!r}"
        if slo.metric not in METRICS_BY_KIND[kind]:
            problems.append(f"{where}: {slo.metric} is not measured for a {kind} model; metrics for {kind}: "
                            f"{', '.join(METRICS_BY_KIND[kind])}")
        if slo.name in names:
            problems.append(f"{where}: the name is already used by slo[{names[slo.name]}]")
        names.setdefault(slo.name, i)
        if window_size is not None and slo.over is not None:
            ratio = slo.over / window_size
            if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
                problems.append(f"{where}: over must be a whole number of windows of {format_duration(window_size)}; "
                                f"got {format_duration(slo.over)}")
        if cohort_labels is not None:
            unknown = [label for label in slo.cohorts if label not in cohort_labels]
            if unknown:
                problems.append(f"{where}: the model's cohorts have no label {', '.join(map(repr, unknown))}; "
                                f"its labels: {', '.join(cohort_labels) or 'none'}")
    if problems:
        raise ValueError("; ".join(problems))


# -- the book ------------------------------------------------------------------------------

_FIELDS: dict[str, tuple[str, ...]] = {
    "precision": ("confusion",), "recall": ("confusion",), "f1": ("confusion",), "accuracy": ("confusion",),
    "log_loss": ("log_loss_sum", "brier_sum"), "brier": ("log_loss_sum", "brier_sum"),
    "ece": ("bin_count", "bin_score_sum", "bin_label_sum"),
    "mae": ("abs_error_sum", "squared_error_sum"), "rmse": ("abs_error_sum", "squared_error_sum"),
    "label_coverage": (),
}
"""The :class:`OutcomeCounts` arrays each metric needs (beyond the prediction and label counts)."""
_RATIO = {"binary": ("precision", "recall", "accuracy"), "multiclass": ("accuracy",), "regression": ()}
"""Metrics that are one binomial proportion of the kind (tested for significance)."""
_SPAN = 1 << 32
"""Window ids of the state are kept as ``id * _SPAN + (window id − base)``."""


def _successes(metric: str, confusion: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(successes, trials)`` of a ratio metric from ``[k × C × C]`` confusion counts."""
    if metric == "accuracy":
        return np.trace(confusion, axis1=1, axis2=2).astype(np.int64), confusion.sum(axis=(1, 2)).astype(np.int64)
    tp = confusion[:, 1, 1]
    other = confusion[:, 0, 1] if metric == "precision" else confusion[:, 1, 0]
    return tp.astype(np.int64), (tp + other).astype(np.int64)


def binomial_p_value(successes: npt.ArrayLike, trials: npt.ArrayLike, target: float, op: Op) -> npt.NDArray[np.float64]:
    """One-sided binomial p-value of "the true rate meets the target" (``rate >= target`` for
    ``>=``, ``rate <= target`` for ``<=``): ``P(X <= x)`` resp. ``P(X >= x)`` for ``X ~
    Binomial(n, target)``; NaN where ``n = 0``.

    >>> round(float(binomial_p_value([70], [100], 0.8, ">=")[0]), 4)
    0.0112
    """
    x, n = np.asarray(successes, dtype=np.int64), np.asarray(trials, dtype=np.int64)
    p = stats.binom.cdf(x, n, target) if op == ">=" else stats.binom.sf(x - 1, n, target)
    out: npt.NDArray[np.float64] = np.where(n > 0, np.minimum(p, 1.0), np.nan).astype(np.float64)
    return out


def budget(value: npt.ArrayLike, target: float, op: Op) -> npt.NDArray[np.float64]:
    """The error of ``value`` as a share of the allowed error: ``(1 − value) / (1 − target)``
    for ``>=``, ``value / target`` for ``<=`` (1 at the target, greater is worse).

    ``budget_remaining = 1 − budget(period value)`` and ``burn_rate = budget(last window's value)``.

    >>> budget([0.7, 0.9], 0.8, ">=").round(6).tolist()
    [1.5, 0.5]
    """
    v = np.asarray(value, dtype=np.float64)
    out: npt.NDArray[np.float64] = (1.0 - v) / (1.0 - target) if op == ">=" else v / target
    return out


class SloBook:
    """One model's SLO state: per cohort, the outcome counts of its judged windows within
    the longest SLO period, in sorted arrays (no object per cohort or window).

    Parameters
    ----------
    model
        The model's name.
    kind
        ``binary``, ``multiclass`` or ``regression``.
    slos
        The model's SLOs (checked with :func:`check_slos`), the coverage gate included.
    window_size
        The size of the model's windows; an SLO's period is ``ceil(over / window_size)``
        windows, its window ids those of :class:`~drift.labels.metrics.OutcomeCounts`
        (``ts // size``).
    metrics
        Where the gauges go (the dataflow passes the process's per-cohort metrics,
        :func:`drift.metrics.cohort_metrics`); None sets none.

    State and bounds: one row per judged (cohort, window) whose window is within the
    longest period of the newest window judged, holding the prediction and label counts
    and only the count arrays the SLOs' metrics need (a binary model with precision and
    recall SLOs: 7 numbers with the key, 56 bytes, per row; ``ece`` adds ``3 × bins``). A window judged
    again replaces its counts. Rows older than the longest period are dropped after every
    :meth:`judge`, and a cohort with no row left is forgotten. Pickling keeps the rows and
    the cohorts, not ``metrics``.
    """

    def __init__(self, model: str, kind: Kind, slos: Sequence[SloConfig], window_size: timedelta,
                 metrics: SloGauges | None = None) -> None:
        check_slos(kind, slos, window_size)
        self.model = model
        self.kind: Kind = kind
        self.slos = tuple(slos)
        self.window_size = window_size
        self.metrics = metrics
        self.objectives = tuple(s for s in self.slos if not s.judging)
        self.gate = min_coverage(self.slos)
        self.periods = tuple(s.windows(window_size) for s in self.objectives)
        self.keep = max(self.periods, default=1)
        self.fields = tuple(sorted({f for s in self.objectives for f in _FIELDS[s.metric]}))
        self._reset()

    def _reset(self) -> None:
        self.ids: dict[str, int] = {}
        """Cohort key -> the cohort's id in the rows."""
        self.cohorts: list[Cohort] = []
        self.selected = np.zeros((len(self.objectives), 0), dtype=np.bool_)
        """``[slos × cohort ids]``: whether each objective's selector takes the cohort."""
        self.base: int | None = None
        self.newest: int | None = None
        self.threshold = 0.5
        self.edges = np.zeros(0, dtype=np.float64)
        self.row_keys = np.zeros(0, dtype=np.int64)
        """Sorted: ``cohort id * 2**32 + (window id − base)``."""
        self.rows: dict[str, npt.NDArray[Any]] = {}

    def __len__(self) -> int:
        """Cohort windows held."""
        return int(self.row_keys.size)

    def nbytes(self) -> int:
        """Bytes of the row arrays."""
        return int(self.row_keys.nbytes + sum(a.nbytes for a in self.rows.values()))

    # -- state -----------------------------------------------------------------------------

    def _cohort_ids(self, cohorts: Sequence[Cohort]) -> npt.NDArray[np.int64]:
        out = np.empty(len(cohorts), dtype=np.int64)
        new: list[Cohort] = []
        for i, cohort in enumerate(cohorts):
            found = self.ids.get(cohort.key)
            if found is None:
                found = self.ids[cohort.key] = len(self.cohorts)
                self.cohorts.append(cohort)
                new.append(cohort)
            out[i] = found
        if new:
            added = np.array([[s.matches(c) for c in new] for s in self.objectives], dtype=np.bool_)
            self.selected = np.concatenate([self.selected, added.reshape(len(self.objectives), len(new))], axis=1)
        return out

    def _keys(self, ids: npt.NDArray[np.int64], window_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        assert self.base is not None
        offset = window_ids - self.base
        if offset.size and (offset.min() < 0 or offset.max() >= _SPAN):
            raise ValueError(f"window ids must stay within 2**31 windows of the first one judged ({self.base + _SPAN // 2}); "
                             f"got {int(window_ids.min())} .. {int(window_ids.max())}")
        out: npt.NDArray[np.int64] = ids * _SPAN + offset
        return out

    def _store(self, ids: npt.NDArray[np.int64], counts: OutcomeCounts) -> None:
        """Insert the rows of a batch; a row already held for a (cohort, window) is replaced."""
        window_ids = np.asarray(counts.window_ids, dtype=np.int64)
        if self.base is None:
            self.base = int(window_ids.min()) - _SPAN // 2
            self.threshold, self.edges = counts.threshold, np.asarray(counts.edges, dtype=np.float64)
        batch = {"n_predictions": counts.n_predictions, "n_labelled": counts.n_labelled}
        for name in self.fields:
            array = getattr(counts, name)
            if array is None:
                raise ValueError(f"the counts of a {counts.kind} model have no {name!r}, which the SLOs need")
            batch[name] = array
        keys = np.concatenate([self.row_keys, self._keys(ids, window_ids)])
        if not self.rows:
            self.rows = {name: np.zeros((0, *np.shape(a)[1:]), dtype=np.asarray(a).dtype) for name, a in batch.items()}
        merged = {name: np.concatenate([self.rows[name], np.asarray(batch[name])]) for name in self.rows}
        # Stable sort: of rows with one key the last (the batch's last) is kept.
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        last = np.ones(keys.size, dtype=np.bool_)
        last[:-1] = keys[1:] != keys[:-1]
        newest = int(window_ids.max())
        self.newest = newest if self.newest is None else max(self.newest, newest)
        self.row_keys = keys[last]
        self.rows = {name: array[order[last]] for name, array in merged.items()}

    def _prune(self) -> None:
        """Drop the rows before the longest period of the newest window judged, and forget
        the cohorts left without rows."""
        if self.base is None or self.newest is None:
            return
        keep = (self.row_keys % _SPAN) >= self.newest - self.keep + 1 - self.base
        if not keep.all():
            self.row_keys = self.row_keys[keep]
            self.rows = {name: array[keep] for name, array in self.rows.items()}
        self._forget()

    def _forget(self) -> None:
        """Renumber the cohorts once most of those known have no row left."""
        live = np.unique(self.row_keys // _SPAN)
        if len(self.cohorts) <= max(64, 2 * live.size):
            return
        remap = np.full(len(self.cohorts), -1, dtype=np.int64)
        remap[live] = np.arange(live.size)
        self.row_keys = remap[self.row_keys // _SPAN] * _SPAN + self.row_keys % _SPAN
        self.cohorts = [self.cohorts[i] for i in live.tolist()]
        self.ids = {c.key: i for i, c in enumerate(self.cohorts)}
        self.selected = self.selected[:, live]

    def _period(self, padded: Mapping[str, npt.NDArray[Any]], ids: npt.NDArray[np.int64],
                window_ids: npt.NDArray[np.int64], n_windows: int) -> tuple[OutcomeCounts, npt.NDArray[np.int64]]:
        """The sums of each cohort's rows over the ``n_windows`` windows ending at its window
        id, and how many rows were summed. ``padded``: the row arrays with a zero row appended."""
        hi_keys = self._keys(ids, window_ids)
        lo = np.searchsorted(self.row_keys, hi_keys - (n_windows - 1), side="left")
        hi = np.searchsorted(self.row_keys, hi_keys, side="right")
        # reduceat sums padded[lo:hi] for each (lo, hi) pair, and also the gaps between pairs
        # (results dropped): in the order of lo, the gaps add up to one pass over the rows.
        order = np.argsort(lo, kind="stable")
        bounds = np.stack([lo[order], hi[order]], axis=1).reshape(-1)
        empty = hi[order] <= lo[order]
        sums: dict[str, npt.NDArray[Any]] = {}
        for name, array in padded.items():
            summed = np.add.reduceat(array, bounds, axis=0)[::2]
            summed[empty] = 0
            out = np.empty_like(summed)
            out[order] = summed
            sums[name] = out
        counts = OutcomeCounts(
            kind=self.kind, threshold=self.threshold, edges=self.edges, cohort_rows=np.zeros(ids.size, dtype=np.int64),
            window_ids=window_ids, **sums,
        )
        return counts, (hi - lo).astype(np.int64)

    # -- judging ---------------------------------------------------------------------------

    def judge(self, cohorts: Sequence[Cohort], windows: Sequence[Window], counts: OutcomeCounts) -> list[Finding]:
        """Judge cohort windows: ``counts`` has one entry per cohort window, ``cohorts[i]`` and
        ``windows[i]`` are entry ``i``'s. Returns one ``slo`` finding per SLO whose selector
        takes the cohort, per entry (ok ones included), and sets the SLO gauges of the
        measured ones.

        Severity of an SLO in a cohort window:

        - skipped (severity ok): fewer than ``min_labels`` labels in the period (predictions,
          for ``label_coverage``), the judged window's label coverage below the coverage gate
          (not for ``label_coverage`` objectives), or a metric undefined over the period;
        - alert: the period's value violates the objective and, for a binomial proportion
          (binary precision, recall, accuracy; multiclass accuracy), its p-value is at most
          ``alpha``;
        - warn: the last window's burn rate is at least ``warn_burn_rate``, or the objective
          is violated without significance;
        - ok otherwise.
        """
        k = len(counts)
        if len(cohorts) != k or len(windows) != k:
            raise ValueError(f"cohorts, windows and counts must have one entry per cohort window; got "
                             f"{len(cohorts)}, {len(windows)} and {k}")
        if counts.kind != self.kind:
            raise ValueError(f"the counts are of a {counts.kind} model; model {self.model!r} is {self.kind}")
        if k == 0:
            return []
        ids = self._cohort_ids(cohorts)
        self._store(ids, counts)
        window_ids = np.asarray(counts.window_ids, dtype=np.int64)
        last = window_quality(counts)
        padded = {name: np.concatenate([a, np.zeros((1, *a.shape[1:]), dtype=a.dtype)]) for name, a in self.rows.items()}
        findings: list[Finding] = []
        for j, slo in enumerate(self.objectives):
            rows = np.flatnonzero(self.selected[j, ids])
            if rows.size == 0:
                continue
            needed = ("n_predictions", "n_labelled", *_FIELDS[slo.metric])
            period, n_windows = self._period({name: padded[name] for name in needed}, ids[rows], window_ids[rows],
                                             self.periods[j])
            findings.extend(self._judge_slo(slo, self.periods[j], rows, cohorts, windows, period, n_windows, last))
        self._prune()
        self._record(findings)
        return findings

    def _judge_slo(self, slo: SloConfig, m: int, rows: npt.NDArray[np.int64], cohorts: Sequence[Cohort],
                   windows: Sequence[Window], period: OutcomeCounts, n_windows: npt.NDArray[np.int64],
                   last: WindowQuality) -> list[Finding]:
        quality = window_quality(period)
        sli: npt.NDArray[np.float64] = getattr(quality, slo.metric)
        last_sli: npt.NDArray[np.float64] = getattr(last, slo.metric)[rows]
        spent = budget(sli, slo.target, slo.op)
        burn = budget(last_sli, slo.target, slo.op)
        violated = spent > 1.0
        p_value = np.full(rows.size, np.nan)
        if slo.metric in _RATIO[self.kind] and period.confusion is not None:
            x, n = _successes(slo.metric, period.confusion)
            p_value = binomial_p_value(x, n, slo.target, slo.op)
            significant = p_value <= slo.alpha
        else:
            significant = np.ones(rows.size, dtype=np.bool_)
        coverage = slo.metric == "label_coverage"
        n_sample = period.n_predictions if coverage else period.n_labelled
        last_coverage = last.label_coverage[rows]
        over = _duration_text(slo.over if slo.over is not None else self.window_size)
        out: list[Finding] = []
        for i in range(rows.size):
            e = int(rows[i])
            value, n_i = float(sli[i]), int(n_sample[i])
            skipped = None
            if n_i < slo.min_labels:
                noun = "predictions" if coverage else "labels"
                skipped = f"{n_i} {noun} in the period ({over}); min_labels is {slo.min_labels}"
            elif not coverage and self.gate > 0 and not last_coverage[i] >= self.gate:
                skipped = (f"label coverage {float(last_coverage[i]):.3g} of the window is below the gate "
                           f"{self.gate:g} (label_coverage >= {self.gate:g} before judging)")
            elif not math.isfinite(value):
                skipped = f"{slo.metric} is undefined over the period's labels"
            p = float(p_value[i]) if math.isfinite(p_value[i]) else None
            if skipped is not None:
                severity = Severity.OK
            elif violated[i] and significant[i]:
                severity = Severity.ALERT
            elif violated[i] or burn[i] >= slo.warn_burn_rate:
                severity = Severity.WARN
            else:
                severity = Severity.OK
            spent_i, burn_i = float(spent[i]), float(burn[i])
            evidence: dict[str, Any] = {
                "slo": slo.name, "metric": slo.metric, "op": slo.op, "target": slo.target, "over": over,
                "sli": value, "last_window_sli": float(last_sli[i]),
                "budget_remaining": 1.0 - spent_i, "burn_rate": burn_i,
                "n_labelled": int(period.n_labelled[i]), "n_predictions": int(period.n_predictions[i]),
                "label_coverage": float(quality.label_coverage[i]),
                "windows_in_period": int(n_windows[i]), "period_windows": m,
                "p_value": p, "alpha": slo.alpha, "warn_burn_rate": slo.warn_burn_rate,
            }
            if slo.cohorts:
                evidence["cohorts"] = dict(slo.cohorts)
            out.append(Finding(
                detector="slo", cohort=cohorts[e], window=windows[e], feature=slo.name,
                value=spent_i if math.isfinite(spent_i) else 0.0, severity=severity, warn=1.0, alert=1.0,
                n_current=n_i, n_reference=0, baseline="objective", evidence=evidence, skipped=skipped,
                p_value=p,
            ))
        return out

    def _record(self, findings: Sequence[Finding]) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        for finding in findings:
            if finding.skipped is None:
                ev = finding.evidence
                metrics.record_slo(finding.cohort, finding.feature or "", ev["sli"], ev["budget_remaining"],
                                   ev["burn_rate"])

    # -- snapshots -------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["metrics"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


__all__ = [
    "FORMS", "METRICS", "METRICS_BY_KIND", "SloBook", "SloConfig", "SloGauges", "SloSyntaxError", "binomial_p_value",
    "budget", "check_slos", "min_coverage", "parse_slo",
]
