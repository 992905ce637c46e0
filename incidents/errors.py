"""Domain errors raised by services; views turn them into clear 4xx answers."""

from __future__ import annotations


class DomainError(Exception):
    status = 409
    title = "Conflict"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidTransition(DomainError):
    title = "Invalid status change"


class IdempotencyConflict(DomainError):
    status = 422
    title = "Idempotency key reused with a different request"


class DuplicateOpenIncident(DomainError):
    title = "An open incident already has this dedup key"


class NoEscalationPolicy(DomainError):
    title = "Nobody to escalate to"
