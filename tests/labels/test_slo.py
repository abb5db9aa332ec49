"""Quality SLOs: the grammar, the acceptance windows against raw outcomes, the budget and the gauges.

The period's value of an SLO must equal scikit-learn's metric on the concatenated raw
outcomes of the cohort's windows in the period; budget and burn rate a direct formula;
the p-value scipy's ``binomtest``.
"""

from __future__ import annotations

import math
import pickle
import re
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from scipy import stats
from sklearn.metrics import (  # type: ignore[import-untyped]
    accuracy_score, mean_absolute_error, precision_score, recall_score,
)

from drift.config import parse_config
from drift.findings import Cohort, Finding, Severity, Window
from drift.labels.join import Joined, Kind
from drift.labels.metrics import WindowOutcomes
from drift.labels.slo import (
    FORMS, METRICS_BY_KIND, SloBook, SloConfig, binomial_p_value, budget, check_slos, min_coverage, parse_slo,
)
from drift.metrics import CohortMetrics

SIZE = timedelta(minutes=5)
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def slo(text: str) -> SloConfig:
    return SloConfig.model_validate(text)


def window(w: int) -> Window:
    return Window(T0 + w * SIZE, T0 + (w + 1) * SIZE)


def cohort(tenant: str, **more: str) -> Cohort:
    return Cohort("m", (("tenant", tenant), *more.items()))


def book(kind: Kind, *texts: str, registry: CollectorRegistry | None = None) -> SloBook:
    metrics = CohortMetrics({"m": ["tenant", "region"]}, registry=registry or CollectorRegistry())
    return SloBook("m", kind, [slo(t) for t in texts], SIZE, metrics=metrics)


# -- grammar ---------------------------------------------------------------------------------

DURATIONS = ["30s", "5m", "1h", "2d", "7d", "4w", "90m"]
higher = st.sampled_from(["precision", "recall", "f1", "accuracy", "label_coverage"])
lower = st.sampled_from(["log_loss", "brier", "ece", "mae", "rmse"])
labels = st.sampled_from(["tenant", "region", "segment.channel"])
values = st.one_of(st.just("*"), st.sampled_from(["acme", "eu", "web-1"]))


@st.composite
def objectives(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        metric, op = draw(higher), ">="
        target = draw(st.floats(0.0, 0.999, allow_nan=False))
    else:
        metric, op = draw(lower), "<="
        top = 1.0 if metric in ("brier", "ece") else 1e6
        target = draw(st.floats(1e-6, top, allow_nan=False))
    out: dict[str, Any] = {"metric": metric, "op": op, "target": target}
    if draw(st.booleans()):
        out["over"] = draw(st.sampled_from(DURATIONS))
    selector = draw(st.dictionaries(labels, values, max_size=2))
    if selector:
        out["cohorts"] = selector
    return out


@settings(max_examples=80, deadline=None)
@given(objectives())
def test_text_round_trip(fields: dict[str, Any]) -> None:
    config = SloConfig.model_validate(fields)
    again = SloConfig.model_validate(config.text)
    assert again.model_dump(exclude={"name"}) == config.model_dump(exclude={"name"})
    assert config.name == config.text == again.name
    assert SloConfig.model_validate(config.model_dump()) == config
    assert again.text == config.text


def test_text_forms() -> None:
    s = slo("recall>=0.80   over 7d on cohorts tenant=acme, region=*")
    assert (s.metric, s.op, s.target, s.over, s.cohorts) == ("recall", ">=", 0.8, timedelta(days=7),
                                                            {"tenant": "acme", "region": "*"})
    assert s.name == "recall >= 0.8 over 7d on cohorts tenant=acme,region=*"
    assert s.text == s.name
    assert slo("recall >= 0.8 over 1w").text == "recall >= 0.8 over 7d"
    assert slo("recall >= 0.8 over 90m").text == "recall >= 0.8 over 90m"
    gate = slo("label_coverage >= 0.5 before judging")
    assert gate.judging and gate.target == 0.5 and gate.name == "label_coverage >= 0.5 before judging"
    both = slo("ece <= 0.05 on cohorts tenant=* over 1d")
    assert both.over == timedelta(days=1) and both.cohorts == {"tenant": "*"}
    mapping = SloConfig.model_validate({"metric": "recall", "op": ">=", "target": 0.8, "over": "7d",
                                        "cohorts": {"tenant": "*"}})
    assert mapping.model_dump(exclude={"name"}) == slo("recall >= 0.8 over 7d on cohorts tenant=*").model_dump(
        exclude={"name"})
    keyed = SloConfig.model_validate({"objective": "recall >= 0.8 over 7d", "min_labels": 100, "name": "r"})
    assert (keyed.min_labels, keyed.name, keyed.over) == (100, "r", timedelta(days=7))
    assert SloConfig.model_validate({"metric": "mae", "op": "<=", "target": 3}).target == 3.0


SYNTAX_ERRORS = [
    ("", "at character 1, expected '<metric> <op> <target>'"),
    ("recall", "at character 7, expected the comparison '>=' or '<=' after 'recall'; got 'end of text'"),
    ("recall => 0.8", "at character 8, expected the comparison '>=' or '<=' after 'recall'; got '=>'"),
    ("recall > 0.8", "got '>'"),
    ("recall >= high", "at character 11, expected a number as the target; got 'high'"),
    ("recall >= inf", "the target must be a finite number; got 'inf'"),
    ("recall >= 0.8 over", "expected a duration like '1h', '7d' or '4w' after 'over'; got end of text"),
    ("recall >= 0.8 over 7x", "at character 20, 'over' must be a duration like"),
    ("recall >= 0.8 over 1d over 2d", "at character 23, 'over' is given twice"),
    ("recall >= 0.8 within 7d", "at character 15, unexpected word 'within'"),
    ("recall >= 0.8 on tenant=*", "at character 18, expected 'cohorts' after 'on'; got 'tenant=*'"),
    ("recall >= 0.8 on cohorts", "expected '<label>=<value|*>' after 'on cohorts'; got end of text"),
    ("recall >= 0.8 on cohorts tenant", "at character 26, expected '<label>=<value|*>' in the cohort selector; "
                                        "got 'tenant'"),
    ("recall >= 0.8 on cohorts tenant=a,=b", "at character 35, expected '<label>=<value|*>'"),
    ("recall >= 0.8 on cohorts tenant=a,tenant=b", "at character 35, the label 'tenant' is selected twice"),
    ("label_coverage >= 0.5 before", "expected 'judging' after 'before'; got end of text"),
    ("label_coverage >= 0.5 before lunch", "at character 30, expected 'judging' after 'before'; got 'lunch'"),
]


@pytest.mark.parametrize(("text", "message"), SYNTAX_ERRORS)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_slo(text)
    assert message in str(info.value)
    assert FORMS[0] in str(info.value) and FORMS[1] in str(info.value)
    with pytest.raises(ValidationError, match="accepted forms"):
        SloConfig.model_validate(text)


FIELD_ERRORS = [
    ("recal >= 0.8", "unknown metric 'recal' (did you mean 'recall'?); accepted: accuracy, brier, ece, f1, "
                     "label_coverage, log_loss, mae, precision, recall, rmse"),
    ("auc >= 0.8", "unknown metric 'auc'; accepted:"),
    ("recall <= 0.8", "recall is better when higher: write 'recall >= <target>'"),
    ("mae >= 3", "mae is better when lower: write 'mae <= <target>'"),
    ("recall >= 1", "must be in [0, 1) (at 1 no error is allowed, so there is no error budget); got 1.0"),
    ("accuracy >= -0.1", "must be in [0, 1)"),
    ("mae <= 0", "must be above 0 (at 0 no error is allowed"),
    ("ece <= 1.5", "the target of ece <= must be in (0, 1]"),
    ("label_coverage >= 0 before judging", "the coverage gate's target must be in (0, 1]; got 0.0"),
    ("recall >= 0.5 before judging", "only 'label_coverage >= <target> before judging' is a gate"),
    ("label_coverage >= 0.5 over 1d before judging", "the coverage gate takes no 'over' nor 'on cohorts'"),
]


@pytest.mark.parametrize(("text", "message"), FIELD_ERRORS)
def test_field_errors(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        slo(text)
    assert message in str(info.value)


def test_mapping_errors() -> None:
    with pytest.raises(ValidationError, match="over given both in objective"):
        SloConfig.model_validate({"objective": "recall >= 0.8 over 1d", "over": "2d"})
    with pytest.raises(ValidationError, match="objective must be an SLO's text"):
        SloConfig.model_validate({"objective": 3})
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        SloConfig.model_validate({"metric": "recall", "op": ">=", "target": 0.8, "window": "1d"})
    with pytest.raises(ValidationError, match="alpha"):
        SloConfig.model_validate({"objective": "recall >= 0.8", "alpha": 0.0})


def test_check_slos() -> None:
    check_slos("binary", [slo(t) for t in ("recall >= 0.8 over 1h", "ece <= 0.05", "label_coverage >= 0.5 before judging")],
               SIZE, ["tenant"])
    with pytest.raises(ValueError, match=r"slo\[0\] 'log_loss <= 0.3': log_loss is not measured for a multiclass "
                                         r"model; metrics for multiclass: precision, recall, f1, accuracy, "
                                         r"label_coverage"):
        check_slos("multiclass", [slo("log_loss <= 0.3")])
    with pytest.raises(ValueError, match="recall is not measured for a regression model"):
        check_slos("regression", [slo("mae <= 2"), slo("recall >= 0.5")])
    with pytest.raises(ValueError, match=r"one coverage gate \('before judging'\) at most; got 2"):
        check_slos("binary", [slo("label_coverage >= 0.5 before judging"), slo("label_coverage >= 0.6 before judging")])
    with pytest.raises(ValueError, match=r"over must be a whole number of windows of 5m; got 7m"):
        check_slos("binary", [slo("recall >= 0.8 over 7m")], SIZE)
    with pytest.raises(ValueError, match=r"over must be a whole number of windows of 5m; got 1m"):
        check_slos("binary", [slo("recall >= 0.8 over 1m")], SIZE)
    with pytest.raises(ValueError, match=r"the model's cohorts have no label 'region'; its labels: tenant"):
        check_slos("binary", [slo("recall >= 0.8 on cohorts region=eu")], SIZE, ["tenant"])
    with pytest.raises(ValueError, match=r"slo\[1\] 'recall >= 0.8': the name is already used by slo\[0\]"):
        check_slos("binary", [slo("recall >= 0.8"), slo("recall >= 0.8")])
    with pytest.raises(ValueError, match="kind must be one of"):
        check_slos("ranking", [])  # type: ignore[arg-type]
    for kind, metrics in METRICS_BY_KIND.items():
        for metric in metrics:
            check_slos(kind, [slo(f"{metric} >= 0.5" if metric in ("precision", "recall", "f1", "accuracy",
                                                                  "label_coverage") else f"{metric} <= 0.5")])


def test_min_coverage() -> None:
    assert min_coverage([]) == 0.0
    assert min_coverage([slo("recall >= 0.8")]) == 0.0
    assert min_coverage([slo("recall >= 0.8"), slo("label_coverage >= 0.4 before judging")]) == 0.4


SELECTORS = [
    # selector, cohort labels, matches
    ("", (("tenant", "acme"),), True),
    ("", (), True),
    ("on cohorts tenant=*", (("tenant", "acme"),), True),
    ("on cohorts tenant=*", (("tenant", "-"),), False),
    ("on cohorts tenant=*", (("tenant", "*"),), False),
    ("on cohorts tenant=*", (("region", "eu"),), False),
    ("on cohorts tenant=acme", (("tenant", "acme"), ("region", "eu")), True),
    ("on cohorts tenant=acme", (("tenant", "globex"),), False),
    ("on cohorts tenant=acme,region=*", (("tenant", "acme"), ("region", "eu")), True),
    ("on cohorts tenant=acme,region=*", (("tenant", "acme"), ("region", "-")), False),
]


@pytest.mark.parametrize(("selector", "labels_", "expected"), SELECTORS)
def test_selector(selector: str, labels_: tuple[tuple[str, str], ...], expected: bool) -> None:
    config = slo(f"recall >= 0.8 {selector}".strip())
    assert config.matches(Cohort("m", labels_)) is expected


# -- simulated outcomes ------------------------------------------------------------------------


class Stream:
    """Raw outcomes per (cohort row, window id), fed to a :class:`WindowOutcomes`."""

    def __init__(self, kind: Kind, n_classes: int | None = None) -> None:
        self.kind = kind
        self.outcomes = WindowOutcomes(kind, n_classes=n_classes)
        self.raw: dict[tuple[int, int], tuple[list[float], list[float]]] = {}

    def add(self, row: int, w: int, p: np.ndarray[Any, Any], y: np.ndarray[Any, Any], n_unlabelled: int = 0) -> None:
        n = p.size
        if n + n_unlabelled == 0:
            return  # no prediction: the window is not held
        self.outcomes.add_predictions(np.full(n + n_unlabelled, row), np.full(n + n_unlabelled, w))
        if n:
            self.outcomes.add(Joined(np.full(n, row, dtype=np.int64), np.full(n, w, dtype=np.int64),
                                     p.astype(np.float64), y.astype(np.float64), np.zeros(n, dtype=np.int64),
                                     np.arange(n, dtype=np.int64)))
        old = self.raw.setdefault((row, w), ([], []))
        old[0].extend(p.tolist())
        old[1].extend(y.tolist())

    def judge(self, slos: SloBook, pairs: list[tuple[int, int]]) -> list[Finding]:
        rows = np.array([r for r, _ in pairs], dtype=np.int64)
        wins = np.array([w for _, w in pairs], dtype=np.int64)
        counts = self.outcomes.counts(rows, wins)
        return slos.judge([cohort(f"t{r}") for r in rows.tolist()], [window(w) for w in wins.tolist()], counts)

    def period(self, row: int, w: int, n_windows: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        p: list[float] = []
        y: list[float] = []
        for v in range(w - n_windows + 1, w + 1):
            got = self.raw.get((row, v), ([], []))
            p += got[0]
            y += got[1]
        return np.asarray(p), np.asarray(y)


def oracle(metric: str, kind: Kind, p: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> float:
    if p.size == 0:
        return math.nan
    if kind == "regression":
        return float(mean_absolute_error(y, p))
    pred = (p >= 0.5).astype(int) if kind == "binary" else p.astype(int)
    truth = y.astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if metric == "accuracy":
            return float(accuracy_score(truth, pred))
        average = "binary" if kind == "binary" else "macro"
        function = recall_score if metric == "recall" else precision_score
        return float(function(truth, pred, average=average, zero_division=np.nan))


def same(got: float, expected: float) -> bool:
    if math.isnan(expected):
        return math.isnan(got)
    return math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)


CASES: list[tuple[Kind, str, int]] = [
    ("binary", "recall >= 0.8 over 20m", 4),
    ("binary", "precision >= 0.7 over 15m", 3),
    ("binary", "accuracy >= 0.6", 1),
    ("multiclass", "recall >= 0.5 over 10m", 2),
    ("multiclass", "precision >= 0.5 over 10m", 2),
    ("multiclass", "accuracy >= 0.5 over 25m", 5),
    ("regression", "mae <= 0.5 over 20m", 4),
]


@pytest.mark.parametrize(("kind", "text", "n_windows"), CASES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 4), snapshot=st.integers(0, 12))
def test_period_equals_metric_of_raw_outcomes(kind: Kind, text: str, n_windows: int, seed: int, batch: int,
                                              snapshot: int) -> None:
    """Judged window by window (several cohorts at once, windows in batches), each period's
    value is scikit-learn's metric on the raw outcomes of the cohort's windows in the period."""
    rng = np.random.default_rng(seed)
    stream = Stream(kind, n_classes=3 if kind == "multiclass" else None)
    config = slo(text)
    slos = SloBook("m", kind, [config.model_copy(update={"min_labels": 1})], SIZE,
                   metrics=CohortMetrics({"m": ["tenant"]}, registry=CollectorRegistry()))
    n_cohorts, n_windows_total = 3, 12
    for w in range(n_windows_total):
        for r in range(n_cohorts):
            n = int(rng.integers(0, 12))
            if kind == "binary":
                p, y = rng.random(n), (rng.random(n) < 0.6).astype(float)
            elif kind == "multiclass":
                p, y = rng.integers(0, 3, n).astype(float), rng.integers(0, 3, n).astype(float)
            else:
                p, y = rng.normal(size=n), rng.normal(size=n)
            stream.add(r, w, p, y, n_unlabelled=int(rng.integers(0, 3)))
    for start in range(0, n_windows_total, batch):
        if start == snapshot:
            slos = pickle.loads(pickle.dumps(slos))
        pairs = [(r, w) for w in range(start, start + batch) for r in range(n_cohorts) if (r, w) in stream.raw]
        found = stream.judge(slos, pairs)
        assert len(found) == len(pairs)
        for f in found:
            r = int(dict(f.cohort.labels)["tenant"][1:])
            w = int((f.window.start - T0) / SIZE)
            p, y = stream.period(r, w, n_windows)
            expected = oracle(config.metric, kind, p, y)
            assert same(f.evidence["sli"], expected), (r, w, f.evidence, expected)
            assert f.evidence["n_labelled"] == p.size
            assert f.evidence["windows_in_period"] == sum(
                (r, v) in stream.raw for v in range(w - n_windows + 1, w + 1))
    assert len(slos) <= n_cohorts * n_windows


def test_window_judged_again_replaces_its_counts() -> None:
    stream = Stream("binary")
    slos = book("binary", "recall >= 0.5 over 10m")
    stream.add(0, 0, np.array([0.9] * 40), np.ones(40))
    stream.judge(slos, [(0, 0)])
    stream.add(0, 1, np.array([0.1] * 40), np.ones(40))
    (first,) = stream.judge(slos, [(0, 1)])
    assert first.evidence["sli"] == 0.5
    stream.add(0, 1, np.array([0.9] * 40), np.ones(40))  # later labels of window 1
    (again,) = stream.judge(slos, [(0, 1)])
    assert again.evidence["sli"] == pytest.approx(80 / 120)
    assert again.evidence["n_labelled"] == 120 and again.evidence["windows_in_period"] == 2


# -- budget, burn rate, severity -----------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=10),
       st.floats(0.05, 0.95), st.integers(1, 4))
def test_budget_and_burn_rate(windows_: list[tuple[int, int]], target: float, n_windows: int) -> None:
    """Budget left and burn rate against the formulas on the recall of the period and of the last window."""
    target = round(target, 3)
    text = f"recall >= {target} over {5 * n_windows}m"
    slos = SloBook("m", "binary", [slo(text).model_copy(update={"min_labels": 1})], SIZE,
                   metrics=CohortMetrics({"m": ["tenant"]}, registry=CollectorRegistry()))
    stream = Stream("binary")
    hits: list[tuple[int, int]] = []
    for w, (tp, fn) in enumerate(windows_):
        stream.add(0, w, np.r_[np.full(tp, 0.9), np.full(fn, 0.1)], np.ones(tp + fn), n_unlabelled=1)
        hits.append((tp, fn))
        (f,) = stream.judge(slos, [(0, w)])
        tp_p = sum(a for a, _ in hits[-n_windows:])
        fn_p = sum(b for _, b in hits[-n_windows:])
        if tp_p + fn_p == 0:
            assert f.skipped is not None
            continue
        recall_period = tp_p / (tp_p + fn_p)
        assert f.evidence["sli"] == pytest.approx(recall_period)
        assert f.evidence["budget_remaining"] == pytest.approx(1 - (1 - recall_period) / (1 - target))
        assert f.value == pytest.approx((1 - recall_period) / (1 - target))
        if tp + fn:
            assert f.evidence["burn_rate"] == pytest.approx((1 - tp / (tp + fn)) / (1 - target))
        else:
            assert math.isnan(f.evidence["burn_rate"])
        p = stats.binomtest(tp_p, tp_p + fn_p, target, alternative="less").pvalue
        assert f.p_value == pytest.approx(p, rel=1e-9, abs=1e-300)
        assert f.evidence["p_value"] == f.p_value
        violated = recall_period < target
        if violated and p <= 0.01:
            assert f.severity is Severity.ALERT
        elif violated or f.evidence["burn_rate"] >= 2.0:
            assert f.severity is Severity.WARN
        else:
            assert f.severity is Severity.OK
        assert (f.warn, f.alert) == (1.0, 1.0)


def test_budget_formula_lower_is_better() -> None:
    assert budget([0.02, 0.05, 0.1], 0.05, "<=").tolist() == pytest.approx([0.4, 1.0, 2.0])
    assert budget([0.8, 0.9, 0.6], 0.8, ">=").tolist() == pytest.approx([1.0, 0.5, 2.0])
    slos = book("regression", "mae <= 0.5 over 10m")
    stream = Stream("regression")
    stream.add(0, 0, np.zeros(40), np.full(40, 0.25))
    stream.judge(slos, [(0, 0)])
    stream.add(0, 1, np.zeros(40), np.full(40, 1.0))
    (f,) = stream.judge(slos, [(0, 1)])
    mae = (40 * 0.25 + 40 * 1.0) / 80
    assert f.evidence["sli"] == pytest.approx(mae)
    assert f.evidence["budget_remaining"] == pytest.approx(1 - mae / 0.5)
    assert f.evidence["burn_rate"] == pytest.approx(1.0 / 0.5)
    assert f.p_value is None and f.severity is Severity.ALERT  # not a proportion: no significance gate


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.integers(1, 400), st.floats(0.01, 0.99), st.sampled_from([">=", "<="]))
def test_binomial_p_value_against_scipy(x: int, n: int, target: float, op: str) -> None:
    x = min(x, n)
    got = float(binomial_p_value([x], [n], target, op)[0])  # type: ignore[arg-type]
    expected = stats.binomtest(x, n, target, alternative="less" if op == ">=" else "greater").pvalue
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert math.isnan(float(binomial_p_value([0], [0], target, ">=")[0]))


def test_few_labels_are_not_significant() -> None:
    """Recall 0.7 against 0.8: skipped on 10 labels, a warning on 40 (p ≈ 0.08), an alert on 400."""
    for n, expected in ((10, None), (40, Severity.WARN), (400, Severity.ALERT)):
        slos = book("binary", "recall >= 0.8")
        stream = Stream("binary")
        positives = int(0.7 * n)
        stream.add(0, 0, np.r_[np.full(positives, 0.9), np.full(n - positives, 0.1)], np.ones(n))
        (f,) = stream.judge(slos, [(0, 0)])
        if expected is None:
            assert f.skipped == "10 labels in the period (5m); min_labels is 30" and f.severity is Severity.OK
            continue
        p = stats.binomtest(positives, n, 0.8, alternative="less").pvalue
        assert f.p_value == pytest.approx(p)
        assert bool(p > 0.01) is (expected is Severity.WARN)
        assert f.severity is expected


def test_coverage_gate_and_undefined_values() -> None:
    slos = book("binary", "recall >= 0.8", "label_coverage >= 0.5 before judging", "label_coverage >= 0.9 over 10m")
    stream = Stream("binary")
    stream.add(0, 0, np.full(40, 0.9), np.ones(40), n_unlabelled=60)
    recall, coverage = stream.judge(slos, [(0, 0)])
    assert recall.skipped == "label coverage 0.4 of the window is below the gate 0.5 (label_coverage >= 0.5 before judging)"
    assert recall.severity is Severity.OK
    assert coverage.skipped is None and coverage.evidence["sli"] == pytest.approx(0.4)
    assert coverage.severity is Severity.ALERT and coverage.n_current == 100
    stream.add(1, 0, np.full(40, 0.9), np.zeros(40))  # no positive label: recall undefined
    (undefined, _) = stream.judge(slos, [(1, 0)])
    assert undefined.skipped == "recall is undefined over the period's labels"


def test_burn_rate_warns() -> None:
    slos = book("binary", "recall >= 0.8 over 1h")
    stream = Stream("binary")
    for w in range(11):
        stream.add(0, w, np.full(100, 0.9), np.ones(100))
        stream.judge(slos, [(0, w)])
    stream.add(0, 11, np.r_[np.full(50, 0.9), np.full(50, 0.1)], np.ones(100))
    (f,) = stream.judge(slos, [(0, 11)])
    # recall of the hour (1100 + 50) / 1200 meets 0.8; the last window's 0.5 burns at 2.5
    assert f.evidence["sli"] == pytest.approx(1150 / 1200)
    assert f.evidence["burn_rate"] == pytest.approx(2.5)
    assert f.severity is Severity.WARN
    assert f.evidence["windows_in_period"] == 12 and f.evidence["period_windows"] == 12


def test_selectors_pick_cohorts() -> None:
    slos = book("binary", "recall >= 0.8", "recall >= 0.7 on cohorts tenant=acme", "recall >= 0.6 on cohorts region=*")
    outcomes = WindowOutcomes("binary")
    outcomes.add_predictions(np.array([0, 1, 2]), np.array([0, 0, 0]))
    counts = outcomes.counts()
    cohorts = [cohort("acme", region="eu"), cohort("globex", region="-"), Cohort("m", (("tenant", "initech"),))]
    found = slos.judge(cohorts, [window(0)] * 3, counts)
    by = sorted((dict(f.cohort.labels)["tenant"], f.feature) for f in found)
    assert by == [("acme", "recall >= 0.6 on cohorts region=*"), ("acme", "recall >= 0.7 on cohorts tenant=acme"),
                  ("acme", "recall >= 0.8"), ("globex", "recall >= 0.8"), ("initech", "recall >= 0.8")]
    assert all(f.detector == "slo" and f.skipped for f in found)


def test_state_is_bounded_and_pickles() -> None:
    slos = book("binary", "recall >= 0.8 over 20m", "precision >= 0.5")
    stream = Stream("binary")
    rng = np.random.default_rng(1)
    for w in range(30):
        # 50 cohorts, a new set every 10 windows: the old ones are forgotten
        rows = [(w // 10) * 50 + r for r in range(50)]
        for r in rows:
            stream.add(r, w, rng.random(40), (rng.random(40) < 0.5).astype(float))
        stream.judge(slos, [(r, w) for r in rows])
        assert len(slos) <= 50 * 4 + 50
    assert len(slos.cohorts) <= 100
    restored = pickle.loads(pickle.dumps(slos))
    assert restored.metrics is None and len(restored) == len(slos)
    stream.add(100, 30, rng.random(40), (rng.random(40) < 0.5).astype(float))
    a = stream.judge(slos, [(100, 30)])
    b = stream.judge(restored, [(100, 30)])
    assert [f.to_dict() for f in a] == [f.to_dict() for f in b]


def test_judge_checks_its_input() -> None:
    slos = book("binary", "recall >= 0.8")
    outcomes = WindowOutcomes("binary")
    outcomes.add_predictions(np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="one entry per cohort window; got 2, 1 and 1"):
        slos.judge([cohort("a"), cohort("b")], [window(0)], outcomes.counts())
    regression = WindowOutcomes("regression")
    regression.add_predictions(np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="the counts are of a regression model; model 'm' is binary"):
        slos.judge([cohort("a")], [window(0)], regression.counts())
    assert slos.judge([], [], outcomes.counts(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))) == []


# -- gauges ------------------------------------------------------------------------------------


def test_gauges() -> None:
    registry = CollectorRegistry()
    metrics = CohortMetrics({"m": ["tenant"]}, max_cohorts=1, registry=registry)
    slos = SloBook("m", "binary", [slo("recall >= 0.8 over 10m")], SIZE, metrics=metrics)
    stream = Stream("binary")
    stream.add(0, 0, np.r_[np.full(30, 0.9), np.full(10, 0.1)], np.ones(40))
    stream.add(1, 0, np.full(40, 0.9), np.ones(40))
    (a, b) = stream.judge(slos, [(0, 0), (1, 0)])
    labels = {"model": "m", "model_version": "-", "tenant": "t0", "slo": "recall >= 0.8 over 10m"}
    assert registry.get_sample_value("drift_slo_value", labels) == pytest.approx(0.75)
    assert registry.get_sample_value("drift_slo_error_budget_remaining", labels) == pytest.approx(1 - 0.25 / 0.2)
    assert registry.get_sample_value("drift_slo_burn_rate", labels) == pytest.approx(0.25 / 0.2)
    other = {**labels, "tenant": "_other"}
    assert registry.get_sample_value("drift_slo_value", other) == 1.0  # past max_cohorts
    assert registry.get_sample_value("drift_slo_burn_rate", other) == 0.0
    assert registry.get_sample_value("drift_cohort_overflow_total", {"model": "m"}) == 1.0
    # a skipped finding leaves the gauges as they were
    stream.add(0, 1, np.full(5, 0.9), np.ones(5))
    stream.judge(SloBook("m", "binary", [slo("recall >= 0.8 over 10m").model_copy(update={"min_labels": 500})],
                         SIZE, metrics=metrics), [(0, 1)])
    assert registry.get_sample_value("drift_slo_value", labels) == pytest.approx(0.75)


def test_the_documented_example_loads() -> None:
    """docs/slo.md's YAML, with a feature added, is a valid config with the SLOs it names."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "slo.md").read_text(encoding="utf-8")
    match = re.search(r"```yaml\n(.*?)```", doc, re.S)
    assert match is not None
    text = "version: 1\n" + match.group(1).replace(
        "    window: {size: 1h}\n", "    window: {size: 1h}\n    features:\n      amount: {type: numeric}\n")
    model = parse_config(text, path="slo.yaml").models[0]
    assert [s.name for s in model.slo] == [
        "recall >= 0.8 over 7d on cohorts tenant=*", "precision >= 0.7 over 1d on cohorts tenant=acme",
        "ece <= 0.05 over 1d", "label_coverage >= 0.5 before judging", "accuracy-3d",
        "brier <= 0.12 over 1d on cohorts region=eu",
    ]
    assert model.slo[4].min_labels == 200 and model.slo[4].alpha == 0.05 and model.slo[4].warn_burn_rate == 3.0
    assert min_coverage(model.slo) == 0.5
