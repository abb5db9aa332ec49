"""``drift drill``: a game day, a history replayed with a drift injected (flows/drill.py)."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import click

from drift.cli.app import (
    EXIT_CONFIG, EXIT_NOTHING_DECODED, FINDINGS_SHOWN, _fail, _load, _print_json, _safe, _table, main,
)
from drift.cli.runs import _STORE_HELP, _with_store
from drift.errors import DriftError
from drift.redaction import redact

EXIT_UNDETECTED = 1
"""``drill``: some drilled cohort and feature never reached alert."""


def _parse_at(text: str) -> datetime | timedelta:
    """``--at``: RFC 3339 with an offset, or ``+DURATION`` after the window of the model's first event."""
    from drift.duration import parse_duration

    if text.startswith("+"):
        try:
            return parse_duration(text[1:])
        except ValueError as exc:
            _fail(f"--at {exc}", EXIT_CONFIG)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--at must be an RFC 3339 time with an offset (2026-11-02T09:30:00Z) or +DURATION after the "
              f"start of the history's first window (+90m); got {text!r}", EXIT_CONFIG)
    if moment.tzinfo is None:
        _fail(f"--at needs a UTC offset (2026-11-02T09:30:00Z), as event times do; got {text!r}", EXIT_CONFIG)
    return moment


@main.command()
@click.option("--config", "config_path", envvar="DRIFT_CONFIG", show_envvar=True,
              required=True, type=click.Path(dir_okay=False))
@click.option("--events", required=True, type=click.Path(dir_okay=False, exists=True),
              help="JSONL or Parquet file of inference events: the history to drill.")
@click.option("--model", "model_name", default=None, metavar="NAME",
              help="The drilled model  [default: the config's only model]")
@click.option("--at", "at_text", required=True, metavar="TIME",
              help="When the drift starts: RFC 3339 with an offset, or +DURATION after the start of the window "
                   "holding the model's first event.")
@click.option("--cohort", "cohorts", multiple=True, metavar="LABEL=VALUE[,LABEL=VALUE]",
              help="Drill the cohorts whose labels match (repeatable)  [default: every cohort]")
@click.option("--feature", "features", multiple=True, required=True, metavar="NAME",
              help="A feature of the model to drill (repeatable).")
@click.option("--shift", required=True, type=float,
              help="Numeric features: reference standard deviations added (--scale std) or share of the value "
                   "added (--scale share); categorical features: share (0..1) of values replaced.")
@click.option("--scale", type=click.Choice(["std", "share"]), default="std", show_default=True,
              help="Unit of --shift for numeric features.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the draws that pick which categorical values are replaced.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--store", "store", default=None, metavar="URL", help=_STORE_HELP)
def drill(config_path: str, events: str, model_name: str | None, at_text: str, cohorts: tuple[str, ...],
          features: tuple[str, ...], shift: float, scale: str, seed: int, as_json: bool, store: str | None) -> None:
    """Replay a history with a drift injected (a game day); report the time to detect and the tickets.

    From --at on, the events of the chosen cohorts of the model get the drift in each --feature;
    the drilled history runs through the live dataflow as in `drift replay`. Exit status 0 when
    every drilled cohort and feature reached alert, 1 when some did not, 2 for a usage error.
    """
    from flows.drill import DrillError, DrillSpec, NothingToDrill, parse_cohort
    from flows.drill import drill as run_drill
    config = _load(config_path)
    if model_name is None:
        if len(config.models) != 1:
            _fail(f"--model is needed: the config has {len(config.models)} models "
                  f"({', '.join(m.name for m in config.models)})", EXIT_CONFIG)
        model_name = config.models[0].name
    filters = []
    for text in cohorts:
        try:
            filters.append(parse_cohort(text))
        except ValueError as exc:
            _fail(f"--cohort {exc}", EXIT_CONFIG)
    spec = DrillSpec(model=model_name, at=_parse_at(at_text), features=tuple(dict.fromkeys(features)),
                     shift=shift, cohorts=tuple(filters), scale="share" if scale == "share" else "std", seed=seed)
    if store is not None:
        config = _with_store(config, store)
    progress = _Phases(Path(events))
    try:
        result = run_drill(config, spec, Path(events), store=None if store is None else config.tickets.store,
                           progress=progress)
    except NothingToDrill as exc:
        _fail(str(exc), EXIT_NOTHING_DECODED)
    except DrillError as exc:
        _fail(str(exc), EXIT_CONFIG)
    except (DriftError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    finally:
        progress.close()
    document = result.to_dict()
    if as_json:
        _print_json(document)
    else:
        _print_drill(document)
        click.echo(f"\nticket store: {redact(config.tickets.store)}" if store is not None else
                   "\nticket store: a scratch store, now discarded (--store URL keeps the tickets)")
    if not document["detected"]:
        missed = document["undetected"]
        shown = ", ".join(f"{_safe(m['feature'])} in {_safe(m['cohort_key'])}" for m in missed[:5])
        click.echo(redact(f"drift: drill: {len(missed)} of {len(document['detections'])} drilled cohort "
                          f"feature(s) not detected at alert: {shown}" + (" ..." if len(missed) > 5 else "")),
                   err=True)
        sys.exit(EXIT_UNDETECTED)


class _Phases:
    """A progress line per phase of the drill (reading the history, replaying it), on a terminal only."""

    def __init__(self, events: Path) -> None:
        self._events = events
        self._shown = False

    def __call__(self, phase: str) -> Callable[[int], None] | None:
        from flows.progress import progress_for

        self.close()
        progress = progress_for(self._events, label=f"drill: {phase}")
        self._shown = progress is not None
        return progress

    def close(self) -> None:
        """End the current progress line."""
        if self._shown:
            click.echo("", err=True)
            self._shown = False


_RELATION = {"drilled_cohort": "drilled", "rollup_of_drilled": "rollup of drilled", "other": "-"}


def _hit_text(hit: dict[str, Any] | None) -> str:
    if hit is None:
        return "-"
    return f"{hit['window_start'][11:16]}-{hit['window_end'][11:16]} ({hit['n_windows']} w, {hit['time_to_detect']})"


def _print_drill(document: dict[str, Any]) -> None:
    injection = document["injection"]
    click.echo(f"drift drill: model {_safe(injection['model'])} from {injection['at']} "
               f"(history {injection['history_start']} .. {injection['history_end']}, "
               f"windows of {injection['window']})")
    click.echo(f"cohorts drilled: {len(injection['cohorts'])}: " + ", ".join(_safe(c) for c in injection["cohorts"]))
    click.echo(f"events drilled: {injection['n_events']}, changed: {injection['n_events_changed']}")
    for feature in injection["features"]:
        if feature["type"] == "categorical":
            how = f"{injection['shift']:.0%} of values replaced by {feature['replacement']!r}"
        elif injection["scale"] == "std":
            how = f"{injection['shift']:+g} std ({feature['delta']:+.4g}, reference std {feature['std']:.4g})"
        else:
            how = f"x{1 + injection['shift']:g}"
        click.echo(f"  {_safe(feature['name'])} ({feature['type']}): {_safe(how)}; "
                   f"{feature['n_changed']} of {feature['n_carried']} values changed")
    run = document["run"]
    click.echo(f"run: events {run['events']}  decoded {run['decoded']}  late {run['late']}  "
               f"dead letters {run['dlq']['total']}  windows {run['windows']}")
    click.echo("\ndetection (time to detect: from --at to the end of the window; w: windows from the one "
               "holding --at):")
    rows = []
    for d in document["detections"]:
        ticket = d["ticket"]
        ticket_text = "-" if ticket is None else (
            f"{ticket['id']} {ticket['kind']} -> {ticket['action']} ({ticket['status']})")
        rows.append([d["cohort_key"], d["feature"], _hit_text(d["first_warn"]), _hit_text(d["first_alert"]),
                     ",".join(d["first_alert"]["detectors"]) if d["first_alert"] else "-", ticket_text,
                     _hit_text(ticket)])
    click.echo(_table(rows, ["cohort", "feature", "first warn", "first alert", "by", "ticket", "ticket window"]))
    undetected = document["undetected"]
    if undetected:
        click.echo(f"\nnot detected at alert: {len(undetected)}")
        for item in undetected:
            warned = " (reached warn)" if item["warned"] else ""
            click.echo(f"  {_safe(item['feature'])} in {_safe(item['cohort_key'])}{warned}")
    elsewhere = document["elsewhere"]
    findings, tickets = elsewhere["findings"], elsewhere["tickets"]
    click.echo(f"\nelsewhere during the drill (not a drilled cohort and feature): {len(findings)} finding(s) at "
               f"warn or alert, {len(tickets)} ticket event(s)")
    if findings:
        rollups = sum(f["relation"] == "rollup_of_drilled" for f in findings)
        if rollups:
            click.echo(f"{rollups} of the findings are of rollups that sum a drilled cohort (the drift, summed)")
        shown = findings[:FINDINGS_SHOWN]
        click.echo(_table(
            [[f["severity"], f["detector"], f["cohort_key"], f["feature"] or "-", f"{f['value']:.3f}",
              f["window_start"][11:16] + "-" + f["window_end"][11:16], _RELATION[f["relation"]]] for f in shown],
            ["severity", "detector", "cohort", "feature", "value", "window", "cohort is"],
        ))
        if len(findings) > len(shown):
            click.echo(f"{len(shown)} of {len(findings)} shown; --json lists them all")
    if tickets:
        click.echo(_table(
            [[t["kind"], t["id"], t["action"], t["detector"], t["cohort_key"], t["feature"] or "-",
              t["window_end"][11:16], _RELATION[t["relation"]]] for t in tickets],
            ["event", "ticket", "routing", "detector", "cohort", "feature", "window end", "cohort is"],
        ))
