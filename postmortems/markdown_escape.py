"""People's text made safe to write into a post-mortem's Markdown.

A post-mortem's Markdown has a structure that programs read back: its
headings and, above all, its Prevention Plan table, which
``postmortems.markdown_tables`` turns into the TODO JSON automation acts on.
Text written by people (a title typed into the public report form, a
section, a root-cause step) must never add to that structure, or a stranger
could add a "safe" action item by reporting a problem. So before it is
written:

- every ``|`` is escaped (``\\|``), so no line of it is a table row for the
  parser or for markdown-it;
- whatever could open a block at the start of a line — a heading (``#``, or
  a setext underline of ``=`` or ``-``), a code fence (which would hide the
  rest of the document from the parser), an HTML block (``<``, which could
  hide the rest of the page) — is escaped with a backslash, also after
  blockquote and list markers.

- an HTML tag anywhere that would make a heading or a table (``<h1>``,
  ``<table>``, ``<tr>``…) is escaped, so it shows as text.

Other inline HTML stays (``<br>``, ``<kbd>``): ``postmortems.rendering``
cleans it with an allow-list, and the parser reads no HTML.

Everything else (emphasis, links, lists, quotes, inline code) keeps its
Markdown meaning, and the rendered text reads as it was typed: markdown-it
drops the backslashes. The price: inside code, ``|`` shows as ``\\|``.
"""

from __future__ import annotations

import re

# A pipe not already escaped: preceded by an even number of backslashes.
_UNESCAPED_PIPE = re.compile(r"(?<!\\)((?:\\\\)*)\|")
# Blockquote and list markers that may stand before a block opener.
# ``\s`` as the parser's fence pattern has it: any Unicode space, not just " ".
_CONTAINERS = re.compile(r"^(?:\s*(?:>|[-+*](?=\s|$)|\d{1,9}[.)](?=\s|$)))*\s*")
# Openers: ATX heading, fence, HTML block; or a setext underline (the whole rest).
_OPENER = re.compile(r"#|`{3,}|~{3,}|<")
_SETEXT = re.compile(r"(?:=+|-+)\s*")
_STRUCTURE_TAG = re.compile(
    r"(?<!\\)((?:\\\\)*)<(?=/?(?:h[1-6]|table|thead|tbody|tfoot|tr|th|td)\b)", re.I
)
_CLOSING_HASHES = re.compile(r"(^|[ \t])(#+)[ \t]*$")


def _escape_pipes(text: str) -> str:
    """Pipes, and the tags that would make headings or tables in HTML."""
    text = _STRUCTURE_TAG.sub(lambda m: m.group(1) + "\\<", text)
    return _UNESCAPED_PIPE.sub(lambda m: m.group(1) + "\\|", text)


def _escape_opener(line: str) -> str:
    prefix = _CONTAINERS.match(line)
    start = prefix.end() if prefix else 0
    rest = line[start:]
    if _OPENER.match(rest) or (rest and _SETEXT.fullmatch(rest)):
        return line[:start] + "\\" + rest
    return line


def escape_line(text: str) -> str:
    """Text for one line of Markdown (a heading, a list item, a fact):
    whitespace runs (newlines too) become one space."""
    line = " ".join(text.split())
    line = _escape_opener(_escape_pipes(line))
    # "Disk ##" would lose its hashes as a heading's closing sequence.
    return _CLOSING_HASHES.sub(lambda m: m.group(1) + "\\" + m.group(2), line)


def escape_block(text: str) -> str:
    """Markdown written by a person, kept as Markdown but unable to open a
    heading, a table, a fence or an HTML block."""
    return "\n".join(_escape_opener(_escape_pipes(line)) for line in text.splitlines())
