"""``routing:``, ``tickets:`` and ``review:``: where tickets go, how ticket events are
delivered (Kafka, webhook), and who may act on them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from drift.config.base import Strict
from drift.duration import Duration
from drift.errors import ReviewError
from drift.identity import canonical, skeleton


class RoutingWhen(Strict):
    """Conditions of a routing rule; all given ones must hold."""

    impact: Literal["low", "medium", "high"] | None = None
    regulated: bool | None = None
    severity: Literal["warn", "alert"] | None = None
    model: str | None = None


class RoutingRule(Strict):
    """Where a ticket goes: the first rule whose ``when`` matches wins."""

    when: RoutingWhen = RoutingWhen()
    action: Literal["human_review", "ticket", "alert_only"]
    approvals: int = Field(default=1, ge=1)


class WebhookConfig(Strict):
    """A JSON POST of every ticket event (``connectors/webhook/``)."""

    url: str = Field(pattern=r"^https?://")
    token: SecretStr | None = None
    """Bearer token; give it as ``${VAR}`` so it comes from the environment."""
    spool_dir: str = "drift-webhook-spool"
    """Events wait here until the receiver accepts them (relative to the config file); one
    folder per job, shared by all its workers and processes."""
    timeout: Duration = timedelta(seconds=10)
    """Of one POST: connecting, sending and waiting for the answer."""
    max_attempts: int = Field(default=5, ge=1)
    """POSTs of one event in one delivery pass (408, 425, 429, 5xx and connection errors)."""
    backoff: Duration = timedelta(seconds=1)
    """First retry delay; it doubles on each attempt (at most a minute), plus up to as much jitter."""
    drain_interval: Duration = timedelta(seconds=5)
    """How often the delivery thread looks at the spool on its own, and the pause after a failed pass."""
    queue_size: int = Field(default=1000, ge=1)
    """Ticket events the flow hands to the delivery thread without waiting; past it they wait on disk."""
    flush_timeout: Duration = timedelta(seconds=10)
    """How long the end of a run (replay, demo, a stopped job) waits for the receiver; the rest
    stays in the spool for the next run."""


class TicketsConfig(Strict):
    """The ticket store and where ticket events go."""

    store: str = "sqlite:///./drift-tickets.db"
    audit_head: str | None = None
    """Append-only file where each audit entry's hash and MAC are published (relative to the
    config file). Default: ``PATH.audit-head`` beside a SQLite store; none for PostgreSQL."""
    sinks: list[Literal["kafka", "webhook"]] = Field(default_factory=lambda: ["kafka"])  # type: ignore[arg-type]

    webhook: WebhookConfig | None = None

    @model_validator(mode="after")
    def _webhook_configured(self) -> TicketsConfig:
        if "webhook" in self.sinks and self.webhook is None:
            raise ValueError("sinks lists webhook but tickets.webhook (url, token, ...) is not given")
        return self

    @field_validator("store")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://")):
            raise ValueError(
                f"must be a URL 'sqlite:///PATH' or 'postgresql://...'; got {value!r}"
            )
        if value.startswith("postgresql://"):
            # The password comes from the environment (PGPASSWORD or a
            # PGPASSFILE), never from the file, where it would be logged.
            netloc = value[len("postgresql://"):].split("/", 1)[0]
            query = value.partition("?")[2]
            in_query = any(part.partition("=")[0].strip().lower() == "password" for part in re.split(r"[&;]", query))
            if in_query or ("@" in netloc and ":" in netloc.rsplit("@", 1)[0]):
                raise ValueError(
                    "must not contain a password; got a URL with "
                    + ("a 'password' query parameter" if in_query else "'user:password@'")
                    + " (give the password in the PGPASSWORD environment variable or a PGPASSFILE)"
                )
        return value


ReviewRole = Literal["approve_retraining", "approve_sensitive", "resolve", "admin"]
"""What a reviewer may do: approve (or reject) retraining, do so for a sensitive ticket,
move tickets to in_progress/resolved, act for another reviewer (``--as-admin``)."""


class ReviewerConfig(Strict):
    """One person who may act on tickets, and what they may do."""

    roles: list[ReviewRole] = Field(min_length=1)


class ReviewConfig(Strict):
    """Who reviews (docs/tickets.md, Identities and roles)."""

    reviewers: dict[str, ReviewerConfig] | None = None
    """Declared reviewers by name; an undeclared name is refused. Absent: any name, no roles."""
    sensitive_features: list[str] = Field(default_factory=list)
    """Features whose tickets only reviewers with ``approve_sensitive`` may approve or reject
    (as are all tickets of models with ``impact.regulated: true``)."""

    @field_validator("reviewers")
    @classmethod
    def _distinct_people(cls, value: dict[str, ReviewerConfig] | None) -> dict[str, ReviewerConfig] | None:
        if value is None:
            return value
        seen: dict[str, str] = {}
        for name in value:
            try:
                canonical(name, "reviewer name")
            except ReviewError as exc:
                raise ValueError(str(exc)) from None
            alike = seen.get(skeleton(name))
            if alike is not None:
                raise ValueError(f"reviewers {alike!r} and {name!r} are one person: their names differ only "
                                 f"in case, width, accents or look-alike letters")
            seen[skeleton(name)] = name
        return value
