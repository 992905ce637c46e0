"""Database constraints of post-mortems and action items: rules that hold
whatever code writes the rows."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from postmortems.models import ActionItem, PostMortem
from tests.postmortem_factories import action_item, postmortem

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "change",
    [
        {"status": "archived"},
        {"severity": "sev0"},
        {"status": "published"},  # without a publication time
        {"published_at": timezone.now()},  # a draft with a publication time
        {"root_cause_chain": {"not": "a list"}},
    ],
)
def test_the_database_refuses_an_invalid_post_mortem(change: dict[str, Any]) -> None:
    pm = postmortem()
    with pytest.raises(IntegrityError), transaction.atomic():
        PostMortem.objects.filter(pk=pm.pk).update(**change)


def test_a_post_mortem_cannot_end_before_it_starts() -> None:
    pm = postmortem()
    with pytest.raises(IntegrityError), transaction.atomic():
        PostMortem.objects.filter(pk=pm.pk).update(ended_at=pm.started_at - timezone.timedelta(1))


def test_one_incident_has_at_most_one_post_mortem() -> None:
    pm = postmortem()
    with pytest.raises(IntegrityError), transaction.atomic():
        PostMortem.objects.create(
            incident=pm.incident,
            slug="another",
            title="x",
            started_at=pm.started_at,
            ended_at=pm.ended_at,
            severity="info",
            affected_services="x",
        )


@pytest.mark.parametrize(
    "change",
    [
        {"type": "Purchase"},
        {"priority": "P4"},
        {"status": "finished"},
        {"status": "done"},  # without a done time
        {"commit": "not a sha"},
    ],
)
def test_the_database_refuses_an_invalid_action_item(change: dict[str, Any]) -> None:
    item = action_item(postmortem())
    with pytest.raises(IntegrityError), transaction.atomic():
        ActionItem.objects.filter(pk=item.pk).update(**change)


@pytest.mark.parametrize(
    ("kind", "safe"),
    [
        ("Alert", True),
        ("Config", True),
        ("Monitor", True),
        ("Architecture", False),
        ("Investigation", False),
        ("Migration", False),
        ("Runbook", False),
    ],
)
def test_safe_is_derived_from_the_type(kind: str, safe: bool) -> None:
    assert action_item(postmortem(), type=kind).safe is safe
