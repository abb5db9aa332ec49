"""``drift tickets`` and ``drift review``: the ticket store from the command line."""

from __future__ import annotations

import sys
from typing import Any

import click

from drift.config import Config
from drift.errors import DriftError
from drift.redaction import redact
from drift.cli.app import EXIT_CONFIG, _fail, _load, _print_json, _safe, _table, main


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
    if ticket.get("drift_started") or ticket.get("detected_at"):
        lines.append(f"  timeline    drift started {ticket.get('drift_started') or '-'}, detected "
                     f"{ticket.get('detected_at') or '-'}, recovered {ticket.get('recovered') or '-'} (event time); "
                     f"opened {ticket['opened_at']}, acknowledged {ticket.get('acknowledged_at') or '-'}, "
                     f"resolved {ticket.get('resolved_at') or '-'}")
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
