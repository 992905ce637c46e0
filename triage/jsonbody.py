"""The one way triage reads JSON from a request body.

``loads`` accepts only what every later step can store and answer about:
UTF-8 JSON, nested at most ``MAX_DEPTH`` levels, no NUL character and no
lone surrogate in any string or key (PostgreSQL text cannot hold NUL, and a
lone surrogate cannot be encoded as UTF-8 for the database, the logs or a
notification), and no NaN or infinite number (PostgreSQL's jsonb has none).
Anything else raises ``InvalidJson`` naming where the problem is as a JSON
path (``payload.custom_details.a``, ``alerts[0].labels.instance``), so
every endpoint answers 400 in its own shape before anything is written.

Depth cannot exhaust the stack: it is measured on the text, without
recursion, before the standard library's parser sees it (which guards its
own recursion anyway: a ``RecursionError`` would be caught too), and the
parsed value is walked with an explicit stack.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from itertools import accumulate, repeat
from operator import sub
from typing import Any

# Deep enough for any monitoring payload seen in practice (an Events v2
# event's custom_details start at level 3, an Alertmanager label at level 4);
# shallow enough that nothing downstream (JSONField, templates, logs) nears
# Python's recursion limit.
MAX_DEPTH = 32

# Only an escape (\u0000, \ud800-\udfff) can put a NUL or a lone surrogate
# in the parsed value: raw NUL bytes are refused by the parser and raw
# surrogates by the UTF-8 decoder. Bodies without one are not walked.
_ESCAPE = "\\u"
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_STRUCTURE = re.compile(r"[\[\]{},]")

# Structural brackets as +1 (openers: 2 - 1) and -1 (closers: 0 - 1).
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_NOT_BRACKETS = bytes(set(range(128)) - set(b"[]{}"))


class InvalidJson(ValueError):
    """``path`` is where the problem is (empty: the body as a whole);
    ``message`` says what it is, to follow the field's name."""

    def __init__(self, path: str, message: str) -> None:
        self.path, self.message = path, message
        self.field = path or "body"
        self.detail = f"'{path}' {message}" if path else f"The body {message}"
        super().__init__(self.detail)


def loads(raw: bytes | str) -> Any:
    """The parsed value of a UTF-8 JSON document; ``InvalidJson`` if refused."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise InvalidJson("", "is not UTF-8") from None
    # Depth first, on the text: the parser is never handed a bracket bomb.
    _check_depth(text)
    nonfinite: list[str] = []

    def number(literal: str) -> float:
        # Floats only (integers are exact), and NaN/Infinity: rare enough to
        # be worth a Python call each; the walk below says where they are.
        parsed = float(literal)
        if not math.isfinite(parsed):
            nonfinite.append(literal)
        return parsed

    try:
        value = json.loads(text, parse_float=number, parse_constant=number)
    except RecursionError:  # pragma: no cover - _check_depth refused it already
        raise InvalidJson("", _TOO_DEEP) from None
    except ValueError as exc:
        raise InvalidJson("", f"is not valid JSON: {exc}") from None
    if nonfinite or _ESCAPE in text:
        _check(value)
    return value


_TOO_DEEP = f"is nested deeper than {MAX_DEPTH} levels"


def _pieces(text: str) -> list[str]:
    """The text split at string quotes: even items are outside strings, odd
    items are the strings (escaped quotes and backslashes dropped)."""
    # Every backslash in JSON starts a two-character escape: drop the escaped
    # backslashes first, then the escaped quotes; every quote left opens or
    # closes a string.
    return text.replace("\\\\", "").replace('\\"', "").split('"')


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, naming where it first happens.

    The depth is the running sum of the brackets outside strings, computed
    by C loops (translate, accumulate); only a refused body is walked again,
    token by token, to name the path.
    """
    pieces = _pieces(text)
    outside = "".join(pieces[::2]).encode("ascii", "ignore")
    steps = map(sub, outside.translate(None, _NOT_BRACKETS).translate(_BRACKET_STEPS), repeat(1))
    if max(accumulate(steps), default=0) > MAX_DEPTH:
        raise InvalidJson(_path(_deepest_path(pieces)), _TOO_DEEP)


def _deepest_path(pieces: list[str]) -> tuple[str | int, ...]:
    """The path of the first container nested deeper than MAX_DEPTH."""
    frames: list[list[Any]] = []  # per open container: [opener, current key or index]
    for index, piece in enumerate(pieces):
        if index % 2:  # a string: the key, if an object is waiting for one
            if frames and frames[-1] == ["{", None]:
                frames[-1][1] = piece
            continue
        for mark in _STRUCTURE.findall(piece):
            if mark in "[{":
                if len(frames) == MAX_DEPTH:  # (an object without a key yet: "?")
                    return tuple("?" if key is None else key for _, key in frames)
                frames.append([mark, 0 if mark == "[" else None])
            elif mark in "]}":
                del frames[-1:]
            elif frames:  # a comma: the next item, or the next key
                frames[-1][1] = frames[-1][1] + 1 if frames[-1][0] == "[" else None
    return ()  # pragma: no cover - only called on a body known to be too deep


def _check(value: Any) -> None:
    """Raise InvalidJson for the first refused string, key or number."""
    for path, item in _walk(value):
        if isinstance(item, str):
            _check_string(path, item, "")
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidJson(_path(path), "is not a finite number")
        elif isinstance(item, dict):
            for key in item:
                _check_string(path, key, "has a key that ")


def _check_string(path: tuple[str | int, ...], text: str, what: str) -> None:
    bad = _BAD_CHARACTER.search(text)
    if bad is None:
        return
    if bad.group() == "\x00":
        raise InvalidJson(_path(path), f"{what}contains a NUL character (\\u0000)")
    raise InvalidJson(_path(path), f"{what}contains a lone surrogate (\\u{ord(bad.group()):x})")


def _walk(value: Any) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every node, depth first, with its path (an explicit stack; the depth
    is bounded already)."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            children = list(item.items())
        elif isinstance(item, list):
            children = list(enumerate(item))
        else:
            continue
        stack.extend(((*path, key), child) for key, child in reversed(children))


def _path(parts: tuple[str | int, ...]) -> str:
    """``('alerts', 0, 'labels', 'x')`` → ``alerts[0].labels.x``; keys are
    shown printable (a refused character in a key is written as its escape)."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            shown = _BAD_CHARACTER.sub(lambda m: f"\\u{ord(m.group()):04x}", part[:64])
            text += f".{shown}" if text else shown
    return text
