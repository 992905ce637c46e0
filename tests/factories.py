"""Factories with minimal defaults. Incidents are opened through the service,
so every test incident has the timeline a real one would have."""

from __future__ import annotations

from functools import cache
from typing import Any

import factory
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User

from incidents.models import Incident, Service
from incidents.services import open_incident
from paging.models import ContactMethod, EscalationLevel, EscalationPolicy


@cache
def _hash(password: str, hashers: tuple[str, ...]) -> str:
    return make_password(password)


def hashed_once(password: str) -> str:
    """The password hashed once per test process (and hasher setting), not
    once per user: a real PBKDF2 hash costs ~0.5 s of CPU, and the suite makes
    hundreds of people. The hash is as real as any; only its salt is shared."""
    return _hash(password, tuple(settings.PASSWORD_HASHERS))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"responder{n}")
    password = factory.django.Password("a-long-test-password", transform=hashed_once)


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Service {n}")
    slug = factory.Sequence(lambda n: f"service-{n}")


class IncidentFactory(factory.Factory):
    class Meta:
        model = Incident

    service = factory.SubFactory(ServiceFactory)
    title = factory.Sequence(lambda n: f"Something is broken ({n})")
    severity = "error"

    @classmethod
    def _create(cls, model_class: type[Incident], **kwargs: Any) -> Incident:
        return open_incident(**kwargs).incident


class PolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EscalationPolicy

    name = factory.Sequence(lambda n: f"Policy {n}")


def policy_with_levels(*levels: tuple[int, list[User]], repeat: int = 0) -> EscalationPolicy:
    """A policy whose levels page these people after these delays (minutes)."""
    policy = PolicyFactory(repeat_count=repeat)
    for position, (delay, people) in enumerate(levels):
        level = EscalationLevel.objects.create(
            policy=policy, position=position, delay_minutes=delay
        )
        level.users.set(people)
    return policy


def contact(user: User, url: str = "json://127.0.0.1:9/", **kwargs: Any) -> ContactMethod:
    return ContactMethod.objects.create(
        user=user, name=kwargs.pop("name", "phone"), url=url, **kwargs
    )
