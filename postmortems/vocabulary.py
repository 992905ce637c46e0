"""The words of a post-mortem's Prevention Plan, shared by the models, the forms,
the Markdown writer and the Markdown parser (which must not import Django).

An action item's *type* decides whether automation may implement it: Alert,
Config and Monitor changes are small and reversible, so they are *safe*; the
other types change architecture or data, or need judgement, so a person
reviews them. There is no stored "safe" flag anywhere: it is always derived
from the type, so the two can never disagree.
"""

from __future__ import annotations

SAFE_TYPES: tuple[str, ...] = ("Alert", "Config", "Monitor")
REVIEW_TYPES: tuple[str, ...] = ("Architecture", "Investigation", "Migration", "Runbook")
TYPES: tuple[str, ...] = SAFE_TYPES + REVIEW_TYPES

PRIORITIES: tuple[str, ...] = ("P0", "P1", "P2", "P3")

# (stored value, the word written in the Markdown tables)
STATUSES: tuple[tuple[str, str], ...] = (
    ("todo", "TODO"),
    ("in_progress", "In progress"),
    ("done", "Done"),
    ("wont_do", "Won't do"),
)
PENDING_STATUSES: tuple[str, ...] = ("todo", "in_progress")

UNKNOWN_TYPE_HINT = (
    "Use one of: Alert, Config, Monitor (safe to automate) or "
    "Architecture, Investigation, Migration, Runbook (need human review)."
)


def is_safe(action_type: str) -> bool:
    return action_type in SAFE_TYPES


def canonical_type(word: str) -> str | None:
    """``"alert"`` → ``"Alert"``; None for a word that is not a type."""
    wanted = word.strip().lower()
    return next((name for name in TYPES if name.lower() == wanted), None)


def canonical_priority(word: str) -> str | None:
    wanted = word.strip().upper()
    return wanted if wanted in PRIORITIES else None


def unknown_type_message(word: str) -> str:
    return f"Unknown type {word.strip()!r}. {UNKNOWN_TYPE_HINT}"
