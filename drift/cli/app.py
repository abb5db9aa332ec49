"""The ``drift`` command group and what every command shares: loading the config, failing
with a clear message and an exit status, printing JSON and tables safely, the run summary."""


from __future__ import annotations

import os
import re
import sys
from typing import Any, NoReturn

import click
import orjson

from drift.config import Config, load_config
from drift.errors import ConfigError
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


_QUALITY_COLUMNS = {"binary": ("precision", "recall", "ece"), "multiclass": ("accuracy", "f1"),
                    "regression": ("mae", "rmse")}


def _print_quality(quality: list[dict[str, Any]]) -> None:
    """Label quality per cohort window (models with ``labels:``): counts, then the judged windows."""
    judged = [q for q in quality if q["judged"]]
    by = {reason: sum(q["judged_by"] == reason for q in judged) for reason in ("coverage", "horizon")}
    click.echo(f"\nlabel quality: {len(judged)} cohort windows judged ({by['coverage']} at the coverage gate, "
               f"{by['horizon']} at the horizon), {len(quality) - len(judged)} waiting for labels")
    shown = judged[:FINDINGS_SHOWN]
    if shown:
        def number(value: Any) -> str:
            return "-" if value is None else f"{value:.3f}"

        click.echo(_table(
            [[q["cohort_key"], q["window_start"][11:16] + "-" + q["window_end"][11:16], q["judged_by"],
              f"{q['n_labelled']}/{q['n_predictions']}",
              " ".join(f"{name}={number(q[name])}" for name in _QUALITY_COLUMNS[q["kind"]])] for q in shown],
            ["cohort", "window", "judged", "labelled", "quality"],
        ))
        if len(judged) > len(shown):
            click.echo(f"{len(shown)} of {len(judged)} shown; --json lists them all")


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
    halts = document.get("halts", [])
    if halts:
        click.echo(f"\ncanary halts: {len(halts)}")
        click.echo(_table(
            [[h["cohort_key"], ", ".join(str(f["field"]) for f in h["evidence"]["fields"]),
              h["window_start"][11:16] + "-" + h["window_end"][11:16]] for h in halts],
            ["route cohort", "fields", "window"],
        ))
    quality = document.get("quality", [])
    if quality:
        _print_quality(quality)
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
