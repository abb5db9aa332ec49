"""The ``drift`` command line.

Dataflow and connector modules are imported inside the commands that run them,
so ``drift validate`` and the core stay free of Bytewax and Kafka.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from drift.config import Config, load_config
from drift.errors import ConfigError, DriftError

EXIT_CONFIG = 2


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"drift: error: {message}", err=True)
    sys.exit(code)


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.messages:
            click.echo(line, err=True)
        click.echo(f"{len(exc.messages)} error(s) in {path}", err=True)
        sys.exit(EXIT_CONFIG)


def _print_json(document: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _print_result(document: dict[str, Any]) -> None:
    dlq = document["dlq"]
    reasons = ", ".join(f"{k}={v}" for k, v in dlq["by_reason"].items()) or "none"
    click.echo(
        f"events {document['events']}  decoded {document['decoded']}  late {document['late']}  "
        f"dead letters {dlq['total']} ({reasons})  windows {document['windows']}"
    )
    findings = document["findings"]
    click.echo(f"\nfindings at warn or alert: {len(findings)} of {document['findings_total']}")
    if findings:
        top = sorted(findings, key=lambda f: -f["value"])[:15]
        click.echo(_table(
            [[f["severity"], f["detector"], f["cohort_key"], f["feature"] or "-", f"{f['value']:.3f}",
              f["window_start"][11:16] + "-" + f["window_end"][11:16]] for f in top],
            ["severity", "detector", "cohort", "feature", "value", "window"],
        ))
    tickets = document["tickets"]
    click.echo(f"\nticket events: {len(tickets)}")
    if tickets:
        click.echo(_table(
            [[t["kind"], t["ticket"]["id"], t["ticket"]["status"], t["ticket"]["cohort_key"],
              t["ticket"]["feature"] or "-", str(t["ticket"]["occurrences"]),
              f"{t['ticket']['worst_value']:.3f}"] for t in tickets],
            ["event", "ticket", "status", "cohort", "feature", "windows", "worst"],
        ))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="drift")
def main() -> None:
    """Streaming drift and data-quality detection for ML systems in production."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
def validate(config: str) -> None:
    """Check CONFIG; print every error with its YAML path and line (exit 2)."""
    cfg = _load(config)
    click.echo(f"{config}: valid")
    for model in cfg.models:
        detectors = ", ".join(name for name, _ in model.detector_configs()) or "none"
        click.echo(
            f"  model {model.name}: {len(model.features)} features, cohort "
            f"[{', '.join(model.cohort)}], window {model.window.size}, detectors: {detectors}"
        )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--dir", "workdir", type=click.Path(file_okay=False), default="drift-demo",
              show_default=True, help="Folder for the demo's config, data, baselines and tickets.")
def demo(as_json: bool, workdir: str) -> None:
    """Run the main job on the embedded default: bundled events, no Kafka."""
    from connectors.files import write_jsonl, write_parquet
    from drift import demo as bundle
    from flows.runner import run_file

    folder = Path(workdir)
    for stale in ("baselines", "drift-tickets.db", "drift-tickets.db-wal", "drift-tickets.db-shm"):
        target = folder / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "drift.yaml").write_text(bundle.config_text(), encoding="utf-8")
    write_parquet(folder / "reference.parquet", bundle.reference_columns())
    data = bundle.events()
    write_jsonl(folder / "events.jsonl", data.lines)
    config = _load(str(folder / "drift.yaml"))
    result = run_file(config, folder / "events.jsonl")
    document = result.to_dict()
    if as_json:
        _print_json(document)
    else:
        click.echo(f"drift demo: {folder}/events.jsonl against {folder}/reference.parquet\n")
        _print_result(document)
        click.echo(f"\nticket store: {config.ticket_store_path()}")


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--events", required=True, type=click.Path(dir_okay=False, exists=True),
              help="JSONL or Parquet file of inference events.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--all-findings", is_flag=True, help="List ok findings too.")
def replay(config_path: str, events: str, as_json: bool, all_findings: bool) -> None:
    """Run the live dataflow over a file of historical events."""
    from flows.runner import run_file

    config = _load(config_path)
    try:
        result = run_file(config, Path(events))
    except (DriftError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    document = result.to_dict(all_findings=all_findings)
    if as_json:
        _print_json(document)
    else:
        _print_result(document)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker threads per process.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(min=1),
              help="Processes in the cluster (with --addresses and --process-id).")
@click.option("--process-id", type=click.IntRange(min=0), default=None)
@click.option("--addresses", default=None, help="host:port of every process, separated by ';'.")
@click.option("--recovery-dir", type=click.Path(file_okay=False), default=None,
              help="Bytewax recovery database folder (see docs/operations.md).")
@click.option("--until-end", is_flag=True,
              help="Stop at the end of every partition instead of waiting for new events.")
@click.option("--json", "as_json", is_flag=True, help="With --until-end: print the run summary as JSON.")
def run(config_path: str, workers: int, processes: int, process_id: int | None, addresses: str | None,
        recovery_dir: str | None, until_end: bool, as_json: bool) -> None:
    """Run the stream job against Kafka."""
    from drift.metrics import serve
    from flows.runner import run_kafka

    config = _load(config_path)
    if config.metrics.port:
        try:
            port = serve(config.metrics.host, config.metrics.port)
        except OSError as exc:
            _fail(f"cannot serve metrics on {config.metrics.host}:{config.metrics.port}: {exc}")
        click.echo(f"metrics on http://{config.metrics.host}:{port}/metrics", err=True)
    address_list = addresses.split(";") if addresses else None
    if processes > 1 and (address_list is None or len(address_list) != processes):
        _fail("--processes N needs --addresses with N host:port entries and --process-id", EXIT_CONFIG)
    try:
        result = run_kafka(
            config, workers=workers, processes=processes, process_id=process_id,
            addresses=address_list, recovery_dir=Path(recovery_dir) if recovery_dir else None,
            until_end=until_end,
        )
    except (DriftError, ValueError) as exc:
        _fail(str(exc))
    if until_end:
        document = result.to_dict()
        if as_json:
            _print_json(document)
        else:
            _print_result(document)


@main.group()
def baseline() -> None:
    """Build and inspect reference baselines."""


@baseline.command("build")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--model", "model_name", required=True)
@click.option("--reference", required=True, type=click.Path(dir_okay=False),
              help="Parquet file of training data, one column per feature.")
def baseline_build(config_path: str, model_name: str, reference: str) -> None:
    """Profile a model's training data and store its reference bins."""
    from drift.reference import save_reference
    from flows.runner import build_model_reference

    config = _load(config_path)
    try:
        model = config.model(model_name)
    except KeyError:
        _fail(f"model {model_name!r} is not in {config_path}; models: {[m.name for m in config.models]}", EXIT_CONFIG)
    try:
        profile = build_model_reference(config, model, Path(reference))
    except DriftError as exc:
        _fail(str(exc))
    path = save_reference(profile, config.resolve(config.baselines.dir))
    click.echo(f"baseline of {model_name!r} from {profile.n_rows} rows written to {path}")
    for name, feature in profile.features.items():
        click.echo(f"  {name}: {feature.n_bins} bins, {feature.n} values")


@main.group()
def tickets() -> None:
    """List and show tickets."""


def _store(config_path: str) -> Any:
    from drift.tickets import TicketStore

    config = _load(config_path)
    path = config.ticket_store_path()
    if path is None:
        _fail("only sqlite:/// ticket stores are supported by this version")
    return TicketStore.open(path)


@tickets.command("list")
@click.option("--config", "config_path", default="drift.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--status", default=None, help="open, pending_review, approved, rejected, in_progress, resolved")
@click.option("--json", "as_json", is_flag=True)
def tickets_list(config_path: str, status: str | None, as_json: bool) -> None:
    """Tickets in the store, oldest first."""
    from drift.tickets import TicketStatus

    try:
        wanted = TicketStatus(status) if status else None
    except ValueError:
        _fail(f"--status must be one of {', '.join(s.value for s in TicketStatus)}; got {status!r}", EXIT_CONFIG)
    with _store(config_path) as store:
        found = store.list(wanted)
    if as_json:
        _print_json([t.to_dict() for t in found])
        return
    click.echo(_table(
        [[t.id, t.status, t.action, t.cohort_key, t.detector, t.feature or "-", str(t.occurrences),
          f"{t.worst_value:.3f}"] for t in found],
        ["ticket", "status", "action", "cohort", "detector", "feature", "windows", "worst"],
    ) if found else "no tickets")


@tickets.command("show")
@click.argument("ticket_id")
@click.option("--config", "config_path", default="drift.yaml", show_default=True, type=click.Path(dir_okay=False))
def tickets_show(ticket_id: str, config_path: str) -> None:
    """One ticket, whole, as JSON."""
    with _store(config_path) as store:
        try:
            ticket = store.get(ticket_id)
        except DriftError as exc:
            _fail(str(exc))
    _print_json(ticket.to_dict())


if __name__ == "__main__":
    main()
