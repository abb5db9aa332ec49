"""Backtest reports: what a detector config would have done on history, in numbers and charts.

Everything here is a pure function of its inputs. A run's findings and ticket events
(the same values ``drift replay`` prints) give the per-cohort summary, the "what if"
table of alert counts at other alert levels, the timelines and the reference vs
current histograms (:mod:`drift.report.analysis`). Windows of the history re-read by
``flows.backtest`` give the two sections the findings alone cannot draw:

- :func:`seasonal_series` (:mod:`drift.report.seasonal`): for a numeric feature of a
  model with a seasonal baseline, each window's observed median and quartiles against
  what the baseline expected for that window's slot (the same :mod:`drift.baselines`
  steps as the flow, replayed window by window);
- :func:`project_embeddings` (:mod:`drift.report.projection`): reference and current
  embeddings of a top ``embedding`` finding, projected on the reference's first two
  principal components.

:mod:`drift.report.figures` draws them as Plotly figures and :mod:`drift.report.page`
assembles the page from a Jinja2 template, plotly.js inlined, so the report opens
offline from one file. plotly and jinja2 come with the ``report`` extra
(``pip install 'drift[report]'``) and are imported on first use: the core imports
without them, and a report without them raises :class:`ReportDependencyError` naming
the install command.
"""

from __future__ import annotations

from drift.report.analysis import (
    TOP_FINDINGS, TOP_SERIES, WHAT_IF_FACTORS, CohortSeries, CohortSummary, Judged, Series, SeriesPoint, alerts_at,
    cohort_series, cohort_summaries, judged, scaled_level, ticket_rows, top_findings, what_if,
)
from drift.report.figures import histogram_figure, projection_figure, seasonal_figure, timeline_figures
from drift.report.optional import ReportDependencyError, require_report_dependencies
from drift.report.page import MAX_COHORTS, render_html
from drift.report.projection import (
    PROJECTION_FINDINGS, PROJECTION_POINTS, PROJECTION_SEED, EmbeddingProjection, Projection, is_embedding_finding,
    pca_projection, project_embeddings, subsample, top_embedding_findings,
)
from drift.report.seasonal import (
    QUANTILES, SEASONAL_COHORTS, HistoryWindow, SeasonalPoint, SeasonalSeries, binned_quantiles, seasonal_features,
    seasonal_series, top_cohorts, top_drifting_feature,
)
from drift.report.sections import HistorySections

__all__ = [
    "MAX_COHORTS", "PROJECTION_FINDINGS", "PROJECTION_POINTS", "PROJECTION_SEED", "QUANTILES", "SEASONAL_COHORTS",
    "TOP_FINDINGS", "TOP_SERIES", "WHAT_IF_FACTORS",
    "CohortSeries", "CohortSummary", "EmbeddingProjection", "HistorySections", "HistoryWindow", "Judged", "Projection",
    "ReportDependencyError", "SeasonalPoint", "SeasonalSeries", "Series", "SeriesPoint",
    "alerts_at", "binned_quantiles", "cohort_series", "cohort_summaries", "histogram_figure", "is_embedding_finding",
    "judged", "pca_projection", "project_embeddings", "projection_figure", "render_html", "require_report_dependencies",
    "scaled_level", "seasonal_features", "seasonal_figure", "seasonal_series", "subsample", "ticket_rows",
    "timeline_figures", "top_cohorts", "top_drifting_feature", "top_embedding_findings", "top_findings", "what_if",
]
