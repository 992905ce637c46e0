"""Numbers typed by people and clients: ``#42`` in a search, a policy id, a
Content-Length header."""

from __future__ import annotations

BIGINT_MAX = 2**63 - 1  # PostgreSQL's bigint, the type of every id


def ascii_int(text: str, *, maximum: int = BIGINT_MAX) -> int | None:
    """``text`` as a whole number if it is ASCII digits no larger than
    ``maximum``; otherwise None. (``str.isdigit`` alone also accepts "²", on
    which ``int()`` raises.)"""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None
