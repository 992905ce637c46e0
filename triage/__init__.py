"""triage: an on-call and incident service."""

from triage.celery import app as celery_app

__all__ = ["celery_app"]
