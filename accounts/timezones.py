"""Each person's time zone: which one, stored where, and read how.

Pages show every time in the viewer's zone (``accounts.middleware``
activates it per request); the API, the cache and the database stay in UTC.
A person's zone is their own choice (the settings page) or, until they make
one, their browser's, sent by ``static/js/triage.js`` on their first signed-in
page. Before either, the server's ``TIME_ZONE`` applies.

The zone is read from PostgreSQL when a person signs in and kept in their
session (``SESSION_KEY``; "" means "not chosen yet"), so a page costs no
query for it (a session from before this existed reads it once).
A change on the settings page updates that session at once; another browser
already signed in keeps the old zone until it signs in again, and since every
time shown carries its zone's abbreviation it is never misread meanwhile.
"""

from __future__ import annotations

import functools
import zoneinfo
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from accounts.models import Profile

SESSION_KEY = "triage_time_zone"


@functools.cache
def names() -> frozenset[str]:
    """Every IANA zone this machine knows (zoneinfo's database, or tzdata's)."""
    return frozenset(zoneinfo.available_timezones())


def is_known(name: str) -> bool:
    return name in names()


def chosen_time_zone(user: AbstractBaseUser) -> str:
    """The person's zone, or "" while they have none (the server's applies)."""
    stored = Profile.objects.filter(user=user.pk).values_list("time_zone", flat=True).first()
    return stored or ""


def set_time_zone(user: AbstractBaseUser, name: str, *, unless_chosen: bool = False) -> bool:
    """Store ``name`` (already checked with ``is_known``) as the person's zone.

    ``unless_chosen`` is for the browser's guess: it never replaces a zone the
    person has (chosen, or guessed by another browser first). Returns whether
    the zone was stored.

    Concurrency: the profile row is unique per user, so two first requests
    at once create one row (get_or_create retries the read after losing the
    insert), and the guess is a conditional UPDATE ... WHERE time_zone = '':
    of two browsers guessing at once, the second updates no row and says so.
    """
    if not unless_chosen:
        Profile.objects.update_or_create(user_id=user.pk, defaults={"time_zone": name})
        return True
    Profile.objects.get_or_create(user_id=user.pk)
    return Profile.objects.filter(user=user.pk, time_zone="").update(time_zone=name) == 1


def remember_time_zone(
    sender: Any, request: HttpRequest | None, user: AbstractBaseUser, **_: Any
) -> None:
    """``user_logged_in``: keep the person's zone in their new session."""
    if request is not None:  # login() always passes one; the signal allows None
        request.session[SESSION_KEY] = chosen_time_zone(user)
