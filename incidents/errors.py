"""The incident rules a service can refuse a request for (see triage.errors)."""

from __future__ import annotations

from triage.errors import DomainError


class InvalidTransition(DomainError):
    title = "Invalid status change"


class IdempotencyConflict(DomainError):
    status = 422
    title = "Idempotency key reused with a different request"


class DuplicateOpenIncident(DomainError):
    title = "An open incident already has this dedup key"


class NoEscalationPolicy(DomainError):
    title = "Nobody to escalate to"
