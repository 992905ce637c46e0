"""`manage.py mcp --user NAME`: triage's MCP server over stdio, for a local
agent (Claude Desktop, an IDE...). Tools act as that user; write tools only
with MCP_WRITE_TOOLS=true (or --write-tools)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.mcp_server import Principal, acting_as, build_server


def _logs_to_stderr() -> None:
    # stdout carries the protocol: a log line there would corrupt it.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


class Command(BaseCommand):
    help = "Run triage's MCP server over stdio, acting as a user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user",
            default=settings.MCP_USER,
            help="Username the tools act as (default: the MCP_USER setting).",
        )
        parser.add_argument(
            "--write-tools",
            action="store_true",
            default=settings.MCP_WRITE_TOOLS,
            help="Offer acknowledge/escalate/note/resolve (default: the MCP_WRITE_TOOLS setting).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["user"]
        if not username:
            raise CommandError("Name the user the tools act as: --user NAME (or set MCP_USER).")
        try:
            user = get_user_model().objects.get(username=username, is_active=True)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No active user {username!r}.") from None
        _logs_to_stderr()
        server = build_server(write_tools=options["write_tools"], refresh_connections=True)
        with acting_as(Principal(user=user, can_write=True)):
            server.run("stdio")
