"""Escaping for the text reports: a value that came from users' files, paths or a saved run (a set folder's
name, a target spec, a baseline's label or fields, an error message that quotes them) must read as that
value and nothing else. One function per output format, applied where document values enter a line or a
table cell (reports/terminal.py, reports/markdown.py); the HTML report escapes through Jinja instead.

Both show control characters, line and paragraph separators, bidi and other invisible format characters,
and lone surrogates (undecodable bytes in a path) as Python-style escapes (`\\n`, `\\x1b`, `\\u202e`), so a
value cannot start a new line, move the cursor, recolour the terminal or reorder what follows it."""

from __future__ import annotations

import re
import unicodedata

# Control (C0, DEL, C1), format (bidi overrides, zero-width, tags), line / paragraph separator, surrogate.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})

# Characters with a Markdown (GitHub-flavoured) or HTML meaning inline: emphasis, code, links and images,
# headings, table cells, strikethrough, math, HTML tags, comments and entities. `(`, `)` and `!` mean
# something only next to `[` / `]`, and those are escaped.
_MARKDOWN = {"\\": "\\\\", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]", "#": "\\#", "|": "\\|",
             "~": "\\~", "$": "\\$", "&": "&amp;", "<": "&lt;", ">": "&gt;"}

# What opens a block when it starts a line (after up to three spaces): a list item (`-`, `+`, `1.`, `1)`), a
# setext underline (`=`). (`#`, `>`, `*`, `` ` ``, `~` and `<` are escaped wherever they are.)
_BLOCK_START = re.compile(r" *(?:[-+=]|\d{1,9}[.)])")


def _visible(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def _shown(char: str) -> bool:
    return unicodedata.category(char) not in _INVISIBLE


def terminal_text(value: object) -> str:
    """`value` as terminal text: printable characters as they are (backslashes too, so Windows paths read
    as themselves), every invisible or line-breaking one as its escape."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if _shown(c) else _visible(c) for c in text)


def markdown_text(value: object) -> str:
    """`value` as inline GitHub-flavoured Markdown that renders as the value itself, on one line, inside one
    table cell: invisible and line-breaking characters as their escapes, Markdown's punctuation
    backslash-escaped, `&`, `<` and `>` as entities. A leading `~/` (a home-relative path) is kept as it is:
    it can open a strikethrough but not close one, and every other `~` is escaped."""
    text = str(value)
    out = []
    for i, char in enumerate(text):
        if not _shown(char):
            out.append(_visible(char))
        elif char == "~" and i == 0 and text[1:2] == "/":
            out.append(char)
        else:
            out.append(_MARKDOWN.get(char, char))
    return "".join(out)


def markdown_line(line: str) -> str:
    """A Markdown line (already escaped with markdown_text) that cannot open a list or an underline when it
    begins a list item's content, as a line that starts with a value does (target_identity, an error line's
    attack)."""
    start = _BLOCK_START.match(line)
    return line if start is None else line[: start.end() - 1] + "\\" + line[start.end() - 1:]


def escaped(value, escape):
    """`value` (a part of the run document) with `escape` applied to every string inside it; keys (ours, and
    looked up by the renderers) and numbers are left as they are."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {key: escaped(item, escape) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [escaped(item, escape) for item in value]
    return value
