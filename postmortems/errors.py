"""Domain errors of post-mortems; views turn them into clear 4xx answers."""

from __future__ import annotations

from triage.errors import DomainError


class IncidentStillOpen(DomainError):
    title = "Incident still open"


class InvalidPostMortemTransition(DomainError):
    title = "Invalid status change"


class InvalidActionItem(DomainError):
    status = 422
    title = "Invalid action item"


class FollowupConflict(DomainError):
    title = "Follow-up already recorded"


class PublishingNotAllowed(DomainError):
    status = 403
    title = "Not allowed to publish"
