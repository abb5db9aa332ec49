"""The ``drift`` command line.

Dataflow and connector modules are imported inside the commands that run them,
so ``drift validate`` and the core stay free of Bytewax and Kafka.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import drift.early_signals  # noqa: F401 - first: `drift run` exits 0 on SIGTERM/SIGINT while it loads

import click
import orjson

from drift.config import Config, load_config
from drift.errors import ConfigError, DriftError
from drift.redaction import install as install_redaction
from drift.redaction import redact, register_secret

EXIT_CONFIG = 2
EXIT_NOTHING_DECODED = 3
"""``replay``/``backtest``: not one event of the file could be decoded."""


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(redact(f"drift: error: {message}"), err=True)
    sys.exit(code)


def _load(path: str, *, check_references: bool = False) -> Config:
    try:
        return load_config(path, check_references=check_references)
    except ConfigError as exc:
        for line in exc.messages:
            click.echo(redact(line), err=True)
        click.echo(redact(f"{len(exc.messages)} error(s) in {path}"), err=True)
        sys.exit(EXIT_CONFIG)


def _print_json(document: Any) -> None:
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    sys.stdout.buffer.write(redact(text).encode() + b"\n")
    sys.stdout.flush()


# Terminal control characters (C0, DEL, C1) and bidirectional overrides in a value
# (a cohort label, a feature name, a reviewer's comment) could rewrite or hide what
# the table shows, so every cell is printed with them escaped.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _safe(value: object) -> str:
    r"""``value`` as text with control characters escaped (``\x1b``, ``\u202e``).

    >>> _safe("acme\x1b[2J")
    'acme\\x1b[2J'
    """
    text = str(value)

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

    return _UNSAFE.sub(escape, text)


def _table(rows: list[list[str]], header: list[str]) -> str:
    header = [_safe(h) for h in header]
    rows = [[_safe(c) for c in row] for row in rows]
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
    samples = document.get("dlq_samples")
    if samples:
        sys.stdout.flush()  # the samples (stderr) come right under the counts
        click.echo(_dlq_sample_text(samples, dlq["total"]), err=True)
    findings = document["findings"]
    listed = "" if all(f["severity"] != "ok" for f in findings) else ", all listed"
    click.echo(f"\nfindings at warn or alert: {sum(f['severity'] != 'ok' for f in findings)} of "
               f"{document['findings_total']}{listed}")
    if findings:
        # Grouped by detector (the worst detector first), largest values first within one.
        worst: dict[str, float] = {}
        for f in findings:
            worst[f["detector"]] = max(worst.get(f["detector"], f["value"]), f["value"])
        ordered = sorted(findings, key=lambda f: (-worst[f["detector"]], f["detector"], -f["value"]))
        shown = ordered[:FINDINGS_SHOWN]
        click.echo(_table(
            [[f["severity"], f["detector"], f["cohort_key"], f["feature"] or "-", f"{f['value']:.3f}",
              _threshold_text(f), _p_text(f), f["window_start"][11:16] + "-" + f["window_end"][11:16]]
             for f in shown],
            ["severity", "detector", "cohort", "feature", "value", "threshold", "p / q", "window"],
        ))
        if len(ordered) > len(shown):
            click.echo(f"{len(shown)} of {len(ordered)} shown; --json lists them all")
    tickets = document["tickets"]
    click.echo(f"\nticket events: {len(tickets)}")
    if tickets:
        click.echo(_table(
            [[t["kind"], t["ticket"]["id"], t["ticket"]["status"], t["ticket"]["detector"], t["ticket"]["cohort_key"],
              t["ticket"]["feature"] or "-", str(t["ticket"]["occurrences"]),
              f"{t['ticket']['worst_value']:.3f}"] for t in tickets],
            ["event", "ticket", "status", "detector", "cohort", "feature", "windows", "worst"],
        ))
        latest = {t["ticket"]["id"]: t["ticket"] for t in tickets}
        click.echo("\nrouting:\n" + "\n".join(
            f"  {ticket['id']} {_safe(ticket['model'])} {_safe(ticket['detector'])} -> "
            + (f"human review ({ticket['status']}, {ticket['approvals_required']} approval(s) needed)"
               if ticket["action"] == "human_review" else f"opened directly ({ticket['status']})")
            for ticket in latest.values()
        ))
    skewed = [f for f in findings if f["detector"].endswith(".value") and f["severity"] != "ok"]
    for finding in skewed:
        evidence = finding["evidence"]
        ratio = evidence.get("mean_ratio")
        click.echo(
            f"\nvalue skew: {_safe(finding['feature'])} in {_safe(finding['cohort_key'])}: "
            f"{evidence['mismatch_rate']:.1%} of served values differ from the offline store"
            + (f", mean served/offline ratio {ratio:.1f}" if ratio is not None else "")
            + (f" ({evidence['unit_suspect']})" if evidence.get("unit_suspect") else "")
        )


FINDINGS_SHOWN = 15
"""Rows of the findings table in human output; ``--json`` has every finding."""


def _threshold_text(finding: dict[str, Any]) -> str:
    """The level a finding's value is compared with: ``>= 0.25`` (alert), else the warn level."""
    crossed_alert = finding["severity"] == "alert" or finding["value"] >= finding["alert"]
    level = finding["alert"] if crossed_alert else finding["warn"]
    return f">= {level:g}"


def _p_text(finding: dict[str, Any]) -> str:
    """``p`` (and ``q`` where the detector controls false discoveries) of a finding, or ``-``.

    The embedding test keeps its permutation p-value in the evidence: shown here so that
    ``alert 0.030`` (an MMD²) does not read as a value below ``p_value: 0.01``.
    """
    p = finding.get("p_value")
    if p is None:
        p = finding.get("evidence", {}).get("p_value")
    if p is None:
        return "-"
    q = finding.get("q_value")
    return f"p={p:.2g}" + (f" q={q:.2g}" if q is not None else "")


def _dlq_sample_text(samples: list[dict[str, Any]], total: int) -> str:
    from drift.events import DLQ_SAMPLES_PER_REASON

    more = "" if len(samples) == total else "; --dlq-out FILE writes them all"
    rows = [[s["reason"], f"line {s['line']}" if s["line"] is not None else f"offset {s['offset']}",
             s["field"] or "-", s["detail"] if len(s["detail"]) <= 400 else s["detail"][:397] + "..."]
            for s in samples]
    return (f"dead letters, the first {DLQ_SAMPLES_PER_REASON} of each reason{more}:\n"
            + "\n".join(line.rstrip() for line in _table(rows, ["reason", "where", "field", "detail"]).splitlines()))


def _with_dead_letters(document: dict[str, Any], dlq: list[Any], dlq_out: str | None) -> dict[str, Any]:
    """``document`` with ``dlq_samples``; every dead letter written to ``dlq_out`` as JSON lines."""
    from drift.events import dead_letter_samples

    if dlq_out is not None:
        try:
            with open(dlq_out, "wb") as handle:
                for letter in dlq:
                    handle.write(orjson.dumps({**letter.to_dict(), "line": letter.line, "field": letter.field}) + b"\n")
        except OSError as exc:
            _fail(f"cannot write --dlq-out {dlq_out}: {exc}")
    return {**document, "dlq_samples": dead_letter_samples(dlq)}


def _exit_if_nothing_decoded(document: dict[str, Any], events: str) -> None:
    if document["decoded"] == 0 and document.get("feature_events", 0) == 0:
        total = document["dlq"]["total"]
        click.echo(
            f"drift: no event of {events} could be decoded"
            + (f": all {total} went to the dead letters (reasons above)" if total else ": the file holds none"),
            err=True,
        )
        sys.exit(EXIT_NOTHING_DECODED)


_DLQ_OUT_HELP = "Write every dead letter (reason, line, field, detail, original bytes) to FILE as JSON lines."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="drift")
def main() -> None:
    """Streaming drift and data-quality detection for ML systems in production."""
    # Credentials are masked in every log record and uncaught traceback from here
    # on; the config registers its secrets' values when it loads (docs/configuration.md).
    install_redaction()
    if os.environ.get("PGPASSWORD"):
        register_secret(os.environ["PGPASSWORD"])
    for name, value in os.environ.items():  # the audit keys, current and retired (docs/tickets.md)
        if name.startswith("DRIFT_AUDIT_KEY") and name != "DRIFT_AUDIT_KEY_ID" and value:
            register_secret(value)


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
            f"[{', '.join(model.cohort)}], window {model.window.size}, detectors: {detectors}"
        )


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
def demo(as_json: bool, workdir: str) -> None:
    """Run the main job on the embedded default: bundled events, no Kafka."""
    from connectors.files import write_jsonl
    from drift import demo as bundle
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
    (folder / "drift.yaml").write_text(bundle.config_text(), encoding="utf-8")
    bundle.write_references(folder)
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
        click.echo("\n" + _demo_next_steps(folder))


def _demo_next_steps(folder: Path) -> str:
    """The commands to try after the demo, with paths that work from the current folder."""
    import shlex

    config, events = shlex.quote(str(folder / "drift.yaml")), shlex.quote(str(folder / "events.jsonl"))
    report = shlex.quote(str(folder / "report.html"))
    return "\n".join([
        "next:",
        f"  drift tickets list --config {config}          # the tickets it opened",
        f"  drift tickets show DRIFT-4 --config {config}  # one of them, routed to human review",
        f"  drift backtest --config {config} --events {events} --report {report}",
        f"  drift review list --config {config}           # the review queue",
    ])


_STORE_HELP = ("Keep the tickets in this store (sqlite:///PATH, relative to the current folder, or "
               "postgresql://...)  [default: a scratch store, discarded at the end]")


def _with_store(config: Config, store: str | None) -> Config:
    """``config`` whose tickets go to ``store``; None: unchanged (the caller's scratch store follows).

    History must not land in the live job's ticket store by accident, so ``replay`` and
    ``backtest`` only write a real store that ``--store`` names.
    """
    from drift.config import TicketsConfig

    assert store is not None
    if store.startswith("sqlite:///"):
        path = Path(store[len("sqlite:///"):]).expanduser()
        store = f"sqlite:///{path if path.is_absolute() else Path.cwd() / path}"
    try:
        tickets = TicketsConfig(store=store, sinks=config.tickets.sinks, webhook=config.tickets.webhook)
    except ValueError as exc:
        _fail(f"--store {store!r}: {exc}", EXIT_CONFIG)
    return config.model_copy(update={"tickets": tickets})


@main.command()
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              required=True, type=click.Path(dir_okay=False))
@click.option("--events", required=True, type=click.Path(dir_okay=False, exists=True),
              help="JSONL or Parquet file of inference events.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--all-findings", is_flag=True, help="List ok findings too.")
@click.option("--dlq-out", type=click.Path(dir_okay=False), default=None, metavar="FILE", help=_DLQ_OUT_HELP)
@click.option("--store", "store", default=None, metavar="URL", help=_STORE_HELP)
def replay(config_path: str, events: str, as_json: bool, all_findings: bool, dlq_out: str | None,
           store: str | None) -> None:
    """Run the live dataflow over a file of historical events.

    Tickets go to a scratch store (and to no webhook) unless --store names one. Dead letters
    are counted by reason, with the first few of each (line, field, detail); exit status 3
    when not one event could be decoded. A progress line on a terminal, quiet otherwise.
    """
    import tempfile

    from drift.config import TicketsConfig
    from flows.progress import progress_for
    from flows.runner import run_file

    config = _load(config_path)
    with tempfile.TemporaryDirectory(prefix="drift-replay-") as scratch:
        if store is None:
            # A throwaway store sends nothing: its ticket events would reach a real receiver
            # under a new store id on every replay.
            config = config.model_copy(update={"tickets": TicketsConfig(
                store=f"sqlite:///{Path(scratch) / 'tickets.db'}", sinks=[])})
        else:
            config = _with_store(config, store)
        progress = progress_for(Path(events), label="replay")
        try:
            result = run_file(config, Path(events), progress=progress)
        except (DriftError, ValueError, FileNotFoundError) as exc:
            _fail(str(exc))
        finally:
            if progress is not None:
                click.echo("", err=True)
    document = _with_dead_letters(result.to_dict(all_findings=all_findings), result.dlq, dlq_out)
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
@click.option("--dlq-out", type=click.Path(dir_okay=False), default=None, metavar="FILE", help=_DLQ_OUT_HELP)
@click.option("--store", "store", default=None, metavar="URL", help=_STORE_HELP)
def backtest(
    config_path: str, events: str, report_path: str, as_json: bool, baseline_features: tuple[str, ...],
    dlq_out: str | None, store: str | None,
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
    progress = progress_for(Path(events))
    try:
        result = run_backtest(config if store is None else _with_store(config, store), Path(events),
                              progress=progress, scratch=store is None)
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
                 sections=sections)
    document = _with_dead_letters(backtest_document(result, sections), result.dlq, dlq_out)
    if as_json:
        _print_json({**document, "report": report_path})
        _exit_if_nothing_decoded(document, events)
        return
    _print_result(document)
    click.echo(f"\nwhat if (alerting windows at alert level x factor; >1 is stricter):")
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
@click.argument("kind", type=click.Choice(["inference", "feature"]), default="inference")
def schema(kind: str) -> None:
    """Print the JSON Schema of an inference (default) or feature event (docs/events.md)."""
    from drift.schemas import schema_text

    click.echo(schema_text(kind), nl=False)


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


@main.group()
def tickets() -> None:
    """List and show tickets."""


def _store(config_path: str) -> Any:
    from connectors.ticket_store import open_store

    config = _load(config_path)
    try:
        return open_store(config)
    except DriftError as exc:
        _fail(str(exc))


@tickets.command("list")
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              default="drift.yaml", show_default=True, type=click.Path(dir_okay=False))
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
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              default="drift.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the whole ticket as one JSON document.")
def tickets_show(ticket_id: str, config_path: str, as_json: bool) -> None:
    """One ticket: a summary a person reads first (what, where, since when, how bad, traffic
    and impact, the cohort's other findings, what to try, review state, how to reproduce);
    --json prints it whole, with its context and audit history."""
    with _store(config_path) as store:
        try:
            ticket = store.get(ticket_id)
            context = store.context(ticket_id)
            history = [entry.to_dict() for entry in store.audit_log(ticket_id)]
        except DriftError as exc:
            _fail(str(exc))
    document = {**ticket.to_dict(), "context": context, "history": history}
    if as_json:
        _print_json(document)
    else:
        click.echo(_ticket_summary(document, config_path))


def _ticket_summary(ticket: dict[str, Any], config_path: str) -> str:
    """``drift tickets show`` for a person: the facts on-call needs first, then where the rest is."""
    import shlex

    context = ticket.get("context", {})
    last = ticket.get("last_finding") or {}
    labels = ", ".join(f"{k}={_safe(v)}" for k, v in sorted(ticket["cohort"].items()) if k != "model") or "all traffic"
    feature = f" of {_safe(ticket['feature'])}" if ticket.get("feature") else ""
    state = "active" if ticket.get("active") else "no longer alerting (cleared)"
    lines = [
        f"{ticket['id']}  {ticket['status']}  {ticket['severity']}  {_safe(ticket['detector'])}{feature}",
        f"  where       model {_safe(ticket['model'])}; {labels}",
        f"  since       {ticket['first_window_start']} (last window ending {ticket['last_window_end']}), "
        f"{ticket['occurrences']} alerting window(s), {state}",
    ]
    how_bad = f"  how bad     last {ticket['last_value']:.4g}, worst {ticket['worst_value']:.4g}"
    if last:
        how_bad += f"; levels warn {last.get('warn'):g}, alert {last.get('alert'):g}"
        p = last.get("p_value")
        if p is None:  # the embedding test keeps its permutation p-value in the evidence
            p = (last.get("evidence") or {}).get("p_value")
        q = last.get("q_value")
        if p is not None:
            how_bad += f"; p={p:.2g}" + (f", q={q:.2g}" if q is not None else "")
        if last.get("n_current") is not None:
            how_bad += f"; n={last['n_current']} against {last.get('n_reference')} ({_safe(last.get('baseline'))})"
    lines.append(how_bad)
    traffic, impact = context.get("traffic") or {}, context.get("impact") or {}
    if traffic:
        lines.append(f"  traffic     {traffic.get('n_events')} events in the last window, "
                     f"{traffic.get('share', 0):.0%} of the model's; impact tier {impact.get('tier', '-')}"
                     + (", regulated" if impact.get("regulated") else ""))
    others = [f for f in context.get("findings", []) if f.get("ticket_id") != ticket["id"]][:5]
    if others:
        lines.append("  also here   " + "; ".join(
            f"{_safe(f['detector'])} {_safe(f.get('feature') or '-')} {f['value']:.3g} ({f['severity']})" for f in others))
    for measure in context.get("countermeasures", [])[:3]:
        lines.append(f"  try         {_safe(measure['action'])}")
    reviews = context.get("reviews", [])
    if ticket.get("action") == "human_review" or reviews:
        verdicts = ", ".join(f"{_safe(r.get('reviewer'))}: {r.get('verdict')}" for r in reviews) or "none yet"
        lines.append(f"  review      {ticket.get('approvals_required')} approval(s) needed; {verdicts}")
    config = shlex.quote(config_path)
    lines += [
        f"  reproduce   drift backtest --config {config} --events HISTORY.jsonl --report report.html",
        f"  runbook     docs/operations.md (alert runbooks); the whole ticket: "
        f"drift tickets show {ticket['id']} --config {config} --json",
    ]
    return "\n".join(lines)


_AS_ADMIN_HELP = ("Act for the person named by the name option; needs the 'admin' role when "
                  "review.reviewers is declared. Both names are recorded in the audit log.")
_IDENTITY_NOTE = ("You act as $DRIFT_REVIEWER, else as the OS user; see docs/tickets.md, "
                  "Identities and roles.")


def _actor(config: Config, named: str | None, as_admin: bool) -> tuple[Any, Any]:
    """The review policy of ``config`` and the person this command acts as (exit 1 if refused)."""
    from drift.tickets.review import ReviewPolicy

    try:
        policy = ReviewPolicy.from_config(config)
        return policy, policy.actor(named, as_admin)
    except DriftError as exc:
        _fail(str(exc))


@tickets.command("move", epilog=_IDENTITY_NOTE)
@click.argument("ticket_id")
@click.argument("status", type=click.Choice(["in_progress", "resolved"]))
@click.option("--by", "actor_name", default=None, metavar="NAME",
              help="Move it for NAME (with --as-admin)  [default: you]")
@click.option("--as-admin", is_flag=True, help=_AS_ADMIN_HELP)
@click.option("--comment", default=None)
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              default="drift.yaml", show_default=True, type=click.Path(dir_okay=False))
def tickets_move(ticket_id: str, status: str, actor_name: str | None, as_admin: bool, comment: str | None,
                 config_path: str) -> None:
    """Move a ticket to in_progress or resolved (review moves go through `drift review`).

    Needs the 'resolve' role when review.reviewers is declared."""
    config = _load(config_path)
    policy, actor = _actor(config, actor_name, as_admin)
    with _store(config_path) as store:
        try:
            ticket = policy.move(store, ticket_id, status, actor, comment)
        except DriftError as exc:
            _fail(str(exc))
    click.echo(f"{ticket.id}: {ticket.status.value}")


# ---------------------------------------------------------------- review (drift/tickets/review.py)


@main.group()
def review() -> None:
    """The review queue of high-impact tickets: list, request, approve, reject, publish."""


def _publish(config: Config, store: Any) -> None:
    from connectors.outbox import kafka_sender
    from drift.tickets.review import publish_outbox

    topic = config.kafka.retrain_topic
    result = publish_outbox(store, kafka_sender(config.kafka, topic), f"kafka:{topic}")
    for key in result.published:
        click.echo(f"retraining request {key} published to {topic}")
    if result.pending:
        click.echo(redact(f"{len(result.pending)} retraining request(s) kept in the store's outbox "
                          f"({result.error}); 'drift review publish' sends them later"), err=True)


@review.command("list")
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              default="drift.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def review_list(config_path: str, as_json: bool) -> None:
    """Tickets waiting for review, oldest first."""
    from drift.tickets.review import pending_reviews

    with _store(config_path) as store:
        queue = pending_reviews(store)
    if as_json:
        _print_json([p.to_dict() for p in queue])
        return
    click.echo(_table(
        [[p.ticket.id, p.ticket.cohort_key, p.ticket.detector, p.ticket.feature or "-",
          f"{p.ticket.worst_value:.3f}", p.ticket.requester or "-",
          f"{len(p.approved_by)}/{p.ticket.approvals_required}", ", ".join(p.approved_by) or "-"]
         for p in queue],
        ["ticket", "cohort", "detector", "feature", "worst", "requester", "approvals", "approved by"],
    ) if queue else "no tickets waiting for review")


@review.command("request", epilog=_IDENTITY_NOTE)
@click.argument("ticket_id")
@click.option("--requester", default=None, metavar="NAME",
              help="Request it for NAME (with --as-admin)  [default: you]. The requester cannot approve it.")
@click.option("--as-admin", is_flag=True, help=_AS_ADMIN_HELP)
@click.option("--approvals", type=click.IntRange(min=1), default=None,
              help="Distinct approvers needed  [default: the ticket's]")
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              default="drift.yaml", show_default=True, type=click.Path(dir_okay=False))
def review_request(ticket_id: str, requester: str | None, as_admin: bool, approvals: int | None,
                   config_path: str) -> None:
    """Send an open (or rejected) ticket to review."""
    config = _load(config_path)
    policy, actor = _actor(config, requester, as_admin)
    with _store(config_path) as store:
        try:
            ticket = policy.request(store, ticket_id, actor, approvals)
        except DriftError as exc:
            _fail(str(exc))
    click.echo(f"{ticket.id}: pending_review, requested by {ticket.requester}, "
               f"{ticket.approvals_required} approval(s) needed")


@review.command("approve", epilog=_IDENTITY_NOTE)
@click.argument("ticket_id")
@click.option("--reviewer", default=None, metavar="NAME",
              help="Approve for NAME (with --as-admin)  [default: you]; never the requester.")
@click.option("--as-admin", is_flag=True, help=_AS_ADMIN_HELP)
@click.option("--comment", default=None)
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              default="drift.yaml", show_default=True, type=click.Path(dir_okay=False))
def review_approve(ticket_id: str, reviewer: str | None, as_admin: bool, comment: str | None,
                   config_path: str) -> None:
    """Approve a ticket; the last approval needed emits its retraining request.

    Needs the 'approve_retraining' role ('approve_sensitive' for a sensitive ticket) when
    review.reviewers is declared."""
    config = _load(config_path)
    policy, actor = _actor(config, reviewer, as_admin)
    with _store(config_path) as store:
        try:
            ticket, request = policy.approve(store, ticket_id, actor, comment)
        except DriftError as exc:
            _fail(str(exc))
        if request is None:
            approved = [r.reviewer for r in store.reviews(ticket_id)
                        if r.round == ticket.review_round and r.verdict == "approve"]
            click.echo(f"{ticket.id}: approved by {_safe(', '.join(approved))}; "
                       f"{ticket.approvals_required - len(approved)} more approval(s) needed")
            return
        click.echo(f"{ticket.id}: approved; retraining request {request.key} written to the outbox")
        _publish(config, store)


@review.command("reject", epilog=_IDENTITY_NOTE)
@click.argument("ticket_id")
@click.option("--reviewer", default=None, metavar="NAME", help="Reject for NAME (with --as-admin)  [default: you]")
@click.option("--as-admin", is_flag=True, help=_AS_ADMIN_HELP)
@click.option("--comment", required=True, help="Why the ticket is rejected.")
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              default="drift.yaml", show_default=True, type=click.Path(dir_okay=False))
def review_reject(ticket_id: str, reviewer: str | None, as_admin: bool, comment: str, config_path: str) -> None:
    """Reject a ticket under review (same roles as approve)."""
    config = _load(config_path)
    policy, actor = _actor(config, reviewer, as_admin)
    with _store(config_path) as store:
        try:
            ticket = policy.reject(store, ticket_id, actor, comment)
        except DriftError as exc:
            _fail(str(exc))
    click.echo(f"{ticket.id}: rejected by {_safe(actor.name)}")


@review.command("publish")
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              default="drift.yaml", show_default=True, type=click.Path(dir_okay=False))
def review_publish(config_path: str) -> None:
    """Send the retraining requests still in the outbox to kafka.retrain_topic."""
    config = _load(config_path)
    with _store(config_path) as store:
        if not store.retrain_requests(pending_only=True):
            click.echo("no retraining requests waiting")
            return
        _publish(config, store)


@main.group()
def audit() -> None:
    """The hash-chained audit log of every ticket and review action."""


@audit.command("verify")
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              default="drift.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.option("--require-key", is_flag=True,
              help="Exit 1 unless every entry's MAC was checked and the head is published.")
def audit_verify(config_path: str, as_json: bool, require_key: bool) -> None:
    """Check the audit log, its MACs, the published head and every ticket against the log.

    Exit 1 naming the first edited, deleted or forged entry, ticket, review or retraining
    request. With DRIFT_AUDIT_KEY unset the MACs cannot be checked: the log is reported
    unauthenticated (exit 0, or 1 with --require-key)."""
    with _store(config_path) as store:
        try:
            report = store.verify_audit()
        except DriftError as exc:
            _fail(str(exc))
    if as_json:
        _print_json(report.to_dict())
    elif report.ok:
        click.echo(f"audit log intact: {report.n_entries} entries, every ticket, review and retraining "
                   f"request as the log says")
        notes = []
        if report.n_authenticated:
            notes.append(f"{report.n_authenticated} authenticated by their MAC")
        if report.n_unauthenticated:
            notes.append(f"{report.n_unauthenticated} written without a key (unauthenticated)")
        if report.unchecked_key_ids:
            notes.append(f"MACs of key(s) {', '.join(report.unchecked_key_ids)} not checked: set DRIFT_AUDIT_KEY "
                         f"(and DRIFT_AUDIT_KEY_ID) or DRIFT_AUDIT_KEY_<ID>")
        click.echo("  " + "; ".join(notes) if notes else "  the log is empty")
        click.echo(f"  head published in {report.head} ({report.n_published} entries)" if report.head
                   else "  head: not published (tickets.audit_head), so deleting the newest entries can go unseen")
        if not report.authenticated:
            click.echo("drift: warning: the audit log is not authenticated: an insider who can write the store can "
                       "rewrite it unseen; set DRIFT_AUDIT_KEY (docs/tickets.md, Audit log)", err=True)
    if not report.ok:
        if not as_json:
            click.echo(f"drift: audit log tampered: {report.problem}", err=True)
        sys.exit(1)
    if require_key and not report.authenticated:
        sys.exit(1)


if __name__ == "__main__":
    main()
