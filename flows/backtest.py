"""``drift backtest``: the replay dataflow over history, with a scratch ticket store and a report.

The run is :func:`flows.runner.run_file`, the same code as ``drift replay`` and
``drift run``; only the ticket store differs: a backtest asks which tickets a
config *would* open, so it records them in a throwaway SQLite file and never in
the store (or webhook) the config names.

Two report sections need more than the run's findings: the seasonal baseline of a
feature against its observed values, and a 2-D projection of an embedding finding's
window against the reference. :func:`history_sections` reads the history once more
for them, with the flow's own steps (the file source's messages, the flow's
:class:`~drift.events.Decoder`, cohort keys, epoch-aligned windows and
:mod:`drift.summary`), skipping every message the run dead-lettered (late ones
included), so each window holds exactly what the flow scored. It keeps only the
chosen cohorts: bin counts and one feature value per event for the seasonal
section, a bounded seeded sample of embeddings per projected window.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from connectors.files import iter_file
from drift.backend import Reservoir
from drift.baselines import BASELINE_DETECTORS, load_seasonal
from drift.windowing import closed_below, window_at, window_index
from drift.config import Config, ModelConfig
from drift.events import Decoder, InferenceEvent, RawMessage
from drift.findings import Finding
from drift.reference import ReferenceProfile
from drift.report import (
    PROJECTION_FINDINGS, PROJECTION_POINTS, PROJECTION_SEED, TOP_SERIES, EmbeddingProjection, HistorySections,
    HistoryWindow, SeasonalSeries, project_embeddings, render_html, seasonal_features, seasonal_series, top_cohorts,
    top_drifting_feature, top_embedding_findings, what_if,
)
from drift.summary import WindowSummary, add_event, empty_summary, flush
from flows.pipeline import cohort_of, ts_units
from flows.progress import progress_for  # noqa: F401 - re-exported: callers import it from here too
from flows.runner import RunResult, load_profiles, run_history


def run_backtest(config: Config, events: Path, progress: Callable[[int], None] | None = None,
                 store: str | None = None) -> RunResult:
    """Run the dataflow over ``events`` with tickets kept in ``store``, or in a scratch store
    without one (:func:`flows.runner.run_history`)."""
    return run_history(config, events, store=store, progress=progress)


def backtest_document(result: RunResult, sections: HistorySections | None = None) -> dict[str, Any]:
    """``drift replay --json``'s document plus the ``what_if`` table (and, with ``sections``,
    ``seasonal_baselines``, ``embedding_projections`` and ``report_notes``)."""
    document = {**result.to_dict(), "what_if": what_if(result.findings)}
    if sections is not None:
        document.update(sections.to_dict())
    return document


def write_report(result: RunResult, path: Path, title: str, sections: HistorySections | None = None,
                 top_k: int = TOP_SERIES) -> None:
    """Write the self-contained HTML report of ``result`` to ``path`` (each cohort's ``top_k``
    worst series drawn at first, see :func:`drift.report.render_html`)."""
    page = render_html(result.to_dict(), result.findings, result.tickets, title=title, sections=sections,
                       top_k=top_k)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


# --------------------------------------------------------------------------- sections from the history


def resolve_baseline_features(config: Config, names: Sequence[str]) -> list[tuple[str, str]]:
    """``--baseline-feature`` values (``FEATURE`` or ``MODEL:FEATURE``) as (model, feature) pairs.

    Only numeric features of models whose ``baseline.seasonality`` is not ``none``
    qualify; a bare feature name matches it in every such model. Raises ValueError
    naming the valid choices.
    """
    choices = seasonal_features(config)
    out: list[tuple[str, str]] = []
    for name in names:
        model, sep, feature = name.rpartition(":")
        matched = [c for c in choices if c[1] == feature and (not sep or c[0] == model)]
        if not matched:
            valid = ", ".join(f"{m}:{f}" for m, f in choices) or "none (no model has baseline.seasonality set)"
            raise ValueError(
                f"--baseline-feature {name!r}: not a numeric feature of a model with a seasonal baseline; "
                f"valid: {valid}"
            )
        out.extend(c for c in matched if c not in out)
    return out


@dataclass
class _Collect:
    """What the second reading keeps: per model, the cohorts and features of the seasonal
    section; per (cohort key, window start), the embedding windows to project."""

    seasonal: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """Model -> feature -> its top cohort keys, best first."""
    windows: dict[tuple[str, int], WindowSummary] = field(default_factory=dict)
    """(cohort key, window index) -> the window's summary, flushed once the window closed."""
    values: dict[tuple[str, int], dict[str, array[float]]] = field(default_factory=dict)
    """(cohort key, window index) -> feature -> its values (8 bytes each)."""
    open_windows: dict[str, set[tuple[str, int]]] = field(default_factory=lambda: defaultdict(set))
    """Per model, the windows not yet closed (see :func:`_read_history`)."""
    projected: dict[tuple[str, Any], Reservoir] = field(default_factory=dict)


def history_sections(
    config: Config,
    result: RunResult,
    events: Path,
    baseline_features: Sequence[tuple[str, str]] | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    n_projections: int = PROJECTION_FINDINGS,
    max_points: int = PROJECTION_POINTS,
    seed: int = PROJECTION_SEED,
) -> HistorySections:
    """The seasonal baseline and embedding projection sections of ``result``'s report.

    ``baseline_features`` are (model, feature) pairs (:func:`resolve_baseline_features`);
    None picks the top drifting numeric feature of the models with a seasonal baseline
    (:func:`drift.report.top_drifting_feature`). Each is drawn for its top cohorts
    (:func:`drift.report.top_cohorts`). The top ``embedding`` findings are projected
    (:func:`drift.report.top_embedding_findings`) against the model's reference embeddings.
    ``progress`` is called with the number of lines (rows) read, every 1000.
    """
    notes: list[str] = []
    if baseline_features is None:
        top = top_drifting_feature(config, result.findings)
        chosen = [] if top is None else [top]
        if top is None:
            notes.append("seasonal baseline: no model has baseline.seasonality other than none")
    else:
        chosen = list(baseline_features)
    targets = top_embedding_findings(result.findings, n_projections)
    if not targets:
        notes.append("embedding projection: no embedding finding at warn or alert")
    # Stored by the run: read, not built again.
    profiles = load_profiles(config) if chosen or targets else {}
    collect = _Collect()
    traffic: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for report in result.windows:
        traffic[report.cohort.model][report.cohort.key] += report.n_events
    for model, feature in chosen:
        cohorts = top_cohorts(result.findings, model, feature, traffic.get(model, {}))
        collect.seasonal.setdefault(model, {})[feature] = cohorts
    embedding_fields = config.embedding_fields()
    for finding in targets:
        if finding.cohort.model not in embedding_fields:
            continue
        _, dim = embedding_fields[finding.cohort.model]
        collect.projected[(finding.cohort.key, finding.window.start)] = Reservoir(
            max_points, dim, np.random.default_rng([seed, len(collect.projected)]),
        )
    if collect.seasonal or collect.projected:
        _read_history(config, result, events, profiles, collect, progress)

    seasonal: list[SeasonalSeries] = []
    for model_name, features in collect.seasonal.items():
        seasonal.extend(_model_series(config, config.model(model_name), profiles, collect, features,
                                      result.findings))
    projections: list[EmbeddingProjection] = []
    for finding in targets:
        item = _projection(finding, profiles, collect, max_points, seed, notes)
        if item is not None:
            projections.append(item)
    return HistorySections(seasonal=seasonal, projections=projections, notes=tuple(notes))


def _read_history(
    config: Config, result: RunResult, events: Path, profiles: dict[str, ReferenceProfile], collect: _Collect,
    progress: Callable[[int], None] | None,
) -> None:
    """One pass over the file, as the flow read it, into ``collect``."""
    topic = f"file:{events.name}"
    # Everything the run could not use, by offset: undecodable, unknown model, late, ...
    dead = {letter.offset for letter in result.dlq if letter.topic == topic}
    decoder = Decoder(
        models=frozenset(m.name for m in config.models), max_future=config.events.max_future,
        embeddings=config.embedding_fields(), ts_units=ts_units(config),
    )
    models = {m.name: m for m in config.models}
    pending: dict[tuple[str, Any], list[Any]] = defaultdict(list)
    newest: dict[str, datetime] = {}
    done = 0
    for offset, data in iter_file(events):
        done = offset + 1
        if progress is not None and done % 1000 == 0:
            progress(done)
        if offset in dead:
            continue
        event = decoder(RawMessage(value=data, topic=topic, partition=0, offset=offset))
        if not isinstance(event, InferenceEvent):
            continue  # feature events (value skew) and dead letters
        model = models[event.model]
        size = model.window.size
        index = window_index(event.ts, size)
        chosen = collect.seasonal.get(model.name)
        key: str | None = None
        if chosen is not None:
            key = cohort_of(event, model.cohort).key
            if any(key in cohorts for cohorts in chosen.values()):
                _add_seasonal(collect, model, profiles[model.name], event, key, index, list(chosen))
            if event.ts > newest.get(model.name, event.ts - size):
                newest[model.name] = event.ts
                _close_windows(collect, model, profiles[model.name], event.ts)
        if collect.projected and event.embedding is not None:
            key = key if key is not None else cohort_of(event, model.cohort).key
            target = (key, window_at(index, size).start)
            if target in collect.projected:
                batch = pending[target]
                batch.append(event.embedding)
                if len(batch) >= 1000:
                    collect.projected[target].add(np.stack(batch))
                    batch.clear()
    for target, batch in pending.items():
        if batch:
            collect.projected[target].add(np.stack(batch))
    if progress is not None:
        progress(done)


def _add_seasonal(
    collect: _Collect, model: ModelConfig, profile: ReferenceProfile, event: InferenceEvent, key: str, index: int,
    features: list[str],
) -> None:
    summary = collect.windows.get((key, index))
    if summary is None:
        summary = collect.windows[(key, index)] = empty_summary(
            profile, cohort_of(event, model.cohort), bounds=model.feature_bounds(), track_event_ids=False,
        )
        collect.values[(key, index)] = {feature: array("d") for feature in features}
        collect.open_windows[model.name].add((key, index))
    add_event(summary, event, profile)
    values = collect.values[(key, index)]
    for feature in features:
        value = event.features.get(feature)
        # Numbers only, as the summary counts them (a boolean is not a number here either).
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            values[feature].append(float(value))


def _close_windows(collect: _Collect, model: ModelConfig, profile: ReferenceProfile, newest: datetime) -> None:
    """Flush the windows the flow had closed by the time it saw ``newest`` (its watermark is at
    least ``newest - allowed_lateness``), so an open window's buffer is all that is held per
    window. A later event for one of them was dead-lettered as late by the run, and skipped."""
    size = model.window.size
    boundary = closed_below(newest - model.window.allowed_lateness, size)
    still_open = collect.open_windows[model.name]
    for item in [item for item in still_open if item[1] < boundary]:
        flush(collect.windows[item], profile)
        still_open.discard(item)


def _model_series(
    config: Config, model: ModelConfig, profiles: dict[str, ReferenceProfile], collect: _Collect,
    features: dict[str, list[str]], findings: Sequence[Finding],
) -> list[SeasonalSeries]:
    """Each chosen feature's series over its top cohorts, feature by feature, cohorts best first."""
    from detectors.registry import build as build_detector

    profile = profiles[model.name]
    detectors = [build_detector(name, settings) for name, settings in model.detector_configs()
                 if name in BASELINE_DETECTORS]
    # The flow seeds each cohort from the stored baseline, when one was built.
    seeded = load_seasonal(config.resolve(config.baselines.dir), model.name, profile, model.baseline)
    size = model.window.size
    by_cohort: dict[str, list[HistoryWindow]] = defaultdict(list)
    for (key, index), summary in collect.windows.items():
        if summary.model != model.name:
            continue
        assert summary.cohort is not None
        by_cohort[key].append(HistoryWindow(
            cohort=summary.cohort, window=window_at(index, size), summary=flush(summary, profile),
            values={f: np.frombuffer(v, dtype=np.float64) for f, v in collect.values[(key, index)].items()},
        ))
    series: dict[tuple[str, str], SeasonalSeries] = {}
    for key, windows in by_cohort.items():
        wanted = [feature for feature, cohorts in features.items() if key in cohorts]
        for item in seasonal_series(windows, profile, model.baseline, wanted, detectors, seeded.get(key), findings):
            series[(item.feature, key)] = item
    return [series[(feature, key)] for feature, cohorts in features.items() for key in cohorts
            if (feature, key) in series]


def _projection(
    finding: Finding, profiles: dict[str, ReferenceProfile], collect: _Collect, max_points: int, seed: int,
    notes: list[str],
) -> EmbeddingProjection | None:
    where = f"{finding.cohort.key} window {finding.window.start.isoformat()}"
    reservoir = collect.projected.get((finding.cohort.key, finding.window.start))
    reference = profiles.get(finding.cohort.model)
    rows = None if reference is None or finding.feature is None else reference.embeddings.get(finding.feature)
    if reservoir is None or rows is None:
        notes.append(f"embedding projection: {where}: no reference embeddings for {finding.feature!r}")
        return None
    if reservoir.n_seen == 0:
        notes.append(f"embedding projection: {where}: no embeddings of the window in the history")
        return None
    try:
        return project_embeddings(finding, rows, reservoir.rows.copy(), n_current_total=reservoir.n_seen,
                                  max_points=max_points, seed=seed)
    except ValueError as exc:
        notes.append(f"embedding projection: {where}: {exc}")
        return None
