"""The accounts app: API tokens moved here from incidents without losing one,
and the app stays the base the others build on."""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import StateApps
from django.test import Client
from redis import Redis

from accounts.models import ApiToken
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent
# Before the move: the incidents app owns ApiToken, accounts has no migration.
BEFORE_THE_MOVE = [("incidents", "0007_reach_nobody_reached"), ("accounts", None)]
APPS_ABOVE_ACCOUNTS = {"incidents", "paging", "postmortems", "integrations", "chat"}


@pytest.fixture
def before_the_move(db: None) -> Iterator[StateApps]:
    """The models as they were before the move, with the database migrated
    back to them; forward again afterwards. The test's transaction is rolled
    back as well: the move is state-only plus one UPDATE, all transactional
    in PostgreSQL, so no other test sees it."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    state = executor.migrate(BEFORE_THE_MOVE)
    try:
        yield state.apps
    finally:
        MigrationExecutor(connection).migrate(latest)
        ContentType.objects.clear_cache()


def test_tokens_and_their_permissions_survive_the_move_to_accounts(
    before_the_move: StateApps, client: Client, redis: Redis
) -> None:
    old = before_the_move
    OldApiToken = old.get_model("incidents", "ApiToken")
    Permission = old.get_model("auth", "Permission")
    Group = old.get_model("auth", "Group")
    owner = UserFactory(username="ci-bot")
    auditor = UserFactory(username="auditor", is_staff=True)
    raw = "tri_" + "k" * 43
    OldApiToken.objects.create(
        user_id=owner.pk,
        name="deploys",
        scope="write",
        prefix=raw[:10],
        token_hash=hashlib.sha256(raw.encode()).hexdigest(),
    )
    viewers = Group.objects.create(name="token auditors")
    viewers.permissions.add(
        Permission.objects.get(content_type__app_label="incidents", codename="view_apitoken")
    )
    viewers.user_set.add(auditor.pk)
    latest = MigrationExecutor(connection)

    latest.migrate(latest.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()

    token = ApiToken.objects.get(name="deploys")
    assert token.user == owner
    assert token.is_active
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/v1/incidents/open", headers=headers).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    auditor = User.objects.get(pk=auditor.pk)
    assert auditor.has_perm("accounts.view_apitoken")
    assert not auditor.has_perm("accounts.change_apitoken")
    client.force_login(auditor)
    page = client.get(f"/admin/accounts/apitoken/{token.pk}/change/")
    assert page.status_code == 200
    assert "deploys" in page.content.decode()


@pytest.mark.django_db
def test_the_migrations_describe_the_models() -> None:
    # The move is written by hand (state-only operations): a drift between
    # them and the models would make the next makemigrations recreate or drop
    # the token table.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def _imported_apps(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return {module.split(".")[0] for module in modules}


@pytest.mark.parametrize(
    "path",
    [
        *sorted((ROOT / "accounts").rglob("*.py")),
        ROOT / "triage" / "http.py",
        ROOT / "triage" / "errors.py",
    ],
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_the_shared_http_pieces_import_no_app_above_them(path: Path) -> None:
    assert not _imported_apps(path) & APPS_ABOVE_ACCOUNTS
