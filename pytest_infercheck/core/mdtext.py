"""Untrusted text (error messages, test ids, node names, paths from a baseline) made inert in Markdown.

GitHub renders raw HTML in Markdown files and in ``$GITHUB_STEP_SUMMARY``, and turns ``[x](url)``
and ``![x](url)`` into links and remotely loaded images.  :func:`md_cell` makes text one line with
``<``, ``>`` and ``&`` as entities, link targets broken (``](`` -> ``]\\(``) and ``|`` escaped (a
table row ends at a bare one), and the characters of emphasis and strikethrough (``*``, ``~``, and ``_``
where it is not inside a word: ``__init__`` would turn bold, ``keep_fp32`` does not) escaped with a
backslash; it renders as the original characters.  Backticks stay: messages (the audit's, torch's hints)
quote code in them, and a code span holds nothing GitHub would interpret.  :func:`md_code` puts text
in an inline code span, where nothing is interpreted, fenced by more backticks than it contains.
"""

from __future__ import annotations

import re
from typing import Any

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\\": "\\\\", "](": "]\\(",
            "*": "\\*", "~": "\\~", "_": "\\_"}
# An underscore between two letters or digits is never emphasis (GitHub's Markdown): left as it is, so that
# snake_case names stay readable in the raw file.
_SPECIAL = re.compile(r"\]\(|[&<>|\\*~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# A line break and the indentation around it: a multi-line message reads as one sentence, not as runs of spaces.
_LINE_BREAKS = re.compile(r"[ \t]*[\r\n\u2028\u2029]+[ \t]*")


_CODE_SPAN = re.compile(r"`[^`]+`")  # a code span of single backticks, as the messages quote code


def md_cell(text: Any) -> str:
    """Text for a table cell or a list item: one line, no HTML, no link or image, no column break.  Inside a
    code span nothing is interpreted (and a backslash would show), so only ``|`` is escaped there: GitHub's
    tables end a cell at a bare one even inside code."""
    text = _LINE_BREAKS.sub(" ", str(text))
    pieces, last = [], 0
    for span in _CODE_SPAN.finditer(text):
        pieces.append(_escaped(text[last:span.start()]))
        pieces.append(span.group().replace("|", "\\|"))
        last = span.end()
    pieces.append(_escaped(text[last:]))
    return "".join(pieces)


def _escaped(text: str) -> str:
    return _SPECIAL.sub(lambda m: _ESCAPES[m.group()], text)


def md_code(text: Any) -> str:
    """``text`` as an inline code span (CommonMark: the fence is longer than any backtick run inside)."""
    text = _LINE_BREAKS.sub(" ", str(text))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"
