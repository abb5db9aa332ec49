"""The commands that read events: ``validate``, ``demo``, ``replay``, ``backtest``, ``run``, ``schema``."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import orjson

from drift.config import Config
from drift.duration import format_duration
from drift.errors import DriftError
from drift.redaction import redact
from drift.report.analysis import TOP_SERIES
from drift.cli.app import (
    EXIT_CONFIG, _DLQ_OUT_HELP, _exit_if_nothing_decoded, _fail, _load, _print_json, _print_result, _safe,
    _table, _with_dead_letters, main,
)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
def validate(config: str) -> None:
    """Check CONFIG; print every error with its YAML path and line (exit 2).

    Beyond the file itself, each model's reference Parquet is read (its schema
    only) to check that every feature is a column of a type that can hold it."""
    cfg = _load(config, check_references=True)
    click.echo(f"{config}: valid")
    for model in cfg.models:
        detectors = ", ".join(name for name, _ in model.detector_configs()) or "none"
        click.echo(
            f"  model {model.name}: {len(model.features)} features, cohort "
            f"[{', '.join(model.cohort)}], window {format_duration(model.window.size)}, detectors: {detectors}"
        )
        if model.rollups:
            click.echo("    rollups: " + ", ".join(f"[{', '.join(rollup)}]" for rollup in model.rollups))
        if model.labels is not None:
            click.echo(f"    labels: {model.labels.kind} on {model.labels.prediction}, joined by "
                       f"{model.labels.join_key} within {format_duration(model.labels.horizon)}")
        for slo in model.slo:
            click.echo(f"    slo: {slo.name}")
        if model.canary is not None:
            click.echo(f"    canary: {', '.join(model.canary.compare)} against {model.canary.champion} "
                       f"(label {model.canary.label})")


DEMO_MARKER = ".drift-demo"
"""The file that marks a folder made by ``drift demo`` (and so safe for it to overwrite)."""


def _check_demo_folder(folder: Path) -> None:
    """Refuse a folder that holds anything but an earlier demo: it may be a user's real setup."""
    if not folder.exists():
        return
    if not folder.is_dir():
        _fail(f"--dir {folder} is not a folder")
    if (folder / DEMO_MARKER).is_file():
        return
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return
    from drift import demo as bundle

    config = folder / "drift.yaml"
    # A demo folder written before the marker existed: its config is the bundled one, unchanged.
    try:
        if config.is_file() and config.read_text(encoding="utf-8") == bundle.config_text():
            return
    except (OSError, UnicodeDecodeError):
        pass
    shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    _fail(f"--dir {folder} is not empty and not a drift demo folder (it holds {shown}); the demo would "
          f"replace its drift.yaml, baselines and ticket store: give an empty or new folder")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--dir", "workdir", type=click.Path(file_okay=False), default="drift-demo",
              show_default=True, help="Folder for the demo's config, data, baselines and tickets.")
@click.option("--scenario", type=click.Choice(["default", "rollout"]), default="default", show_default=True,
              help="default: drift, a data-quality incident, embeddings and value skew in three models; "
                   "rollout: delayed labels with a quality SLO, and a canary beside the champion.")
def demo(as_json: bool, workdir: str, scenario: str) -> None:
    """Run the main job on the embedded default: bundled events, no Kafka."""
    from connectors.files import write_jsonl
    from drift import demo as bundle
    from drift.demo import rollout
    from flows.runner import run_file

    folder = Path(workdir)
    _check_demo_folder(folder)
    for stale in ("baselines", "drift-tickets.db", "drift-tickets.db-wal", "drift-tickets.db-shm",
                  "drift-tickets.db.audit-head"):
        target = folder / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DEMO_MARKER).write_text(
        "Made by 'drift demo': the next 'drift demo' here replaces this folder's config, data, "
        "baselines and tickets.\n", encoding="utf-8")
    if scenario == "rollout":
        (folder / "drift.yaml").write_text(rollout.CONFIG, encoding="utf-8")
        rollout.write_reference(folder)
        lines, reference = rollout.events().lines, rollout.REFERENCE_FILE
    else:
        (folder / "drift.yaml").write_text(bundle.config_text(), encoding="utf-8")
        bundle.write_references(folder)
        lines, reference = bundle.events().lines, bundle.REFERENCE_FILE
    write_jsonl(folder / "events.jsonl", lines)
    config = _load(str(folder / "drift.yaml"))
    result = run_file(config, folder / "events.jsonl")
    document = result.to_dict()
    if as_json:
        _print_json(document)
    else:
        click.echo(f"drift demo: {folder}/events.jsonl against {folder}/{reference}\n")
        _print_result(document)
        click.echo(f"\nticket store: {config.ticket_store_path()}")
        click.echo("\n" + _demo_next_steps(folder, scenario))


def _demo_next_steps(folder: Path, scenario: str = "default") -> str:
    """The commands to try after the demo, with paths that work from the current folder."""
    import shlex

    config, events = shlex.quote(str(folder / "drift.yaml")), shlex.quote(str(folder / "events.jsonl"))
    report = shlex.quote(str(folder / "report.html"))
    if scenario == "rollout":
        halts = shlex.quote(str(folder / "halts.jsonl"))
        return "\n".join([
            "next:",
            f"  drift tickets list --config {config}          # the SLO breach and the canary's tickets",
            f"  drift tickets show DRIFT-5 --config {config}  # the SLO breach, with recall, budget and burn rate",
            f"  drift replay --config {config} --events {events} --halts-out {halts}  # the halt signals",
        ])
    return "\n".join([
        "next:",
        f"  drift tickets list --config {config}          # the tickets it opened",
        f"  drift tickets show DRIFT-4 --config {config}  # one of them, routed to human review",
        f"  drift backtest --config {config} --events {events} --report {report}",
        f"  drift review list --config {config}           # the review queue",
    ])


_HALTS_OUT_HELP = ("Write every canary halt signal (the canary.halt finding, as on kafka.halt_topic) to FILE "
                   "as JSON lines.")


def _write_halts(halts: list[dict[str, Any]], path: str | None) -> None:
    """Every halt signal of the run to ``path`` as JSON lines (nothing without a path)."""
    if path is None:
        return
    try:
        with open(path, "wb") as handle:
            for halt in halts:
                handle.write(orjson.dumps(halt) + b"\n")
    except OSError as exc:
        _fail(f"cannot write --halts-out {path}: {exc}")


_STORE_HELP = ("Keep the tickets in this store (sqlite:///PATH, relative to the current folder, or "
               "postgresql://...)  [default: a scratch store, discarded at the end]")


def _with_store(config: Config, store: str) -> Config:
    """``config`` whose tickets go to ``--store`` (exit status 2 for a store that is not one).

    History must not land in the live job's ticket store by accident, so ``replay`` and
    ``backtest`` only write a real store that ``--store`` names.
    """
    try:
        return config.with_ticket_store(store)
    except ValueError as exc:
        _fail(f"--{exc}", EXIT_CONFIG)


@main.command()
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              required=True, type=click.Path(dir_okay=False))
@click.option("--events", required=True, type=click.Path(dir_okay=False, exists=True),
              help="JSONL or Parquet file of inference events.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--all-findings", is_flag=True, help="List ok findings too.")
@click.option("--dlq-out", type=click.Path(dir_okay=False), default=None, metavar="FILE", help=_DLQ_OUT_HELP)
@click.option("--halts-out", type=click.Path(dir_okay=False), default=None, metavar="FILE", help=_HALTS_OUT_HELP)
@click.option("--store", "store", default=None, metavar="URL", help=_STORE_HELP)
def replay(config_path: str, events: str, as_json: bool, all_findings: bool, dlq_out: str | None,
           halts_out: str | None, store: str | None) -> None:
    """Run the live dataflow over a file of historical events.

    Tickets go to a scratch store (and to no webhook) unless --store names one. Dead letters
    are counted by reason, with the first few of each (line, field, detail); exit status 3
    when not one event could be decoded. A progress line on a terminal, quiet otherwise.
    """
    from flows.progress import progress_for
    from flows.runner import run_history

    config = _load(config_path)
    if store is not None:
        config = _with_store(config, store)
    progress = progress_for(Path(events), label="replay")
    try:
        result = run_history(config, Path(events), store=None if store is None else config.tickets.store,
                             progress=progress)
    except (DriftError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    finally:
        if progress is not None:
            click.echo("", err=True)
    document = _with_dead_letters(result.to_dict(all_findings=all_findings), result.dlq, dlq_out)
    _write_halts(document["halts"], halts_out)
    if as_json:
        _print_json(document)
    else:
        _print_result(document)
        click.echo(f"\nticket store: {redact(config.tickets.store)}" if store is not None else
                   "\nticket store: a scratch store, now discarded (--store URL keeps the tickets)")
    _exit_if_nothing_decoded(document, events)


@main.command()
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              required=True, type=click.Path(dir_okay=False))
@click.option("--events", required=True, type=click.Path(dir_okay=False, exists=True),
              help="JSONL or Parquet file of inference events.")
@click.option("--report", "report_path", required=True, type=click.Path(dir_okay=False),
              help="Write the self-contained HTML report here.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document: replay's, plus the what-if table and the report's sections.")
@click.option("--baseline-feature", "baseline_features", multiple=True, metavar="[MODEL:]FEATURE",
              help="Plot this numeric feature against its seasonal baseline (repeatable); default: the top "
                   "drifting numeric feature of a model with baseline.seasonality set.")
@click.option("--top-k", "top_k", type=click.IntRange(min=1), default=TOP_SERIES, show_default=True,
              help="Series drawn at first per cohort in the report's timelines (its worst); the rest one click away.")
@click.option("--dlq-out", type=click.Path(dir_okay=False), default=None, metavar="FILE", help=_DLQ_OUT_HELP)
@click.option("--halts-out", type=click.Path(dir_okay=False), default=None, metavar="FILE", help=_HALTS_OUT_HELP)
@click.option("--store", "store", default=None, metavar="URL", help=_STORE_HELP)
def backtest(
    config_path: str, events: str, report_path: str, as_json: bool, baseline_features: tuple[str, ...],
    top_k: int, dlq_out: str | None, halts_out: str | None, store: str | None,
) -> None:
    """Run the live dataflow over history and report what it would have done (plots, tickets, what-if)."""
    from drift.report import require_report_dependencies
    from flows.backtest import (
        backtest_document, history_sections, resolve_baseline_features, run_backtest, write_report,
    )
    from flows.progress import progress_for

    try:
        require_report_dependencies()  # the report is written after the run: fail before it
    except DriftError as exc:
        _fail(str(exc))
    config = _load(config_path)
    try:
        chosen = resolve_baseline_features(config, baseline_features) if baseline_features else None
    except ValueError as exc:
        _fail(str(exc), EXIT_CONFIG)
    if store is not None:
        config = _with_store(config, store)  # a bad --store fails before the run
    progress = progress_for(Path(events))
    try:
        result = run_backtest(config, Path(events), progress=progress,
                              store=None if store is None else config.tickets.store)
        if progress is not None:
            click.echo("", err=True)
        # The report's history sections read the file once more (a second progress line).
        progress = progress_for(Path(events), label="report")
        sections = history_sections(config, result, Path(events), chosen, progress=progress)
    except (DriftError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    finally:
        if progress is not None:
            click.echo("", err=True)
    write_report(result, Path(report_path), title=f"drift backtest: {Path(events).name} with {Path(config_path).name}",
                 sections=sections, top_k=top_k)
    document = _with_dead_letters(backtest_document(result, sections), result.dlq, dlq_out)
    _write_halts(document["halts"], halts_out)
    if as_json:
        _print_json({**document, "report": report_path})
        _exit_if_nothing_decoded(document, events)
        return
    _print_result(document)
    click.echo("\nwhat if (alerting windows at alert level x factor; >1 is stricter):")
    factors = sorted({row["factor"] for row in document["what_if"]})
    counts: dict[str, dict[float, int]] = {}
    for row in document["what_if"]:
        counts.setdefault(row["detector"], {})[row["factor"]] = row["n_alert_findings"]
    click.echo(_table([[name, *(str(by.get(f, 0)) for f in factors)] for name, by in counts.items()],
                      ["detector", *(f"x{f:g}" for f in factors)]))
    if document["seasonal_baselines"] or document["embedding_projections"]:
        click.echo("")
    for series in document["seasonal_baselines"]:
        n_alert = sum(1 for w in series["windows"] if w["severity"] == "alert")
        click.echo(f"seasonal baseline: {_safe(series['model'])} {_safe(series['feature'])} "
                   f"{_safe(series['cohort_key'])}: "
                   f"{series['n_seasonal_windows']} of {series['n_windows']} windows against the slot's history, "
                   f"{n_alert} at PSI alert")
    for item in document["embedding_projections"]:
        click.echo(f"embedding projection: {_safe(item['cohort_key'])} {item['window_start']}: centroid distance "
                   f"{item['centroid_distance']:.3g} on PCs explaining "
                   f"{sum(item['explained_variance_ratio']):.0%} of the reference variance")
    click.echo(f"\nreport: {report_path}")
    _exit_if_nothing_decoded(document, events)


def _positive_duration(option: str, text: str) -> timedelta:
    from drift.duration import parse_duration

    try:
        duration = parse_duration(text)
    except ValueError as exc:
        _fail(f"{option} {exc}", EXIT_CONFIG)
    if duration <= timedelta(0):
        _fail(f"{option} must be positive; got {text!r}", EXIT_CONFIG)
    return duration


def _run_local_cluster(config: Config, options: dict[str, Any]) -> None:
    """``drift run --processes P`` without addresses: P processes on this host, supervised."""
    from flows.cluster import combine_summaries, run_local_cluster
    from flows.runner import load_profiles, prepare_recovery_dir

    # Build and store missing reference profiles once, before the members
    # start, so they do not all build (and write) the same files at once.
    try:
        load_profiles(config, log=lambda text: click.echo(text, err=True))
    except DriftError as exc:
        _fail(str(exc))
    processes: int = options["processes"]
    workers: int = options["workers"]
    args = ["--config", options["config_path"], "--workers", str(workers),
            "--snapshot-interval", options["snapshot_interval_text"]]
    if options["recovery_dir"]:
        # One folder for the whole host: created here, before any member opens it.
        partitions = options["recovery_partitions"] or workers * processes
        prepare_recovery_dir(Path(options["recovery_dir"]), partitions)
        args += ["--recovery-dir", options["recovery_dir"]]
    if options["until_end"]:
        args += ["--until-end"]
    port = options["metrics_port"] if options["metrics_port"] is not None else config.metrics.port
    result = run_local_cluster(
        args, processes, metrics_port=port, until_end=options["until_end"], json_summary=options["until_end"],
    )
    if result.returncode != 0:
        _fail(result.message or "the cluster failed")
    if result.stopped:
        click.echo("drift: stopped", err=True)
    elif options["until_end"]:
        document = combine_summaries(result.summaries)
        if options["as_json"]:
            _print_json(document)
        else:
            _print_result(document)


@main.command()
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              required=True, type=click.Path(dir_okay=False))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker threads per process.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(min=1),
              help="Processes in the cluster. Without --addresses, all of them are started on this host.")
@click.option("--process-id", type=click.IntRange(min=0), default=None,
              help="This process's index in --addresses (one process of a multi-host cluster).")
@click.option("--addresses", default=None, help="host:port of every process of the cluster, separated by ';'.")
@click.option("--recovery-dir", type=click.Path(file_okay=False), default=None,
              help="Snapshot state and offsets here and resume from them; created when missing.")
@click.option("--recovery-partitions", type=click.IntRange(min=1), default=None,
              help="Recovery partitions to create in a new --recovery-dir  [default: workers x processes]")
@click.option("--snapshot-interval", "snapshot_interval_text", default="10s", show_default=True,
              help="Epoch length: how often state is snapshotted (and how much is read again after a crash).")
@click.option("--metrics-port", type=click.IntRange(min=0, max=65535), default=None,
              help="Serve /metrics, /healthz and /readyz on this port instead of metrics.port (0: none).")
@click.option("--until-end", is_flag=True,
              help="Stop at the end of every partition instead of waiting for new events.")
@click.option("--json", "as_json", is_flag=True, help="With --until-end: print the run summary as JSON.")
@click.option("--summary-file", type=click.Path(dir_okay=False), default=None, hidden=True,
              help="With --until-end: write the JSON summary to this file (used by a local cluster's parent).")
def run(config_path: str, workers: int, processes: int, process_id: int | None, addresses: str | None,
        recovery_dir: str | None, recovery_partitions: int | None, snapshot_interval_text: str,
        metrics_port: int | None, until_end: bool, as_json: bool, summary_file: str | None) -> None:
    """Run the stream job against Kafka (SIGTERM stops it cleanly; see docs/operations.md).

    With --until-end, a progress line on a terminal (messages read, per second), quiet otherwise."""
    from contextlib import ExitStack, nullcontext

    from drift.health import Health, serve
    from flows.progress import run_progress
    from flows.runner import prepare_recovery_dir, run_kafka
    from flows.shutdown import Shutdown

    snapshot_interval = _positive_duration("--snapshot-interval", snapshot_interval_text)
    address_list = [a.strip() for a in addresses.split(";") if a.strip()] if addresses else None
    if address_list is not None:
        if len(address_list) != processes:
            _fail(f"--addresses lists {len(address_list)} process(es) but --processes is {processes}", EXIT_CONFIG)
        if process_id is None:
            _fail("--addresses needs --process-id (this process's index in the list)", EXIT_CONFIG)
    if process_id is not None and process_id >= processes:
        _fail(f"--process-id must be below --processes ({processes}); got {process_id}", EXIT_CONFIG)
    if process_id is not None and address_list is None and processes > 1:
        _fail("--process-id needs --addresses with one host:port per process", EXIT_CONFIG)

    health = Health()
    with ExitStack() as stack:
        # SIGTERM/SIGINT end the job with status 0 within seconds from here on, in every state
        # (loading, waiting for Kafka, running, broker lost): flows/shutdown.py.
        shutdown = stack.enter_context(Shutdown())
        config = _load(config_path)
        health.passed("config")
        if processes > 1 and address_list is None:
            stack.close()  # the parent of a local cluster passes signals on to its members itself
            _run_local_cluster(config, {
                "config_path": config_path, "workers": workers, "processes": processes,
                "recovery_dir": recovery_dir, "recovery_partitions": recovery_partitions,
                "snapshot_interval_text": snapshot_interval_text, "metrics_port": metrics_port,
                "until_end": until_end, "as_json": as_json,
            })
            return

        port = metrics_port if metrics_port is not None else config.metrics.port
        if port:
            try:
                server = serve(config.metrics.host, port, health)
            except OSError as exc:
                _fail(f"cannot serve metrics on {config.metrics.host}:{port}: {exc}")
            click.echo(f"metrics on http://{config.metrics.host}:{server.server_port}/metrics "
                       "(/healthz, /readyz)", err=True)
        recovery = Path(recovery_dir) if recovery_dir else None
        try:
            if recovery is not None and recovery_partitions is not None:
                prepare_recovery_dir(recovery, recovery_partitions,
                                     process_id=process_id if processes > 1 else None, processes=processes)
            # A member of a local cluster (--summary-file) leaves the terminal to its parent.
            progress = run_progress() if until_end and summary_file is None else None
            with progress if progress is not None else nullcontext():
                result = run_kafka(
                    config, workers=workers, processes=processes, process_id=process_id,
                    addresses=address_list, recovery_dir=recovery, until_end=until_end,
                    snapshot_interval=snapshot_interval, health=health, shutdown=shutdown,
                )
        except (DriftError, ValueError) as exc:
            _fail(str(exc))
    if result.stopped:
        click.echo("drift: stopped; a restart with the same --recovery-dir resumes from the last snapshot"
                   if recovery is not None else "drift: stopped", err=True)
    if until_end and not result.stopped:
        document = result.to_dict()
        if summary_file is not None:
            Path(summary_file).write_bytes(orjson.dumps(document))
        elif as_json:
            _print_json(document)
        else:
            _print_result(document)


@main.command()
@click.argument("kind", type=click.Choice(["inference", "feature", "label"]), default="inference")
def schema(kind: str) -> None:
    """Print the JSON Schema of an inference (default), feature or label event (docs/events.md)."""
    from drift.schemas import schema_text

    click.echo(schema_text(kind), nl=False)
