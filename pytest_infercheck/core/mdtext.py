"""Untrusted text (error messages, test ids, node names, paths from a baseline) made inert in Markdown.

GitHub renders raw HTML in Markdown files and in ``$GITHUB_STEP_SUMMARY``, and turns ``[x](url)``
and ``![x](url)`` into links and remotely loaded images.  :func:`md_cell` makes text one line with
``<``, ``>`` and ``&`` as entities, link targets broken (``](`` -> ``]\\(``) and ``|`` escaped (a
table row ends at a bare one), and the characters of emphasis, code spans and strikethrough (``*``,
backticks, ``~``, and ``_`` where it is not inside a word: ``__init__`` would turn bold, ``keep_fp32``
does not) escaped with a backslash; it renders as the original characters.  :func:`md_code` puts text
in an inline code span, where nothing is interpreted, fenced by more backticks than it contains.
"""

from __future__ import annotations

import re
from typing import Any

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\\": "\\\\", "](": "]\\(",
            "*": "\\*", "`": "\\`", "~": "\\~", "_": "\\_"}
# An underscore between two letters or digits is never emphasis (GitHub's Markdown): left as it is, so that
# snake_case names stay readable in the raw file.
_SPECIAL = re.compile(r"\]\(|[&<>|\\*`~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# A line break and the indentation around it: a multi-line message reads as one sentence, not as runs of spaces.
_LINE_BREAKS = re.compile(r"[ \t]*[\r\n\u2028\u2029]+[ \t]*")


def md_cell(text: Any) -> str:
    """Text for a table cell or a list item: one line, no HTML, no link or image, no column break."""
    return _SPECIAL.sub(lambda m: _ESCAPES[m.group()], _LINE_BREAKS.sub(" ", str(text)))


def md_code(text: Any) -> str:
    """``text`` as an inline code span (CommonMark: the fence is longer than any backtick run inside)."""
    text = _LINE_BREAKS.sub(" ", str(text))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"
