"""The Python API: what the ``drift`` commands do, as functions that return Python objects.

A config, a reference built from training data, a replay or a backtest of a file of
events, and the tickets they open, with findings and tickets as frozen dataclasses
(:class:`~drift.findings.Finding`, :class:`~drift.tickets.Ticket`) or as Arrow tables
(:func:`findings_table`, :func:`tickets_table`). Each function runs the same code as
its command (``drift replay``, ``drift backtest``, ``drift tickets``, ``drift review``);
it raises :class:`~drift.errors.DriftError` (a :class:`~drift.errors.ConfigError` for
the config) where the command prints an error, and returns what the command prints.

This module sits with the command line above the rest of the package: it imports the
dataflow (``flows``) and the connectors inside the functions that run them, so
``import drift.api`` stays as light as ``import drift.config``.

The bundled demo, from its files to a reviewed ticket:

>>> import tempfile
>>> from drift import api
>>> folder = tempfile.TemporaryDirectory()
>>> config = api.load_config(api.write_demo(folder.name))
>>> run = api.replay(config, f"{folder.name}/events.jsonl", store=config.tickets.store)
>>> run.n_events, run.n_windows, len(run.dead_letters)
(8309, 26, 9)
>>> sorted((t.detector, t.feature, t.status.value) for t in run.tickets)[:3]
[('embedding', 'embedding', 'pending_review'), ('psi', 'country', 'open'), ('psi', 'income', 'open')]
>>> table = api.findings_table(run.findings)
>>> table.num_rows, table.schema.field("window_start").type
(246, TimestampType(timestamp[us, tz=UTC]))
>>> [waiting] = api.review_queue(config)
>>> waiting.ticket.detector, waiting.ticket.approvals_required
('embedding', 2)
>>> api.approve(config, waiting.ticket.id, reviewer="alice", comment="new topic confirmed").approvals_missing
1
>>> approval = api.approve(config, waiting.ticket.id, reviewer="bob")
>>> approval.ticket.status.value, approval.retrain_request is not None
('approved', True)
>>> null_rate = next(t for t in run.tickets if t.detector == "quality.null_rate")
>>> api.move_ticket(config, null_rate.id, "in_progress", by="carol").status.value
'in_progress'
>>> folder.cleanup()
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
import pyarrow as pa

from drift.config import Config
from drift.config import load_config as _load_config
from drift.events import DeadLetter
from drift.findings import Finding
from drift.reference import ReferenceProfile
from drift.tickets import RetrainRequest, Ticket, TicketEvent, TicketStatus

if TYPE_CHECKING:
    from drift.tickets.review import Actor, PendingReview, ReviewPolicy
    from drift.tickets import TicketStore
    from flows.runner import RunResult

__all__ = [
    "Approval",
    "Backtest",
    "ConfigLike",
    "FINDINGS_SCHEMA",
    "Run",
    "TICKETS_SCHEMA",
    "approve",
    "backtest",
    "build_reference",
    "event_schema",
    "findings_table",
    "load_config",
    "move_ticket",
    "reject",
    "replay",
    "request_review",
    "review_queue",
    "ticket",
    "tickets",
    "tickets_table",
    "write_demo",
]

ConfigLike = Config | str | os.PathLike[str]
"""A loaded :class:`~drift.config.Config`, or the path of its YAML file."""

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- config and reference


def write_demo(folder: PathLike, scenario: Literal["default", "rollout"] = "default") -> Path:
    """Write the bundled demo into ``folder``; return the path of its ``drift.yaml``.

    The folder gets what ``drift demo`` writes before it runs: the config, the training
    data (``reference.parquet``, ``doc-reference.parquet``) and three hours of events
    (``events.jsonl``), all generated from a fixed seed (:mod:`drift.demo`).
    ``scenario="rollout"`` writes ``drift demo --scenario rollout`` instead: predictions
    and their delayed labels, a quality SLO and a canary (:mod:`drift.demo.rollout`).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_demo(folder)
    ...     sorted(p.name for p in path.parent.iterdir())
    ['doc-reference.parquet', 'drift.yaml', 'events.jsonl', 'reference.parquet']
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_demo(folder, "rollout")
    ...     sorted(p.name for p in path.parent.iterdir())
    ['drift.yaml', 'events.jsonl', 'fraud-reference.parquet']
    """
    from connectors.files import write_jsonl
    from drift import demo
    from drift.demo import rollout

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    config = target / "drift.yaml"
    if scenario == "rollout":
        config.write_text(rollout.CONFIG, encoding="utf-8")
        rollout.write_reference(target)
        write_jsonl(target / "events.jsonl", rollout.events().lines)
        return config
    if scenario != "default":
        raise ValueError(f"scenario must be 'default' or 'rollout'; got {scenario!r}")
    config.write_text(demo.config_text(), encoding="utf-8")
    demo.write_references(target)
    write_jsonl(target / "events.jsonl", demo.events().lines)
    return config


def load_config(path: PathLike, *, check_references: bool = False) -> Config:
    """Read and validate the YAML config at ``path`` (``drift validate`` without the printing).

    Every error of the file is collected into one :class:`~drift.errors.ConfigError`, whose
    ``messages`` name the YAML path and line of each. With ``check_references`` each
    model's reference Parquet is opened (its schema only) to check that every feature is a
    column of a type that can hold it. Relative paths in the file (references, baselines,
    the SQLite ticket store) are resolved against the file's folder.

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     config = load_config(write_demo(folder), check_references=True)
    ...     bad = Path(folder, "bad.yaml")
    ...     _ = bad.write_text("version: 1\\nmodels: []\\nextra: 1\\n")
    ...     try:
    ...         load_config(bad)
    ...     except Exception as exc:
    ...         print(type(exc).__name__, len(exc.messages) >= 1)
    ConfigError True
    >>> [m.name for m in config.models]
    ['credit-risk', 'doc-classifier', 'credit-limit']
    """
    return _load_config(str(path), check_references=check_references)


def _config(config: ConfigLike) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def build_reference(config: ConfigLike, model: str, parquet: PathLike | None = None, *,
                    save: bool = False) -> ReferenceProfile:
    """Profile ``model``'s features from a Parquet file of its training data.

    ``parquet`` defaults to the model's ``reference.parquet`` in the config. The profile
    holds each feature's bins (quantile edges of a numeric feature, the categories of a
    categorical one) and the reference's share per bin; every window is binned with the
    same edges. With ``save`` it is stored in ``baselines.dir``, as ``drift baseline build``
    does (with the model's reference embeddings, if it has an embedding detector), so the
    next run reads it instead of building it again.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     profile = build_reference(write_demo(folder), "credit-risk")
    >>> profile.n_rows, sorted(profile.features)
    (20000, ['age', 'country', 'income'])
    >>> profile.features["income"].n_bins
    10
    """
    from drift.errors import ConfigError
    from drift.reference import save_reference
    from flows.runner import build_model_embeddings, build_model_reference

    loaded = _config(config)
    try:
        spec = loaded.model(model)
    except KeyError:
        raise ConfigError([f"model {model!r} is not in the config; models: "
                           f"{[m.name for m in loaded.models]}"]) from None
    if parquet is not None:
        source = Path(parquet)
    elif spec.reference is not None:
        source = loaded.resolve(spec.reference.parquet)
    else:
        raise ConfigError([f"model {model!r} has no reference.parquet in the config; give parquet=PATH"])
    profile = build_model_reference(loaded, spec, source)
    if save:
        save_reference(profile, loaded.resolve(loaded.baselines.dir))
        build_model_embeddings(loaded, spec, source)
    return profile


def event_schema(kind: Literal["inference", "feature"] = "inference") -> dict[str, Any]:
    """The JSON Schema of an inference (default) or feature event, as ``drift schema`` prints it.

    >>> schema = event_schema()
    >>> sorted(schema["required"])
    ['features', 'model', 'ts']
    """
    from drift.schemas import schema

    return schema(kind)


# --------------------------------------------------------------------------- replay and backtest


@dataclass(frozen=True)
class Run:
    """What a replay produced: every finding, the ticket events, the dead letters.

    ``findings`` holds every cohort window's result, ``ok`` ones included (filter on
    ``severity``); ``ticket_events`` each change to a ticket in the order it happened and
    :attr:`tickets` each ticket as it stood at the end; ``dead_letters`` every message that
    could not be used (late ones included), with its reason and original bytes.
    """

    _result: RunResult = field(repr=False)

    @property
    def findings(self) -> list[Finding]:
        return list(self._result.findings)

    @property
    def ticket_events(self) -> list[TicketEvent]:
        return list(self._result.tickets)

    @property
    def tickets(self) -> list[Ticket]:
        """Each ticket the run opened or updated, as it stood at the end, by id."""
        latest: dict[str, Ticket] = {}
        for event in self._result.tickets:
            latest[event.ticket.id] = event.ticket
        return list(latest.values())  # in the order they were opened

    @property
    def dead_letters(self) -> list[DeadLetter]:
        return list(self._result.dlq)

    @property
    def quality(self) -> list[dict[str, Any]]:
        """The quality of each cohort window of a model with ``labels:``, judged on its delayed
        labels (or still waiting when the input ended: ``judged`` False), as ``drift replay
        --json`` lists it: label coverage, the metrics of the model's kind, the reliability table."""
        return list(self.to_dict()["quality"])

    @property
    def halts(self) -> list[Finding]:
        """The canary halt signals (``canary.halt`` findings at alert), as ``kafka.halt_topic`` gets them."""
        return list(self._result.halts)

    @property
    def n_windows(self) -> int:
        """Cohort windows closed and scored."""
        return len(self._result.windows)

    @property
    def n_events(self) -> int:
        """Messages read: inference and feature events, decoded or not."""
        count: int = self.to_dict()["events"]
        return count

    def findings_table(self, *, at_least: Literal["ok", "warn", "alert"] = "ok") -> pa.Table:
        """The findings as an Arrow table (:func:`findings_table`), those at ``at_least`` or worse."""
        order = {"ok": 0, "warn": 1, "alert": 2}
        return findings_table(f for f in self._result.findings if order[f.severity.value] >= order[at_least])

    def tickets_table(self) -> pa.Table:
        """:attr:`tickets` as an Arrow table (:func:`tickets_table`)."""
        return tickets_table(self.tickets)

    def what_if(self, factors: Sequence[float] | None = None) -> list[dict[str, Any]]:
        """Per detector, the windows that would alert with each alert level made ``factor``
        times as strict (1: the config as it is), without running again.

        Rows hold ``detector``, ``factor``, ``n_alert_findings`` (cohort windows that
        alert), ``n_series`` (cohort and feature pairs among them) and ``alert_level``.
        """
        from drift.report import what_if

        rows: list[dict[str, Any]] = (what_if(self._result.findings) if factors is None
                                      else what_if(self._result.findings, factors=tuple(factors)))
        return rows

    def to_dict(self, all_findings: bool = False) -> dict[str, Any]:
        """The document ``drift replay --json`` prints (findings at warn or alert unless
        ``all_findings``; dead letters counted by reason)."""
        document: dict[str, Any] = self._result.to_dict(all_findings=all_findings)
        return document


@dataclass(frozen=True)
class Backtest(Run):
    """A replay with the tickets kept aside, the *what if* table, and the report's path."""

    report: Path | None = None
    """The HTML report, when one was asked for."""

    def to_dict(self, all_findings: bool = False) -> dict[str, Any]:
        """``drift replay --json``'s document plus the ``what_if`` table (as ``drift backtest --json``,
        without the report's sections)."""
        return {**super().to_dict(all_findings), "what_if": self.what_if(),
                "report": None if self.report is None else str(self.report)}


def _with_store(config: Config, store: str) -> Config:
    """``config`` whose tickets go to ``store`` (:meth:`Config.with_ticket_store`); a store that
    is not one raises :class:`~drift.errors.ConfigError`."""
    from drift.errors import ConfigError

    try:
        return config.with_ticket_store(store)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None


def replay(config: ConfigLike, events: PathLike, *, store: str | None = None,
           progress: Callable[[int], None] | None = None) -> Run:
    """Run the live dataflow over a JSONL or Parquet file of events (``drift replay``).

    Tickets go to a scratch store, discarded at the end, unless ``store`` names one
    (``sqlite:///PATH``, relative to the current folder, or ``postgresql://...``;
    ``config.tickets.store`` is the config's own store, with its sinks). A store records
    each alerting window once, so replaying the same file into it again opens and
    updates nothing. A stored reference profile is used; a
    missing one is built from the model's ``reference.parquet`` and stored, as
    ``drift run`` does. ``progress`` is called with the number of lines (rows) read
    after each batch.
    """
    from flows.runner import run_history

    loaded = _config(config)
    if store is not None:
        loaded = _with_store(loaded, store)
    return Run(run_history(loaded, Path(events), store=None if store is None else loaded.tickets.store,
                           progress=progress))


def backtest(config: ConfigLike, events: PathLike, *, report: PathLike | None = None,
             title: str | None = None, baseline_features: Sequence[str] = (), store: str | None = None,
             progress: Callable[[int], None] | None = None, top_k: int | None = None) -> Backtest:
    """What ``config`` would have done over a file of history (``drift backtest``).

    The same run as :func:`replay`, with the tickets in a scratch store unless ``store``
    names one. With ``report`` the self-contained HTML report is written there; it reads
    the file once more for the seasonal baseline (``baseline_features``: ``FEATURE`` or
    ``MODEL:FEATURE``, default the top drifting numeric feature of a model with a seasonal
    baseline) and the embedding projections; ``top_k``: series drawn at first per cohort in its
    timelines (default as ``drift backtest --top-k``). The report needs the ``report`` extra:
    without it a :class:`~drift.errors.DriftError` names the install command, before the run.

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     result = backtest(write_demo(folder), Path(folder, "events.jsonl"), report=Path(folder, "report.html"))
    ...     size = result.report.stat().st_size
    >>> sorted({t.detector for t in result.tickets})
    ['embedding', 'psi', 'quality.null_rate', 'skew.value']
    >>> psi = {r["factor"]: r["n_alert_findings"] for r in result.what_if([1, 4]) if r["detector"] == "psi"}
    >>> psi[1.0] > psi[4.0]
    True
    >>> size > 10_000
    True
    """
    from drift.errors import ConfigError
    from flows.backtest import history_sections, resolve_baseline_features, run_backtest, write_report

    if report is not None:
        from drift.report import require_report_dependencies

        require_report_dependencies()  # the report is written after the run: fail before it
    loaded = _config(config)
    chosen = None
    if baseline_features:
        try:
            chosen = resolve_baseline_features(loaded, list(baseline_features))
        except ValueError as exc:
            raise ConfigError([str(exc)]) from None
    path = Path(events)
    if store is not None:
        loaded = _with_store(loaded, store)
    result = run_backtest(loaded, path, progress=progress, store=None if store is None else loaded.tickets.store)
    written = None
    if report is not None:
        sections = history_sections(loaded, result, path, chosen)
        written = Path(report)
        shown = {} if top_k is None else {"top_k": top_k}
        write_report(result, written, title=title or f"drift backtest: {path.name}", sections=sections, **shown)
    return Backtest(result, report=written)


# --------------------------------------------------------------------------- tickets and review


def _store(config: Config, store: str | None) -> TicketStore:
    from connectors.ticket_store import open_store

    return open_store(config if store is None else _with_store(config, store))


def tickets(config: ConfigLike, *, status: TicketStatus | str | None = None,
            store: str | None = None) -> list[Ticket]:
    """The tickets in the store (``drift tickets list``), oldest first.

    ``store`` defaults to the config's ``tickets.store``; ``status`` keeps one status
    (``open``, ``pending_review``, ``approved``, ``rejected``, ``in_progress``, ``resolved``).
    """
    wanted = None if status is None else TicketStatus(status)
    with _store(_config(config), store) as opened:
        return opened.list(wanted)


def ticket(config: ConfigLike, ticket_id: str, *, store: str | None = None) -> Ticket:
    """One ticket of the store by id (``DRIFT-4``); :class:`~drift.errors.DriftError` if there is none."""
    with _store(_config(config), store) as opened:
        return opened.get(ticket_id)


def review_queue(config: ConfigLike, *, store: str | None = None) -> list[PendingReview]:
    """Tickets waiting for review, oldest first, with this round's approvers (``drift review list``)."""
    from drift.tickets.review import pending_reviews

    with _store(_config(config), store) as opened:
        return pending_reviews(opened)


@dataclass(frozen=True)
class Approval:
    """A ticket after an approval, and the retraining request the last approval needed emits."""

    ticket: Ticket
    retrain_request: RetrainRequest | None
    approved_by: list[str]
    """Distinct approvers of the ticket's current review round."""

    @property
    def approvals_missing(self) -> int:
        return max(0, self.ticket.approvals_required - len(self.approved_by))


def _actor(config: Config, person: str | None) -> tuple[ReviewPolicy, Actor]:
    """The review policy and the person acting: ``person``, else ``$DRIFT_REVIEWER`` or the OS user.

    A name given here counts as the caller's own identity, as ``DRIFT_REVIEWER`` does for
    a command; the policy's checks (declared reviewers, roles, the job's identity) apply.
    """
    from drift.tickets.review import REVIEWER_ENV, ReviewPolicy

    policy = ReviewPolicy.from_config(config)
    return policy, policy.actor(None, False, None if person is None else {REVIEWER_ENV: person})


def request_review(config: ConfigLike, ticket_id: str, *, requester: str | None = None,
                   approvals: int | None = None, store: str | None = None) -> Ticket:
    """Send an open (or rejected) ticket to review (``drift review request``).

    ``requester`` (default: ``$DRIFT_REVIEWER``, else the OS user) cannot approve it;
    ``approvals`` distinct approvers are needed (default: the ticket's).
    """
    loaded = _config(config)
    policy, actor = _actor(loaded, requester)
    with _store(loaded, store) as opened:
        return policy.request(opened, ticket_id, actor, approvals)


def approve(config: ConfigLike, ticket_id: str, *, reviewer: str | None = None, comment: str | None = None,
            store: str | None = None) -> Approval:
    """Approve a ticket under review (``drift review approve``), as ``reviewer``.

    ``reviewer`` defaults to ``$DRIFT_REVIEWER``, else the OS user; it needs the
    ``approve_retraining`` role (``approve_sensitive`` for a sensitive ticket) when the
    config declares ``review.reviewers``, and is never the requester. The approval that
    completes the count moves the ticket to ``approved`` and writes its retraining request
    to the store's outbox (``drift review publish`` sends it to Kafka).
    """
    loaded = _config(config)
    policy, actor = _actor(loaded, reviewer)
    with _store(loaded, store) as opened:
        updated, request = policy.approve(opened, ticket_id, actor, comment)
        approved = [r.reviewer for r in opened.reviews(ticket_id)
                    if r.round == updated.review_round and r.verdict == "approve"]
    return Approval(updated, request, approved)


def reject(config: ConfigLike, ticket_id: str, *, comment: str, reviewer: str | None = None,
           store: str | None = None) -> Ticket:
    """Reject a ticket under review, saying why (``drift review reject``; roles as :func:`approve`)."""
    loaded = _config(config)
    policy, actor = _actor(loaded, reviewer)
    with _store(loaded, store) as opened:
        return policy.reject(opened, ticket_id, actor, comment)


def move_ticket(config: ConfigLike, ticket_id: str, status: Literal["in_progress", "resolved"], *,
                by: str | None = None, comment: str | None = None, store: str | None = None) -> Ticket:
    """Acknowledge a ticket (``in_progress``) or resolve it (``drift tickets move``).

    ``by`` defaults to ``$DRIFT_REVIEWER``, else the OS user; it needs the ``resolve``
    role when the config declares ``review.reviewers``.
    """
    loaded = _config(config)
    policy, actor = _actor(loaded, by)
    with _store(loaded, store) as opened:
        return policy.move(opened, ticket_id, status, actor, comment)


# --------------------------------------------------------------------------- Arrow tables

_TS = pa.timestamp("us", tz="UTC")
_LABELS = pa.map_(pa.string(), pa.string())

FINDINGS_SCHEMA = pa.schema([
    ("model", pa.string()), ("cohort_key", pa.string()), ("cohort", _LABELS),
    ("detector", pa.string()), ("feature", pa.string()),
    ("window_start", _TS), ("window_end", _TS),
    ("severity", pa.string()), ("value", pa.float64()), ("warn", pa.float64()), ("alert", pa.float64()),
    ("p_value", pa.float64()), ("q_value", pa.float64()),
    ("n_current", pa.int64()), ("n_reference", pa.int64()), ("baseline", pa.string()),
    ("skipped", pa.string()), ("fingerprint", pa.string()), ("evidence", pa.string()),
])
"""Columns of :func:`findings_table`: one row per finding; ``cohort`` maps each label to its
value, ``evidence`` is the detector's evidence as JSON text."""

TICKETS_SCHEMA = pa.schema([  # cohort: the labels, as in FINDINGS_SCHEMA
    ("id", pa.string()), ("status", pa.string()), ("action", pa.string()), ("severity", pa.string()),
    ("model", pa.string()), ("cohort_key", pa.string()), ("cohort", _LABELS),
    ("detector", pa.string()), ("feature", pa.string()),
    ("first_window_start", _TS), ("last_window_end", _TS), ("opened_at", _TS), ("updated_at", _TS),
    ("resolved_at", _TS), ("occurrences", pa.int64()), ("worst_value", pa.float64()),
    ("last_value", pa.float64()), ("active", pa.bool_()), ("suppressed", pa.int64()),
    ("requester", pa.string()), ("approvals_required", pa.int64()), ("review_round", pa.int64()),
    ("fingerprint", pa.string()),
])
"""Columns of :func:`tickets_table`: one row per ticket."""


def findings_table(findings: Iterable[Finding]) -> pa.Table:
    """Findings as an Arrow table (:data:`FINDINGS_SCHEMA`), in the order given.

    >>> from datetime import datetime, timezone
    >>> from drift.findings import Cohort, Severity, Window
    >>> start = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)
    >>> finding = Finding(
    ...     detector="psi", cohort=Cohort("credit-risk", (("tenant", "globex"),)),
    ...     window=Window(start, start.replace(minute=59)), feature="income", value=0.91,
    ...     severity=Severity.ALERT, warn=0.1, alert=0.25, n_current=500, n_reference=20000,
    ...     baseline="reference")
    >>> table = findings_table([finding])
    >>> table.column("cohort_key").to_pylist(), table.column("severity").to_pylist()
    (['credit-risk|tenant=globex'], ['alert'])
    >>> table.column("cohort").to_pylist()
    [[('tenant', 'globex')]]
    >>> findings_table([]).num_rows
    0
    """
    rows = [{
        "model": f.cohort.model, "cohort_key": f.cohort.key, "cohort": list(f.cohort.labels),
        "detector": f.detector, "feature": f.feature, "window_start": f.window.start, "window_end": f.window.end,
        "severity": f.severity.value, "value": f.value, "warn": f.warn, "alert": f.alert,
        "p_value": f.p_value, "q_value": f.q_value, "n_current": f.n_current, "n_reference": f.n_reference,
        "baseline": f.baseline, "skipped": f.skipped, "fingerprint": f.fingerprint,
        "evidence": orjson.dumps(dict(f.evidence), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
                                 default=str).decode(),
    } for f in findings]
    return pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA)


def tickets_table(tickets: Iterable[Ticket]) -> pa.Table:
    """Tickets as an Arrow table (:data:`TICKETS_SCHEMA`), in the order given."""
    rows = [{
        "id": t.id, "status": t.status.value, "action": str(t.action), "severity": t.severity.value,
        "model": t.model, "cohort_key": t.cohort_key, "cohort": [(k, v) for k, v in t.cohort.items() if k != "model"],
        "detector": t.detector, "feature": t.feature, "first_window_start": t.first_window_start,
        "last_window_end": t.last_window_end, "opened_at": t.opened_at, "updated_at": t.updated_at,
        "resolved_at": t.resolved_at, "occurrences": t.occurrences, "worst_value": t.worst_value,
        "last_value": t.last_value, "active": t.active, "suppressed": t.suppressed, "requester": t.requester,
        "approvals_required": t.approvals_required, "review_round": t.review_round, "fingerprint": t.fingerprint,
    } for t in tickets]
    return pa.Table.from_pylist(rows, schema=TICKETS_SCHEMA)
