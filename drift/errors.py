"""The exceptions drift raises: one root, a few kinds."""

from __future__ import annotations


class DriftError(Exception):
    """Root of every error drift raises on purpose."""


class ConfigError(DriftError):
    """The configuration file is invalid.

    ``messages`` holds one line per problem, each in the shape
    ``drift.yaml:14:9 models[0].detectors[1].psi.bins: must be ... ; got 1``.
    """

    def __init__(self, messages: list[str]) -> None:
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


class ReferenceDataError(DriftError):
    """Reference (training) data cannot be read or summarised."""


class BaselineError(DriftError):
    """A stored baseline is missing, unreadable or does not match the config."""


class TicketStoreError(DriftError):
    """The ticket store cannot be opened or written."""


class TransitionError(TicketStoreError):
    """A ticket cannot move from its status to the one asked for."""


class ReviewError(TicketStoreError):
    """A review action breaks a review rule (requester approving, approving twice, ...)."""
