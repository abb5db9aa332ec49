"""``drift baseline build``: a model's reference profile and seasonal baselines."""

from __future__ import annotations

from pathlib import Path

import click

from drift.errors import DriftError
from drift.cli.app import EXIT_CONFIG, _fail, _load, main


@main.group()
def baseline() -> None:
    """Build and inspect reference baselines."""


@baseline.command("build")
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              required=True, type=click.Path(dir_okay=False))
@click.option("--model", "model_name", required=True)
@click.option("--reference", default=None, type=click.Path(dir_okay=False),
              help="Parquet file of training data, one column per feature  [default: the model's "
                   "reference.parquet in CONFIG]")
@click.option("--history", type=click.Path(dir_okay=False, exists=True), default=None,
              help="JSONL or Parquet file of past inference events: also build the seasonal baselines.")
def baseline_build(config_path: str, model_name: str, reference: str | None, history: str | None) -> None:
    """Profile a model's training data and store its reference bins (and seasonal baselines)."""
    import dataclasses

    from drift.baselines import save_seasonal
    from drift.reference import save_reference
    from flows.history import seasonal_from_file
    from flows.runner import build_model_embeddings, build_model_reference

    config = _load(config_path)
    try:
        model = config.model(model_name)
    except KeyError:
        _fail(f"model {model_name!r} is not in {config_path}; models: {[m.name for m in config.models]}", EXIT_CONFIG)
    if reference is not None:
        parquet = Path(reference)
    elif model.reference is not None:
        parquet = config.resolve(model.reference.parquet)
    else:
        _fail(f"model {model_name!r} has no reference.parquet in {config_path}; give --reference PATH.parquet",
              EXIT_CONFIG)
    try:
        profile = build_model_reference(config, model, parquet)
        embeddings = build_model_embeddings(config, model, parquet)
    except DriftError as exc:
        _fail(str(exc))
    path = save_reference(profile, config.resolve(config.baselines.dir))
    click.echo(f"baseline of {model_name!r} from {profile.n_rows} rows written to {path}")
    for name, feature in profile.features.items():
        click.echo(f"  {name}: {feature.n_bins} bins, {feature.n} values")
    for name, rows in embeddings.items():
        click.echo(f"  {name}: {rows.shape[0]} reference embeddings of dim {rows.shape[1]}")
    if history is None:
        return
    if model.baseline.seasonality == "none":
        _fail(f"--history builds seasonal baselines, but model {model_name!r} has baseline.seasonality: none",
              EXIT_CONFIG)
    try:
        # With the reference embeddings the embedding detector's slots are seeded too.
        baselines, stats, n_unusable = seasonal_from_file(
            config, model, dataclasses.replace(profile, embeddings=embeddings), Path(history),
        )
    except (DriftError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    seasonal = save_seasonal(baselines, config.resolve(config.baselines.dir), model_name)
    click.echo(
        f"seasonal baselines ({model.baseline.seasonality}) of {len(baselines)} cohort(s) from "
        f"{stats.n_events} events in {stats.n_windows} windows ({stats.n_unhealthy} unhealthy, "
        f"{stats.n_late} late, {n_unusable} unusable lines) written to {seasonal}"
    )
