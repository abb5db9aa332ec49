"""The backtest report's history sections, against direct formulas: histogram quantiles,
PCA by eigen-decomposition of the covariance, and the seasonal replay's seeding."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from drift.baselines import SeasonalBaseline, period_of, slot_of
from drift.config import BaselineConfig
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import NumericProfile, ReferenceProfile, numeric_profile
from drift.report import (
    HistoryWindow, binned_quantiles, pca_projection, project_embeddings, seasonal_series, top_cohorts,
    top_embedding_findings,
)
from drift.summary import summarise
from drift.events import InferenceEvent, RawMessage

T0 = datetime(2026, 11, 2, 8, tzinfo=timezone.utc)


def _inverse_cdf(bounds: list[float], shares: list[float], q: float) -> float:
    """The direct formula: walk the bins until the cumulative share reaches q, then
    interpolate linearly inside that bin."""
    total = sum(shares)
    before = 0.0
    for i, share in enumerate(shares):
        after = before + share / total
        if share > 0 and q <= after + 1e-15:
            return bounds[i] + (q - before) / (share / total) * (bounds[i + 1] - bounds[i])
        before = after
    return bounds[-1]


@pytest.mark.parametrize(
    ("edges", "low", "high", "shares"),
    [
        ((10.0, 20.0, 30.0), 0.0, 40.0, [0.25, 0.25, 0.25, 0.25]),
        ((10.0, 20.0, 30.0), 0.0, 40.0, [0.1, 0.6, 0.2, 0.1]),
        ((1.0, 2.0, 4.0, 8.0), 0.5, 20.0, [0.05, 0.0, 0.45, 0.3, 0.2]),   # an empty bin
        ((1.0, 2.0), 1.5, 1.8, [0.2, 0.5, 0.3]),                          # low/high inside the edges
        ((5.0,), -1.0, 7.0, [3.0, 1.0]),                                  # counts, not shares
    ],
)
def test_binned_quantiles_read_the_piecewise_linear_cdf(
    edges: tuple[float, ...], low: float, high: float, shares: list[float],
) -> None:
    profile = NumericProfile(edges=edges, shares=tuple(shares), n=100, low=low, high=high)
    bounds = [min(low, edges[0]), *edges, max(high, edges[-1])]
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    got = binned_quantiles(profile, shares, qs)
    assert got == pytest.approx([_inverse_cdf(bounds, shares, q) for q in qs], rel=1e-12, abs=1e-12)
    assert list(got) == sorted(got)


def test_binned_quantiles_of_reference_shares_are_close_to_the_reference_quantiles() -> None:
    values = np.random.default_rng(3).lognormal(8.4, 0.45, 20000)
    profile = numeric_profile(values, n_bins=10)
    got = binned_quantiles(profile, profile.shares)
    # Quantile bins: the edges are the deciles, so the quartiles are read inside a bin.
    assert got == pytest.approx(np.quantile(values, [0.25, 0.5, 0.75]), rel=0.02)


@pytest.mark.parametrize("shares", [[0.5, 0.5], [0.2, 0.3, -0.1, 0.6], [0.0, 0.0, 0.0, 0.0], [0.5, np.nan, 0.2, 0.3]])
def test_binned_quantiles_refuse_bad_shares(shares: list[float]) -> None:
    profile = NumericProfile(edges=(1.0, 2.0, 3.0), shares=(0.25,) * 4, n=4, low=0.0, high=4.0)
    with pytest.raises(ValueError, match="shares"):
        binned_quantiles(profile, shares)


def _eigen_pca(reference: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, top-k eigenvectors (columns, largest loading positive) and their variance shares,
    by eigen-decomposition of the population covariance."""
    mean = reference.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(reference, rowvar=False, bias=True))
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    top = vectors[:, :k].copy()
    for j in range(k):
        if top[np.argmax(np.abs(top[:, j])), j] < 0:
            top[:, j] *= -1
    return mean, top, values[:k] / values.sum()


def test_pca_projection_is_the_eigen_decomposition_of_the_reference_covariance() -> None:
    rng = np.random.default_rng(5)
    d = 8
    mixing = rng.normal(size=(d, d)) * np.linspace(3.0, 0.2, d)
    reference = rng.normal(size=(600, d)) @ mixing.T + 4.0
    current = rng.normal(size=(150, d)) @ mixing.T + 4.5

    projection = pca_projection(reference, current)

    mean, vectors, ratio = _eigen_pca(reference)
    assert projection.explained_variance_ratio == pytest.approx(tuple(ratio), rel=1e-9)
    np.testing.assert_allclose(projection.components, vectors.T, atol=1e-9)
    np.testing.assert_allclose(projection.reference, (reference - mean) @ vectors, atol=1e-8)
    np.testing.assert_allclose(projection.current, (current - mean) @ vectors, atol=1e-8)
    np.testing.assert_allclose(projection.reference.mean(axis=0), 0.0, atol=1e-9)


def test_pca_projection_of_one_dimensional_rows_has_a_zero_second_coordinate() -> None:
    reference = np.arange(10.0).reshape(-1, 1)
    projection = pca_projection(reference, np.array([[20.0]]))
    assert projection.explained_variance_ratio == (1.0, 0.0)
    np.testing.assert_allclose(projection.current, [[15.5, 0.0]])


def _finding(detector: str = "embedding", severity: Severity = Severity.ALERT, p_value: float = 0.001,
             tenant: str = "t", minutes: int = 0, feature: str = "embedding") -> Finding:
    start = T0 + timedelta(minutes=minutes)
    return Finding(detector, Cohort("m", (("tenant", tenant),)), Window(start, start + timedelta(minutes=30)),
                   feature, 0.1, severity, 0.05, 0.01, 100, 1000, "reference",
                   {"levels_on": "p_value", "p_value": p_value})


def test_project_embeddings_subsamples_each_set_seeded_and_bounded() -> None:
    rng = np.random.default_rng(9)
    reference = rng.normal(size=(5000, 4)).astype(np.float32)
    current = rng.normal(1.0, 1.0, size=(900, 4)).astype(np.float32)
    first = project_embeddings(_finding(), reference, current, max_points=300, seed=1)
    again = project_embeddings(_finding(), reference, current, max_points=300, seed=1)
    other = project_embeddings(_finding(), reference, current, max_points=300, seed=2)
    assert first.projection.reference.shape == (300, 2) and first.projection.current.shape == (300, 2)
    assert (first.n_reference_total, first.n_current_total) == (5000, 900)
    np.testing.assert_array_equal(first.projection.current, again.projection.current)
    assert not np.array_equal(first.projection.reference, other.projection.reference)
    summary = first.to_dict()
    assert summary["reference"]["n"] == 300 and summary["reference"]["n_total"] == 5000
    assert summary["reference"]["centroid"] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert summary["centroid_distance"] == pytest.approx(
        float(np.linalg.norm(first.projection.current.mean(axis=0))))
    assert "points" not in summary and len(summary["current"]["centroid"]) == 2
    with pytest.raises(ValueError, match="reference"):
        project_embeddings(_finding(), reference[:1], current)


def test_top_embedding_findings_take_the_worst_window_of_each_series() -> None:
    findings = [
        _finding(p_value=0.004, minutes=0), _finding(p_value=0.0001, minutes=30),
        _finding(severity=Severity.WARN, p_value=0.03, tenant="u"),
        _finding(severity=Severity.OK, p_value=0.5, tenant="v"),
        _finding(detector="psi", tenant="w"),
    ]
    top = top_embedding_findings(findings)
    assert [(f.cohort.key, f.window.start) for f in top] == [
        ("m|tenant=t", T0 + timedelta(minutes=30)), ("m|tenant=u", T0),
    ]


def test_top_cohorts_rank_by_worst_psi_then_traffic() -> None:
    def psi(tenant: str, value: float) -> Finding:
        return Finding("psi", Cohort("m", (("tenant", tenant),)), Window(T0, T0 + timedelta(minutes=30)), "x",
                       value, Severity.of(value, 0.1, 0.25), 0.1, 0.25, 100, 1000, "reference")

    findings = [psi("a", 0.05), psi("b", 0.3), psi("c", 0.12), psi("c", 0.01)]
    traffic = {"m|tenant=a": 10, "m|tenant=b": 5, "m|tenant=c": 1, "m|tenant=d": 99}
    assert top_cohorts(findings, "m", "x", traffic, n=3) == ["m|tenant=b", "m|tenant=c", "m|tenant=a"]
    assert top_cohorts([], "m", "x", traffic, n=2) == ["m|tenant=d", "m|tenant=a"]


def _events(values: np.ndarray, start: datetime) -> list[InferenceEvent]:
    raw = RawMessage(value=b"", topic="t", partition=0, offset=0)
    return [InferenceEvent(None, start + timedelta(seconds=i), "m", None, "t", None, None, {}, None,
                           {"x": float(v)}, None, None, raw) for i, v in enumerate(values)]


def test_seasonal_series_starts_from_the_seeded_baseline() -> None:
    rng = np.random.default_rng(1)
    profile = numeric_profile(rng.normal(0.0, 1.0, 5000), n_bins=5)
    reference = ReferenceProfile("m", {"x": profile}, 5000, "test", T0)
    config = BaselineConfig(seasonality="hour_of_day", history=timedelta(days=1), min_samples=50)
    cohort = Cohort("m", (("tenant", "t"),))
    yesterday = summarise(_events(rng.normal(2.0, 1.0, 200), T0 - timedelta(days=1)), reference)
    seeded = SeasonalBaseline.create(reference, config)
    seeded.observe(yesterday, T0 - timedelta(days=1), healthy=True)
    values = rng.normal(2.0, 1.0, 80)
    today = HistoryWindow(cohort, Window(T0, T0 + timedelta(minutes=30)), summarise(_events(values, T0), reference),
                          {"x": values})

    [warm] = seasonal_series([today], reference, config, ["x"], [], seeded=seeded)
    [cold] = seasonal_series([today], reference, config, ["x"], [])

    expected = seeded.expected("x", slot_of(T0, "hour_of_day"), period_of(T0, "hour_of_day"))
    assert expected is not None
    point = warm.points[0]
    assert point.seasonal and point.expected_shares == pytest.approx(expected.shares)
    assert point.n_expected == 200 and point.baseline.startswith("hour_of_day=8 over 1 day")
    assert point.expected == binned_quantiles(profile, expected.shares)
    assert point.observed == pytest.approx(tuple(np.quantile(values, [0.25, 0.5, 0.75])))
    assert point.n_observed == 80 and point.severity is None
    assert not cold.points[0].seasonal and cold.points[0].expected_shares == pytest.approx(profile.shares)
    assert cold.points[0].baseline.startswith("reference (hour_of_day=8 has no samples")
    # The seeded state was copied, not fed: the stored baseline is left as it was.
    assert int(seeded.counts["x"].sum()) == 200
