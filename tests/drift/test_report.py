"""The backtest report's parts: the history sections against direct formulas (histogram
quantiles, PCA by eigen-decomposition of the covariance, the seasonal replay's seeding),
the per-cohort summary and the series it draws, the charts' axes, and the page's escaping."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from drift.baselines import SeasonalBaseline, period_of, slot_of
from drift.config import BaselineConfig
from drift.findings import Cohort, Finding, Severity, Window
from drift.reference import NumericProfile, ReferenceProfile, numeric_profile
from drift.events import InferenceEvent, RawMessage
from drift.report import (
    HistoryWindow, binned_quantiles, cohort_series, cohort_summaries, pca_projection, project_embeddings,
    render_html, seasonal_series, timeline_figures, top_cohorts, top_embedding_findings,
)
from drift.summary import summarise
from drift.tickets import Ticket, TicketEvent, TicketStatus

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


# --------------------------------------------------------------------------- summary, series, page


def _judged(detector: str, feature: str, value: float, minutes: int = 0, tenant: str = "t",
            warn: float = 0.1, alert: float = 0.25, size: int = 30) -> Finding:
    start = T0 + timedelta(minutes=minutes)
    return Finding(detector, Cohort("m", (("tenant", tenant),)), Window(start, start + timedelta(minutes=size)),
                   feature, value, Severity.of(value, warn, alert), warn, alert, 100, 1000, "reference")


def _ticket(finding: Finding, ticket_id: str, status: TicketStatus = TicketStatus.OPEN) -> TicketEvent:
    ticket = Ticket(
        id=ticket_id, fingerprint=finding.fingerprint, status=status, action="ticket", model=finding.cohort.model,
        cohort=dict(finding.cohort.labels), cohort_key=finding.cohort.key, detector=finding.detector,
        feature=finding.feature, severity=finding.severity, first_window_start=finding.window.start,
        last_window_end=finding.window.end, opened_at=T0, updated_at=T0, occurrences=1,
        worst_value=finding.value, last_value=finding.value, last_finding={},
    )
    return TicketEvent(kind="opened", ticket=ticket, at=T0, id=f"{ticket_id}:1")


def _history(tenant: str, psi: dict[str, list[float]], quality: dict[str, list[float]]) -> list[Finding]:
    out = []
    for feature, values in psi.items():
        out += [_judged("psi", feature, v, 30 * i, tenant) for i, v in enumerate(values)]
    for feature, values in quality.items():
        out += [_judged("quality.null_rate", feature, v, 30 * i, tenant, 0.02, 0.05) for i, v in enumerate(values)]
    return out


def test_cohort_series_keep_the_top_k_worst_and_name_the_quiet_quality_checks() -> None:
    # Ten PSI series, their worst windows 0.01 .. 0.5; two null-rate checks, one flat at 0.
    psi = {f"f{i}": [0.0, 0.05 * (i + 1) * 0.2, 0.01 * (i + 1)] for i in range(10)}
    psi["f9"] = [0.0, 0.5, 0.1]
    findings = _history("t", psi, {"a": [0.0, 0.0, 0.0], "b": [0.0, 0.03, 0.0]})
    findings.append(Finding("psi", Cohort("m", (("tenant", "t"),)), Window(T0, T0 + timedelta(minutes=30)), "skipped",
                            float("nan"), Severity.OK, 0.1, 0.25, 0, 1000, "reference", skipped="no samples"))
    [cohort] = cohort_series(findings, top_k=4)
    # Worst first: the alerting f9, then the warning null rate of b (0.03 past warn 0.02), then
    # the PSI series by how close they came to their alert level.
    assert [s.label for s in cohort.top] == ["f9 · psi", "b · quality.null_rate", "f8 · psi", "f7 · psi"]
    assert len(cohort.rest) == 7 and {s.label for s in cohort.rest} == {f"f{i} · psi" for i in range(7)}
    assert [s.label for s in cohort.quiet_quality] == ["a · quality.null_rate"]
    assert cohort.not_judged == ("skipped · psi",)
    assert (cohort.start, cohort.end) == (T0, T0 + timedelta(minutes=90))
    top = cohort.top[0]
    assert [p.value for p in top.points] == [0.0, 0.5, 0.1] and top.levels == ((0.1, 0.25),)
    assert [p.severity for p in top.points] == [Severity.OK, Severity.ALERT, Severity.WARN]
    with pytest.raises(ValueError, match="top_k"):
        cohort_series(findings, top_k=0)


def test_cohort_summaries_lead_with_the_worst_cohort_its_first_window_and_its_tickets() -> None:
    findings = (_history("calm", {"x": [0.01, 0.02, 0.03]}, {})
                + _history("hot", {"x": [0.05, 0.15, 0.9], "y": [0.3, 0.0, 0.0]}, {})
                + _history("warm", {"x": [0.0, 0.12, 0.0]}, {}))
    hot_y = next(f for f in findings if f.cohort.key == "m|tenant=hot" and f.feature == "y")
    rows = cohort_summaries(findings, [_ticket(hot_y, "DRIFT-1"), _ticket(hot_y, "DRIFT-1", TicketStatus.RESOLVED)])
    assert [r.cohort_key for r in rows] == ["m|tenant=hot", "m|tenant=warm", "m|tenant=calm"]
    hot, warm, calm = rows
    assert hot.worst is not None and (hot.worst.feature, hot.worst.value) == ("x", 0.9)
    # The first window past a level is the first in time (y's alert at 08:00), not the worst.
    assert hot.first_past is hot_y and hot.n_past == 3 and hot.n_findings == 6
    assert hot.tickets == (("DRIFT-1", "resolved"),)
    assert warm.first_past is not None and warm.first_past.window.start == T0 + timedelta(minutes=30)
    assert calm.first_past is None and calm.n_past == 0 and calm.tickets == ()


def test_timeline_axes_follow_what_is_drawn() -> None:
    single = _history("one", {"x": [0.0]}, {"x": [0.0]})  # one window, values at zero
    p_values = [Finding("embedding", Cohort("m", (("tenant", "e"),)), Window(T0 + timedelta(minutes=30 * i),
                        T0 + timedelta(minutes=30 * (i + 1))), "embedding", 0.1, severity, 0.05, 0.01, 100, 1000,
                        "reference", {"levels_on": "p_value", "p_value": p})
                for i, (p, severity) in enumerate([(0.5, Severity.OK), (0.0, Severity.ALERT)])]
    figures = dict(timeline_figures(single + p_values))
    layout = figures["m|tenant=one"].layout
    # The x axis spans the one window (not a default date range); a rate never goes below 0.
    assert list(layout.xaxis.range) == ["2026-11-02 08:00:00", "2026-11-02 08:30:00"]
    assert layout.yaxis.rangemode == "nonnegative"
    points = [t for t in figures["m|tenant=one"].data if t.mode == "lines+markers"]
    assert [list(t.x) for t in points] == [["2026-11-02 08:15:00"]]
    embedding = figures["m|tenant=e"]
    assert embedding.layout.yaxis.type == "log" and embedding.layout.yaxis.autorange == "reversed"
    drawn = next(t for t in embedding.data if t.mode == "lines+markers")
    assert list(drawn.y) == [0.5, 1e-16]  # a p-value of 0 sits at the floor of the log axis
    levels = {t.name: t.y[0] for t in embedding.data if t.mode == "lines"}
    assert levels == {"warn level": 0.05, "alert level": 0.01}


def test_render_html_escapes_the_runs_text_and_draws_from_its_own_file() -> None:
    evil = "<b id=\"injected\">x</b></script>"
    findings = [Finding("psi", Cohort("m", (("tenant", evil),)), Window(T0, T0 + timedelta(minutes=30)), "x",
                        0.4, Severity.ALERT, 0.1, 0.25, 100, 1000, "reference",
                        {"bins": [evil, "b"], "reference_share": [0.5, 0.5], "current_share": [0.9, 0.1]})]
    page = render_html({"events": 1}, findings, [_ticket(findings[0], "DRIFT-1")], title=f"run {evil}")
    assert evil not in page and '<b id="injected">' not in page
    assert "&lt;b id=&#34;injected&#34;&gt;" in page  # in the tables and headings, as text
    assert "\\u003cb id=\\\"injected\\\"\\u003e" in page  # in the charts' JSON
    assert page.count("<script>") == 2 and page.count("</script>") == page.count("<script")
    assert len(page.encode()) < 5 * 1024 * 1024
    # The summary table comes first, with the cohort's ticket.
    assert page.index('id="cohorts"') < page.index('id="tickets"') < page.index('class="chart')
    assert "DRIFT-1 (open)" in page


def test_the_core_imports_without_the_report_extra() -> None:
    """drift.report imports plotly and jinja2 only to draw; without them it names the extra."""
    script = ("import sys; sys.modules['plotly'] = None; sys.modules['jinja2'] = None\n"
              "import drift.report as r\n"
              "assert r.what_if([]) == []\n"
              "try:\n    r.render_html({}, [], [])\nexcept r.ReportDependencyError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'drift[report]'" in proc.stdout and "jinja2" in proc.stdout
