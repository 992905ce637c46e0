"""Paging settings the dashboard shows, connected to the read model's version
(triage.readmodel): who is next in "next: level 2 — bob" (policies, their
levels and people, schedules, rotations, overrides), "held by a
maintenance window" (windows) and the header's count of cover requests
waiting for an answer (cover requests, and who is on which rotation). Page
deliveries bump in ``paging.notify``, the live paging state in
``paging.state``."""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save

from paging.models import (
    CoverRequest,
    EscalationLevel,
    EscalationPolicy,
    MaintenanceWindow,
    Override,
    Rotation,
    RotationMember,
    Schedule,
)
from triage import readmodel


def _changed(**_: object) -> None:
    # The levels and their people are cached under the settings' version
    # (paging.selectors.next_steps); bump_settings bumps what is open too.
    readmodel.bump_settings_after_commit()


def connect() -> None:
    for model in (
        CoverRequest,  # the header's badge (paging.shift_selectors.waiting_count)
        EscalationPolicy,
        EscalationLevel,
        Schedule,
        Rotation,
        RotationMember,
        Override,
        MaintenanceWindow,
    ):
        post_save.connect(_changed, sender=model, dispatch_uid=f"readmodel-save-{model}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"readmodel-del-{model}")
    for through in (EscalationLevel.users.through, EscalationLevel.schedules.through):
        m2m_changed.connect(_changed, sender=through, dispatch_uid=f"readmodel-m2m-{through}")
